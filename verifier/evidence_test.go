package verifier

import (
	"strings"
	"testing"

	"github.com/zest-attest/zest/verifier/failure"
)

func TestParseEvidenceRequest(t *testing.T) {
	full := `{"quote":"rAA:BB:CC","nonce":"n","hash_alg":"sha256","tpm_ak":"ak","tpm_ek":"ek","runtime_policy":"{\"meta\":{}}"}`
	tests := []struct {
		name, body string
		ids        []string
		err        string
	}{
		{"ok", `{"type":"tpm","data":` + full + `}`, nil, ""},
		{"no type", `{"data":` + full + `}`, []string{MissingParam}, ""},
		{"no data", `{"type":"tpm"}`, []string{MissingParam}, ""},
		{"tee", `{"type":"tee","data":` + full + `}`, []string{MissingParam}, ""},
		{"no policy", `{"type":"tpm","data":{"quote":"q","nonce":"n","hash_alg":"sha256","tpm_ak":"a","tpm_ek":"e","tpm_policy":"{}"}}`, []string{MissingPolicy}, ""},
		{"missing quote and ak", `{"type":"tpm","data":{"nonce":"n","hash_alg":"sha256","tpm_ek":"e","mb_policy":{"a":1}}}`, []string{MissingParam, MissingParam}, ""},
		{"unknown field ignored", `{"type":"tpm","data":{"quote":"q","nonce":"n","hash_alg":"sha256","tpm_ak":"a","tpm_ek":"e","mb_policy":{"a":1},"bogus":1}}`, nil, ""},
		{"mb_log vs mb_list", `{"type":"tpm","data":{"mb_log":"AA==","mb_list":"AQ=="}}`, nil, "differ"},
		{"data not object", `{"type":"tpm","data":[1]}`, nil, "evidence data"},
		{"not json", `{"type":`, nil, "evidence body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, fl, err := ParseEvidenceRequest([]byte(tt.body))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(fl.IDs(), ","); got != strings.Join(tt.ids, ",") {
				t.Fatalf("ids = %q, want %q", got, tt.ids)
			}
			if len(tt.ids) > 0 && fl.Verdict().String() != "error" {
				t.Fatal("input errors must give verdict error")
			}
		})
	}
}

func TestPolicyBytes(t *testing.T) {
	for in, want := range map[string]string{`"{\"a\":1}"`: `{"a":1}`, `{"a":1}`: `{"a":1}`, `""`: ``, `null`: ``} {
		b, err := PolicyBytes([]byte(in))
		if err != nil || string(b) != want {
			t.Errorf("PolicyBytes(%s) = %q, %v; want %q", in, b, err, want)
		}
	}
}

func FuzzParseEvidenceRequest(f *testing.F) {
	f.Add([]byte(`{"type":"tpm","data":{"quote":"rAA:BB:CC","nonce":"n","hash_alg":"sha256","tpm_ak":"a","tpm_ek":"e","tpm_policy":"{}"}}`))
	f.Add([]byte(`{"type":"tpm","data":{"mb_log":"AA==","mb_list":"AA=="}}`))
	f.Add([]byte(`{"data":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, fl, err := ParseEvidenceRequest(body)
		if err != nil {
			return
		}
		if len(fl) > 0 && fl.Verdict() != failure.VerdictError {
			t.Fatalf("input errors must be errors: %v", fl)
		}
		if len(fl) == 0 {
			// A complete request is evaluated; it must never be trusted
			// without a verifiable quote.
			if r := VerifyEvidence(req, EvidenceOptions{}); r.Verdict == failure.VerdictTrusted && r.Quote == nil {
				t.Fatalf("trusted without a verified quote: %+v", r)
			}
		}
	})
}

// TestParseEvidenceRequestOnePass covers the single-pass decoder: the raw
// data echoed as claims, duplicate keys, null data, trailing bytes.
func TestParseEvidenceRequestOnePass(t *testing.T) {
	data := `{"quote":"q", "nonce":"n","hash_alg":"sha256","tpm_ak":"a","tpm_ek":"e","tpm_policy":{"mask":"0x1"}}`
	tests := []struct {
		name, body, raw, typ, err string
	}{
		{"raw data", `{"type":"tpm", "data" :  ` + data + ` , "x":[1,{"y":2}]}`, data, "tpm", ""},
		{"last key wins", `{"type":"tee","type":"tpm","data":{"quote":"old"},"data":` + data + `}`, data, "tpm", ""},
		{"null data", `{"type":"tpm","data":null}`, "", "tpm", ""},
		{"type not a string", `{"type":7,"data":` + data + `}`, data, "", ""},
		{"trailing bytes", `{"type":"tpm","data":` + data + `} {}`, "", "", "after the top-level object"},
		{"array", `[1]`, "", "", "not a JSON object"},
		{"truncated", `{"type":"tpm","data":{"quote":`, "", "", "evidence body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _, err := ParseEvidenceRequest([]byte(tt.body))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(req.RawData) != tt.raw || req.Type != tt.typ {
				t.Fatalf("raw %q type %q; want %q %q", req.RawData, req.Type, tt.raw, tt.typ)
			}
			if tt.raw != "" && req.Data.Quote != "q" {
				t.Fatalf("data not decoded: %+v", req.Data)
			}
		})
	}
}
