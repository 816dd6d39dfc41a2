// Package imalog owns the Linux IMA ASCII measurement list
// (/sys/kernel/security/ima/ascii_runtime_measurements[_<bank>]): a streaming
// parser for every built-in template (ima, ima-ng, ima-sig, ima-ngv2,
// ima-sigv2, ima-buf, ima-modsig) and custom "d-ng|n-ng|..." formats, and the
// exact template-data bytes the kernel hashes, so callers can check template
// hashes and replay PCRs.
//
// Parsing does not verify anything: a parsed Entry is untrusted until its
// template hash has been checked (CheckTemplateHash) and the list has been
// replayed against a quote, which is the verifier's job. This package must
// not import policygen, verifier or archive.
package imalog

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/zest-attest/zest/digests"
)

// MaxLineBytes bounds one line of the ASCII list. Lines carrying appended
// module signatures (ima-modsig) or certificates (ima-buf) run to a few KiB;
// kexec command lines and critical data stay far below this.
const MaxLineBytes = 1 << 20

// field is one template field id (ima_template.c supported_fields).
type field uint8

const (
	fieldD       field = iota + 1 // d: raw digest, no algorithm
	fieldN                        // n: name (legacy)
	fieldDNG                      // d-ng: "alg:" NUL digest
	fieldDNGv2                    // d-ngv2: "type:alg:" NUL digest
	fieldNNG                      // n-ng: name NUL
	fieldSig                      // sig: security.ima value
	fieldBuf                      // buf: raw buffer
	fieldDModsig                  // d-modsig: like d-ng, may be empty
	fieldModsig                   // modsig: PKCS#7 blob
	fieldEVMSig                   // evmsig: security.evm portable signature
)

var fieldNames = map[string]field{
	"d": fieldD, "n": fieldN, "d-ng": fieldDNG, "d-ngv2": fieldDNGv2, "n-ng": fieldNNG,
	"sig": fieldSig, "buf": fieldBuf, "d-modsig": fieldDModsig, "modsig": fieldModsig, "evmsig": fieldEVMSig,
}

// Template names of the kernel's built-in templates.
const (
	TemplateIMA       = "ima"
	TemplateIMANG     = "ima-ng"
	TemplateIMASig    = "ima-sig"
	TemplateIMANGv2   = "ima-ngv2"
	TemplateIMASigv2  = "ima-sigv2"
	TemplateIMABuf    = "ima-buf"
	TemplateIMAModsig = "ima-modsig"
)

type templateDesc struct {
	name   string
	fields []field
}

var builtin = map[string]*templateDesc{
	TemplateIMA:       {TemplateIMA, []field{fieldD, fieldN}},
	TemplateIMANG:     {TemplateIMANG, []field{fieldDNG, fieldNNG}},
	TemplateIMASig:    {TemplateIMASig, []field{fieldDNG, fieldNNG, fieldSig}},
	TemplateIMANGv2:   {TemplateIMANGv2, []field{fieldDNGv2, fieldNNG}},
	TemplateIMASigv2:  {TemplateIMASigv2, []field{fieldDNGv2, fieldNNG, fieldSig}},
	TemplateIMABuf:    {TemplateIMABuf, []field{fieldDNG, fieldNNG, fieldBuf}},
	TemplateIMAModsig: {TemplateIMAModsig, []field{fieldDNG, fieldNNG, fieldSig, fieldDModsig, fieldModsig}},
}

// Digest is a file digest as a d, d-ng or d-ngv2 field carries it.
type Digest struct {
	Type      string // d-ngv2 only: "ima" or "verity"
	Algorithm string // as the kernel names it ("sha256", "sm3"); "" for the d field and prefix-less d-ng
	Value     []byte
}

// Alg maps the kernel's algorithm name to zest's; a prefix-less digest is
// classified by its length (20 bytes: sha1, 16: md5).
func (d Digest) Alg() (digests.Algorithm, error) {
	switch d.Algorithm {
	case "":
		switch len(d.Value) {
		case 20:
			return digests.SHA1, nil
		case 16:
			return digests.MD5, nil
		}
		return "", fmt.Errorf("digest without algorithm prefix has %d bytes (want 20 for sha1 or 16 for md5)", len(d.Value))
	case "sm3":
		return digests.SM3, nil
	}
	a, err := digests.ParseAlgorithm(d.Algorithm)
	if err != nil {
		return "", err
	}
	if a.Size() != len(d.Value) {
		return "", fmt.Errorf("%s digest has %d bytes, want %d", a, len(d.Value), a.Size())
	}
	return a, nil
}

// Entry is one record of the ASCII list. The Reader reuses Entry values and
// their byte slices (RawName aliases the input buffer): they are valid until
// the next call to Next.
type Entry struct {
	Line         int    // 1-based line number in the input
	Offset       int64  // byte offset of the line in the input
	PCR          uint32 // PCR index (10 unless the policy sets pcr=)
	TemplateHash []byte // as listed; its length tells the bank of the file
	Template     string // template name, or the custom format string
	Digest       Digest // d / d-ng / d-ngv2
	RawName      []byte // path, or buffer name for ima-buf; see Name
	Sig          []byte // sig field (security.ima value incl. type byte), if any
	Buf          []byte // buf field, if any
	ModsigDigest Digest // d-modsig, if any
	Modsig       []byte // modsig, if any
	EVMSig       []byte // evmsig, if any

	desc *templateDesc
}

// Name returns the path (or buffer name) as a string. RawName avoids the
// allocation for callers that only look names up.
func (e *Entry) Name() string { return string(e.RawName) }

// IsViolation reports whether the record is a ToMToU/open_writers violation:
// its template hash is all zeros and its content was never hashed.
func (e *Entry) IsViolation() bool {
	for _, b := range e.TemplateHash {
		if b != 0 {
			return false
		}
	}
	return true
}

// HasSigField reports whether the entry's template carries a sig field.
func (e *Entry) HasSigField() bool { return e.has(fieldSig) }

// HasBufField reports whether the entry's template carries a buf field
// (ima-buf, or a custom format with buf): a buffer measurement, not a file.
func (e *Entry) HasBufField() bool { return e.has(fieldBuf) }

func (e *Entry) has(f field) bool {
	if e.desc == nil {
		return false
	}
	for _, x := range e.desc.fields {
		if x == f {
			return true
		}
	}
	return false
}

// AppendTemplateData appends the bytes the kernel hashes for this record's
// template hash (ima_crypto.c ima_calc_field_array_hash_tfm): for every
// template but "ima", each field as little-endian u32 length + data; for the
// legacy "ima" template, the digest followed by the name in a zero-filled
// 256-byte buffer, without lengths.
func (e *Entry) AppendTemplateData(dst []byte) []byte {
	if e.desc == nil {
		return dst
	}
	if e.desc.name == TemplateIMA {
		dst = append(dst, e.Digest.Value...)
		var name [256]byte
		copy(name[:255], e.RawName)
		return append(dst, name[:]...)
	}
	for _, f := range e.desc.fields {
		switch f {
		case fieldD:
			dst = appendField(dst, e.Digest.Value)
		case fieldN, fieldNNG:
			dst = binary.LittleEndian.AppendUint32(dst, uint32(len(e.RawName)+1))
			dst = append(dst, e.RawName...)
			dst = append(dst, 0)
		case fieldDNG:
			dst = appendDigestNG(dst, "", e.Digest)
		case fieldDNGv2:
			dst = appendDigestNG(dst, e.Digest.Type, e.Digest)
		case fieldDModsig:
			if e.ModsigDigest.Algorithm == "" && len(e.ModsigDigest.Value) == 0 {
				dst = appendField(dst, nil)
			} else {
				dst = appendDigestNG(dst, "", e.ModsigDigest)
			}
		case fieldSig:
			dst = appendField(dst, e.Sig)
		case fieldBuf:
			dst = appendField(dst, e.Buf)
		case fieldModsig:
			dst = appendField(dst, e.Modsig)
		case fieldEVMSig:
			dst = appendField(dst, e.EVMSig)
		}
	}
	return dst
}

func appendField(dst, b []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}

func appendDigestNG(dst []byte, typ string, d Digest) []byte {
	if d.Algorithm == "" {
		return appendField(dst, d.Value)
	}
	n := len(d.Algorithm) + 2 + len(d.Value)
	if typ != "" {
		n += len(typ) + 1
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(n))
	if typ != "" {
		dst = append(dst, typ...)
		dst = append(dst, ':')
	}
	dst = append(dst, d.Algorithm...)
	dst = append(dst, ':', 0)
	return append(dst, d.Value...)
}

// TemplateHashAlg is the algorithm of the listed template hash, from its
// width (the legacy file lists SHA-1; per-bank files list their bank).
func (e *Entry) TemplateHashAlg() (digests.Algorithm, error) {
	switch len(e.TemplateHash) {
	case 20:
		return digests.SHA1, nil
	case 32:
		return digests.SHA256, nil
	case 48:
		return digests.SHA384, nil
	case 64:
		return digests.SHA512, nil
	}
	return "", fmt.Errorf("template hash of %d bytes matches no known algorithm", len(e.TemplateHash))
}

// ParseError locates a malformed line.
type ParseError struct {
	File string // input name, may be empty
	Line int
	Msg  string
}

func (e *ParseError) Error() string {
	if e.File == "" {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// Reader reads entries from an ASCII measurement list.
type Reader struct {
	br     *bufio.Reader
	mem    []byte // the unread rest of an InMemory list, read in place instead of br
	inMem  bool
	name   string
	line   int
	offset int64
	long   []byte
	entry  Entry
	hexbuf []byte
	// custom template descriptors seen in this list, by format string
	custom map[string]*templateDesc
}

// NewReader returns a Reader; name is used in error messages (usually the
// file path).
func NewReader(r io.Reader, name string) *Reader {
	if m, ok := r.(*memList); ok {
		return &Reader{mem: m.b[len(m.b)-m.Len():], inMem: true, name: name}
	}
	return &Reader{br: bufio.NewReaderSize(r, bufSize), name: name}
}

// bufSize is the read buffer of a Reader.
const bufSize = 256 << 10

// InMemory returns an io.Reader of list that NewReader reads in place:
// NextLine's lines are then slices of list, valid after the next call, and
// list must not change while they are used. Other readers of it see a
// bytes.Reader; NewReader reads its unread rest without consuming it.
func InMemory(list []byte) io.Reader { return &memList{bytes.NewReader(list), list} }

type memList struct {
	*bytes.Reader
	b []byte
}

// InPlace reports whether the lines NextLine returns stay valid after the
// next call (the Reader reads an InMemory list).
func (r *Reader) InPlace() bool { return r.inMem }

// Offset is the number of input bytes consumed so far: the offset of the
// next line. Incremental attestation resumes from it.
func (r *Reader) Offset() int64 { return r.offset }

// Next returns the next entry, or io.EOF at the end of the input. Empty lines
// are skipped. The returned Entry is reused by the following call.
func (r *Reader) Next() (*Entry, error) {
	line, err := r.nextLine()
	if err != nil {
		return nil, err
	}
	r.sizeHex(len(line))
	if err := r.parse(&r.entry, line); err != nil {
		return nil, &ParseError{File: r.name, Line: r.line, Msg: err.Error()}
	}
	return &r.entry, nil
}

// NextLine returns the next non-empty line without parsing it (without its
// line ending; valid until the next call), its 1-based line number and its
// byte offset, or io.EOF at the end. Its errors are Next's: a *ParseError
// for a line that is too long (reading can go on), any other error ends
// the input. With a Parser, lines read in order can be parsed out of
// order, for example by several goroutines.
func (r *Reader) NextLine() (line []byte, n int, offset int64, err error) {
	line, err = r.nextLine()
	if err != nil {
		return nil, 0, 0, err
	}
	return line, r.line, r.entry.Offset, nil
}

func (r *Reader) nextLine() ([]byte, error) {
	for {
		line, err := r.readLine()
		if err != nil || len(line) > 0 {
			return line, err
		}
	}
}

// Parser parses lines that a Reader's NextLine returned, in any order. Its
// entries alias the line and the arena given, not the Parser, so they stay
// valid as long as both do. A Parser is not safe for concurrent use; give
// each goroutine its own.
type Parser struct {
	r Reader
}

// NewParser returns a Parser; name is used in error messages, as
// NewReader's.
func NewParser(name string) *Parser { return &Parser{r: Reader{name: name}} }

// Parse parses line number n (at byte offset off) into e, as Reader.Next
// would have. Hex fields are decoded into arena's spare capacity (grown if
// it has less than len(line)/2+1 bytes); the returned arena holds them.
// Errors are *ParseError.
func (p *Parser) Parse(e *Entry, line []byte, n int, off int64, arena []byte) ([]byte, error) {
	r := &p.r
	r.line, e.Offset = n, off
	if cap(arena)-len(arena) < len(line)/2+1 {
		arena = make([]byte, 0, max(len(line)/2+1, 2*cap(arena)))
	}
	r.hexbuf = arena[len(arena):len(arena):cap(arena)]
	err := r.parse(e, line)
	arena = arena[:len(arena)+len(r.hexbuf)]
	r.hexbuf = nil
	if err != nil {
		return arena, &ParseError{File: r.name, Line: n, Msg: err.Error()}
	}
	return arena, nil
}

func (r *Reader) readLine() ([]byte, error) {
	if r.inMem {
		return r.readMemLine()
	}
	start := r.offset
	line, err := r.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		r.long = append(r.long[:0], line...)
		for err == bufio.ErrBufferFull {
			if len(r.long) > MaxLineBytes {
				r.line++
				return nil, &ParseError{File: r.name, Line: r.line, Msg: fmt.Sprintf("line longer than %d bytes", MaxLineBytes)}
			}
			line, err = r.br.ReadSlice('\n')
			r.long = append(r.long, line...)
		}
		line = r.long
	}
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("%s: reading line %d: %w", r.name, r.line+1, err)
	}
	if len(line) == 0 && err == io.EOF {
		return nil, io.EOF
	}
	if len(line) > MaxLineBytes {
		r.line++
		return nil, &ParseError{File: r.name, Line: r.line, Msg: fmt.Sprintf("line longer than %d bytes", MaxLineBytes)}
	}
	r.line++
	r.offset += int64(len(line))
	r.entry.Offset = start
	line = bytes.TrimSuffix(line, []byte{'\n'})
	line = bytes.TrimSuffix(line, []byte{'\r'})
	return line, nil
}

// readMemLine is readLine for an InMemory list, with the same results as
// reading it through the buffer: a line longer than MaxLineBytes is an
// error that consumes it, or five buffers of it when it is longer still
// (the rest is read as the next line), and leaves the offset as it was.
func (r *Reader) readMemLine() ([]byte, error) {
	if len(r.mem) == 0 {
		return nil, io.EOF
	}
	n := len(r.mem)
	if i := bytes.IndexByte(r.mem, '\n'); i >= 0 {
		n = i + 1
	}
	if n > MaxLineBytes {
		r.mem = r.mem[min(n, (MaxLineBytes/bufSize+1)*bufSize):]
		r.line++
		return nil, &ParseError{File: r.name, Line: r.line, Msg: fmt.Sprintf("line longer than %d bytes", MaxLineBytes)}
	}
	line := r.mem[:n]
	r.mem = r.mem[n:]
	r.line++
	r.entry.Offset = r.offset
	r.offset += int64(n)
	line = bytes.TrimSuffix(line, []byte{'\n'})
	line = bytes.TrimSuffix(line, []byte{'\r'})
	return line, nil
}

// ParseLine parses a single line (without its newline). The Entry does not
// alias line.
func ParseLine(line []byte) (*Entry, error) {
	r := &Reader{}
	r.line = 1
	r.sizeHex(len(line))
	if err := r.parse(&r.entry, line); err != nil {
		return nil, &ParseError{Line: 1, Msg: err.Error()}
	}
	e := r.entry
	e.RawName = bytes.Clone(e.RawName)
	return &e, nil
}

func cut(b []byte) (tok, rest []byte, ok bool) {
	i := bytes.IndexByte(b, ' ')
	if i < 0 {
		return b, nil, false
	}
	return b[:i], b[i+1:], true
}

// sizeHex empties the hex scratch buffer, with room for a line of n bytes.
func (r *Reader) sizeHex(n int) {
	if need := n/2 + 1; cap(r.hexbuf) < need {
		r.hexbuf = make([]byte, 0, need)
	}
	r.hexbuf = r.hexbuf[:0]
}

// parse parses line into e (whose Offset is set), decoding hex into
// r.hexbuf's spare capacity (at least len(line)/2+1 bytes).
func (r *Reader) parse(e *Entry, line []byte) error {
	off := e.Offset
	*e = Entry{Line: r.line, Offset: off}

	// The kernel prints the PCR with "%2d ", so PCRs below 10 have a leading space.
	rest := bytes.TrimLeft(line, " ")
	pcrTok, rest, ok := cut(rest)
	if !ok {
		return errors.New("expected \"PCR template-hash template-name fields...\"")
	}
	pcr, ok := parsePCR(pcrTok)
	if !ok {
		return fmt.Errorf("PCR %q is not a number between 0 and 23", clip(pcrTok))
	}
	e.PCR = pcr
	var err error

	hashTok, rest, ok := cut(rest)
	if !ok {
		return errors.New("missing template name after the template hash")
	}
	if e.TemplateHash, err = r.unhex(hashTok); err != nil {
		return fmt.Errorf("template hash: %w", err)
	}
	if _, err := e.TemplateHashAlg(); err != nil {
		return err
	}

	nameTok, rest, ok := cut(rest)
	if !ok {
		return fmt.Errorf("template %q has no fields", clip(nameTok))
	}
	desc, err := r.template(nameTok)
	if err != nil {
		return err
	}
	e.desc = desc
	e.Template = desc.name

	for i, f := range desc.fields {
		var tok []byte
		if i == len(desc.fields)-1 {
			tok = rest // the last field keeps any further spaces, as Keylime splits
		} else {
			tok, rest, ok = cut(rest)
			if !ok {
				return fmt.Errorf("template %s: expected %d fields, found %d", desc.name, len(desc.fields), i+1)
			}
		}
		if err := r.setField(e, f, tok); err != nil {
			return fmt.Errorf("template %s field %d: %w", desc.name, i+1, err)
		}
	}
	return nil
}

// parsePCR reads a decimal PCR index without strconv, whose string argument
// costs an allocation on every record.
func parsePCR(b []byte) (uint32, bool) {
	if len(b) == 0 || len(b) > 2 {
		return 0, false
	}
	var n uint32
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint32(c-'0')
	}
	return n, n <= 23
}

func (r *Reader) template(tok []byte) (*templateDesc, error) {
	if d, ok := builtin[string(tok)]; ok { // no allocation: map lookup with string(bytes)
		return d, nil
	}
	if d, ok := r.custom[string(tok)]; ok {
		return d, nil
	}
	if bytes.IndexByte(tok, '|') < 0 {
		return nil, fmt.Errorf("unknown template %q", clip(tok))
	}
	// A custom ima_template_fmt= prints the format itself as the name.
	parts := strings.Split(string(tok), "|")
	if len(parts) > 15 {
		return nil, fmt.Errorf("template format %q has more than 15 fields", clip(tok))
	}
	d := &templateDesc{name: string(tok)}
	for _, p := range parts {
		f, ok := fieldNames[p]
		if !ok {
			return nil, fmt.Errorf("template format %q: unsupported field %q", clip(tok), p)
		}
		d.fields = append(d.fields, f)
	}
	if r.custom == nil {
		r.custom = map[string]*templateDesc{}
	}
	if len(r.custom) < 16 {
		r.custom[d.name] = d
	}
	return d, nil
}

func (r *Reader) setField(e *Entry, f field, tok []byte) error {
	var err error
	switch f {
	case fieldD:
		e.Digest.Value, err = r.unhex(tok)
		if err == nil && len(e.Digest.Value) != 20 && len(e.Digest.Value) != 16 {
			err = fmt.Errorf("digest has %d bytes, want 20 (sha1) or 16 (md5)", len(e.Digest.Value))
		}
	case fieldN, fieldNNG:
		if len(tok) == 0 {
			return errors.New("empty name")
		}
		if bytes.IndexByte(tok, 0) >= 0 {
			return errors.New("name contains a NUL byte")
		}
		e.RawName = tok
	case fieldDNG, fieldDModsig:
		var d Digest
		if f == fieldDModsig && len(tok) == 0 {
			return nil
		}
		d, err = r.digestNG(tok, false)
		if f == fieldDNG {
			e.Digest = d
		} else {
			e.ModsigDigest = d
		}
	case fieldDNGv2:
		e.Digest, err = r.digestNG(tok, true)
	case fieldSig:
		e.Sig, err = r.unhex(tok)
	case fieldBuf:
		e.Buf, err = r.unhex(tok)
	case fieldModsig:
		e.Modsig, err = r.unhex(tok)
	case fieldEVMSig:
		e.EVMSig, err = r.unhex(tok)
	}
	return err
}

func (r *Reader) digestNG(tok []byte, v2 bool) (Digest, error) {
	var d Digest
	if v2 {
		typ, rest, ok := bytes.Cut(tok, []byte{':'})
		if !ok {
			return d, fmt.Errorf("digest %q: want type:algorithm:hex", clip(tok))
		}
		switch string(typ) {
		case "ima":
			d.Type = "ima"
		case "verity":
			d.Type = "verity"
		default:
			return d, fmt.Errorf("digest type %q: want ima or verity", clip(typ))
		}
		tok = rest
	}
	alg, hexv, ok := bytes.Cut(tok, []byte{':'})
	if !ok {
		hexv = tok
		alg = nil
	} else {
		if len(alg) == 0 || len(alg) > 32 {
			return d, fmt.Errorf("digest %q: bad algorithm name", clip(tok))
		}
		d.Algorithm = internAlg(alg)
	}
	v, err := r.unhex(hexv)
	if err != nil {
		return d, err
	}
	d.Value = v
	if d.Algorithm == "" && len(v) != 20 && len(v) != 16 {
		return d, fmt.Errorf("digest without algorithm prefix has %d bytes, want 20 (sha1) or 16 (md5)", len(v))
	}
	return d, nil
}

func internAlg(b []byte) string {
	switch string(b) {
	case "sha1":
		return "sha1"
	case "sha256":
		return "sha256"
	case "sha384":
		return "sha384"
	case "sha512":
		return "sha512"
	case "md5":
		return "md5"
	case "sm3":
		return "sm3"
	}
	return string(b)
}

// unhex decodes into the reader's scratch buffer, which parse sized for the
// whole line up front, so slices of earlier fields stay valid.
func (r *Reader) unhex(h []byte) ([]byte, error) {
	if len(h)%2 != 0 {
		return nil, fmt.Errorf("hex value %q has odd length", clip(h))
	}
	n := len(h) / 2
	start := len(r.hexbuf)
	if cap(r.hexbuf)-start < n {
		return nil, errors.New("internal error: hex scratch buffer too small")
	}
	out := r.hexbuf[start : start+n : start+n]
	if _, err := hex.Decode(out, h); err != nil {
		return nil, fmt.Errorf("bad hex value %q: %w", clip(h), err)
	}
	r.hexbuf = r.hexbuf[:start+n]
	return out, nil
}

func clip(b []byte) string {
	if len(b) > 64 {
		return string(b[:61]) + "..."
	}
	return string(b)
}

// CheckTemplateHash recomputes the template hash with the algorithm of the
// listed value and compares. Violation records are not hashed by the kernel
// and are reported as ErrViolation. For many records use a Checker, which
// reuses its buffers.
func (e *Entry) CheckTemplateHash() error {
	var c Checker
	return c.Check(e)
}

// Checker checks template hashes, reusing hash states and buffers across
// records. The zero value is ready to use; it is not safe for concurrent use.
type Checker struct {
	hashes  [4]hash.Hash // sha1, sha256, sha384, sha512
	scratch []byte
	sum     [64]byte
}

// Check is Entry.CheckTemplateHash without per-record allocations.
func (c *Checker) Check(e *Entry) error {
	if e.IsViolation() {
		return ErrViolation
	}
	alg, err := e.TemplateHashAlg()
	if err != nil {
		return err
	}
	i := 0
	switch alg {
	case digests.SHA256:
		i = 1
	case digests.SHA384:
		i = 2
	case digests.SHA512:
		i = 3
	}
	if c.hashes[i] == nil {
		if c.hashes[i], err = alg.New(); err != nil {
			return err
		}
	}
	h := c.hashes[i]
	h.Reset()
	c.scratch = e.AppendTemplateData(c.scratch[:0])
	h.Write(c.scratch)
	if got := h.Sum(c.sum[:0]); !bytes.Equal(got, e.TemplateHash) {
		return fmt.Errorf("template hash %x does not match the record (computed %s %x)", e.TemplateHash, alg, got)
	}
	return nil
}

// TemplateData returns the template data of the last record Check hashed.
func (c *Checker) TemplateData() []byte { return c.scratch }

// ErrViolation marks a violation record (all-zero template hash).
var ErrViolation = errors.New("violation record (ToMToU/open_writers): content not measured")
