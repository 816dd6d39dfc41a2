package initrd

import (
	"compress/bzip2"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

// Each compressed segment must end exactly where its compressed data ends,
// so that the next segment is found. gzip (compress/flate over an
// io.ByteReader) and lzma read no further on their own. The xz and zstd
// decoders read ahead, so they are fed through a splitter that walks the
// container structure and reports io.EOF at its end. Legacy lz4 has no end
// marker: like the kernel, zest takes it to the end of the file (or to a
// zero chunk size, i.e. padding). Go's bzip2 reads two bytes past a stream
// to look for another one; those are handed back (see bzip2Reader).

// newXZ decodes one xz stream. The kernel's decoder handles only the
// integrity checks none, crc32 and crc64 and the LZMA2 filter plus BCJ
// filters; ulikunitz/xz does not implement BCJ filters, so images made with
// xz --x86 and the like are refused.
func newXZ(in *input) (io.Reader, error) {
	sp := newXZSplitter(in)
	z, err := xz.ReaderConfig{DictCap: MaxWindow, SingleStream: true}.NewReader(sp)
	if err != nil {
		return nil, err
	}
	return z, nil
}

// newZstd decodes one zstd frame, as the kernel's unzstd does; a following
// frame is the next segment.
func newZstd(in *input) (io.Reader, func(), error) {
	sp := newZstdSplitter(in)
	d, err := zstd.NewReader(sp,
		zstd.WithDecoderConcurrency(1), // decode inline: no goroutines
		zstd.WithDecoderMaxWindow(MaxWindow),
		zstd.WithDecoderLowmem(true))
	if err != nil {
		return nil, nil, err
	}
	return d, d.Close, nil
}

// newLZMA decodes a legacy .lzma stream (13-byte header: properties,
// dictionary size, uncompressed size).
func newLZMA(in *input) (io.Reader, error) {
	hdr, err := in.br.Peek(lzma.HeaderLen)
	if err != nil {
		return nil, fmt.Errorf("lzma header: %w", eofIsUnexpected(err))
	}
	if dict := binary.LittleEndian.Uint32(hdr[1:5]); dict > MaxWindow {
		return nil, fmt.Errorf("%w: lzma dictionary of %d bytes (limit %d)", ErrTooLarge, dict, MaxWindow)
	}
	return lzma.ReaderConfig{DictCap: MaxWindow}.NewReader(in)
}

func eofIsUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// readFull reads len(b) bytes of a container's structure.
func readFull(in *input, b []byte) error {
	_, err := io.ReadFull(in, b)
	return eofIsUnexpected(err)
}

// --- legacy lz4 --------------------------------------------------------------

const (
	lz4LegacyMagic = 0x184c2102
	lz4LegacyBlock = 8 << 20 // uncompressed bytes per chunk (LEGACY_BLOCKSIZE)
)

// lz4Legacy decodes the legacy lz4 format the kernel reads
// (lib/decompress_unlz4.c): a magic, then chunks each of a 32-bit
// little-endian compressed size and an independent lz4 block of at most
// 8 MiB; a repeated magic starts another stream.
type lz4Legacy struct {
	in       *input
	src, out []byte
	pos, n   int
	err      error
}

func newLZ4Legacy(in *input) (io.Reader, error) {
	var m [4]byte
	if err := readFull(in, m[:]); err != nil {
		return nil, err
	}
	if binary.LittleEndian.Uint32(m[:]) != lz4LegacyMagic {
		return nil, fmt.Errorf("lz4: magic % x is not the legacy format's 02 21 4c 18", m)
	}
	return &lz4Legacy{in: in}, nil
}

func (z *lz4Legacy) Read(p []byte) (int, error) {
	for z.pos == z.n {
		if z.err != nil {
			return 0, z.err
		}
		z.err = z.fill()
	}
	n := copy(p, z.out[z.pos:z.n])
	z.pos += n
	return n, nil
}

func (z *lz4Legacy) fill() error {
	var hdr [4]byte
	n, err := io.ReadFull(z.in, hdr[:])
	if n == 0 && err == io.EOF {
		return io.EOF
	}
	if err != nil {
		return fmt.Errorf("lz4: chunk header: %w", eofIsUnexpected(err))
	}
	size := binary.LittleEndian.Uint32(hdr[:])
	switch {
	case size == lz4LegacyMagic:
		return nil
	case size == 0:
		// Zero padding after the last chunk.
		return io.EOF
	case size > uint32(lz4.CompressBlockBound(lz4LegacyBlock)):
		return fmt.Errorf("lz4: chunk of %d compressed bytes at offset %d exceeds the format's bound", size, z.in.off-4)
	}
	if cap(z.src) < int(size) {
		z.src = make([]byte, size)
	}
	if z.out == nil {
		z.out = make([]byte, lz4LegacyBlock)
	}
	src := z.src[:size]
	if err := readFull(z.in, src); err != nil {
		return fmt.Errorf("lz4: chunk data: %w", err)
	}
	m, err := lz4.UncompressBlock(src, z.out)
	if err != nil {
		return fmt.Errorf("lz4: chunk at offset %d: %w", z.in.off-int64(size)-4, err)
	}
	z.pos, z.n = 0, m
	return nil
}

// --- bzip2 -------------------------------------------------------------------

// errBzip2Continuation is what compress/bzip2 returns when the bytes after a
// stream are not "BZ" (another stream); its value is stable API text.
var errBzip2Continuation = bzip2.StructuralError("bad magic value in continuation file")

// bzip2Reader feeds compress/bzip2 byte by byte while holding back the last
// two bytes it was given: when the decoder looks for a following stream and
// finds something else, those two bytes are not consumed, and the next
// segment (or padding) starts there. A single trailing byte cannot be
// handed back and fails as an unexpected EOF.
type bzip2Reader struct {
	in   *input
	held int // bytes given to the decoder but not yet consumed from in
	z    io.Reader
}

func newBzip2(in *input) io.Reader {
	b := &bzip2Reader{in: in}
	b.z = bzip2.NewReader(byteSource{b})
	return b
}

func (b *bzip2Reader) Read(p []byte) (int, error) {
	n, err := b.z.Read(p)
	switch err {
	case io.EOF:
		b.in.Discard(b.held)
		b.held = 0
	case errBzip2Continuation:
		// The two bytes were not "BZ": not ours.
		b.in.Discard(b.held - 2)
		b.held = 0
		err = io.EOF
	}
	return n, err
}

// byteSource is the io.ByteReader given to compress/bzip2 (which would
// otherwise add a bufio.Reader and read ahead).
type byteSource struct{ b *bzip2Reader }

func (s byteSource) ReadByte() (byte, error) {
	b := s.b
	buf, err := b.in.br.Peek(b.held + 1)
	if len(buf) <= b.held {
		if err == nil {
			err = io.ErrNoProgress
		}
		return 0, err
	}
	c := buf[b.held]
	b.held++
	if b.held > 2 {
		b.in.Discard(b.held - 2)
		b.held = 2
	}
	return c, nil
}

func (s byteSource) Read(p []byte) (int, error) {
	for i := range p {
		c, err := s.ReadByte()
		if err != nil {
			return i, err
		}
		p[i] = c
	}
	return len(p), nil
}

// --- container splitters ----------------------------------------------------

// splitter passes a container's bytes through to a decoder: structure bytes
// that step parsed (pending) and payload spans it skipped over (raw). step
// is called whenever both are used up; it returns io.EOF at the container's
// end, which the decoder then sees.
type splitter struct {
	in      *input
	name    string
	step    func() error
	buf     []byte
	pending []byte
	raw     int64
	err     error
}

func (s *splitter) Read(p []byte) (int, error) {
	if err := s.fill(); err != nil {
		return 0, err
	}
	if len(s.pending) > 0 {
		n := copy(p, s.pending)
		s.pending = s.pending[n:]
		return n, nil
	}
	if int64(len(p)) > s.raw {
		p = p[:s.raw]
	}
	n, err := s.in.Read(p)
	s.raw -= int64(n)
	if err == io.EOF && s.raw > 0 {
		err = io.ErrUnexpectedEOF
	} else if err == io.EOF {
		err = nil
	}
	return n, err
}

// ReadByte makes the splitter an io.ByteReader: the LZMA decoder reads a
// byte at a time and would otherwise wrap it in a one-byte Read each time.
func (s *splitter) ReadByte() (byte, error) {
	if err := s.fill(); err != nil {
		return 0, err
	}
	if len(s.pending) > 0 {
		c := s.pending[0]
		s.pending = s.pending[1:]
		return c, nil
	}
	c, err := s.in.ReadByte()
	if err != nil {
		return 0, eofIsUnexpected(err)
	}
	s.raw--
	return c, nil
}

// fill runs step until there is something to pass on, or an error.
func (s *splitter) fill() error {
	for len(s.pending) == 0 && s.raw == 0 {
		if s.err != nil {
			return s.err
		}
		s.pending = s.buf[:0]
		if s.err = s.step(); s.err != nil && s.err != io.EOF {
			s.err = fmt.Errorf("%s: at offset %d: %w", s.name, s.in.off, s.err)
		}
	}
	return nil
}

// more reads n more structure bytes, queues them after those read so far in
// this step, and returns them.
func (s *splitter) more(n int) ([]byte, error) {
	k := len(s.pending)
	if k+n > len(s.buf) {
		return nil, errors.New("structure larger than its format allows")
	}
	b := s.buf[k : k+n]
	if err := readFull(s.in, b); err != nil {
		return nil, err
	}
	s.pending = s.buf[:k+n]
	return b, nil
}

// vli reads an xz variable-length integer (at most 9 bytes).
func (s *splitter) vli() (v uint64, n int, err error) {
	for i := 0; i < 9; i++ {
		b, err := s.more(1)
		if err != nil {
			return 0, 0, err
		}
		v |= uint64(b[0]&0x7f) << (7 * i)
		if b[0]&0x80 == 0 {
			return v, i + 1, nil
		}
	}
	return 0, 0, errors.New("variable-length integer longer than 9 bytes")
}

// --- xz ----------------------------------------------------------------------

// xzSplitter passes exactly one xz stream through (xz-file-format 1.0.4):
// stream header, blocks, index, stream footer, then io.EOF. It checks the
// structure only as far as needed to find the end and to bound the LZMA2
// dictionary; the decoder checks the rest (CRCs, sizes, index contents).
type xzSplitter struct {
	splitter
	state    int
	check    int   // size of each block's check field
	blocks   int64 // blocks seen
	records  uint64
	blockLen int64 // bytes of the current block so far, for its padding
	indexLen int64
}

func newXZSplitter(in *input) *xzSplitter {
	s := &xzSplitter{}
	s.splitter = splitter{in: in, name: "xz", step: s.step, buf: make([]byte, 1024)}
	return s
}

const (
	xzHeader = iota
	xzBlock
	xzChunk
	xzBlockEnd
	xzIndexCount
	xzIndexRecord
	xzIndexEnd
	xzFooter
	xzDone
)

// checkSizes gives the size of a block's check field per check type.
var checkSizes = [16]int{0, 4, 4, 4, 8, 8, 8, 16, 16, 16, 32, 32, 32, 64, 64, 64}

func (s *xzSplitter) step() error {
	switch s.state {
	case xzHeader:
		b, err := s.more(12)
		if err != nil {
			return err
		}
		if string(b[:6]) != "\xfd7zXZ\x00" || b[6] != 0 || b[7]&0xf0 != 0 {
			return errors.New("bad stream header")
		}
		s.check = checkSizes[b[7]]
		s.state = xzBlock
	case xzBlock:
		b, err := s.more(1)
		if err != nil {
			return err
		}
		if b[0] == 0 { // index indicator
			s.indexLen = 1
			s.state = xzIndexCount
			return nil
		}
		size := (int(b[0]) + 1) * 4
		if _, err := s.more(size - 1); err != nil {
			return err
		}
		if err := blockDict(s.pending); err != nil {
			return err
		}
		s.blockLen = int64(size)
		s.state = xzChunk
	case xzChunk:
		// LZMA2 chunks: a control byte, then sizes that say where the
		// next chunk starts.
		b, err := s.more(1)
		if err != nil {
			return err
		}
		switch c := b[0]; {
		case c == 0:
			s.blockLen++
			s.state = xzBlockEnd
		case c == 1 || c == 2: // uncompressed chunk: size-1 (2 bytes)
			h, err := s.more(2)
			if err != nil {
				return err
			}
			s.raw = int64(binary.BigEndian.Uint16(h)) + 1
			s.blockLen += 3 + s.raw
		case c >= 0x80: // LZMA chunk: unpacked-1 (2), packed-1 (2), [props]
			n := 4
			if c >= 0xc0 {
				n = 5
			}
			h, err := s.more(n)
			if err != nil {
				return err
			}
			s.raw = int64(binary.BigEndian.Uint16(h[2:4])) + 1
			s.blockLen += 1 + int64(n) + s.raw
		default:
			return fmt.Errorf("invalid LZMA2 control byte %#02x", c)
		}
	case xzBlockEnd:
		pad := int((4 - s.blockLen%4) % 4)
		if _, err := s.more(pad + s.check); err != nil {
			return err
		}
		s.blocks++
		s.state = xzBlock
	case xzIndexCount:
		n, k, err := s.vli()
		if err != nil {
			return err
		}
		if n != uint64(s.blocks) {
			return fmt.Errorf("index lists %d blocks, the stream has %d", n, s.blocks)
		}
		s.indexLen += int64(k)
		s.records = n
		s.state = xzIndexRecord
	case xzIndexRecord:
		if s.records == 0 {
			s.state = xzIndexEnd
			return nil
		}
		for range 2 { // unpadded size, uncompressed size
			_, k, err := s.vli()
			if err != nil {
				return err
			}
			s.indexLen += int64(k)
		}
		s.records--
	case xzIndexEnd:
		pad := int((4 - s.indexLen%4) % 4)
		if _, err := s.more(pad + 4); err != nil { // padding, CRC32
			return err
		}
		s.state = xzFooter
	case xzFooter:
		b, err := s.more(12)
		if err != nil {
			return err
		}
		if string(b[10:12]) != "YZ" {
			return errors.New("bad stream footer")
		}
		s.state = xzDone
	case xzDone:
		return io.EOF
	}
	return nil
}

// blockDict checks a block header's filter chain ends in LZMA2 (whose chunk
// structure the splitter walks) with a dictionary within MaxWindow.
func blockDict(h []byte) error {
	flags := h[1]
	if flags&0x3c != 0 {
		return errors.New("reserved block flags set")
	}
	pos := 2
	vli := func() (uint64, error) {
		var v uint64
		for i := 0; i < 9 && pos < len(h); i++ {
			c := h[pos]
			pos++
			v |= uint64(c&0x7f) << (7 * i)
			if c&0x80 == 0 {
				return v, nil
			}
		}
		return 0, errors.New("bad variable-length integer in block header")
	}
	if flags&0x40 != 0 { // compressed size
		if _, err := vli(); err != nil {
			return err
		}
	}
	if flags&0x80 != 0 { // uncompressed size
		if _, err := vli(); err != nil {
			return err
		}
	}
	var id, dict uint64
	for range int(flags&3) + 1 {
		var err error
		if id, err = vli(); err != nil {
			return err
		}
		n, err := vli()
		if err != nil {
			return err
		}
		if n > uint64(len(h)-pos) {
			return errors.New("filter properties overrun the block header")
		}
		dict = 0
		if id == 0x21 && n == 1 {
			dict = uint64(h[pos])
		}
		pos += int(n)
	}
	if id != 0x21 {
		return fmt.Errorf("%w: xz filter chain ends in filter %#x, not LZMA2", ErrUnsupported, id)
	}
	if dict > 40 {
		return fmt.Errorf("LZMA2 dictionary size code %d", dict)
	}
	if size := uint64(2|dict&1) << (dict/2 + 11); size > MaxWindow {
		return fmt.Errorf("%w: LZMA2 dictionary of %d bytes (limit %d)", ErrTooLarge, size, MaxWindow)
	}
	return nil
}

// --- zstd --------------------------------------------------------------------

// zstdSplitter passes exactly one zstd frame through (RFC 8878 section
// 3.1.1): frame header, blocks up to the last one, optional checksum, then
// io.EOF.
type zstdSplitter struct {
	splitter
	state    int
	checksum bool
}

func newZstdSplitter(in *input) *zstdSplitter {
	s := &zstdSplitter{}
	s.splitter = splitter{in: in, name: "zstd", step: s.step, buf: make([]byte, 18)}
	return s
}

const (
	zstdHeader = iota
	zstdBlock
	zstdChecksum
	zstdDone
)

// zstdMaxBlock is Block_Maximum_Size: no block is larger than 128 KiB.
const zstdMaxBlock = 128 << 10

func (s *zstdSplitter) step() error {
	switch s.state {
	case zstdHeader:
		b, err := s.more(5)
		if err != nil {
			return err
		}
		if binary.LittleEndian.Uint32(b) != 0xfd2fb528 {
			return errors.New("bad frame magic")
		}
		fhd := b[4]
		if fhd&0x08 != 0 {
			return errors.New("reserved frame header bit set")
		}
		single := fhd&0x20 != 0
		s.checksum = fhd&0x04 != 0
		fcsSize := [4]int{0, 2, 4, 8}[fhd>>6]
		if fcsSize == 0 && single {
			fcsSize = 1
		}
		n := [4]int{0, 1, 2, 4}[fhd&3] + fcsSize
		if !single {
			n++ // window descriptor
		}
		h, err := s.more(n)
		if err != nil {
			return err
		}
		if !single {
			wd := h[0]
			base := uint64(1) << (10 + wd>>3)
			if w := base + base/8*uint64(wd&7); w > MaxWindow {
				return fmt.Errorf("%w: zstd window of %d bytes (limit %d)", ErrTooLarge, w, MaxWindow)
			}
		}
		s.state = zstdBlock
	case zstdBlock:
		b, err := s.more(3)
		if err != nil {
			return err
		}
		h := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16
		size := int64(h >> 3)
		if size > zstdMaxBlock {
			return fmt.Errorf("block of %d bytes exceeds 128 KiB", size)
		}
		switch (h >> 1) & 3 {
		case 0, 2: // raw, compressed
			s.raw = size
		case 1: // RLE: one byte, repeated size times
			s.raw = 1
		case 3:
			return errors.New("reserved block type")
		}
		if h&1 != 0 { // last block
			s.state = zstdChecksum
		}
	case zstdChecksum:
		if s.checksum {
			if _, err := s.more(4); err != nil {
				return err
			}
		}
		s.state = zstdDone
	case zstdDone:
		return io.EOF
	}
	return nil
}
