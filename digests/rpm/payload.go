package rpm

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"crypto/md5" //nolint:gosec // MD5 FILEDIGESTS of old packages, only with AllowMD5.
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"

	"github.com/zest-attest/zest/digests"
	"github.com/zest-attest/zest/digests/cpio"
)

// MaxWindow bounds the dictionary (xz, lzma) or window (zstd) a payload may
// ask the decompressor to allocate. xz -9 uses 64 MiB and zstd --ultra -22
// 128 MiB; rpm's defaults are far smaller.
const MaxWindow = 128 << 20

// ErrPayloadMismatch is wrapped by every *MismatchError.
var ErrPayloadMismatch = errors.New("payload does not match the header")

// MismatchError names a file whose content in the payload does not match
// the header's FILEDIGESTS entry.
type MismatchError struct {
	Input     string
	Path      string
	Algorithm digests.Algorithm
	Header    []byte // FILEDIGESTS
	Payload   []byte // digest of the payload's content
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("rpm: %s: %s: payload content has %s %x, FILEDIGESTS says %x", e.Input, e.Path, e.Algorithm, e.Payload, e.Header)
}

func (e *MismatchError) Unwrap() error { return ErrPayloadMismatch }

func newHash(alg digests.Algorithm) (hash.Hash, error) {
	if alg == digests.MD5 {
		return md5.New(), nil //nolint:gosec
	}
	return alg.New()
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// VerifyPayload reads the payload from r (positioned where the header ends),
// decompresses it, and checks it against the header: every regular file's
// content must hash to its FILEDIGESTS entry (hard links share the content
// of the one member that carries it), every content-digest file must be
// present, nothing else may be, and the compressed bytes must match
// PAYLOADDIGEST (5092) when the header has one. Mismatching files are all
// reported, each as a *MismatchError, joined; anything unreadable is a
// *FormatError. progress, if not nil, gets one file and its size per regular
// file hashed.
func (h *Header) VerifyPayload(ctx context.Context, r io.Reader, progress digests.Progress) error {
	files, err := h.Files()
	if err != nil {
		return err
	}
	alg, err := h.FileDigestAlgorithm()
	if err != nil {
		return err
	}
	fail := func(off int64, tag Tag, err error, format string, args ...any) error {
		return &FormatError{Input: h.input, Offset: off, Section: "payload", Tag: tag, Msg: fmt.Sprintf(format, args...), Err: err}
	}
	if h.main.Has(TagPayloadFormat) {
		if f, err := h.main.String(TagPayloadFormat); err != nil {
			return err
		} else if f != "cpio" {
			return fail(h.end, TagPayloadFormat, nil, "payload format %q, want cpio", f)
		}
	}

	// PAYLOADDIGEST covers the compressed bytes.
	var pd hash.Hash
	var pdWant string
	if h.main.Has(TagPayloadDigest) {
		algo := uint32(8)
		if h.main.Has(TagPayloadDigestAlgo) {
			if algo, err = h.main.Uint32(TagPayloadDigestAlgo); err != nil {
				return err
			}
		}
		a, ok := digestAlgos[algo]
		if !ok || a.alg == digests.MD5 {
			return fail(h.end, TagPayloadDigestAlgo, ErrUnknownAlgorithm, "id %d", algo)
		}
		want, err := h.main.Strings(TagPayloadDigest)
		if err != nil {
			return err
		}
		if pd, err = a.alg.New(); err != nil {
			return err
		}
		pdWant = want[0]
	}
	counter := &countingReader{r: r}
	src := io.Reader(counter)
	if pd != nil {
		src = io.TeeReader(counter, pd)
	}
	br := bufio.NewReaderSize(src, 64<<10)

	comp := ""
	if h.main.Has(TagPayloadCompressor) {
		if comp, err = h.main.String(TagPayloadCompressor); err != nil {
			return err
		}
	}
	dec, closeDec, err := decompressor(comp, br)
	if err != nil {
		return fail(h.end, TagPayloadCompressor, err, "payload compressor %q", comp)
	}
	defer closeDec()

	index := make(map[string]int, len(files))
	for i := range files {
		index[files[i].Path] = i
	}
	type inode struct{ dev, ino uint32 }
	seen := make([]bool, len(files))
	got := make([][]byte, len(files))
	shared := map[inode][]byte{} // content of a hard-link set, from the member carrying it
	var problems []error

	cr := cpio.NewReader(bufio.NewReaderSize(dec, 64<<10))
	buf := make([]byte, 256<<10)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := cr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(h.end+counter.n, 0, err, "reading the cpio archive (compressed bytes read so far: %d)", counter.n)
		}
		name := strings.TrimPrefix(hdr.Name, ".")
		i, ok := index[name]
		if !ok {
			problems = append(problems, fail(h.end, 0, ErrPayloadMismatch, "cpio entry %q (at %d) is not in the header's file list", hdr.Name, hdr.Offset))
			continue
		}
		f := &files[i]
		if seen[i] {
			problems = append(problems, fail(h.end, 0, ErrPayloadMismatch, "%s appears twice in the payload", f.Path))
			continue
		}
		seen[i] = true
		if uint32(f.Mode)&ModeTypeMask != hdr.Type() {
			problems = append(problems, fail(h.end, 0, ErrPayloadMismatch, "%s: payload mode %o, header mode %o", f.Path, hdr.Mode, f.Mode))
			continue
		}
		if f.IsGhost() {
			problems = append(problems, fail(h.end, 0, ErrPayloadMismatch, "%s is a %%ghost but is in the payload", f.Path))
			continue
		}
		if !hdr.IsRegular() || hdr.Size == 0 {
			continue // an empty file, or a hard link whose data comes with another name
		}
		hh, err := newHash(alg)
		if err != nil {
			return err
		}
		n, err := copyCtx(ctx, hh, cr, buf)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fail(h.end+counter.n, 0, err, "reading %s from the payload", f.Path)
		}
		if progress != nil {
			progress.Add(1, n)
		}
		got[i] = hh.Sum(nil)
		shared[inode{f.Device, f.Inode}] = got[i]
	}
	// Drain what the decompressor left, so PAYLOADDIGEST sees every byte.
	if _, err := io.Copy(io.Discard, br); err != nil {
		return fail(h.end+counter.n, 0, err, "reading the payload")
	}
	if pd != nil {
		if sum := hex.EncodeToString(pd.Sum(nil)); sum != pdWant {
			problems = append(problems, fail(h.end, TagPayloadDigest, ErrPayloadMismatch, "compressed payload (%d bytes) hashes to %s, header says %s", counter.n, sum, pdWant))
		}
	}

	var empty []byte
	for i := range files {
		f := &files[i]
		if !f.HasContentDigest() {
			continue
		}
		if !seen[i] {
			problems = append(problems, fail(h.end, 0, ErrPayloadMismatch, "%s is missing from the payload", f.Path))
			continue
		}
		d := got[i]
		if d == nil {
			d = shared[inode{f.Device, f.Inode}]
		}
		if d == nil {
			if empty == nil {
				hh, err := newHash(alg)
				if err != nil {
					return err
				}
				empty = hh.Sum(nil)
			}
			d = empty
		}
		if !bytes.Equal(d, f.Digest) {
			problems = append(problems, &MismatchError{Input: h.input, Path: f.Path, Algorithm: alg, Header: f.Digest, Payload: d})
		}
	}
	return errors.Join(problems...)
}

// copyCtx copies r to w, checking ctx between buffers.
func copyCtx(ctx context.Context, w io.Writer, r io.Reader, buf []byte) (int64, error) {
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		k, err := r.Read(buf)
		if k > 0 {
			w.Write(buf[:k]) // a hash never fails
			n += int64(k)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// decompressor returns a reader of the decompressed payload for
// PAYLOADCOMPRESSOR name ("" when the tag is absent) and a function that
// releases it.
func decompressor(name string, br *bufio.Reader) (io.Reader, func(), error) {
	nop := func() {}
	switch name {
	case "", "gzip":
		// librpm opens an absent compressor as gzip, and zlib passes data
		// that is not gzip through: that is how rpm reads the
		// uncompressed payloads rpmbuild writes for "w.ufdio".
		if magic, _ := br.Peek(6); name == "" && (string(magic) == cpio.MagicNewc || string(magic) == cpio.MagicCRC) {
			return br, nop, nil
		}
		z, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, err
		}
		return z, nop, nil
	case "bzip2":
		return bzip2.NewReader(br), nop, nil
	case "xz":
		z, err := xz.ReaderConfig{DictCap: MaxWindow, SingleStream: true}.NewReader(&xzGuard{br: br})
		if err != nil {
			return nil, nil, err
		}
		return z, nop, nil
	case "lzma":
		hdr, err := br.Peek(lzma.HeaderLen)
		if err != nil {
			return nil, nil, fmt.Errorf("lzma header: %w", truncation(err))
		}
		if dict := binary.LittleEndian.Uint32(hdr[1:5]); dict > MaxWindow {
			return nil, nil, fmt.Errorf("lzma dictionary of %d bytes (limit %d)", dict, MaxWindow)
		}
		z, err := lzma.ReaderConfig{DictCap: MaxWindow}.NewReader(br)
		if err != nil {
			return nil, nil, err
		}
		return z, nop, nil
	case "zstd":
		z, err := zstd.NewReader(br,
			zstd.WithDecoderConcurrency(1), // decode inline, no goroutines
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(MaxWindow))
		if err != nil {
			return nil, nil, err
		}
		return z, z.Close, nil
	}
	return nil, nil, errors.New("unsupported compressor")
}

// xzGuard passes an xz stream (xz-file-format 1.2.0) through unchanged,
// walking its structure so that it can refuse a block header asking for an
// LZMA2 dictionary above MaxWindow before ulikunitz/xz allocates it. Only
// structure is followed; checks (CRCs, index) are left to the decoder. When
// the input ends early it passes what there is and lets the decoder report
// the truncation.
type xzGuard struct {
	br        *bufio.Reader
	state     int
	remain    int64 // bytes to pass before the next step
	blockLen  int64 // block header + compressed data, for the padding
	checkSize int64
	err       error
}

const (
	xzStreamHeader = iota
	xzBlockOrIndex
	xzChunk
	xzBlockEnd
	xzRest
)

func (g *xzGuard) Read(p []byte) (int, error) {
	for g.remain == 0 {
		if g.err != nil {
			return 0, g.err
		}
		if err := g.step(); err != nil {
			g.err = err
			return 0, err
		}
	}
	if int64(len(p)) > g.remain {
		p = p[:g.remain]
	}
	n, err := g.br.Read(p)
	g.remain -= int64(n)
	return n, err
}

// peek returns n bytes, or switches to passing the rest through when the
// input is shorter.
func (g *xzGuard) peek(n int) []byte {
	b, err := g.br.Peek(n)
	if err != nil {
		g.state, g.remain = xzRest, 1<<62
		return nil
	}
	return b
}

func (g *xzGuard) step() error {
	switch g.state {
	case xzStreamHeader:
		b := g.peek(12)
		if b == nil {
			return nil
		}
		if string(b[:6]) != "\xfd7zXZ\x00" {
			return errors.New("xz: bad stream header magic")
		}
		if c := b[7] & 0x0f; c != 0 {
			g.checkSize = 4 << ((c - 1) / 3)
		}
		g.state, g.remain = xzBlockOrIndex, 12
	case xzBlockOrIndex:
		b := g.peek(1)
		if b == nil {
			return nil
		}
		if b[0] == 0 { // index: no allocations from here on that the decoder does not bound
			g.state, g.remain = xzRest, 1<<62
			return nil
		}
		size := (int(b[0]) + 1) * 4
		if b = g.peek(size); b == nil {
			return nil
		}
		if err := xzCheckBlockHeader(b); err != nil {
			return err
		}
		g.state, g.remain, g.blockLen = xzChunk, int64(size), int64(size)
	case xzChunk:
		b := g.peek(1)
		if b == nil {
			return nil
		}
		var n int64
		switch c := b[0]; {
		case c == 0:
			g.state, n = xzBlockEnd, 1
		case c == 1 || c == 2:
			if b = g.peek(3); b == nil {
				return nil
			}
			n = 3 + int64(binary.BigEndian.Uint16(b[1:])) + 1
		case c >= 0x80:
			hl := 5
			if c >= 0xc0 {
				hl = 6
			}
			if b = g.peek(hl); b == nil {
				return nil
			}
			n = int64(hl) + int64(binary.BigEndian.Uint16(b[3:])) + 1
		default:
			return fmt.Errorf("xz: bad LZMA2 chunk control byte 0x%02x", c)
		}
		g.remain = n
		g.blockLen += n
	case xzBlockEnd:
		g.state = xzBlockOrIndex
		g.remain = (4-g.blockLen%4)%4 + g.checkSize
	default:
		g.remain = 1 << 62
	}
	return nil
}

// xzCheckBlockHeader refuses an LZMA2 filter whose dictionary exceeds
// MaxWindow; malformed headers are left to the decoder to reject.
func xzCheckBlockHeader(b []byte) error {
	flags := b[1]
	p := 2
	vli := func() (uint64, bool) {
		var v uint64
		for i := 0; i < 9 && p < len(b); i++ {
			c := b[p]
			p++
			v |= uint64(c&0x7f) << (7 * i)
			if c&0x80 == 0 {
				return v, true
			}
		}
		return 0, false
	}
	for _, present := range []bool{flags&0x40 != 0, flags&0x80 != 0} {
		if present {
			if _, ok := vli(); !ok {
				return nil
			}
		}
	}
	for f := 0; f <= int(flags&3); f++ {
		id, ok1 := vli()
		size, ok2 := vli()
		if !ok1 || !ok2 || size > uint64(len(b)-p) {
			return nil
		}
		if id == 0x21 && size == 1 {
			d := b[p]
			if d > 40 {
				return fmt.Errorf("xz: bad LZMA2 dictionary size byte %d", d)
			}
			dict := uint64(1)<<32 - 1
			if d < 40 {
				dict = uint64(2|d&1) << (d/2 + 11)
			}
			if dict > MaxWindow {
				return fmt.Errorf("xz: LZMA2 dictionary of %d bytes (limit %d)", dict, MaxWindow)
			}
		}
		p += int(size)
	}
	return nil
}
