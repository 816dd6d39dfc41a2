package deb

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ErrTruncated is wrapped by errors about input that ends early, such as an
// ar member whose size runs past the end of the file.
var ErrTruncated = errors.New("truncated")

// FormatError reports malformed input: the file, the ar member (empty for
// the archive itself), the byte offset in the file, and what was wrong.
type FormatError struct {
	Input  string
	Member string
	Offset int64
	Msg    string
	Err    error // cause, such as ErrTruncated; may be nil
}

func (e *FormatError) Error() string {
	s := "deb: " + e.Input
	if e.Member != "" {
		s += ": member " + strconv.Quote(e.Member)
	}
	s += " at offset " + strconv.FormatInt(e.Offset, 10) + ": " + e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *FormatError) Unwrap() error { return e.Err }

const (
	arMagic     = "!<arch>\n"
	arHeaderLen = 60
)

// ArMember is one member of an ar archive.
type ArMember struct {
	Name   string // trailing spaces and a GNU-style trailing '/' removed
	Offset int64  // of the member's 60-byte header in the archive
	Size   int64  // of the content, which starts at Offset+60
	Mode   int64
	// Content reads exactly the member's bytes.
	Content *io.SectionReader
}

// ArReader reads the members of a common-format ar archive (the container
// of a .deb, deb(5)) from an io.ReaderAt of known size. Every member size is
// checked against the bytes that remain before anything is read through it,
// and nothing is allocated from a length field.
type ArReader struct {
	r     io.ReaderAt
	size  int64
	off   int64
	input string
	err   error
}

// NewArReader checks the global header and returns a reader positioned at
// the first member. input names the archive in errors.
func NewArReader(r io.ReaderAt, size int64, input string) (*ArReader, error) {
	var magic [len(arMagic)]byte
	if size < int64(len(magic)) {
		return nil, &FormatError{Input: input, Msg: fmt.Sprintf("%d bytes is too short for an ar archive", size), Err: ErrTruncated}
	}
	if _, err := r.ReadAt(magic[:], 0); err != nil {
		return nil, &FormatError{Input: input, Msg: "reading the ar magic", Err: err}
	}
	if string(magic[:]) != arMagic {
		return nil, &FormatError{Input: input, Msg: fmt.Sprintf("bad ar magic %q, want %q", magic[:], arMagic)}
	}
	return &ArReader{r: r, size: size, off: int64(len(magic)), input: input}, nil
}

// Next returns the next member, or io.EOF after the last one.
func (a *ArReader) Next() (*ArMember, error) {
	if a.err != nil {
		return nil, a.err
	}
	m, err := a.next()
	if err != nil {
		a.err = err
	}
	return m, err
}

func (a *ArReader) next() (*ArMember, error) {
	if a.off == a.size {
		return nil, io.EOF
	}
	off := a.off
	remain := a.size - off
	if remain < arHeaderLen {
		return nil, &FormatError{Input: a.input, Offset: off, Msg: fmt.Sprintf("%d bytes left, an ar member header needs %d", remain, arHeaderLen), Err: ErrTruncated}
	}
	var h [arHeaderLen]byte
	if _, err := a.r.ReadAt(h[:], off); err != nil {
		return nil, &FormatError{Input: a.input, Offset: off, Msg: "reading an ar member header", Err: err}
	}
	m, err := parseArHeader(h, off, a.input)
	if err != nil {
		return nil, err
	}
	name, size := m.Name, m.Size
	if size > remain-arHeaderLen {
		return nil, &FormatError{Input: a.input, Member: name, Offset: off,
			Msg: fmt.Sprintf("member size %d, but only %d bytes follow its header", size, remain-arHeaderLen), Err: ErrTruncated}
	}
	next := off + arHeaderLen + size
	if size%2 == 1 && next < a.size {
		next++ // members start on even offsets; the last one may lack its pad byte
	}
	a.off = next
	m.Content = io.NewSectionReader(a.r, off+arHeaderLen, size)
	return m, nil
}

// parseArHeader checks and parses the 60-byte member header at off.
// Content is left nil.
func parseArHeader(h [arHeaderLen]byte, off int64, input string) (*ArMember, error) {
	name := strings.TrimRight(string(h[0:16]), " ")
	if strings.HasSuffix(name, "/") && name != "/" && name != "//" {
		name = strings.TrimSuffix(name, "/")
	}
	fail := func(format string, args ...any) error {
		return &FormatError{Input: input, Member: name, Offset: off, Msg: fmt.Sprintf(format, args...)}
	}
	if string(h[58:60]) != "`\n" {
		return nil, fail("bad ar member header terminator %q", h[58:60])
	}
	if name == "" {
		return nil, fail("empty ar member name")
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x21 || c > 0x7e {
			return nil, fail("ar member name has byte 0x%02x", c)
		}
	}
	size, err := arNumber(h[48:58], 10)
	if err != nil {
		return nil, fail("size field %q: %v", h[48:58], err)
	}
	mode, err := arNumber(h[40:48], 8)
	if err != nil {
		return nil, fail("mode field %q: %v", h[40:48], err)
	}
	return &ArMember{Name: name, Offset: off, Size: size, Mode: mode}, nil
}

// arNumber parses a space-padded, left-aligned ASCII number. An all-blank
// field is 0 (ar leaves mode blank in some members).
func arNumber(f []byte, base int) (int64, error) {
	s := strings.TrimRight(string(f), " ")
	if s == "" {
		return 0, nil
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > byte('0'+base-1) {
			return 0, errors.New("not a number")
		}
	}
	return strconv.ParseInt(s, base, 64)
}
