package schema

import (
	"fmt"
	"strings"

	"cuelang.org/go/cue"
	"cuelang.org/go/cue/ast"
	"cuelang.org/go/cue/token"
)

// Why a Go walker instead of one Unify of the whole document: CUE (v0.17)
// stops reporting missing required fields and closedness violations as soon
// as any other error exists in the value, so a single Validate would hide
// problems and the operator would fix them one round at a time. The walker
// follows the document and the schema in lockstep and asks CUE about each
// scalar (type, bounds, regexp, enum), takes required fields, declared keys
// and list prefixes from the schema, and reads the messages from @expect.
// Every problem is found in one pass.

// maxIssues bounds the errors kept for one document; past it they are only
// counted, so a hostile 200 MB document cannot make the report huge.
const maxIssues = 10000

// node caches what the walker needs from one schema position.
type node struct {
	s      cue.Value
	kind   cue.Kind
	expect    string
	expectSet bool // expect came from an @expect attribute
	check     string

	// Structs.
	fieldsDone bool
	fields     map[string]field
	order      []string
	pattern    *cue.Value // value of [string]: X, if any

	// Lists.
	listDone bool
	prefix   int  // number of positional element types
	open     bool // further elements allowed
}

type field struct {
	v        cue.Value
	required bool
}

type walker struct {
	c      *compiled
	data   []byte
	strict bool
	// slowMaps makes digest maps go through CUE like everything else; the
	// differential test uses it to hold the Go fast path to the schema.
	slowMaps bool

	issues  []issue
	dropped int
}

func (w *walker) add(p jpath, msg string) {
	if len(w.issues) >= maxIssues {
		w.dropped++
		return
	}
	w.issues = append(w.issues, issue{path: p, msg: msg})
}

func (w *walker) result() []Error {
	if len(w.issues) == 0 && w.dropped == 0 {
		return nil
	}
	out := sortIssues(w.issues)
	if w.dropped > 0 {
		out = append(out, Error{Path: "$", Msg: fmt.Sprintf("%d more errors not shown", w.dropped)})
	}
	return out
}

// info returns the cached facts for the schema value s at pattern pat (the
// schema path with list positions and map keys abstracted, which identifies
// the schema node).
func (w *walker) info(s cue.Value, pat string) *node {
	if n, ok := w.c.nodes[pat]; ok {
		return n
	}
	n := &node{s: s, kind: s.IncompleteKind()}
	n.expect, n.expectSet = attr(s, "expect")
	if !n.expectSet {
		n.expect = kindName(n.kind)
	}
	n.check, _ = attr(s, "check")
	w.c.nodes[pat] = n
	return n
}

// attr reads attribute name from the field that declared s or, failing that,
// from the definitions s refers to (so `x: #Hex` inherits #Hex's @expect).
func attr(s cue.Value, name string) (string, bool) {
	for range 8 {
		a := s.Attribute(name)
		if a.Err() == nil {
			if v, err := a.String(0); err == nil {
				return v, true
			}
		}
		root, ref := s.ReferencePath()
		if len(ref.Selectors()) == 0 {
			return "", false
		}
		s = root.LookupPath(ref)
	}
	return "", false
}

func kindName(k cue.Kind) string {
	switch k {
	case cue.NullKind:
		return "null"
	case cue.BoolKind:
		return "true or false"
	case cue.IntKind:
		return "an integer"
	case cue.IntKind | cue.FloatKind, cue.FloatKind:
		return "a number"
	case cue.StringKind:
		return "a string"
	case cue.ListKind:
		return "a list"
	case cue.StructKind:
		return "an object"
	}
	return "a valid value"
}

func (n *node) loadFields() {
	if n.fieldsDone {
		return
	}
	n.fieldsDone = true
	n.fields = make(map[string]field)
	it, err := n.s.Fields(cue.Optional(true))
	if err == nil {
		for it.Next() {
			sel := it.Selector()
			name := sel.Unquoted()
			if _, dup := n.fields[name]; !dup {
				n.order = append(n.order, name)
			}
			n.fields[name] = field{v: it.Value(), required: sel.ConstraintType() == cue.RequiredConstraint}
		}
	}
	if pv := n.s.LookupPath(cue.MakePath(cue.AnyString)); pv.Exists() && pv.IncompleteKind() != cue.TopKind {
		n.pattern = &pv
	}
}

func (n *node) loadList() {
	if n.listDone {
		return
	}
	n.listDone = true
	for n.prefix < 16 && n.s.LookupPath(cue.MakePath(cue.Index(n.prefix))).Exists() {
		n.prefix++
	}
	n.open = n.s.LookupPath(cue.MakePath(cue.AnyIndex)).Exists()
}

// elem returns the schema and pattern of element i.
func (n *node) elem(i int, pat string) (cue.Value, string, bool) {
	if i < n.prefix {
		return n.s.LookupPath(cue.MakePath(cue.Index(i))), fmt.Sprintf("%s[%d]", pat, i), true
	}
	if !n.open {
		return cue.Value{}, "", false
	}
	return n.s.LookupPath(cue.MakePath(cue.AnyIndex)), pat + "[]", true
}

// kindOf is the CUE kind of a JSON value as Keylime's jsonschema sees it.
func (w *walker) kindOf(v jval) cue.Kind {
	switch v.kind {
	case jNull:
		return cue.NullKind
	case jBool:
		return cue.BoolKind
	case jString:
		return cue.StringKind
	case jArray:
		return cue.ListKind
	case jObject:
		return cue.StructKind
	}
	if _, isInt := number(w.data[v.off:v.end], w.strict); isInt {
		return cue.IntKind
	}
	return cue.FloatKind
}

func (w *walker) mismatch(p jpath, n *node, v jval) {
	w.add(p, "must be "+n.expect+", got "+shown(w.data, v))
}

// walk validates v against schema s.
func (w *walker) walk(s cue.Value, pat string, v jval, p jpath) {
	n := w.info(s, pat)
	if n.kind&w.kindOf(v) == 0 {
		w.mismatch(p, n, v)
		return
	}
	if n.check == "digest_map" && !w.slowMaps {
		w.digestMap(n, pat, v, p)
		return
	}
	ok := true
	switch v.kind {
	case jObject:
		w.object(n, pat, v, p)
	case jArray:
		ok = w.array(n, pat, v, p)
	default:
		ok = w.scalar(n, v, p)
	}
	if ok && n.check != "" {
		w.runCheck(n, v, p)
	}
}

// object walks the members of v. Duplicate keys: Python's json keeps the
// last value, and so does this walker (strict mode reports them).
func (w *walker) object(n *node, pat string, v jval, p jpath) {
	n.loadFields()
	vals := make(map[string]jval)
	var order []string
	for k, val := range members(w.data, v) {
		key := str(w.data, k)
		if _, declared := n.fields[key]; !declared && n.pattern == nil {
			if w.strict {
				w.add(p.key(key), "unknown key"+expectedKeys(n.order))
			}
			continue
		}
		if _, dup := vals[key]; dup {
			if w.strict {
				w.add(p.key(key), "duplicate key (Keylime keeps the last value)")
			}
		} else {
			order = append(order, key)
		}
		vals[key] = val
	}
	for _, name := range n.order {
		f := n.fields[name]
		val, present := vals[name]
		if !present {
			if f.required {
				w.add(p.key(name), "missing, must be "+w.info(f.v, pat+"."+name).expect)
			}
			continue
		}
		w.walk(f.v, pat+"."+name, val, p.key(name))
	}
	if n.pattern != nil {
		for _, key := range order {
			if _, declared := n.fields[key]; declared {
				continue
			}
			w.walk(*n.pattern, pat+".*", vals[key], p.key(key))
		}
	}
}

func expectedKeys(order []string) string {
	if len(order) == 0 || len(order) > 12 {
		return " (strict mode)"
	}
	return "; expected one of " + strings.Join(order, ", ")
}

func (w *walker) array(n *node, pat string, v jval, p jpath) bool {
	n.loadList()
	count := 0
	for i, el := range elements(w.data, v) {
		count++
		es, epat, ok := n.elem(i, pat)
		if !ok {
			continue
		}
		w.walk(es, epat, el, p.idx(i))
	}
	if count < n.prefix || (!n.open && count > n.prefix) {
		w.mismatch(p, n, v)
		return false
	}
	return true
}

// scalar asks CUE whether the literal satisfies the schema at n.
func (w *walker) scalar(n *node, v jval, p jpath) bool {
	var e ast.Expr
	raw := w.data[v.off:v.end]
	switch v.kind {
	case jNull:
		e = ast.NewNull()
	case jBool:
		e = ast.NewBool(raw[0] == 't')
	case jString:
		e = ast.NewString(str(w.data, v))
	case jNumber:
		lit, isInt := number(raw, w.strict)
		tok := token.FLOAT
		if isInt {
			tok = token.INT
		}
		neg := strings.HasPrefix(lit, "-")
		e = &ast.BasicLit{Kind: tok, Value: strings.TrimPrefix(lit, "-")}
		if neg {
			e = &ast.UnaryExpr{Op: token.SUB, X: e}
		}
	}
	if err := n.s.Unify(w.c.ctx.BuildExpr(e)).Validate(cue.Concrete(true)); err != nil {
		w.mismatch(p, n, v)
		return false
	}
	return true
}
