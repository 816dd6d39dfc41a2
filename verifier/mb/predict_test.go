package mb

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/zest-attest/zest/digests"
	"github.com/zest-attest/zest/digests/eventlog"
	"github.com/zest-attest/zest/policygen"
)

func TestPredictNoChangeIsReplay(t *testing.T) {
	for _, name := range []string{"binary_bios_measurements-secureboot", "binary_bios_measurements", "mb_log.b64"} {
		l := parse(t, name)
		p, err := PredictFromLog(l, Replacements{})
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range l.Banks {
			rep, _ := l.Replay(b.Algorithm)
			for pcr, v := range rep {
				if !bytes.Equal(p.PCRs[b.Algorithm][pcr], v) {
					t.Errorf("%s %s PCR %d differs from the replay", name, b.Algorithm, pcr)
				}
			}
		}
	}
}

// extendAll computes a PCR by hand from digests (independent of Replay).
func extendAll(ds ...[]byte) []byte {
	pcr := make([]byte, 32)
	for _, d := range ds {
		s := sha256.Sum256(append(bytes.Clone(pcr), d...))
		pcr = s[:]
	}
	return pcr
}

func sum(s string) []byte { d := sha256.Sum256([]byte(s)); return d[:] }

func TestPredictReplacedChain(t *testing.T) {
	l := parse(t, "binary_bios_measurements-secureboot")
	newShim := &policygen.ComponentDigests{Authenticode: map[digests.Algorithm][]byte{digests.SHA256: sum("shim 16")}}
	newKernel := &policygen.ComponentDigests{
		Authenticode: map[digests.Algorithm][]byte{digests.SHA256: sum("kernel 6.1 authenticode")},
		Plain:        map[digests.Algorithm][]byte{digests.SHA256: sum("kernel 6.1 file")},
	}
	newInitrd := &policygen.ComponentDigests{Plain: map[digests.Algorithm][]byte{digests.SHA256: sum("initrd 6.1")}}
	cmd := "(hd0,gpt2)/vmlinuz-6.1 root=/dev/sda1 ro"
	p, err := PredictFromLog(l, Replacements{Shim: newShim, Kernel: newKernel, Initrd: newInitrd, Cmdline: &cmd})
	if err != nil {
		t.Fatal(err)
	}
	// PCR 4 by hand: EV_EFI_ACTION "Calling EFI Application from Boot
	// Option", separator, shim, grub, kernel (shared reference §13.1).
	var grub []byte
	var pcr8, pcr9 [][]byte
	for _, e := range l.Events {
		switch {
		case e.PCR == 4 && e.Type == eventlog.EV_EFI_BOOT_SERVICES_APPLICATION && e.Index == 35:
			grub = e.Digest(digests.SHA256)
		case e.PCR == 8:
			// GRUB hashes the text after the prefix; recompute from data.
			s := strings.TrimSuffix(string(e.Data), "\x00")
			_, rest, _ := strings.Cut(s, ": ")
			switch {
			case strings.HasPrefix(s, "kernel_cmdline: "):
				rest = cmd
			case strings.HasPrefix(s, "grub_cmd: linux "):
				rest = "linux " + cmd
			}
			pcr8 = append(pcr8, sum(rest))
		case e.PCR == 9:
			s := string(e.Data)
			switch {
			case strings.Contains(s, "/vmlinuz"):
				pcr9 = append(pcr9, sum("kernel 6.1 file"))
			case strings.Contains(s, "/initramfs"):
				pcr9 = append(pcr9, sum("initrd 6.1"))
			default:
				pcr9 = append(pcr9, e.Digest(digests.SHA256))
			}
		}
	}
	want4 := extendAll(sum("Calling EFI Application from Boot Option"), sum("\x00\x00\x00\x00"), sum("shim 16"), grub, sum("kernel 6.1 authenticode"))
	got := p.Select(digests.SHA256, PredictedPCRs)
	if !bytes.Equal(got[4], want4) {
		t.Errorf("PCR 4 = %x, want %x", got[4], want4)
	}
	if !bytes.Equal(got[8], extendAll(pcr8...)) {
		t.Errorf("PCR 8 = %x, want %x", got[8], extendAll(pcr8...))
	}
	if !bytes.Equal(got[9], extendAll(pcr9...)) {
		t.Errorf("PCR 9 = %x, want %x", got[9], extendAll(pcr9...))
	}
	rep, _ := l.Replay(digests.SHA256)
	if !bytes.Equal(got[7], rep[7]) {
		t.Error("PCR 7 changed")
	}
	if len(p.Replaced) != 6 { // shim, kernel, vmlinuz, initrd, kernel_cmdline, grub_cmd linux
		t.Errorf("replaced %v", p.Replaced)
	}
}

func TestPredictErrors(t *testing.T) {
	l := parse(t, "crypto_agile_eventlog")
	in := &policygen.ComponentDigests{Plain: map[digests.Algorithm][]byte{digests.SHA256: sum("x")}}
	if _, err := PredictFromLog(l, Replacements{Initrd: in}); err == nil || !strings.Contains(err.Error(), "no initrd") {
		t.Errorf("initrd into a log without one: %v", err)
	}
	sb := parse(t, "binary_bios_measurements")
	shim := &policygen.ComponentDigests{Authenticode: map[digests.Algorithm][]byte{digests.SHA256: sum("x")}}
	if _, err := PredictFromLog(sb, Replacements{Shim: shim}); err == nil || !strings.Contains(err.Error(), "no sha1 digest") {
		t.Errorf("missing bank: %v", err)
	}
	if _, err := PredictFromLog(&eventlog.Log{}, Replacements{}); err == nil {
		t.Error("empty log accepted")
	}
}

// PredictPCR4 from a refstate alone equals the replayed PCR 4 of the logs
// the refstate came from, for the three boot flows in the fixtures.
func TestPredictPCR4FromRefstate(t *testing.T) {
	tests := []struct {
		log       string
		withoutSB bool
		opts      PCR4Options
	}{
		{"binary_bios_measurements-secureboot", false, PCR4Options{}},
		{"mb_log.b64", false, PCR4Options{KernelTwice: true}},
		{"binary_bios_measurements", true, PCR4Options{}}, // firmware app before shim
	}
	for _, tt := range tests {
		ref := refstate(t, tt.log, tt.withoutSB)
		got, err := PredictPCR4(ref, tt.opts)
		if err != nil {
			t.Fatal(err)
		}
		rep, _ := parse(t, tt.log).Replay(digests.SHA256)
		if len(got) != 1 || !bytes.Equal(got[0], rep[4]) {
			t.Errorf("%s: predicted %x, log %x", tt.log, got, rep[4])
		}
	}
	if _, err := PredictPCR4(&policygen.MBRefstate{}, PCR4Options{}); err == nil {
		t.Error("empty refstate accepted")
	}
}
