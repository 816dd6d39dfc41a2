// Package initrd owns hashing the files inside initrd/initramfs images, the
// job of Keylime's `keylime-policy create runtime --ramdisk-dir`
// (keylime/policy/initrd.py), done the way the Linux kernel unpacks an
// initramfs (init/initramfs.c) rather than by running cpio and decompressors.
//
// An image is a sequence of segments: uncompressed cpio archives and
// compressed streams (gzip, xz, zstd, legacy lz4, bzip2, lzma) each holding
// one or more cpio archives, with zero padding between them. Leading
// uncompressed archives followed by more data are "early cpio" (CPU
// microcode); like Keylime, zest does not hash them unless asked to. Later
// segments overwrite files of earlier ones, and hard links share their data,
// as in the kernel's unpacking; the result is one digest per path, sorted.
//
// What differs from Keylime, on purpose: an image that cannot be read
// completely fails (Keylime hashes whatever cpio managed to extract); every
// segment is read, not just the one after the first early archive; lz4 is
// the legacy format the kernel reads (Keylime looks for the newer frame
// format); lzo is refused (no decoder) instead of being passed to xzcat.
//
// Limits: xz segments must use LZMA2 alone (no BCJ filters; the decoder
// lacks them); xz and lzma dictionaries and zstd windows above MaxWindow are
// refused; legacy lz4 runs to the end of the file or to a zero chunk size,
// as it has no end marker; a bzip2 segment followed by exactly one byte
// fails. Paths are archive names cleaned lexically: a file archived as
// "bin/x" under a "bin -> usr/bin" symlink is reported as /bin/x, and
// entries whose parent directory is missing (which the kernel fails to
// create) are still reported. Names are bytes: non-UTF-8 names pass
// through unchanged.
//
// It must not import policygen, verifier, archive or any CLI package; it
// never prints, logs or exits.
package initrd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/zest-attest/zest/digests"
)

// DefaultMaxDecompressed bounds the bytes all compressed segments of one
// image may decompress to when Options.MaxDecompressed is 0. Real initrds
// unpack to well under 1 GiB.
const DefaultMaxDecompressed int64 = 8 << 30

// MaxWindow bounds the dictionary (xz, lzma) or window (zstd) a compressed
// segment may ask for, since the decoders allocate it up front. The largest
// presets of the tools (xz -9: 64 MiB, zstd --ultra -22: 128 MiB) fit.
const MaxWindow = 256 << 20

// Options configure reading initrds.
type Options struct {
	// Algorithm is the digest algorithm; it must be one zest can compute.
	Algorithm digests.Algorithm
	// IncludeEarly also hashes the files of early (uncompressed, leading)
	// cpio archives, which the kernel does unpack but Keylime skips.
	IncludeEarly bool
	// MaxDecompressed bounds the total decompressed size of one image;
	// 0 means DefaultMaxDecompressed.
	MaxDecompressed int64
	// Progress, if set, is told about every file hashed.
	Progress digests.Progress
}

func (o *Options) check() error {
	if _, err := o.Algorithm.New(); err != nil {
		return fmt.Errorf("initrd: %w", err)
	}
	if o.MaxDecompressed < 0 {
		return fmt.Errorf("initrd: MaxDecompressed must be >= 0, got %d", o.MaxDecompressed)
	}
	return nil
}

// Errors that Error may wrap (besides io.ErrUnexpectedEOF, *cpio.FormatError
// and the decoders' own errors).
var (
	// ErrTooLarge: MaxDecompressed or MaxWindow was exceeded.
	ErrTooLarge = errors.New("too large")
	// ErrUnsupported: a format the kernel may know but zest cannot read,
	// or one the kernel does not unpack.
	ErrUnsupported = errors.New("unsupported format")
	// ErrNoArchive: the image holds no cpio archive at all.
	ErrNoArchive = errors.New("no cpio archive found")
)

// Error locates a failure in an image: File is the name given to New or
// Read, Segment counts segments from 1 (0 when the error concerns the
// whole file), Format names the segment's format and Offset is where the
// segment starts in the file.
type Error struct {
	File    string
	Segment int
	Format  string
	Offset  int64
	Err     error
}

func (e *Error) Error() string {
	if e.Segment == 0 {
		return "initrd " + e.File + ": " + e.Err.Error()
	}
	return "initrd " + e.File + ": segment " + strconv.Itoa(e.Segment) + " (" + e.Format +
		" at offset " + strconv.FormatInt(e.Offset, 10) + "): " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Initrd is a digests.Source over one image or over the images in a
// directory.
type Initrd struct {
	files []string
	opts  Options
}

var _ digests.Source = (*Initrd)(nil)

// New validates opts and finds the images. path is an image file, or a
// directory whose regular files (symlinks followed) named "initr*" are the
// images, as Keylime's --ramdisk-dir takes them; subdirectories are not
// entered. A directory with no image is an error. Nothing is read yet.
func New(path string, opts Options) (*Initrd, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("initrd: %w", err)
	}
	if fi.Mode().IsRegular() {
		return &Initrd{files: []string{path}, opts: opts}, nil
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("initrd: %s is neither a regular file nor a directory", path)
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("initrd: %w", err)
	}
	var files []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "initr") {
			continue
		}
		p := filepath.Join(path, e.Name())
		st, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			// A dangling symlink (initrd.img.old after a removal) is
			// not an image, as for Keylime's os.path.isfile.
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("initrd: %w", err)
		}
		if st.Mode().IsRegular() {
			files = append(files, p)
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("initrd: no regular file named initr* in directory %s", path)
	}
	// os.ReadDir sorts by name already; the order is part of the contract.
	slices.Sort(files)
	return &Initrd{files: files, opts: opts}, nil
}

// Files lists the images Walk reads, in order.
func (i *Initrd) Files() []string { return slices.Clone(i.files) }

// Walk reads every image completely, then yields one digest per distinct
// (path, digest) pair over all of them, sorted by path then digest. A path
// whose content differs between images gets one record per content. If any
// image fails, nothing is yielded.
func (i *Initrd) Walk(ctx context.Context, yield func(digests.Digest) error) error {
	var all []entry
	for _, name := range i.files {
		f, err := os.Open(name)
		if err != nil {
			return &Error{File: name, Err: err}
		}
		files, err := scan(ctx, f, name, i.opts)
		f.Close()
		if err != nil {
			return err
		}
		all = appendEntries(all, files)
	}
	return emit(all, i.opts.Algorithm, yield)
}

// Read hashes the image read from r (name is used in errors only) and yields
// its digests sorted by path. Nothing is yielded unless the whole image was
// read without error. r is read through a buffer, so it need not be one.
func Read(ctx context.Context, r io.Reader, name string, opts Options, yield func(digests.Digest) error) error {
	if err := opts.check(); err != nil {
		return err
	}
	files, err := scan(ctx, r, name, opts)
	if err != nil {
		return err
	}
	return emit(appendEntries(nil, files), opts.Algorithm, yield)
}

// entry is one result: an IMA-style path and a digest.
type entry struct {
	path string
	sum  []byte
}

func appendEntries(all []entry, files map[string]*inode) []entry {
	for p, ino := range files {
		all = append(all, entry{digests.IMAPath(p), ino.sum})
	}
	return all
}

// emit sorts, drops exact duplicates (two names that differ only in ' '
// versus '_' can carry the same content) and yields.
func emit(all []entry, alg digests.Algorithm, yield func(digests.Digest) error) error {
	slices.SortFunc(all, func(a, b entry) int {
		if c := strings.Compare(a.path, b.path); c != 0 {
			return c
		}
		return bytes.Compare(a.sum, b.sum)
	})
	all = slices.CompactFunc(all, func(a, b entry) bool { return a.path == b.path && bytes.Equal(a.sum, b.sum) })
	for _, e := range all {
		if err := yield(digests.Digest{Path: e.path, Algorithm: alg, Value: bytes.Clone(e.sum)}); err != nil {
			return err
		}
	}
	return nil
}
