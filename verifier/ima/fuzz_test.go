package ima

import (
	"os"
	"strings"
	"testing"

	"github.com/zest-attest/zest/digests"
	"github.com/zest-attest/zest/digests/imalog"
	"github.com/zest-attest/zest/verifier/failure"
)

// FuzzEvaluate: arbitrary list text never panics, and a list holding a line
// the parser rejects is never trusted, whatever the quote says. The quote is
// the replay of the lines that do parse, so the fuzzer reaches the policy
// checks instead of stopping at a PCR mismatch.
func FuzzEvaluate(f *testing.F) {
	for _, p := range []string{"ima/verifier/lines.txt", "ima/verifier/violation.txt", "ima/vectors.txt", "imasig/keylime/ima-sig.txt"} {
		b, err := os.ReadFile(fix + p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(0))
		f.Add(b, uint8(3))
	}
	f.Add([]byte("10 zz ima-ng sha256:00 /x\n"), uint8(0))
	f.Add([]byte("\n\n 9 0000000000000000000000000000000000000000 ima-sig sha1:00 /x \n"), uint8(1))

	f.Fuzz(func(t *testing.T, data []byte, quoteAt uint8) { fuzzOne(t, data, quoteAt) })
}

var fuzzPolicy = func() *Policy {
	p, err := Compile(basePolicy(), Options{AllowAnyLearnedKeyring: true})
	if err != nil {
		panic(err)
	}
	return p
}()

func fuzzOne(t *testing.T, data []byte, quoteAt uint8) {
	if len(data) > 1<<16 {
		return
	}
	var good []string
	malformed := false
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSuffix(l, "\r")
		if l == "" {
			continue
		}
		if _, err := imalog.ParseLine([]byte(l)); err != nil {
			malformed = true
			continue
		}
		good = append(good, l)
	}
	n := min(int(quoteAt), len(good))
	r := sameAsSequential(t, fuzzPolicy, State{}, Input{
		PCR10: map[digests.Algorithm][]byte{digests.SHA256: replayLines(t, digests.SHA256, good[:n])}}, data)
	if malformed && r.Verdict == failure.VerdictTrusted {
		t.Fatalf("malformed input trusted: %q\n%s", data, dump(r))
	}
	if r.Verdict != failure.VerdictTrusted && r.State.NextEntry != 0 {
		t.Fatalf("state kept after failure: %+v", r.State)
	}
	if r.Consumed > r.Read || r.Pending != r.Read-r.Consumed {
		t.Fatalf("counts: read %d consumed %d pending %d", r.Read, r.Consumed, r.Pending)
	}
}
