package imasig

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func addFiles(f *testing.F, patterns ...string) {
	for _, p := range patterns {
		files, err := filepath.Glob(p)
		if err != nil || len(files) == 0 {
			f.Fatalf("no seed files for %s", p)
		}
		for _, file := range files {
			f.Add(readFile(f, file))
		}
	}
}

func FuzzLoadKey(f *testing.F) {
	addFiles(f, keysDir+"*", keylimeKeys+"*", fixtures+"imasig/keylime/*.der")
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := LoadKey(data)
		if err != nil {
			return
		}
		// Whatever loads must be usable in a keyring and survive its
		// serialisation.
		var r Keyring
		if err := r.Add(k); err != nil {
			t.Fatalf("loaded key not addable: %v", err)
		}
		r2, err := ParseKeyring(r.String())
		if err != nil {
			t.Fatalf("keyring of a loaded key does not parse: %v", err)
		}
		if r2.String() != r.String() || len(r2.Lookup(k.KeyID)) != 1 {
			t.Fatal("keyring round trip changed")
		}
	})
}

func FuzzParseSignature(f *testing.F) {
	addFiles(f, sigsDir+"*.ima")
	file, err := os.Open(fixtures + "imasig/keylime/ima-sig.txt")
	if err != nil {
		f.Fatal(err)
	}
	s := bufio.NewScanner(file)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) == 6 {
			b, _ := hex.DecodeString(fields[5])
			f.Add(b)
		}
	}
	file.Close()
	var r Keyring
	for _, k := range []string{"rsa2048.pub.pem", "ec-p256.pub.pem", "ec-p384.pub.pem"} {
		_ = r.Add(loadKey(f, keysDir+k))
	}
	digest := make([]byte, 64)
	f.Fuzz(func(t *testing.T, b []byte) {
		sig, err := ParseSignature(b)
		if err != nil {
			return
		}
		out, err := sig.MarshalBinary()
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("MarshalBinary = %x, %v; want %x", out, err, b)
		}
		if h, ok := sig.HashAlgo.Hash(); ok {
			if r.Verify(sig, digest[:h.Size()]) == nil {
				t.Fatal("a fuzzed signature verified over a zero digest")
			}
		}
	})
}

func FuzzParseKeyring(f *testing.F) {
	addFiles(f, fixtures+"imasig/keylime/keyring*.json")
	f.Add([]byte(`{"pubkeys": [], "keyids": []}`))
	f.Add([]byte(`"{\"pubkeys\": [\"` + keylimeRSA + `\"]}"`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		r, err := ParseKeyring(string(doc))
		if err != nil {
			return
		}
		s := r.String()
		r2, err := ParseKeyring(s)
		if err != nil {
			t.Fatalf("String() output does not parse: %v\n%s", err, s)
		}
		if r2.String() != s {
			t.Fatalf("round trip changed:\n%s\n%s", s, r2.String())
		}
	})
}
