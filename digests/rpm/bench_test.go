package rpm

import (
	"bytes"
	"path/filepath"
	"testing"
)

var benchPackages = []string{
	"gzip-sha256", "xz-sha256", "zstd-sha512", "bzip2-sha512", "lzma-sha384",
	"gzip-sha1", "signed-rsa", "signed-ecdsa", "signed-rsa-main",
}

// BenchmarkHeaders measures header-only reading (lead, both headers, the
// SHA-256 header check and the file list), the work per package of a
// repository scan. Target: >= 2,000 packages/s. "memory" reads from bytes
// (a range-fetched header), "file" opens each .rpm; "parse-only" is the
// baseline of reading both headers without the digest check or file list.
func BenchmarkHeaders(b *testing.B) {
	var raws [][]byte
	for _, n := range benchPackages {
		raw := readFixture(b, n+".rpm")
		h, err := ReadHeader(bytes.NewReader(raw), n)
		if err != nil {
			b.Fatal(err)
		}
		_, end := h.Range()
		raws = append(raws, raw[:end])
	}
	b.Run("parse-only", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := readHeader(bytes.NewReader(raws[i%len(raws)]), "", false); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkgs/s")
	})
	b.Run("memory", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			h, err := ReadHeader(bytes.NewReader(raws[i%len(raws)]), "bench")
			if err != nil {
				b.Fatal(err)
			}
			if _, err := h.Files(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkgs/s")
	})
	b.Run("file", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := New(filepath.Join(fixtures, benchPackages[i%len(benchPackages)]+".rpm"), Options{}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkgs/s")
	})
}

// BenchmarkHashPayload measures New + Walk with the payload check.
func BenchmarkHashPayload(b *testing.B) {
	for _, n := range []string{"gzip-sha256", "xz-sha256", "zstd-sha512", "bzip2-sha512", "lzma-sha384"} {
		b.Run(n, func(b *testing.B) {
			path := filepath.Join(fixtures, n+".rpm")
			for b.Loop() {
				f, err := New(path, Options{HashPayload: true})
				if err != nil {
					b.Fatal(err)
				}
				if err := f.verifyPayload(b.Context()); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkgs/s")
		})
	}
}
