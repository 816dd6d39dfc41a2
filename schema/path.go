package schema

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// pathElem is one step of a JSON path: an object key or an array index.
type pathElem struct {
	key   string
	index int
	isIdx bool
}

// jpath is a JSON path from the document root. It is built by appending, so
// callers must copy before keeping it (child does).
type jpath []pathElem

func (p jpath) key(k string) jpath { return append(p[:len(p):len(p)], pathElem{key: k}) }
func (p jpath) idx(i int) jpath    { return append(p[:len(p):len(p)], pathElem{index: i, isIdx: true}) }

// String renders $.a.b["c-d"][0]: identifiers use the dot form, any other key
// is JSON-quoted in brackets, so the path is unambiguous and copy-pasteable
// into jq-like tools.
func (p jpath) String() string {
	var b strings.Builder
	b.WriteByte('$')
	for _, e := range p {
		switch {
		case e.isIdx:
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(e.index))
			b.WriteByte(']')
		case isIdent(e.key):
			b.WriteByte('.')
			b.WriteString(e.key)
		default:
			b.WriteByte('[')
			b.WriteString(quoteJSON(e.key))
			b.WriteByte(']')
		}
	}
	return b.String()
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// quoteJSON quotes s as a JSON string without HTML escaping (json.Marshal
// would turn < into \u003c, which is noise in a path).
func quoteJSON(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f || r == utf8.RuneError:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// comparePaths orders paths element by element: keys by bytes, indexes
// numerically (so [2] sorts before [10]), a prefix before its extensions.
func comparePaths(a, b jpath) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		x, y := a[i], b[i]
		if x.isIdx != y.isIdx {
			if x.isIdx {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(x.index, y.index); x.isIdx && c != 0 {
			return c
		}
		if c := strings.Compare(x.key, y.key); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(a), len(b))
}

type issue struct {
	path jpath
	msg  string
}

func sortIssues(is []issue) []Error {
	slices.SortStableFunc(is, func(a, b issue) int {
		if c := comparePaths(a.path, b.path); c != 0 {
			return c
		}
		return strings.Compare(a.msg, b.msg)
	})
	out := make([]Error, 0, len(is))
	for i, e := range is {
		if i > 0 && comparePaths(e.path, is[i-1].path) == 0 && e.msg == is[i-1].msg {
			continue
		}
		out = append(out, Error{Path: e.path.String(), Msg: e.msg})
	}
	return out
}

// shown renders a value for "got ..." in a message: scalars as their JSON
// text, long ones cut to about 60 characters, containers by kind.
func shown(data []byte, v jval) string {
	switch v.kind {
	case jObject:
		if skipWS(data, v.off+1) == v.end-1 {
			return "an empty object"
		}
		return "an object"
	case jArray:
		if skipWS(data, v.off+1) == v.end-1 {
			return "an empty list"
		}
		return "a list"
	case jString:
		return truncateQuoted(str(data, v))
	}
	return truncate(string(data[v.off:v.end]))
}

const shownMax = 60

// cut returns s shortened to shownMax runes and whether it was shortened.
func cut(s string) (string, bool) {
	n := 0
	for i := range s {
		if n == shownMax {
			return s[:i], true
		}
		n++
	}
	return s, false
}

func truncate(s string) string {
	if c, ok := cut(s); ok {
		return c + "..."
	}
	return s
}

func truncateQuoted(s string) string {
	c, ok := cut(s)
	q := quoteJSON(c)
	if ok {
		q = q[:len(q)-1] + `..."`
	}
	return q
}
