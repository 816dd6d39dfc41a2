package dsse

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestX509Signer(t *testing.T) {
	for _, c := range []elliptic.Curve{elliptic.P256(), elliptic.P521()} {
		t.Run(c.Params().Name, func(t *testing.T) {
			priv, _ := ecdsa.GenerateKey(c, rand.Reader)
			now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
			s, certPEM, err := newX509Signer(priv, now)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(certPEM, s.CertificatePEM()) || s.KeyID() != base64.StdEncoding.EncodeToString(certPEM) {
				t.Fatal("keyid is not base64 of the certificate PEM")
			}
			b, rest := pem.Decode(certPEM)
			if b == nil || b.Type != "CERTIFICATE" || len(rest) != 0 {
				t.Fatal("certificate PEM malformed")
			}
			cert, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			// Keylime's x509.Signer.construct, attribute by attribute.
			if cert.Subject.String() != "CN=dsse_lib" || cert.Issuer.String() != "CN=dsse_lib" {
				t.Errorf("subject %s issuer %s", cert.Subject, cert.Issuer)
			}
			if len(cert.DNSNames) != 1 || cert.DNSNames[0] != "dsse_lib" {
				t.Errorf("SAN %v", cert.DNSNames)
			}
			if !cert.NotBefore.Equal(now.Add(-24*time.Hour)) || !cert.NotAfter.Equal(now.Add(30*24*time.Hour)) {
				t.Errorf("validity %s .. %s", cert.NotBefore, cert.NotAfter)
			}
			if cert.SignatureAlgorithm != x509.ECDSAWithSHA256 {
				t.Errorf("signature algorithm %s", cert.SignatureAlgorithm)
			}
			if cert.SerialNumber.Sign() <= 0 || cert.SerialNumber.Cmp(new(big.Int).Lsh(big.NewInt(1), 159)) >= 0 {
				t.Errorf("serial %s", cert.SerialNumber)
			}
			var bc, san int
			for _, e := range cert.Extensions {
				switch {
				case e.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 19}):
					bc++
					var v struct {
						IsCA bool `asn1:"optional"`
					}
					if _, err := asn1.Unmarshal(e.Value, &v); err != nil || v.IsCA || !e.Critical {
						t.Errorf("basicConstraints critical=%v CA=%v (%v)", e.Critical, v.IsCA, err)
					}
				case e.Id.Equal(asn1.ObjectIdentifier{2, 5, 29, 17}):
					san++
					if e.Critical {
						t.Error("SAN is critical; Keylime's is not")
					}
				}
			}
			if bc != 1 || san != 1 || len(cert.Extensions) != 2 {
				t.Errorf("%d extensions (bc %d, san %d); Keylime's certificate has exactly those two", len(cert.Extensions), bc, san)
			}
			if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil {
				t.Errorf("not self-signed: %v", err)
			}

			env, err := Sign([]byte(`{"a": 1}`), s)
			if err != nil {
				t.Fatal(err)
			}
			// Trusted only through roots.
			roots := x509.NewCertPool()
			roots.AddCert(cert)
			payload, got, err := VerifyX509(env, roots)
			if err != nil || string(payload) != `{"a": 1}` || !got.Equal(cert) {
				t.Fatalf("VerifyX509 with its own certificate as root: %v", err)
			}
			if _, _, err := VerifyX509(env, x509.NewCertPool()); !errors.Is(err, ErrVerification) {
				t.Errorf("empty roots: %v, want ErrVerification", err)
			}
			if _, _, err := VerifyX509(env, nil); err == nil {
				t.Error("nil roots accepted")
			}
			if _, err := Verify(env, cert); err != nil {
				t.Errorf("Verify with the certificate: %v", err)
			}
			// Anyone can make a self-signed dsse_lib certificate: an
			// attacker's envelope must not verify against the real root.
			evil, _ := ecdsa.GenerateKey(c, rand.Reader)
			es, _, err := newX509Signer(evil, now)
			if err != nil {
				t.Fatal(err)
			}
			forged, _ := Sign([]byte(`{"a": 2}`), es)
			if _, _, err := VerifyX509(forged, roots); !errors.Is(err, ErrVerification) {
				t.Errorf("forged envelope: %v, want ErrVerification", err)
			}
			// A trusted certificate in the keyid does not make another key's
			// signature valid.
			spliced := *forged
			spliced.Signatures = []Signature{{KeyID: s.KeyID(), Sig: forged.Signatures[0].Sig}}
			if _, _, err := VerifyX509(&spliced, roots); !errors.Is(err, ErrVerification) {
				t.Errorf("spliced keyid: %v, want ErrVerification", err)
			}
		})
	}
}

// A certificate issued by a CA chains; an expired-now Keylime certificate
// still verifies because validity is checked at its NotBefore.
func TestVerifyX509Chain(t *testing.T) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkixName("zest test CA"),
		NotBefore: time.Now().Add(-400 * 24 * time.Hour), NotAfter: time.Now().Add(400 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkixName("policy signer"),
		NotBefore: time.Now().Add(-100 * 24 * time.Hour), NotAfter: time.Now().Add(-70 * 24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	leafPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER})
	s, _ := NewECDSASigner(leafKey)
	env, _ := Sign([]byte("{}"), s)
	env.Signatures[0].KeyID = base64.StdEncoding.EncodeToString(leafPEM)
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, _, err := VerifyX509(env, roots); err != nil {
		t.Errorf("CA-issued, now expired: %v", err)
	}
	// An ecdsa-backend keyid is not a certificate.
	env2, _ := Sign([]byte("{}"), s)
	if _, _, err := VerifyX509(env2, roots); !errors.Is(err, ErrVerification) || !strings.Contains(err.Error(), "keyid") {
		t.Errorf("ecdsa keyid: %v", err)
	}
}

func pkixName(cn string) pkix.Name { return pkix.Name{CommonName: cn} }

func TestLoadPrivateKey(t *testing.T) {
	tests := []struct {
		file, want string // want: "ecdsa", "rsa" or an error fragment
	}{
		{signDir + "ec-p521-private.pem", "ecdsa"},
		{signDir + "rsa-4096-private.pem", "rsa"},
		{osslDir + "ec-p256.pem", "ecdsa"},
		{osslDir + "rsa2048.pem", "rsa"},
		{fixtures + "imasig/keys/rsa2048.pkcs1.pem", "rsa"},
		{fixtures + "imasig/keys/ec-p384.pkcs8.pem", "ecdsa"},
		{fixtures + "imasig/keys/ed25519.pem", "found a ed25519 private key"},
		{fixtures + "imasig/keys/rsa2048.encrypted.pem", "encrypted"},
		{fixtures + "keylime/ima_keys/secp256k1.pem", `PEM "EC PRIVATE KEY"`},
		{signDir + "ec-p521-public.pem", `found PEM "PUBLIC KEY"`},
		{signDir + "runtime-policy.json", "no PEM block"},
	}
	for _, tt := range tests {
		t.Run(tt.file[strings.LastIndex(tt.file, "/")+1:], func(t *testing.T) {
			k, err := LoadPrivateKey(readFile(t, tt.file))
			if tt.want == "ecdsa" || tt.want == "rsa" {
				if err != nil {
					t.Fatal(err)
				}
				if keyType(k) != tt.want {
					t.Errorf("got %s", keyType(k))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestLoadPublicKey(t *testing.T) {
	der, _ := pem.Decode(readFile(t, osslDir+"ec-p384.pub.pem"))
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"keylime pub", readFile(t, keylime+"runtime-policy-pubkey.pub"), "ecdsa"},
		{"DER SPKI", der.Bytes, "ecdsa"},
		{"certificate", readFile(t, osslDir+"ec-p256.crt.pem"), "ecdsa"},
		{"DER certificate", readFile(t, fixtures+"imasig/keys/rsa2048-skid-custom.crt.der"), "rsa"},
		{"PKCS#1 PEM", readFile(t, fixtures+"imasig/keys/rsa2048.pkcs1pub.pem"), "rsa"},
		{"PKCS#1 DER", readFile(t, fixtures+"imasig/keys/rsa2048.pkcs1pub.der"), "rsa"},
		{"private key", readFile(t, signDir+"ec-p521-private.pem"), "found a private key"},
		{"ed25519", readFile(t, fixtures+"imasig/keys/ed25519.pub.pem"), "found a ed25519 public key"},
		{"parameters only", []byte("-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"), `found PEM "EC PARAMETERS"`},
		{"garbage", []byte("hello"), "not a PEM or DER"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := LoadPublicKey(tt.in)
			if tt.want == "ecdsa" || tt.want == "rsa" {
				if err != nil {
					t.Fatal(err)
				}
				if keyType(k) != tt.want {
					t.Errorf("got %s", keyType(k))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestNewSignerRefuses(t *testing.T) {
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	if _, err := NewRSASigner(small); err == nil {
		t.Error("1024-bit RSA accepted")
	}
	if _, err := NewECDSASigner(nil); err == nil {
		t.Error("nil key accepted")
	}
	if _, err := Sign(nil, nil); err == nil {
		t.Error("nil signer accepted")
	}
}

// x509-backend envelopes from gen.sh: one with an openssl certificate, one
// made with pyca/cryptography the way Keylime's x509.Signer does it.
func TestX509Fixtures(t *testing.T) {
	tests := []struct{ env, cert string }{
		{"ec-p256-x509.json", "ec-p256.crt.pem"},
		{"p521-x509-pyca.json", "p521-x509-pyca.crt.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			env, err := ParseEnvelope(readFile(t, osslDir+tt.env))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := pem.Decode(readFile(t, osslDir+tt.cert))
			cert, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			roots := x509.NewCertPool()
			roots.AddCert(cert)
			payload, got, err := VerifyX509(env, roots)
			if err != nil || !got.Equal(cert) || !bytes.Equal(payload, readFile(t, osslDir+"payload.json")) {
				t.Fatalf("VerifyX509: %v", err)
			}
			if _, _, err := VerifyX509(env, x509.NewCertPool()); !errors.Is(err, ErrVerification) {
				t.Errorf("untrusted certificate: %v, want ErrVerification", err)
			}
		})
	}

	// zest's certificate carries what pyca/cryptography's Keylime-style one
	// carries, for the same key.
	b, _ := pem.Decode(readFile(t, osslDir+"p521-x509-pyca.crt.pem"))
	py, _ := x509.ParseCertificate(b.Bytes)
	priv := loadPriv(t, signDir+"ec-p521-private.pem").(*ecdsa.PrivateKey)
	s, _, err := NewX509Signer(priv)
	if err != nil {
		t.Fatal(err)
	}
	zc := s.Certificate()
	if zc.Subject.String() != py.Subject.String() || zc.Issuer.String() != py.Issuer.String() ||
		zc.SignatureAlgorithm != py.SignatureAlgorithm || zc.IsCA != py.IsCA ||
		zc.BasicConstraintsValid != py.BasicConstraintsValid || strings.Join(zc.DNSNames, ",") != strings.Join(py.DNSNames, ",") ||
		zc.NotAfter.Sub(zc.NotBefore) != py.NotAfter.Sub(py.NotBefore).Truncate(time.Second) {
		t.Errorf("certificate differs from the pyca one:\nzest %v %v %v %v\npyca %v %v %v %v",
			zc.Subject, zc.SignatureAlgorithm, zc.DNSNames, zc.NotAfter.Sub(zc.NotBefore),
			py.Subject, py.SignatureAlgorithm, py.DNSNames, py.NotAfter.Sub(py.NotBefore))
	}
	crit := func(c *x509.Certificate) map[string]bool {
		m := map[string]bool{}
		for _, e := range c.Extensions {
			m[e.Id.String()] = e.Critical
		}
		return m
	}
	if zm, pm := crit(zc), crit(py); len(zm) != len(pm) || zm["2.5.29.19"] != pm["2.5.29.19"] || zm["2.5.29.17"] != pm["2.5.29.17"] {
		t.Errorf("extensions: zest %v, pyca %v", zm, pm)
	}
	// Keylime's keyid for this key is 928 characters (reference §9.3); the
	// ECDSA signature inside the certificate varies by a few bytes.
	if n := len(s.KeyID()); n < 916 || n > 940 {
		t.Errorf("keyid is %d characters, Keylime's about 928", n)
	}
}
