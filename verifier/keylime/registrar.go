package keylime

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// RegistrarClient reads agent records from a Keylime registrar.
type RegistrarClient struct {
	c *client

	mu      sync.Mutex
	version string
}

// NewRegistrarClient returns a client for baseURL. Keylime registrars
// require mTLS to read agents: tlsConf carries the client certificate
// and the registrar's CA (RegistrarTLSConfig).
func NewRegistrarClient(baseURL string, tlsConf *tls.Config, opts Options) (*RegistrarClient, error) {
	tr := &http.Transport{TLSClientConfig: tlsConf, MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second}
	c, err := newClient(baseURL, tr, opts)
	if err != nil {
		return nil, fmt.Errorf("registrar client: %w", err)
	}
	return &RegistrarClient{c: c}, nil
}

// RegistrarAgent is a registrar's record of an agent, decoded but not
// verified (the AK's attributes, the EK certificate chain and the
// agent certificate are the caller's to check).
type RegistrarAgent struct {
	// AIKTPM and EKTPM are TPM2B_PUBLIC bytes.
	AIKTPM []byte
	EKTPM  []byte
	// EKCert is DER, nil when the registrar has none.
	EKCert []byte
	// MTLSCert is the agent's server certificate, nil when the agent
	// registered with mTLS "disabled" (plain HTTP).
	MTLSCert *x509.Certificate
	IP       string
	Port     int
	RegCount int
	// Body is the response as received.
	Body []byte
}

// registrarVersion is the registrar's GET /version answer.
type registrarVersion struct {
	CurrentVersion    string   `json:"current_version"`
	SupportedVersions []string `json:"supported_versions"`
}

func (r *RegistrarClient) negotiate(ctx context.Context) (string, error) {
	r.mu.Lock()
	v := r.version
	r.mu.Unlock()
	if v != "" {
		return v, nil
	}
	u := r.c.url("/version", nil)
	raw, _, err := r.c.get(ctx, u)
	if err != nil {
		return "", err
	}
	var rv registrarVersion
	if err := decodeResults(u, raw, &rv); err != nil {
		return "", err
	}
	theirs := rv.SupportedVersions
	if len(theirs) == 0 {
		theirs = []string{rv.CurrentVersion}
	}
	best, ok := pickVersion(r.c.versions, theirs)
	if !ok {
		return "", fmt.Errorf("%s: registrar serves %v, we speak %v: %w", r.c.base, theirs, r.c.versions, ErrNoCommonVersion)
	}
	r.mu.Lock()
	r.version = best
	r.mu.Unlock()
	return best, nil
}

// GetAgent fetches GET /v{ver}/agents/{id}. A missing or inactive agent
// is an *HTTPError with StatusCode 404.
func (r *RegistrarClient) GetAgent(ctx context.Context, id string) (*RegistrarAgent, error) {
	if id == "" {
		return nil, fmt.Errorf("empty agent id")
	}
	ver, err := r.negotiate(ctx)
	if err != nil {
		return nil, err
	}
	u := r.c.url("/v"+ver+"/agents/"+url.PathEscape(id), nil)
	raw, body, err := r.c.get(ctx, u)
	if err != nil {
		return nil, err
	}
	return parseRegistrarAgent(u, raw, body)
}

// parseRegistrarAgent decodes the results of GET /agents/{id}.
func parseRegistrarAgent(u string, raw json.RawMessage, body []byte) (*RegistrarAgent, error) {
	var err error
	var rec struct {
		AIKTPM   *string         `json:"aik_tpm"`
		EKTPM    *string         `json:"ek_tpm"`
		EKCert   *string         `json:"ekcert"`
		MTLSCert *string         `json:"mtls_cert"`
		IP       string          `json:"ip"`
		Port     json.RawMessage `json:"port"`
		RegCount int             `json:"regcount"`
	}
	if err := decodeResults(u, raw, &rec); err != nil {
		return nil, err
	}
	out := &RegistrarAgent{IP: rec.IP, RegCount: rec.RegCount, Body: body}
	if rec.AIKTPM == nil || *rec.AIKTPM == "" {
		return nil, fmt.Errorf("GET %s: record has no aik_tpm", u)
	}
	if out.AIKTPM, err = base64.StdEncoding.DecodeString(*rec.AIKTPM); err != nil {
		return nil, fmt.Errorf("GET %s: aik_tpm: %w", u, err)
	}
	if rec.EKTPM != nil && *rec.EKTPM != "" {
		if out.EKTPM, err = base64.StdEncoding.DecodeString(*rec.EKTPM); err != nil {
			return nil, fmt.Errorf("GET %s: ek_tpm: %w", u, err)
		}
	}
	if rec.EKCert != nil && *rec.EKCert != "" {
		if out.EKCert, err = decodeCertBytes(*rec.EKCert); err != nil {
			return nil, fmt.Errorf("GET %s: ekcert: %w", u, err)
		}
	}
	if rec.MTLSCert != nil && *rec.MTLSCert != "" && *rec.MTLSCert != "disabled" {
		der, err := decodeCertBytes(*rec.MTLSCert)
		if err != nil {
			return nil, fmt.Errorf("GET %s: mtls_cert: %w", u, err)
		}
		if out.MTLSCert, err = x509.ParseCertificate(der); err != nil {
			return nil, fmt.Errorf("GET %s: mtls_cert: %w", u, err)
		}
	}
	if len(rec.Port) > 0 && string(rec.Port) != "null" {
		var n int
		if err := json.Unmarshal(rec.Port, &n); err != nil {
			var s string
			if err := json.Unmarshal(rec.Port, &s); err != nil {
				return nil, fmt.Errorf("GET %s: port: %s", u, rec.Port)
			}
			if n, err = strconv.Atoi(s); err != nil {
				return nil, fmt.Errorf("GET %s: port: %w", u, err)
			}
		}
		if n < 0 || n > 65535 {
			return nil, fmt.Errorf("GET %s: port %d out of range", u, n)
		}
		out.Port = n
	}
	return out, nil
}

// decodeCertBytes accepts what Keylime's Certificate type renders or
// accepts: base64 DER, or PEM text (rust-keylime registers PEM). It
// returns the first certificate's DER.
func decodeCertBytes(s string) ([]byte, error) {
	if blk, _ := pem.Decode([]byte(s)); blk != nil {
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %q, want CERTIFICATE", blk.Type)
		}
		return blk.Bytes, nil
	}
	der, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("neither PEM nor base64 DER: %w", err)
	}
	return der, nil
}
