package rpm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/zest-attest/zest/digests"
	"github.com/zest-attest/zest/digests/imasig"
)

// The fixtures and every expected value come from fixtures/rpm/gen.sh:
// rpmbuild, `rpm -i --root` + sha*sum, `rpm -qp --qf` and od.
const fixtures = "../../fixtures/rpm"

func fixture(name string) string { return filepath.Join(fixtures, name) }

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(fixture(name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// expectedSums reads a sha*sum listing and returns "path hex" lines with
// the path as IMA writes it (spaces as '_'), sorted.
func expectedSums(t *testing.T, name string) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(readFixture(t, name))), "\n") {
		sum, path, ok := strings.Cut(l, "  ")
		if !ok {
			t.Fatalf("%s: bad line %q", name, l)
		}
		out = append(out, strings.ReplaceAll(path, " ", "_")+" "+sum)
	}
	slices.Sort(out)
	return out
}

func walkAll(t *testing.T, src digests.Source) ([]digests.Digest, error) {
	t.Helper()
	var got []digests.Digest
	err := src.Walk(context.Background(), func(d digests.Digest) error {
		got = append(got, d)
		return nil
	})
	return got, err
}

func lines(ds []digests.Digest) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Path+" "+hex.EncodeToString(d.Value))
	}
	slices.Sort(out)
	return out
}

type counter struct{ files, bytes atomic.Int64 }

func (c *counter) Add(files, bytes int64) { c.files.Add(files); c.bytes.Add(bytes) }

var packages = []struct {
	name string
	alg  digests.Algorithm
	opts Options
}{
	{"gzip-sha256", digests.SHA256, Options{}},
	{"xz-sha256", digests.SHA256, Options{}},
	{"zstd-sha512", digests.SHA512, Options{}},
	{"bzip2-sha512", digests.SHA512, Options{}},
	{"lzma-sha384", digests.SHA384, Options{}},
	{"gzip-sha1", digests.SHA1, Options{}},
	{"gzip-md5", digests.MD5, Options{AllowMD5: true}},
	{"signed-rsa", digests.SHA256, Options{}},
	{"signed-ecdsa", digests.SHA512, Options{}},
	{"signed-rsa-main", digests.SHA256, Options{}},
}

func TestWalkFixtures(t *testing.T) {
	for _, tc := range packages {
		for _, payload := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/payload=%v", tc.name, payload), func(t *testing.T) {
				opts := tc.opts
				opts.HashPayload = payload
				var c counter
				opts.Progress = &c
				f, err := New(fixture(tc.name+".rpm"), opts)
				if err != nil {
					t.Fatal(err)
				}
				got, err := walkAll(t, f)
				if err != nil {
					t.Fatal(err)
				}
				want := expectedSums(t, tc.name+".sums")
				if g := lines(got); !slices.Equal(g, want) {
					t.Errorf("digests\n got %q\nwant %q", g, want)
				}
				for _, d := range got {
					if d.Algorithm != tc.alg {
						t.Errorf("%s: algorithm %s, want %s", d.Path, d.Algorithm, tc.alg)
					}
				}
				if payload {
					// Regular files with data: the hard-link pair's content
					// once, the empty file not at all.
					if c.files.Load() != int64(len(want)-2) {
						t.Errorf("progress counted %d files, want %d", c.files.Load(), len(want)-2)
					}
				} else if c.files.Load() != int64(len(want)) {
					t.Errorf("progress counted %d digests, want %d", c.files.Load(), len(want))
				}
				nevra := strings.Fields(string(readFixture(t, tc.name+".nevra")))
				h := f.Header()
				if g := []string{h.Name(), h.Version(), h.Release(), h.Arch()}; !slices.Equal(g, nevra) {
					t.Errorf("name/version/release/arch %q, want %q", g, nevra)
				}
			})
		}
	}
}

// TestFiles compares the whole file list with `rpm -qp --qf`.
func TestFiles(t *testing.T) {
	for _, tc := range packages {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ReadHeader(bytes.NewReader(readFixture(t, tc.name+".rpm")), tc.name)
			if err != nil {
				t.Fatal(err)
			}
			files, err := h.Files()
			if err != nil {
				t.Fatal(err)
			}
			var got, want []string
			for _, f := range files {
				got = append(got, fmt.Sprintf("%o %d %d %d %s\t%s", f.Mode, f.Flags, f.Inode, f.Size, f.LinkTo, f.Path))
			}
			want = strings.Split(strings.TrimSuffix(string(readFixture(t, tc.name+".files")), "\n"), "\n")
			if !slices.Equal(got, want) {
				t.Errorf("files\n got %q\nwant %q", got, want)
			}
			kinds := map[string]func(*FileInfo) bool{
				"/etc/zest.conf":        func(f *FileInfo) bool { return f.IsConfig() && f.HasContentDigest() },
				"/var/lib/zest/state":   func(f *FileInfo) bool { return f.IsGhost() && f.Digest == nil && !f.HasContentDigest() },
				"/usr/bin/zest-hi":      func(f *FileInfo) bool { return f.IsSymlink() && f.Digest == nil },
				"/usr/share/zest":       func(f *FileInfo) bool { return f.IsDir() && f.Digest == nil },
				"/usr/share/zest/empty": func(f *FileInfo) bool { return f.IsRegular() && f.HasContentDigest() },
			}
			for _, f := range files {
				if check, ok := kinds[f.Path]; ok && !check(&f) {
					t.Errorf("%s: unexpected %+v", f.Path, f)
				}
			}
		})
	}
}

func TestMD5Refused(t *testing.T) {
	_, err := New(fixture("gzip-md5.rpm"), Options{})
	if !errors.Is(err, ErrMD5) || !strings.Contains(err.Error(), "gzip-md5.rpm") {
		t.Fatalf("got %v, want ErrMD5 naming the file", err)
	}
	if err := NewSet([]string{fixture("gzip-sha256.rpm"), fixture("gzip-md5.rpm")}, Options{}).Walk(context.Background(), func(digests.Digest) error { return nil }); !errors.Is(err, ErrMD5) {
		t.Fatalf("set: got %v, want ErrMD5", err)
	}
}

// TestSignatures checks the IMA signatures against `rpm -qp
// --qf %{FILESIGNATURES}` and verifies them with the signing keys.
func TestSignatures(t *testing.T) {
	for _, tc := range []struct {
		name string
		keys []string // certificate and public key of the signer
	}{
		{"signed-rsa", []string{fixture("keys/rsa.der"), "../../fixtures/keylime/ima_keys/rsa2048pub.pem"}},
		{"signed-rsa-main", []string{fixture("keys/rsa.der"), "../../fixtures/keylime/ima_keys/rsa2048pub.pem"}},
		{"signed-ecdsa", []string{fixture("keys/ec-p256.der"), fixture("keys/ec-p256pub.pem")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := map[string]string{}
			wantIDs := map[uint32]bool{}
			for _, l := range strings.Split(strings.TrimSpace(string(readFixture(t, tc.name+".sigs"))), "\n") {
				sig, path, _ := strings.Cut(l, "\t")
				want[strings.ReplaceAll(path, " ", "_")] = sig
				id, err := strconv.ParseUint(sig[6:14], 16, 32) // 03 02 <algo> <keyid>
				if err != nil {
					t.Fatal(err)
				}
				wantIDs[uint32(id)] = true
			}
			f, err := New(fixture(tc.name+".rpm"), Options{})
			if err != nil {
				t.Fatal(err)
			}
			ids, err := f.Header().KeyIDs()
			if err != nil {
				t.Fatal(err)
			}
			if len(ids) != len(wantIDs) || !wantIDs[ids[0]] {
				t.Errorf("KeyIDs %x, want %v", ids, wantIDs)
			}
			got, err := walkAll(t, f)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Errorf("%d digests, %d signatures expected", len(got), len(want))
			}
			for _, keyFile := range tc.keys {
				pem, err := os.ReadFile(keyFile)
				if err != nil {
					t.Fatal(err)
				}
				k, err := imasig.LoadKey(pem)
				if err != nil {
					t.Fatal(err)
				}
				if !wantIDs[k.KeyID] {
					t.Fatalf("%s has keyid %08x, the signatures name %v", keyFile, k.KeyID, wantIDs)
				}
				var ring imasig.Keyring
				if err := ring.Add(k); err != nil {
					t.Fatal(err)
				}
				for _, d := range got {
					if hex.EncodeToString(d.Signature) != want[d.Path] {
						t.Errorf("%s: signature %x, rpm says %s", d.Path, d.Signature, want[d.Path])
					}
					sig, err := imasig.ParseSignature(d.Signature)
					if err != nil {
						t.Fatalf("%s: %v", d.Path, err)
					}
					if err := ring.Verify(sig, d.Value); err != nil {
						t.Errorf("%s (%s): %v", d.Path, keyFile, err)
					}
					bad := slices.Clone(d.Value)
					bad[0] ^= 1
					if err := ring.Verify(sig, bad); !errors.Is(err, imasig.ErrBadSignature) {
						t.Errorf("%s: a changed digest gave %v, want ErrBadSignature", d.Path, err)
					}
				}
			}
		})
	}
	// Unsigned packages have no keys and no signatures.
	h, err := ReadHeader(bytes.NewReader(readFixture(t, "gzip-sha256.rpm")), "gzip-sha256.rpm")
	if err != nil {
		t.Fatal(err)
	}
	if ids, err := h.KeyIDs(); err != nil || ids != nil {
		t.Errorf("unsigned package: KeyIDs %v, %v", ids, err)
	}
}

// brokenOffsets returns the main-header start and data-store start of
// gzip-sha256.rpm as gen.sh computed them with od.
func brokenOffsets(t *testing.T) (mainStart, storeStart int64) {
	t.Helper()
	f := strings.Fields(string(readFixture(t, "broken.offsets")))
	a, err1 := strconv.ParseInt(f[0], 10, 64)
	b, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	return a, b
}

func TestBrokenHeaders(t *testing.T) {
	mainStart, storeStart := brokenOffsets(t)
	for _, tc := range []struct {
		file    string
		is      error
		section string
		offset  int64
	}{
		// truncated.rpm ends 100 bytes into the main header's data store.
		{"truncated.rpm", ErrTruncated, "main header", storeStart + 100},
		{"corrupt-header.rpm", ErrHeaderDigest, "main header", mainStart},
	} {
		t.Run(tc.file, func(t *testing.T) {
			_, err := New(fixture(tc.file), Options{})
			var fe *FormatError
			if !errors.As(err, &fe) || !errors.Is(err, tc.is) {
				t.Fatalf("got %v, want a FormatError wrapping %v", err, tc.is)
			}
			if fe.Offset != tc.offset || fe.Section != tc.section || fe.Input != fixture(tc.file) {
				t.Errorf("error at %s %d of %s, want %s %d of %s", fe.Section, fe.Offset, fe.Input, tc.section, tc.offset, fixture(tc.file))
			}
			if msg := err.Error(); !strings.Contains(msg, tc.file) || !strings.Contains(msg, "offset "+strconv.FormatInt(tc.offset, 10)) {
				t.Errorf("message %q does not name the file and offset", msg)
			}
		})
	}
}

func TestCorruptPayload(t *testing.T) {
	f, err := New(fixture("corrupt-payload.rpm"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The header is intact: header-only digests are what the package claims.
	got, err := walkAll(t, f)
	if err != nil {
		t.Fatal(err)
	}
	if want := expectedSums(t, "corrupt-payload.sums"); !slices.Equal(lines(got), want) {
		t.Errorf("header digests\n got %q\nwant %q", lines(got), want)
	}
	f, err = New(fixture("corrupt-payload.rpm"), Options{HashPayload: true})
	if err != nil {
		t.Fatal(err)
	}
	got, err = walkAll(t, f)
	if len(got) != 0 {
		t.Errorf("yielded %d digests from a package whose payload does not match", len(got))
	}
	var me *MismatchError
	if !errors.As(err, &me) || me.Path != "/etc/zest.conf" || !errors.Is(err, ErrPayloadMismatch) {
		t.Fatalf("got %v, want a MismatchError for /etc/zest.conf", err)
	}
	if !strings.Contains(err.Error(), "PAYLOADDIGEST") {
		t.Errorf("%v: PAYLOADDIGEST mismatch not reported", err)
	}
}

func TestReadHeaderRange(t *testing.T) {
	mainStart, _ := brokenOffsets(t)
	raw := readFixture(t, "gzip-sha256.rpm")
	r := bytes.NewReader(raw)
	h, err := ReadHeader(iotestHalf{r}, "gzip-sha256.rpm")
	if err != nil {
		t.Fatal(err)
	}
	start, end := h.Range()
	if start != mainStart {
		t.Errorf("main header starts at %d, want %d", start, mainStart)
	}
	if pos := int64(len(raw)) - int64(r.Len()); pos != end {
		t.Errorf("reader left at %d, header ends at %d", pos, end)
	}
	if !bytes.HasPrefix(raw[end:], []byte{0x1f, 0x8b}) {
		t.Errorf("payload at %d does not start with the gzip magic", end)
	}
	// The header bytes alone (a range request) are enough.
	h2, err := ReadHeader(bytes.NewReader(raw[:end]), "range")
	if err != nil {
		t.Fatal(err)
	}
	if f1, _ := h.Files(); len(f1) == 0 {
		t.Error("no files")
	} else if f2, _ := h2.Files(); !slices.EqualFunc(f1, f2, func(a, b FileInfo) bool { return a.Path == b.Path && bytes.Equal(a.Digest, b.Digest) }) {
		t.Error("a range-read header lists other files")
	}
	if _, err := ReadHeader(bytes.NewReader(raw[:end-1]), "short"); !errors.Is(err, ErrTruncated) {
		t.Errorf("one byte short: %v, want ErrTruncated", err)
	}
}

// iotestHalf returns at most half of what is asked (testing/iotest's
// HalfReader, which cavaliergopher/rpm mis-parses with).
type iotestHalf struct{ r io.Reader }

func (h iotestHalf) Read(p []byte) (int, error) { return h.r.Read(p[:(len(p)+1)/2]) }

// patch returns a copy of raw with b written at off.
func patch(raw []byte, off int64, b ...byte) []byte {
	out := slices.Clone(raw)
	copy(out[off:], b)
	return out
}

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// TestMalformed damages a good package in the ways librpm's checks catch.
func TestMalformed(t *testing.T) {
	raw := readFixture(t, "gzip-sha256.rpm")
	mainStart, _ := brokenOffsets(t)
	sigIL := int64(binary.BigEndian.Uint32(raw[104:]))
	mainIL := int64(binary.BigEndian.Uint32(raw[mainStart+8:]))
	sigEntry := func(i int64) int64 { return 96 + 16 + 16*i }
	mainEntry := func(i int64) int64 { return mainStart + 16 + 16*i }
	sigIndex := func(tag Tag) int64 {
		for i := int64(0); i < sigIL; i++ {
			if Tag(binary.BigEndian.Uint32(raw[sigEntry(i):])) == tag {
				return i
			}
		}
		t.Fatalf("no signature tag %s", tag)
		return 0
	}
	noDigests := patch(raw, sigEntry(sigIndex(TagSigSHA1)), be32(268)...)
	noDigests = patch(noDigests, sigEntry(sigIndex(TagSigSHA256)), be32(272)...)
	mainIndex := func(tag Tag) int64 {
		for i := int64(0); i < mainIL; i++ {
			if Tag(binary.BigEndian.Uint32(raw[mainEntry(i):])) == tag {
				return i
			}
		}
		t.Fatalf("no tag %s", tag)
		return 0
	}
	for _, tc := range []struct {
		name, want string
		data       []byte
		section    string
		offset     int64
	}{
		{"empty", "truncated", nil, "lead", 0},
		{"not rpm", "not an RPM", patch(raw, 0, 'x'), "lead", 0},
		{"lead version", "unsupported package format", patch(raw, 4, 9), "lead", 4},
		{"sig magic", "bad header magic", patch(raw, 96, 0), "signature header", 96},
		{"sig entries", "index entries (limit 32)", patch(raw, 104, be32(33)...), "signature header", 104},
		{"sig no entries", "no index entries", patch(raw, 104, be32(0)...), "signature header", 104},
		{"no header digest", "no header digest", noDigests, "signature header", 96},
		{"main too big", "exceed", patch(raw, mainStart+12, be32(MaxHeaderBytes)...), "main header", mainStart + 12},
		{"main il > rpm", "limit 65535", patch(raw, mainStart+8, be32(0x10000)...), "main header", mainStart + 8},
		{"huge dl", "truncated", patch(raw, mainStart+12, be32(32<<20)...), "main header", int64(len(raw))},
		{"region tag", "want region tag", patch(raw, sigEntry(0), be32(63)...), "signature header", sigEntry(0)},
		{"region offset", "region trailer offset", patch(raw, mainEntry(0)+8, be32(0x7fffffff)...), "main header", mainEntry(0)},
		{"tag order", "not sorted", patch(raw, mainEntry(3), be32(1000)...), "main header", mainEntry(3)},
		{"low tag", "below 100", patch(raw, mainEntry(1), be32(99)...), "main header", mainEntry(1)},
		{"bad type", "bad type 10", patch(raw, sigEntry(1)+4, be32(10)...), "signature header", sigEntry(1)},
		{"count 0", "count 0", patch(raw, mainEntry(3)+12, be32(0)...), "main header", mainEntry(3)},
		{"offset", "outside", patch(raw, mainEntry(mainIL-1)+8, be32(0x7ffffff0)...), "main header", mainEntry(mainIL - 1)},
		{"negative offset", "outside", patch(raw, sigEntry(sigIL-1)+8, be32(0xfffffff0)...), "signature header", sigEntry(sigIL - 1)},
		{"overlap", "overlaps the previous", patch(raw, mainEntry(3)+8, be32(0)...), "main header", mainEntry(3)},
		{"string count", "not terminated", patch(raw, mainEntry(mainIndex(TagBaseNames))+12, be32(0x00ffffff)...), "main header", -1},
		{"int count", "runs past", patch(raw, mainEntry(mainIndex(TagFileModes))+12, be32(0x40000000)...), "main header", -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadHeader(bytes.NewReader(tc.data), "x.rpm")
			var fe *FormatError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a FormatError containing %q", err, tc.want)
			}
			if fe.Input != "x.rpm" || fe.Section != tc.section || (tc.offset >= 0 && fe.Offset != tc.offset) {
				t.Errorf("located at %s %s %d, want %s %d", fe.Input, fe.Section, fe.Offset, tc.section, tc.offset)
			}
		})
	}
}

func TestSourceAndSets(t *testing.T) {
	set, err := Glob(fixture("*-sha256.rpm"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	wantPaths := []string{fixture("gzip-sha256.rpm"), fixture("xz-sha256.rpm")}
	if !slices.Equal(set.Paths(), wantPaths) {
		t.Errorf("paths %q, want %q", set.Paths(), wantPaths)
	}
	got, err := walkAll(t, set)
	if err != nil {
		t.Fatal(err)
	}
	want := append(expectedSums(t, "gzip-sha256.sums"), expectedSums(t, "xz-sha256.sums")...)
	slices.Sort(want)
	if !slices.Equal(lines(got), want) {
		t.Errorf("set digests\n got %q\nwant %q", lines(got), want)
	}
	if _, err := Glob(fixture("*.nothing"), Options{}); err == nil {
		t.Error("empty glob accepted")
	}

	// Removing SOURCERPM makes the package a source package to librpm.
	raw := readFixture(t, "gzip-sha256.rpm")
	h, err := readHeader(bytes.NewReader(raw), "x", false)
	if err != nil {
		t.Fatal(err)
	}
	if h.IsSource() {
		t.Error("binary package reported as source")
	}
	e, _ := h.main.lookup(TagSourceRPM)
	idx := slices.Index(h.main.entries, e)
	mainStart, _ := h.Range()
	src := patch(raw, mainStart+16+16*int64(idx+1), be32(1043)...) // between its neighbours
	if h, err := readHeader(bytes.NewReader(src), "x", false); err != nil || !h.IsSource() {
		t.Errorf("without SOURCERPM: %v, source=%v", err, err == nil && h.IsSource())
	}
}

func TestWalkStops(t *testing.T) {
	f, err := New(fixture("gzip-sha256.rpm"), Options{HashPayload: true})
	if err != nil {
		t.Fatal(err)
	}
	stop := errors.New("stop")
	n := 0
	if err := f.Walk(context.Background(), func(digests.Digest) error { n++; return stop }); err != stop || n != 1 {
		t.Errorf("yield error: got %v after %d digests", err, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.Walk(ctx, func(digests.Digest) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// TestDecompressorLimits: streams asking for more window than MaxWindow
// are refused before the decoder allocates it.
func TestDecompressorLimits(t *testing.T) {
	payload := func(name string) []byte {
		raw := readFixture(t, name)
		h, err := ReadHeader(bytes.NewReader(raw), name)
		if err != nil {
			t.Fatal(err)
		}
		_, end := h.Range()
		return raw[end:]
	}
	read := func(comp string, b []byte) error {
		r, closeFn, err := decompressor(comp, bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			return err
		}
		defer closeFn()
		_, err = io.Copy(io.Discard, r)
		return err
	}
	xzp := payload("xz-sha256.rpm")
	if err := read("xz", xzp); err != nil {
		t.Fatalf("intact xz: %v", err)
	}
	// The first block header follows the 12-byte stream header; its LZMA2
	// dictionary byte is the last filter property, before padding and CRC32.
	hsize := (int(xzp[12]) + 1) * 4
	bh := xzp[12 : 12+hsize]
	if bh[2] != 0x21 || bh[3] != 1 {
		t.Fatalf("unexpected block header % x", bh)
	}
	big := patch(xzp, 12+4, 36) // 36: 2<<29, 1 GiB dictionary
	crc := crc32.ChecksumIEEE(big[12 : 12+hsize-4])
	big = patch(big, int64(12+hsize-4), binary.LittleEndian.AppendUint32(nil, crc)...)
	if err := read("xz", big); err == nil || !strings.Contains(err.Error(), "dictionary of 1073741824 bytes") {
		t.Errorf("1 GiB xz dictionary: %v", err)
	}
	lz := payload("lzma-sha384.rpm")
	if err := read("lzma", lz); err != nil {
		t.Fatalf("intact lzma: %v", err)
	}
	if err := read("lzma", patch(lz, 1, 0, 0, 0, 0x40)); err == nil || !strings.Contains(err.Error(), "dictionary") {
		t.Errorf("1 GiB lzma dictionary: %v", err)
	}
	if err := read("lz4", lz); err == nil {
		t.Error("unknown compressor accepted")
	}
}

// TestInconsistentHeaders: values that parse but contradict each other.
func TestInconsistentHeaders(t *testing.T) {
	// The signature header is not covered by the header digest, so a
	// signature can be altered without ReadHeader noticing; Files must.
	raw := readFixture(t, "signed-rsa.rpm")
	at := bytes.Index(raw, []byte("030204f3452d23"))
	if at < 0 {
		t.Fatal("no RSA sha256 signature in signed-rsa.rpm")
	}
	h, err := ReadHeader(bytes.NewReader(patch(raw, int64(at+5), '6')), "x.rpm") // hash_algo sha512
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Files(); err == nil || !strings.Contains(err.Error(), "tag 274 (FILESIGNATURES)") || !strings.Contains(err.Error(), "sha512") {
		t.Errorf("signature over another algorithm: %v", err)
	}
	if _, err := h.KeyIDs(); err == nil {
		t.Error("KeyIDs accepted a signature over another algorithm")
	}

	// FILEDIGESTALGO 3 (RIPEMD-160) is valid for rpm, unusable for IMA.
	raw = readFixture(t, "gzip-sha256.rpm")
	h, err = ReadHeader(bytes.NewReader(raw), "x.rpm")
	if err != nil {
		t.Fatal(err)
	}
	e, _ := h.main.lookup(TagFileDigestAlgo)
	off := h.main.dataOffset(e)
	if binary.BigEndian.Uint32(raw[off:]) != 8 {
		t.Fatalf("FILEDIGESTALGO at %d is not 8", off)
	}
	h, err = readHeader(bytes.NewReader(patch(raw, off, be32(3)...)), "x.rpm", false)
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.Files()
	var fe *FormatError
	if !errors.Is(err, ErrUnknownAlgorithm) || !errors.As(err, &fe) || fe.Offset != off || fe.Tag != TagFileDigestAlgo {
		t.Errorf("FILEDIGESTALGO 3: %v", err)
	}
}
