package imasig

import (
	"encoding/hex"
	"testing"
)

// Per-record cost of checking an ima-sig entry, the verifier's hot path.
func BenchmarkVerify(b *testing.B) {
	for _, tc := range []struct{ sig, key string }{
		{"hello.rsa2048.sha256.ima", "rsa2048.pub.pem"},
		{"hello.ec-p256.sha256.ima", "ec-p256.pub.pem"},
	} {
		b.Run(tc.key, func(b *testing.B) {
			var r Keyring
			if err := r.Add(loadKey(b, keysDir+tc.key)); err != nil {
				b.Fatal(err)
			}
			raw := readFile(b, sigsDir+tc.sig)
			digest, _ := hex.DecodeString(helloDigests[HashSHA256])
			for b.Loop() {
				sig, err := ParseSignature(raw)
				if err != nil {
					b.Fatal(err)
				}
				if err := r.Verify(sig, digest); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseKeyring(b *testing.B) {
	doc := string(readFile(b, fixtures+"imasig/keylime/keyring.json"))
	for b.Loop() {
		if _, err := ParseKeyring(doc); err != nil {
			b.Fatal(err)
		}
	}
}
