package deb

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/ulikunitz/xz"

	"github.com/zest-attest/zest/digests"
)

// benchDeb writes a .deb whose data.tar.xz (xz -6, as dpkg-deb) is about
// 20 MB: 30 files of 1 MiB, half random bytes and half text, so that the
// decoder does real work. It returns the path and the uncompressed tar.
func benchDeb(b *testing.B) (string, []byte) {
	b.Helper()
	if _, err := exec.LookPath("xz"); err != nil {
		b.Skip("needs xz to build the package")
	}
	var data bytes.Buffer
	tw := tar.NewWriter(&data)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 30 {
		content := make([]byte, 1<<20)
		if i%2 == 0 {
			for j := range content {
				content[j] = byte(rng.Uint32())
			}
		} else {
			var t []byte
			for j := 0; len(t) < len(content); j++ {
				t = strconv.AppendInt(t, int64(rng.IntN(1e9)), 10)
				t = append(t, " zest\n"...)
			}
			copy(content, t)
		}
		h := &tar.Header{Name: "./usr/lib/zest/f" + strconv.Itoa(i), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(content))}
		if err := tw.WriteHeader(h); err != nil {
			b.Fatal(err)
		}
		tw.Write(content)
	}
	tw.Close()
	cmd := exec.Command("xz", "-6", "-T1", "-c")
	cmd.Stdin = bytes.NewReader(data.Bytes())
	xzData, err := cmd.Output()
	if err != nil {
		b.Fatal(err)
	}
	raw := arArchive(b, "debian-binary", []byte("2.0\n"), "control.tar", make([]byte, 1024), "data.tar.xz", xzData)
	p := filepath.Join(b.TempDir(), "bench.deb")
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		b.Fatal(err)
	}
	return p, data.Bytes()
}

// BenchmarkWalk hashes the package; its baseline sub-benchmark is SHA-256
// of the same uncompressed tar in memory, so the ratio is the cost of ar,
// xz and tar.
func BenchmarkWalk(b *testing.B) {
	p, tarData := benchDeb(b)
	st, _ := os.Stat(p)
	b.Run("baseline-sha256-of-tar", func(b *testing.B) {
		b.SetBytes(int64(len(tarData)))
		for b.Loop() {
			sha256.Sum256(tarData)
		}
	})
	b.Run("walk-xz", func(b *testing.B) {
		b.SetBytes(int64(len(tarData)))
		for b.Loop() {
			d, err := New(p, Options{Algorithm: digests.SHA256})
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			if err := d.Walk(context.Background(), func(digests.Digest) error { n++; return nil }); err != nil || n != 30 {
				b.Fatal(n, err)
			}
		}
		b.ReportMetric(float64(st.Size())/1e6, "deb-MB")
	})
	b.Run("baseline-xz-decode-only", func(b *testing.B) {
		raw, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(len(tarData)))
		for b.Loop() {
			z, err := xz.NewReader(bufio.NewReaderSize(bytes.NewReader(raw[8+60+4+60+1024+60:]), 64<<10))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, z); err != nil {
				b.Fatal(err)
			}
		}
	})
}
