// Package cpio owns reading the SVR4 "newc" (070701) and "crc" (070702) cpio
// formats, the only ones the Linux kernel unpacks into an initramfs
// (init/initramfs.c, Documentation/driver-api/early-userspace/buffer-format.rst).
//
// The Reader is shaped like archive/tar: Next returns each header in turn
// and Read returns the current entry's data. It never reads past the end of
// the archive it is parsing (the TRAILER!!! entry and its padding), so a
// caller can find the data that follows, such as the next initramfs segment,
// at Offset. It allocates nothing from a length field beyond the name, which
// is bounded by MaxNameSize.
//
// It must not import any other zest package; it never prints, logs or exits.
package cpio

import (
	"errors"
	"fmt"
	"io"
	"strconv"
)

// Magic numbers of the two formats this package reads.
const (
	MagicNewc = "070701" // SVR4 portable ("newc"), no checksum
	MagicCRC  = "070702" // SVR4 with a checksum of the data bytes
	magicODC  = "070707" // POSIX.1 portable ("odc"), refused with a hint
)

// HeaderSize is the size of a newc/crc header before the name.
const HeaderSize = 110

// DefaultMaxNameSize bounds namesize (which counts the trailing NUL) when
// Reader.MaxNameSize is 0. It is the kernel's PATH_MAX: init/initramfs.c
// skips longer names, so nothing the kernel unpacks is refused.
const DefaultMaxNameSize = 4096

// Trailer is the name of the entry that ends an archive.
const Trailer = "TRAILER!!!"

// File type bits of Header.Mode (the S_IFMT values of Linux and of the SVR4
// format).
const (
	TypeMask    = 0o170000
	TypeSocket  = 0o140000
	TypeSymlink = 0o120000
	TypeReg     = 0o100000
	TypeBlock   = 0o060000
	TypeDir     = 0o040000
	TypeChar    = 0o020000
	TypeFIFO    = 0o010000
)

// Header is one archive entry as stored: numbers are not interpreted beyond
// hex decoding. For a symlink, the entry's data is the link target.
type Header struct {
	Name      string // as stored, without the trailing NUL
	Mode      uint32 // st_mode: file type (Mode&TypeMask) and permission bits
	Size      int64  // bytes of data that follow the name
	Ino       uint32
	UID       uint32
	GID       uint32
	Nlink     uint32
	Mtime     int64 // seconds since the Unix epoch
	DevMajor  uint32
	DevMinor  uint32
	RDevMajor uint32
	RDevMinor uint32
	// Check is the stored checksum: in the crc format, for a regular
	// file, the 32-bit sum of the data bytes, which Read verifies.
	Check uint32
	// CRC reports the 070702 format.
	CRC bool
	// Offset is the byte offset of this header from the start of the
	// archive.
	Offset int64
}

// Type returns the file type bits of Mode.
func (h *Header) Type() uint32 { return h.Mode & TypeMask }

// IsRegular reports a regular file.
func (h *Header) IsRegular() bool { return h.Type() == TypeReg }

// ErrChecksum reports a crc-format entry whose data does not sum to the
// header's check field.
var ErrChecksum = errors.New("data checksum mismatch")

// ErrMissingTrailer reports an archive that ends (cleanly, between entries)
// without a TRAILER!!! entry. The kernel would accept it, but every tool
// writes the trailer, so its absence means the input was cut short.
var ErrMissingTrailer = errors.New("archive ends without " + Trailer)

// FormatError describes malformed or truncated input. Offset is the offset of
// the header of the entry concerned, from the start of the archive.
type FormatError struct {
	Offset int64
	Field  string // header field ("filesize", "namesize", ...) or "name", "data", "padding"
	Msg    string
	Err    error // the cause, such as io.ErrUnexpectedEOF or ErrChecksum; may be nil
}

func (e *FormatError) Error() string {
	s := "cpio: header at offset " + strconv.FormatInt(e.Offset, 10) + ": " + e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *FormatError) Unwrap() error { return e.Err }

// Reader reads one cpio archive from r. It issues only reads it needs, so a
// caller that wants speed should hand it a buffered reader; r is never read
// past the end of the archive.
type Reader struct {
	// MaxNameSize bounds the stored namesize (including the NUL); 0 means
	// DefaultMaxNameSize. Set it before the first call to Next.
	MaxNameSize int

	r      io.Reader
	off    int64   // bytes consumed from r
	cur    *Header // entry whose data Read returns
	remain int64   // data bytes of cur not yet read
	pad    int64   // padding after cur's data
	sum    uint32  // running crc-format checksum of cur's data
	err    error   // sticky: io.EOF after the trailer, or the first error
	hdr    [HeaderSize]byte
	name   []byte
}

// NewReader returns a Reader of the archive that starts at r's current
// position.
func NewReader(r io.Reader) *Reader { return &Reader{r: r} }

// Offset returns the number of bytes consumed so far. After Next returns
// io.EOF it is the archive's length, the trailer's padding included.
func (r *Reader) Offset() int64 { return r.off }

// Next skips what remains of the current entry and returns the next header.
// It returns io.EOF after the TRAILER!!! entry; every other error is sticky
// and wraps a *FormatError or the underlying reader's error.
func (r *Reader) Next() (*Header, error) {
	if r.err != nil {
		return nil, r.err
	}
	if err := r.skipRest(); err != nil {
		r.err = err
		return nil, err
	}
	h, err := r.readHeader()
	if err != nil {
		r.err = err
		return nil, err
	}
	if h.Name == Trailer {
		// The kernel skips a trailer's data too; an archive's length
		// includes it.
		r.cur = h
		if err := r.skipRest(); err != nil {
			r.err = err
			return nil, err
		}
		r.cur = nil
		r.err = io.EOF
		return nil, io.EOF
	}
	return h, nil
}

// Read reads the current entry's data. It returns io.EOF at the end of the
// data; for the crc format that is also when the checksum is verified.
func (r *Reader) Read(p []byte) (int, error) {
	if r.cur == nil {
		if r.err != nil && r.err != io.EOF {
			return 0, r.err
		}
		return 0, io.EOF
	}
	if r.remain == 0 {
		if err := r.finishData(); err != nil {
			return 0, err
		}
		return 0, io.EOF
	}
	if int64(len(p)) > r.remain {
		p = p[:r.remain]
	}
	n, err := r.r.Read(p)
	if n < 0 || n > len(p) {
		// A misbehaving reader must not make us index out of range.
		n, err = 0, errors.New("underlying reader returned an invalid count")
	}
	r.account(p[:n])
	if r.remain == 0 {
		if ferr := r.finishData(); ferr != nil {
			return n, ferr
		}
		return n, io.EOF
	}
	if err == io.EOF {
		err = r.dataError(io.ErrUnexpectedEOF)
	} else if err != nil {
		err = r.dataError(err)
	}
	if err != nil {
		r.err = err
	}
	return n, err
}

func (r *Reader) account(b []byte) {
	r.off += int64(len(b))
	r.remain -= int64(len(b))
	if r.verify() {
		s := r.sum
		for _, c := range b {
			s += uint32(c)
		}
		r.sum = s
	}
}

func (r *Reader) dataError(err error) error {
	return &FormatError{Offset: r.cur.Offset, Field: "data", Msg: fmt.Sprintf("data of %q", r.cur.Name), Err: err}
}

// verify reports whether the current entry's data has a checksum to check:
// only regular files do, in GNU cpio (symlinks get 0) and in the kernel,
// which sums only what it copies into files.
func (r *Reader) verify() bool { return r.cur.CRC && r.cur.IsRegular() }

// finishData is called once the data is consumed: it verifies the checksum
// and consumes the padding that aligns the next header to 4 bytes.
func (r *Reader) finishData() error {
	if r.verify() && r.sum != r.cur.Check {
		r.err = &FormatError{Offset: r.cur.Offset, Field: "check",
			Msg: fmt.Sprintf("%q: data sums to %08x, header says %08x", r.cur.Name, r.sum, r.cur.Check), Err: ErrChecksum}
		return r.err
	}
	if r.pad > 0 {
		if err := r.discard(r.pad); err != nil {
			r.err = &FormatError{Offset: r.cur.Offset, Field: "padding", Msg: fmt.Sprintf("padding after data of %q", r.cur.Name), Err: eofIsUnexpected(err)}
			return r.err
		}
		r.pad = 0
	}
	r.cur = nil
	return nil
}

// skipRest consumes the rest of the current entry, data and padding.
func (r *Reader) skipRest() error {
	if r.cur == nil {
		return nil
	}
	if r.remain > 0 {
		if r.verify() {
			// The checksum needs every byte.
			var buf [32 << 10]byte
			for r.remain > 0 {
				if _, err := r.Read(buf[:]); err != nil && err != io.EOF {
					return err
				}
			}
			return nil
		}
		if err := r.discard(r.remain); err != nil {
			return r.dataError(eofIsUnexpected(err))
		}
		r.remain = 0
	}
	return r.finishData()
}

type discarder interface {
	Discard(n int) (int, error)
}

// discard consumes n bytes, using bufio.Reader.Discard when r has it.
func (r *Reader) discard(n int64) error {
	if d, ok := r.r.(discarder); ok {
		for n > 0 {
			chunk := int(min(n, 1<<30))
			m, err := d.Discard(chunk)
			r.off += int64(m)
			n -= int64(m)
			if err != nil {
				return err
			}
		}
		return nil
	}
	m, err := io.CopyN(io.Discard, r.r, n)
	r.off += m
	return err
}

func eofIsUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Header field layout: name and offset in the 110-byte header, in order.
var fields = [...]struct {
	name string
	off  int
}{
	{"ino", 6}, {"mode", 14}, {"uid", 22}, {"gid", 30}, {"nlink", 38},
	{"mtime", 46}, {"filesize", 54}, {"devmajor", 62}, {"devminor", 70},
	{"rdevmajor", 78}, {"rdevminor", 86}, {"namesize", 94}, {"check", 102},
}

func (r *Reader) readHeader() (*Header, error) {
	start := r.off
	n, err := io.ReadFull(r.r, r.hdr[:])
	r.off += int64(n)
	if err != nil {
		if err == io.EOF {
			return nil, &FormatError{Offset: start, Field: "magic", Msg: "end of input", Err: ErrMissingTrailer}
		}
		return nil, &FormatError{Offset: start, Field: "header", Msg: fmt.Sprintf("reading header (got %d of %d bytes)", n, HeaderSize), Err: eofIsUnexpected(err)}
	}
	h := &Header{Offset: start}
	switch magic := string(r.hdr[:6]); magic {
	case MagicNewc:
	case MagicCRC:
		h.CRC = true
	case magicODC:
		return nil, &FormatError{Offset: start, Field: "magic", Msg: "old portable (odc, 070707) format; the kernel reads only newc (cpio -H newc)"}
	default:
		return nil, &FormatError{Offset: start, Field: "magic", Msg: fmt.Sprintf("magic %q is not %s (newc) or %s (crc)", magic, MagicNewc, MagicCRC)}
	}
	var v [len(fields)]uint32
	for i, f := range fields {
		x, ok := parseHex8(r.hdr[f.off : f.off+8])
		if !ok {
			return nil, &FormatError{Offset: start, Field: f.name, Msg: fmt.Sprintf("%s %q is not hex", f.name, r.hdr[f.off:f.off+8])}
		}
		v[i] = x
	}
	h.Ino, h.Mode, h.UID, h.GID, h.Nlink = v[0], v[1], v[2], v[3], v[4]
	h.Mtime, h.Size = int64(v[5]), int64(v[6])
	h.DevMajor, h.DevMinor, h.RDevMajor, h.RDevMinor = v[7], v[8], v[9], v[10]
	namesize, check := v[11], v[12]
	h.Check = check

	maxName := r.MaxNameSize
	if maxName <= 0 {
		maxName = DefaultMaxNameSize
	}
	if namesize == 0 {
		return nil, &FormatError{Offset: start, Field: "namesize", Msg: "namesize is 0 (it counts the name's NUL)"}
	}
	if int64(namesize) > int64(maxName) {
		return nil, &FormatError{Offset: start, Field: "namesize", Msg: fmt.Sprintf("namesize %d exceeds the limit of %d", namesize, maxName)}
	}
	// The name is padded so that header+name ends on a 4-byte boundary.
	padded := int(align4(HeaderSize+int64(namesize)) - HeaderSize)
	if cap(r.name) < padded {
		r.name = make([]byte, padded)
	}
	buf := r.name[:padded]
	n, err = io.ReadFull(r.r, buf)
	r.off += int64(n)
	if err != nil {
		return nil, &FormatError{Offset: start, Field: "name", Msg: fmt.Sprintf("reading %d-byte name", namesize), Err: eofIsUnexpected(err)}
	}
	name := buf[:namesize]
	if name[namesize-1] != 0 {
		return nil, &FormatError{Offset: start, Field: "name", Msg: fmt.Sprintf("name %q is not NUL-terminated", name)}
	}
	name = name[:namesize-1]
	for i, c := range name {
		if c == 0 {
			// The kernel would use only the part before the NUL; a
			// name that means two things is refused.
			return nil, &FormatError{Offset: start, Field: "name", Msg: fmt.Sprintf("name %q has a NUL at byte %d", name, i)}
		}
	}
	h.Name = string(name)

	r.cur = h
	r.remain = h.Size
	r.pad = align4(h.Size) - h.Size
	r.sum = 0
	return h, nil
}

func align4(n int64) int64 { return (n + 3) &^ 3 }

// parseHex8 decodes exactly 8 hex digits, either case, nothing else (no sign,
// no "0x", no spaces, unlike the kernel's simple_strtoul).
func parseHex8(b []byte) (uint32, bool) {
	var v uint32
	for _, c := range b {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		v = v<<4 | uint32(d)
	}
	return v, true
}
