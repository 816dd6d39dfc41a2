// Package keylime is zest's client for the Keylime agent (pull-mode API
// v2.1-v2.6) and registrar HTTP APIs: version negotiation, identity and
// integrity quotes, agent info, registrar agent records, the mTLS
// configuration Keylime uses (client certificate, agent pinned by its
// registered certificate, no hostname check), and EK certificate chain
// validation against a CA directory (which Keylime's registrar skips).
//
// It returns the agent's fields raw and unverified: checking the quote,
// the logs and the PCR 16 binding is the verifier's job. Every response
// body is size-bounded; every error names the URL and, for HTTP errors,
// the status and Keylime's status text. The package never prints, logs
// or exits, and must not import archive.
package keylime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// APIVersions are the agent API versions this client speaks, oldest first.
var APIVersions = []string{"2.1", "2.2", "2.3", "2.4", "2.5", "2.6"}

// DefaultMaxResponseBytes bounds a response body unless Options say
// otherwise: room for an IMA list of ~400k ima-ng lines plus a large
// event log.
const DefaultMaxResponseBytes = 64 << 20

// DefaultTimeout bounds one request when the context has no earlier
// deadline.
const DefaultTimeout = 30 * time.Second

// MaxNonceLen is the agent's limit (rust-keylime MAX_NONCE_SIZE). The TPM
// itself accepts at most 34 bytes of qualifying data on a SHA-256-only TPM.
const MaxNonceLen = 64

// Options tune a client. The zero value uses the defaults.
type Options struct {
	// MaxResponseBytes bounds each response body (default
	// DefaultMaxResponseBytes).
	MaxResponseBytes int64
	// Timeout bounds each request (default DefaultTimeout).
	Timeout time.Duration
	// Versions restricts the API versions offered in negotiation
	// (default APIVersions).
	Versions []string
}

// HTTPError is a non-200 answer. Code and Status are Keylime's envelope
// fields when the body had one.
type HTTPError struct {
	URL        string
	StatusCode int
	Status     string
}

func (e *HTTPError) Error() string {
	if e.Status != "" {
		return fmt.Sprintf("GET %s: HTTP %d: %s", e.URL, e.StatusCode, e.Status)
	}
	return fmt.Sprintf("GET %s: HTTP %d", e.URL, e.StatusCode)
}

// ErrVersionNotSupported matches (errors.Is) an HTTPError saying the
// requested API version is not served; renegotiate.
var ErrVersionNotSupported = errors.New("API version not supported")

// Is reports the 400 "API version not supported" answer as
// ErrVersionNotSupported.
func (e *HTTPError) Is(target error) bool {
	return target == ErrVersionNotSupported && e.StatusCode == http.StatusBadRequest &&
		strings.Contains(e.Status, "API version not supported")
}

// ErrNoCommonVersion is returned when the peer serves none of our versions.
var ErrNoCommonVersion = errors.New("no common API version")

// client is the HTTP plumbing shared by the agent and registrar clients.
type client struct {
	base     *url.URL
	http     *http.Client
	maxBytes int64
	timeout  time.Duration
	versions []string
}

func newClient(baseURL string, tr *http.Transport, opts Options) (*client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("bad URL %q: %w", baseURL, err)
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("bad URL %q: want http(s)://host:port", baseURL)
	}
	if u.Scheme == "https" && (tr.TLSClientConfig == nil) {
		return nil, fmt.Errorf("%s: https needs a TLS configuration", baseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	c := &client{
		base:     u,
		http:     &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		maxBytes: opts.MaxResponseBytes,
		timeout:  opts.Timeout,
		versions: opts.Versions,
	}
	if c.maxBytes <= 0 {
		c.maxBytes = DefaultMaxResponseBytes
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if len(c.versions) == 0 {
		c.versions = APIVersions
	}
	return c, nil
}

func (c *client) url(path string, q url.Values) string {
	u := *c.base
	u.Path += path
	u.RawQuery = q.Encode()
	return u.String()
}

// envelope is Keylime's {"code","status","results"}.
type envelope struct {
	Code    int             `json:"code"`
	Status  string          `json:"status"`
	Results json.RawMessage `json:"results"`
}

// get fetches one URL, bounds the body, checks the status and decodes the
// envelope. It returns the results and the whole body.
func (c *client) get(ctx context.Context, u string) (json.RawMessage, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", u, err)
	}
	req.Header.Set("Accept", "application/json")
	rsp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", u, err)
	}
	defer rsp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(rsp.Body, c.maxBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: reading response: %w", u, err)
	}
	if int64(len(body)) > c.maxBytes {
		return nil, nil, fmt.Errorf("GET %s: response larger than %d bytes", u, c.maxBytes)
	}
	var env envelope
	jsonErr := json.Unmarshal(body, &env)
	if rsp.StatusCode != http.StatusOK {
		he := &HTTPError{URL: u, StatusCode: rsp.StatusCode}
		if jsonErr == nil {
			he.Status = env.Status
		}
		return nil, nil, he
	}
	if jsonErr != nil {
		return nil, nil, fmt.Errorf("GET %s: response is not a Keylime JSON envelope: %w", u, jsonErr)
	}
	if env.Code != http.StatusOK {
		return nil, nil, &HTTPError{URL: u, StatusCode: env.Code, Status: env.Status}
	}
	if len(env.Results) == 0 || string(env.Results) == "null" {
		return nil, nil, fmt.Errorf("GET %s: response has no results", u)
	}
	return env.Results, body, nil
}

func decodeResults(u string, raw json.RawMessage, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("GET %s: results: %w", u, err)
	}
	return nil
}

// pickVersion returns the highest version both sides serve.
func pickVersion(ours, theirs []string) (string, bool) {
	best := ""
	for _, v := range theirs {
		if containsString(ours, v) && (best == "" || versionLess(best, v)) {
			best = v
		}
	}
	return best, best != ""
}

func containsString(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

// versionLess compares "major.minor" numerically.
func versionLess(a, b string) bool {
	am, an := splitVersion(a)
	bm, bn := splitVersion(b)
	if am != bm {
		return am < bm
	}
	return an < bn
}

func splitVersion(v string) (int, int) {
	maj, min, _ := strings.Cut(v, ".")
	x, _ := strconv.Atoi(maj)
	y, _ := strconv.Atoi(min)
	return x, y
}
