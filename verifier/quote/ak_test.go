package quote_test

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"strings"
	"testing"

	"github.com/zest-attest/zest/verifier/quote"
)

// objectVectors is fixtures/keylime/tpm2-objects-vectors.json: TPM2B_PUBLIC
// blobs with the values Keylime's own tests expect.
type objectVector struct {
	B64        string `json:"tpm2b_public_b64"`
	Hex        string `json:"tpm2b_public_hex"`
	Name       string `json:"name_hex"`
	Attributes uint32 `json:"attributes"`
	N          string `json:"n"`
	E          int    `json:"e"`
	X          string `json:"x"`
	Y          string `json:"y"`
}

func loadObjectVectors(t testing.TB) map[string]objectVector {
	t.Helper()
	b, err := os.ReadFile("../../fixtures/keylime/tpm2-objects-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	out := map[string]objectVector{}
	for k, m := range raw {
		if k == "description" {
			continue
		}
		var v objectVector
		if err := json.Unmarshal(m, &v); err != nil {
			t.Fatal(err)
		}
		out[k] = v
	}
	return out
}

func (v objectVector) bytes(t testing.TB) []byte {
	if v.B64 != "" {
		b, err := base64.StdEncoding.DecodeString(v.B64)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b, err := hex.DecodeString(v.Hex)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseAKKeylimeVectors(t *testing.T) {
	vecs := loadObjectVectors(t)
	tests := []struct {
		vector string
		isAK   bool // passes CheckAttributes
	}{
		{"ak_rsa_named", true},
		{"ak_rsa_modulus", true},
		{"ak_ecc_p256", true},
		{"ek_rsa", false}, // restricted decrypt key: not an AK
		{"ek_ecc_p256", false},
		{"registrar_docs_aik", true},
	}
	for _, tt := range tests {
		t.Run(tt.vector, func(t *testing.T) {
			v, ok := vecs[tt.vector]
			if !ok {
				t.Fatal("missing vector")
			}
			raw := v.bytes(t)
			ak, err := quote.ParseAK(raw)
			if err != nil {
				t.Fatal(err)
			}
			// A bare TPMT_PUBLIC parses to the same key.
			bare, err := quote.ParseAK(raw[2:])
			if err != nil || bare.Key == nil || string(bare.TPMPublic) != string(ak.TPMPublic) {
				t.Errorf("bare TPMT_PUBLIC: %v", err)
			}
			if v.Name != "" {
				name, err := ak.Name()
				if err != nil || hex.EncodeToString(name) != v.Name {
					t.Errorf("Name = %x, %v; want %s", name, err, v.Name)
				}
			}
			if v.Attributes != 0 && ak.Attributes != v.Attributes {
				t.Errorf("attributes 0x%08x, want 0x%08x", ak.Attributes, v.Attributes)
			}
			if err := ak.CheckAttributes(); (err == nil) != tt.isAK {
				t.Errorf("CheckAttributes = %v", err)
			}
			if v.N != "" {
				k := ak.Key.(*rsa.PublicKey)
				n, _ := new(big.Int).SetString(v.N, 10)
				if k.N.Cmp(n) != 0 || k.E != v.E {
					t.Errorf("RSA key differs")
				}
			}
			if v.X != "" {
				k := ak.Key.(*ecdsa.PublicKey)
				x, _ := new(big.Int).SetString(v.X, 10)
				y, _ := new(big.Int).SetString(v.Y, 10)
				der, _ := x509.MarshalPKIXPublicKey(k)
				pub, _ := x509.ParsePKIXPublicKey(der)
				e := pub.(*ecdsa.PublicKey)
				if e.Curve.Params().Name != "P-256" || e.X.Cmp(x) != 0 || e.Y.Cmp(y) != 0 {
					t.Errorf("ECC key differs")
				}
			}
			// Every truncation is an error, never a panic.
			for i := 0; i < len(raw)-2; i++ {
				if _, err := quote.ParseTPMPublic(raw[2:][:i]); err == nil {
					t.Fatalf("truncated to %d bytes parses", i)
				}
			}
		})
	}
}

func TestParseAKForms(t *testing.T) {
	v, _, _, _ := loadVector(t)
	pemAK, err := quote.ParseAK([]byte(v.AKPEM))
	if err != nil {
		t.Fatal(err)
	}
	if pemAK.TPMPublic != nil || pemAK.CheckAttributes() != nil {
		t.Error("a PEM key has no TPM public area and no attributes to check")
	}
	if _, err := pemAK.Name(); err == nil {
		t.Error("a PEM key has no TPM Name")
	}
	blk, _ := pem.Decode([]byte(v.AKPEM))
	derAK, err := quote.ParseAK(blk.Bytes)
	if err != nil || !derAK.Key.(*rsa.PublicKey).Equal(pemAK.Key) {
		t.Errorf("DER: %v", err)
	}
	bad := []struct{ name, in string }{
		{"certificate PEM", strings.Replace(v.AKPEM, "PUBLIC KEY", "CERTIFICATE", 2)},
		{"trailing data", v.AKPEM + "\nextra"},
		{"broken PEM", "-----BEGIN PUBLIC KEY-----\n!!\n"},
		{"empty", ""},
		{"junk DER", "\x30\x03\x02\x01\x01"},
		{"unknown TPM type", "\x00\x08\x00\x25\x00\x0b\x00\x05\x00\x72"},
	}
	for _, b := range bad {
		if _, err := quote.ParseAK([]byte(b.in)); err == nil {
			t.Errorf("%s: parses", b.name)
		}
	}
}
