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

// memberIter yields ar members with a reader of their content, or io.EOF.
type memberIter func() (*ArMember, io.Reader, error)

// readLayout walks the ar members of an archive of known size.
func readLayout(r io.ReaderAt, size int64, input string) (layout, error) {
	ar, err := NewArReader(r, size, input)
	if err != nil {
		return layout{}, err
	}
	next := func() (*ArMember, io.Reader, error) {
		m, err := ar.Next()
		if err != nil {
			return nil, nil, err
		}
		return m, m.Content, nil
	}
	l, _, err := walkLayout(next, input, func() int64 { return ar.off })
	return l, err
}

// walkLayout walks the ar members as dpkg-deb does (deb(5)): debian-binary
// first, with major version 2; then control.tar*, then data.tar*; members
// whose names start with '_' may come between them and are skipped. It
// stops at data.tar and returns its content reader; what follows it is not
// read. offset reports where the iterator is, for errors.
func walkLayout(next memberIter, input string, offset func() int64) (layout, io.Reader, error) {
	var l layout
	m, content, err := next()
	if err == io.EOF {
		return l, nil, &FormatError{Input: input, Offset: 8, Msg: "empty ar archive", Err: ErrTruncated}
	}
	if err != nil {
		return l, nil, err
	}
	fail := func(m *ArMember, format string, args ...any) error {
		return &FormatError{Input: input, Member: m.Name, Offset: m.Offset, Msg: fmt.Sprintf(format, args...)}
	}
	if m.Name != "debian-binary" {
		return l, nil, fail(m, "first member is not debian-binary")
	}
	if m.Size > 1024 {
		return l, nil, fail(m, "debian-binary is %d bytes", m.Size)
	}
	v := make([]byte, m.Size)
	if _, err := io.ReadFull(content, v); err != nil {
		return l, nil, &FormatError{Input: input, Member: m.Name, Offset: m.Offset, Msg: "reading", Err: truncation(err)}
	}
	line, _, ok := bytes.Cut(v, []byte("\n"))
	if !ok {
		return l, nil, fail(m, "debian-binary %q has no newline", v)
	}
	major, _, _ := strings.Cut(string(line), ".")
	if major != "2" {
		return l, nil, fail(m, "unsupported package format version %q (want 2.x)", line)
	}
	l.version = string(line)
	for {
		m, content, err := next()
		if err == io.EOF {
			what := "control.tar"
			if l.control != nil {
				what = "data.tar"
			}
			return l, nil, &FormatError{Input: input, Offset: offset(), Msg: "no " + what + " member", Err: ErrTruncated}
		}
		if err != nil {
			return l, nil, err
		}
		switch {
		case strings.HasPrefix(m.Name, "_"):
			continue
		case l.control == nil:
			if !strings.HasPrefix(m.Name, "control.tar") {
				return l, nil, fail(m, "want control.tar*")
			}
			if _, ok := parseCompression(m.Name, "control.tar"); !ok {
				return l, nil, fail(m, "unsupported control.tar compression")
			}
			l.control = m
		default:
			if !strings.HasPrefix(m.Name, "data.tar") {
				return l, nil, fail(m, "want data.tar*")
			}
			c, ok := parseCompression(m.Name, "data.tar")
			if !ok {
				return l, nil, fail(m, "unsupported data.tar compression")
			}
			l.data, l.comp = m, c
			return l, content, nil
		}
	}
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

// Data calls fn for every entry of data.tar, in archive order, with a
// reader of the entry's content (empty but for regular files; fn need not
// read it all). It is Reader's Next loop over the package; see Reader for
// what is checked.
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
	dr, err := newReader(d.input, l, l.data.Content)
	if err != nil {
		return err
	}
	defer dr.Close()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		e, err := dr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(*e, dr); err != nil {
			return err
		}
	}
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
