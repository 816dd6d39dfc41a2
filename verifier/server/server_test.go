package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/zest-attest/zest/verifier"
)

// unreachable is an EvidenceVerifier for tests of input handling: every
// request in those tests must be refused before verification.
type unreachable struct{ t *testing.T }

func (u unreachable) VerifyEvidence(context.Context, *verifier.EvidenceRequest) (*EvidenceResult, error) {
	u.t.Helper()
	u.t.Fatal("request reached the verifier")
	return nil, nil
}

func do(t *testing.T, h http.Handler, method, path, ctype, body string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var env map[string]any
	raw, _ := io.ReadAll(rec.Body)
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatalf("%s %s: response is not a JSON envelope: %q", method, path, raw)
	}
	if int(env["code"].(float64)) != rec.Code {
		t.Fatalf("envelope code %v != HTTP %d", env["code"], rec.Code)
	}
	return rec.Code, env
}

func TestInputErrors(t *testing.T) {
	s := New(Options{Evidence: unreachable{t}, MaxBody: 1024})
	noPolicy := `{"type":"tpm","data":{"quote":"q","nonce":"n","hash_alg":"sha256","tpm_ak":"a","tpm_ek":"e"}}`
	tests := []struct {
		name, method, path, ctype, body string
		code                            int
		failure                         string
	}{
		{"malformed json", "POST", "/v2.3/verify/evidence", "application/json", `{"type":`, 400, ""},
		{"oversized", "POST", "/v2.3/verify/evidence", "application/json", `{"x":"` + strings.Repeat("a", 2000) + `"}`, 413, ""},
		{"wrong content type", "POST", "/v2.3/verify/evidence", "text/plain", `{}`, 415, ""},
		{"no content type", "POST", "/v2.3/verify/evidence", "", `{}`, 415, ""},
		{"unsupported version", "POST", "/v9.9/verify/evidence", "application/json", `{}`, 400, ""},
		{"missing policy", "POST", "/v2.3/verify/evidence", "application/json", noPolicy, 400, verifier.MissingPolicy},
		{"missing data", "POST", "/v3.0/verify/evidence", "application/json", `{"type":"tpm"}`, 400, verifier.MissingParam},
		{"unknown route", "GET", "/v2.3/agents/x", "", "", 404, ""},
		{"wrong method", "GET", "/v2.3/verify/evidence", "", "", 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
			if tt.ctype != "" {
				req.Header.Set("Content-Type", tt.ctype)
			}
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			if rec.Code != tt.code {
				t.Fatalf("HTTP %d, want %d: %s", rec.Code, tt.code, rec.Body)
			}
			if tt.failure != "" {
				var env struct {
					Results struct {
						Valid    bool `json:"valid"`
						Failures []struct {
							Type string `json:"type"`
						} `json:"failures"`
					} `json:"results"`
				}
				if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
					t.Fatal(err)
				}
				if env.Results.Valid || len(env.Results.Failures) == 0 || env.Results.Failures[0].Type != tt.failure {
					t.Fatalf("results = %+v, want failure %s", env.Results, tt.failure)
				}
			}
		})
	}
	// The server keeps serving after all of that.
	code, env := do(t, s, "GET", "/version", "", "")
	if code != 200 || env["results"].(map[string]any)["current_version"] != CurrentVersion {
		t.Fatalf("version: %d %v", code, env)
	}
	if got := s.Metrics().Value("zest_http_requests_total", "/{ver}/verify/evidence", "413"); got != 1 {
		t.Fatalf("413 counter = %v", got)
	}
}

func TestMetricsText(t *testing.T) {
	m := NewMetrics()
	m.Declare("zest_rounds_total", "counter", "Rounds.", "verdict")
	m.Add("zest_rounds_total", 2, "trusted")
	m.Add("zest_rounds_total", 1, `re"j`)
	m.Add("zest_rounds_total", 1, "too", "many") // wrong arity: ignored
	txt := m.Text()
	for _, want := range []string{
		"# TYPE zest_rounds_total counter\n",
		`zest_rounds_total{verdict="trusted"} 2` + "\n",
		`zest_rounds_total{verdict="re\"j"} 1` + "\n",
	} {
		if !strings.Contains(txt, want) {
			t.Errorf("metrics text lacks %q:\n%s", want, txt)
		}
	}
}
