package archive

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
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
	ua, ub := utf16.Encode([]rune(a)), utf16.Encode([]rune(b))
	for i := 0; i < len(ua) && i < len(ub); i++ {
		if ua[i] != ub[i] {
			return ua[i] < ub[i]
		}
	}
	return len(ua) < len(ub)
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
