package imasig

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// MaxKeyringBytes bounds a verification-keys document.
const MaxKeyringBytes = 16 << 20

// Keyring is the set of IMA verification keys a runtime policy carries in its
// "verification-keys" field (Keylime's ImaKeyring).
//
// Entries are unique by (keyid, SubjectPublicKeyInfo) and kept sorted by keyid,
// then by the DER SPKI bytes, so String is deterministic whatever order keys
// were added in. Keylime keeps one key per keyid (the last one added wins);
// zest keeps every distinct key, and Verify tries them all.
//
// A key that Keylime can load but Go cannot use (an ECDSA secp256k1 key, for
// instance) is kept as an entry without a Key, so that reading and writing a
// policy never drops it; such entries never verify anything.
type Keyring struct {
	entries []Entry
}

// Entry is one key of a keyring as verification-keys lists it.
type Entry struct {
	KeyID uint32
	// SPKI is the DER SubjectPublicKeyInfo written to "pubkeys".
	SPKI []byte
	// Key is nil when zest cannot use the key; Unsupported then says why.
	Key         *Key
	Unsupported error
}

// Len is the number of entries, usable or not.
func (r *Keyring) Len() int { return len(r.entries) }

// Entries returns the entries in serialisation order. The slice is a copy;
// the keys are shared.
func (r *Keyring) Entries() []Entry { return append([]Entry(nil), r.entries...) }

// KeyIDs lists the distinct keyids in ascending order (for policy diffs).
func (r *Keyring) KeyIDs() []uint32 {
	var ids []uint32
	for i, e := range r.entries {
		if i == 0 || e.KeyID != r.entries[i-1].KeyID {
			ids = append(ids, e.KeyID)
		}
	}
	return ids
}

// Lookup returns the usable keys with the given keyid.
func (r *Keyring) Lookup(keyid uint32) []*Key {
	var keys []*Key
	for i := r.search(keyid); i < len(r.entries) && r.entries[i].KeyID == keyid; i++ {
		if k := r.entries[i].Key; k != nil {
			keys = append(keys, k)
		}
	}
	return keys
}

func (r *Keyring) search(keyid uint32) int {
	return sort.Search(len(r.entries), func(i int) bool { return r.entries[i].KeyID >= keyid })
}

// Add inserts k unless an entry with the same keyid and public key is already
// there. Keys of unsupported types are refused.
func (r *Keyring) Add(k *Key) error {
	if k == nil {
		return errors.New("imasig: nil key")
	}
	spki, err := spkiOf(k.Public)
	if err != nil {
		return err
	}
	r.insert(Entry{KeyID: k.KeyID, SPKI: spki, Key: k})
	return nil
}

func (r *Keyring) insert(e Entry) {
	i := sort.Search(len(r.entries), func(i int) bool {
		x := r.entries[i]
		return x.KeyID > e.KeyID || (x.KeyID == e.KeyID && bytes.Compare(x.SPKI, e.SPKI) >= 0)
	})
	if i < len(r.entries) && r.entries[i].KeyID == e.KeyID && bytes.Equal(r.entries[i].SPKI, e.SPKI) {
		return
	}
	r.entries = append(r.entries, Entry{})
	copy(r.entries[i+1:], r.entries[i:])
	r.entries[i] = e
}

// String serialises the keyring byte for byte as Keylime's
// ImaKeyring.to_string (Python json.dumps with default separators):
// {"pubkeys": ["<base64 DER SPKI>", ...], "keyids": [<u32>, ...]}.
func (r *Keyring) String() string {
	var b strings.Builder
	b.WriteString(`{"pubkeys": [`)
	for i, e := range r.entries {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('"')
		b.WriteString(base64.StdEncoding.EncodeToString(e.SPKI))
		b.WriteByte('"')
	}
	b.WriteString(`], "keyids": [`)
	for i, e := range r.entries {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.FormatUint(uint64(e.KeyID), 10))
	}
	b.WriteString("]}")
	return b.String()
}

// KeyringError locates a problem in a verification-keys document.
type KeyringError struct {
	Field string // "pubkeys[2]", "keyids[0]", "" for the document
	Err   error
}

func (e *KeyringError) Error() string {
	if e.Field == "" {
		return "verification-keys: " + e.Err.Error()
	}
	return "verification-keys: " + e.Field + ": " + e.Err.Error()
}

func (e *KeyringError) Unwrap() error { return e.Err }

// ParseKeyring reads a verification-keys document. The empty string is an
// empty keyring. Like Keylime's ImaKeyring.from_string it also accepts the
// document JSON-encoded once more as a string (how older databases stored
// it), tolerates a missing "keyids" list or one shorter than "pubkeys", and
// recomputes a missing, null or zero keyid from the key (KeyIDv2). A "pubkeys"
// item may be an SPKI or a PKCS#1 RSA public key. Unlike Keylime, which logs
// and skips a key it cannot load, zest fails on a malformed entry and names
// it; pubkeys must be standard, padded base64 without line breaks.
func ParseKeyring(s string) (*Keyring, error) {
	r := &Keyring{}
	if s == "" {
		return r, nil
	}
	if len(s) > MaxKeyringBytes {
		return nil, &KeyringError{Err: fmt.Errorf("document is %d bytes, more than %d", len(s), MaxKeyringBytes)}
	}
	doc := []byte(s)
	var inner string
	if err := json.Unmarshal(doc, &inner); err == nil {
		doc = []byte(inner)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(doc, &top); err != nil {
		return nil, &KeyringError{Err: fmt.Errorf("not a JSON object: %w", err)}
	}
	rawKeys, ok := top["pubkeys"]
	if !ok {
		return nil, &KeyringError{Err: errors.New(`missing "pubkeys"`)}
	}
	var pubkeys []string
	if err := json.Unmarshal(rawKeys, &pubkeys); err != nil || pubkeys == nil {
		return nil, &KeyringError{Field: "pubkeys", Err: errors.New("must be an array of strings")}
	}
	var keyids []json.RawMessage
	if raw, ok := top["keyids"]; ok {
		if err := json.Unmarshal(raw, &keyids); err != nil || keyids == nil {
			return nil, &KeyringError{Field: "keyids", Err: errors.New("must be an array of integers")}
		}
	}
	for i, p := range pubkeys {
		field := fmt.Sprintf("pubkeys[%d]", i)
		var id uint32
		if i < len(keyids) {
			v, err := parseKeyID(keyids[i])
			if err != nil {
				return nil, &KeyringError{Field: fmt.Sprintf("keyids[%d]", i), Err: err}
			}
			id = v
		}
		e, err := parseEntry(p, id)
		if err != nil {
			return nil, &KeyringError{Field: field, Err: err}
		}
		r.insert(e)
	}
	return r, nil
}

func parseKeyID(raw json.RawMessage) (uint32, error) {
	s := string(bytes.TrimSpace(raw))
	if s == "null" {
		return 0, nil
	}
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%s is not a 32-bit unsigned integer", s)
	}
	return uint32(v), nil
}

func parseEntry(b64 string, keyid uint32) (Entry, error) {
	if strings.ContainsAny(b64, "\r\n") {
		return Entry{}, errors.New("base64 contains a line break")
	}
	der, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return Entry{}, fmt.Errorf("bad base64: %w", err)
	}
	k, err, ok := derPublic(der)
	if !ok {
		return Entry{}, errors.New("not a DER SubjectPublicKeyInfo or PKCS#1 RSA public key")
	}
	var unsupported *UnsupportedKeyError
	if errors.As(err, &unsupported) {
		_, bits, _ := parseSPKI(der)
		if keyid == 0 {
			// calc_keyid_v2 hashes the BIT STRING content, which for EC
			// keys is the point as encoded; Keylime hashes the uncompressed
			// point, so the two agree for the usual uncompressed encoding.
			keyid = keyIDOf(bits)
		}
		return Entry{KeyID: keyid, SPKI: der, Unsupported: err}, nil
	}
	if err != nil {
		return Entry{}, err
	}
	if keyid != 0 {
		k.KeyID = keyid
	}
	spki, err := spkiOf(k.Public)
	if err != nil {
		return Entry{}, err
	}
	return Entry{KeyID: k.KeyID, SPKI: spki, Key: k}, nil
}
