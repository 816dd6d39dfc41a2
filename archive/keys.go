package archive

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// Signer signs records with the verifier's key: ECDSA P-256 (SHA-256,
// ASN.1 signatures; required for Rekor hashedrekord entries) or Ed25519.
type Signer struct {
	key crypto.Signer
	// KeyID is hex SHA-256 of the public key's SubjectPublicKeyInfo DER.
	KeyID string
	// PublicPEM is the PEM "PUBLIC KEY" of the signer.
	PublicPEM []byte
}

// ErrSignature is wrapped by every signature verification failure.
var ErrSignature = errors.New("signature does not verify")

// NewSigner wraps an ECDSA P-256 or Ed25519 private key.
func NewSigner(key crypto.Signer) (*Signer, error) {
	switch k := key.Public().(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("signing key: ECDSA curve %s unsupported, use P-256", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("signing key: %T unsupported, use ECDSA P-256 or Ed25519", k)
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(der)
	return &Signer{
		key:       key,
		KeyID:     hex.EncodeToString(sum[:]),
		PublicPEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}),
	}, nil
}

// LoadSigner reads a PEM private key (PKCS#8, or SEC 1 "EC PRIVATE KEY").
func LoadSigner(path string) (*Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := ParseSigner(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

// ParseSigner parses a PEM private key.
func ParseSigner(pemBytes []byte) (*Signer, error) {
	blk, _ := pem.Decode(pemBytes)
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	var key any
	var err error
	switch blk.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", blk.Type)
	}
	if err != nil {
		return nil, err
	}
	cs, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%T cannot sign", key)
	}
	return NewSigner(cs)
}

// GenerateKeyPEM returns a new PKCS#8 PEM private key; alg is "ecdsa-p256"
// or "ed25519".
func GenerateKeyPEM(alg string) ([]byte, error) {
	var key any
	var err error
	switch alg {
	case "ecdsa-p256", "":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ed25519":
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("key algorithm %q unsupported (ecdsa-p256, ed25519)", alg)
	}
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// Sign signs msg.
func (s *Signer) Sign(msg []byte) ([]byte, error) {
	if _, ok := s.key.Public().(ed25519.PublicKey); ok {
		return s.key.Sign(rand.Reader, msg, crypto.Hash(0))
	}
	d := sha256.Sum256(msg)
	return s.key.Sign(rand.Reader, d[:], crypto.SHA256)
}

// Public returns the public key.
func (s *Signer) Public() crypto.PublicKey { return s.key.Public() }

// Keyring maps key ids to verifier public keys trusted for records.
type Keyring map[string]crypto.PublicKey

// Add parses PEM public keys (or certificates) and adds them; it returns
// the ids added.
func (k Keyring) Add(pemBytes []byte) ([]string, error) {
	var ids []string
	for {
		var blk *pem.Block
		blk, pemBytes = pem.Decode(pemBytes)
		if blk == nil {
			break
		}
		var pub any
		var err error
		switch blk.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(blk.Bytes)
		case "CERTIFICATE":
			var c *x509.Certificate
			c, err = x509.ParseCertificate(blk.Bytes)
			if c != nil {
				pub = c.PublicKey
			}
		default:
			continue
		}
		if err != nil {
			return ids, err
		}
		id, err := KeyID(pub)
		if err != nil {
			return ids, err
		}
		k[id] = pub
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return nil, errors.New("no PEM public key or certificate found")
	}
	return ids, nil
}

// KeyID is hex SHA-256 of pub's SubjectPublicKeyInfo DER.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// PublicPEM returns the PEM encoding of the key with id.
func (k Keyring) PublicPEM(id string) ([]byte, error) {
	pub, ok := k[id]
	if !ok {
		return nil, fmt.Errorf("key %s not trusted", id)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// Verify checks sig over msg by the key with id.
func (k Keyring) Verify(id string, msg, sig []byte) error {
	pub, ok := k[id]
	if !ok {
		return fmt.Errorf("%w: signing key %s is not trusted", ErrSignature, id)
	}
	return verifySig(pub, msg, sig)
}

func verifySig(pub crypto.PublicKey, msg, sig []byte) error {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		d := sha256.Sum256(msg)
		if !ecdsa.VerifyASN1(p, d[:], sig) {
			return ErrSignature
		}
	case ed25519.PublicKey:
		if !ed25519.Verify(p, msg, sig) {
			return ErrSignature
		}
	default:
		return fmt.Errorf("key type %T unsupported", pub)
	}
	return nil
}
