package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"iter"
	"math"
	"strconv"
	"unicode/utf8"
)

// A policy is validated in two passes over its bytes: scan checks the JSON
// grammar once (so every later step may trust the syntax), then the walker
// iterates values lazily by their byte spans. Nothing is decoded into a tree,
// so memory stays proportional to nesting depth plus the strings actually
// inspected, and a 200,000-path digests map costs one pass and no
// allocation per path.

// Limits on untrusted input.
const (
	// MaxInputSize bounds the document Validate and Detect accept.
	MaxInputSize = 256 << 20
	// maxDepth bounds nesting; Python's json raises RecursionError near 1000.
	maxDepth = 512
	// maxIntDigits is CPython's int_max_str_digits default (3.11+): json.loads
	// rejects longer integer literals, so Keylime cannot load them either.
	maxIntDigits = 4300
)

type jkind uint8

const (
	jNull jkind = iota + 1
	jBool
	jNumber
	jString
	jArray
	jObject
)

// jval is one JSON value of a scanned document: its kind and the byte span
// [off, end) it occupies. Strings include their quotes.
type jval struct {
	kind     jkind
	off, end int
}

// syntaxError locates a grammar violation by byte offset.
type syntaxError struct {
	off int
	msg string
}

func (e *syntaxError) Error() string { return fmt.Sprintf("byte %d: %s", e.off, e.msg) }

// lineCol turns a byte offset into a 1-based line and column (in bytes), for
// messages an operator can follow in an editor.
func lineCol(data []byte, off int) (line, col int) {
	line, col = 1, 1
	for i := 0; i < off && i < len(data); i++ {
		if data[i] == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return line, col
}

// scan checks that data is exactly one JSON value (RFC 8259) encoded as UTF-8,
// optionally surrounded by whitespace, and returns that value.
func scan(data []byte) (jval, error) {
	s := scanner{data: data}
	v, err := s.value()
	if err != nil {
		return jval{}, err
	}
	s.ws()
	if s.pos < len(data) {
		return jval{}, s.errf("unexpected %s after the top-level value", s.describe())
	}
	return v, nil
}

type scanner struct {
	data  []byte
	pos   int
	depth int
}

func (s *scanner) errf(format string, args ...any) error {
	return &syntaxError{off: s.pos, msg: fmt.Sprintf(format, args...)}
}

// describe names the byte at pos for an error message.
func (s *scanner) describe() string {
	if s.pos >= len(s.data) {
		return "end of input"
	}
	c := s.data[s.pos]
	if c < 0x20 || c >= 0x7f {
		return fmt.Sprintf("byte 0x%02x", c)
	}
	return fmt.Sprintf("character %q", rune(c))
}

func (s *scanner) ws() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *scanner) value() (jval, error) {
	s.ws()
	if s.pos >= len(s.data) {
		return jval{}, s.errf("unexpected end of input, expected a value")
	}
	start := s.pos
	switch c := s.data[s.pos]; {
	case c == '{':
		if err := s.object(); err != nil {
			return jval{}, err
		}
		return jval{jObject, start, s.pos}, nil
	case c == '[':
		if err := s.array(); err != nil {
			return jval{}, err
		}
		return jval{jArray, start, s.pos}, nil
	case c == '"':
		if err := s.str(); err != nil {
			return jval{}, err
		}
		return jval{jString, start, s.pos}, nil
	case c == '-' || (c >= '0' && c <= '9'):
		if err := s.number(); err != nil {
			return jval{}, err
		}
		return jval{jNumber, start, s.pos}, nil
	case c == 't':
		return s.literal("true", jBool)
	case c == 'f':
		return s.literal("false", jBool)
	case c == 'n':
		return s.literal("null", jNull)
	}
	return jval{}, s.errf("unexpected %s, expected a value", s.describe())
}

func (s *scanner) literal(lit string, k jkind) (jval, error) {
	start := s.pos
	for i := 0; i < len(lit); i++ {
		if s.pos >= len(s.data) || s.data[s.pos] != lit[i] {
			return jval{}, s.errf("unexpected %s in literal %s", s.describe(), lit)
		}
		s.pos++
	}
	return jval{k, start, s.pos}, nil
}

func (s *scanner) enter() error {
	s.depth++
	if s.depth > maxDepth {
		return s.errf("nesting deeper than %d levels", maxDepth)
	}
	return nil
}

func (s *scanner) object() error {
	if err := s.enter(); err != nil {
		return err
	}
	s.pos++ // '{'
	s.ws()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		s.depth--
		return nil
	}
	for {
		s.ws()
		if s.pos >= len(s.data) || s.data[s.pos] != '"' {
			return s.errf("unexpected %s, expected a string key", s.describe())
		}
		if err := s.str(); err != nil {
			return err
		}
		s.ws()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return s.errf("unexpected %s, expected ':' after object key", s.describe())
		}
		s.pos++
		if _, err := s.value(); err != nil {
			return err
		}
		s.ws()
		if s.pos >= len(s.data) {
			return s.errf("unexpected end of input, expected ',' or '}'")
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
		case '}':
			s.pos++
			s.depth--
			return nil
		default:
			return s.errf("unexpected %s, expected ',' or '}'", s.describe())
		}
	}
}

func (s *scanner) array() error {
	if err := s.enter(); err != nil {
		return err
	}
	s.pos++ // '['
	s.ws()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		s.depth--
		return nil
	}
	for {
		if _, err := s.value(); err != nil {
			return err
		}
		s.ws()
		if s.pos >= len(s.data) {
			return s.errf("unexpected end of input, expected ',' or ']'")
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
		case ']':
			s.pos++
			s.depth--
			return nil
		default:
			return s.errf("unexpected %s, expected ',' or ']'", s.describe())
		}
	}
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// plainByte marks the bytes a JSON string may hold as they are: printable
// ASCII other than '"' and '\\'.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func (s *scanner) str() error {
	s.pos++ // opening quote
	for s.pos < len(s.data) {
		for s.pos < len(s.data) && plainByte[s.data[s.pos]] {
			s.pos++
		}
		if s.pos >= len(s.data) {
			break
		}
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			return nil
		case c == '\\':
			if s.pos+1 >= len(s.data) {
				s.pos++
				return s.errf("unexpected end of input in string escape")
			}
			switch s.data[s.pos+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.pos += 2
			case 'u':
				for i := 2; i < 6; i++ {
					if s.pos+i >= len(s.data) || !isHex(s.data[s.pos+i]) {
						return s.errf("invalid \\u escape in string, expected 4 hex digits")
					}
				}
				s.pos += 6
			default:
				s.pos++
				if e := s.data[s.pos]; e > 0x20 && e < 0x7f {
					return s.errf("invalid escape \\%c in string", e)
				}
				return s.errf("invalid escape in string: backslash before %s", s.describe())
			}
		case c < 0x20:
			return s.errf("unescaped control byte 0x%02x in string", c)
		case c < utf8.RuneSelf:
			s.pos++
		default:
			r, size := utf8.DecodeRune(s.data[s.pos:])
			if r == utf8.RuneError && size == 1 {
				return s.errf("invalid UTF-8 in string")
			}
			s.pos += size
		}
	}
	return s.errf("unexpected end of input in string")
}

func (s *scanner) digits() int {
	n := 0
	for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
		s.pos++
		n++
	}
	return n
}

func (s *scanner) number() error {
	start := s.pos
	if s.data[s.pos] == '-' {
		s.pos++
	}
	if s.pos >= len(s.data) || s.data[s.pos] < '0' || s.data[s.pos] > '9' {
		return s.errf("unexpected %s in number, expected a digit", s.describe())
	}
	intStart := s.pos
	if s.data[s.pos] == '0' {
		s.pos++
	} else {
		s.digits()
	}
	intDigits := s.pos - intStart
	isInt := true
	if s.pos < len(s.data) && s.data[s.pos] == '.' {
		isInt = false
		s.pos++
		if s.digits() == 0 {
			return s.errf("unexpected %s in number, expected a digit after '.'", s.describe())
		}
	}
	if s.pos < len(s.data) && (s.data[s.pos] == 'e' || s.data[s.pos] == 'E') {
		isInt = false
		s.pos++
		if s.pos < len(s.data) && (s.data[s.pos] == '+' || s.data[s.pos] == '-') {
			s.pos++
		}
		if s.digits() == 0 {
			return s.errf("unexpected %s in number, expected a digit in the exponent", s.describe())
		}
	}
	if isInt && intDigits > maxIntDigits {
		s.pos = start
		return s.errf("integer with more than %d digits (Python's json rejects it)", maxIntDigits)
	}
	return nil
}

// The functions below walk a document that scan accepted; they assume valid
// syntax and never fail.

func skipWS(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// stringEnd returns the offset just after the closing quote of the string
// whose opening quote is at i.
func stringEnd(data []byte, i int) int {
	i++
	for i < len(data) {
		q := bytes.IndexByte(data[i:], '"')
		if q < 0 {
			return len(data)
		}
		i += q
		// The quote closes the string unless an odd number of backslashes
		// precedes it.
		bs := 0
		for k := i - 1; k >= 0 && data[k] == '\\'; k-- {
			bs++
		}
		if bs%2 == 0 {
			return i + 1
		}
		i++
	}
	return i
}

// valueAt returns the value starting at offset i (after whitespace).
func valueAt(data []byte, i int) jval {
	i = skipWS(data, i)
	start := i
	switch c := data[i]; {
	case c == '"':
		return jval{jString, start, stringEnd(data, i)}
	case c == '{' || c == '[':
		depth := 0
		for i < len(data) {
			switch data[i] {
			case '"':
				i = stringEnd(data, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					k := jArray
					if c == '{' {
						k = jObject
					}
					return jval{k, start, i + 1}
				}
			}
			i++
		}
		return jval{jNull, start, i} // unreachable for scanned input
	case c == 't':
		return jval{jBool, start, i + 4}
	case c == 'f':
		return jval{jBool, start, i + 5}
	case c == 'n':
		return jval{jNull, start, i + 4}
	default:
		for i < len(data) {
			switch data[i] {
			case ',', ']', '}', ' ', '\t', '\n', '\r':
				return jval{jNumber, start, i}
			}
			i++
		}
		return jval{jNumber, start, i}
	}
}

// members yields the key (a jString) and value of each object member in
// document order, duplicates included.
func members(data []byte, obj jval) iter.Seq2[jval, jval] {
	return func(yield func(jval, jval) bool) {
		i := skipWS(data, obj.off+1)
		if data[i] == '}' {
			return
		}
		for {
			i = skipWS(data, i)
			key := jval{jString, i, stringEnd(data, i)}
			i = skipWS(data, key.end) + 1 // ':'
			val := valueAt(data, i)
			if !yield(key, val) {
				return
			}
			i = skipWS(data, val.end)
			if data[i] == '}' {
				return
			}
			i++ // ','
		}
	}
}

// elements yields each array element in order.
func elements(data []byte, arr jval) iter.Seq2[int, jval] {
	return func(yield func(int, jval) bool) {
		i := skipWS(data, arr.off+1)
		if data[i] == ']' {
			return
		}
		for n := 0; ; n++ {
			val := valueAt(data, i)
			if !yield(n, val) {
				return
			}
			i = skipWS(data, val.end)
			if data[i] == ']' {
				return
			}
			i++ // ','
		}
	}
}

// rawString returns the bytes between the quotes of a string value and
// whether they contain an escape.
func rawString(data []byte, v jval) (raw []byte, escaped bool) {
	raw = data[v.off+1 : v.end-1]
	for _, c := range raw {
		if c == '\\' {
			return raw, true
		}
	}
	return raw, false
}

// str decodes a string value.
func str(data []byte, v jval) string {
	raw, escaped := rawString(data, v)
	if !escaped {
		return string(raw)
	}
	// Rare path; the syntax is already valid, so this cannot fail. Lone
	// surrogates become U+FFFD here, where Python would keep them.
	var s string
	if err := json.Unmarshal(data[v.off:v.end], &s); err != nil {
		return string(raw)
	}
	return s
}

// number classifies a number literal the way Keylime sees it: Python's json
// makes a literal with '.', 'e' or 'E' a float, and jsonschema (draft 6 and
// later) counts a float with no fractional part as an integer. lit is a CUE
// literal for the value; isInt reports whether it is an integer in that
// sense. With strict set, only literals written as integers count.
func number(raw []byte, strict bool) (lit string, isInt bool) {
	plain := true
	for _, c := range raw {
		if c == '.' || c == 'e' || c == 'E' {
			plain = false
			break
		}
	}
	if plain {
		return string(raw), true
	}
	if strict {
		return string(raw), false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) || f != math.Trunc(f) {
		return string(raw), false
	}
	return strconv.FormatFloat(f, 'f', -1, 64), true
}
