package pe

import (
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/zest-attest/zest/digests"
)

// BenchmarkAuthenticode hashes a ~10 MB PE32+ image (an EFI-stub kernel's
// size order: four sections, trailing data) from a file with SHA-256. In the
// same run it times `sha256sum FILE` (best of 3, process start included, as
// a user would run it) and reports zest's throughput as a multiple of it
// (x-sha256sum, above 1 means zest is faster), plus Go's crypto/sha256 over
// the whole file read the same way (x-plain: Authenticode's cost over a
// plain digest).
func BenchmarkAuthenticode(b *testing.B) {
	ti := testImage{nrva: 16, seed: 9, trailing: 0x1234,
		sections: []testSection{{".setup", 0x3000}, {".compat", 0x1000}, {".text", 0x900000}, {".data", 0x12000}}}
	img, _ := ti.build()
	p := filepath.Join(b.TempDir(), "bench.efi")
	if err := os.WriteFile(p, img, 0o644); err != nil {
		b.Fatal(err)
	}
	size := int64(len(img))
	baseline := time.Duration(1<<63 - 1)
	if _, err := exec.LookPath("sha256sum"); err == nil {
		for range 3 {
			start := time.Now()
			if out, err := exec.Command("sha256sum", p).CombinedOutput(); err != nil {
				b.Fatalf("sha256sum: %v: %s", err, out)
			}
			baseline = min(baseline, time.Since(start))
		}
	}
	fh, err := os.Open(p)
	if err != nil {
		b.Fatal(err)
	}
	defer fh.Close()
	plain := time.Duration(1<<63 - 1)
	for range 3 {
		start := time.Now()
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(fh, 0, size)); err != nil {
			b.Fatal(err)
		}
		h.Sum(nil)
		plain = min(plain, time.Since(start))
	}
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		if _, err := Authenticode(fh, size, digests.SHA256); err != nil {
			b.Fatal(err)
		}
	}
	perOp := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(size)/1e6, "image-MB")
	if baseline < time.Hour {
		b.ReportMetric(float64(size)/1e6/baseline.Seconds(), "sha256sum-MB/s")
		b.ReportMetric(baseline.Seconds()/perOp.Seconds(), "x-sha256sum")
	}
	b.ReportMetric(plain.Seconds()/perOp.Seconds(), "x-plain")
}
