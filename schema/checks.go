package schema

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"hash/maphash"
	"strings"
)

// Checks named by @check in the .cue files: constraints CUE cannot state
// (a regexp that must compile, JSON inside a string, a DER key) or that are
// too slow in CUE for 10^5 keys (digest_map).
var checkNames = map[string]bool{
	"digest_map":    true,
	"exclude":       true,
	"exclude_list":  true,
	"ima_keyring":   true,
	"keyring_pairs": true,
	"pubkey":        true,
	"python_regex":  true,
	"nonempty":      true,
}

func (w *walker) runCheck(n *node, v jval, p jpath) {
	switch n.check {
	case "exclude", "python_regex", "pubkey", "ima_keyring":
		if !w.spend() {
			return
		}
	}
	switch n.check {
	case "digest_map":
		// Reached only with slowMaps: CUE already did the work.
	case "exclude":
		if err := CheckExclude(str(w.data, v)); err != nil {
			w.add(p, reasonOf(err))
		}
	case "exclude_list":
		w.excludeGroups(v, p)
	case "python_regex":
		if err := checkPythonRegex(str(w.data, v)); err != nil {
			w.add(p, reasonOf(err))
		}
	case "ima_keyring":
		w.keyring(v, p)
	case "keyring_pairs":
		w.keyringPairs(v, p)
	case "pubkey":
		if msg := checkPubKey(str(w.data, v)); msg != "" {
			w.add(p, msg)
		}
	case "nonempty":
		n.loadFields()
		for k := range members(w.data, v) {
			if _, ok := n.fields[str(w.data, k)]; ok {
				return
			}
		}
		w.add(p, "must name at least one of "+strings.Join(n.order, ", ")+", got "+shown(w.data, v))
	default:
		w.add(p, fmt.Sprintf("internal error: unknown schema check %q", n.check))
	}
}

// digestMap validates Keylime's digests-object (#DigestMap) in one pass over
// the bytes: every value a non-empty list of ^[0-9a-f]{40,128}$ strings. The
// messages come from the same CUE nodes the slow path would use.
func (w *walker) digestMap(n *node, pat string, v jval, p jpath) {
	n.loadFields()
	if n.pattern == nil {
		w.add(p, "internal error: digest_map check on a schema without [string] pattern")
		return
	}
	list := w.info(*n.pattern, pat+".*")
	list.loadList()
	es, epat, _ := list.elem(0, pat+".*")
	elem := w.info(es, epat)

	type bad struct {
		ord int  // member ordinal, to apply last-wins afterwards
		key jval // the member's key
		at  int  // element index, or -1 for the list itself
		val jval // the offending value
	}
	var bads []bad
	// Beyond this many the report is cut anyway; keep memory bounded.
	record := func(b bad) {
		if len(bads) < 2*maxIssues {
			bads = append(bads, b)
		} else {
			w.dropped++
		}
	}
	dups := newDupFinder(w.strict)
	ord := 0
	for k, val := range members(w.data, v) {
		dups.add(w.data, k)
		if val.kind != jArray {
			record(bad{ord, k, -1, val})
			ord++
			continue
		}
		count := 0
		for i, el := range elements(w.data, val) {
			count++
			if el.kind == jString && hexDigestOK(w.data, el) {
				continue
			}
			record(bad{ord, k, i, el})
		}
		if count == 0 {
			record(bad{ord, k, -1, val})
		}
		ord++
	}
	for _, key := range dups.duplicates(w.data, v) {
		w.add(p.key(key), "duplicate key (Keylime keeps the last value)")
	}
	if len(bads) == 0 {
		return
	}
	// Keylime never sees a value that a later duplicate key replaced, so
	// neither do we (strict mode reports the duplicate itself). Keys are
	// decoded only now, for the few members with errors.
	last := make(map[string]int)
	for _, b := range bads {
		last[str(w.data, b.key)] = -1
	}
	i := 0
	for k := range members(w.data, v) {
		key := str(w.data, k)
		if _, ok := last[key]; ok {
			last[key] = i
		}
		i++
	}
	for _, b := range bads {
		key := str(w.data, b.key)
		if last[key] != b.ord {
			continue
		}
		if b.at < 0 {
			w.add(p.key(key), "must be "+list.expect+", got "+shown(w.data, b.val))
		} else {
			w.add(p.key(key).idx(b.at), "must be "+elem.expect+", got "+shown(w.data, b.val))
		}
	}
}

var lowerHex = func() (t [256]bool) {
	for _, c := range "0123456789abcdef" {
		t[c] = true
	}
	return t
}()

// dupFinder spots repeated keys among 10^5 object members without keeping
// every key as a string: it remembers 64-bit hashes and compares real keys
// only for hashes seen twice.
type dupFinder struct {
	on       bool
	seed     maphash.Seed
	hashes   map[uint64]struct{}
	collided map[uint64]struct{}
}

func newDupFinder(on bool) *dupFinder {
	if !on {
		return &dupFinder{}
	}
	return &dupFinder{on: true, seed: maphash.MakeSeed(), hashes: make(map[uint64]struct{})}
}

func (d *dupFinder) hash(data []byte, k jval) uint64 {
	raw, escaped := rawString(data, k)
	if escaped {
		return maphash.String(d.seed, str(data, k))
	}
	return maphash.Bytes(d.seed, raw)
}

func (d *dupFinder) add(data []byte, k jval) {
	if !d.on {
		return
	}
	h := d.hash(data, k)
	if _, ok := d.hashes[h]; ok {
		if d.collided == nil {
			d.collided = make(map[uint64]struct{})
		}
		d.collided[h] = struct{}{}
		return
	}
	d.hashes[h] = struct{}{}
}

// duplicates returns each key of obj that occurs more than once, once per
// extra occurrence.
func (d *dupFinder) duplicates(data []byte, obj jval) []string {
	if len(d.collided) == 0 {
		return nil
	}
	seen := make(map[string]bool)
	var out []string
	for k := range members(data, obj) {
		if _, ok := d.collided[d.hash(data, k)]; !ok {
			continue
		}
		key := str(data, k)
		if seen[key] {
			out = append(out, key)
		}
		seen[key] = true
	}
	return out
}

// hexDigestOK reports whether a string value matches ^[0-9a-f]{40,128}$
// after JSON unescaping.
func hexDigestOK(data []byte, v jval) bool {
	raw, escaped := rawString(data, v)
	if escaped {
		s := str(data, v)
		raw = []byte(s)
	}
	if len(raw) < 40 || len(raw) > 128 {
		return false
	}
	for _, c := range raw {
		if !lowerHex[c] {
			return false
		}
	}
	return true
}

// excludeGroups finds a named group reused across excludes. Each exclude may
// be fine alone, but Keylime compiles them joined as (e1)|(e2)|..., where
// Python rejects the second definition and then ignores every exclude.
func (w *walker) excludeGroups(v jval, p jpath) {
	first := make(map[string]int)
	for i, el := range elements(w.data, v) {
		if el.kind != jString {
			continue
		}
		names, err := pyScan(str(w.data, el))
		if err != nil {
			continue // reported by the element's own check
		}
		for _, name := range names {
			if j, ok := first[name]; ok {
				w.add(p.idx(i), fmt.Sprintf("group name %q is already used by excludes[%d]; Keylime joins all excludes into one expression, Python rejects a repeated group name and then ignores every exclude, so rename one of them", name, j))
				continue
			}
			first[name] = i
		}
	}
}

// keyring validates the verification-keys string: empty, or JSON matching
// #IMAKeyring. Problems inside it are reported at the string's path, with
// the position inside the embedded document in the message.
func (w *walker) keyring(v jval, p jpath) {
	s := str(w.data, v)
	if s == "" {
		return
	}
	inner := []byte(s)
	top, err := scan(inner)
	if err != nil {
		se := err.(*syntaxError)
		w.add(p, fmt.Sprintf("must hold an IMA keyring as JSON, but it is not valid JSON: byte %d: %s", se.off, se.msg))
		return
	}
	sub := &walker{c: w.c, data: inner, strict: w.strict, slowMaps: w.slowMaps, evaluations: w.evaluations}
	sub.walk(w.c.imaKeyring, "#IMAKeyring", top, nil)
	for _, is := range sub.issues {
		w.add(p, "keyring "+is.path.String()+": "+is.msg)
	}
	w.dropped += sub.dropped
	w.evaluations, w.exhausted = sub.evaluations, sub.exhausted
}

func (w *walker) keyringPairs(v jval, p jpath) {
	var ids, keys int
	var idsOK, keysOK bool
	for k, val := range members(w.data, v) {
		if val.kind != jArray {
			continue
		}
		n := 0
		for range elements(w.data, val) {
			n++
		}
		switch str(w.data, k) {
		case "keyids":
			ids, idsOK = n, true
		case "pubkeys":
			keys, keysOK = n, true
		}
	}
	if idsOK && keysOK && ids != keys {
		w.add(p, fmt.Sprintf("keyids and pubkeys must pair up one to one, got %d keyids and %d pubkeys", ids, keys))
	}
}

// checkPubKey returns why s is not base64 of an RSA or ECDSA
// SubjectPublicKeyInfo that zest can use, or "".
func checkPubKey(s string) string {
	der, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return fmt.Sprintf("must be standard base64 of a DER public key: %v", err)
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return fmt.Sprintf("must be base64 of a DER SubjectPublicKeyInfo that Go can parse: %v", err)
	}
	switch pub.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey:
		return ""
	case ed25519.PublicKey:
		return "is an Ed25519 key; IMA signatures are verified with RSA or ECDSA keys only"
	}
	return fmt.Sprintf("is a %T; IMA signatures are verified with RSA or ECDSA keys only", pub)
}
