package initrd

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/zest-attest/zest/digests"
	"github.com/zest-attest/zest/digests/cpio"
)

const fixtures = "../../fixtures/initrd"

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// expected reads sha256sum/sha1sum output written by gen.sh over the source
// trees ("<hex>  /path") and returns "path hex" lines as IMA names them.
func expected(t *testing.T, names ...string) []string {
	t.Helper()
	var out []string
	for _, name := range names {
		for _, line := range strings.Split(strings.TrimSuffix(string(fixture(t, name)), "\n"), "\n") {
			sum, p, ok := strings.Cut(line, "  ")
			if !ok {
				t.Fatalf("%s: bad line %q", name, line)
			}
			out = append(out, digests.IMAPath(p)+" "+sum)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// collect runs Read and returns "path hex" lines in yield order.
func collect(t *testing.T, data []byte, name string, opts Options) ([]string, error) {
	t.Helper()
	var got []string
	err := Read(context.Background(), bytes.NewReader(data), name, opts, func(d digests.Digest) error {
		if d.Algorithm != opts.Algorithm || len(d.Value) != opts.Algorithm.Size() {
			t.Errorf("%s: digest %+v", d.Path, d)
		}
		got = append(got, d.Path+" "+hex.EncodeToString(d.Value))
		return nil
	})
	return got, err
}

func TestFixtures(t *testing.T) {
	sha256 := Options{Algorithm: digests.SHA256}
	early := Options{Algorithm: digests.SHA256, IncludeEarly: true}
	for _, tc := range []struct {
		file string
		opts Options
		want []string // expected-digest files from gen.sh
	}{
		{"initrd-gzip.img", sha256, []string{"main.sha256"}},
		{"initrd-gzip.img", Options{Algorithm: digests.SHA1}, []string{"main.sha1"}},
		{"initrd-gzip.img", early, []string{"main.sha256", "early.sha256"}},
		{"initrd-xz.img", sha256, []string{"main.sha256"}},
		{"initrd-xz.img", Options{Algorithm: digests.SHA1, IncludeEarly: true}, []string{"main.sha1", "early.sha1"}},
		{"initrd-zstd.img", sha256, []string{"main.sha256"}},
		{"initrd-lz4.img", sha256, []string{"main.sha256"}},
		{"initrd-bzip2.img", sha256, []string{"main.sha256"}},
		{"initrd-lzma.img", sha256, []string{"main.sha256"}},
		// A lone uncompressed archive is the main archive, not early.
		{"main.cpio", sha256, []string{"main.sha256"}},
		{"main-crc.cpio", sha256, []string{"main.sha256"}},
		{"early.cpio", sha256, []string{"early.sha256"}},
		{"initrd-gzip2.img", sha256, []string{"gzip2.sha256"}},
		{"initrd-mixed.img", sha256, []string{"mixed.sha256"}},
		{"initrd-mixed.img", early, []string{"mixed.sha256", "early.sha256"}},
	} {
		t.Run(fmt.Sprintf("%s/%s/early=%v", tc.file, tc.opts.Algorithm, tc.opts.IncludeEarly), func(t *testing.T) {
			got, err := collect(t, fixture(t, tc.file), tc.file, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			want := expected(t, tc.want...)
			if !slices.Equal(got, want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// TestSegmentEnds checks that every decoder stops exactly at the end of its
// segment: a cpio archive placed right after a compressed stream (at an
// aligned offset) must be found and read.
func TestSegmentEnds(t *testing.T) {
	tail := fixture(t, "early.cpio")
	for _, file := range []string{"initrd-gzip.img", "initrd-xz.img", "initrd-zstd.img", "initrd-bzip2.img", "initrd-lzma.img"} {
		t.Run(file, func(t *testing.T) {
			data := fixture(t, file)
			data = append(data, make([]byte, (4-len(data)%4)%4)...)
			data = append(data, tail...)
			got, err := collect(t, data, file, Options{Algorithm: digests.SHA256})
			if err != nil {
				t.Fatal(err)
			}
			want := expected(t, "main.sha256", "early.sha256")
			if !slices.Equal(got, want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
	// With no padding, the trailing archive of an odd-length image is
	// misaligned; the kernel (and zest) refuse it.
	data := append(fixture(t, "initrd-gzip.img"), tail...)
	_, err := collect(t, data, "x", Options{Algorithm: digests.SHA256})
	var e *Error
	if !errors.As(err, &e) || e.Segment != 3 || e.Format != "cpio" || e.Offset != int64(len(data)-len(tail)) {
		t.Errorf("misaligned archive: %v", err)
	}
}

func TestErrors(t *testing.T) {
	earlyLen := int64(len(fixture(t, "early.cpio")))
	gz := fixture(t, "initrd-gzip.img")
	gzBadCRC := bytes.Clone(gz)
	gzBadCRC[len(gzBadCRC)-8] ^= 1 // gzip trailer: CRC32, ISIZE
	var junk bytes.Buffer
	zw := gzip.NewWriter(&junk)
	zw.Write([]byte("hello, not a cpio archive"))
	zw.Close()

	for _, tc := range []struct {
		name    string
		data    []byte
		opts    Options
		segment int
		format  string
		offset  int64
		is      error
		msg     string // prefix of the message
	}{
		{name: "truncated gzip", data: fixture(t, "initrd-gzip-truncated.img"),
			segment: 2, format: "gzip", offset: earlyLen, is: io.ErrUnexpectedEOF,
			msg: fmt.Sprintf("initrd truncated gzip: segment 2 (gzip at offset %d): ", earlyLen)},
		{name: "gzip checksum", data: gzBadCRC, segment: 2, format: "gzip", offset: earlyLen, is: gzip.ErrChecksum},
		{name: "lzo", data: fixture(t, "initrd-lzo.img"), segment: 2, format: "lzo", offset: earlyLen, is: ErrUnsupported},
		{name: "lz4 frame format", data: append(fixture(t, "early.cpio"), 0x04, 0x22, 0x4d, 0x18, 0x64, 0x40, 0xa7),
			segment: 2, format: "lz4 frame", offset: earlyLen, is: ErrUnsupported},
		{name: "junk after gzip", data: append(bytes.Clone(gz), "junk"...),
			segment: 3, format: "unknown", offset: int64(len(gz)),
			msg: fmt.Sprintf("initrd junk after gzip: segment 3 (unknown at offset %d): unknown magic 6a 75 6e 6b", len(gz))},
		{name: "gzip of junk", data: junk.Bytes(), segment: 1, format: "gzip",
			msg: "initrd gzip of junk: segment 1 (gzip at offset 0): decompressed data at offset 0: byte 0x68 is not the start of a cpio header"},
		{name: "decompression limit", data: gz, opts: Options{MaxDecompressed: 100 << 10},
			segment: 2, format: "gzip", offset: earlyLen, is: ErrTooLarge},
		{name: "empty", data: nil, is: ErrNoArchive, msg: "initrd empty: no cpio archive found"},
		{name: "zeros", data: make([]byte, 4096), is: ErrNoArchive},
		{name: "cpio error", data: fixture(t, "main.cpio")[:5000], segment: 1, format: "cpio", is: io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			opts.Algorithm = digests.SHA256
			got, err := collect(t, tc.data, tc.name, opts)
			if err == nil {
				t.Fatal("no error")
			}
			if len(got) != 0 {
				t.Errorf("%d digests yielded before the error", len(got))
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("%v (%T) is not an *Error", err, err)
			}
			if e.File != tc.name || e.Segment != tc.segment || e.Offset != tc.offset || (tc.format != "" && e.Format != tc.format) {
				t.Errorf("got file %q segment %d (%s at %d), want %q segment %d (%s at %d): %v",
					e.File, e.Segment, e.Format, e.Offset, tc.name, tc.segment, tc.format, tc.offset, err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("%v is not %v", err, tc.is)
			}
			if !strings.HasPrefix(err.Error(), tc.msg) {
				t.Errorf("message %q, want prefix %q", err, tc.msg)
			}
		})
	}
}

// TestTruncations cuts every compressed fixture at several places: the
// result must be an error, never a partial success.
func TestTruncations(t *testing.T) {
	earlyLen := len(fixture(t, "early.cpio"))
	for _, file := range []string{"initrd-gzip.img", "initrd-xz.img", "initrd-zstd.img", "initrd-lz4.img",
		"initrd-bzip2.img", "initrd-lzma.img", "initrd-gzip2.img"} {
		data := fixture(t, file)
		for _, cut := range []int{earlyLen + 1, earlyLen + 10, (earlyLen + len(data)) / 2, len(data) - 5, len(data) - 1} {
			if _, err := collect(t, data[:cut], file, Options{Algorithm: digests.SHA256}); err == nil {
				t.Errorf("%s cut at %d of %d: no error", file, cut, len(data))
			}
		}
	}
}

// newc builds archives for the hard-link and overwrite rules, which need
// entries in orders no tool writes.
type newc struct{ bytes.Buffer }

func (w *newc) add(name string, mode, nlink, ino uint32, data string) {
	start := w.Len()
	fmt.Fprintf(w, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	w.WriteString(name + "\x00")
	for (w.Len()-start)%4 != 0 {
		w.WriteByte(0)
	}
	w.WriteString(data)
	for w.Len()%4 != 0 {
		w.WriteByte(0)
	}
}

func (w *newc) end() []byte {
	w.add(cpio.Trailer, 0, 1, 0, "")
	return w.Bytes()
}

const (
	reg = cpio.TypeReg | 0o644
	dir = cpio.TypeDir | 0o755
	lnk = cpio.TypeSymlink | 0o777
)

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestKernelRules(t *testing.T) {
	type ent struct {
		name        string
		mode, nlink uint32
		ino         uint32
		data        string
	}
	for _, tc := range []struct {
		name     string
		archives [][]ent // each is a separate archive in one gzip stream
		want     []string
	}{
		{"link data on the last name", [][]ent{{
			{"a", reg, 2, 7, ""}, {"b", reg, 2, 7, "X"},
		}}, []string{"/a " + sum("X"), "/b " + sum("X")}},
		{"link data on the first name", [][]ent{{
			{"a", reg, 2, 7, "X"}, {"b", reg, 2, 7, ""},
		}}, []string{"/a " + sum("X"), "/b " + sum("X")}},
		{"links are per archive", [][]ent{
			{{"a", reg, 2, 7, "X"}},
			{{"b", reg, 2, 7, ""}},
		}, []string{"/a " + sum("X"), "/b " + sum("")}},
		{"overwrite through a link", [][]ent{
			{{"a", reg, 2, 7, ""}, {"b", reg, 2, 7, "X"}},
			{{"a", reg, 1, 9, "Y"}},
		}, []string{"/a " + sum("Y"), "/b " + sum("Y")}},
		{"later archive replaces", [][]ent{
			{{"etc/f", reg, 1, 1, "old"}},
			{{"./etc/f", reg, 1, 1, "new"}},
		}, []string{"/etc/f " + sum("new")}},
		{"symlink and directory replace a file", [][]ent{
			{{"f", reg, 1, 1, "x"}, {"g", reg, 1, 2, "y"}, {"h", reg, 1, 3, "z"}},
			{{"f", lnk, 1, 4, "target"}, {"g", dir, 2, 5, ""}, {"h", dir, 2, 6, "data"}},
		}, []string{"/h " + sum("z")}},
		{"names", [][]ent{{
			{".", dir, 2, 1, ""}, {"/abs", reg, 1, 2, "1"}, {"./dot", reg, 1, 3, "2"},
			{"a/../up", reg, 1, 4, "3"}, {"..", reg, 1, 5, "4"},
		}}, []string{"/abs " + sum("1"), "/dot " + sum("2"), "/up " + sum("3")}},
		{"spaces", [][]ent{{
			{"x y", reg, 1, 1, "same"}, {"x_y", reg, 1, 2, "same"},
			{"p q", reg, 1, 3, "a"}, {"p_q", reg, 1, 4, "b"},
		}}, slices.Sorted(slices.Values([]string{"/x_y " + sum("same"), "/p_q " + sum("a"), "/p_q " + sum("b")}))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var raw bytes.Buffer
			for _, a := range tc.archives {
				var w newc
				for _, e := range a {
					w.add(e.name, e.mode, e.nlink, e.ino, e.data)
				}
				raw.Write(w.end())
			}
			var z bytes.Buffer
			zw := gzip.NewWriter(&z)
			zw.Write(raw.Bytes())
			zw.Close()
			for _, data := range [][]byte{z.Bytes(), raw.Bytes()} {
				got, err := collect(t, data, tc.name, Options{Algorithm: digests.SHA256, IncludeEarly: true})
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
				}
			}
		})
	}
}

func TestEarlyRules(t *testing.T) {
	var a, b newc
	a.add("first", reg, 1, 1, "1")
	b.add("second", reg, 1, 1, "2")
	first, second := a.end(), b.end()
	var c bytes.Buffer
	zw := gzip.NewWriter(&c)
	var m newc
	m.add("main", reg, 1, 1, "3")
	zw.Write(m.end())
	zw.Close()
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for _, tc := range []struct {
		name string
		data []byte
		want []string
	}{
		{"two plain archives: the last is main", cat(first, second), []string{"/second " + sum("2")}},
		{"padding does not count as data", cat(first, make([]byte, 512)), []string{"/first " + sum("1")}},
		{"all leading plain archives are early", cat(first, second, c.Bytes()), []string{"/main " + sum("3")}},
		{"plain after compressed is not early", cat(first, c.Bytes(), make([]byte, (4-c.Len()%4)%4), second),
			[]string{"/main " + sum("3"), "/second " + sum("2")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := collect(t, tc.data, tc.name, Options{Algorithm: digests.SHA256})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

type counter struct{ files, bytes atomic.Int64 }

func (c *counter) Add(files, bytes int64) { c.files.Add(files); c.bytes.Add(bytes) }

func TestNewDirectory(t *testing.T) {
	dir := t.TempDir()
	abs, err := filepath.Abs(fixtures)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "initrd.img-6.1"), fixture(t, "initrd-gzip.img"), 0o644)
	os.Symlink(filepath.Join(abs, "initrd-gzip2.img"), filepath.Join(dir, "initramfs-6.2.img"))
	os.Symlink(filepath.Join(dir, "gone"), filepath.Join(dir, "initrd.img.old"))
	os.WriteFile(filepath.Join(dir, "vmlinuz-6.1"), []byte("not an initrd"), 0o644)
	os.Mkdir(filepath.Join(dir, "initrd.d"), 0o755)
	os.WriteFile(filepath.Join(dir, "initrd.d", "initrd-nested"), []byte("not read"), 0o644)

	var prog counter
	src, err := New(dir, Options{Algorithm: digests.SHA256, Progress: &prog})
	if err != nil {
		t.Fatal(err)
	}
	wantFiles := []string{filepath.Join(dir, "initramfs-6.2.img"), filepath.Join(dir, "initrd.img-6.1")}
	if !slices.Equal(src.Files(), wantFiles) {
		t.Errorf("Files() = %q, want %q", src.Files(), wantFiles)
	}
	var got []string
	if err := src.Walk(context.Background(), func(d digests.Digest) error {
		got = append(got, d.Path+" "+hex.EncodeToString(d.Value))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Both images: main tree, plus the second image's /etc/passwd.
	want := expected(t, "main.sha256", "gzip2.sha256")
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Progress counts regular-file entries: those of main.list (stat(1)
	// over the source tree) in each image, 1 in early.cpio, 1 in the
	// overlay archive.
	mainFiles := int64(strings.Count(string(fixture(t, "main.list")), "\t81"))
	if f := prog.files.Load(); f != 2*mainFiles+2 {
		t.Errorf("progress files %d, want %d", f, 2*mainFiles+2)
	}

	// Walk again: a Source can be walked more than once.
	n := 0
	src.Walk(context.Background(), func(digests.Digest) error { n++; return nil })
	if n != len(want) {
		t.Errorf("second walk yielded %d", n)
	}

	for _, bad := range []string{t.TempDir(), filepath.Join(dir, "missing"), filepath.Join(dir, "initrd.img.old")} {
		if _, err := New(bad, Options{Algorithm: digests.SHA256}); err == nil {
			t.Errorf("New(%s): no error", bad)
		}
	}
	if _, err := New(dir, Options{}); err == nil {
		t.Error("New without an algorithm: no error")
	}
	if _, err := New(dir, Options{Algorithm: digests.SM3}); err == nil {
		t.Error("New with sm3: no error")
	}
}

func TestCancelAndYieldError(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Read(ctx, bytes.NewReader(fixture(t, "initrd-gzip.img")), "x", Options{Algorithm: digests.SHA256},
		func(digests.Digest) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
	stop := errors.New("stop")
	n := 0
	err = Read(context.Background(), bytes.NewReader(fixture(t, "initrd-gzip.img")), "x", Options{Algorithm: digests.SHA256},
		func(digests.Digest) error { n++; return stop })
	if err != stop || n != 1 {
		t.Errorf("yield error: %v after %d", err, n)
	}
}

func TestDetect(t *testing.T) {
	// Magics from lib/decompress.c and the tools' documentation.
	for in, want := range map[string]string{
		"070701": "cpio", "\x1f\x8b\x08": "gzip", "\x1f\x9e": "gzip (old)", "BZh9": "bzip2",
		"\x5d\x00\x00\x80": "lzma", "\xfd7zXZ\x00": "xz", "\x89LZO\x00": "lzo", "\x02\x21\x4c\x18": "lz4",
		"\x28\xb5\x2f\xfd": "zstd", "\x04\x22\x4d\x18": "lz4 frame", "\x7fELF": "unknown", "\x1f": "unknown",
	} {
		if got := detect([]byte(in)); got != want {
			t.Errorf("detect(% x) = %q, want %q", in, got, want)
		}
	}
}

// FuzzRead is seeded with the small fixtures only: initrd-mixed.img has a
// segment of every format. With the 15-40 KiB ones the fuzzer spends its
// minutes minimizing rather than exploring; TestFixtures covers them.
func FuzzRead(f *testing.F) {
	for _, name := range []string{"initrd-mixed.img", "early.cpio"} {
		f.Add(fixture(f, name))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		opts := Options{Algorithm: digests.SHA256, IncludeEarly: len(data)%2 == 0, MaxDecompressed: 4 << 20}
		var prev string
		err := Read(context.Background(), bytes.NewReader(data), "fuzz", opts, func(d digests.Digest) error {
			if !strings.HasPrefix(d.Path, "/") || d.Path < prev || len(d.Value) != 32 {
				t.Fatalf("bad digest %+v after %q", d, prev)
			}
			prev = d.Path
			return nil
		})
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not an *Error", err, err)
			}
		}
	})
}
