package archive

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/zest-attest/zest/verifier/failure"
)

// FuzzRecordDecode: stored record bodies are untrusted; decoding never
// panics and what decodes re-encodes to the same canonical bytes.
func FuzzRecordDecode(f *testing.F) {
	s := testSigner(f, "ed25519")
	f.Add([]byte(registration(f, s, "a1", t0).Record.Body), "registration")
	f.Add([]byte(round(f, s, "a1", 3, t0, 6, 3, failure.VerdictRejected).Record.Body), "round")
	f.Add([]byte(`{"type":"zest.archive.round/v1"}`), "round")
	f.Fuzz(func(t *testing.T, body []byte, kind string) {
		r := &Record{Kind: Kind(kind), Body: body}
		v, err := r.decode()
		if err != nil {
			// Index fields may disagree; decode with them taken from the body.
			return
		}
		b, err := MarshalCanonical(v)
		if err != nil || string(b) != string(body) {
			t.Fatalf("decoded body does not re-encode: %v\n%s\n%s", err, body, b)
		}
	})
}

// FuzzOpenCheckpoint: checkpoints come from logs and bundles.
func FuzzOpenCheckpoint(f *testing.F) {
	skey, vkey, _ := note.GenerateKey(nil, "zest.test")
	signer, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	msg, _ := note.Sign(&note.Note{Text: "zest.test/log\n3\n" + "rra8/idLcKFPsGel5VeCZNsPqbUa9eC6FZFY8yngbnc=\n"}, signer)
	f.Add(msg)
	f.Add([]byte("zest.test/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n— zest.test AAAA\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cp, err := OpenCheckpoint(b, "zest.test/log", v)
		if err == nil && (cp.Size < 0 || len(cp.Root) != 32) {
			t.Fatalf("bad checkpoint accepted: %+v", cp)
		}
	})
}

// FuzzVerifyProof: a stored proof is untrusted JSON; verifying it never
// panics, and a mutated proof of a real record never verifies unless it
// is semantically the same proof.
func FuzzVerifyProof(f *testing.F) {
	dir := f.TempDir()
	l, err := OpenLocalLog(dir, "zest.fuzz/log")
	if err != nil {
		f.Fatal(err)
	}
	defer l.Close()
	s := testSigner(f, "ecdsa-p256")
	var recs []*Record
	for i := uint64(1); i <= 5; i++ {
		recs = append(recs, round(f, s, "a1", i, t0.Add(time.Duration(i)*time.Second), 0, 1, failure.VerdictTrusted).Record)
	}
	ps, err := l.SubmitBatch(f.Context(), recs)
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range ps {
		b, _ := json.Marshal(p)
		f.Add(b)
	}
	keys := []LogKey{l.Key()}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Proof
		if json.Unmarshal(b, &p) != nil {
			return
		}
		for _, r := range recs {
			if VerifyProof(&p, r, keys) == nil {
				// Only the genuine entry of r can verify.
				if string(p.Entry) != string(LocalEntry(r)) || len(rfc6962.DefaultHasher.HashLeaf(p.Entry)) != 32 {
					t.Fatal("forged proof verified")
				}
			}
		}
	})
}
