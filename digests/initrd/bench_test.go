package initrd

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/zest-attest/zest/digests"
)

var bigImage struct {
	once sync.Once
	dir  string
	path string
	raw  int64 // uncompressed cpio bytes
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bigImage.dir != "" {
		os.RemoveAll(bigImage.dir)
	}
	os.Exit(code)
}

// makeBigImage writes a gzip initrd of about 50 MB: about 800 files of 4 KiB to
// 256 KiB, each half random bytes and half repeated text, which compresses
// about 2.5:1 like real initramfs contents (modules, binaries).
func makeBigImage(b *testing.B) (string, int64) {
	bigImage.once.Do(func() {
		dir, err := os.MkdirTemp("", "zest-initrd-bench-")
		if err != nil {
			bigImage.err = err
			return
		}
		bigImage.dir = dir
		bigImage.path = filepath.Join(dir, "initrd.img")
		f, err := os.Create(bigImage.path)
		if err != nil {
			bigImage.err = err
			return
		}
		defer f.Close()
		bw := bufio.NewWriterSize(f, 1<<20)
		zw, _ := gzip.NewWriterLevel(bw, gzip.DefaultCompression)
		rng := rand.New(rand.NewPCG(1, 2))
		text := []byte("module_param(debug, int, 0644); MODULE_LICENSE(\"GPL\"); /* zest bench */\n")
		var w newc
		for i := 0; w.Len() < 100<<20; i++ {
			size := 4<<10 + rng.IntN(252<<10)
			data := make([]byte, size)
			for j := 0; j < size/2; j += 8 {
				v := rng.Uint64()
				for k := 0; k < 8 && j+k < size/2; k++ {
					data[j+k] = byte(v >> (8 * k))
				}
			}
			for j := size / 2; j < size; j += copy(data[j:], text) {
			}
			w.add(fmt.Sprintf("usr/lib/modules/6.1.0/kernel/m%04d.ko", i), reg, 1, uint32(i+1), string(data))
		}
		raw := w.end()
		bigImage.raw = int64(len(raw))
		if _, err := zw.Write(raw); err != nil {
			bigImage.err = err
			return
		}
		if err := zw.Close(); err != nil {
			bigImage.err = err
			return
		}
		bigImage.err = bw.Flush()
	})
	if bigImage.err != nil {
		b.Fatal(bigImage.err)
	}
	return bigImage.path, bigImage.raw
}

// BenchmarkGzipInitrd hashes a ~50 MB gzip initrd and compares with
// `gzip -dc | sha256sum` over the same file, timed in the same run. MB/s
// counts decompressed bytes; x-baseline is zest's time over the pipeline's.
func BenchmarkGzipInitrd(b *testing.B) {
	path, raw := makeBigImage(b)
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(raw)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		src, err := New(path, Options{Algorithm: digests.SHA256})
		if err != nil {
			b.Fatal(err)
		}
		if err := src.Walk(context.Background(), func(digests.Digest) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
	zest := time.Since(start)
	b.StopTimer()

	if _, err := exec.LookPath("gzip"); err != nil {
		b.Skip("no gzip for the baseline")
	}
	start = time.Now()
	for range b.N {
		cmd := exec.Command("sh", "-c", `gzip -dc "$1" | sha256sum >/dev/null`, "sh", path)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("baseline: %v: %s", err, out)
		}
	}
	base := time.Since(start)
	b.ReportMetric(float64(zest)/float64(base), "x-baseline")
	b.ReportMetric(float64(fi.Size())/1e6, "MB-gzip")
}
