package dsse

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// Signer signs a PAE. KeyID is written to the envelope ("" leaves it out).
type Signer interface {
	KeyID() string
	Public() crypto.PublicKey
	Sign(pae []byte) ([]byte, error)
}

// PublicKeyID is the keyid of Keylime's ecdsa backend: lowercase hex SHA-256
// of the public key as PEM SubjectPublicKeyInfo text, final newline included.
// Go's pem encoding of "PUBLIC KEY" is byte-identical to pyca/cryptography's
// (64-column base64), so for an ECDSA key this is also the file name
// Keylime's verifier looks the key up by (signing_keys/<keyid>.pub).
func PublicKeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("dsse: %w", err)
	}
	sum := sha256.Sum256(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	return hex.EncodeToString(sum[:]), nil
}

// ECDSASigner is Keylime's default "ecdsa" backend: ECDSA with SHA-256 over
// the PAE whatever the curve (also P-384 and P-521), ASN.1 DER signature.
type ECDSASigner struct {
	priv  *ecdsa.PrivateKey
	keyid string
}

// NewECDSASigner returns the ecdsa backend for priv.
func NewECDSASigner(priv *ecdsa.PrivateKey) (*ECDSASigner, error) {
	if priv == nil {
		return nil, errors.New("dsse: nil ECDSA key")
	}
	id, err := PublicKeyID(&priv.PublicKey)
	if err != nil {
		return nil, err
	}
	return &ECDSASigner{priv: priv, keyid: id}, nil
}

func (s *ECDSASigner) KeyID() string            { return s.keyid }
func (s *ECDSASigner) Public() crypto.PublicKey { return &s.priv.PublicKey }
func (s *ECDSASigner) Sign(pae []byte) ([]byte, error) {
	return signECDSA(s.priv, pae)
}

func signECDSA(priv *ecdsa.PrivateKey, pae []byte) ([]byte, error) {
	h := sha256.Sum256(pae)
	return ecdsa.SignASN1(rand.Reader, priv, h[:])
}

// X509Signer is Keylime's "x509" backend: the ecdsa signature, with a keyid
// that is the base64 of a self-signed certificate's PEM made for this signer.
// Keylime (without a key) trusts that embedded certificate blindly; zest's
// VerifyX509 requires it to chain to a caller-supplied root.
type X509Signer struct {
	priv    *ecdsa.PrivateKey
	cert    *x509.Certificate
	certPEM []byte
	keyid   string
}

// NewX509Signer makes the certificate Keylime's x509.Signer.construct makes:
// subject and issuer CN=dsse_lib, SAN DNS:dsse_lib, BasicConstraints CA:FALSE
// (critical), valid from now-1 day to now+30 days, random 159-bit serial,
// signed by priv with ECDSA-SHA256. It returns the signer and the
// certificate's PEM (what `keylime-policy sign runtime -c` writes).
func NewX509Signer(priv *ecdsa.PrivateKey) (*X509Signer, []byte, error) {
	return newX509Signer(priv, time.Now())
}

func newX509Signer(priv *ecdsa.PrivateKey, now time.Time) (*X509Signer, []byte, error) {
	if priv == nil {
		return nil, nil, errors.New("dsse: nil ECDSA key")
	}
	// pyca/cryptography's random_serial_number: 20 random bytes >> 1.
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 159))
	if err != nil {
		return nil, nil, err
	}
	serial.SetBit(serial, 0, 1) // a zero serial is invalid; the low bit keeps it non-zero
	name := pkix.Name{CommonName: "dsse_lib"}
	now = now.UTC().Truncate(time.Second)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               name,
		Issuer:                name,
		NotBefore:             now.Add(-24 * time.Hour),
		NotAfter:              now.Add(30 * 24 * time.Hour),
		DNSNames:              []string{"dsse_lib"},
		BasicConstraintsValid: true, // Go marks it critical, as Keylime does
		IsCA:                  false,
		SignatureAlgorithm:    x509.ECDSAWithSHA256,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		return nil, nil, fmt.Errorf("dsse: certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("dsse: certificate: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	s := &X509Signer{priv: priv, cert: cert, certPEM: certPEM, keyid: base64.StdEncoding.EncodeToString(certPEM)}
	return s, append([]byte(nil), certPEM...), nil
}

func (s *X509Signer) KeyID() string                   { return s.keyid }
func (s *X509Signer) Public() crypto.PublicKey        { return &s.priv.PublicKey }
func (s *X509Signer) Sign(pae []byte) ([]byte, error) { return signECDSA(s.priv, pae) }

// Certificate is the signer's self-signed certificate.
func (s *X509Signer) Certificate() *x509.Certificate { return s.cert }

// CertificatePEM is the certificate as PEM.
func (s *X509Signer) CertificatePEM() []byte { return append([]byte(nil), s.certPEM...) }

// RSASigner is a zest extension Keylime cannot verify (its verifier accepts
// EC keys only): RSASSA-PSS with SHA-256 and a 32-byte salt over the PAE.
// keyid as for ECDSASigner.
type RSASigner struct {
	priv  *rsa.PrivateKey
	keyid string
}

// NewRSASigner returns the RSA-PSS signer for priv (at least 2048 bits).
func NewRSASigner(priv *rsa.PrivateKey) (*RSASigner, error) {
	if priv == nil {
		return nil, errors.New("dsse: nil RSA key")
	}
	if bits := priv.N.BitLen(); bits < 2048 {
		return nil, fmt.Errorf("dsse: RSA key of %d bits is too small (want at least 2048)", bits)
	}
	id, err := PublicKeyID(&priv.PublicKey)
	if err != nil {
		return nil, err
	}
	return &RSASigner{priv: priv, keyid: id}, nil
}

func (s *RSASigner) KeyID() string            { return s.keyid }
func (s *RSASigner) Public() crypto.PublicKey { return &s.priv.PublicKey }
func (s *RSASigner) Sign(pae []byte) ([]byte, error) {
	h := sha256.Sum256(pae)
	return rsa.SignPSS(rand.Reader, s.priv, crypto.SHA256, h[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
}

// NewSigner picks the backend for a loaded private key: ECDSASigner for
// ECDSA keys, RSASigner for RSA keys.
func NewSigner(priv crypto.Signer) (Signer, error) {
	switch k := priv.(type) {
	case *ecdsa.PrivateKey:
		return NewECDSASigner(k)
	case *rsa.PrivateKey:
		return NewRSASigner(k)
	}
	return nil, fmt.Errorf("dsse: no signer for %s keys", keyType(priv))
}

// LoadPrivateKey reads an unencrypted PEM private key: "EC PRIVATE KEY"
// (SEC1, what Keylime generates), "PRIVATE KEY" (PKCS#8) or "RSA PRIVATE KEY"
// (PKCS#1). "EC PARAMETERS" blocks in front of the key are skipped. The key
// must be ECDSA or RSA.
func LoadPrivateKey(pemBytes []byte) (crypto.Signer, error) {
	var seen []string
	for rest := pemBytes; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "EC PARAMETERS" {
			continue
		}
		if b.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED") {
			return nil, fmt.Errorf("dsse: PEM %q is encrypted; zest (like Keylime) needs an unencrypted key", b.Type)
		}
		var (
			key any
			err error
		)
		switch b.Type {
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(b.Bytes)
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		default:
			seen = append(seen, fmt.Sprintf("%q", b.Type))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("dsse: PEM %q: %w", b.Type, err)
		}
		switch k := key.(type) {
		case *ecdsa.PrivateKey:
			return k, nil
		case *rsa.PrivateKey:
			return k, nil
		}
		return nil, fmt.Errorf("dsse: found a %s private key; DSSE signing needs ECDSA (or RSA, which Keylime cannot verify)", keyType(key))
	}
	if len(seen) > 0 {
		return nil, fmt.Errorf("dsse: found PEM %s, want EC PRIVATE KEY, PRIVATE KEY or RSA PRIVATE KEY", strings.Join(seen, ", "))
	}
	return nil, errors.New("dsse: no PEM block found (want an unencrypted PEM private key)")
}

// LoadPublicKey reads a verification key: a PEM "PUBLIC KEY" (what Keylime
// takes), "RSA PUBLIC KEY" or "CERTIFICATE" (its key is used; the certificate
// is not checked), or the same in DER. The key must be ECDSA or RSA.
func LoadPublicKey(pemOrDER []byte) (crypto.PublicKey, error) {
	var seen []string
	for rest := pemOrDER; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		var (
			pub any
			err error
		)
		switch b.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(b.Bytes)
		case "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(b.Bytes)
		case "CERTIFICATE":
			var c *x509.Certificate
			if c, err = x509.ParseCertificate(b.Bytes); err == nil {
				pub = c.PublicKey
			}
		default:
			if strings.HasSuffix(b.Type, "PRIVATE KEY") {
				return nil, fmt.Errorf("dsse: found a private key (PEM %q); give the public key", b.Type)
			}
			seen = append(seen, fmt.Sprintf("%q", b.Type))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("dsse: PEM %q: %w", b.Type, err)
		}
		return checkVerifyKey(pub)
	}
	if len(seen) > 0 {
		return nil, fmt.Errorf("dsse: found PEM %s, want PUBLIC KEY or CERTIFICATE", strings.Join(seen, ", "))
	}
	if pub, err := x509.ParsePKIXPublicKey(pemOrDER); err == nil {
		return checkVerifyKey(pub)
	}
	if c, err := x509.ParseCertificate(pemOrDER); err == nil {
		return checkVerifyKey(c.PublicKey)
	}
	if pub, err := x509.ParsePKCS1PublicKey(pemOrDER); err == nil {
		return pub, nil
	}
	return nil, errors.New("dsse: not a PEM or DER public key or certificate")
}

func checkVerifyKey(pub any) (crypto.PublicKey, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return k, nil
	case *rsa.PublicKey:
		return k, nil
	}
	return nil, fmt.Errorf("dsse: found a %s public key; DSSE verification needs ECDSA (or RSA for zest's RSA-PSS envelopes)", keyType(pub))
}

func keyType(k any) string {
	switch k.(type) {
	case ed25519.PublicKey, ed25519.PrivateKey:
		return "ed25519"
	case *ecdsa.PublicKey, *ecdsa.PrivateKey:
		return "ecdsa"
	case *rsa.PublicKey, *rsa.PrivateKey:
		return "rsa"
	}
	return fmt.Sprintf("%T", k)
}
