// Package policygen owns Keylime runtime (IMA) policies: the in-memory model,
// deterministic JSON encoding, generation from digest sources, merge, diff
// and conversion from Keylime's legacy formats. It also owns Keylime's
// measured-boot reference state (MBRefstate): generation from a golden
// event log, boot chains from components (files or .deb packages), merge.
//
// It turns what digests/ yields into policies; schema/ checks them. It must
// not import verifier or archive, never prints and never exits.
package policygen

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"unicode/utf8"

	"github.com/zest-attest/zest/policygen/dsse"
	"github.com/zest-attest/zest/schema"
)

// Keylime's RUNTIME_POLICY_GENERATOR values (meta.generator).
const (
	GeneratorUnknown        = 0
	GeneratorEmptyAllowList = 1
	GeneratorCompatible     = 2
	GeneratorLegacy         = 3 // what `keylime-policy create runtime` writes
)

// RuntimePolicy is a Keylime runtime policy, format version 1. Digest lists
// hold lowercase hex without an algorithm prefix.
type RuntimePolicy struct {
	Meta             Meta
	Release          int64
	Digests          map[string][]string
	Excludes         []string
	Keyrings         map[string][]string
	IMA              IMASettings
	IMABuf           map[string][]string
	VerificationKeys string
}

// Meta is the policy's meta object.
type Meta struct {
	Version   int64
	Generator int64
	Timestamp string // optional; zest leaves it out unless asked, so output is reproducible
}

// IMASettings is the policy's ima object.
type IMASettings struct {
	IgnoredKeyrings []string
	LogHashAlg      string
	DMPolicy        json.RawMessage // Keylime's schema only allows null
}

// NewRuntimePolicy returns Keylime's empty policy.
func NewRuntimePolicy() *RuntimePolicy {
	return &RuntimePolicy{
		Meta:     Meta{Version: schema.RuntimePolicyVersion, Generator: GeneratorLegacy},
		Digests:  map[string][]string{},
		Keyrings: map[string][]string{},
		IMABuf:   map[string][]string{},
		IMA:      IMASettings{LogHashAlg: "sha1"},
	}
}

// ValidationError carries every schema violation found in one input.
type ValidationError struct {
	File   string
	Errors []schema.Error
}

func (e *ValidationError) Error() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s: not a valid runtime policy (%d error", e.File, len(e.Errors))
	if len(e.Errors) != 1 {
		b.WriteString("s")
	}
	b.WriteString(")")
	for i, se := range e.Errors {
		if i == 10 {
			fmt.Fprintf(&b, "\n  ... and %d more", len(e.Errors)-10)
			break
		}
		b.WriteString("\n  ")
		b.WriteString(se.Error())
	}
	return b.String()
}

type wirePolicy struct {
	Meta struct {
		Version   int64  `json:"version"`
		Generator int64  `json:"generator"`
		Timestamp string `json:"timestamp"`
	} `json:"meta"`
	Release  int64               `json:"release"`
	Digests  map[string][]string `json:"digests"`
	Excludes []string            `json:"excludes"`
	Keyrings map[string][]string `json:"keyrings"`
	IMA      struct {
		IgnoredKeyrings []string        `json:"ignored_keyrings"`
		LogHashAlg      string          `json:"log_hash_alg"`
		DMPolicy        json.RawMessage `json:"dm_policy"`
	} `json:"ima"`
	IMABuf           map[string][]string `json:"ima-buf"`
	VerificationKeys string              `json:"verification-keys"`
}

// ParseRuntimePolicy validates data against zest's schema of Keylime's
// runtime policy and decodes it. name is used in errors. A DSSE envelope is
// not a policy: unwrap it first (policygen/dsse).
func ParseRuntimePolicy(data []byte, name string) (*RuntimePolicy, error) {
	if errs := schema.Validate(schema.RuntimePolicy, data, schema.Options{}); len(errs) > 0 {
		return nil, &ValidationError{File: name, Errors: errs}
	}
	var w wirePolicy
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &RuntimePolicy{
		Meta:             Meta{Version: w.Meta.Version, Generator: w.Meta.Generator, Timestamp: w.Meta.Timestamp},
		Release:          w.Release,
		Digests:          w.Digests,
		Excludes:         w.Excludes,
		Keyrings:         w.Keyrings,
		IMA:              IMASettings{IgnoredKeyrings: w.IMA.IgnoredKeyrings, LogHashAlg: w.IMA.LogHashAlg, DMPolicy: w.IMA.DMPolicy},
		IMABuf:           w.IMABuf,
		VerificationKeys: w.VerificationKeys,
	}
	p.ensureMaps()
	return p, nil
}

func (p *RuntimePolicy) ensureMaps() {
	if p.Digests == nil {
		p.Digests = map[string][]string{}
	}
	if p.Keyrings == nil {
		p.Keyrings = map[string][]string{}
	}
	if p.IMABuf == nil {
		p.IMABuf = map[string][]string{}
	}
	if p.IMA.LogHashAlg == "" {
		p.IMA.LogHashAlg = "sha1"
	}
}

// Normalize sorts and de-duplicates every list, as Keylime does before
// writing, so equal policies encode to equal bytes.
func (p *RuntimePolicy) Normalize() {
	p.ensureMaps()
	for _, m := range []map[string][]string{p.Digests, p.Keyrings, p.IMABuf} {
		for k, v := range m {
			m[k] = sortUnique(v)
		}
	}
	p.Excludes = sortUnique(p.Excludes)
	p.IMA.IgnoredKeyrings = sortUnique(p.IMA.IgnoredKeyrings)
}

func sortUnique(v []string) []string {
	if len(v) == 0 {
		return []string{}
	}
	if len(v) == 1 {
		return v
	}
	slices.Sort(v)
	return slices.Compact(v)
}

// Format selects the JSON layout.
type Format int

const (
	// FormatPretty: one map entry per line, keys sorted; made for git diffs.
	FormatPretty Format = iota
	// FormatKeylime: Python json.dumps layout (one line, ", " and ": ",
	// non-ASCII as \uXXXX), map keys sorted: byte for byte what Keylime's
	// tools write for the same content (minus their unsorted keys).
	FormatKeylime
)

// Marshal encodes p deterministically: the field order of Keylime's
// EMPTY_RUNTIME_POLICY, map keys in byte order, lists sorted (call Normalize
// first when p was built by hand). Every string must be valid UTF-8: JSON
// cannot carry other bytes, and Go's encoder would silently replace them.
func (p *RuntimePolicy) Marshal(f Format) ([]byte, error) {
	e := &encoder{}
	e.buf.Grow(estimateSize(p))
	e.policy(p)
	if e.err != nil {
		return nil, e.err
	}
	if f == FormatKeylime {
		// One serialiser of Python's json.dumps layout, shared with signing.
		return dsse.PythonJSON(e.buf.Bytes())
	}
	e.buf.WriteByte('\n')
	return e.buf.Bytes(), nil
}

// estimateSize guesses the encoded size so the buffer grows once: large
// policies have 10^5..10^6 paths and regrowing dominated encoding time.
func estimateSize(p *RuntimePolicy) int {
	n := 1024 + len(p.VerificationKeys)
	for _, m := range []map[string][]string{p.Digests, p.Keyrings, p.IMABuf} {
		for k, l := range m {
			n += len(k) + 12
			for _, d := range l {
				n += len(d) + 4
			}
		}
	}
	for _, x := range p.Excludes {
		n += len(x) + 8
	}
	return n
}

// encoder writes the pretty layout; FormatKeylime is derived from it.
type encoder struct {
	buf bytes.Buffer
	err error
}

func (e *encoder) policy(p *RuntimePolicy) {
	const sep, nl, ind = ",", "\n", "  "
	e.buf.WriteString("{" + nl + ind + `"meta": {"version": `)
	e.buf.WriteString(strconv.FormatInt(p.Meta.Version, 10))
	e.buf.WriteString(`, "generator": `)
	e.buf.WriteString(strconv.FormatInt(p.Meta.Generator, 10))
	if p.Meta.Timestamp != "" {
		e.buf.WriteString(`, "timestamp": `)
		e.str(p.Meta.Timestamp, "meta.timestamp")
	}
	e.buf.WriteString("}" + sep + nl + ind + `"release": ` + strconv.FormatInt(p.Release, 10) + sep + nl + ind + `"digests": `)
	e.digestMap(p.Digests, "digests")
	e.buf.WriteString(sep + nl + ind + `"excludes": `)
	e.list(p.Excludes, "excludes", true)
	e.buf.WriteString(sep + nl + ind + `"keyrings": `)
	e.digestMap(p.Keyrings, "keyrings")
	e.buf.WriteString(sep + nl + ind + `"ima": {"ignored_keyrings": `)
	e.list(p.IMA.IgnoredKeyrings, "ima.ignored_keyrings", false)
	e.buf.WriteString(`, "log_hash_alg": `)
	e.str(p.IMA.LogHashAlg, "ima.log_hash_alg")
	e.buf.WriteString(`, "dm_policy": `)
	if len(p.IMA.DMPolicy) == 0 {
		e.buf.WriteString("null")
	} else {
		var c bytes.Buffer
		if err := json.Compact(&c, p.IMA.DMPolicy); err != nil {
			e.fail("ima.dm_policy", err.Error())
		}
		e.buf.Write(c.Bytes())
	}
	e.buf.WriteString("}" + sep + nl + ind + `"ima-buf": `)
	e.digestMap(p.IMABuf, "ima-buf")
	e.buf.WriteString(sep + nl + ind + `"verification-keys": `)
	e.str(p.VerificationKeys, "verification-keys")
	e.buf.WriteString(nl + "}")
}

func (e *encoder) fail(where, msg string) {
	if e.err == nil {
		e.err = fmt.Errorf("cannot encode %s: %s", where, msg)
	}
}

func (e *encoder) digestMap(m map[string][]string, where string) {
	if len(m) == 0 {
		e.buf.WriteString("{}")
		return
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	e.buf.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			e.buf.WriteByte(',')
		}
		e.buf.WriteString("\n    ")
		e.str(k, where)
		e.buf.WriteString(": ")
		e.list(m[k], where, false)
	}
	e.buf.WriteString("\n  ")
	e.buf.WriteByte('}')
}

func (e *encoder) list(v []string, where string, multiline bool) {
	if len(v) == 0 {
		e.buf.WriteString("[]")
		return
	}
	e.buf.WriteByte('[')
	for i, s := range v {
		if i > 0 {
			e.buf.WriteByte(',')
			if !multiline {
				e.buf.WriteByte(' ')
			}
		}
		if multiline {
			e.buf.WriteString("\n    ")
		}
		e.str(s, where)
	}
	if multiline {
		e.buf.WriteString("\n  ")
	}
	e.buf.WriteByte(']')
}

const hexDigits = "0123456789abcdef"

// str writes a JSON string. Unlike encoding/json it does not escape <, >
// and &, and it refuses invalid UTF-8 instead of replacing it.
func (e *encoder) str(s, where string) {
	if !utf8.ValidString(s) {
		e.fail(where, fmt.Sprintf("%q is not valid UTF-8", s))
		return
	}
	b := &e.buf
	b.WriteByte('"')
	plain := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' {
			plain = false
			break
		}
	}
	if plain {
		b.WriteString(s)
		b.WriteByte('"')
		return
	}
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
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r < 0x20:
			b.WriteString(`\u00`)
			b.WriteByte(hexDigits[r>>4])
			b.WriteByte(hexDigits[r&0xf])
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
}

// LegacyAllowlist renders the digests map as Keylime's flat allowlist
// (--show-legacy-allowlist): boot_aggregate first, then "<hex>  <path>"
// sorted by path.
func (p *RuntimePolicy) LegacyAllowlist() []byte {
	var b bytes.Buffer
	for _, d := range p.Digests["boot_aggregate"] {
		b.WriteString(d + "  boot_aggregate\n")
	}
	keys := make([]string, 0, len(p.Digests))
	for k := range p.Digests {
		if k != "boot_aggregate" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, d := range p.Digests[k] {
			b.WriteString(d + "  " + k + "\n")
		}
	}
	return b.Bytes()
}
