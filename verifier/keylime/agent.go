package keylime

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// AgentClient talks to one Keylime agent. It is safe for concurrent use.
type AgentClient struct {
	c *client

	mu      sync.Mutex
	version string
}

// NewAgentClient returns a client for baseURL (https://host:port). tlsConf
// is usually AgentTLSConfig(...); it may be nil only for an http:// URL
// (an agent registered with mtls_cert "disabled").
func NewAgentClient(baseURL string, tlsConf *tls.Config, opts Options) (*AgentClient, error) {
	tr := &http.Transport{
		TLSClientConfig:       tlsConf,
		ResponseHeaderTimeout: 0, // bounded by the per-request context
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     false,
	}
	c, err := newClient(baseURL, tr, opts)
	if err != nil {
		return nil, fmt.Errorf("agent client: %w", err)
	}
	return &AgentClient{c: c}, nil
}

// CloseIdleConnections releases pooled connections.
func (a *AgentClient) CloseIdleConnections() { a.c.http.CloseIdleConnections() }

// VersionInfo is the agent's GET /version answer. Agents before
// supported_versions existed send only supported_version.
type VersionInfo struct {
	SupportedVersion  string   `json:"supported_version"`
	SupportedVersions []string `json:"supported_versions"`
}

// Version fetches GET /version.
func (a *AgentClient) Version(ctx context.Context) (*VersionInfo, error) {
	u := a.c.url("/version", nil)
	raw, _, err := a.c.get(ctx, u)
	if err != nil {
		return nil, err
	}
	var v VersionInfo
	if err := decodeResults(u, raw, &v); err != nil {
		return nil, err
	}
	if v.SupportedVersion == "" && len(v.SupportedVersions) == 0 {
		return nil, fmt.Errorf("GET %s: no supported_version", u)
	}
	return &v, nil
}

// Negotiate picks the highest API version both sides serve and uses it
// for later requests.
func (a *AgentClient) Negotiate(ctx context.Context) (string, error) {
	v, err := a.Version(ctx)
	if err != nil {
		return "", err
	}
	theirs := v.SupportedVersions
	if len(theirs) == 0 {
		theirs = []string{v.SupportedVersion}
	}
	best, ok := pickVersion(a.c.versions, theirs)
	if !ok {
		return "", fmt.Errorf("%s: agent serves %v, we speak %v: %w", a.c.base, theirs, a.c.versions, ErrNoCommonVersion)
	}
	a.mu.Lock()
	a.version = best
	a.mu.Unlock()
	return best, nil
}

// APIVersion is the negotiated (or set) version, "" before negotiation.
func (a *AgentClient) APIVersion() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.version
}

// SetAPIVersion fixes the version without negotiating.
func (a *AgentClient) SetAPIVersion(v string) error {
	if !containsString(APIVersions, v) {
		return fmt.Errorf("unsupported agent API version %q", v)
	}
	a.mu.Lock()
	a.version = v
	a.mu.Unlock()
	return nil
}

// getVersioned GETs /v{version}{path}, negotiating first if needed and
// once more if the agent answers "API version not supported" (it was
// downgraded or replaced).
func (a *AgentClient) getVersioned(ctx context.Context, path string, q url.Values, v any) (string, []byte, error) {
	for attempt := 0; ; attempt++ {
		ver := a.APIVersion()
		if ver == "" {
			var err error
			if ver, err = a.Negotiate(ctx); err != nil {
				return "", nil, err
			}
		}
		u := a.c.url("/v"+ver+path, q)
		raw, body, err := a.c.get(ctx, u)
		if errors.Is(err, ErrVersionNotSupported) && attempt == 0 {
			a.mu.Lock()
			a.version = ""
			a.mu.Unlock()
			continue
		}
		if err != nil {
			return "", nil, err
		}
		return ver, body, decodeResults(u, raw, v)
	}
}

// QuoteResponse is an identity or integrity quote answer, raw and
// unverified. Optional fields are nil when the agent omitted them.
type QuoteResponse struct {
	// APIVersion the request used.
	APIVersion string `json:"-"`
	// Quote is "r<TPMS_ATTEST>:<TPMT_SIGNATURE>:<pcrblob>", base64 parts.
	Quote   string `json:"quote"`
	HashAlg string `json:"hash_alg"`
	EncAlg  string `json:"enc_alg"`
	SignAlg string `json:"sign_alg"`
	// PubKey is the payload public key PEM bound into PCR 16 (absent with
	// partial=1).
	PubKey *string `json:"pubkey,omitempty"`
	// IMAMeasurementList is ASCII IMA lines from IMAMeasurementListEntry.
	IMAMeasurementList *string `json:"ima_measurement_list,omitempty"`
	// MBMeasurementList is base64 binary_bios_measurements (PCR 0 masked).
	MBMeasurementList       *string `json:"mb_measurement_list,omitempty"`
	IMAMeasurementListEntry *uint64 `json:"ima_measurement_list_entry,omitempty"`
	// BootTime (seconds since the epoch) is sent by the Python agent, not
	// by rust-keylime.
	BootTime *int64 `json:"boottime,omitempty"`
	// Body is the whole response as received, for archiving.
	Body []byte `json:"-"`
}

// IntegrityRequest is the query of GET /quotes/integrity.
type IntegrityRequest struct {
	// Nonce: ASCII letters and digits, at most MaxNonceLen (the TPM takes
	// at most 34 bytes on a SHA-256-only TPM).
	Nonce string
	// Mask selects PCRs (bit n = PCR n, 0-23); the agent adds PCR 16.
	Mask uint32
	// Partial = true asks the agent to omit pubkey (the verifier has it).
	Partial bool
	// IMAEntry is the first IMA line wanted (0 = whole list).
	IMAEntry uint64
}

func checkNonce(nonce string) error {
	if nonce == "" || len(nonce) > MaxNonceLen {
		return fmt.Errorf("nonce must be 1-%d characters, got %d", MaxNonceLen, len(nonce))
	}
	for _, c := range nonce {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return fmt.Errorf("nonce must be ASCII letters and digits")
		}
	}
	return nil
}

// IntegrityQuote fetches GET /v{ver}/quotes/integrity.
func (a *AgentClient) IntegrityQuote(ctx context.Context, r IntegrityRequest) (*QuoteResponse, error) {
	if err := checkNonce(r.Nonce); err != nil {
		return nil, err
	}
	if r.Mask>>24 != 0 {
		return nil, fmt.Errorf("mask 0x%x selects PCRs above 23", r.Mask)
	}
	q := url.Values{}
	q.Set("nonce", r.Nonce)
	q.Set("mask", "0x"+strconv.FormatUint(uint64(r.Mask), 16))
	if r.Partial {
		q.Set("partial", "1")
	} else {
		q.Set("partial", "0")
	}
	q.Set("ima_ml_entry", strconv.FormatUint(r.IMAEntry, 10))
	return a.quote(ctx, "/quotes/integrity", q)
}

// IdentityQuote fetches GET /v{ver}/quotes/identity (PCR 16 only, with
// pubkey).
func (a *AgentClient) IdentityQuote(ctx context.Context, nonce string) (*QuoteResponse, error) {
	if err := checkNonce(nonce); err != nil {
		return nil, err
	}
	q := url.Values{}
	q.Set("nonce", nonce)
	return a.quote(ctx, "/quotes/identity", q)
}

func (a *AgentClient) quote(ctx context.Context, path string, q url.Values) (*QuoteResponse, error) {
	var r QuoteResponse
	ver, body, err := a.getVersioned(ctx, path, q, &r)
	if err != nil {
		return nil, err
	}
	if r.Quote == "" {
		return nil, fmt.Errorf("%s%s: response has no quote", a.c.base, path)
	}
	r.APIVersion, r.Body = ver, body
	return &r, nil
}

// AgentInfo is GET /v2.2+/agent/info. ak_handle is a number in
// rust-keylime and a string in Keylime's docs; both are accepted.
type AgentInfo struct {
	AgentUUID  string `json:"agent_uuid"`
	TPMHashAlg string `json:"tpm_hash_alg"`
	TPMEncAlg  string `json:"tpm_enc_alg"`
	TPMSignAlg string `json:"tpm_sign_alg"`
	AKHandle   uint32 `json:"-"`
}

// AgentInfo fetches GET /v{ver}/agent/info (API 2.2 and later).
func (a *AgentClient) AgentInfo(ctx context.Context) (*AgentInfo, error) {
	var raw struct {
		AgentInfo
		AKHandle json.RawMessage `json:"ak_handle"`
	}
	if _, _, err := a.getVersioned(ctx, "/agent/info", nil, &raw); err != nil {
		return nil, err
	}
	info := raw.AgentInfo
	if len(raw.AKHandle) > 0 {
		h, err := parseHandle(raw.AKHandle)
		if err != nil {
			return nil, fmt.Errorf("%s/agent/info: ak_handle: %w", a.c.base, err)
		}
		info.AKHandle = h
	}
	return &info, nil
}

func parseHandle(raw json.RawMessage) (uint32, error) {
	var n uint32
	if err := json.Unmarshal(raw, &n); err == nil {
		return n, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, fmt.Errorf("neither a number nor a string: %s", raw)
	}
	v, err := strconv.ParseUint(s, 0, 32)
	if err != nil {
		return 0, err
	}
	return uint32(v), nil
}
