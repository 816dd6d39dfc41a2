package main

import (
	"bytes"
	"strings"
	"testing"
)

// Exit codes are part of the interface: 0 ok, 1 failure or finding, 2 usage.
func TestExitCodes(t *testing.T) {
	kl := "../../fixtures/keylime/create-runtime-policy/"
	tests := []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"version"}, 0, ""},
		{[]string{"policy", "runtime", "-q", "--ima-log", kl + "ima-log-sha256"}, 0, ""},
		{[]string{"policy", "runtime"}, 2, "no inputs"},
		{[]string{"policy", "runtime", "--bogus"}, 2, "unknown flag"},
		{[]string{"policy", "diff", "one"}, 2, "accepts 2 arg"},
		{[]string{"policy"}, 2, "missing subcommand"},
		{[]string{"nope"}, 2, "unknown command"},
		{[]string{"policy", "runtime", "--ima-log", kl + "ima-log-unknown"}, 1, "unknown digest algorithm"},
		{[]string{"policy", "diff", kl + "policy-sha1", kl + "policy-sha256"}, 1, ""},
		{[]string{"policy", "diff", kl + "policy-sha1", kl + "policy-sha1"}, 0, ""},
		{[]string{"policy", "validate", kl + "ima-log-sha1"}, 1, "invalid"},
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
		if tt.code == 0 && errb.Len() > 0 && strings.Contains(strings.Join(tt.args, " "), "-q") {
			t.Errorf("zest %v: --quiet printed %q", tt.args, errb.String())
		}
	}
}
