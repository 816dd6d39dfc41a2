package deb

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
)

// Reader reads the data files of one .deb in archive order, in the shape
// of archive/tar: Next moves to the next entry of data.tar, Read reads a
// regular file's content. It is how to pull one file (a kernel image, say)
// out of a package without extracting it.
//
// Checked on the way: entry names with ".." components, a regular file
// appearing twice, and hard links to anything but an earlier regular file
// are errors. After the last entry Next reads the rest of the compressed
// stream, so that the decompressor checks its trailer (CRC, xz index),
// before returning io.EOF. Errors are *FormatError naming the package, the
// data member, the offset in the package and the tar entry.
type Reader struct {
	input   string
	member  string
	off     int64 // of the data member's content in the package
	counter *countingReader
	dec     io.Reader
	release func()
	tr      *tar.Reader
	regular map[string]bool
	cur     io.Reader // content of the current entry
	version string
	err     error
}

// Open reads a .deb from r as a stream (no seeking: an HTTP body will do)
// up to its data member and returns a Reader of its files. name is used in
// errors. Members before data.tar are read and discarded; nothing after it
// is read. Close releases the decompressor.
func Open(r io.Reader, name string) (*Reader, error) {
	sa := &streamAr{r: r, input: name}
	if err := sa.magic(); err != nil {
		return nil, err
	}
	l, content, err := walkLayout(sa.next, name, func() int64 { return sa.off })
	if err != nil {
		return nil, err
	}
	return newReader(name, l, content)
}

func newReader(input string, l layout, content io.Reader) (*Reader, error) {
	dr := &Reader{
		input:   input,
		member:  l.data.Name,
		off:     l.data.Offset + arHeaderLen,
		counter: &countingReader{r: content},
		regular: map[string]bool{},
		version: l.version,
	}
	dec, release, err := decompress(l.comp, bufio.NewReaderSize(dr.counter, 64<<10))
	if err != nil {
		return nil, dr.fail(err, "opening the compressed stream")
	}
	dr.dec, dr.release = dec, release
	dr.tr = tar.NewReader(dec)
	return dr, nil
}

// DataMember names the data member ("data.tar.xz").
func (r *Reader) DataMember() string { return r.member }

// Version is the package format version from debian-binary ("2.0").
func (r *Reader) Version() string { return r.version }

func (r *Reader) fail(err error, format string, args ...any) error {
	var fe *FormatError
	if errors.As(err, &fe) {
		return err // the ar layer already named the member and offset
	}
	return &FormatError{Input: r.input, Member: r.member, Offset: r.off + r.counter.n, Msg: fmt.Sprintf(format, args...), Err: err}
}

// Next advances to the next entry of data.tar and returns it, or io.EOF
// after the last one. A hard link (tar.TypeLink) has Linkname set to the
// Path of the earlier regular file whose content it shares; a symlink's
// Linkname is its target as written.
func (r *Reader) Next() (*Entry, error) {
	if r.err != nil {
		return nil, r.err
	}
	e, err := r.next()
	if err != nil {
		r.err = err
		r.cur = nil
	}
	return e, err
}

func (r *Reader) next() (*Entry, error) {
	h, err := r.tr.Next()
	if err == io.EOF {
		if _, err := io.Copy(io.Discard, r.dec); err != nil {
			return nil, r.fail(truncation(err), "reading past the end of the tar archive")
		}
		return nil, io.EOF
	}
	if err != nil {
		return nil, r.fail(truncation(err), "reading the tar stream (compressed bytes read so far: %d)", r.counter.n)
	}
	p, err := entryPath(h.Name)
	if err != nil {
		return nil, r.fail(err, "tar entry %q", h.Name)
	}
	e := &Entry{Name: h.Name, Path: p, Type: h.Typeflag, Mode: h.Mode, Linkname: h.Linkname}
	r.cur = eofReader{}
	switch {
	case isRegular(h.Typeflag):
		if h.Size < 0 {
			return nil, r.fail(nil, "tar entry %q: size %d", h.Name, h.Size)
		}
		if r.regular[p] {
			return nil, r.fail(nil, "tar entry %q: %s appears twice", h.Name, p)
		}
		r.regular[p] = true
		e.Size = h.Size
		r.cur = &tarContent{tr: r.tr, fail: func(err error) error {
			return r.fail(truncation(err), "reading %s (compressed bytes read so far: %d)", h.Name, r.counter.n)
		}}
	case h.Typeflag == tar.TypeLink:
		t, err := entryPath(h.Linkname)
		if err != nil {
			return nil, r.fail(err, "hard link %q to %q", h.Name, h.Linkname)
		}
		if !r.regular[t] {
			return nil, r.fail(nil, "hard link %q: target %q is not an earlier regular file", h.Name, h.Linkname)
		}
		if r.regular[p] {
			return nil, r.fail(nil, "tar entry %q: %s appears twice", h.Name, p)
		}
		r.regular[p] = true
		e.Linkname = t
	}
	return e, nil
}

// Read reads the current entry's content; it returns io.EOF at once for
// anything but a regular file.
func (r *Reader) Read(p []byte) (int, error) {
	if r.cur == nil {
		if r.err != nil {
			return 0, r.err
		}
		return 0, io.EOF
	}
	return r.cur.Read(p)
}

// Close releases the decompressor. It does not close the underlying reader.
func (r *Reader) Close() error {
	if r.release != nil {
		r.release()
		r.release = nil
	}
	if r.err == nil {
		r.err = fmt.Errorf("deb: %s: reader closed", r.input)
	}
	return nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// streamAr reads ar members from a stream: each member's content must be
// consumed (or is skipped) before the next header is read.
type streamAr struct {
	r     io.Reader
	input string
	off   int64
	cur   *io.LimitedReader // the current member's unread content
	pad   bool              // the current member is followed by a pad byte
}

func (s *streamAr) magic() error {
	var m [len(arMagic)]byte
	n, err := io.ReadFull(s.r, m[:])
	s.off += int64(n)
	if err != nil {
		return &FormatError{Input: s.input, Msg: fmt.Sprintf("%d bytes is too short for an ar archive", n), Err: truncation(err)}
	}
	if string(m[:]) != arMagic {
		return &FormatError{Input: s.input, Msg: fmt.Sprintf("bad ar magic %q, want %q", m[:], arMagic)}
	}
	return nil
}

func (s *streamAr) next() (*ArMember, io.Reader, error) {
	if s.cur != nil {
		n, err := io.Copy(io.Discard, s.cur)
		s.off += n
		if err != nil {
			return nil, nil, &FormatError{Input: s.input, Offset: s.off, Msg: "skipping an ar member", Err: err}
		}
		if s.cur.N > 0 {
			return nil, nil, &FormatError{Input: s.input, Offset: s.off, Msg: fmt.Sprintf("ar member ends %d bytes early", s.cur.N), Err: ErrTruncated}
		}
		s.cur = nil
	}
	if s.pad {
		// The pad byte after an odd-sized member; the last member may
		// lack it.
		s.pad = false
		var b [1]byte
		if _, err := io.ReadFull(s.r, b[:]); err == io.EOF {
			return nil, nil, io.EOF
		} else if err != nil {
			return nil, nil, &FormatError{Input: s.input, Offset: s.off, Msg: "reading an ar pad byte", Err: err}
		}
		if b[0] != '\n' {
			return nil, nil, &FormatError{Input: s.input, Offset: s.off, Msg: fmt.Sprintf("ar pad byte is 0x%02x, want 0x0a", b[0])}
		}
		s.off++
	}
	var h [arHeaderLen]byte
	n, err := io.ReadFull(s.r, h[:])
	if n == 0 && err == io.EOF {
		return nil, nil, io.EOF
	}
	if err != nil {
		return nil, nil, &FormatError{Input: s.input, Offset: s.off, Msg: fmt.Sprintf("%d bytes left, an ar member header needs %d", n, arHeaderLen), Err: truncation(err)}
	}
	m, err := parseArHeader(h, s.off, s.input)
	if err != nil {
		return nil, nil, err
	}
	s.off += arHeaderLen
	s.cur = &io.LimitedReader{R: s.r, N: m.Size}
	s.pad = m.Size%2 == 1
	return m, &memberContent{s: s, m: m}, nil
}

// memberContent reads the current member and counts the offset; a member
// cut short is a truncation error naming it.
type memberContent struct {
	s *streamAr
	m *ArMember
}

func (c *memberContent) Read(p []byte) (int, error) {
	if c.s.cur == nil {
		return 0, io.EOF
	}
	n, err := c.s.cur.Read(p)
	c.s.off += int64(n)
	if err == io.EOF && c.s.cur.N > 0 {
		return n, &FormatError{Input: c.s.input, Member: c.m.Name, Offset: c.m.Offset,
			Msg: fmt.Sprintf("member size %d, but the stream ends %d bytes early", c.m.Size, c.s.cur.N), Err: ErrTruncated}
	}
	return n, err
}

// tarContent reads a regular file's content and turns read errors into
// FormatErrors naming the position.
type tarContent struct {
	tr   *tar.Reader
	fail func(error) error
}

func (c *tarContent) Read(p []byte) (int, error) {
	n, err := c.tr.Read(p)
	if err != nil && err != io.EOF {
		err = c.fail(err)
	}
	return n, err
}
