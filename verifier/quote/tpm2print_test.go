package quote_test

import (
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/zest-attest/zest/verifier/quote"
)

// TestAttestAgainstTpm2Print decodes every fixture TPMS_ATTEST with
// tpm2-tools' tpm2_print and compares its fields with ParseAttest's.
func TestAttestAgainstTpm2Print(t *testing.T) {
	bin, err := exec.LookPath("tpm2_print")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tpm2_print (Debian tpm2-tools) is required in CI")
		}
		t.Skip("tpm2_print not installed")
	}
	_, attest, _, _ := loadVector(t)
	inputs := map[string][]byte{"keylime": attest}
	for kind, s := range loadStored(t) {
		q, err := quote.Parse(s.Quote)
		if err != nil {
			t.Fatal(err)
		}
		inputs[kind] = q.AttestBytes
	}
	for name, b := range inputs {
		t.Run(name, func(t *testing.T) {
			a, err := quote.ParseAttest(b)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "attest")
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(bin, "-t", "TPMS_ATTEST", path).CombinedOutput()
			if err != nil {
				t.Fatalf("tpm2_print: %v\n%s", err, out)
			}
			fields := map[string]string{}
			var printedSel, printedHash []string
			for _, line := range strings.Split(string(out), "\n") {
				k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
				v = strings.TrimSpace(v)
				switch {
				case !ok:
				case k == "pcrSelect" && v != "":
					printedSel = append(printedSel, v)
				case k == "hash":
					printedHash = append(printedHash, strings.Fields(v)[0])
				default:
					if _, dup := fields[k]; !dup {
						fields[k] = v
					}
				}
			}
			safe := 0
			if a.ClockInfo.Safe {
				safe = 1
			}
			var sel, hashes []string
			for _, s := range a.PCRSelect {
				sel = append(sel, hex.EncodeToString(s.Select))
				hashes = append(hashes, fmt.Sprint(uint16(s.Hash)))
			}
			if !slices.Equal(printedSel, sel) || !slices.Equal(printedHash, hashes) {
				t.Errorf("selection: tpm2_print %v %v, zest %v %v", printedHash, printedSel, hashes, sel)
			}
			want := map[string]string{
				"magic":           fmt.Sprintf("%x", a.Magic),
				"type":            fmt.Sprintf("%x", a.Type),
				"qualifiedSigner": hex.EncodeToString(a.QualifiedSigner),
				"extraData":       hex.EncodeToString(a.ExtraData),
				"clock":           fmt.Sprint(a.ClockInfo.Clock),
				"resetCount":      fmt.Sprint(a.ClockInfo.ResetCount),
				"restartCount":    fmt.Sprint(a.ClockInfo.RestartCount),
				"safe":            fmt.Sprint(safe),
				"count":           fmt.Sprint(len(a.PCRSelect)),
				"pcrDigest":       hex.EncodeToString(a.PCRDigest),
			}
			for k, v := range want {
				if !strings.EqualFold(fields[k], v) {
					t.Errorf("%s: tpm2_print %q, zest %q", k, fields[k], v)
				}
			}
		})
	}
}
