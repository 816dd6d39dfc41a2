// Package schema owns zest's schemas for the Keylime documents an operator
// uploads: the IMA runtime policy (format version 1) and the measured-boot
// reference state ("refstate") read by Keylime's `example` policy. The
// schemas are CUE files embedded in the binary (runtime_policy_v1.cue,
// mb_refstate_v1.cue), compiled once per process; Go adds what CUE cannot
// express or would evaluate too slowly (10^5-key digest maps, regexps,
// keys inside the verification-keys string).
//
// Validate reports every violation at once, each with a JSON path. The
// default follows what Keylime's verifier actually accepts; Options.Strict
// additionally rejects undeclared and duplicate keys and integers written
// as floats. Where Keylime accepts a value that can never match at
// attestation time (an exclude that Python cannot compile inside the
// joined expression, a refstate digest of the wrong length), zest rejects
// it in both modes.
//
// The package parses untrusted bytes and never panics on them; it never
// prints or exits. It must not import policygen, verifier, archive or any
// CLI package: it is a leaf that those build on.
package schema

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// Kind names a document type.
type Kind string

// The document kinds Validate knows.
const (
	RuntimePolicy Kind = "runtime-policy"
	MBRefstate    Kind = "mb-refstate"
)

// RuntimePolicyVersion is the runtime policy format version the schema
// describes (Keylime's RUNTIME_POLICY_CURRENT_VERSION).
const RuntimePolicyVersion = 1

// Error is one schema violation. Path is a JSON path such as $.meta.version,
// $.digests["/usr/bin/x"][0] or $["ima-buf"].kernel_version[0]: keys that
// are identifiers ([A-Za-z_][A-Za-z0-9_]*) use .name, other keys
// ["json-quoted"], array elements [n]; "$" is the document root.
type Error struct {
	Path string
	Msg  string
}

func (e Error) Error() string { return e.Path + ": " + e.Msg }

// Options tune Validate. The zero value follows Keylime.
type Options struct {
	// Strict rejects keys the schema does not declare (at every level),
	// duplicate keys, and integers written as floats (1.0), all of which
	// Keylime accepts.
	Strict bool
}

// Validate checks data against the schema for kind and returns every
// violation, sorted by path (array indexes numerically); nil means valid.
// Invalid JSON yields one Error at "$" naming the byte offset. At most
// 10,000 errors are listed, followed by a count of the rest; a document
// needing more than 200,000 checks outside the digest maps is cut short
// with an error at "$". Validate is safe for concurrent use, but calls are
// serialised on the process's one CUE context.
func Validate(kind Kind, data []byte, opts Options) []Error {
	return validate(kind, data, opts, false)
}

func validate(kind Kind, data []byte, opts Options, slowMaps bool) []Error {
	top, errs := parseTop(data)
	if errs != nil {
		return errs
	}
	c, err := load()
	if err != nil {
		return []Error{{Path: "$", Msg: "internal error: " + err.Error()}}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	w := &walker{c: c, data: data, strict: opts.Strict, slowMaps: slowMaps}
	switch kind {
	case RuntimePolicy:
		w.walk(c.runtimePolicy, "#RuntimePolicy", top, nil)
	case MBRefstate:
		if secureBoot(data, top) {
			w.walk(c.mbSB, "#MBRefstateSB", top, nil)
		} else {
			w.walk(c.mbNoSB, "#MBRefstateNoSB", top, nil)
		}
	default:
		return []Error{{Path: "$", Msg: fmt.Sprintf("unknown document kind %q (want %q or %q)", string(kind), RuntimePolicy, MBRefstate)}}
	}
	return w.result()
}

var utf8BOM = []byte{0xef, 0xbb, 0xbf}

// inputLimit is MaxInputSize; tests lower it instead of allocating 256 MiB.
var inputLimit = MaxInputSize

func parseTop(data []byte) (jval, []Error) {
	if len(data) > inputLimit {
		return jval{}, []Error{{Path: "$", Msg: fmt.Sprintf("document is %d bytes, more than the limit of %d bytes", len(data), inputLimit)}}
	}
	if bytes.HasPrefix(data, utf8BOM) {
		return jval{}, []Error{{Path: "$", Msg: "invalid JSON: starts with a UTF-8 byte order mark; save the file without it"}}
	}
	top, err := scan(data)
	if err != nil {
		se := err.(*syntaxError)
		line, col := lineCol(data, se.off)
		return jval{}, []Error{{Path: "$", Msg: fmt.Sprintf("invalid JSON at byte %d (line %d, column %d): %s", se.off, line, col, se.msg)}}
	}
	return top, nil
}

// secureBoot decides which kernels schema applies, as example.py does:
// refstate.get("has_secureboot", True), taken by Python truthiness. A
// non-bool value is reported by the schema; this only picks the variant.
func secureBoot(data []byte, top jval) bool {
	if top.kind != jObject {
		return true
	}
	sb := true
	for k, v := range members(data, top) {
		if str(data, k) == "has_secureboot" {
			sb = truthy(data, v)
		}
	}
	return sb
}

func truthy(data []byte, v jval) bool {
	raw := data[v.off:v.end]
	switch v.kind {
	case jNull:
		return false
	case jBool:
		return raw[0] == 't'
	case jNumber:
		// Overflow gives ±Inf (truthy), underflow 0.0 (falsy), as in Python.
		f, _ := strconv.ParseFloat(string(raw), 64)
		return f != 0
	case jString:
		return v.end-v.off > 2
	default:
		return skipWS(data, v.off+1) != v.end-1
	}
}

// ErrDSSEEnvelope is returned (wrapped) by Detect for a DSSE envelope: the
// policy is its payload, which must be verified and decoded first.
var ErrDSSEEnvelope = errors.New("schema: document is a DSSE envelope")

// ErrUnrecognized is returned (wrapped) by Detect when the document is
// neither a runtime policy nor a refstate.
var ErrUnrecognized = errors.New("schema: unrecognized document")

var (
	runtimePolicyKeys = []string{"meta", "release", "digests", "excludes", "keyrings", "ima", "ima-buf", "verification-keys"}
	mbRefstateKeys    = []string{"has_secureboot", "scrtm_and_bios", "pk", "kek", "db", "dbx", "vendor_db", "mokdig", "mokxdig", "kernels"}
)

// Detect tells a runtime policy from a measured-boot refstate by their
// top-level keys. It does not validate; call Validate with the result.
func Detect(data []byte) (Kind, error) {
	top, errs := parseTop(data)
	if errs != nil {
		return "", fmt.Errorf("%w: %s", ErrUnrecognized, errs[0].Msg)
	}
	if top.kind != jObject {
		return "", fmt.Errorf("%w: the top-level value is %s, not an object", ErrUnrecognized, shown(data, top))
	}
	keys := make(map[string]jval)
	for k, v := range members(data, top) {
		keys[str(data, k)] = v
	}
	_, payload := keys["payload"]
	pt, payloadType := keys["payloadType"]
	_, sigs := keys["signatures"]
	if payload && payloadType && sigs {
		return "", fmt.Errorf("%w (payloadType %s): verify its signature and validate the decoded payload instead", ErrDSSEEnvelope, shown(data, pt))
	}
	count := func(names []string) int {
		n := 0
		for _, name := range names {
			if _, ok := keys[name]; ok {
				n++
			}
		}
		return n
	}
	rp, mb := count(runtimePolicyKeys), count(mbRefstateKeys)
	switch {
	case rp > mb:
		return RuntimePolicy, nil
	case mb > rp:
		return MBRefstate, nil
	case rp == 0:
		if _, ok := keys["hashes"]; ok {
			return "", fmt.Errorf(`%w: this looks like a legacy Keylime JSON allowlist ("hashes"); convert it to a runtime policy first`, ErrUnrecognized)
		}
		if len(keys) == 0 {
			return "", fmt.Errorf("%w: the document is an empty object", ErrUnrecognized)
		}
		return "", fmt.Errorf("%w: no keys of a runtime policy (digests, excludes, ...) or a measured-boot refstate (kernels, pk, ...)", ErrUnrecognized)
	}
	return "", fmt.Errorf("%w: it has as many runtime-policy keys as refstate keys (%d each)", ErrUnrecognized, rp)
}
