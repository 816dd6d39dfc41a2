package policygen

import (
	"bufio"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/zest-attest/zest/digests/imalog"
)

// benchLog writes (once per machine) a realistic 1M-line ima-ng log: 200k
// distinct paths, sha256 file digests, correct SHA-1 template hashes.
func benchLog(b *testing.B, lines int) string {
	b.Helper()
	path := filepath.Join(os.TempDir(), fmt.Sprintf("zest-bench-ima-%d.log", lines))
	if st, err := os.Stat(path); err == nil && st.Size() > 0 {
		return path
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	var scratch []byte
	for i := 0; i < lines; i++ {
		d := sha256.Sum256([]byte(fmt.Sprint(i)))
		name := fmt.Sprintf("/usr/lib/x86_64-linux-gnu/pkg%d/lib%d.so.%d", i%2000, i%200000, i%3)
		line := fmt.Sprintf("10 %040x ima-ng sha256:%x %s", 1, d, name)
		e, err := imalog.ParseLine([]byte(line))
		if err != nil {
			b.Fatal(err)
		}
		scratch = e.AppendTemplateData(scratch[:0])
		fmt.Fprintf(w, "10 %x ima-ng sha256:%x %s\n", sha1.Sum(scratch), d, name)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
	if err := os.Rename(tmp, path); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkIMALogToPolicy is the target: a 1M-line IMA log into a
// policy at >= 1M lines/s, streaming. "baseline" only splits the same file
// into lines, for scale.
func BenchmarkIMALogToPolicy(b *testing.B) {
	const lines = 1_000_000
	path := benchLog(b, lines)
	b.Run("baseline-line-scan", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			f, _ := os.Open(path)
			s := bufio.NewScanner(f)
			n := 0
			for s.Scan() {
				n++
			}
			f.Close()
			if n != lines {
				b.Fatal(n)
			}
		}
		b.ReportMetric(float64(lines)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
	})
	b.Run("zest", func(b *testing.B) {
		b.ReportAllocs()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			p, _, err := GenerateRuntime(context.Background(), RuntimeOptions{IMALogs: []string{path}})
			if err != nil {
				b.Fatal(err)
			}
			if len(p.Digests) == 0 {
				b.Fatal("empty")
			}
		}
		b.ReportMetric(float64(lines)*float64(b.N)/time.Since(start).Seconds(), "lines/s")
	})
}
