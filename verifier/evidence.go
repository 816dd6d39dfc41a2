package verifier

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"

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
	// RawData is the data object as received (Keylime echoes it as the
	// claims of a valid answer).
	RawData json.RawMessage `json:"-"`
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
	req, hasData, ok := fastDecodeEvidence(body)
	if !ok {
		var err error
		if req, hasData, err = decodeEvidence(body); err != nil {
			return nil, nil, err
		}
	}
	var fl failure.List
	if req.Type == "" {
		fl.Errorf(MissingParam, map[string]any{"param": "type"}, "the request has no evidence type")
	}
	if !hasData {
		fl.Errorf(MissingParam, map[string]any{"param": "data"}, "the request has no data object")
		return req, fl, nil
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
	return req, fl, nil
}

// decodeEvidence reads the top-level object in one pass (the body is
// mostly the IMA list and the policies: every extra scan of it costs as
// much as the evaluation). The last of duplicate keys wins, as with
// json.Unmarshal. hasData is false for a missing or null data.
func decodeEvidence(body []byte) (req *EvidenceRequest, hasData bool, err error) {
	req = &EvidenceRequest{}
	dec := json.NewDecoder(bytes.NewReader(body))
	bodyErr := func(err error) error { return fmt.Errorf("evidence body: %w", err) }
	if tok, err := dec.Token(); err != nil {
		return nil, false, bodyErr(err)
	} else if tok != json.Delim('{') {
		return nil, false, bodyErr(fmt.Errorf("not a JSON object"))
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false, bodyErr(err)
		}
		key, _ := tok.(string)
		switch key {
		case "type":
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, false, bodyErr(err)
			}
			req.Type = ""
			_ = json.Unmarshal(raw, &req.Type) // not a string: missing
		case "data":
			start := dec.InputOffset()
			var d *EvidenceData
			if err := dec.Decode(&d); err != nil {
				var te *json.UnmarshalTypeError
				if errors.As(err, &te) {
					return nil, false, fmt.Errorf("evidence data: %w", err)
				}
				return nil, false, bodyErr(err)
			}
			hasData = d != nil
			if d == nil {
				d = &EvidenceData{}
			}
			req.Data = *d
			req.RawData = nil
			if hasData {
				req.RawData = bytes.TrimLeft(body[start:dec.InputOffset()], " \t\r\n:")
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, false, bodyErr(err)
			}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, false, bodyErr(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false, bodyErr(fmt.Errorf("data after the top-level object"))
	}
	return req, hasData, nil
}

// PolicyBytes returns a policy field as the JSON document it holds: a JSON
// string is unwrapped, an object is returned as is, empty/null gives nil.
func PolicyBytes(raw json.RawMessage) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	if isEmptyJSON(raw) {
		return nil, nil
	}
	if raw[0] == '"' {
		// Policies of megabytes come as JSON strings: unquote them in one
		// pass when they are plain ASCII.
		p := &fastParser{b: raw}
		if s, _, ok := p.str(); ok && p.i == len(raw) {
			if s == "" {
				return nil, nil
			}
			return []byte(s), nil
		}
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
