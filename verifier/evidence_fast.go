package verifier

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math/bits"
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
			if _, ok := p.skipStr(); !ok {
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
// returns its value and its raw bytes (quotes included). It works a
// segment (the bytes between two escapes) at a time with bytes.IndexByte
// and checks 8 bytes per step: an IMA list is megabytes with an escaped
// newline every hundred bytes.
func (p *fastParser) str() (string, []byte, bool) { return p.scan(true) }

// skipStr is str for a value only needed as raw bytes (policies, unknown
// fields): it is checked as str checks it (closingQuoteDense), but not
// built.
func (p *fastParser) skipStr() ([]byte, bool) {
	_, raw, ok := p.scan(false)
	return raw, ok
}

func (p *fastParser) scan(build bool) (string, []byte, bool) {
	p.ws()
	if p.i >= len(p.b) || p.b[p.i] != '"' {
		return "", nil, false
	}
	start := p.i
	p.i++
	// First find the closing quote, checking the bytes and escapes on
	// the way, so a value only kept raw is walked once and a built one
	// is built once at its exact size. Values kept raw are mostly
	// policies, dense with escaped quotes.
	find := closingQuote
	if !build {
		find = closingQuoteDense
	}
	end, escapes, ok := find(p.b, p.i)
	if !ok {
		return "", nil, false
	}
	if !build {
		p.i = end + 1
		return "", p.b[start:p.i], true
	}
	if escapes == 0 {
		s := string(p.b[p.i:end])
		p.i = end + 1
		return s, p.b[start:p.i], true
	}
	var sb strings.Builder
	sb.Grow(end - p.i - escapes)
	for p.i < end {
		seg := p.b[p.i:end]
		if k := bytes.IndexByte(seg, '\\'); k >= 0 {
			seg = seg[:k]
		}
		sb.Write(seg)
		p.i += len(seg)
		if p.i == end {
			break
		}
		sb.WriteByte(unescape(p.b[p.i+1]))
		p.i += 2
	}
	p.i = end + 1
	return sb.String(), p.b[start:p.i], true
}

// unescape returns the byte a simple escape (backslash and c) stands for,
// or 0 for \u and invalid escapes, which encoding/json decides.
func unescape(c byte) byte {
	switch c {
	case '"', '\\', '/':
		return c
	case 'b':
		return '\b'
	case 'f':
		return '\f'
	case 'n':
		return '\n'
	case 'r':
		return '\r'
	case 't':
		return '\t'
	}
	return 0
}

// closingQuote finds the quote that ends the string whose contents start
// at i and counts the escapes before it; ok is false unless every byte
// up to it is plain ASCII (plainASCII) or a simple escape (unescape). It
// works a segment between escapes at a time with bytes.IndexByte: an IMA
// list is megabytes with an escaped newline every hundred bytes.
func closingQuote(b []byte, i int) (end, escapes int, ok bool) {
	q := bytes.IndexByte(b[i:], '"')
	if q < 0 {
		return 0, 0, false
	}
	q += i
	for {
		bs := bytes.IndexByte(b[i:q], '\\')
		if bs < 0 {
			return q, escapes, plainASCII(b[i:q])
		}
		// b[i+bs+1] exists: at worst it is the quote at q.
		if !plainASCII(b[i:i+bs]) || unescape(b[i+bs+1]) == 0 {
			return 0, 0, false
		}
		i += bs + 2 // the backslash and the byte it escapes
		escapes++
		if i > q { // the quote was escaped: find the next one
			if i >= len(b) {
				return 0, 0, false
			}
			n := bytes.IndexByte(b[i:], '"')
			if n < 0 {
				return 0, 0, false
			}
			q = i + n
		}
	}
}

// plainASCII reports whether every byte of b is printable-or-space ASCII
// (0x20-0x7f), the bytes a JSON string may hold unescaped that this
// decoder accepts.
func plainASCII(b []byte) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	for len(b) >= 8 {
		w := binary.LittleEndian.Uint64(b)
		// High bit set (>= 0x80), or a byte below 0x20 (valid once no
		// high bit is set).
		if w&hi != 0 || (w-0x20*lo)&^w&hi != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c < 0x20 || c >= 0x80 {
			return false
		}
	}
	return true
}

// closingQuoteDense is closingQuote for strings with many escapes, such
// as policies sent as JSON strings (an escaped quote every few dozen
// bytes, too often for two calls per escape): it checks 8 bytes a step
// for every byte that needs a look.
func closingQuoteDense(b []byte, i int) (end, escapes int, ok bool) {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	for {
		for i+8 <= len(b) {
			w := binary.LittleEndian.Uint64(b[i:])
			q, bs := w^('"'*lo), w^('\\'*lo)
			// A byte that is a quote or a backslash (zero in q or bs),
			// below 0x20, or 0x80 and up. Each term's lowest set bit is
			// exact (borrows only run upwards from a true hit), so the
			// first flagged byte is special.
			special := ((q-lo)&^q | (bs-lo)&^bs | (w-0x20*lo)&^w | w) & hi
			if special != 0 {
				i += bits.TrailingZeros64(special) / 8
				break
			}
			i += 8
		}
		if i >= len(b) {
			return 0, 0, false
		}
		switch c := b[i]; {
		case c == '"':
			return i, escapes, true
		case c == '\\':
			if i+1 >= len(b) || unescape(b[i+1]) == 0 {
				return 0, 0, false
			}
			i += 2
			escapes++
		case c < 0x20 || c >= 0x80:
			return 0, 0, false
		default:
			i++
		}
	}
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
		var s string
		var raw []byte
		switch key {
		case "quote", "nonce", "hash_alg", "tpm_ak", "tpm_ek", "ima_measurement_list", "mb_log", "mb_list":
			s, raw, ok = p.str()
		default: // policies are kept as raw JSON; unknown fields dropped
			raw, ok = p.skipStr()
		}
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
