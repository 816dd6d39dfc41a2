package deb

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/zest-attest/zest/digests"
)

// benchFiles is how many 1 MiB files the benchmark package holds: half
// random bytes (xz cannot shrink them) and half decimal text, so that its
// data.tar.xz is about 50 MB and the decoder does real work on both.
const benchFiles = 72

// benchDeb builds the benchmark package with dpkg-deb --build -Zxz (as
// Debian builds packages) once per machine, cached in the temporary
// directory because xz -6 over 72 MiB takes a while on a shared machine.
func benchDeb(b *testing.B) (path string, tarSize int64) {
	b.Helper()
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		b.Skip("needs dpkg-deb")
	}
	path = filepath.Join(os.TempDir(), "zest-deb-bench-v1-"+strconv.Itoa(benchFiles)+".deb")
	tarSize = benchFiles << 20 // content only; tar headers add a little
	if _, err := os.Stat(path); err == nil {
		return path, tarSize
	}
	root := b.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "DEBIAN"), 0o755); err != nil {
		b.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "DEBIAN/control"), []byte("Package: zest-bench\nVersion: 1\nArchitecture: all\nMaintainer: zest <zest@example.invalid>\nDescription: bench\n"), 0o644)
	dir := filepath.Join(root, "usr/lib/zest-bench")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range benchFiles {
		content := make([]byte, 0, 1<<20)
		if i%2 == 0 {
			for len(content) < 1<<20 {
				content = append(content, byte(rng.Uint32()))
			}
		} else {
			for len(content) < 1<<20 {
				content = strconv.AppendInt(content, int64(rng.IntN(1e9)), 10)
				content = append(content, " zest\n"...)
			}
			content = content[:1<<20]
		}
		if err := os.WriteFile(filepath.Join(dir, "f"+strconv.Itoa(i)), content, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	tmp := path + ".tmp"
	if out, err := exec.Command("dpkg-deb", "--root-owner-group", "-Zxz", "--build", root, tmp).CombinedOutput(); err != nil {
		b.Fatalf("dpkg-deb: %v: %s", err, out)
	}
	if err := os.Rename(tmp, path); err != nil {
		b.Fatal(err)
	}
	return path, tarSize
}

// BenchmarkWalkXz hashes every file of a ~50 MB xz .deb with SHA-256. In
// the same run it times the baseline `dpkg-deb --fsys-tarfile x.deb |
// sha256sum` (C xz decoder and sha256sum over the whole tar, no per-file
// work) and reports zest's time as a multiple of it (x-dpkg).
func BenchmarkWalkXz(b *testing.B) {
	p, tarSize := benchDeb(b)
	st, err := os.Stat(p)
	if err != nil {
		b.Fatal(err)
	}
	baseline := time.Duration(1<<63 - 1)
	for range 2 {
		start := time.Now()
		cmd := exec.Command("sh", "-c", `dpkg-deb --fsys-tarfile "$1" | sha256sum >/dev/null`, "sh", p)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("baseline: %v: %s", err, out)
		}
		baseline = min(baseline, time.Since(start))
	}
	b.SetBytes(tarSize)
	b.ResetTimer()
	for b.Loop() {
		d, err := New(p, Options{Algorithm: digests.SHA256})
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		if err := d.Walk(context.Background(), func(digests.Digest) error { n++; return nil }); err != nil || n != benchFiles {
			b.Fatal(n, err)
		}
	}
	perOp := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(st.Size())/1e6, "deb-MB")
	b.ReportMetric(float64(tarSize)/1e6/baseline.Seconds(), "dpkg-MB/s")
	b.ReportMetric(perOp.Seconds()/baseline.Seconds(), "x-dpkg")
}
