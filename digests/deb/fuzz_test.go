package deb

import (
	"bytes"
	"context"
	"errors"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/zest-attest/zest/digests"
)

// FuzzAr: any input gives members inside the input or a *FormatError, never
// a panic; and a package that loads walks to digests or an error, yielding
// nothing when it fails. Seeds are the fixture packages.
func FuzzAr(f *testing.F) {
	names, err := filepath.Glob(filepath.Join(fixtures, "*.deb"))
	if err != nil || len(names) == 0 {
		f.Fatalf("no fixtures: %v", err)
	}
	for _, n := range names {
		if filepath.Base(n) == "none.deb" || filepath.Base(n) == "bzip2.deb" {
			continue // large; the others cover the layout
		}
		f.Add(readFixture(f, filepath.Base(n)))
	}
	f.Add([]byte(arMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		ar, err := NewArReader(bytes.NewReader(data), int64(len(data)), "fuzz")
		if err == nil {
			for {
				m, err := ar.Next()
				if err == io.EOF {
					break
				}
				var fe *FormatError
				if err != nil {
					if !errors.As(err, &fe) {
						t.Fatalf("not a FormatError: %v", err)
					}
					break
				}
				if m.Offset+arHeaderLen+m.Size > int64(len(data)) || m.Size < 0 {
					t.Fatalf("member %q at %d size %d in %d bytes", m.Name, m.Offset, m.Size, len(data))
				}
				if n, err := io.Copy(io.Discard, m.Content); err != nil || n != m.Size {
					t.Fatalf("read %d of %d: %v", n, m.Size, err)
				}
			}
		}
		d, err := Load(bytes.NewReader(data), int64(len(data)), "fuzz", Options{Algorithm: digests.SHA256})
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("Load: not a FormatError: %v", err)
			}
			return
		}
		var n int
		if err := d.Walk(context.Background(), func(digests.Digest) error { n++; return nil }); err != nil && n != 0 {
			t.Fatalf("%d digests yielded before %v", n, err)
		}
	})
}

// FuzzRepoIndex: Release and Packages parsing never panics, and every
// package kept has a safe relative Filename and a full SHA-256.
func FuzzRepoIndex(f *testing.F) {
	for _, n := range []string{"repo/dists/zest/Release", "repo/dists/zest/main/binary-amd64/Packages"} {
		f.Add(readFixture(f, n))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = parseRelease(data)
		_, _ = stripClearsign(data)
		ps, err := parsePackages(bytes.NewReader(data), "")
		if err != nil {
			return
		}
		for _, p := range ps {
			if len(p.SHA256) != 32 || p.Size < 0 || strings.HasPrefix(p.Filename, "/") || slices.Contains(strings.Split(p.Filename, "/"), "..") {
				t.Fatalf("bad package %+v", p)
			}
		}
	})
}
