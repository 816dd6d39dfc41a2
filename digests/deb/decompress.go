package deb

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// MaxWindow bounds the dictionary (xz) or window (zstd) a data member may ask
// the decompressor to allocate. xz -9 uses 64 MiB and zstd --ultra -22
// 128 MiB; dpkg-deb's defaults are far smaller.
const MaxWindow = 128 << 20

// compression is the data.tar suffix.
type compression string

const (
	compNone  compression = ""
	compGzip  compression = ".gz"
	compXz    compression = ".xz"
	compZstd  compression = ".zst"
	compBzip2 compression = ".bz2"
)

var magics = map[compression][]byte{
	compGzip:  {0x1f, 0x8b},
	compXz:    []byte("\xfd7zXZ\x00"),
	compZstd:  {0x28, 0xb5, 0x2f, 0xfd},
	compBzip2: []byte("BZh"),
}

// parseCompression maps a member name (data.tar.xz) to its compression.
// .lzma (deprecated since dpkg 1.16) is refused.
func parseCompression(name, prefix string) (compression, bool) {
	switch c := compression(name[len(prefix):]); c {
	case compNone, compGzip, compXz, compZstd, compBzip2:
		return c, true
	}
	return "", false
}

// decompress returns a reader of the decompressed member, after checking
// the magic bytes agree with the suffix, and a function releasing the
// decoder's resources.
func decompress(c compression, br *bufio.Reader) (io.Reader, func(), error) {
	nop := func() {}
	if m := magics[c]; m != nil {
		got, err := br.Peek(len(m))
		if err != nil {
			return nil, nil, fmt.Errorf("reading the %s magic: %w", c, truncation(err))
		}
		if !bytes.Equal(got, m) {
			return nil, nil, fmt.Errorf("suffix %s but magic bytes % x", c, got)
		}
	}
	switch c {
	case compNone:
		return br, nop, nil
	case compGzip:
		z, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, err
		}
		z.Multistream(false)
		return z, nop, nil
	case compBzip2:
		return bzip2.NewReader(br), nop, nil
	case compXz:
		z, err := newXz(br)
		if err != nil {
			return nil, nil, err
		}
		return z, nop, nil
	case compZstd:
		z, err := zstd.NewReader(br,
			zstd.WithDecoderConcurrency(1), // decode inline, no goroutines
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(MaxWindow))
		if err != nil {
			return nil, nil, err
		}
		return z, z.Close, nil
	}
	return nil, nil, fmt.Errorf("unsupported compression %q", c)
}

// xzGuard passes an xz stream (xz-file-format 1.2.0) through unchanged
// while following its structure (block headers, LZMA2 chunk headers, block
// padding and checks), so that every block header asking for an LZMA2
// dictionary above MaxWindow is refused before ulikunitz/xz sees it and
// allocates the dictionary. Checks and CRCs are left to the decoder; input
// that ends early is passed through for the decoder to report.
type xzGuard struct {
	br        *bufio.Reader
	state     int
	pass      int64 // bytes to pass before the next structure step
	blockLen  int64 // block header and compressed data so far, for the padding
	checkSize int64
	err       error
}

const (
	xzStart = iota
	xzBlockOrIndex
	xzChunk
	xzBlockEnd
	xzPassRest
)

func (g *xzGuard) Read(p []byte) (int, error) {
	for g.pass == 0 {
		if g.err != nil {
			return 0, g.err
		}
		if err := g.step(); err != nil {
			g.err = err
			return 0, err
		}
	}
	if int64(len(p)) > g.pass {
		p = p[:g.pass]
	}
	n, err := g.br.Read(p)
	g.pass -= int64(n)
	return n, err
}

// need peeks n bytes; when the input is shorter it switches to passing the
// rest through and returns nil.
func (g *xzGuard) need(n int) []byte {
	b, err := g.br.Peek(n)
	if err != nil {
		g.state, g.pass = xzPassRest, 1<<62
		return nil
	}
	return b
}

func (g *xzGuard) step() error {
	switch g.state {
	case xzStart:
		b := g.need(12)
		if b == nil {
			return nil
		}
		if c := b[7] & 0x0f; c != 0 {
			g.checkSize = 4 << ((c - 1) / 3)
		}
		g.state, g.pass = xzBlockOrIndex, 12
	case xzBlockOrIndex:
		b := g.need(1)
		if b == nil {
			return nil
		}
		if b[0] == 0 { // the index: nothing after it makes the decoder allocate
			g.state, g.pass = xzPassRest, 1<<62
			return nil
		}
		size := (int(b[0]) + 1) * 4
		if b = g.need(size); b == nil {
			return nil
		}
		if err := xzCheckBlockHeader(b); err != nil {
			return err
		}
		g.state, g.pass, g.blockLen = xzChunk, int64(size), int64(size)
	case xzChunk:
		b := g.need(1)
		if b == nil {
			return nil
		}
		var n int64
		switch c := b[0]; {
		case c == 0x00: // end of the LZMA2 data
			g.state, n = xzBlockEnd, 1
		case c == 0x01 || c == 0x02: // uncompressed chunk
			if b = g.need(3); b == nil {
				return nil
			}
			n = 3 + int64(b[1])<<8 + int64(b[2]) + 1
		case c >= 0x80: // LZMA chunk; 0xc0 and up carry a properties byte
			hl := 5
			if c >= 0xc0 {
				hl = 6
			}
			if b = g.need(hl); b == nil {
				return nil
			}
			n = int64(hl) + int64(b[3])<<8 + int64(b[4]) + 1
		default:
			return fmt.Errorf("xz: bad LZMA2 chunk control byte 0x%02x", c)
		}
		g.pass, g.blockLen = n, g.blockLen+n
	case xzBlockEnd:
		g.state, g.pass = xzBlockOrIndex, (4-g.blockLen%4)%4+g.checkSize
		if g.pass == 0 {
			return g.step()
		}
	case xzPassRest:
		g.pass = 1 << 62
	}
	return nil
}

// xzCheckBlockHeader refuses a block header (with its size byte) whose
// LZMA2 filter asks for a dictionary above MaxWindow.
func xzCheckBlockHeader(hdr []byte) error {
	flags := hdr[1]
	nfilters := int(flags&3) + 1
	p := 2
	varint := func() (uint64, error) {
		var v uint64
		for i := 0; i < 9; i++ {
			if p >= len(hdr)-4 {
				return 0, errors.New("xz block header: field runs past the header")
			}
			c := hdr[p]
			p++
			v |= uint64(c&0x7f) << (7 * i)
			if c&0x80 == 0 {
				return v, nil
			}
		}
		return 0, errors.New("xz block header: overlong number")
	}
	for _, bit := range []byte{0x40, 0x80} { // compressed and uncompressed size
		if flags&bit != 0 {
			if _, err := varint(); err != nil {
				return err
			}
		}
	}
	for i := 0; i < nfilters; i++ {
		id, err := varint()
		if err != nil {
			return err
		}
		n, err := varint()
		if err != nil {
			return err
		}
		if n > uint64(len(hdr)-4-p) {
			return errors.New("xz block header: filter properties run past the header")
		}
		props := hdr[p : p+int(n)]
		p += int(n)
		if id == 0x21 && len(props) == 1 { // LZMA2: the dictionary size in one byte
			bits := props[0] & 0x3f
			if bits > 40 {
				return fmt.Errorf("xz: bad LZMA2 dictionary property %d", bits)
			}
			dict := uint64(0xffffffff)
			if bits < 40 {
				dict = uint64(2|bits&1) << (bits/2 + 11)
			}
			if dict > MaxWindow {
				return fmt.Errorf("xz: LZMA2 dictionary of %d bytes (limit %d)", dict, MaxWindow)
			}
		}
	}
	return nil
}

// newXz returns a decoder of one xz stream behind an xzGuard.
func newXz(br *bufio.Reader) (io.Reader, error) {
	return xz.ReaderConfig{DictCap: MaxWindow, SingleStream: true}.NewReader(&xzGuard{br: br})
}

func truncation(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %w", ErrTruncated, io.ErrUnexpectedEOF)
	}
	return err
}
