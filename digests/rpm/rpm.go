// Package rpm owns reading RPM package files as a source of reference
// digests: the lead, the signature header and the main header (parsed here,
// with librpm's bounds checks, and checked against the header's SHA-256 /
// SHA-1 digest), the file list they describe (paths, modes, flags, content
// digests in FILEDIGESTALGO, IMA signatures from FILESIGNATURES), and,
// on request, the payload, decompressed and hashed to cross-check the
// header.
//
// The header-level API (ReadHeader, Header, Tags, Files, KeyIDs,
// VerifyPayload) is what repository readers build on: it needs only the
// bytes up to the end of the main header, which is what a range request for
// rpm:header-range fetches. File and Set are digests.Sources over local
// files.
//
// Nothing here is authenticated by a signature: the header digest protects
// against corruption, and IMA signatures are only parsed (imasig verifies
// them). This package must not import policygen, verifier, archive or any
// CLI package; it never prints, logs or exits.
package rpm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/zest-attest/zest/digests"
)

// Options control a File or Set. The zero value is the strict choice.
type Options struct {
	// AllowMD5 accepts packages whose file digests are MD5 (FILEDIGESTALGO
	// 1, or absent). Without it they are an error wrapping ErrMD5.
	AllowMD5 bool
	// HashPayload decompresses the payload and checks every file's content
	// against the header before any digest is yielded (VerifyPayload).
	HashPayload bool
	// Progress, if not nil, is told about the work done: with HashPayload,
	// one file and its size per payload file hashed; without, the number of
	// digests yielded per package and no bytes.
	Progress digests.Progress
}

// ErrMD5 reports a package whose file digests are MD5, refused unless
// Options.AllowMD5 is set.
var ErrMD5 = errors.New("file digests are MD5, which is refused unless explicitly allowed")

// ErrSourcePackage reports a source package (.src.rpm): its "files" are the
// spec and sources, not anything installed.
var ErrSourcePackage = errors.New("source package")

// File is a digests.Source over one .rpm file.
type File struct {
	path  string
	opts  Options
	hdr   *Header
	files []FileInfo
}

// New reads path's header and returns a source over its files. It fails on
// anything ReadHeader or Header.Files refuses, on source packages, and on MD5
// packages without AllowMD5.
func New(path string, opts Options) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("rpm: %w", err)
	}
	defer fh.Close()
	hdr, err := ReadHeader(bufio.NewReaderSize(fh, 64<<10), path)
	if err != nil {
		return nil, err
	}
	if hdr.IsSource() {
		return nil, fmt.Errorf("rpm: %s: %w", path, ErrSourcePackage)
	}
	alg, err := hdr.FileDigestAlgorithm()
	if err != nil {
		return nil, err
	}
	if alg == digests.MD5 && !opts.AllowMD5 {
		return nil, fmt.Errorf("rpm: %s: %w", path, ErrMD5)
	}
	files, err := hdr.Files()
	if err != nil {
		return nil, err
	}
	return &File{path: path, opts: opts, hdr: hdr, files: files}, nil
}

// Header returns the package's header.
func (f *File) Header() *Header { return f.hdr }

// Walk yields one digest per file IMA could measure with the header's
// digest (FileInfo.HasContentDigest: regular, not a ghost, non-zero digest),
// hard links under every name, %config files included, in header order
// (sorted by path). Paths are as IMA logs them (digests.IMAPath). With
// HashPayload the whole payload is checked first and nothing is yielded if
// it does not match.
func (f *File) Walk(ctx context.Context, yield func(digests.Digest) error) error {
	if f.opts.HashPayload {
		if err := f.verifyPayload(ctx); err != nil {
			return err
		}
	}
	alg, err := f.hdr.FileDigestAlgorithm()
	if err != nil {
		return err
	}
	var n int64
	for i := range f.files {
		fi := &f.files[i]
		if !fi.HasContentDigest() {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := yield(digests.Digest{
			Path:      digests.IMAPath(fi.Path),
			Algorithm: alg,
			Value:     fi.Digest,
			Signature: fi.Signature,
		}); err != nil {
			return err
		}
		n++
	}
	if f.opts.Progress != nil && !f.opts.HashPayload {
		f.opts.Progress.Add(n, 0)
	}
	return nil
}

// verifyPayload reads the file again from the start, so that the header
// and payload checked are those of one read, and insists the header is the
// one New read.
func (f *File) verifyPayload(ctx context.Context) error {
	fh, err := os.Open(f.path)
	if err != nil {
		return fmt.Errorf("rpm: %w", err)
	}
	defer fh.Close()
	br := bufio.NewReaderSize(fh, 64<<10)
	hdr, err := ReadHeader(br, f.path)
	if err != nil {
		return err
	}
	if string(hdr.main.Bytes()) != string(f.hdr.main.Bytes()) {
		return fmt.Errorf("rpm: %s: the file changed since its header was read", f.path)
	}
	// The signature header may differ (IMA signatures); use the one read
	// now for the payload check, which only looks at the main header.
	return hdr.VerifyPayload(ctx, br, f.opts.Progress)
}

// Set is a digests.Source over several .rpm files, walked in path order.
type Set struct {
	paths []string
	opts  Options
}

// NewSet returns a source over the given files, sorted and deduplicated.
// Each file is read when Walk reaches it; the first error stops the walk.
func NewSet(paths []string, opts Options) *Set {
	p := slices.Clone(paths)
	slices.Sort(p)
	return &Set{paths: slices.Compact(p), opts: opts}
}

// Glob returns a Set over the files matching pattern (filepath.Match
// syntax), leaving out source packages by name (*.src.rpm, *.nosrc.rpm). A
// pattern matching nothing is an error.
func Glob(pattern string, opts Options) (*Set, error) {
	m, err := filepath.Glob(pattern)
	if err != nil {
		return nil, fmt.Errorf("rpm: %w", err)
	}
	var paths []string
	for _, p := range m {
		if strings.HasSuffix(p, ".src.rpm") || strings.HasSuffix(p, ".nosrc.rpm") {
			continue
		}
		paths = append(paths, p)
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("rpm: no binary packages match %q", pattern)
	}
	return NewSet(paths, opts), nil
}

// Paths returns the files the set walks, in order.
func (s *Set) Paths() []string { return slices.Clone(s.paths) }

// Walk walks each file in turn (see File.Walk).
func (s *Set) Walk(ctx context.Context, yield func(digests.Digest) error) error {
	for _, p := range s.paths {
		if err := ctx.Err(); err != nil {
			return err
		}
		f, err := New(p, s.opts)
		if err != nil {
			return err
		}
		if err := f.Walk(ctx, yield); err != nil {
			return err
		}
	}
	return nil
}

var (
	_ digests.Source = (*File)(nil)
	_ digests.Source = (*Set)(nil)
)
