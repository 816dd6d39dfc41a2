package mb

import (
	"testing"

	"github.com/zest-attest/zest/digests"
	"github.com/zest-attest/zest/digests/eventlog"
	"github.com/zest-attest/zest/policygen"
)

func TestParseGUIDMatchesEventlog(t *testing.T) {
	for _, s := range []string{"8be4df61-93ca-11d2-aa0d-00e098032b8c", "a0baa8a3-041d-48a8-bc87-c36d121b5e3d", "A0BAA8A3-041D-48A8-BC87-C36D121B5E3D"} {
		want, err := eventlog.ParseGUID(s)
		got, ok := parseGUID(s)
		if err != nil || !ok || got != want {
			t.Errorf("%s: got %v %v, eventlog %v %v", s, got, ok, want, err)
		}
	}
	for _, s := range []string{"", "8be4df61-93ca-11d2-aa0d-00e098032b8", "8be4df61x93ca-11d2-aa0d-00e098032b8c", "8be4df61-93ca-11d2-aa0d-00e098032b8g"} {
		if _, ok := parseGUID(s); ok {
			t.Errorf("%q accepted", s)
		}
	}
}

// FuzzEvaluate feeds arbitrary logs, verified against their own replay (an
// attacker controls the log, the quote matches), to the evaluator and the
// predictor: no panic, and a rejection always carries a check and PCR.
func FuzzEvaluate(f *testing.F) {
	for _, name := range []string{"binary_bios_measurements-secureboot", "binary_bios_measurements", "mb_log.b64", "crypto_agile_eventlog", "sb_cert_eventlog"} {
		f.Add(readLog(f, name))
	}
	refs := []*policygen.MBRefstate{refstate(f, "binary_bios_measurements-secureboot", false), refstate(f, "binary_bios_measurements", true)}
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := eventlog.Parse(data)
		if err != nil {
			return
		}
		_, _ = PredictFromLog(l, Replacements{})
		rep, err := l.Replay(digests.SHA256)
		if err != nil {
			return
		}
		quoted := map[int][]byte{}
		for _, p := range RelevantPCRs {
			v, ok := rep[p]
			if !ok {
				v = make([]byte, 32)
			}
			quoted[p] = v
		}
		v, err := eventlog.Verify(l, digests.SHA256, quoted)
		if err != nil {
			return
		}
		for _, ref := range refs {
			for _, f := range Evaluate(v, ref, Options{}) {
				if f.Context["check"] == nil || f.Context["policy"] != PolicyName || f.Message == "" {
					t.Fatalf("failure without check/policy/message: %+v", f)
				}
			}
		}
	})
}
