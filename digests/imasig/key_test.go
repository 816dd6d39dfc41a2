package imasig

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const (
	fixtures    = "../../fixtures/"
	keysDir     = fixtures + "imasig/keys/"
	keylimeKeys = fixtures + "keylime/ima_keys/"
)

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// opensslKeyIDs reads fixtures/imasig/keyids.txt: keyids computed by gen.sh
// with openssl and sha1sum (or read from the certificate's SKID by openssl).
func opensslKeyIDs(t testing.TB) map[string]uint32 {
	t.Helper()
	f, err := os.Open(fixtures + "imasig/keyids.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ids := map[string]uint32{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		name, hexid, ok := strings.Cut(s.Text(), " ")
		if !ok {
			t.Fatalf("keyids.txt: bad line %q", s.Text())
		}
		v, err := strconv.ParseUint(hexid, 16, 32)
		if err != nil {
			t.Fatalf("keyids.txt: %v", err)
		}
		ids[name] = uint32(v)
	}
	if len(ids) < 30 {
		t.Fatalf("keyids.txt has only %d entries", len(ids))
	}
	return ids
}

func TestLoadKeyOpenSSLFixtures(t *testing.T) {
	for name, want := range opensslKeyIDs(t) {
		t.Run(name, func(t *testing.T) {
			k, err := LoadKey(readFile(t, keysDir+name))
			if err != nil {
				t.Fatal(err)
			}
			if k.KeyID != want {
				t.Errorf("KeyID = %08x, openssl says %08x", k.KeyID, want)
			}
			if isCert := strings.Contains(name, ".crt."); k.FromCert != isCert {
				t.Errorf("FromCert = %v, want %v", k.FromCert, isCert)
			}
			// Every encoding of one key must give the same public key as
			// the plain openssl PEM SPKI of that key.
			base := strings.SplitN(name, ".", 2)[0]
			base = strings.Split(base, "-skid")[0]
			base = strings.TrimSuffix(base, "-noskid")
			ref, err := LoadKey(readFile(t, keysDir+base+".pub.pem"))
			if err != nil {
				t.Fatal(err)
			}
			a, _ := spkiOf(k.Public)
			b, _ := spkiOf(ref.Public)
			if !bytes.Equal(a, b) {
				t.Errorf("public key differs from %s.pub.pem", base)
			}
		})
	}
}

// Values from shared/reference: keylime-runtime-policy.md §9.4 and ima.md
// §13.5 (computed with pyca/cryptography and evmctl).
func TestLoadKeyKeylimeFixtures(t *testing.T) {
	tests := []struct {
		file     string
		keyid    uint32
		fromCert bool
		curve    elliptic.Curve // nil for RSA
	}{
		{keylimeKeys + "rsa2048.pem", 0xf3452d23, false, nil},
		{keylimeKeys + "rsa2048pub.pem", 0xf3452d23, false, nil},
		{fixtures + "imasig/keylime/ima-buf-ecdsa-ca-signed.crt.der", 0x2cb6058c, true, elliptic.P256()},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			k, err := LoadKey(readFile(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if k.KeyID != tt.keyid || k.FromCert != tt.fromCert {
				t.Errorf("got keyid %08x fromCert %v, want %08x %v", k.KeyID, k.FromCert, tt.keyid, tt.fromCert)
			}
			switch pub := k.Public.(type) {
			case *rsa.PublicKey:
				if tt.curve != nil || pub.N.BitLen() != 2048 {
					t.Errorf("unexpected RSA key of %d bits", pub.N.BitLen())
				}
			case *ecdsa.PublicKey:
				if pub.Curve != tt.curve {
					t.Errorf("curve %s", pub.Curve.Params().Name)
				}
			}
		})
	}
}

func TestLoadKeyUnsupported(t *testing.T) {
	tests := []struct{ file, typ string }{
		{keylimeKeys + "secp256k1.pem", "ecdsa secp256k1"},
		{keysDir + "secp256k1.pub.pem", "ecdsa secp256k1"},
		{keysDir + "secp256k1.crt.pem", "ecdsa secp256k1"},
		{keysDir + "ed25519.pem", "ed25519"},
		{keysDir + "ed25519.pub.pem", "ed25519"},
		{keysDir + "ed25519.crt.pem", "ed25519"},
		{keysDir + "ed448.pem", "ed448"},
		{keysDir + "x25519.pem", "x25519"},
		{keysDir + "dsa.pem", "dsa"},
		{keysDir + "dsa.pub.pem", "dsa"},
		{keysDir + "ec-p224.pem", "ecdsa P-224"},
		{keysDir + "ec-p224.pub.pem", "ecdsa P-224"},
		{keysDir + "brainpool.pem", "ecdsa brainpoolP256r1"},
		{keysDir + "brainpool.pub.pem", "ecdsa brainpoolP256r1"},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.file), func(t *testing.T) {
			_, err := LoadKey(readFile(t, tt.file))
			var u *UnsupportedKeyError
			if !errors.As(err, &u) {
				t.Fatalf("err = %v, want UnsupportedKeyError", err)
			}
			if u.Type != tt.typ {
				t.Errorf("Type = %q, want %q", u.Type, tt.typ)
			}
		})
	}
	_, err := LoadKey(readFile(t, keysDir+"ed25519.pub.pem"))
	const want = "unsupported key type ed25519: IMA verification keys must be RSA or ECDSA P-256/384/521"
	if err == nil || err.Error() != want {
		t.Errorf("message = %q, want %q", err, want)
	}
}

func TestLoadKeyErrors(t *testing.T) {
	rsaPEM := readFile(t, keylimeKeys+"rsa2048pub.pem")
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "empty key file"},
		{"text", "hello world\n", "not a DER or PEM"},
		{"truncated DER", string(readFile(t, keysDir+"rsa2048.pub.der")[:100]), "not a DER or PEM"},
		{"encrypted", string(readFile(t, keysDir+"rsa2048.encrypted.pem")), "encrypted"},
		{"only parameters", "-----BEGIN EC PARAMETERS-----\nBgUrgQQACg==\n-----END EC PARAMETERS-----\n", `PEM blocks "EC PARAMETERS"`},
		{"bad PEM body", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", `PEM "PUBLIC KEY"`},
		{"broken cert", strings.Replace(string(rsaPEM), "PUBLIC KEY", "CERTIFICATE", 2), `PEM "CERTIFICATE"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := LoadKey([]byte(tt.in))
			if err == nil {
				t.Fatalf("loaded %+v", k)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

// Keylime's order: a certificate in a PEM file wins over a key next to it,
// and an "EC PARAMETERS" block in front of a key is skipped.
func TestLoadKeyPEMOrder(t *testing.T) {
	key := readFile(t, keylimeKeys+"rsa2048.pem")
	cert := readFile(t, keysDir+"rsa2048-skid-custom.crt.pem")
	k, err := LoadKey(append(append([]byte{}, key...), cert...))
	if err != nil {
		t.Fatal(err)
	}
	if !k.FromCert || k.KeyID != 0x12345678 {
		t.Errorf("key+cert: got keyid %08x fromCert %v, want the certificate's", k.KeyID, k.FromCert)
	}
	params := "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
	k, err = LoadKey(append([]byte(params), readFile(t, keysDir+"ec-p256.pem")...))
	if err != nil {
		t.Fatal(err)
	}
	if want := opensslKeyIDs(t)["ec-p256.pem"]; k.KeyID != want {
		t.Errorf("keyid %08x, want %08x", k.KeyID, want)
	}
}

func TestKeyIDv2Unsupported(t *testing.T) {
	if _, err := KeyIDv2("not a key"); err == nil {
		t.Error("KeyIDv2 accepted a string")
	}
	if _, err := KeyIDv2((*rsa.PublicKey)(nil)); err == nil {
		t.Error("KeyIDv2 accepted a nil key")
	}
}
