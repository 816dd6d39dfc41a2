package keylime

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-tpm/tpm2"
)

// AgentTLSConfig is the client side of Keylime's agent mTLS
// (web_util.generate_agent_tls_context): present client, and trust the
// agent only if its certificate is one of pinned (the mtls_cert the
// registrar holds) or chains to one of them. Host names are not checked,
// as Keylime does not (agents sit behind addresses their certificate does
// not name); validity periods are.
func AgentTLSConfig(client tls.Certificate, pinned ...*x509.Certificate) (*tls.Config, error) {
	if len(pinned) == 0 {
		return nil, errors.New("agent TLS: no pinned agent certificate")
	}
	if len(client.Certificate) == 0 {
		return nil, errors.New("agent TLS: no client certificate")
	}
	pins := append([]*x509.Certificate(nil), pinned...)
	return &tls.Config{
		Certificates: []tls.Certificate{client},
		MinVersion:   tls.VersionTLS12,
		// Standard verification would check the host name; the pin is
		// checked in VerifyConnection instead, which runs on every
		// handshake including resumed ones.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyPinned(cs.PeerCertificates, pins, time.Now())
		},
	}, nil
}

// ErrUntrustedAgent is wrapped by handshake errors when the agent's
// certificate is not the pinned one and does not chain to it.
var ErrUntrustedAgent = errors.New("agent certificate does not match the pinned certificate")

func verifyPinned(chain []*x509.Certificate, pins []*x509.Certificate, now time.Time) error {
	if len(chain) == 0 {
		return fmt.Errorf("%w: agent sent no certificate", ErrUntrustedAgent)
	}
	leaf := chain[0]
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return fmt.Errorf("%w: agent certificate %q valid %s to %s", ErrUntrustedAgent, leaf.Subject.CommonName,
			leaf.NotBefore.Format(time.RFC3339), leaf.NotAfter.Format(time.RFC3339))
	}
	for _, p := range pins {
		if bytes.Equal(p.Raw, leaf.Raw) {
			return nil
		}
	}
	roots := x509.NewCertPool()
	for _, p := range pins {
		roots.AddCert(p)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return fmt.Errorf("%w (CN %q): %v", ErrUntrustedAgent, leaf.Subject.CommonName, err)
	}
	return nil
}

// RegistrarTLSConfig trusts the registrar's CA (standard verification
// including the host name) and presents client.
func RegistrarTLSConfig(client tls.Certificate, roots *x509.CertPool) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{client}, RootCAs: roots, MinVersion: tls.VersionTLS12}
}

// MaxCAFileBytes bounds one file read by LoadCADir.
const MaxCAFileBytes = 1 << 20

// LoadCADir reads every certificate in dir (*.pem, *.crt, *.cer: PEM,
// possibly several per file; *.der: one DER certificate), like Keylime's
// tpm_cert_store. Other files are ignored. An empty store is an error.
func LoadCADir(dir string) ([]*x509.Certificate, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("CA directory: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	var out []*x509.Certificate
	for _, n := range names {
		ext := strings.ToLower(filepath.Ext(n))
		if ext != ".pem" && ext != ".crt" && ext != ".cer" && ext != ".der" {
			continue
		}
		p := filepath.Join(dir, n)
		b, err := readBounded(p, MaxCAFileBytes)
		if err != nil {
			return nil, err
		}
		certs, err := parseCerts(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		out = append(out, certs...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("CA directory %s holds no certificates", dir)
	}
	return out, nil
}

func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > max {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, max)
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil && st.Size() > 0 {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// parseCerts reads PEM certificates, or one DER certificate.
func parseCerts(b []byte) ([]*x509.Certificate, error) {
	if !bytes.Contains(b, []byte("-----BEGIN")) {
		c, err := x509.ParseCertificate(b)
		if err != nil {
			return nil, err
		}
		return []*x509.Certificate{c}, nil
	}
	var out []*x509.Certificate
	for i := 0; ; i++ {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", i, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// EKCertOptions configure VerifyEKCert. The zero value is strict (except
// that Roots must be given).
type EKCertOptions struct {
	// Roots are the TPM manufacturers' CAs (every certificate of a
	// LoadCADir store is a trust anchor, as in Keylime's tpm_cert_store).
	Roots []*x509.Certificate
	// Intermediates the TPM or registrar supplied.
	Intermediates []*x509.Certificate
	// CurrentTime for validity checks (default now).
	CurrentTime time.Time
	// AllowExpired accepts a chain that is valid apart from its validity
	// periods (some TPMs ship EK certificates that have expired).
	AllowExpired bool
}

// VerifiedEK is an EK certificate that chained to a trusted root and
// certifies the EK public area it was checked against.
type VerifiedEK struct {
	Cert  *x509.Certificate
	Chain []*x509.Certificate
}

// VerifyEKCert checks an EK certificate (DER or PEM) against the trusted
// roots and that its public key is the key of ekTPM (a TPM2B_PUBLIC, as
// the registrar's ek_tpm). Keylime's registrar only does the second
// check; the chain is what makes the EK a genuine TPM's.
func VerifyEKCert(cert []byte, ekTPM []byte, opts EKCertOptions) (*VerifiedEK, error) {
	if len(opts.Roots) == 0 {
		return nil, errors.New("EK certificate: no trusted roots")
	}
	certs, err := parseCerts(cert)
	if err != nil || len(certs) == 0 {
		return nil, fmt.Errorf("EK certificate: %v", errOr(err, "no certificate"))
	}
	c := certs[0]
	if err := acceptEKSubjectAltName(c); err != nil {
		return nil, err
	}
	pub, err := tpmPublicKey(ekTPM)
	if err != nil {
		return nil, fmt.Errorf("EK public area: %w", err)
	}
	if !publicKeysEqual(pub, c.PublicKey) {
		return nil, errors.New("EK certificate does not certify the EK public key (ek_tpm)")
	}
	roots := x509.NewCertPool()
	for _, r := range opts.Roots {
		roots.AddCert(r)
	}
	inter := x509.NewCertPool()
	for _, r := range append(opts.Intermediates, certs[1:]...) {
		inter.AddCert(r)
	}
	now := opts.CurrentTime
	if now.IsZero() {
		now = time.Now()
	}
	vo := x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}
	chains, err := c.Verify(vo)
	if err != nil && opts.AllowExpired {
		var ie x509.CertificateInvalidError
		if errors.As(err, &ie) && ie.Reason == x509.Expired {
			vo.CurrentTime = c.NotBefore.Add(time.Second)
			chains, err = c.Verify(vo)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("EK certificate (issuer %q): %w", c.Issuer.String(), err)
	}
	return &VerifiedEK{Cert: c, Chain: chains[0]}, nil
}

func errOr(err error, s string) string {
	if err != nil {
		return err.Error()
	}
	return s
}

// tpmPublicKey decodes a TPM2B_PUBLIC into a Go public key.
func tpmPublicKey(b []byte) (crypto.PublicKey, error) {
	pub, err := tpm2.Unmarshal[tpm2.TPM2BPublic](b)
	if err != nil {
		return nil, err
	}
	contents, err := pub.Contents()
	if err != nil {
		return nil, err
	}
	return tpm2.Pub(*contents)
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	switch k := a.(type) {
	case *rsa.PublicKey:
		return k.Equal(b)
	case *ecdsa.PublicKey:
		return k.Equal(b)
	}
	return false
}

var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// acceptEKSubjectAltName handles the critical SubjectAltName the TCG EK
// Credential Profile (section 3.2.9) requires: the subject is empty and
// the SAN holds a directoryName with the TPM manufacturer, model and
// version. Go's verifier handles only DNS, email, IP and URI names and so
// reports such a SAN as an unhandled critical extension. After checking
// that every name in it is a directoryName, it is marked handled (as
// go-attestation does); any other unhandled critical extension still
// fails verification.
func acceptEKSubjectAltName(c *x509.Certificate) error {
	idx := -1
	for i, oid := range c.UnhandledCriticalExtensions {
		if oid.Equal(oidSubjectAltName) {
			idx = i
		}
	}
	if idx < 0 {
		return nil
	}
	for _, e := range c.Extensions {
		if !e.Id.Equal(oidSubjectAltName) {
			continue
		}
		var names []asn1.RawValue
		if rest, err := asn1.Unmarshal(e.Value, &names); err != nil || len(rest) != 0 {
			return fmt.Errorf("EK certificate: SubjectAltName: malformed")
		}
		for _, n := range names {
			if n.Class != asn1.ClassContextSpecific || n.Tag != 4 {
				return fmt.Errorf("EK certificate: critical SubjectAltName holds a name of tag %d, not a directoryName", n.Tag)
			}
		}
	}
	c.UnhandledCriticalExtensions = append(append([]asn1.ObjectIdentifier(nil), c.UnhandledCriticalExtensions[:idx]...), c.UnhandledCriticalExtensions[idx+1:]...)
	return nil
}
