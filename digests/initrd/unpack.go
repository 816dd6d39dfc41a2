package initrd

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"path"

	"github.com/zest-attest/zest/digests/cpio"
)

// bufSize is the read-ahead of the image and of each decompressed stream.
// The xz decoder reads a byte at a time; unbuffered it is ~15x slower.
const bufSize = 256 << 10

// pathMax is the kernel's PATH_MAX: init/initramfs.c ignores symlinks whose
// target is longer.
const pathMax = 4096

// input counts the bytes consumed from a buffered reader, so that the end of
// a segment is known exactly. It is an io.ByteReader, which makes
// compress/flate (hence gzip) read no further than the end of a member.
type input struct {
	br  *bufio.Reader
	off int64
}

func (in *input) Read(p []byte) (int, error) {
	n, err := in.br.Read(p)
	in.off += int64(n)
	return n, err
}

func (in *input) ReadByte() (byte, error) {
	b, err := in.br.ReadByte()
	if err == nil {
		in.off++
	}
	return b, err
}

func (in *input) Discard(n int) (int, error) {
	m, err := in.br.Discard(n)
	in.off += int64(m)
	return m, err
}

// skipZeros consumes zero bytes. It returns io.EOF if only zeros were left,
// nil when a non-zero byte is next.
func (in *input) skipZeros() error {
	for {
		if _, err := in.br.Peek(1); err != nil {
			return err
		}
		buf, _ := in.br.Peek(in.br.Buffered())
		n := 0
		for n < len(buf) && buf[n] == 0 {
			n++
		}
		in.Discard(n)
		if n < len(buf) {
			return nil
		}
	}
}

// inode is a regular file's content as the unpacked rootfs would hold it;
// hard-linked paths share one.
type inode struct{ sum []byte }

// linkKey is what the kernel's find_link matches hard links on.
type linkKey struct {
	ino, major, minor, typ uint32
}

type opKind uint8

const (
	opFile   opKind = iota + 1 // create or overwrite a regular file
	opRemove                   // a non-file entry replaces whatever is at path
)

// op is one archive entry's effect on the rootfs. Archives are turned into
// ops first because whether a leading archive is "early" is known only once
// the data after it has been seen.
type op struct {
	kind   opKind
	path   string
	linked bool // nlink >= 2: part of a hard-link group
	link   linkKey
	body   bool // the entry carried data; sum is its digest
	sum    []byte
}

// scanner holds the state of reading one image.
type scanner struct {
	ctx    context.Context
	opts   Options
	h      hash.Hash
	empty  []byte
	copy   []byte
	files  map[string]*inode
	output int64 // decompressed bytes so far
	maxOut int64
	stream *bufio.Reader
}

func scan(ctx context.Context, r io.Reader, name string, opts Options) (map[string]*inode, error) {
	h, err := opts.Algorithm.New()
	if err != nil {
		return nil, &Error{File: name, Err: err}
	}
	s := &scanner{
		ctx:    ctx,
		opts:   opts,
		h:      h,
		empty:  h.Sum(nil),
		copy:   make([]byte, 128<<10),
		files:  make(map[string]*inode),
		maxOut: opts.MaxDecompressed,
	}
	if s.maxOut == 0 {
		s.maxOut = DefaultMaxDecompressed
	}
	in := &input{br: bufio.NewReaderSize(r, bufSize)}

	var (
		seg     int
		leading = true // no compressed segment seen yet
		pending []op   // the last leading archive, early if more data follows
		hasPend bool
	)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := in.skipZeros(); err == io.EOF {
			break
		} else if err != nil {
			return nil, &Error{File: name, Err: fmt.Errorf("at offset %d: %w", in.off, err)}
		}
		if hasPend {
			// Data follows the leading archive: it is early cpio.
			if opts.IncludeEarly {
				s.apply(pending)
			}
			pending, hasPend = nil, false
		}
		seg++
		start := in.off
		magic, _ := in.br.Peek(6)
		format := detect(magic)
		fail := func(err error) error {
			return &Error{File: name, Segment: seg, Format: format, Offset: start, Err: err}
		}
		if format == "cpio" {
			// The kernel looks for a header only at 4-byte aligned
			// offsets (init/initramfs.c, unpack_to_rootfs).
			if start%4 != 0 {
				return nil, fail(errors.New("cpio archive at an offset that is not a multiple of 4"))
			}
			ops, err := s.archive(in)
			if err != nil {
				return nil, fail(err)
			}
			if leading {
				pending, hasPend = ops, true
			} else {
				s.apply(ops)
			}
			continue
		}
		leading = false
		if err := s.compressed(format, in); err != nil {
			return nil, fail(err)
		}
	}
	if hasPend {
		// The last leading archive has nothing after it: it is the
		// main archive (a plain cpio initrd).
		s.apply(pending)
	}
	if seg == 0 {
		return nil, &Error{File: name, Err: ErrNoArchive}
	}
	return s.files, nil
}

// detect names a segment's format from its first bytes, using the kernel's
// two-byte magics (lib/decompress.c) and a few longer ones for messages.
func detect(b []byte) string {
	if len(b) >= 1 && b[0] == '0' {
		return "cpio"
	}
	if len(b) < 2 {
		return "unknown"
	}
	switch {
	case b[0] == 0x1f && b[1] == 0x8b:
		return "gzip"
	case b[0] == 0x1f && b[1] == 0x9e:
		return "gzip (old)"
	case b[0] == 'B' && b[1] == 'Z':
		return "bzip2"
	case b[0] == 0x5d && b[1] == 0x00:
		return "lzma"
	case b[0] == 0xfd && b[1] == '7':
		return "xz"
	case b[0] == 0x89 && b[1] == 'L':
		return "lzo"
	case b[0] == 0x02 && b[1] == 0x21:
		return "lz4"
	case b[0] == 0x28 && b[1] == 0xb5:
		return "zstd"
	case len(b) >= 4 && b[0] == 0x04 && b[1] == 0x22 && b[2] == 0x4d && b[3] == 0x18:
		return "lz4 frame"
	}
	return "unknown"
}

// compressed decodes one compressed segment and applies its archives.
func (s *scanner) compressed(format string, in *input) error {
	var (
		dec   io.Reader
		close func()
		err   error
	)
	switch format {
	case "gzip":
		var z *gzip.Reader
		if z, err = gzip.NewReader(in); err == nil {
			// One member per segment, as the kernel's gunzip; the next
			// member is the next segment.
			z.Multistream(false)
			dec = z
		}
	case "xz":
		dec, err = newXZ(in)
	case "zstd":
		dec, close, err = newZstd(in)
	case "lz4":
		dec, err = newLZ4Legacy(in)
	case "bzip2":
		dec = newBzip2(in)
	case "lzma":
		dec, err = newLZMA(in)
	case "lz4 frame":
		return fmt.Errorf("%w: the kernel unpacks only legacy lz4 (magic 02 21 4c 18, made by lz4 -l)", ErrUnsupported)
	case "lzo":
		return fmt.Errorf("%w: lzo has no decoder in zest; recompress the initrd (gzip, xz, zstd, lz4 -l, bzip2)", ErrUnsupported)
	case "gzip (old)":
		return fmt.Errorf("%w: old gzip magic 1f 9e", ErrUnsupported)
	default:
		b, _ := in.br.Peek(4)
		return fmt.Errorf("unknown magic % x: not cpio nor a compressed format the kernel knows", b)
	}
	if err != nil {
		return err
	}
	if close != nil {
		defer close()
	}
	return s.archives(dec)
}

// archives reads the cpio archives of one decompressed stream, as the
// kernel's flush_buffer does: zeros between archives are skipped, anything
// else must be a header at a 4-byte aligned offset, and the stream must end
// between entries.
func (s *scanner) archives(dec io.Reader) error {
	lim := &limited{r: dec, s: s}
	if s.stream == nil {
		s.stream = bufio.NewReaderSize(lim, bufSize)
	} else {
		s.stream.Reset(lim)
	}
	ds := &input{br: s.stream}
	for {
		err := ds.skipZeros()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		at := ds.off
		if b, _ := ds.br.Peek(1); b[0] != '0' || at%4 != 0 {
			return fmt.Errorf("decompressed data at offset %d: byte %#02x is not the start of a cpio header", at, b[0])
		}
		ops, err := s.archive(ds)
		if err != nil {
			return fmt.Errorf("cpio archive at offset %d of the decompressed data: %w", at, err)
		}
		s.apply(ops)
	}
}

// limited enforces MaxDecompressed over all segments of an image.
type limited struct {
	r io.Reader
	s *scanner
}

func (l *limited) Read(p []byte) (int, error) {
	left := l.s.maxOut - l.s.output
	if left <= 0 {
		// Over the limit only if there is more: an image of exactly
		// maxOut bytes is fine.
		var one [1]byte
		n, err := l.r.Read(one[:])
		if n > 0 {
			return 0, fmt.Errorf("%w: more than %d decompressed bytes (Options.MaxDecompressed)", ErrTooLarge, l.s.maxOut)
		}
		return 0, err
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	n, err := l.r.Read(p)
	l.s.output += int64(n)
	return n, err
}

// archive reads one cpio archive and returns its effect on the rootfs,
// hashing regular files' data on the way.
func (s *scanner) archive(src io.Reader) ([]op, error) {
	cr := cpio.NewReader(src)
	var ops []op
	for {
		if err := s.ctx.Err(); err != nil {
			return nil, err
		}
		h, err := cr.Next()
		if err == io.EOF {
			return ops, nil
		}
		if err != nil {
			return nil, err
		}
		p := path.Clean("/" + h.Name)
		if p == "/" {
			// ".", "./" or "": the root itself, or a name the kernel
			// cannot create.
			continue
		}
		switch typ := h.Type(); {
		case typ == cpio.TypeReg:
			o := op{kind: opFile, path: p}
			if h.Nlink >= 2 {
				o.linked = true
				o.link = linkKey{h.Ino, h.DevMajor, h.DevMinor, typ}
			}
			if h.Size > 0 {
				s.h.Reset()
				n, err := io.CopyBuffer(s.h, cr, s.copy)
				if err != nil {
					return nil, err
				}
				if n != h.Size {
					return nil, fmt.Errorf("%q: read %d of %d bytes", h.Name, n, h.Size)
				}
				o.body, o.sum = true, s.h.Sum(nil)
			}
			if s.opts.Progress != nil {
				s.opts.Progress.Add(1, h.Size)
			}
			ops = append(ops, o)
		case typ == cpio.TypeSymlink:
			if h.Size <= pathMax {
				ops = append(ops, op{kind: opRemove, path: p})
			}
		default:
			// Directories, devices, fifos, sockets (and unknown types)
			// replace a file at their path; the kernel ignores them
			// entirely when they carry data.
			if h.Size == 0 {
				ops = append(ops, op{kind: opRemove, path: p})
			}
		}
	}
}

// apply replays one archive's ops the way init/initramfs.c does. Within an
// archive, the first entry of a hard-link group creates the file
// (truncating an existing regular file at that path, which other links to it
// see too) and later entries become links to it; each entry with data
// replaces the shared content. The link table is per archive: the kernel
// frees it at each TRAILER!!!.
func (s *scanner) apply(ops []op) {
	links := make(map[linkKey]string)
	for _, o := range ops {
		if o.kind == opRemove {
			delete(s.files, o.path)
			continue
		}
		if o.linked {
			if old, ok := links[o.link]; ok {
				// clean_path removes what is there, then link(old, new);
				// if old is gone the link fails and no file is made.
				delete(s.files, o.path)
				ino := s.files[old]
				if ino == nil {
					continue
				}
				s.files[o.path] = ino
				if o.body {
					ino.sum = o.sum
				}
				continue
			}
			links[o.link] = o.path
		}
		ino := s.files[o.path]
		if ino == nil {
			ino = &inode{}
			s.files[o.path] = ino
		}
		ino.sum = s.empty
		if o.body {
			ino.sum = o.sum
		}
	}
}
