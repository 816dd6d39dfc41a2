// Package deb owns reading Debian binary packages (.deb, deb(5)) as a source
// of reference digests: its own bounded ar reader for the container, the
// debian-binary / control.tar / data.tar member layout, and the data.tar
// (gzip, xz, zstd, bzip2 or uncompressed) whose regular files it hashes with
// the chosen algorithm. A .deb carries only MD5 file digests (md5sums), so
// every file's content is hashed here; control.tar is not read.
//
// Paths are mapped to what IMA logs on a merged-/usr system (/bin/x is
// measured as /usr/bin/x) unless Options.NoMergedUsr is set. Deb.Data gives
// the data files with their content to callers that need more than digests
// (a kernel image from a linux-image package, say).
//
// Nothing in a .deb is authenticated by itself. The APT reader (OpenRepo)
// verifies the repository's Release signature (InRelease or Release.gpg)
// against a given OpenPGP keyring, then the Packages index's SHA-256 from
// the Release, then each .deb's SHA-256 from Packages before hashing it.
// This package must not import policygen, verifier, archive or any CLI
// package; it never prints, logs or exits.
package deb

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/zest-attest/zest/digests"
)

// Options control a Deb. Algorithm must be set; the other zero values are
// the defaults.
type Options struct {
	// Algorithm is the digest algorithm to hash file content with.
	Algorithm digests.Algorithm
	// NoMergedUsr keeps the paths as packaged. By default /bin, /sbin, /lib,
	// /lib32, /lib64, /libo32 and /libx32 are mapped under /usr, as
	// usrmerge does and as IMA then logs them.
	NoMergedUsr bool
	// Progress, if not nil, is told one file and its size per file hashed.
	Progress digests.Progress
}

// Deb is a digests.Source over one .deb.
type Deb struct {
	input  string
	opts   Options
	open   func() (io.ReaderAt, int64, func() error, error)
	layout layout
}

// layout is where the members of interest sit in the ar archive.
type layout struct {
	version string // debian-binary's first line, "2.0"
	control *ArMember
	data    *ArMember
	comp    compression
}

// New reads the ar layout of the .deb at path and returns a source over it.
// The file is opened again by Walk and Data.
func New(path string, opts Options) (*Deb, error) {
	open := func() (io.ReaderAt, int64, func() error, error) {
		f, err := os.Open(path)
		if err != nil {
			return nil, 0, nil, fmt.Errorf("deb: %w", err)
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, nil, fmt.Errorf("deb: %w", err)
		}
		return f, st.Size(), f.Close, nil
	}
	return load(path, opts, open)
}

// Load is New over an in-memory or otherwise random-access package of size
// bytes; name is used in errors. r must not change while the Deb is used.
func Load(r io.ReaderAt, size int64, name string, opts Options) (*Deb, error) {
	open := func() (io.ReaderAt, int64, func() error, error) {
		return r, size, func() error { return nil }, nil
	}
	return load(name, opts, open)
}

func load(input string, opts Options, open func() (io.ReaderAt, int64, func() error, error)) (*Deb, error) {
	if _, err := opts.Algorithm.New(); err != nil {
		return nil, fmt.Errorf("deb: %s: %w", input, err)
	}
	r, size, closer, err := open()
	if err != nil {
		return nil, err
	}
	defer closer()
	l, err := readLayout(r, size, input)
	if err != nil {
		return nil, err
	}
	return &Deb{input: input, opts: opts, open: open, layout: l}, nil
}

// Version is the package format version from debian-binary ("2.0").
func (d *Deb) Version() string { return d.layout.version }

// ControlMember and DataMember name the control and data members
// ("control.tar.xz", "data.tar.zst").
func (d *Deb) ControlMember() string { return d.layout.control.Name }

// DataMember names the data member ("data.tar.xz").
func (d *Deb) DataMember() string { return d.layout.data.Name }

// readLayout walks the ar members as dpkg-deb does (deb(5)): debian-binary
// first, with major version 2; then control.tar*, then data.tar*; members
// whose names start with '_' may come between them and are skipped, as is
// anything after data.tar.
func readLayout(r io.ReaderAt, size int64, input string) (layout, error) {
	var l layout
	ar, err := NewArReader(r, size, input)
	if err != nil {
		return l, err
	}
	m, err := ar.Next()
	if err == io.EOF {
		return l, &FormatError{Input: input, Offset: 8, Msg: "empty ar archive", Err: ErrTruncated}
	}
	if err != nil {
		return l, err
	}
	fail := func(m *ArMember, format string, args ...any) error {
		return &FormatError{Input: input, Member: m.Name, Offset: m.Offset, Msg: fmt.Sprintf(format, args...)}
	}
	if m.Name != "debian-binary" {
		return l, fail(m, "first member is not debian-binary")
	}
	if m.Size > 1024 {
		return l, fail(m, "debian-binary is %d bytes", m.Size)
	}
	v := make([]byte, m.Size)
	if _, err := m.Content.ReadAt(v, 0); err != nil && !(err == io.EOF && len(v) == 0) {
		return l, &FormatError{Input: input, Member: m.Name, Offset: m.Offset, Msg: "reading", Err: err}
	}
	line, _, ok := bytes.Cut(v, []byte("\n"))
	if !ok {
		return l, fail(m, "debian-binary %q has no newline", v)
	}
	major, _, _ := strings.Cut(string(line), ".")
	if major != "2" {
		return l, fail(m, "unsupported package format version %q (want 2.x)", line)
	}
	l.version = string(line)
	for l.data == nil {
		m, err := ar.Next()
		if err == io.EOF {
			what := "control.tar"
			if l.control != nil {
				what = "data.tar"
			}
			return l, &FormatError{Input: input, Offset: size, Msg: "no " + what + " member", Err: ErrTruncated}
		}
		if err != nil {
			return l, err
		}
		switch {
		case strings.HasPrefix(m.Name, "_"):
			continue
		case l.control == nil:
			if !strings.HasPrefix(m.Name, "control.tar") {
				return l, fail(m, "want control.tar*")
			}
			if _, ok := parseCompression(m.Name, "control.tar"); !ok {
				return l, fail(m, "unsupported control.tar compression")
			}
			l.control = m
		default:
			if !strings.HasPrefix(m.Name, "data.tar") {
				return l, fail(m, "want data.tar*")
			}
			c, ok := parseCompression(m.Name, "data.tar")
			if !ok {
				return l, fail(m, "unsupported data.tar compression")
			}
			l.data, l.comp = m, c
		}
	}
	return l, nil
}

// Entry is one member of data.tar.
type Entry struct {
	Name string // as in the archive: "./usr/bin/hello"
	// Path is absolute and cleaned, as packaged: no merged-/usr mapping and
	// no IMA space escaping ("/bin/bzip2").
	Path     string
	Type     byte // tar type flag: tar.TypeReg, TypeLink, TypeSymlink, TypeDir, ...
	Mode     int64
	Size     int64 // content bytes; 0 for all but regular files
	Linkname string
}

// IsRegular reports whether e has content of its own.
func (e *Entry) IsRegular() bool { return isRegular(e.Type) }

func isRegular(t byte) bool {
	return t == tar.TypeReg || t == tar.TypeRegA || t == tar.TypeGNUSparse || t == tar.TypeCont
}

// Data calls fn for every entry of data.tar, in archive order. For regular
// files content reads the file's bytes (fn need not read them all); for
// others it is empty. A hard link (tar.TypeLink) has Linkname set to the
// Path of the earlier regular file whose content it shares; a symlink's
// Linkname is its target as written. Entry names with ".." components,
// hard links to anything but an earlier regular file, and a regular file
// appearing twice are errors. After the last entry the rest of the stream is
// read, so that the decompressor checks its trailer (CRC, xz index).
func (d *Deb) Data(ctx context.Context, fn func(e Entry, content io.Reader) error) error {
	r, size, closer, err := d.open()
	if err != nil {
		return err
	}
	defer closer()
	l, err := readLayout(r, size, d.input)
	if err != nil {
		return err
	}
	if l.data.Offset != d.layout.data.Offset || l.data.Size != d.layout.data.Size || l.data.Name != d.layout.data.Name {
		return fmt.Errorf("deb: %s: the file changed since it was opened", d.input)
	}
	m := l.data
	counter := &countingReader{r: m.Content}
	fail := func(err error, format string, args ...any) error {
		return &FormatError{Input: d.input, Member: m.Name, Offset: m.Offset + arHeaderLen + counter.n, Msg: fmt.Sprintf(format, args...), Err: err}
	}
	dec, release, err := decompress(l.comp, bufio.NewReaderSize(counter, 64<<10))
	if err != nil {
		return fail(err, "opening the compressed stream")
	}
	defer release()
	tr := tar.NewReader(dec)
	regular := map[string]bool{}
	empty := bytes.NewReader(nil)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(truncation(err), "reading the tar stream (compressed bytes read so far: %d)", counter.n)
		}
		p, err := entryPath(h.Name)
		if err != nil {
			return fail(err, "tar entry %q", h.Name)
		}
		e := Entry{Name: h.Name, Path: p, Type: h.Typeflag, Mode: h.Mode, Linkname: h.Linkname}
		var content io.Reader = empty
		switch {
		case isRegular(h.Typeflag):
			if regular[p] {
				return fail(nil, "tar entry %q: %s appears twice", h.Name, p)
			}
			regular[p] = true
			e.Size = h.Size
			content = &tarContent{tr: tr, fail: func(err error) error {
				return fail(truncation(err), "reading %s (compressed bytes read so far: %d)", h.Name, counter.n)
			}}
		case h.Typeflag == tar.TypeLink:
			t, err := entryPath(h.Linkname)
			if err != nil {
				return fail(err, "hard link %q to %q", h.Name, h.Linkname)
			}
			if !regular[t] {
				return fail(nil, "hard link %q: target %q is not an earlier regular file", h.Name, h.Linkname)
			}
			if regular[p] {
				return fail(nil, "tar entry %q: %s appears twice", h.Name, p)
			}
			regular[p] = true
			e.Linkname = t
		}
		if err := fn(e, content); err != nil {
			return err
		}
	}
	if _, err := io.Copy(io.Discard, dec); err != nil {
		return fail(truncation(err), "reading past the end of the tar archive")
	}
	return nil
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

// entryPath turns a tar name ("./usr/bin/x", "usr/bin/x/") into an absolute
// clean path, refusing ".." components.
func entryPath(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty name")
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", errors.New(`name has a ".." component`)
		}
	}
	return path.Clean("/" + name), nil
}

// mergedUsrDirs are the top-level directories usrmerge turns into symlinks
// under /usr (usrmerge's convert-usrmerge).
var mergedUsrDirs = []string{"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libo32", "/libx32"}

// MergedUsrPath maps an absolute package path to where it lives on a
// merged-/usr system: /bin/x → /usr/bin/x, /lib64/y → /usr/lib64/y; other
// paths are returned unchanged.
func MergedUsrPath(p string) string {
	for _, d := range mergedUsrDirs {
		if p == d || strings.HasPrefix(p, d) && p[len(d)] == '/' {
			return "/usr" + p
		}
	}
	return p
}

// Walk yields one digest per regular file and hard link of data.tar, the
// link with its target's digest, sorted by path then digest; symlinks,
// directories and devices are skipped. Paths are merged-/usr mapped (unless
// NoMergedUsr) and written as IMA logs them (digests.IMAPath). When two
// package paths land on one IMA path (a/b and a_b, or /bin/x and /usr/bin/x)
// both digests are yielded, once each if equal. The whole package is read
// before the first yield, so a malformed package yields nothing.
func (d *Deb) Walk(ctx context.Context, yield func(digests.Digest) error) error {
	type rec struct {
		path string
		sum  []byte
	}
	var recs []rec
	sums := map[string][]byte{}
	buf := make([]byte, 256<<10)
	err := d.Data(ctx, func(e Entry, content io.Reader) error {
		switch {
		case e.IsRegular():
			h, err := d.opts.Algorithm.New()
			if err != nil {
				return err
			}
			n, err := io.CopyBuffer(h, content, buf)
			if err != nil {
				return err
			}
			if n != e.Size {
				return fmt.Errorf("deb: %s: %s: read %d of %d bytes", d.input, e.Name, n, e.Size)
			}
			sums[e.Path] = h.Sum(nil)
			if d.opts.Progress != nil {
				d.opts.Progress.Add(1, n)
			}
		case e.Type == tar.TypeLink:
			sums[e.Path] = sums[e.Linkname]
		default:
			return nil
		}
		p := e.Path
		if !d.opts.NoMergedUsr {
			p = MergedUsrPath(p)
		}
		recs = append(recs, rec{path: digests.IMAPath(p), sum: sums[e.Path]})
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(recs, func(a, b rec) int {
		if c := strings.Compare(a.path, b.path); c != 0 {
			return c
		}
		return bytes.Compare(a.sum, b.sum)
	})
	recs = slices.CompactFunc(recs, func(a, b rec) bool { return a.path == b.path && bytes.Equal(a.sum, b.sum) })
	for _, r := range recs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := yield(digests.Digest{Path: r.path, Algorithm: d.opts.Algorithm, Value: r.sum}); err != nil {
			return err
		}
	}
	return nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
