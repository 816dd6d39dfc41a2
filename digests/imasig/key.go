// Package imasig owns IMA file-signature formats and the keys that verify
// them: the security.ima "digsig" v2 header (struct signature_v2_hdr), the
// keyidv2 that names a key, loading verification keys in every form Keylime
// accepts, and Keylime's "verification-keys" keyring document.
//
// Parsing and verifying are separate steps: ParseSignature only checks the
// header's shape; only (*Keyring).Verify says a signature is good. This
// package must not import policygen, verifier or archive, and it never
// prints, logs or exits.
package imasig

import (
	"crypto"
	"crypto/dsa" //nolint:staticcheck // only to name a key type we refuse
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // keyidv2 is defined over SHA-1.
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
)

// MaxKeyBytes bounds the input LoadKey accepts. Certificates with long chains
// of extensions stay far below this.
const MaxKeyBytes = 1 << 20

// Key is one IMA verification key.
type Key struct {
	// Public is *rsa.PublicKey or *ecdsa.PublicKey on P-256, P-384 or P-521.
	Public crypto.PublicKey
	// KeyID is the keyidv2 signatures name the key by.
	KeyID uint32
	// FromCert is true when the key came from an X.509 certificate (and so
	// KeyID may come from its SubjectKeyIdentifier).
	FromCert bool
}

// UnsupportedKeyError reports a well-formed key of a type zest cannot use
// for IMA signatures.
type UnsupportedKeyError struct {
	// Type names the key: "ed25519", "dsa", "ecdsa secp256k1", ...
	Type string
}

func (e *UnsupportedKeyError) Error() string {
	return "unsupported key type " + e.Type + ": IMA verification keys must be RSA or ECDSA P-256/384/521"
}

// KeyIDv2 computes the keyidv2 of a bare public key the way the kernel's
// calc_keyid_v2 (evmctl) and Keylime's ImaKeyring._get_keyidv2 do: the last
// four bytes, big-endian, of SHA-1 over the DER PKCS#1 RSAPublicKey (RSA) or
// over the X9.62 uncompressed point (EC). A certificate's SubjectKeyIdentifier
// takes precedence over this (see LoadKey).
func KeyIDv2(pub crypto.PublicKey) (uint32, error) {
	var b []byte
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k == nil || k.N == nil {
			return 0, errors.New("imasig: empty RSA public key")
		}
		b = x509.MarshalPKCS1PublicKey(k)
	case *ecdsa.PublicKey:
		if k == nil {
			return 0, errors.New("imasig: empty ECDSA public key")
		}
		var err error
		if b, err = k.Bytes(); err != nil {
			return 0, fmt.Errorf("imasig: %w", err)
		}
	default:
		_, err := checkPublic(pub)
		return 0, err
	}
	return keyIDOf(b), nil
}

func keyIDOf(b []byte) uint32 {
	sum := sha1.Sum(b) //nolint:gosec
	return binary.BigEndian.Uint32(sum[16:])
}

// checkPublic admits exactly the key types the kernel and Keylime verify IMA
// signatures with and that Go can verify.
func checkPublic(pub crypto.PublicKey) (crypto.PublicKey, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k == nil || k.N == nil {
			return nil, errors.New("imasig: empty RSA public key")
		}
		return k, nil
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil {
			return nil, errors.New("imasig: empty ECDSA public key")
		}
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return k, nil
		}
		return nil, &UnsupportedKeyError{Type: "ecdsa " + k.Curve.Params().Name}
	case ed25519.PublicKey:
		return nil, &UnsupportedKeyError{Type: "ed25519"}
	case *dsa.PublicKey:
		return nil, &UnsupportedKeyError{Type: "dsa"}
	case *ecdh.PublicKey:
		return nil, &UnsupportedKeyError{Type: "x25519"}
	}
	return nil, &UnsupportedKeyError{Type: fmt.Sprintf("%T", pub)}
}

func publicOf(priv any) crypto.PublicKey {
	if s, ok := priv.(crypto.Signer); ok {
		return s.Public()
	}
	if k, ok := priv.(*ecdh.PrivateKey); ok {
		return k.PublicKey()
	}
	return priv
}

// LoadKey reads an IMA verification key from a file's contents. Like Keylime's
// file_signatures.get_pubkey it tries, in this order: DER certificate, PEM
// certificate, DER public key (SPKI or PKCS#1 RSA), PEM public key, DER private
// key (PKCS#8, PKCS#1, SEC1) and PEM private key, and keeps only the public
// half. A PEM file may hold several blocks (an "EC PARAMETERS" block before the
// key, a certificate next to its key): the first certificate wins, then the
// first public key, then the first private key. Encrypted private keys are
// refused.
//
// KeyID is the last 4 bytes of the certificate's SubjectKeyIdentifier when
// the key came from a certificate whose SKID has at least 4 bytes (what the
// kernel matches and evmctl writes), otherwise KeyIDv2 of the key. Keylime
// additionally recomputes a SKID-derived keyid that happens to be 0; zest
// follows the kernel there.
func LoadKey(data []byte) (*Key, error) {
	if len(data) == 0 {
		return nil, errors.New("imasig: empty key file")
	}
	if len(data) > MaxKeyBytes {
		return nil, fmt.Errorf("imasig: key file is %d bytes, more than the %d a key or certificate can need", len(data), MaxKeyBytes)
	}
	if k, err, ok := derCertificate(data); ok {
		return k, err
	}
	blocks := pemBlocks(data)
	if k, err, ok := pemFirst(blocks, isCertBlock, derCertificate); ok {
		return k, err
	}
	if k, err, ok := derPublic(data); ok {
		return k, err
	}
	if k, err, ok := pemFirst(blocks, isPublicBlock, derPublic); ok {
		return k, err
	}
	if k, err, ok := derPrivate(data); ok {
		return k, err
	}
	if k, err, ok := pemFirst(blocks, isPrivateBlock, derPrivate); ok {
		return k, err
	}
	if len(blocks) > 0 {
		names := make([]string, len(blocks))
		for i, b := range blocks {
			names[i] = fmt.Sprintf("%q", b.Type)
		}
		return nil, fmt.Errorf("%w: no certificate, public or private key in PEM blocks %s", ErrNotKey, strings.Join(names, ", "))
	}
	return nil, ErrNotKey
}

// ErrNotKey: LoadKey's input is no certificate or key in any accepted
// format, as opposed to a key of a type zest cannot use
// (*UnsupportedKeyError). A verifier tells a key buffer from other measured
// data (a kexec command line, critical data) with errors.Is.
var ErrNotKey = errors.New("imasig: not a DER or PEM certificate, public key or private key")

// A loader returns ok=false when the bytes are not its format at all, so the
// next format is tried, and ok=true with an error when they are its format but
// unusable (that error is final, as it names what the input really is).
type loader func(der []byte) (*Key, error, bool)

func pemBlocks(data []byte) []*pem.Block {
	var blocks []*pem.Block
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return blocks
		}
		blocks = append(blocks, b)
	}
}

func isCertBlock(t string) bool    { return t == "CERTIFICATE" || t == "X509 CERTIFICATE" }
func isPublicBlock(t string) bool  { return t == "PUBLIC KEY" || t == "RSA PUBLIC KEY" }
func isPrivateBlock(t string) bool { return strings.HasSuffix(t, "PRIVATE KEY") }

func pemFirst(blocks []*pem.Block, match func(string) bool, load loader) (*Key, error, bool) {
	for _, b := range blocks {
		if !match(b.Type) {
			continue
		}
		if b.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED") {
			return nil, fmt.Errorf("imasig: PEM %q is encrypted; give the public key or certificate instead", b.Type), true
		}
		k, err, ok := load(b.Bytes)
		if !ok {
			return nil, fmt.Errorf("imasig: PEM %q: not a valid %s", b.Type, strings.ToLower(b.Type)), true
		}
		var u *UnsupportedKeyError
		if errors.As(err, &u) {
			return nil, err, true // the key type says it all
		}
		if err != nil {
			return nil, fmt.Errorf("PEM %q: %w", b.Type, err), true
		}
		return k, nil, true
	}
	return nil, nil, false
}

func derCertificate(der []byte) (*Key, error, bool) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		spki, ok := certSPKI(der)
		if !ok {
			return nil, nil, false
		}
		if _, uerr := publicFromSPKI(spki); uerr != nil {
			return nil, fmt.Errorf("certificate: %w", uerr), true
		}
		return nil, fmt.Errorf("imasig: certificate: %w", err), true
	}
	pub, err := checkPublic(cert.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err), true
	}
	k := &Key{Public: pub, FromCert: true}
	if skid := cert.SubjectKeyId; len(skid) >= 4 {
		k.KeyID = binary.BigEndian.Uint32(skid[len(skid)-4:])
		return k, nil, true
	}
	if k.KeyID, err = KeyIDv2(pub); err != nil {
		return nil, err, true
	}
	return k, nil, true
}

func keyFromPublic(pub crypto.PublicKey) (*Key, error, bool) {
	pub, err := checkPublic(pub)
	if err != nil {
		return nil, err, true
	}
	id, err := KeyIDv2(pub)
	if err != nil {
		return nil, err, true
	}
	return &Key{Public: pub, KeyID: id}, nil, true
}

func derPublic(der []byte) (*Key, error, bool) {
	if _, _, ok := parseSPKI(der); ok {
		pub, err := publicFromSPKI(der)
		if err != nil {
			return nil, err, true
		}
		return keyFromPublic(pub)
	}
	if pub, err := x509.ParsePKCS1PublicKey(der); err == nil {
		return keyFromPublic(pub)
	}
	return nil, nil, false
}

// publicFromSPKI parses a DER SubjectPublicKeyInfo. Beyond crypto/x509 it
// reads compressed EC points (pyca/cryptography, and so Keylime, accepts them)
// and names the algorithm of keys Go cannot parse.
func publicFromSPKI(der []byte) (crypto.PublicKey, error) {
	pub, err := x509.ParsePKIXPublicKey(der)
	if err == nil {
		return checkPublic(pub)
	}
	alg, point, ok := parseSPKI(der)
	if !ok {
		return nil, fmt.Errorf("imasig: public key: %w", err)
	}
	if alg.oid.Equal(oidECPublic) && len(point) > 0 && (point[0] == 2 || point[0] == 3) {
		if c := nistCurve(alg.curve); c != nil {
			if k := decompress(c, point); k != nil {
				return k, nil
			}
			return nil, fmt.Errorf("imasig: public key: invalid compressed %s point", c.Params().Name)
		}
	}
	if alg.oid.Equal(oidRSA) || (alg.oid.Equal(oidECPublic) && nistCurve(alg.curve) != nil) {
		return nil, fmt.Errorf("imasig: public key: %w", err)
	}
	return nil, &UnsupportedKeyError{Type: alg.describe()}
}

func nistCurve(oid []int) elliptic.Curve {
	switch {
	case oidP256.Equal(oid):
		return elliptic.P256()
	case oidP384.Equal(oid):
		return elliptic.P384()
	case oidP521.Equal(oid):
		return elliptic.P521()
	}
	return nil
}

func decompress(c elliptic.Curve, point []byte) *ecdsa.PublicKey {
	x, y := elliptic.UnmarshalCompressed(c, point)
	if x == nil {
		return nil
	}
	size := (c.Params().BitSize + 7) / 8
	raw := make([]byte, 1+2*size)
	raw[0] = 4
	x.FillBytes(raw[1 : 1+size])
	y.FillBytes(raw[1+size:])
	k, err := ecdsa.ParseUncompressedPublicKey(c, raw)
	if err != nil {
		return nil
	}
	return k
}

func derPrivate(der []byte) (*Key, error, bool) {
	if alg, ok := pkcs8Algorithm(der); ok {
		priv, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			if alg.oid.Equal(oidRSA) || (alg.oid.Equal(oidECPublic) && nistCurve(alg.curve) != nil) {
				return nil, fmt.Errorf("imasig: PKCS#8 private key: %w", err), true
			}
			return nil, &UnsupportedKeyError{Type: alg.describe()}, true
		}
		return keyFromPublic(publicOf(priv))
	}
	if priv, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return keyFromPublic(priv.Public())
	}
	if curve, ok := sec1Curve(der); ok {
		priv, err := x509.ParseECPrivateKey(der)
		if err != nil {
			if nistCurve(curve) != nil {
				return nil, fmt.Errorf("imasig: EC private key: %w", err), true
			}
			return nil, &UnsupportedKeyError{Type: "ecdsa " + curveName(curve)}, true
		}
		return keyFromPublic(priv.Public())
	}
	return nil, nil, false
}

// spkiOf is the canonical DER SubjectPublicKeyInfo of a supported key, which
// is also what pyca/cryptography writes (named curve, uncompressed point).
func spkiOf(pub crypto.PublicKey) ([]byte, error) {
	if _, err := checkPublic(pub); err != nil {
		return nil, err
	}
	return x509.MarshalPKIXPublicKey(pub)
}
