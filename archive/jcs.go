package archive

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxCanonicalDepth bounds nesting so hostile input cannot exhaust the stack.
const maxCanonicalDepth = 64

// Canonicalize returns the RFC 8785 (JSON Canonicalization Scheme) form of
// the JSON text in: object members sorted by their UTF-16 code units, no
// insignificant whitespace, strings escaped minimally, numbers in
// ECMAScript shortest form. Duplicate object keys and invalid UTF-8 are
// errors (RFC 8785 §3.1 requires I-JSON input).
func Canonicalize(in []byte) ([]byte, error) {
	if !utf8.Valid(in) {
		return nil, fmt.Errorf("canonical JSON: invalid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(in))
	dec.UseNumber()
	var buf bytes.Buffer
	if err := canonValue(dec, &buf, 0); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, fmt.Errorf("canonical JSON: trailing data at offset %d", dec.InputOffset())
	}
	return buf.Bytes(), nil
}

// MarshalCanonical encodes v with encoding/json and canonicalizes it.
func MarshalCanonical(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return Canonicalize(b)
}

func canonValue(dec *json.Decoder, buf *bytes.Buffer, depth int) error {
	if depth > maxCanonicalDepth {
		return fmt.Errorf("canonical JSON: nesting deeper than %d at offset %d", maxCanonicalDepth, dec.InputOffset())
	}
	off := dec.InputOffset()
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("canonical JSON: offset %d: %w", off, err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			return canonObject(dec, buf, depth)
		case '[':
			buf.WriteByte('[')
			for i := 0; dec.More(); i++ {
				if i > 0 {
					buf.WriteByte(',')
				}
				if err := canonValue(dec, buf, depth+1); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil {
				return fmt.Errorf("canonical JSON: offset %d: %w", dec.InputOffset(), err)
			}
			buf.WriteByte(']')
			return nil
		}
		return fmt.Errorf("canonical JSON: unexpected %q at offset %d", t, off)
	case string:
		return canonString(buf, t, off)
	case json.Number:
		s, err := canonNumber(string(t))
		if err != nil {
			return fmt.Errorf("canonical JSON: offset %d: %w", off, err)
		}
		buf.WriteString(s)
	case bool:
		buf.WriteString(strconv.FormatBool(t))
	case nil:
		buf.WriteString("null")
	}
	return nil
}

type member struct {
	key   string
	value []byte
}

func canonObject(dec *json.Decoder, buf *bytes.Buffer, depth int) error {
	var members []member
	seen := map[string]bool{}
	for dec.More() {
		off := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("canonical JSON: offset %d: %w", off, err)
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("canonical JSON: object key expected at offset %d", off)
		}
		if seen[key] {
			return fmt.Errorf("canonical JSON: duplicate key %q at offset %d", key, off)
		}
		seen[key] = true
		if !utf8.ValidString(key) {
			return fmt.Errorf("canonical JSON: invalid UTF-8 in key at offset %d", off)
		}
		var v bytes.Buffer
		if err := canonValue(dec, &v, depth+1); err != nil {
			return err
		}
		members = append(members, member{key, v.Bytes()})
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("canonical JSON: offset %d: %w", dec.InputOffset(), err)
	}
	sort.Slice(members, func(i, j int) bool { return lessUTF16(members[i].key, members[j].key) })
	buf.WriteByte('{')
	for i, m := range members {
		if i > 0 {
			buf.WriteByte(',')
		}
		_ = canonString(buf, m.key, 0)
		buf.WriteByte(':')
		buf.Write(m.value)
	}
	buf.WriteByte('}')
	return nil
}

// lessUTF16 orders strings by UTF-16 code units (RFC 8785 §3.2.3), which
// differs from byte order for characters beyond the BMP.
func lessUTF16(a, b string) bool {
	unit := func(r rune) rune {
		if r >= 0x10000 {
			return 0xD800 + (r-0x10000)>>10 // the high surrogate
		}
		return r
	}
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb {
			if ua, ub := unit(ra), unit(rb); ua != ub {
				return ua < ub
			}
			return ra < rb // same high surrogate: the low ones order as the runes do
		}
		a, b = a[na:], b[nb:]
	}
	return a == "" && b != ""
}

func canonString(buf *bytes.Buffer, s string, off int64) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("canonical JSON: invalid UTF-8 in string at offset %d", off)
	}
	buf.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			buf.WriteString(`\"`)
		case '\\':
			buf.WriteString(`\\`)
		case '\b':
			buf.WriteString(`\b`)
		case '\f':
			buf.WriteString(`\f`)
		case '\n':
			buf.WriteString(`\n`)
		case '\r':
			buf.WriteString(`\r`)
		case '\t':
			buf.WriteString(`\t`)
		default:
			if r < 0x20 {
				fmt.Fprintf(buf, `\u%04x`, r)
			} else {
				buf.WriteRune(r)
			}
		}
	}
	buf.WriteByte('"')
	return nil
}

// canonNumber formats a JSON number the way ECMAScript's
// Number.prototype.toString does (RFC 8785 §3.2.2.3).
func canonNumber(s string) (string, error) {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return "", fmt.Errorf("number %q is not an IEEE 754 double", s)
	}
	if f == 0 {
		return "0", nil
	}
	abs := math.Abs(f)
	if abs >= 1e-6 && abs < 1e21 {
		return strconv.FormatFloat(f, 'f', -1, 64), nil
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // 1.5e+21, 1e-07
	mant, exp, _ := strings.Cut(e, "e")
	sign := exp[0]
	exp = strings.TrimLeft(exp[1:], "0")
	return mant + "e" + string(sign) + exp, nil
}

// IsCanonical reports whether in is already in RFC 8785 canonical form,
// exactly when Canonicalize(in) succeeds and returns in unchanged, but in
// one pass without building a copy (replay checks every record body).
func IsCanonical(in []byte) bool {
	if !utf8.Valid(in) {
		return false
	}
	c := canonChecker{b: in}
	return c.value(0) && c.p == len(in)
}

type canonChecker struct {
	b []byte
	p int
}

func (c *canonChecker) value(depth int) bool {
	if depth > maxCanonicalDepth || c.p >= len(c.b) {
		return false
	}
	switch ch := c.b[c.p]; {
	case ch == '{':
		return c.object(depth)
	case ch == '[':
		c.p++
		if c.p < len(c.b) && c.b[c.p] == ']' {
			c.p++
			return true
		}
		for {
			if !c.value(depth + 1) {
				return false
			}
			if c.p >= len(c.b) {
				return false
			}
			switch c.b[c.p] {
			case ',':
				c.p++
			case ']':
				c.p++
				return true
			default:
				return false
			}
		}
	case ch == '"':
		_, ok := c.str()
		return ok
	case ch == '-' || ch >= '0' && ch <= '9':
		return c.number()
	default:
		for _, lit := range [...]string{"true", "false", "null"} {
			if len(c.b)-c.p >= len(lit) && string(c.b[c.p:c.p+len(lit)]) == lit {
				c.p += len(lit)
				return true
			}
		}
		return false
	}
}

func (c *canonChecker) object(depth int) bool {
	c.p++ // '{'
	if c.p < len(c.b) && c.b[c.p] == '}' {
		c.p++
		return true
	}
	var prev []byte
	for i := 0; ; i++ {
		if c.p >= len(c.b) || c.b[c.p] != '"' {
			return false
		}
		key, ok := c.str()
		if !ok || c.p >= len(c.b) || c.b[c.p] != ':' {
			return false
		}
		// Members strictly ascending: sorted and no duplicates.
		if i > 0 && !lessUTF16(string(prev), string(key)) {
			return false
		}
		prev = key
		c.p++
		if !c.value(depth + 1) {
			return false
		}
		if c.p >= len(c.b) {
			return false
		}
		switch c.b[c.p] {
		case ',':
			c.p++
		case '}':
			c.p++
			return true
		default:
			return false
		}
	}
}

// str checks a string in canonical escaping and returns its decoded value
// (the raw bytes when nothing is escaped).
func (c *canonChecker) str() ([]byte, bool) {
	c.p++ // '"'
	start := c.p
	var dec []byte
	escaped := false
	for c.p < len(c.b) {
		ch := c.b[c.p]
		switch {
		case ch == '"':
			if !escaped {
				dec = c.b[start:c.p]
			}
			c.p++
			return dec, true
		case ch < 0x20:
			return nil, false
		case ch == '\\':
			if !escaped {
				dec, escaped = append([]byte(nil), c.b[start:c.p]...), true
			}
			if c.p+1 >= len(c.b) {
				return nil, false
			}
			if r := shortEscape(c.b[c.p+1]); r != 0 {
				dec = append(dec, r)
				c.p += 2
				continue
			}
			e := c.b[c.p+1]
			// Only control characters without a short form use \u00xx,
			// in lowercase hex.
			if e != 'u' || c.p+6 > len(c.b) || string(c.b[c.p+2:c.p+4]) != "00" {
				return nil, false
			}
			v, err := strconv.ParseUint(string(c.b[c.p+4:c.p+6]), 16, 8)
			if err != nil || v >= 0x20 || strings.ContainsAny(string(c.b[c.p+4:c.p+6]), "ABCDEF") {
				return nil, false
			}
			switch byte(v) {
			case '\b', '\f', '\n', '\r', '\t':
				return nil, false
			}
			dec = append(dec, byte(v))
			c.p += 6
		default:
			if escaped {
				dec = append(dec, ch)
			}
			c.p++
		}
	}
	return nil, false
}

// shortEscape returns what a two-character escape stands for, 0 if none.
func shortEscape(e byte) byte {
	switch e {
	case '"', '\\':
		return e
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

func (c *canonChecker) number() bool {
	start := c.p
	if c.b[c.p] == '-' {
		c.p++
	}
	digits := func() int {
		n := 0
		for c.p < len(c.b) && c.b[c.p] >= '0' && c.b[c.p] <= '9' {
			c.p++
			n++
		}
		return n
	}
	intStart := c.p
	n := digits()
	if n == 0 || n > 1 && c.b[intStart] == '0' {
		return false
	}
	integer := true
	if c.p < len(c.b) && c.b[c.p] == '.' {
		c.p++
		if digits() == 0 {
			return false
		}
		integer = false
	}
	if c.p < len(c.b) && (c.b[c.p] == 'e' || c.b[c.p] == 'E') {
		c.p++
		if c.p < len(c.b) && (c.b[c.p] == '+' || c.b[c.p] == '-') {
			c.p++
		}
		if digits() == 0 {
			return false
		}
		integer = false
	}
	lit := c.b[start:c.p]
	if integer && n <= 15 {
		// Exactly representable: ECMAScript prints the same digits,
		// except for negative zero.
		return string(lit) != "-0"
	}
	s, err := canonNumber(string(lit))
	return err == nil && s == string(lit)
}
