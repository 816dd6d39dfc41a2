package dsse

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"testing"
)

// bigPolicy is a runtime policy with n digest entries, shaped like the output
// of `keylime-policy create runtime` for a full distribution.
func bigPolicy(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"meta": {"version": 1, "generator": 3, "timestamp": "2024-10-09 18:47:35.306609"}, "release": 0, "digests": {`)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, `"/usr/lib64/pkg%05d/lib%d.so.%d": ["%064x"]`, i/50, i, i%7, i*7919)
	}
	b.WriteString(`}, "excludes": [], "keyrings": {}, "ima": {"ignored_keyrings": [], "log_hash_alg": "sha1", "dm_policy": null}, "ima-buf": {}, "verification-keys": ""}`)
	return b.Bytes()
}

// Baseline: encoding/json's Compact, a validating scan and copy of the same
// document. PythonJSON should stay within a small factor of it.
func BenchmarkPythonJSON(b *testing.B) {
	doc := bigPolicy(100_000)
	b.Run("PythonJSON", func(b *testing.B) {
		b.SetBytes(int64(len(doc)))
		for b.Loop() {
			if _, err := PythonJSON(doc); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline-json.Compact", func(b *testing.B) {
		b.SetBytes(int64(len(doc)))
		var out bytes.Buffer
		for b.Loop() {
			out.Reset()
			if err := json.Compact(&out, doc); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkSignVerify(b *testing.B) {
	doc := bigPolicy(100_000)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	s, _ := NewECDSASigner(k)
	env, err := SignJSON(doc, s)
	if err != nil {
		b.Fatal(err)
	}
	data := env.MarshalKeylime()
	b.Run("SignJSON", func(b *testing.B) {
		b.SetBytes(int64(len(doc)))
		for b.Loop() {
			if _, err := SignJSON(doc, s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ParseEnvelope+Verify", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			e, err := ParseEnvelope(data)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := Verify(e, &k.PublicKey); err != nil {
				b.Fatal(err)
			}
		}
	})
}
