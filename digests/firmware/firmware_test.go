package firmware

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ulikunitz/xz/lzma"
)

// buildFV lays out a PI firmware volume as EDK2's GenFv does: 72-byte
// header with one block-map entry, an extended header naming it, FFS2
// files 8-byte aligned, erase polarity 1.
func buildFV(name string, files ...[]byte) []byte {
	var b bytes.Buffer
	b.Write(make([]byte, 16))
	b.Write(FFS2GUID[:])
	b.Write(make([]byte, 8)) // FvLength, patched below
	b.WriteString("_FVH")
	binary.Write(&b, binary.LittleEndian, uint32(0x0004FEFF))
	binary.Write(&b, binary.LittleEndian, uint16(72)) // HeaderLength
	binary.Write(&b, binary.LittleEndian, uint16(0))  // Checksum, patched below
	binary.Write(&b, binary.LittleEndian, uint16(72)) // ExtHeaderOffset
	b.WriteByte(0)
	b.WriteByte(2)
	binary.Write(&b, binary.LittleEndian, [4]uint32{0, 0x1000, 0, 0}) // block map, patched
	g := mustGUID(name)
	b.Write(g[:])
	binary.Write(&b, binary.LittleEndian, uint32(20))
	for _, f := range files {
		for b.Len()%8 != 0 {
			b.WriteByte(0xFF)
		}
		b.Write(f)
	}
	for b.Len()%0x1000 != 0 {
		b.WriteByte(0xFF)
	}
	out := b.Bytes()
	binary.LittleEndian.PutUint64(out[32:], uint64(len(out)))
	binary.LittleEndian.PutUint32(out[56:], uint32(len(out)/0x1000))
	var sum uint16
	for i := 0; i < 72; i += 2 {
		sum += binary.LittleEndian.Uint16(out[i:])
	}
	binary.LittleEndian.PutUint16(out[50:], -sum)
	return out
}

func buildFile(name string, typ byte, body []byte) []byte {
	g := mustGUID(name)
	h := append(g[:], 0, 0, typ, 0)
	n := 24 + len(body)
	h = append(h, byte(n), byte(n>>8), byte(n>>16), 0xF8)
	return append(h, body...)
}

func buildSection(typ byte, body []byte) []byte {
	n := 4 + len(body)
	s := append([]byte{byte(n), byte(n >> 8), byte(n >> 16), typ}, body...)
	for len(s)%4 != 0 {
		s = append(s, 0)
	}
	return s
}

func buildLZMASection(t testing.TB, inner []byte) []byte {
	var c bytes.Buffer
	w, err := lzma.WriterConfig{Size: int64(len(inner)), DictCap: 1 << 20}.NewWriter(&c)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(inner)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	body := append(LZMACustomDecompressGUID[:], 24, 0, 1, 0) // DataOffset 24, PROCESSING_REQUIRED
	return buildSection(sectionGUIDDefined, append(body, c.Bytes()...))
}

// ovmfLike is FVMAIN_COMPACT (an FV_IMAGE file whose LZMA section holds
// PEIFV and DXEFV) followed by SECFV, as OvmfPkgX64.fdf lays them out.
func ovmfLike(t testing.TB) (image, pei, dxe []byte) {
	pei = buildFV("6938079b-b503-4e3d-9d24-b28337a25806", buildFile("11111111-2222-3333-4444-555555555555", 0x06, []byte("a PEIM")))
	dxe = buildFV("7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1", buildFile("11111111-2222-3333-4444-666666666666", 0x07, bytes.Repeat([]byte("DXE driver "), 300)))
	inner := append(buildSection(0x19, []byte("pad")), buildSection(sectionFVImage, pei)...)
	inner = append(inner, buildSection(sectionFVImage, dxe)...)
	compact := buildFV("48db5e17-707c-472d-91cd-1613e7ef51b0", buildFile("9e21fd93-9c72-4c15-8c4b-e77f1db2d792", ffsTypeFVImage, buildLZMASection(t, inner)))
	sec := buildFV("763bed0d-de9f-48f5-81f1-3e90e1b1a015", buildFile("11111111-2222-3333-4444-777777777777", 0x03, []byte("SEC core")))
	return append(compact, sec...), pei, dxe
}

func TestParseOVMFLike(t *testing.T) {
	img, pei, dxe := ovmfLike(t)
	vols, err := Parse(img)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		name  string
		depth int
		sum   [32]byte
	}{
		{"48db5e17-707c-472d-91cd-1613e7ef51b0", 0, sha256.Sum256(img[:len(img)-0x1000])},
		{"6938079b-b503-4e3d-9d24-b28337a25806", 1, sha256.Sum256(pei)},
		{"7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1", 1, sha256.Sum256(dxe)},
		{"763bed0d-de9f-48f5-81f1-3e90e1b1a015", 0, sha256.Sum256(img[len(img)-0x1000:])},
	}
	if len(vols) != len(want) {
		t.Fatalf("%d volumes, want %d: %+v", len(vols), len(want), vols)
	}
	for i, w := range want {
		v := vols[i]
		if v.Name.String() != w.name || v.Depth != w.depth || v.SHA256 != w.sum {
			t.Errorf("volume %d: %s depth %d %x, want %s depth %d %x", i, v.Name, v.Depth, v.SHA256, w.name, w.depth, w.sum)
		}
	}
	if vols[1].Offset != -1 || vols[3].Offset != 0x1000 || !strings.Contains(vols[2].Path, "/lzma/fv@") {
		t.Errorf("offsets/paths: %+v", vols)
	}
}

func TestParseErrors(t *testing.T) {
	img, _, _ := ovmfLike(t)
	lzmaAt := bytes.Index(img, LZMACustomDecompressGUID[:]) + 20 // LZMA header
	tests := []struct {
		name string
		mod  func([]byte) []byte
		want string
	}{
		{"no volume", func(b []byte) []byte { return []byte("not firmware at all, just text") }, "no firmware volume"},
		{"bad checksum hides the volume", func(b []byte) []byte { b[50]++; return b[:0x1000] }, "no firmware volume"},
		{"huge dictionary", func(b []byte) []byte { binary.LittleEndian.PutUint32(b[lzmaAt+1:], 1<<30); return b }, "dictionary"},
		{"huge size", func(b []byte) []byte { binary.LittleEndian.PutUint64(b[lzmaAt+5:], 1<<40); return b }, "budget"},
		{"size longer than stream", func(b []byte) []byte { binary.LittleEndian.PutUint64(b[lzmaAt+5:], 1<<20); return b }, "LZMA"},
		{"file size past the volume", func(b []byte) []byte {
			off := 96 + 20 // file header size field
			b[off], b[off+1], b[off+2] = 0xFF, 0xFF, 0x7F
			return b
		}, "does not fit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.mod(bytes.Clone(img)))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want %q", err, tt.want)
			}
		})
	}
}

// TestDebianOVMF compares with digests the shared reference (§10.8)
// computed independently for Debian 12's ovmf 2022.11-6+deb12u2; the
// package is fetched with apt-get download (skipped offline, unless CI).
func TestDebianOVMF(t *testing.T) {
	known := map[string]map[string]string{ // file -> volume name -> sha256
		"OVMF_CODE_4M.fd": {
			"6938079b-b503-4e3d-9d24-b28337a25806": "471281a7d197d12ac61a810e5150b9b5ddc47be78ef0c24af7a8192c81b3a808",
			"7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1": "82a0445201cb49945461acc6ed78426700fb7e92819862edc55ba3ad4559b135",
		},
		"OVMF_CODE.fd": {
			"6938079b-b503-4e3d-9d24-b28337a25806": "18e2c1cc4960c2694c162e8e756fbf467aaeceee7dbfe1e1dd919ffb2cd9a9d2",
			"7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1": "614b0bfb88626b36415706a5143619938a38542e732587e2fa05c481f2843d4d",
		},
	}
	dir := filepath.Join(os.TempDir(), "zest-firmware-ovmf")
	debs, _ := filepath.Glob(filepath.Join(dir, "ovmf_*.deb"))
	if len(debs) == 0 {
		os.MkdirAll(dir, 0o755)
		cmd := exec.Command("apt-get", "download", "ovmf")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			unavailable(t, "apt-get download ovmf: %v: %s", err, out)
		}
		debs, _ = filepath.Glob(filepath.Join(dir, "ovmf_*.deb"))
	}
	if len(debs) == 0 {
		unavailable(t, "no ovmf .deb")
	}
	if !strings.Contains(debs[0], "2022.11-6+deb12u2") {
		t.Skipf("%s is not the build the reference digests are for", debs[0])
	}
	x := filepath.Join(dir, "x")
	if out, err := exec.Command("dpkg-deb", "-x", debs[0], x).CombinedOutput(); err != nil {
		unavailable(t, "dpkg-deb -x: %v: %s", err, out)
	}
	for file, vols := range known {
		b, err := os.ReadFile(filepath.Join(x, "usr", "share", "OVMF", file))
		if err != nil {
			t.Fatal(err)
		}
		got, err := Parse(b)
		if err != nil {
			t.Fatal(err)
		}
		found := 0
		for _, v := range got {
			if want, ok := vols[v.Name.String()]; ok {
				found++
				if hex.EncodeToString(v.SHA256[:]) != want {
					t.Errorf("%s %s: %x, want %s", file, v.Name, v.SHA256, want)
				}
			}
		}
		if found != len(vols) || len(got) != 4 {
			t.Errorf("%s: %d volumes, found %d of %d known", file, len(got), found, len(vols))
		}
	}
}

func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

func FuzzParse(f *testing.F) {
	img, pei, _ := ovmfLike(f)
	f.Add(img)
	f.Add(pei)
	f.Add([]byte("_FVH"))
	f.Fuzz(func(t *testing.T, data []byte) {
		vols, err := Parse(data)
		if err != nil {
			return
		}
		for _, v := range vols {
			if v.Length < 56 || v.Depth > MaxDepth {
				t.Fatalf("bad volume %+v", v)
			}
		}
	})
}

var update = flag.Bool("update", false, "rewrite fixtures/firmware/ovmf-like.fd")

// TestFixture keeps fixtures/firmware/ovmf-like.fd (used by the CLI tests)
// equal to what ovmfLike builds; -update rewrites it.
func TestFixture(t *testing.T) {
	img, _, _ := ovmfLike(t)
	path := filepath.Join("..", "..", "fixtures", "firmware", "ovmf-like.fd")
	if *update {
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, img, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	vols, err := Parse(b)
	if err != nil || len(vols) != 4 {
		t.Fatalf("%s: %d volumes, %v", path, len(vols), err)
	}
}

// BenchmarkParseOVMFLike: parse with LZMA decompression; x_sha256 is the
// ratio to hashing the same image bytes, measured in the same loop.
func BenchmarkParseOVMFLike(b *testing.B) {
	img, _, _ := ovmfLike(b)
	b.SetBytes(int64(len(img)))
	b.ReportAllocs()
	var base, work time.Duration
	for b.Loop() {
		t0 := time.Now()
		sha256.Sum256(img)
		t1 := time.Now()
		if _, err := Parse(img); err != nil {
			b.Fatal(err)
		}
		base += t1.Sub(t0)
		work += time.Since(t1)
	}
	b.ReportMetric(float64(work)/float64(base), "x_sha256")
}
