package deb

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/zest-attest/zest/digests"
)

// The fixtures and expected digests come from fixtures/deb/gen.sh:
// dpkg-deb --build, then dpkg-deb -x + sha256sum/sha512sum.
const fixtures = "../../fixtures/deb"

func fixture(name string) string { return filepath.Join(fixtures, name) }

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(fixture(name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// expected reads a sha*sum listing and returns sorted "path hex" lines, with
// the merged-/usr mapping applied when merged and spaces written as IMA does.
func expected(t *testing.T, name string, merged bool) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(readFixture(t, name))), "\n") {
		sum, p, ok := strings.Cut(l, "  ")
		if !ok {
			t.Fatalf("%s: bad line %q", name, l)
		}
		if merged {
			for _, d := range []string{"/bin/", "/sbin/", "/lib/", "/lib32/", "/lib64/", "/libo32/", "/libx32/"} {
				if strings.HasPrefix(p, d) {
					p = "/usr" + p
				}
			}
		}
		out = append(out, strings.ReplaceAll(p, " ", "_")+" "+sum)
	}
	slices.Sort(out)
	return out
}

func walkAll(src digests.Source) ([]digests.Digest, error) {
	var got []digests.Digest
	err := src.Walk(context.Background(), func(d digests.Digest) error {
		got = append(got, d)
		return nil
	})
	return got, err
}

func lines(t *testing.T, ds []digests.Digest, alg digests.Algorithm) []string {
	t.Helper()
	var out []string
	for _, d := range ds {
		if d.Algorithm != alg || d.Signature != nil {
			t.Errorf("%s: algorithm %s, signature %x", d.Path, d.Algorithm, d.Signature)
		}
		out = append(out, d.Path+" "+hex.EncodeToString(d.Value))
	}
	return out
}

type counter struct{ files, bytes atomic.Int64 }

func (c *counter) Add(files, bytes int64) { c.files.Add(files); c.bytes.Add(bytes) }

// realDeb is a package as Debian publishes it (bookworm's bzip2: hard
// links, symlinks, files under /bin); gen.sh fetched it with apt-get
// download.
const realDeb = "debian/bzip2_1.0.8-5+b1_amd64"

var packages = []struct{ name, data, expected string }{
	{"xz", "data.tar.xz", "xz.sha256"},
	{"zstd", "data.tar.zst", "zstd.sha256"},
	{"gzip", "data.tar.gz", "gzip.sha256"},
	{"none", "data.tar", "none.sha256"},
	{"bzip2", "data.tar.bz2", "bzip2.sha256"},
	{realDeb, "data.tar.xz", "debian/bzip2.sha256"},
}

func TestFixtures(t *testing.T) {
	for _, p := range packages {
		for _, merged := range []bool{true, false} {
			name := p.name
			if !merged {
				name += "/no-merged-usr"
			}
			t.Run(name, func(t *testing.T) {
				var c counter
				d, err := New(fixture(p.name+".deb"), Options{Algorithm: digests.SHA256, NoMergedUsr: !merged, Progress: &c})
				if err != nil {
					t.Fatal(err)
				}
				if d.DataMember() != p.data || d.Version() != "2.0" {
					t.Errorf("data member %q, version %q", d.DataMember(), d.Version())
				}
				got, err := walkAll(d)
				if err != nil {
					t.Fatal(err)
				}
				// Walk's order is the sorted order; the expected lines sort
				// the same way because no path is a prefix-with-space of another.
				if g, w := lines(t, got, digests.SHA256), expected(t, p.expected, merged); !slices.Equal(g, w) {
					t.Errorf("got\n%s\nwant\n%s", strings.Join(g, "\n"), strings.Join(w, "\n"))
				}
				if !slices.IsSortedFunc(got, func(a, b digests.Digest) int { return strings.Compare(a.Path, b.Path) }) {
					t.Error("not sorted")
				}
				// Hard links are not hashed again: one in each
				// zest-fixture package, two in Debian's bzip2.
				links := int64(1)
				if p.name == realDeb {
					links = 2
				}
				if c.files.Load() != int64(len(got))-links {
					t.Errorf("progress: %d files for %d digests", c.files.Load(), len(got))
				}
			})
		}
	}
}

func TestSHA512(t *testing.T) {
	d, err := New(fixture("xz.deb"), Options{Algorithm: digests.SHA512, NoMergedUsr: true})
	if err != nil {
		t.Fatal(err)
	}
	got, err := walkAll(d)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := lines(t, got, digests.SHA512), expected(t, "sha512.expected", false); !slices.Equal(g, w) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(g, "\n"), strings.Join(w, "\n"))
	}
}

func TestNoAlgorithm(t *testing.T) {
	for _, a := range []digests.Algorithm{"", digests.SM3, "crc32"} {
		if _, err := New(fixture("xz.deb"), Options{Algorithm: a}); err == nil {
			t.Errorf("algorithm %q accepted", a)
		}
	}
}

func TestData(t *testing.T) {
	d, err := New(fixture("zstd.deb"), Options{Algorithm: digests.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var hello, lib []byte
	err = d.Data(context.Background(), func(e Entry, r io.Reader) error {
		names = append(names, string(e.Type)+" "+e.Path+" "+e.Linkname)
		switch e.Path {
		case "/usr/bin/zest-hello":
			hello, err = io.ReadAll(r)
			return err
		case "/lib/x86_64-linux-gnu/libzest.so.1":
			b := make([]byte, 6) // a partial read: the rest is skipped
			_, err := io.ReadFull(r, b)
			lib = b
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if string(hello) != "#!/bin/sh\necho hello from zest\n" || string(lib) != "1\n2\n3\n" {
		t.Errorf("content %q, %q", hello, lib)
	}
	for _, w := range []string{
		"1 /usr/share/zest/hello-hardlink /usr/bin/zest-hello",
		"2 /usr/bin/zest-hi zest-hello",
		"5 /usr/share/zest/empty-dir ",
		"5 / ",
	} {
		if !slices.Contains(names, w) {
			t.Errorf("no entry %q in %q", w, names)
		}
	}
	stop := errors.New("stop")
	if err := d.Data(context.Background(), func(Entry, io.Reader) error { return stop }); err != stop {
		t.Errorf("callback error: %v", err)
	}
}

func TestBroken(t *testing.T) {
	xz := readFixture(t, "xz.deb")
	edit := func(f func(b []byte) []byte) []byte { return f(slices.Clone(xz)) }
	// dataOff is where data.tar.xz's member header starts.
	var dataOff int
	ar, err := NewArReader(bytes.NewReader(xz), int64(len(xz)), "xz.deb")
	for err == nil {
		var m *ArMember
		if m, err = ar.Next(); err == nil && m.Name == "data.tar.xz" {
			dataOff = int(m.Offset)
		}
	}
	if dataOff == 0 {
		t.Fatal("no data.tar.xz in xz.deb")
	}
	tests := []struct {
		name string
		data []byte
		want []string // substrings of the error
	}{
		{"truncated", readFixture(t, "truncated.deb"), []string{`member "data.tar.xz" at offset`, "only", "truncated"}},
		{"corrupt", readFixture(t, "corrupt.deb"), []string{`member "data.tar.xz"`}},
		{"empty", nil, []string{"too short"}},
		{"magic", edit(func(b []byte) []byte { b[1] = 'X'; return b }), []string{"bad ar magic"}},
		{"size", edit(func(b []byte) []byte { copy(b[8+48:], "99999999  "); return b }), []string{`member "debian-binary" at offset 8`}},
		{"size-not-a-number", edit(func(b []byte) []byte { copy(b[8+48:], "-4        "); return b }), []string{"size field"}},
		{"version", edit(func(b []byte) []byte { b[68] = '3'; return b }), []string{"version"}},
		{"order", edit(func(b []byte) []byte { copy(b[8:], "control.tar.xz  "); return b }), []string{"first member is not debian-binary"}},
		{"no-data", xz[:dataOff], []string{"no data.tar member"}},
		{"trailer", edit(func(b []byte) []byte { b[dataOff+60+4] ^= 0xff; return b }), []string{"data.tar.xz"}},
		{"suffix", edit(func(b []byte) []byte { copy(b[dataOff:], "data.tar.gz "); return b }), []string{"magic"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := Load(bytes.NewReader(tt.data), int64(len(tt.data)), tt.name+".deb", Options{Algorithm: digests.SHA256})
			var n int
			if err == nil {
				err = d.Walk(context.Background(), func(digests.Digest) error { n++; return nil })
			}
			if err == nil {
				t.Fatal("no error")
			}
			if n != 0 {
				t.Errorf("%d digests yielded before the error", n)
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Errorf("not a FormatError: %v", err)
			}
			for _, w := range append(tt.want, tt.name+".deb") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestTarPaths builds uncompressed packages with hostile tar streams.
func TestTarPaths(t *testing.T) {
	tests := []struct {
		name    string
		entries []tar.Header
		want    string
	}{
		{"dotdot", []tar.Header{{Name: "./usr/../../etc/x", Typeflag: tar.TypeReg}}, `".." component`},
		{"dangling-link", []tar.Header{{Name: "./a", Typeflag: tar.TypeLink, Linkname: "./b"}}, "not an earlier regular file"},
		{"link-to-dir", []tar.Header{{Name: "./d/", Typeflag: tar.TypeDir}, {Name: "./a", Typeflag: tar.TypeLink, Linkname: "./d"}}, "not an earlier regular file"},
		{"twice", []tar.Header{{Name: "./a", Typeflag: tar.TypeReg}, {Name: "a", Typeflag: tar.TypeReg}}, "appears twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := buildDeb(t, tt.entries, nil)
			d, err := Load(bytes.NewReader(raw), int64(len(raw)), "x.deb", Options{Algorithm: digests.SHA256})
			if err != nil {
				t.Fatal(err)
			}
			_, err = walkAll(d)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
}

// TestCollisions: two package paths on one IMA path give both digests, and
// equal ones once.
func TestCollisions(t *testing.T) {
	raw := buildDeb(t, []tar.Header{
		{Name: "./bin/x", Typeflag: tar.TypeReg, Size: 1},
		{Name: "./usr/bin/x", Typeflag: tar.TypeReg, Size: 1},
		{Name: "./a b", Typeflag: tar.TypeReg, Size: 1},
		{Name: "./a_b", Typeflag: tar.TypeReg, Size: 1},
	}, []string{"1", "1", "2", "3"})
	d, err := Load(bytes.NewReader(raw), int64(len(raw)), "x.deb", Options{Algorithm: digests.SHA1})
	if err != nil {
		t.Fatal(err)
	}
	got, err := walkAll(d)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, g := range got {
		paths = append(paths, g.Path)
	}
	if want := []string{"/a_b", "/a_b", "/usr/bin/x"}; !slices.Equal(paths, want) {
		t.Errorf("paths %q, want %q", paths, want)
	}
}

func TestMergedUsrPath(t *testing.T) {
	for in, want := range map[string]string{
		"/bin/sh": "/usr/bin/sh", "/sbin/init": "/usr/sbin/init", "/lib/x/y": "/usr/lib/x/y",
		"/lib64/ld.so": "/usr/lib64/ld.so", "/libx32/z": "/usr/libx32/z", "/lib32/z": "/usr/lib32/z",
		"/libexec/z": "/libexec/z", "/binary": "/binary", "/usr/bin/sh": "/usr/bin/sh", "/etc/bin/x": "/etc/bin/x",
	} {
		if got := MergedUsrPath(in); got != want {
			t.Errorf("MergedUsrPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// buildDeb writes a .deb with an uncompressed data.tar of the given entries
// (contents[i] for entry i, if any), members laid out as dpkg-deb does.
func buildDeb(t testing.TB, entries []tar.Header, contents []string) []byte {
	t.Helper()
	var data bytes.Buffer
	tw := tar.NewWriter(&data)
	for i, h := range entries {
		h.Mode = 0o644
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if i < len(contents) {
			if _, err := tw.Write([]byte(contents[i])); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return arArchive(t, "debian-binary", []byte("2.0\n"), "control.tar", make([]byte, 1024), "data.tar", data.Bytes())
}

func arArchive(t testing.TB, nameContent ...any) []byte {
	t.Helper()
	var b bytes.Buffer
	b.WriteString(arMagic)
	for i := 0; i < len(nameContent); i += 2 {
		name, content := nameContent[i].(string), nameContent[i+1].([]byte)
		hdr := []byte(strings.Repeat(" ", 58) + "`\n")
		copy(hdr, name)
		copy(hdr[16:], "0")
		copy(hdr[28:], "0")
		copy(hdr[34:], "0")
		copy(hdr[40:], "100644")
		copy(hdr[48:], strconv.Itoa(len(content)))
		b.Write(hdr)
		b.Write(content)
		if len(content)%2 == 1 {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}
