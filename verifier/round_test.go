package verifier

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/zest-attest/zest/digests"
	"github.com/zest-attest/zest/digests/eventlog"
	"github.com/zest-attest/zest/digests/imalog"
	"github.com/zest-attest/zest/policygen"
	"github.com/zest-attest/zest/verifier/failure"
	"github.com/zest-attest/zest/verifier/ima"
	"github.com/zest-attest/zest/verifier/quote"
	"github.com/zest-attest/zest/verifier/quote/quotetest"
)

// node is a simulated attested machine: a real (simulated) TPM with an AK,
// an IMA list whose records are really extended into PCR 10.
type node struct {
	t    *testing.T
	tpm  *quotetest.TPM
	ak   *quotetest.AK
	ima  []string
	sent int // lines already delivered to the verifier
}

func newNode(t *testing.T) *node {
	t.Helper()
	tpm, err := quotetest.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tpm.Close() })
	ak, err := tpm.NewAK(quotetest.RSASSA, quote.AlgSHA256)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, tpm: tpm, ak: ak}
	// boot_aggregate over PCRs 0-9 as they are now.
	sels := []quote.PCRSelection{quote.NewPCRSelection(quote.AlgSHA256, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9)}
	vals, err := tpm.ReadPCRs(sels)
	if err != nil {
		t.Fatal(err)
	}
	pcrs := map[int][]byte{}
	for i, v := range vals[0] {
		pcrs[i] = v
	}
	ba, err := eventlog.BootAggregate(pcrs, digests.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	n.measure("boot_aggregate", ba)
	return n
}

// measure appends an ima-ng record for path with file digest d and extends
// its template digest into PCR 10 of the sha256 bank.
func (n *node) measure(path string, d []byte) {
	n.t.Helper()
	line := fmt.Sprintf("10 %s ima-ng sha256:%x %s", strings.Repeat("0", 40), d, path)
	e, err := imalog.ParseLine([]byte(line))
	if err != nil {
		n.t.Fatal(err)
	}
	data := e.AppendTemplateData(nil)
	th := sha1.Sum(data)
	line = fmt.Sprintf("10 %x ima-ng sha256:%x %s", th, d, path)
	bankDigest := sha256.Sum256(data)
	if err := n.tpm.Extend(quote.AlgSHA256, 10, bankDigest[:]); err != nil {
		n.t.Fatal(err)
	}
	n.ima = append(n.ima, line)
}

// round produces the evidence of one pull round from entry start.
func (n *node) round(nonce string, mask uint32, start int) Evidence {
	n.t.Helper()
	// The verifier requires the TPM clock to advance strictly between
	// rounds; the simulator's clock has millisecond resolution.
	time.Sleep(2 * time.Millisecond)
	q, err := n.ak.Quote([]byte(nonce), quote.SelectionFromMask(quote.AlgSHA256, mask))
	if err != nil {
		n.t.Fatal(err)
	}
	list := ""
	if start < len(n.ima) {
		list = strings.Join(n.ima[start:], "\n") + "\n"
	}
	return Evidence{Quote: q.String(), HashAlg: "sha256", IMAList: strings.NewReader(list), IMAStart: uint64(start)}
}

func fileDigest(s string) []byte { d := sha256.Sum256([]byte(s)); return d[:] }

func runtimePolicy(t *testing.T, files map[string]string) *ima.Policy {
	t.Helper()
	p := policygen.NewRuntimePolicy()
	for path, content := range files {
		p.Digests[path] = []string{hex.EncodeToString(fileDigest(content))}
	}
	c, err := ima.Compile(p, ima.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestVerifyRounds(t *testing.T) {
	n := newNode(t)
	n.measure("/usr/bin/bash", fileDigest("bash"))
	n.measure("/usr/bin/ls", fileDigest("ls"))
	pol := Policies{Runtime: runtimePolicy(t, map[string]string{"/usr/bin/bash": "bash", "/usr/bin/ls": "ls", "/usr/bin/cat": "cat"})}
	mask := pol.Mask(false)

	// Round 1: full list, trusted.
	r1 := Verify(n.ak.Key(), Challenge{Nonce: []byte("nonce1")}, n.round("nonce1", mask, 0), pol, State{}, Options{})
	if r1.Verdict != failure.VerdictTrusted {
		t.Fatalf("round 1: %v %v", r1.Verdict, r1.Failures)
	}
	if r1.Next.IMA.NextEntry != 3 || r1.Next.Clock == nil || r1.Next.Rounds != 1 {
		t.Fatalf("round 1 state: %+v", r1.Next)
	}

	// Round 2: only the new line is sent; still trusted.
	n.measure("/usr/bin/cat", fileDigest("cat"))
	r2 := Verify(n.ak.Key(), Challenge{Nonce: []byte("nonce2")}, n.round("nonce2", mask, 3), pol, r1.Next, Options{})
	if r2.Verdict != failure.VerdictTrusted || r2.IMA.Read != 1 || r2.Next.IMA.NextEntry != 4 {
		t.Fatalf("round 2: %v %v read=%d state=%+v", r2.Verdict, r2.Failures, r2.IMA.Read, r2.Next.IMA)
	}

	// Round 3: a binary not in the policy runs.
	n.measure("/tmp/evil", fileDigest("evil"))
	r3 := Verify(n.ak.Key(), Challenge{Nonce: []byte("nonce3")}, n.round("nonce3", mask, 4), pol, r2.Next, Options{})
	if r3.Verdict != failure.VerdictRejected || !hasID(r3.Failures, "ima.validation.ima-ng.not_in_allowlist") {
		t.Fatalf("round 3: %v %v", r3.Verdict, r3.Failures)
	}

	// Replaying round 2's evidence (same nonce as before) against a new
	// challenge fails the quote check and evaluates nothing else.
	old := n.round("nonce2", mask, 4)
	r4 := Verify(n.ak.Key(), Challenge{Nonce: []byte("nonce4")}, old, pol, r2.Next, Options{})
	if r4.Verdict == failure.VerdictTrusted || r4.Quote != nil || r4.IMA != nil {
		t.Fatalf("replayed quote: %v %v", r4.Verdict, r4.Failures)
	}
}

func TestVerifyFailures(t *testing.T) {
	n := newNode(t)
	n.measure("/usr/bin/bash", fileDigest("bash"))
	rt := runtimePolicy(t, map[string]string{"/usr/bin/bash": "bash"})
	other, err := n.tpm.NewAK(quotetest.ECDSAP256, quote.AlgSHA256)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.tpm.Extend(quote.AlgSHA256, 15, fileDigest("pcr15")); err != nil {
		t.Fatal(err)
	}
	pinned, err := ParseTPMPolicy([]byte(`{"15":["` + strings.Repeat("ab", 32) + `"]}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		ak      *quote.AK
		nonce   string
		ev      func() Evidence
		pol     Policies
		verdict failure.Verdict
		id      string
	}{
		{"no policy", n.ak.Key(), "n", func() Evidence { return n.round("n", 1<<10, 0) }, Policies{}, failure.VerdictError, IDNoPolicy},
		{"wrong AK", other.Key(), "n", func() Evidence { return n.round("n", 0x7ff, 0) }, Policies{Runtime: rt}, failure.VerdictRejected, failure.QuoteInvalid},
		{"wrong nonce", n.ak.Key(), "other", func() Evidence { return n.round("n", 0x7ff, 0) }, Policies{Runtime: rt}, failure.VerdictRejected, failure.QuoteInvalid},
		{"garbage quote", n.ak.Key(), "n", func() Evidence { return Evidence{Quote: "rAAAA:BB"} }, Policies{Runtime: rt}, failure.VerdictError, failure.QuoteMalformed},
		{"PCR 10 not quoted", n.ak.Key(), "n", func() Evidence { return n.round("n", 0x3ff, 0) }, Policies{Runtime: rt}, failure.VerdictRejected, failure.PCRMissing},
		{"no IMA list", n.ak.Key(), "n", func() Evidence { e := n.round("n", 0x7ff, 0); e.IMAList = nil; return e }, Policies{Runtime: rt}, failure.VerdictError, IDNoIMAList},
		{"tpm policy mismatch", n.ak.Key(), "n", func() Evidence { return n.round("n", 1<<15, 0) }, Policies{TPM: pinned}, failure.VerdictRejected, failure.InvalidPCR(15)},
		{"mb log not what the TPM holds", n.ak.Key(), "n", func() Evidence {
			e := n.round("n", Policies{MB: acceptAll{}}.Mask(false), 0)
			e.MBLog = secureBootLog(t)
			return e
		}, Policies{MB: acceptAll{}}, failure.VerdictRejected, failure.MBInvalidPCR(0)},
		{"mb log garbage", n.ak.Key(), "n", func() Evidence {
			e := n.round("n", Policies{MB: acceptAll{}}.Mask(false), 0)
			e.MBLog = []byte("not an event log")
			return e
		}, Policies{MB: acceptAll{}}, failure.VerdictError, failure.MBParser},
		{"mb policy without log", n.ak.Key(), "n", func() Evidence { return n.round("n", Policies{MB: acceptAll{}}.Mask(false), 0) }, Policies{MB: acceptAll{}}, failure.VerdictError, IDMBNoLog},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Verify(tt.ak, Challenge{Nonce: []byte(tt.nonce)}, tt.ev(), tt.pol, State{}, Options{})
			if r.Verdict != tt.verdict || !hasID(r.Failures, tt.id) {
				t.Fatalf("verdict %v failures %v; want %v with %s", r.Verdict, r.Failures, tt.verdict, tt.id)
			}
		})
	}
}

// acceptAll is an MB evaluator with no rules, for tests of the replay
// itself (the refstate engine lives in verifier/mb).
type acceptAll struct{}

func (acceptAll) EvaluateMB(*eventlog.Verified) failure.List { return nil }

func hasID(l failure.List, id string) bool {
	for _, f := range l {
		if f.ID == id {
			return true
		}
	}
	return false
}

func TestVerifyRebootMidList(t *testing.T) {
	n := newNode(t)
	n.measure("/usr/bin/bash", fileDigest("bash"))
	pol := Policies{Runtime: runtimePolicy(t, map[string]string{"/usr/bin/bash": "bash"})}
	r1 := Verify(n.ak.Key(), Challenge{Nonce: []byte("a")}, n.round("a", pol.Mask(false), 0), pol, State{}, Options{})
	if r1.Verdict != failure.VerdictTrusted {
		t.Fatal(r1.Failures)
	}
	if err := n.tpm.Reboot(); err != nil {
		t.Fatal(err)
	}
	n.ima = nil
	// The verifier asks for entry 2; a rebooted agent answers with what it
	// has from there. The round cannot be evaluated: error, not rejection,
	// and the next round starts over.
	ev := n.round("b", pol.Mask(false), 2)
	r2 := Verify(n.ak.Key(), Challenge{Nonce: []byte("b")}, ev, pol, r1.Next, Options{})
	if !r2.Rebooted || r2.Verdict != failure.VerdictError || !hasID(r2.Failures, failure.IMAInvalidEntryNB) || r2.Next.IMA.NextEntry != 0 {
		t.Fatalf("reboot mid-list: rebooted=%v %v %v next=%d", r2.Rebooted, r2.Verdict, r2.Failures, r2.Next.IMA.NextEntry)
	}
}

func secureBootLog(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../fixtures/eventlog/binary_bios_measurements-secureboot")
	if err != nil {
		t.Fatal(err)
	}
	return b
}
