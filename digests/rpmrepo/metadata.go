package rpmrepo

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"crypto/sha1" //nolint:gosec // repomd.xml may name sha1 checksums (old createrepo).
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Size limits on untrusted metadata. repomd.xml is a few KiB in practice;
// Fedora's largest compressed metadata (filelists) is tens of MiB and some
// hundreds once decompressed.
const (
	MaxRepomdSize       = 4 << 20
	MaxMetadataSize     = 512 << 20 // compressed, when repomd gives no <size>
	MaxOpenMetadataSize = 4 << 30   // decompressed, when repomd gives no <open-size>
	MaxSignatureSize    = 64 << 10
)

// repomd is the part of repodata/repomd.xml zest uses.
type repomd struct {
	XMLName  xml.Name   `xml:"http://linux.duke.edu/metadata/repo repomd"`
	Revision string     `xml:"revision"`
	Data     []dataFile `xml:"data"`
}

type checksum struct {
	Type  string `xml:"type,attr"`
	Value string `xml:",chardata"`
}

type dataFile struct {
	Type         string   `xml:"type,attr"`
	Checksum     checksum `xml:"checksum"`
	OpenChecksum checksum `xml:"open-checksum"`
	Location     struct {
		Href string `xml:"href,attr"`
		Base string `xml:"http://www.w3.org/XML/1998/namespace base,attr"`
	} `xml:"location"`
	Size     int64 `xml:"size"`
	OpenSize int64 `xml:"open-size"`
}

// parseRepomd parses repomd.xml and checks the entries zest may use.
func parseRepomd(b []byte, name string) (*repomd, error) {
	if len(b) > MaxRepomdSize {
		return nil, fmt.Errorf("rpmrepo: %s: %d bytes, more than the %d allowed", name, len(b), MaxRepomdSize)
	}
	var md repomd
	d := xml.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&md); err != nil {
		return nil, fmt.Errorf("rpmrepo: %s: line %d: %w", name, lineOf(b, d.InputOffset()), err)
	}
	seen := map[string]bool{}
	for _, f := range md.Data {
		if seen[f.Type] {
			return nil, fmt.Errorf("rpmrepo: %s: two <data type=%q> entries", name, f.Type)
		}
		seen[f.Type] = true
	}
	return &md, nil
}

func lineOf(b []byte, off int64) int {
	if off > int64(len(b)) {
		off = int64(len(b))
	}
	return 1 + bytes.Count(b[:off], []byte{'\n'})
}

// find returns the <data> entry of type t, checked for use, or nil.
func (m *repomd) find(t string) *dataFile {
	for i := range m.Data {
		if m.Data[i].Type == t {
			return &m.Data[i]
		}
	}
	return nil
}

// check validates an entry before anything is downloaded.
func (f *dataFile) check(allowMD5 bool) error {
	if f.Location.Href == "" {
		return fmt.Errorf("<data type=%q> has no location href", f.Type)
	}
	if f.Size < 0 || f.OpenSize < 0 {
		return fmt.Errorf("<data type=%q> has a negative size", f.Type)
	}
	if _, err := newChecksum(f.Checksum, allowMD5); err != nil {
		return fmt.Errorf("<data type=%q> checksum: %w", f.Type, err)
	}
	if f.OpenChecksum.Value != "" {
		if _, err := newChecksum(f.OpenChecksum, allowMD5); err != nil {
			return fmt.Errorf("<data type=%q> open-checksum: %w", f.Type, err)
		}
	}
	return nil
}

// ErrChecksum reports metadata whose bytes do not match repomd.xml.
var ErrChecksum = errors.New("checksum mismatch")

// checker hashes bytes and compares them to an expected checksum.
type checker struct {
	h    hash.Hash
	typ  string
	want []byte
}

func newChecksum(c checksum, allowMD5 bool) (*checker, error) {
	var h hash.Hash
	switch t := strings.ToLower(c.Type); t {
	case "sha", "sha1":
		h = sha1.New() //nolint:gosec
	case "sha224":
		h = sha256.New224()
	case "sha256":
		h = sha256.New()
	case "sha384":
		h = sha512.New384()
	case "sha512":
		h = sha512.New()
	case "md5":
		if !allowMD5 {
			return nil, errors.New("md5 checksums are refused unless AllowMD5 is set")
		}
		h = md5New()
	default:
		return nil, fmt.Errorf("unsupported checksum type %q", c.Type)
	}
	want, err := hex.DecodeString(strings.TrimSpace(c.Value))
	if err != nil || len(want) != h.Size() {
		return nil, fmt.Errorf("%s checksum %q is not %d hex bytes", c.Type, strings.TrimSpace(c.Value), h.Size())
	}
	return &checker{h: h, typ: strings.ToLower(c.Type), want: want}, nil
}

func (c *checker) Write(p []byte) (int, error) { return c.h.Write(p) }

func (c *checker) verify(what string) error {
	got := c.h.Sum(nil)
	if !bytes.Equal(got, c.want) {
		return fmt.Errorf("rpmrepo: %s: %s %x, repomd.xml says %x: %w", what, c.typ, got, c.want, ErrChecksum)
	}
	return nil
}

// Compression magics; detection is by content, never by file name
// (createrepo_c's default changed from gz to zst at 1.0).
var (
	magicGzip  = []byte{0x1f, 0x8b}
	magicXZ    = []byte{0xfd, '7', 'z', 'X', 'Z', 0}
	magicZstd  = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicBzip2 = []byte("BZh")
	magicZck   = []byte("\x00ZCK1")
)

// decompress returns a reader of b's decompressed content, capped at limit
// bytes (reading more is an error), and a close function.
func decompress(b []byte, limit int64, name string) (io.Reader, func(), error) {
	var r io.Reader
	closeFn := func() {}
	switch {
	case bytes.HasPrefix(b, magicGzip):
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, nil, fmt.Errorf("rpmrepo: %s: gzip: %w", name, err)
		}
		r = zr
	case bytes.HasPrefix(b, magicXZ):
		zr, err := xz.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, nil, fmt.Errorf("rpmrepo: %s: xz: %w", name, err)
		}
		r = zr
	case bytes.HasPrefix(b, magicZstd):
		zr, err := zstd.NewReader(bytes.NewReader(b), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<30))
		if err != nil {
			return nil, nil, fmt.Errorf("rpmrepo: %s: zstd: %w", name, err)
		}
		r, closeFn = zr, zr.Close
	case bytes.HasPrefix(b, magicBzip2):
		r = bzip2.NewReader(bytes.NewReader(b))
	case bytes.HasPrefix(b, magicZck):
		return nil, nil, fmt.Errorf("rpmrepo: %s: zchunk metadata is not supported", name)
	default:
		r = bytes.NewReader(b)
	}
	return &capReader{r: r, left: limit, name: name}, closeFn, nil
}

// capReader fails once more than left bytes are read.
type capReader struct {
	r    io.Reader
	left int64
	name string
}

func (c *capReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return n, fmt.Errorf("rpmrepo: %s: decompresses to more than repomd.xml's open-size or the limit", c.name)
	}
	return n, err
}

// pkgRef is one binary package as primary.xml lists it.
type pkgRef struct {
	Name, Arch, EVR string
	ChecksumType    string
	Checksum        string // lower-case hex of the whole .rpm (pkgid)
	Href, Base      string
	HeaderEnd       int64 // rpm:header-range end: where the payload starts
}

type xmlPackage struct {
	Type    string `xml:"type,attr"`
	Name    string `xml:"name"`
	Arch    string `xml:"arch"`
	Version struct {
		Epoch string `xml:"epoch,attr"`
		Ver   string `xml:"ver,attr"`
		Rel   string `xml:"rel,attr"`
	} `xml:"version"`
	Checksum checksum `xml:"checksum"`
	Location struct {
		Href string `xml:"href,attr"`
		Base string `xml:"http://www.w3.org/XML/1998/namespace base,attr"`
	} `xml:"location"`
	HeaderRange struct {
		Start int64 `xml:"start,attr"`
		End   int64 `xml:"end,attr"`
	} `xml:"format>header-range"`
}

// MaxHeaderSize bounds rpm:header-range end. librpm caps a header's
// index at 0x10000 entries and its data at 256 MiB (hdrchkTags/Data); real
// headers are well under 64 MiB.
const MaxHeaderSize = 64 << 20

func isSourceArch(a string) bool { return a == "src" || a == "nosrc" }

// parsePrimary streams primary.xml and returns its binary packages in
// document order, skipping source packages.
func parsePrimary(r io.Reader, name string) ([]pkgRef, error) {
	d := xml.NewDecoder(bufio.NewReaderSize(r, 64<<10))
	var out []pkgRef
	sawRoot := false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("rpmrepo: %s: offset %d: %w", name, d.InputOffset(), err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if !sawRoot {
			if se.Name.Local != "metadata" || se.Name.Space != "http://linux.duke.edu/metadata/common" {
				return nil, fmt.Errorf("rpmrepo: %s: root element is %s %q, want metadata in http://linux.duke.edu/metadata/common", name, se.Name.Local, se.Name.Space)
			}
			sawRoot = true
			continue
		}
		if se.Name.Local != "package" {
			if err := d.Skip(); err != nil {
				return nil, fmt.Errorf("rpmrepo: %s: offset %d: %w", name, d.InputOffset(), err)
			}
			continue
		}
		off := d.InputOffset()
		var p xmlPackage
		if err := d.DecodeElement(&p, &se); err != nil {
			return nil, fmt.Errorf("rpmrepo: %s: package at offset %d: %w", name, off, err)
		}
		if p.Type != "rpm" || isSourceArch(p.Arch) {
			continue
		}
		ref := pkgRef{
			Name: p.Name, Arch: p.Arch,
			EVR:          p.Version.Epoch + ":" + p.Version.Ver + "-" + p.Version.Rel,
			ChecksumType: strings.ToLower(p.Checksum.Type),
			Checksum:     strings.ToLower(strings.TrimSpace(p.Checksum.Value)),
			Href:         p.Location.Href, Base: p.Location.Base,
			HeaderEnd: p.HeaderRange.End,
		}
		where := fmt.Sprintf("rpmrepo: %s: package %q at offset %d", name, p.Name, off)
		if ref.Href == "" {
			return nil, fmt.Errorf("%s: no location href", where)
		}
		if _, err := newChecksum(checksum{Type: ref.ChecksumType, Value: ref.Checksum}, true); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if p.HeaderRange.Start <= 0 || ref.HeaderEnd <= p.HeaderRange.Start || ref.HeaderEnd > MaxHeaderSize {
			return nil, fmt.Errorf("%s: bad rpm:header-range %d-%d", where, p.HeaderRange.Start, ref.HeaderEnd)
		}
		out = append(out, ref)
	}
	if !sawRoot {
		return nil, fmt.Errorf("rpmrepo: %s: no root element", name)
	}
	return out, nil
}

// extFile is one file with a digest from filelists-ext.
type extFile struct {
	Path string
	Alg  string // the package's <checksum type>
	Hash string
}

type xmlExtPackage struct {
	Name     string `xml:"name,attr"`
	Arch     string `xml:"arch,attr"`
	Checksum struct {
		Type string `xml:"type,attr"`
	} `xml:"checksum"`
	Files []struct {
		Type string `xml:"type,attr"`
		Hash string `xml:"hash,attr"`
		Path string `xml:",chardata"`
	} `xml:"file"`
}

const nsFilelistsExt = "http://linux.duke.edu/metadata/filelists-ext"

// parseFilelistsExt streams filelists-ext.xml and calls fn for every
// regular file with a hash in a binary package.
func parseFilelistsExt(r io.Reader, name string, fn func(pkg string, f extFile) error) (int, error) {
	d := xml.NewDecoder(bufio.NewReaderSize(r, 64<<10))
	sawRoot := false
	n := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return n, fmt.Errorf("rpmrepo: %s: offset %d: %w", name, d.InputOffset(), err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		if !sawRoot {
			if se.Name.Local != "filelists-ext" || se.Name.Space != nsFilelistsExt {
				return n, fmt.Errorf("rpmrepo: %s: root element is %s %q, want filelists-ext in %s", name, se.Name.Local, se.Name.Space, nsFilelistsExt)
			}
			sawRoot = true
			continue
		}
		if se.Name.Local != "package" {
			if err := d.Skip(); err != nil {
				return n, fmt.Errorf("rpmrepo: %s: offset %d: %w", name, d.InputOffset(), err)
			}
			continue
		}
		off := d.InputOffset()
		var p xmlExtPackage
		if err := d.DecodeElement(&p, &se); err != nil {
			return n, fmt.Errorf("rpmrepo: %s: package at offset %d: %w", name, off, err)
		}
		if isSourceArch(p.Arch) {
			continue
		}
		n++
		for _, f := range p.Files {
			if f.Hash == "" || f.Type == "dir" || f.Type == "ghost" {
				continue
			}
			if err := fn(p.Name+"."+p.Arch, extFile{Path: f.Path, Alg: p.Checksum.Type, Hash: f.Hash}); err != nil {
				return n, fmt.Errorf("rpmrepo: %s: package %q at offset %d: %w", name, p.Name, off, err)
			}
		}
	}
	if !sawRoot {
		return n, fmt.Errorf("rpmrepo: %s: no root element", name)
	}
	return n, nil
}
