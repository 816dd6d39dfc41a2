package verifier

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/zest-attest/zest/policygen"
	"github.com/zest-attest/zest/verifier/failure"
)

type quoteVector struct {
	AIKPEM  string `json:"aik_pem"`
	Nonce   string `json:"nonce"`
	Sig     string `json:"sigblob_b64"`
	Quote   string `json:"quoteblob_b64"`
	PCRBlob string `json:"pcrblob_b64"`
	HashAlg string `json:"hash_alg"`
}

func loadVector(t *testing.T) quoteVector {
	t.Helper()
	b, err := os.ReadFile("../fixtures/keylime/quote-vector.json")
	if err != nil {
		t.Fatal(err)
	}
	var v quoteVector
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func evidenceBody(t *testing.T, v quoteVector, mutate func(d map[string]any)) []byte {
	t.Helper()
	d := map[string]any{
		"quote":      "r" + v.Quote + ":" + v.Sig + ":" + v.PCRBlob,
		"nonce":      v.Nonce,
		"hash_alg":   v.HashAlg,
		"tpm_ak":     base64.StdEncoding.EncodeToString([]byte(v.AIKPEM)),
		"tpm_ek":     "unused",
		"tpm_policy": `{"mask":"0x10000"}`,
	}
	if mutate != nil {
		mutate(d)
	}
	b, err := json.Marshal(map[string]any{"type": "tpm", "data": d})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyEvidenceKeylimeVector(t *testing.T) {
	v := loadVector(t)
	tests := []struct {
		name    string
		mutate  func(d map[string]any)
		verdict failure.Verdict
		id      string
	}{
		{"vector verifies", nil, failure.VerdictTrusted, ""},
		{"other nonce", func(d map[string]any) { d["nonce"] = "Ai5M5SjYjnkyv4P7itH2" }, failure.VerdictRejected, failure.QuoteInvalid},
		{"pcr not quoted", func(d map[string]any) { d["tpm_policy"] = `{"mask":"0x8000"}` }, failure.VerdictRejected, failure.PCRMissing},
		{"bad ak", func(d map[string]any) { d["tpm_ak"] = "AAAA" }, failure.VerdictError, failure.QuoteNoPubkey},
		{"bad runtime policy", func(d map[string]any) { d["runtime_policy"] = `{"digests":7}` }, failure.VerdictError, MissingPolicy},
		{"mb policy not configured", func(d map[string]any) { d["mb_policy"] = `{"has_secureboot":false}` }, failure.VerdictError, failure.MBPolicyInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, inputErrs, err := ParseEvidenceRequest(evidenceBody(t, v, tt.mutate))
			if err != nil || len(inputErrs) > 0 {
				t.Fatal(err, inputErrs)
			}
			r := VerifyEvidence(req, EvidenceOptions{})
			if r.Verdict != tt.verdict || (tt.id != "" && !hasID(r.Failures, tt.id)) {
				t.Fatalf("verdict %v failures %v; want %v %s", r.Verdict, r.Failures, tt.verdict, tt.id)
			}
		})
	}
}

// TestPolicyCache: a cached policy gives the same verdicts as a fresh
// compile; the cache is keyed by the field's bytes and bounded.
func TestPolicyCache(t *testing.T) {
	v := loadVector(t)
	withPolicy := func(rp string) *EvidenceRequest {
		req, _, err := ParseEvidenceRequest(evidenceBody(t, v, func(d map[string]any) { d["runtime_policy"] = rp }))
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	policy := func(path, digest string) string {
		p := policygen.NewRuntimePolicy()
		p.Digests[path] = []string{strings.Repeat(digest, 32)}
		b, err := p.Marshal(policygen.FormatKeylime)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	good, other := policy("/usr/bin/a", "ab"), policy("/usr/bin/b", "cd")
	cache := NewPolicyCache(1)
	for i, rp := range []string{good, good, other, good, `{"digests":7}`, `{"digests":7}`} {
		want := VerifyEvidence(withPolicy(rp), EvidenceOptions{})
		got := VerifyEvidence(withPolicy(rp), EvidenceOptions{Cache: cache})
		if got.Verdict != want.Verdict || strings.Join(got.Failures.IDs(), ",") != strings.Join(want.Failures.IDs(), ",") {
			t.Fatalf("request %d: cached %v %v, fresh %v %v", i, got.Verdict, got.Failures, want.Verdict, want.Failures)
		}
		if len(cache.m) != 1 || len(cache.order) != 1 {
			t.Fatalf("request %d: cache holds %d", i, len(cache.m))
		}
	}
	if cache.get([]byte(`"`+strings.ReplaceAll(good, `"`, `\"`)+`"`)) == nil {
		t.Fatal("the last good policy is not cached under its field bytes")
	}
}
