//go:build linux

package fstree

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/zest-attest/zest/digests"
)

// benchTree returns a generated tree of about ZEST_BENCH_TREE_MB (default
// 256) MiB and its size. The mix imitates a root filesystem: many small
// files, some medium, a few large. It is cached under os.TempDir() so runs
// compare on the same bytes and do not pay for generation again.
func benchTree(b *testing.B) (string, int64) {
	b.Helper()
	mb := 256
	if s := os.Getenv("ZEST_BENCH_TREE_MB"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			b.Fatalf("ZEST_BENCH_TREE_MB=%q: want a positive integer", s)
		}
		mb = v
	}
	cache := filepath.Join(os.TempDir(), fmt.Sprintf("zest-bench-tree-%d", mb))
	if data, err := os.ReadFile(filepath.Join(cache, "size")); err == nil {
		if n, err := strconv.ParseInt(string(data), 10, 64); err == nil {
			return filepath.Join(cache, "tree"), n
		}
	}
	tmp := fmt.Sprintf("%s.tmp-%d", cache, os.Getpid())
	os.RemoveAll(tmp)
	total, err := generateTree(filepath.Join(tmp, "tree"), int64(mb)<<20)
	if err == nil {
		err = os.WriteFile(filepath.Join(tmp, "size"), []byte(strconv.FormatInt(total, 10)), 0o644)
	}
	if err == nil {
		os.RemoveAll(cache)
		err = os.Rename(tmp, cache)
	}
	if err != nil {
		os.RemoveAll(tmp)
		b.Fatalf("generating benchmark tree: %v", err)
	}
	return filepath.Join(cache, "tree"), total
}

// generateTree writes ~30% of budget as files of 20-100 MiB, ~30% as files
// of 256 KiB-4 MiB and the rest as files of 1-64 KiB, 64 per directory,
// with deterministic pseudo-random content.
func generateTree(dir string, budget int64) (int64, error) {
	rng := rand.New(rand.NewPCG(1, 2))
	var total int64
	seq := 0
	write := func(sub string, size int64) error {
		seq++
		p := filepath.Join(dir, sub, fmt.Sprintf("f%06d", seq))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		f, err := os.Create(p)
		if err != nil {
			return err
		}
		src := rand.NewChaCha8([32]byte{byte(seq), byte(seq >> 8), byte(seq >> 16)})
		buf := make([]byte, min(size, 1<<20))
		for left := size; left > 0; {
			n := min(left, int64(len(buf)))
			src.Read(buf[:n])
			if _, err := f.Write(buf[:n]); err != nil {
				f.Close()
				return err
			}
			left -= n
		}
		total += size
		return f.Close()
	}
	large, medium := budget*3/10, budget*3/10
	for large >= 20<<20 {
		size := min(20<<20+rng.Int64N(80<<20), large)
		if err := write("large", size); err != nil {
			return 0, err
		}
		large -= size
	}
	for n := 0; medium > 0; n++ {
		size := min(256<<10+rng.Int64N(4<<20-256<<10), medium)
		if err := write(fmt.Sprintf("medium/m%02d", n/64), size); err != nil {
			return 0, err
		}
		medium -= size
	}
	for n := 0; total < budget; n++ {
		size := min(1<<10+rng.Int64N(63<<10), budget-total)
		if err := write(fmt.Sprintf("small/s%03d/t%02d", n/4096, n/64%64), size); err != nil {
			return 0, err
		}
	}
	return total, nil
}

func runBaseline(b *testing.B, dir string) {
	cmd := exec.Command("sh", "-c", `find "$1" -type f -print0 | xargs -0 -P2 sha256sum >/dev/null`, "sh", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("baseline: %v\n%s", err, out)
	}
}

func runZest(b *testing.B, dir string) {
	tr, err := New(Options{Root: dir, Algorithm: digests.SHA256})
	if err != nil {
		b.Fatal(err)
	}
	if err := tr.Walk(context.Background(), func(digests.Digest) error { return nil }); err != nil {
		b.Fatal(err)
	}
}

// heapPeak samples the live heap while fn runs.
func heapPeak(fn func()) uint64 {
	var peak uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	})
	fn()
	close(done)
	wg.Wait()
	return peak
}

// BenchmarkRootfs is the speed target: hashing the tree must take
// at most 1.25x the time of find | xargs -P2 sha256sum over the same files,
// measured alternately in the same run, with a flat heap. Run with
// -benchtime=3x; each iteration reads the tree twice.
func BenchmarkRootfs(b *testing.B) {
	dir, total := benchTree(b)
	// Warm the page cache so neither side pays for the first read.
	runBaseline(b, dir)
	var base, zest time.Duration
	var peak uint64
	i := 0
	for b.Loop() {
		// Alternate who goes first so neither always gets the warmer cache.
		steps := []func(){
			func() { t0 := time.Now(); runBaseline(b, dir); base += time.Since(t0) },
			func() {
				t0 := time.Now()
				peak = max(peak, heapPeak(func() { runZest(b, dir) }))
				zest += time.Since(t0)
			},
		}
		if i%2 == 1 {
			steps[0], steps[1] = steps[1], steps[0]
		}
		steps[0]()
		steps[1]()
		i++
	}
	mbs := func(d time.Duration) float64 { return float64(total) * float64(i) / 1e6 / d.Seconds() }
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(total)/1e6, "tree-MB")
	b.ReportMetric(mbs(base), "baseline-MB/s")
	b.ReportMetric(mbs(zest), "zest-MB/s")
	b.ReportMetric(zest.Seconds()/base.Seconds(), "zest/baseline")
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}

// BenchmarkBuffer compares read buffer sizes and posix_fadvise with a warm
// page cache (hashing bound) and a cold one (I/O bound: the tree's pages are
// dropped with POSIX_FADV_DONTNEED before each iteration, which touches only
// these files, not the whole machine's cache).
func BenchmarkBuffer(b *testing.B) {
	dir, total := benchTree(b)
	defer func(s int, f bool) { bufSize, useFadvise = s, f }(bufSize, useFadvise)
	for _, cold := range []bool{false, true} {
		for _, size := range []int{64 << 10, 256 << 10, 1 << 20} {
			for _, fadv := range []bool{false, true} {
				name := fmt.Sprintf("cold=%v/buf=%dK/fadvise=%v", cold, size>>10, fadv)
				b.Run(name, func(b *testing.B) {
					bufSize, useFadvise = size, fadv
					b.SetBytes(total)
					for b.Loop() {
						if cold {
							b.StopTimer()
							dropCache(b, dir)
							b.StartTimer()
						}
						runZest(b, dir)
					}
				})
			}
		}
	}
}

func dropCache(b *testing.B, dir string) {
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	})
	if err != nil {
		b.Fatal(err)
	}
}
