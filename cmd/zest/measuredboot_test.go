package main

import (
	"bytes"
	"strings"
	"testing"
)

// Exit codes of the measured-boot commands: bad input is 1, a bad command
// line 2.
func TestMeasuredBootExitCodes(t *testing.T) {
	e := "../../fixtures/eventlog/"
	p := "../../fixtures/pe/"
	tests := []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"policy", "measured-boot", "-q", "--eventlog", e + "binary_bios_measurements-secureboot", "-o", t.TempDir() + "/r.json"}, 0, ""},
		{[]string{"policy", "measured-boot"}, 2, "give --eventlog"},
		{[]string{"policy", "measured-boot", "--eventlog", e + "mb_log.b64", "extra"}, 2, "unexpected arguments"},
		{[]string{"policy", "measured-boot", "--merge"}, 2, "needs refstate files"},
		{[]string{"policy", "measured-boot", "--eventlog", e + "bad/truncated"}, 1, "event 6 at offset 1498"},
		{[]string{"policy", "measured-boot", "--eventlog", e + "bad/absurd-size"}, 1, "exceeds the 16777216-byte cap"},
		{[]string{"policy", "measured-boot", "--eventlog", e + "bad/seabios", "--without-secureboot"}, 1, "no UEFI events"},
		{[]string{"policy", "measured-boot", "--eventlog", e + "binary_bios_measurements"}, 1, "--without-secureboot"},
		{[]string{"eventlog", "show", e + "bad/seabios"}, 0, ""},
		{[]string{"eventlog", "show", e + "bad/truncated"}, 1, "truncated"},
		{[]string{"eventlog"}, 2, "missing subcommand"},
		{[]string{"pcr", "predict", "--eventlog", e + "bad/seabios", "--kernel", p + "even.efi"}, 1, "neither a kernel PCR 4 application nor a PCR 9 vmlinuz"},
		{[]string{"pcr", "predict", "--eventlog", e + "binary_bios_measurements-secureboot", "--kernel", e + "bad/broken-sections.efi"}, 1, "65535 sections"},
		{[]string{"pcr", "predict"}, 2, "--eventlog is required"},
		{[]string{"pcr", "predict", "--refstate", "nope.json"}, 1, "nope.json"},
		{[]string{"digests", "firmware", e + "mb_log.b64"}, 1, "no firmware volume"},
	}
	for _, tt := range tests {
		var out, errb bytes.Buffer
		code := Main(tt.args, strings.NewReader(""), &out, &errb)
		if code != tt.code {
			t.Errorf("zest %v: exit %d, want %d (stderr %q)", tt.args, code, tt.code, errb.String())
		}
		if tt.err != "" && !strings.Contains(errb.String(), tt.err) {
			t.Errorf("zest %v: stderr %q, want %q", tt.args, errb.String(), tt.err)
		}
	}
}
