package verifier

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/zest-attest/zest/verifier/failure"
)

// Keylime's /verify/evidence input-error event ids. An answer carrying one
// of them is HTTP 400 in Keylime's API.
const (
	MissingParam  = "default.missing_param"
	MissingPolicy = "default.missing_policy"
)

// MaxEvidenceBody bounds a /verify/evidence request body (an IMA list of
// a long-running host plus a UEFI log fit comfortably).
const MaxEvidenceBody = 64 << 20

// EvidenceRequest is the body of Keylime's POST /v2.x/verify/evidence.
type EvidenceRequest struct {
	Type string       `json:"type"`
	Data EvidenceData `json:"data"`
}

// EvidenceData is the "data" object of an evidence request (type "tpm").
// Policies may be given as JSON objects or as JSON strings holding JSON, as
// Keylime's tooling sends them.
type EvidenceData struct {
	Quote              string          `json:"quote"`
	Nonce              string          `json:"nonce"`
	HashAlg            string          `json:"hash_alg"`
	TPMAK              string          `json:"tpm_ak"`
	TPMEK              string          `json:"tpm_ek"`
	TPMPolicy          json.RawMessage `json:"tpm_policy,omitempty"`
	RuntimePolicy      json.RawMessage `json:"runtime_policy,omitempty"`
	MBPolicy           json.RawMessage `json:"mb_policy,omitempty"`
	IMAMeasurementList string          `json:"ima_measurement_list,omitempty"`
	MBLog              string          `json:"mb_log,omitempty"`
	// MBList is the name Keylime's documentation uses for mb_log; both
	// are accepted, and giving both with different values is an error.
	MBList string `json:"mb_list,omitempty"`
}

// ParseEvidenceRequest decodes a /verify/evidence body. Unknown fields are
// ignored, as Keylime ignores them, so existing tooling keeps working. The returned
// failures are input errors (missing_param / missing_policy) in Keylime's
// vocabulary; err is for bodies that are not JSON of the right shape.
func ParseEvidenceRequest(body []byte) (*EvidenceRequest, failure.List, error) {
	if len(body) > MaxEvidenceBody {
		return nil, nil, fmt.Errorf("evidence body is %d bytes, limit %d", len(body), MaxEvidenceBody)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, nil, fmt.Errorf("evidence body: %w", err)
	}
	var req EvidenceRequest
	var fl failure.List
	if raw, ok := top["type"]; !ok || json.Unmarshal(raw, &req.Type) != nil || req.Type == "" {
		fl.Errorf(MissingParam, map[string]any{"param": "type"}, "the request has no evidence type")
	}
	raw, ok := top["data"]
	if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		fl.Errorf(MissingParam, map[string]any{"param": "data"}, "the request has no data object")
		return &req, fl, nil
	}
	if err := json.Unmarshal(raw, &req.Data); err != nil {
		return nil, nil, fmt.Errorf("evidence data: %w", err)
	}
	if d := &req.Data; d.MBList != "" {
		if d.MBLog != "" && d.MBLog != d.MBList {
			return nil, nil, fmt.Errorf("evidence data: mb_log and mb_list differ")
		}
		d.MBLog, d.MBList = d.MBList, ""
	}
	if req.Type != "" && req.Type != "tpm" {
		fl.Errorf(MissingParam, map[string]any{"param": "type", "got": req.Type}, "evidence type %q is not supported (only \"tpm\")", req.Type)
	}
	d := &req.Data
	for _, p := range []struct{ name, v string }{
		{"quote", d.Quote}, {"nonce", d.Nonce}, {"hash_alg", d.HashAlg}, {"tpm_ak", d.TPMAK}, {"tpm_ek", d.TPMEK},
	} {
		if p.v == "" {
			fl.Errorf(MissingParam, map[string]any{"param": p.name}, "required parameter %q is missing", p.name)
		}
	}
	if isEmptyJSON(d.TPMPolicy) && isEmptyJSON(d.RuntimePolicy) && isEmptyJSON(d.MBPolicy) {
		fl.Errorf(MissingPolicy, nil, "at least one of tpm_policy, runtime_policy and mb_policy is required")
	}
	return &req, fl, nil
}

// PolicyBytes returns a policy field as the JSON document it holds: a JSON
// string is unwrapped, an object is returned as is, empty/null gives nil.
func PolicyBytes(raw json.RawMessage) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	if isEmptyJSON(raw) {
		return nil, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		if s == "" {
			return nil, nil
		}
		return []byte(s), nil
	}
	return raw, nil
}

// MBLogBytes decodes the base64 UEFI event log of an evidence request.
func (d *EvidenceData) MBLogBytes() ([]byte, error) {
	if d.MBLog == "" {
		return nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(d.MBLog)
	if err != nil {
		return nil, fmt.Errorf("mb_log: not base64: %w", err)
	}
	return b, nil
}

func isEmptyJSON(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	switch string(t) {
	case "", "null", `""`, "{}", `"{}"`:
		return true
	}
	return false
}
