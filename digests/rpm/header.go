package rpm

import (
	"bytes"
	"crypto/sha1" //nolint:gosec // SHA1HEADER (269) is defined over SHA-1.
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Sizes and limits. The entry limits are librpm's (lib/header.cc
// hdrblobVerifyLengths); the byte limit is zest's, well above real packages
// and far below what librpm would accept for a main header.
const (
	// LeadSize is the size of the lead that starts every package.
	LeadSize = 96
	// MaxHeaderBytes bounds one header's index plus data store.
	MaxHeaderBytes = 64 << 20
	// MaxSignatureEntries bounds the signature header's index entries.
	MaxSignatureEntries = 32
	// MaxMainEntries bounds the main header's index entries.
	MaxMainEntries = 0xffff
	// MaxArrayCount bounds the elements of one string array, so that a
	// store of NUL bytes cannot make a slice 16 times its size.
	MaxArrayCount = 1 << 20
)

var (
	leadMagic   = []byte{0xed, 0xab, 0xee, 0xdb}
	headerMagic = []byte{0x8e, 0xad, 0xe8, 0x01}
)

// Sentinel errors, wrapped in a *FormatError (errors.Is finds them).
var (
	// ErrTruncated: the input ended inside the lead or a header.
	ErrTruncated = errors.New("truncated")
	// ErrHeaderDigest: the main header does not match SHA256HEADER (273)
	// or SHA1HEADER (269) of the signature header.
	ErrHeaderDigest = errors.New("header digest mismatch")
	// ErrNoHeaderDigest: the signature header has neither 273 nor 269.
	ErrNoHeaderDigest = errors.New("no header digest (SHA256HEADER or SHA1HEADER)")
	// ErrTagNotFound: a tag the caller asked for is not in the header.
	ErrTagNotFound = errors.New("tag not found")
)

// FormatError locates a problem in a package: the input name, the byte
// offset from the start of the file, the section ("lead", "signature
// header", "main header", "payload") and, when it concerns one, the tag.
type FormatError struct {
	Input   string
	Offset  int64
	Section string
	Tag     Tag // 0 when the problem is not a tag's
	Msg     string
	Err     error // cause, such as ErrTruncated or ErrHeaderDigest; may be nil
}

func (e *FormatError) Error() string {
	s := "rpm: " + e.Input + ": " + e.Section + " at offset " + strconv.FormatInt(e.Offset, 10)
	if e.Tag != 0 {
		s += ", tag " + e.Tag.String()
	}
	s += ": " + e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *FormatError) Unwrap() error { return e.Err }

// Type is a header entry's data type.
type Type uint32

// The header data types (docs/manual/format_header.md).
const (
	TypeNull        Type = 0
	TypeChar        Type = 1
	TypeInt8        Type = 2
	TypeInt16       Type = 3
	TypeInt32       Type = 4
	TypeInt64       Type = 5
	TypeString      Type = 6
	TypeBin         Type = 7
	TypeStringArray Type = 8
	TypeI18NString  Type = 9
)

var typeNames = [...]string{"NULL", "CHAR", "INT8", "INT16", "INT32", "INT64", "STRING", "BIN", "STRING_ARRAY", "I18NSTRING"}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "type " + strconv.FormatUint(uint64(t), 10)
}

// size is the byte size of one element of a fixed-size type, 0 for strings.
func (t Type) size() int {
	switch t {
	case TypeChar, TypeInt8, TypeBin:
		return 1
	case TypeInt16:
		return 2
	case TypeInt32:
		return 4
	case TypeInt64:
		return 8
	}
	return 0
}

// Entry is one index entry of a header.
type Entry struct {
	Tag    Tag
	Type   Type
	Offset int32  // of the data in the data store
	Count  uint32 // elements (bytes for BIN)
	size   int    // bytes of data, computed when the header is read
}

// Tags is one header structure (the signature header or the main header),
// checked as librpm checks it before use: the region entry and its trailer,
// tags sorted and at least 100, data aligned, in bounds, in index order and
// not overlapping. Getters check the entry's type and count.
type Tags struct {
	input   string
	section string
	start   int64  // file offset of the header's intro
	raw     []byte // intro, index and data store
	store   []byte // raw's data store
	region  Tag
	entries []Entry // without the region entry, sorted by tag
}

// Start returns the file offset of the header's first byte.
func (t *Tags) Start() int64 { return t.start }

// Len returns the header's size in bytes (intro, index and data store,
// without the signature header's padding).
func (t *Tags) Len() int { return len(t.raw) }

// Bytes returns the header exactly as stored, the input of SHA256HEADER for
// the main header. The caller must not modify it.
func (t *Tags) Bytes() []byte { return t.raw }

// Entries returns the index entries after the region entry, by tag.
func (t *Tags) Entries() []Entry { return append([]Entry(nil), t.entries...) }

// Has reports whether the header holds tag.
func (t *Tags) Has(tag Tag) bool {
	_, ok := t.lookup(tag)
	return ok
}

func (t *Tags) lookup(tag Tag) (Entry, bool) {
	lo, hi := 0, len(t.entries)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if t.entries[m].Tag < tag {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(t.entries) && t.entries[lo].Tag == tag {
		return t.entries[lo], true
	}
	return Entry{}, false
}

// dataOffset is the file offset of an entry's data.
func (t *Tags) dataOffset(e Entry) int64 {
	return t.start + int64(len(t.raw)-len(t.store)) + int64(e.Offset)
}

func (t *Tags) errAt(off int64, tag Tag, err error, format string, args ...any) *FormatError {
	return &FormatError{Input: t.input, Offset: off, Section: t.section, Tag: tag, Msg: fmt.Sprintf(format, args...), Err: err}
}

// get returns tag's entry and data, checking it has one of the types.
func (t *Tags) get(tag Tag, types ...Type) (Entry, []byte, error) {
	e, ok := t.lookup(tag)
	if !ok {
		return e, nil, t.errAt(t.start, tag, ErrTagNotFound, "missing")
	}
	for _, ty := range types {
		if e.Type == ty {
			return e, t.store[e.Offset : int(e.Offset)+e.size], nil
		}
	}
	return e, nil, t.errAt(t.dataOffset(e), tag, nil, "has type %s, want %s", e.Type, types[0])
}

// Strings returns a STRING_ARRAY, or a STRING or I18NSTRING as an array.
func (t *Tags) Strings(tag Tag) ([]string, error) {
	e, b, err := t.get(tag, TypeStringArray, TypeString, TypeI18NString)
	if err != nil {
		return nil, err
	}
	if e.Count > MaxArrayCount {
		return nil, t.errAt(t.dataOffset(e), tag, nil, "%d strings (limit %d)", e.Count, MaxArrayCount)
	}
	out := make([]string, 0, e.Count)
	for len(b) > 0 {
		i := bytes.IndexByte(b, 0) // present: checked when the header was read
		out = append(out, string(b[:i]))
		b = b[i+1:]
	}
	return out, nil
}

// String returns a STRING, or the first (C locale) element of an
// I18NSTRING.
func (t *Tags) String(tag Tag) (string, error) {
	e, b, err := t.get(tag, TypeString, TypeI18NString, TypeStringArray)
	if err != nil {
		return "", err
	}
	if e.Type == TypeStringArray && e.Count != 1 {
		return "", t.errAt(t.dataOffset(e), tag, nil, "%d strings, want 1", e.Count)
	}
	return string(b[:bytes.IndexByte(b, 0)]), nil
}

// Uint16s returns an INT16 array.
func (t *Tags) Uint16s(tag Tag) ([]uint16, error) {
	_, b, err := t.get(tag, TypeInt16)
	if err != nil {
		return nil, err
	}
	out := make([]uint16, len(b)/2)
	for i := range out {
		out[i] = binary.BigEndian.Uint16(b[2*i:])
	}
	return out, nil
}

// Uint32s returns an INT32 array.
func (t *Tags) Uint32s(tag Tag) ([]uint32, error) {
	_, b, err := t.get(tag, TypeInt32)
	if err != nil {
		return nil, err
	}
	out := make([]uint32, len(b)/4)
	for i := range out {
		out[i] = binary.BigEndian.Uint32(b[4*i:])
	}
	return out, nil
}

// Uint64s returns an INT64 array.
func (t *Tags) Uint64s(tag Tag) ([]uint64, error) {
	_, b, err := t.get(tag, TypeInt64)
	if err != nil {
		return nil, err
	}
	out := make([]uint64, len(b)/8)
	for i := range out {
		out[i] = binary.BigEndian.Uint64(b[8*i:])
	}
	return out, nil
}

// Uint32 returns a single INT32 value.
func (t *Tags) Uint32(tag Tag) (uint32, error) {
	v, err := t.Uint32s(tag)
	if err != nil {
		return 0, err
	}
	if len(v) != 1 {
		e, _ := t.lookup(tag)
		return 0, t.errAt(t.dataOffset(e), tag, nil, "%d values, want 1", len(v))
	}
	return v[0], nil
}

// Binary returns BIN data (or the bytes of a CHAR or INT8 array). The caller
// must not modify it.
func (t *Tags) Binary(tag Tag) ([]byte, error) {
	_, b, err := t.get(tag, TypeBin, TypeChar, TypeInt8)
	return b, err
}

// readN appends n bytes read from r to b, growing b in steps of at most
// 1 MiB as data arrives, so that a length field alone cannot make it
// allocate much.
func readN(r io.Reader, b []byte, n int) ([]byte, error) {
	const chunk = 1 << 20
	want := len(b) + n
	for len(b) < want {
		k := min(want-len(b), chunk)
		b = slices.Grow(b, k)
		m, err := io.ReadFull(r, b[len(b):len(b)+k])
		b = b[:len(b)+m]
		if err != nil {
			return b, err
		}
	}
	return b, nil
}

func truncation(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return ErrTruncated
	}
	return err
}

// readTags reads and checks one header structure starting at file offset
// start. region is the region tag the section must start with.
func readTags(r io.Reader, input, section string, start int64, region Tag, maxEntries int) (*Tags, error) {
	t := &Tags{input: input, section: section, start: start, region: region}
	fail := func(off int64, err error, format string, args ...any) (*Tags, error) {
		return nil, t.errAt(off, 0, err, format, args...)
	}
	raw, err := readN(r, nil, 16)
	if err != nil {
		return fail(start+int64(len(raw)), truncation(err), "reading header intro")
	}
	if !bytes.Equal(raw[:4], headerMagic) {
		return fail(start, nil, "bad header magic % x (want 8e ad e8 01)", raw[:4])
	}
	il := binary.BigEndian.Uint32(raw[8:])
	dl := binary.BigEndian.Uint32(raw[12:])
	switch {
	case il < 1:
		return fail(start+8, nil, "no index entries")
	case il > uint32(maxEntries):
		return fail(start+8, nil, "%d index entries (limit %d)", il, maxEntries)
	case uint64(il)*16+uint64(dl) > MaxHeaderBytes:
		return fail(start+12, nil, "%d index entries and %d data bytes exceed %d bytes", il, dl, MaxHeaderBytes)
	}
	n := int(il)*16 + int(dl)
	raw, err = readN(r, raw, n)
	if err != nil {
		return fail(start+int64(len(raw)), truncation(err), "reading %d bytes of index and data (header at %d)", n, start)
	}
	t.raw = raw
	t.store = raw[16+16*int(il):]
	if err := t.checkIndex(int(il)); err != nil {
		return nil, err
	}
	return t, nil
}

// checkIndex parses and checks the index against the data store, the checks
// of librpm's hdrblobVerifyRegion and hdrblobVerifyInfo.
func (t *Tags) checkIndex(il int) error {
	index := t.raw[16 : 16+16*il]
	dl := int64(len(t.store))
	entryAt := func(i int) Entry {
		b := index[16*i:]
		return Entry{
			Tag:    Tag(binary.BigEndian.Uint32(b)),
			Type:   Type(binary.BigEndian.Uint32(b[4:])),
			Offset: int32(binary.BigEndian.Uint32(b[8:])),
			Count:  binary.BigEndian.Uint32(b[12:]),
		}
	}
	indexOff := func(i int) int64 { return t.start + 16 + 16*int64(i) }
	storeOff := t.start + 16 + 16*int64(il)

	// The region entry and the trailer it points to.
	reg := entryAt(0)
	if reg.Tag != t.region || reg.Type != TypeBin || reg.Count != 16 {
		return t.errAt(indexOff(0), reg.Tag, nil, "first entry is %s %s[%d], want region tag %s BIN[16]", reg.Tag, reg.Type, reg.Count, t.region)
	}
	if reg.Offset < 0 || int64(reg.Offset)+16 > dl {
		return t.errAt(indexOff(0), reg.Tag, nil, "region trailer offset %d outside the %d-byte data store", reg.Offset, dl)
	}
	trailerStart, trailerEnd := int64(reg.Offset), int64(reg.Offset)+16
	tr := t.store[trailerStart:trailerEnd]
	trTag, trType := Tag(binary.BigEndian.Uint32(tr)), Type(binary.BigEndian.Uint32(tr[4:]))
	trOff, trCount := int32(binary.BigEndian.Uint32(tr[8:])), binary.BigEndian.Uint32(tr[12:])
	if trTag != t.region || trType != TypeBin || trCount != 16 {
		return t.errAt(storeOff+trailerStart, reg.Tag, nil, "region trailer is %s %s[%d], want %s BIN[16]", trTag, trType, trCount, t.region)
	}
	if int64(trOff) != -16*int64(il) {
		return t.errAt(storeOff+trailerStart, reg.Tag, nil, "region covers %d bytes of index, want all %d entries (%d bytes)", -int64(trOff), il, 16*il)
	}

	t.entries = make([]Entry, 0, il-1)
	end := int64(0) // end of the previous entry's data
	for i := 1; i < il; i++ {
		e := entryAt(i)
		at := indexOff(i)
		if e.Tag < 100 {
			return t.errAt(at, e.Tag, nil, "tag below 100 after the region entry")
		}
		if i > 1 && e.Tag <= t.entries[len(t.entries)-1].Tag {
			return t.errAt(at, e.Tag, nil, "index not sorted by tag (after %s)", t.entries[len(t.entries)-1].Tag)
		}
		if e.Type < TypeChar || e.Type > TypeI18NString {
			return t.errAt(at, e.Tag, nil, "bad type %d", uint32(e.Type))
		}
		if e.Count == 0 {
			return t.errAt(at, e.Tag, nil, "count 0")
		}
		if e.Type == TypeString && e.Count != 1 {
			return t.errAt(at, e.Tag, nil, "STRING with count %d", e.Count)
		}
		off := int64(e.Offset)
		if off < 0 || off >= dl {
			return t.errAt(at, e.Tag, nil, "data offset %d outside the %d-byte data store", off, dl)
		}
		if sz := e.Type.size(); sz > 1 && off%int64(sz) != 0 {
			return t.errAt(at, e.Tag, nil, "%s data offset %d not aligned", e.Type, off)
		}
		if off < end {
			return t.errAt(at, e.Tag, nil, "data at %d overlaps the previous entry's (ending at %d)", off, end)
		}
		var size int64
		if sz := e.Type.size(); sz > 0 {
			size = int64(e.Count) * int64(sz)
			if size > dl-off {
				return t.errAt(storeOff+off, e.Tag, ErrTruncated, "%d×%s runs past the data store", e.Count, e.Type)
			}
		} else {
			// count NUL-terminated strings, all inside the store.
			p := off
			for k := uint32(0); k < e.Count; k++ {
				j := bytes.IndexByte(t.store[p:], 0)
				if j < 0 {
					return t.errAt(storeOff+p, e.Tag, ErrTruncated, "string %d of %d not terminated inside the data store", k, e.Count)
				}
				p += int64(j) + 1
			}
			size = p - off
		}
		e.size = int(size)
		end = off + size
		if end > trailerStart && off < trailerEnd {
			return t.errAt(storeOff+off, e.Tag, nil, "data overlaps the region trailer")
		}
		t.entries = append(t.entries, e)
	}
	return nil
}

// Header is a package's lead, signature header and main header: everything
// before the payload, which is what a repository client fetches with one
// range request (rpm:header-range end). ReadHeader has checked the main
// header against the signature header's digests; nothing here is
// authenticated by a signature.
type Header struct {
	input string
	sig   *Tags
	main  *Tags
	end   int64 // payload start
}

// ReadHeader reads the lead, the signature header (and its padding) and the
// main header from r, and checks the main header's bytes against
// SHA256HEADER (273) and SHA1HEADER (269), whichever are present (at least
// one must be). name labels errors. r is left at the payload: exactly the
// header bytes are read.
func ReadHeader(r io.Reader, name string) (*Header, error) {
	return readHeader(r, name, true)
}

// readHeader is ReadHeader; fuzzing turns the digest check off to reach
// the code behind it.
func readHeader(r io.Reader, name string, checkDigest bool) (*Header, error) {
	h := &Header{input: name}
	lead, err := readN(r, nil, LeadSize)
	if err != nil {
		return nil, &FormatError{Input: name, Offset: int64(len(lead)), Section: "lead", Msg: "reading lead", Err: truncation(err)}
	}
	if !bytes.Equal(lead[:4], leadMagic) {
		return nil, &FormatError{Input: name, Section: "lead", Msg: fmt.Sprintf("bad magic % x (want ed ab ee db): not an RPM package", lead[:4])}
	}
	if major := lead[4]; major < 3 || major > 4 {
		return nil, &FormatError{Input: name, Offset: 4, Section: "lead", Msg: fmt.Sprintf("unsupported package format %d.%d", major, lead[5])}
	}
	if st := binary.BigEndian.Uint16(lead[78:]); st != 5 {
		return nil, &FormatError{Input: name, Offset: 78, Section: "lead", Msg: fmt.Sprintf("signature type %d (want 5, header-style)", st)}
	}

	h.sig, err = readTags(r, name, "signature header", LeadSize, TagSigRegion, MaxSignatureEntries)
	if err != nil {
		return nil, err
	}
	sigEnd := LeadSize + int64(h.sig.Len())
	if pad := (8 - sigEnd%8) % 8; pad > 0 {
		if _, err := readN(r, nil, int(pad)); err != nil {
			return nil, &FormatError{Input: name, Offset: sigEnd, Section: "signature header", Msg: "reading padding", Err: truncation(err)}
		}
		sigEnd += pad
	}
	h.main, err = readTags(r, name, "main header", sigEnd, TagMainRegion, MaxMainEntries)
	if err != nil {
		return nil, err
	}
	h.end = sigEnd + int64(h.main.Len())
	if !checkDigest {
		return h, nil
	}
	if err := h.checkDigests(); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *Header) checkDigests() error {
	checked := false
	for _, c := range []struct {
		tag Tag
		sum func([]byte) []byte
	}{
		{TagSigSHA256, func(b []byte) []byte { s := sha256.Sum256(b); return s[:] }},
		{TagSigSHA1, func(b []byte) []byte { s := sha1.Sum(b); return s[:] }}, //nolint:gosec
	} {
		if !h.sig.Has(c.tag) {
			continue
		}
		want, err := h.sig.String(c.tag)
		if err != nil {
			return err
		}
		got := hex.EncodeToString(c.sum(h.main.Bytes()))
		if !strings.EqualFold(want, got) {
			return &FormatError{
				Input: h.input, Offset: h.main.Start(), Section: "main header", Tag: c.tag,
				Msg: fmt.Sprintf("bytes %d..%d hash to %s, signature header says %s", h.main.Start(), h.end, got, want),
				Err: ErrHeaderDigest,
			}
		}
		checked = true
	}
	if !checked {
		return &FormatError{Input: h.input, Offset: LeadSize, Section: "signature header", Msg: "cannot check the main header", Err: ErrNoHeaderDigest}
	}
	return nil
}

// Input returns the name the header was read under.
func (h *Header) Input() string { return h.input }

// Signature returns the signature header. It is not covered by any digest
// or signature: treat what it says (IMA signatures aside, which are
// checked against keys) as unauthenticated.
func (h *Header) Signature() *Tags { return h.sig }

// Main returns the main header.
func (h *Header) Main() *Tags { return h.main }

// Range returns the byte range of the main header, [start, end): end is
// where the payload starts. createrepo_c publishes the same pair as
// rpm:header-range.
func (h *Header) Range() (start, end int64) { return h.main.Start(), h.end }

func (h *Header) str(tag Tag) string {
	s, _ := h.main.String(tag)
	return s
}

// Name returns NAME, or "" when it is missing.
func (h *Header) Name() string { return h.str(TagName) }

// Version returns VERSION, or "".
func (h *Header) Version() string { return h.str(TagVersion) }

// Release returns RELEASE, or "".
func (h *Header) Release() string { return h.str(TagRelease) }

// Arch returns ARCH, or "".
func (h *Header) Arch() string { return h.str(TagArch) }

// Epoch returns EPOCH and whether the package has one.
func (h *Header) Epoch() (uint32, bool) {
	v, err := h.main.Uint32(TagEpoch)
	return v, err == nil
}

// NEVRA returns name-[epoch:]version-release.arch.
func (h *Header) NEVRA() string {
	s := h.Name() + "-"
	if e, ok := h.Epoch(); ok {
		s += strconv.FormatUint(uint64(e), 10) + ":"
	}
	return s + h.Version() + "-" + h.Release() + "." + h.Arch()
}

// IsSource reports a source package, as librpm's headerIsSource decides:
// it has no SOURCERPM, or it has SOURCEPACKAGE.
func (h *Header) IsSource() bool {
	return !h.main.Has(TagSourceRPM) || h.main.Has(TagSourcePackage)
}
