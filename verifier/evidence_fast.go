package verifier

import (
	"encoding/json"
	"strings"
)

// fastDecodeEvidence decodes the common shape of an evidence body — a
// top-level object of strings and a data object whose values are all
// ASCII strings (how Keylime's tooling sends it, policies as JSON strings)
// — in one tight pass: encoding/json scans a string a byte at a time
// through its state machine twice, which for megabytes of IMA list and
// policy cost more than evaluating them. Anything else (numbers, nested
// values, \u escapes, non-ASCII bytes, keys that differ only in case)
// returns ok=false and the caller decodes with encoding/json, so both
// paths give the same result for every body this one accepts
// (FuzzEvidenceFastPath checks that).
func fastDecodeEvidence(body []byte) (req *EvidenceRequest, hasData, ok bool) {
	p := &fastParser{b: body}
	req = &EvidenceRequest{}
	if !p.objectStart() {
		return nil, false, false
	}
	for first := true; ; first = false {
		key, more, ok := p.nextKey(first)
		if !ok {
			return nil, false, false
		}
		if !more {
			break
		}
		switch {
		case key == "data":
			p.ws()
			if p.literal("null") {
				req.Data, req.RawData, hasData = EvidenceData{}, nil, false
				continue
			}
			start := p.i
			d, ok := p.data()
			if !ok {
				return nil, false, false
			}
			req.Data, req.RawData, hasData = d, body[start:p.i], true
		case key == "type":
			s, _, ok := p.str()
			if !ok {
				return nil, false, false
			}
			req.Type = s
		case strings.EqualFold(key, "data") || strings.EqualFold(key, "type"):
			return nil, false, false // encoding/json folds case
		default:
			if _, _, ok := p.str(); !ok {
				return nil, false, false
			}
		}
	}
	p.ws()
	if p.i != len(p.b) {
		return nil, false, false
	}
	return req, hasData, true
}

type fastParser struct {
	b []byte
	i int
}

func (p *fastParser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *fastParser) literal(s string) bool {
	if strings.HasPrefix(string(p.b[p.i:min(len(p.b), p.i+len(s))]), s) {
		p.i += len(s)
		return true
	}
	return false
}

func (p *fastParser) objectStart() bool {
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '{' {
		p.i++
		return true
	}
	return false
}

// nextKey reads `"key":` (after a comma unless first), or the closing
// brace (more=false).
func (p *fastParser) nextKey(first bool) (key string, more, ok bool) {
	p.ws()
	if p.i < len(p.b) && p.b[p.i] == '}' {
		p.i++
		return "", false, true
	}
	if !first {
		if p.i >= len(p.b) || p.b[p.i] != ',' {
			return "", false, false
		}
		p.i++
		p.ws()
	}
	key, _, ok = p.str()
	if !ok {
		return "", false, false
	}
	p.ws()
	if p.i >= len(p.b) || p.b[p.i] != ':' {
		return "", false, false
	}
	p.i++
	return key, true, true
}

// str reads a JSON string of ASCII characters with simple escapes and
// returns its value and its raw bytes (quotes included).
func (p *fastParser) str() (string, []byte, bool) {
	p.ws()
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return "", nil, false
	}
	start := p.i
	p.i++
	// First find the closing quote (and the escapes), so the value is
	// built once at its exact size: an IMA list is megabytes.
	end, escapes := p.i, 0
	for ; end < len(p.b) && p.b[end] != '"'; end++ {
		if p.b[end] == '\\' {
			end++
			escapes++
		}
	}
	if end >= len(p.b) {
		return "", nil, false
	}
	if escapes == 0 {
		for _, c := range p.b[p.i:end] {
			if c < 0x20 || c >= 0x80 {
				return "", nil, false
			}
		}
		s := string(p.b[p.i:end])
		p.i = end + 1
		return s, p.b[start:p.i], true
	}
	var sb strings.Builder
	sb.Grow(end - p.i - escapes)
	seg := p.i
	for p.i < end {
		c := p.b[p.i]
		switch {
		case c == '\\':
			var r byte
			switch p.b[p.i+1] {
			case '"', '\\', '/':
				r = p.b[p.i+1]
			case 'b':
				r = '\b'
			case 'f':
				r = '\f'
			case 'n':
				r = '\n'
			case 'r':
				r = '\r'
			case 't':
				r = '\t'
			default: // \u and invalid escapes: encoding/json decides
				return "", nil, false
			}
			sb.Write(p.b[seg:p.i])
			sb.WriteByte(r)
			p.i += 2
			seg = p.i
		case c < 0x20 || c >= 0x80:
			return "", nil, false
		default:
			p.i++
		}
	}
	sb.Write(p.b[seg:end])
	p.i = end + 1
	return sb.String(), p.b[start:p.i], true
}

// data reads the data object: every value a string.
func (p *fastParser) data() (EvidenceData, bool) {
	var d EvidenceData
	if !p.objectStart() {
		return d, false
	}
	for first := true; ; first = false {
		key, more, ok := p.nextKey(first)
		if !ok {
			return d, false
		}
		if !more {
			return d, true
		}
		s, raw, ok := p.str()
		if !ok {
			return d, false
		}
		switch key {
		case "quote":
			d.Quote = s
		case "nonce":
			d.Nonce = s
		case "hash_alg":
			d.HashAlg = s
		case "tpm_ak":
			d.TPMAK = s
		case "tpm_ek":
			d.TPMEK = s
		case "tpm_policy":
			d.TPMPolicy = json.RawMessage(raw)
		case "runtime_policy":
			d.RuntimePolicy = json.RawMessage(raw)
		case "mb_policy":
			d.MBPolicy = json.RawMessage(raw)
		case "ima_measurement_list":
			d.IMAMeasurementList = s
		case "mb_log":
			d.MBLog = s
		case "mb_list":
			d.MBList = s
		default:
			for _, f := range evidenceFields {
				if strings.EqualFold(key, f) {
					return d, false // encoding/json folds case
				}
			}
		}
	}
}

var evidenceFields = []string{"quote", "nonce", "hash_alg", "tpm_ak", "tpm_ek", "tpm_policy", "runtime_policy", "mb_policy", "ima_measurement_list", "mb_log", "mb_list"}
