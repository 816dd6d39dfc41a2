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

// maxEvaluations bounds the CUE evaluations and regexp/key checks for one
// document (each costs about 10µs); the Go fast path for digest maps does
// not count. Real policies and refstates need a few thousand.
var maxEvaluations = 200_000

// node caches what the walker needs from one schema position.
type node struct {
	s         cue.Value
	kind      cue.Kind
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
	prefix   []cue.Value // positional element types
	rest     *cue.Value  // type of further elements, if allowed
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

	evaluations int
	exhausted   bool

	// verdicts remembers scalar checks within one document: refstates
	// repeat values (every dbx entry has the same SignatureOwner), and one
	// CUE evaluation costs about 10µs.
	verdicts map[verdictKey]bool
}

type verdictKey struct {
	n    *node
	kind jkind
	lit  string
}

func (w *walker) add(p jpath, msg string) {
	if len(w.issues) >= maxIssues {
		w.dropped++
		return
	}
	w.issues = append(w.issues, issue{path: p, msg: msg})
}

// spend accounts for one expensive check and reports whether the budget
// still allows it.
func (w *walker) spend() bool {
	if w.exhausted {
		return false
	}
	w.evaluations++
	if w.evaluations > maxEvaluations {
		w.exhausted = true
		w.add(nil, fmt.Sprintf("validation stopped after %d checks: the document holds too many values to check", maxEvaluations))
		return false
	}
	return true
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
	for i := 0; i < 16; i++ {
		v := n.s.LookupPath(cue.MakePath(cue.Index(i)))
		if !v.Exists() {
			break
		}
		n.prefix = append(n.prefix, v)
	}
	if v := n.s.LookupPath(cue.MakePath(cue.AnyIndex)); v.Exists() {
		n.rest = &v
	}
}

// elem returns the schema and pattern of element i.
func (n *node) elem(i int, pat string) (cue.Value, string, bool) {
	if i < len(n.prefix) {
		return n.prefix[i], fmt.Sprintf("%s[%d]", pat, i), true
	}
	if n.rest == nil {
		return cue.Value{}, "", false
	}
	return *n.rest, pat + "[]", true
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
	if w.exhausted {
		return
	}
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
	if count < len(n.prefix) || (n.rest == nil && count > len(n.prefix)) {
		w.mismatch(p, n, v)
		return false
	}
	return true
}

// scalar asks CUE whether the literal satisfies the schema at n.
func (w *walker) scalar(n *node, v jval, p jpath) bool {
	raw := w.data[v.off:v.end]
	key := verdictKey{n: n, kind: v.kind}
	if v.kind == jString {
		key.lit = str(w.data, v)
	} else {
		key.lit = string(raw)
	}
	ok, seen := w.verdicts[key]
	if !seen {
		if !w.spend() {
			return false
		}
		ok = n.s.Unify(w.c.ctx.BuildExpr(w.literal(key.lit, v))).Validate(cue.Concrete(true)) == nil
		if w.verdicts == nil {
			w.verdicts = make(map[verdictKey]bool)
		}
		w.verdicts[key] = ok
	}
	if !ok {
		w.mismatch(p, n, v)
	}
	return ok
}

// literal is the CUE expression for a scalar JSON value; s is the decoded
// string or the raw literal.
func (w *walker) literal(s string, v jval) ast.Expr {
	switch v.kind {
	case jNull:
		return ast.NewNull()
	case jBool:
		return ast.NewBool(s == "true")
	case jString:
		return ast.NewString(s)
	}
	lit, isInt := number([]byte(s), w.strict)
	tok := token.FLOAT
	if isInt {
		tok = token.INT
	}
	var e ast.Expr = &ast.BasicLit{Kind: tok, Value: strings.TrimPrefix(lit, "-")}
	if strings.HasPrefix(lit, "-") {
		e = &ast.UnaryExpr{Op: token.SUB, X: e}
	}
	return e
}
