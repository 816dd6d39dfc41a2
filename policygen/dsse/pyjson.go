package dsse

import (
	"bytes"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// MaxJSONDepth bounds nesting in PythonJSON. CPython's own limit depends on
// its version and stack; runtime policies nest three levels deep.
const MaxJSONDepth = 512

// maxIntDigits is CPython's default int_max_str_digits (3.11 and later):
// json.loads refuses longer integer literals.
const maxIntDigits = 4300

// JSONError locates a PythonJSON failure in its input.
type JSONError struct {
	Offset int // byte offset
	Line   int // 1-based
	Column int // 1-based, in bytes
	Msg    string
}

func (e *JSONError) Error() string {
	return fmt.Sprintf("json: line %d column %d (byte %d): %s", e.Line, e.Column, e.Offset, e.Msg)
}

// PythonJSON re-serialises a JSON document exactly as CPython's
// json.dumps(json.load(f)) does, which is the payload `keylime-policy sign
// runtime` signs:
//
//   - object keys stay in input order; a repeated key keeps the position of
//     its first occurrence and the value of its last (dict semantics);
//   - separators ", " and ": ", no indentation, no trailing newline;
//   - strings are written with ensure_ascii: \" \\ \n \r \t \b \f, any other
//     character outside 0x20..0x7e (DEL included) as \u00XX / \uXXXX in
//     lowercase hex, characters beyond the BMP as surrogate pairs; lone
//     surrogates written as \uXXXX escapes survive unchanged, as in Python;
//   - integers are written as parsed ("-0" becomes "0"), and longer than 4300
//     digits are refused like CPython 3.11+;
//   - other numbers are converted to float64 and written as Python's
//     repr(float): shortest round-trip digits, exponent form ("1e-05",
//     "1e+16") when the decimal exponent is < -4 or >= 16, ".0" appended to
//     integral values. Go's and CPython's shortest-digit algorithms agree.
//
// zest refuses, where CPython would carry on: NaN, Infinity, -Infinity and
// literals that overflow float64 (json.dumps would write the non-JSON
// "Infinity"), a UTF-8 byte-order mark, invalid UTF-8, and nesting deeper
// than MaxJSONDepth.
func PythonJSON(data []byte) ([]byte, error) {
	p := &pyParser{in: data}
	if bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
		return nil, p.errAt(0, "UTF-8 byte-order mark (Python's json.load refuses it)")
	}
	if !utf8.Valid(data) {
		for i := 0; i < len(data); {
			r, n := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && n <= 1 {
				return nil, p.errAt(i, "invalid UTF-8")
			}
			i += n
		}
	}
	p.out = make([]byte, 0, len(data)+len(data)/16)
	p.skipWS()
	if err := p.value(0); err != nil {
		return nil, err
	}
	p.skipWS()
	if p.pos != len(p.in) {
		return nil, p.errAt(p.pos, "extra data after the JSON value")
	}
	return p.out, nil
}

type pyParser struct {
	in  []byte
	pos int
	out []byte
}

func (p *pyParser) errAt(off int, format string, args ...any) error {
	line, col := 1, 1
	for _, c := range p.in[:min(off, len(p.in))] {
		if c == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return &JSONError{Offset: off, Line: line, Column: col, Msg: fmt.Sprintf(format, args...)}
}

func (p *pyParser) skipWS() {
	for p.pos < len(p.in) {
		switch p.in[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *pyParser) value(depth int) error {
	if p.pos >= len(p.in) {
		return p.errAt(p.pos, "expecting value")
	}
	switch c := p.in[p.pos]; {
	case c == '{':
		return p.object(depth + 1)
	case c == '[':
		return p.array(depth + 1)
	case c == '"':
		return p.str()
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number()
	case c == 'N' || c == 'I':
		return p.errAt(p.pos, "NaN and Infinity are not JSON (Python would accept them; zest does not)")
	}
	return p.errAt(p.pos, "expecting value")
}

func (p *pyParser) literal(word string) error {
	if !bytes.HasPrefix(p.in[p.pos:], []byte(word)) {
		return p.errAt(p.pos, "expecting value")
	}
	p.pos += len(word)
	p.out = append(p.out, word...)
	return nil
}

func (p *pyParser) array(depth int) error {
	if depth > MaxJSONDepth {
		return p.errAt(p.pos, "nesting deeper than %d", MaxJSONDepth)
	}
	p.pos++
	p.out = append(p.out, '[')
	p.skipWS()
	if p.pos < len(p.in) && p.in[p.pos] == ']' {
		p.pos++
		p.out = append(p.out, ']')
		return nil
	}
	for {
		p.skipWS()
		if err := p.value(depth); err != nil {
			return err
		}
		p.skipWS()
		if p.pos >= len(p.in) {
			return p.errAt(p.pos, "expecting ',' delimiter or ']'")
		}
		switch p.in[p.pos] {
		case ',':
			p.pos++
			p.out = append(p.out, ", "...)
		case ']':
			p.pos++
			p.out = append(p.out, ']')
			return nil
		default:
			return p.errAt(p.pos, "expecting ',' delimiter or ']'")
		}
	}
}

// member records where one key/value pair of an object was written in out.
type member struct {
	key, val, end int // out[key:val-2] is the key, out[val:end] the value
	last          int // index of the member whose value wins (itself unless repeated)
	dropped       bool
}

func (p *pyParser) object(depth int) error {
	if depth > MaxJSONDepth {
		return p.errAt(p.pos, "nesting deeper than %d", MaxJSONDepth)
	}
	start := len(p.out)
	p.pos++
	p.out = append(p.out, '{')
	p.skipWS()
	if p.pos < len(p.in) && p.in[p.pos] == '}' {
		p.pos++
		p.out = append(p.out, '}')
		return nil
	}
	var (
		members []member
		index   map[string]int // built once an object is large enough to need it
		dup     bool
	)
	for {
		p.skipWS()
		if p.pos >= len(p.in) || p.in[p.pos] != '"' {
			return p.errAt(p.pos, "expecting property name enclosed in double quotes")
		}
		if len(members) > 0 {
			p.out = append(p.out, ", "...)
		}
		m := member{key: len(p.out), last: len(members)}
		if err := p.str(); err != nil {
			return err
		}
		keyEnd := len(p.out)
		p.skipWS()
		if p.pos >= len(p.in) || p.in[p.pos] != ':' {
			return p.errAt(p.pos, "expecting ':' delimiter")
		}
		p.pos++
		p.out = append(p.out, ": "...)
		m.val = len(p.out)
		p.skipWS()
		if err := p.value(depth); err != nil {
			return err
		}
		m.end = len(p.out)

		key := p.out[m.key:keyEnd]
		first := -1
		if index != nil {
			if i, ok := index[string(key)]; ok {
				first = i
			}
		} else {
			for i := range members {
				if !members[i].dropped && bytes.Equal(p.out[members[i].key:members[i].val-2], key) {
					first = i
					break
				}
			}
		}
		if first >= 0 {
			dup = true
			m.dropped = true
			members[first].last = len(members)
		} else if index != nil {
			index[string(key)] = len(members)
		}
		members = append(members, m)
		if index == nil && len(members) == 16 {
			index = make(map[string]int)
			for i := range members {
				if !members[i].dropped {
					index[string(p.out[members[i].key:members[i].val-2])] = i
				}
			}
		}

		p.skipWS()
		if p.pos >= len(p.in) {
			return p.errAt(p.pos, "expecting ',' delimiter or '}'")
		}
		switch p.in[p.pos] {
		case ',':
			p.pos++
			continue
		case '}':
			p.pos++
		default:
			return p.errAt(p.pos, "expecting ',' delimiter or '}'")
		}
		break
	}
	if !dup {
		p.out = append(p.out, '}')
		return nil
	}
	// Rare: rebuild the object with each key once, at its first position,
	// holding its last value.
	body := make([]byte, 0, len(p.out)-start)
	body = append(body, '{')
	n := 0
	for _, m := range members {
		if m.dropped {
			continue
		}
		if n > 0 {
			body = append(body, ", "...)
		}
		n++
		last := members[m.last]
		body = append(body, p.out[m.key:m.val]...)
		body = append(body, p.out[last.val:last.end]...)
	}
	body = append(body, '}')
	p.out = append(p.out[:start], body...)
	return nil
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func hexVal(c byte) rune {
	switch {
	case c <= '9':
		return rune(c - '0')
	case c >= 'a':
		return rune(c-'a') + 10
	}
	return rune(c-'A') + 10
}

// str copies a string token from in to out in Python's ensure_ascii form.
func (p *pyParser) str() error {
	start := p.pos
	p.pos++
	p.out = append(p.out, '"')
	for {
		i := p.pos
		for i < len(p.in) {
			c := p.in[i]
			if c < 0x20 || c == '"' || c == '\\' || c >= 0x7f {
				break
			}
			i++
		}
		p.out = append(p.out, p.in[p.pos:i]...)
		p.pos = i
		if p.pos >= len(p.in) {
			return p.errAt(start, "unterminated string")
		}
		switch c := p.in[p.pos]; {
		case c == '"':
			p.pos++
			p.out = append(p.out, '"')
			return nil
		case c == '\\':
			if err := p.escape(); err != nil {
				return err
			}
		case c < 0x20:
			return p.errAt(p.pos, "invalid control character 0x%02x in string", c)
		default:
			r, n := utf8.DecodeRune(p.in[p.pos:])
			p.pos += n
			p.out = appendPyRune(p.out, r)
		}
	}
}

func (p *pyParser) escape() error {
	at := p.pos
	if p.pos+1 >= len(p.in) {
		return p.errAt(at, "unterminated string")
	}
	c := p.in[p.pos+1]
	p.pos += 2
	switch c {
	case '"', '\\', '/':
		p.out = appendPyRune(p.out, rune(c))
	case 'b':
		p.out = append(p.out, `\b`...)
	case 'f':
		p.out = append(p.out, `\f`...)
	case 'n':
		p.out = append(p.out, `\n`...)
	case 'r':
		p.out = append(p.out, `\r`...)
	case 't':
		p.out = append(p.out, `\t`...)
	case 'u':
		if p.pos+4 > len(p.in) {
			return p.errAt(at, `invalid \uXXXX escape`)
		}
		var u rune
		for _, h := range p.in[p.pos : p.pos+4] {
			if !isHex(h) {
				return p.errAt(at, `invalid \uXXXX escape`)
			}
			u = u<<4 | hexVal(h)
		}
		p.pos += 4
		// Python joins a valid surrogate pair into one character and
		// json.dumps splits it again, and it keeps lone surrogates as they
		// are; either way each escaped code unit comes out on its own.
		p.out = appendPyRune(p.out, u)
	default:
		return p.errAt(at, `invalid \escape`)
	}
	return nil
}

// appendPyRune writes one character as json.dumps(ensure_ascii=True) does
// (CPython Modules/_json.c ascii_escape_unichar).
func appendPyRune(out []byte, r rune) []byte {
	const hexdig = "0123456789abcdef"
	switch r {
	case '"':
		return append(out, `\"`...)
	case '\\':
		return append(out, `\\`...)
	case '\n':
		return append(out, `\n`...)
	case '\r':
		return append(out, `\r`...)
	case '\t':
		return append(out, `\t`...)
	case '\b':
		return append(out, `\b`...)
	case '\f':
		return append(out, `\f`...)
	}
	if r >= 0x20 && r <= 0x7e {
		return append(out, byte(r))
	}
	u4 := func(out []byte, u rune) []byte {
		return append(out, '\\', 'u', hexdig[u>>12&0xf], hexdig[u>>8&0xf], hexdig[u>>4&0xf], hexdig[u&0xf])
	}
	if r < 0x10000 {
		return u4(out, r)
	}
	r -= 0x10000
	out = u4(out, 0xd800|(r>>10)&0x3ff)
	return u4(out, 0xdc00|r&0x3ff)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// number scans a number with the grammar of CPython's scanner (the JSON
// grammar) and writes it as int or float would be written back.
func (p *pyParser) number() error {
	in, start := p.in, p.pos
	i := start
	if in[i] == '-' {
		i++
		if i < len(in) && in[i] == 'I' {
			return p.errAt(start, "NaN and Infinity are not JSON (Python would accept them; zest does not)")
		}
	}
	if i >= len(in) || !isDigit(in[i]) {
		return p.errAt(start, "expecting value")
	}
	if in[i] == '0' {
		i++
	} else {
		for i < len(in) && isDigit(in[i]) {
			i++
		}
	}
	isFloat := false
	if i+1 < len(in) && in[i] == '.' && isDigit(in[i+1]) {
		isFloat = true
		i += 2
		for i < len(in) && isDigit(in[i]) {
			i++
		}
	}
	if i < len(in) && (in[i] == 'e' || in[i] == 'E') {
		j := i + 1
		if j < len(in) && (in[j] == '+' || in[j] == '-') {
			j++
		}
		if j < len(in) && isDigit(in[j]) {
			isFloat = true
			for j < len(in) && isDigit(in[j]) {
				j++
			}
			i = j
		}
	}
	lit := in[start:i]
	p.pos = i
	if !isFloat {
		digits := len(lit)
		if lit[0] == '-' {
			digits--
		}
		if digits > maxIntDigits {
			return p.errAt(start, "integer of %d digits exceeds Python's limit of %d", digits, maxIntDigits)
		}
		if string(lit) == "-0" {
			lit = lit[1:]
		}
		p.out = append(p.out, lit...)
		return nil
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil {
		return p.errAt(start, "number %.40s overflows a float (Python would write Infinity)", lit)
	}
	p.out = appendPyFloat(p.out, f)
	return nil
}

// appendPyFloat writes f like CPython's float_repr (Python/pystrtod.c,
// format_float_short with mode 'r' and Py_DTSF_ADD_DOT_0).
func appendPyFloat(out []byte, f float64) []byte {
	var buf [32]byte
	s := strconv.AppendFloat(buf[:0], f, 'e', -1, 64) // [-]d[.ddd]e±XX
	if s[0] == '-' {
		out = append(out, '-')
		s = s[1:]
	}
	e := bytes.IndexByte(s, 'e')
	mant, exp := s[:e], s[e+1:]
	exp10, _ := strconv.Atoi(string(exp))
	var digits []byte
	digits = append(digits, mant[0])
	if len(mant) > 2 {
		digits = append(digits, mant[2:]...)
	}
	decpt := exp10 + 1 // value = 0.DIGITS × 10^decpt
	switch {
	case decpt <= -4 || decpt > 16:
		out = append(out, digits[0])
		if len(digits) > 1 {
			out = append(out, '.')
			out = append(out, digits[1:]...)
		}
		out = append(out, 'e')
		if exp10 < 0 {
			out = append(out, '-')
			exp10 = -exp10
		} else {
			out = append(out, '+')
		}
		if exp10 < 10 {
			out = append(out, '0')
		}
		return strconv.AppendInt(out, int64(exp10), 10)
	case decpt <= 0:
		out = append(out, '0', '.')
		for range -decpt {
			out = append(out, '0')
		}
		return append(out, digits...)
	case decpt >= len(digits):
		out = append(out, digits...)
		for range decpt - len(digits) {
			out = append(out, '0')
		}
		return append(out, '.', '0')
	default:
		out = append(out, digits[:decpt]...)
		out = append(out, '.')
		return append(out, digits[decpt:]...)
	}
}
