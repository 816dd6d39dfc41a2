package dsse

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
)

// ErrVerification is wrapped by every error that means "the envelope is not
// signed by a trusted key" (as opposed to "could not run": no keys given, an
// unusable key). Use errors.Is.
var ErrVerification = errors.New("dsse: verification failed")

func verificationErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrVerification, fmt.Sprintf(format, args...))
}

// Verify returns env's payload if at least one of its signatures verifies
// with one of keys over the PAE, and the payloadType is Keylime's. Keys are
// *ecdsa.PublicKey (ECDSA with SHA-256, any curve, as Keylime), *rsa.PublicKey
// (RSASSA-PSS with SHA-256, any salt length: zest's RSA envelopes) or an
// *x509.Certificate whose key is then used as is. Like Keylime, keyids are
// not consulted. The payload is returned only on success.
func Verify(env *Envelope, keys ...crypto.PublicKey) ([]byte, error) {
	if env == nil {
		return nil, errors.New("dsse: nil envelope")
	}
	if len(keys) == 0 {
		return nil, errors.New("dsse: no verification key given")
	}
	pubs := make([]crypto.PublicKey, 0, len(keys))
	for i, k := range keys {
		if c, ok := k.(*x509.Certificate); ok && c != nil {
			k = c.PublicKey
		}
		pub, err := checkVerifyKey(k)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		pubs = append(pubs, pub)
	}
	if env.PayloadType != KeylimePayloadType {
		return nil, verificationErr("payloadType %q is not %q", env.PayloadType, KeylimePayloadType)
	}
	if len(env.Signatures) == 0 {
		return nil, verificationErr("envelope has no signatures")
	}
	digest := sha256.Sum256(PAE(env.PayloadType, env.Payload))
	for _, s := range env.Signatures {
		for _, pub := range pubs {
			if verifyDigest(pub, digest[:], s.Sig) {
				return bytes.Clone(env.Payload), nil
			}
		}
	}
	return nil, verificationErr("none of %d signature(s) verifies with the %d key(s) given", len(env.Signatures), len(pubs))
}

func verifyDigest(pub crypto.PublicKey, digest, sig []byte) bool {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return ecdsa.VerifyASN1(k, digest, sig)
	case *rsa.PublicKey:
		return rsa.VerifyPSS(k, crypto.SHA256, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}) == nil
	}
	return false
}

// VerifyX509 verifies an envelope made by Keylime's x509 backend, whose
// keyid is base64 of a PEM certificate. Keylime trusts that certificate by
// itself (defect D15: a self-signed certificate vouches for itself); here it
// is trusted only if it chains to roots. To accept one known certificate
// (Keylime writes it with -c), put that certificate in roots.
//
// A DSSE envelope carries no trusted signing time and Keylime's certificates
// expire after 30 days, so validity periods are checked at the leaf's
// NotBefore, not now; any extended key usage is accepted. It returns the
// payload and the certificate whose key verified.
func VerifyX509(env *Envelope, roots *x509.CertPool) ([]byte, *x509.Certificate, error) {
	if env == nil {
		return nil, nil, errors.New("dsse: nil envelope")
	}
	if roots == nil {
		return nil, nil, errors.New("dsse: no trusted roots given (an embedded certificate is never trusted by itself)")
	}
	var reasons []error
	for i, s := range env.Signatures {
		cert, err := keyidCertificate(s.KeyID)
		if err != nil {
			reasons = append(reasons, fmt.Errorf("signatures[%d].keyid: %w", i, err))
			continue
		}
		if _, err := cert.Verify(x509.VerifyOptions{
			Roots:       roots,
			CurrentTime: cert.NotBefore,
			KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		}); err != nil {
			reasons = append(reasons, fmt.Errorf("signatures[%d]: certificate not trusted: %w", i, err))
			continue
		}
		one := *env
		one.Signatures = []Signature{s}
		payload, err := Verify(&one, cert)
		if err != nil {
			reasons = append(reasons, fmt.Errorf("signatures[%d]: %w", i, err))
			continue
		}
		return payload, cert, nil
	}
	if len(reasons) == 0 {
		return nil, nil, verificationErr("envelope has no signatures")
	}
	return nil, nil, fmt.Errorf("%w: %w", ErrVerification, errors.Join(reasons...))
}

// keyidCertificate decodes an x509-backend keyid: base64 of one PEM
// certificate.
func keyidCertificate(keyid string) (*x509.Certificate, error) {
	if keyid == "" {
		return nil, errors.New("empty (not an x509-backend envelope)")
	}
	pemBytes, err := base64.StdEncoding.DecodeString(keyid)
	if err != nil {
		return nil, fmt.Errorf("not base64 (not an x509-backend envelope): %w", err)
	}
	b, _ := pem.Decode(pemBytes)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("not a base64 PEM certificate")
	}
	return x509.ParseCertificate(b.Bytes)
}
