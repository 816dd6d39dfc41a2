package deb

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"path"
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
		walkErr := checkWalk(t, data)
		// The streaming reader must agree with the random-access one.
		if _, err := streamAll(data); (err == nil) != (walkErr == nil) {
			t.Fatalf("Walk: %v; Open: %v", walkErr, err)
		}
	})
}

// checkWalk loads and walks a package: errors from Load are FormatErrors,
// a failed walk yields nothing, and every digest has a clean absolute path
// and a full-size value.
func checkWalk(t *testing.T, data []byte) error {
	d, err := Load(bytes.NewReader(data), int64(len(data)), "fuzz", Options{Algorithm: digests.SHA256})
	if err != nil {
		var fe *FormatError
		if !errors.As(err, &fe) {
			t.Fatalf("Load: not a FormatError: %v", err)
		}
		return err
	}
	var got []digests.Digest
	err = d.Walk(context.Background(), func(x digests.Digest) error { got = append(got, x); return nil })
	if err != nil {
		if len(got) != 0 {
			t.Fatalf("%d digests yielded before %v", len(got), err)
		}
		return err
	}
	for _, x := range got {
		if !path.IsAbs(x.Path) || path.Clean(x.Path) != x.Path || len(x.Value) != 32 || strings.Contains(x.Path, " ") {
			t.Fatalf("bad digest %+v", x)
		}
	}
	return nil
}

// streamAll reads every entry and its content through Open.
func streamAll(data []byte) (int, error) {
	dr, err := Open(onlyReader{bytes.NewReader(data)}, "fuzz")
	if err != nil {
		return 0, err
	}
	defer dr.Close()
	n := 0
	for {
		_, err := dr.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if _, err := io.Copy(io.Discard, dr); err != nil {
			return n, err
		}
		n++
	}
}

// FuzzTar: hostile data.tar streams (uncompressed, so the fuzzer reaches
// the tar walk) in an otherwise valid package. Seeds are the data.tar of
// the fixture package and of Debian's bzip2, and tars with hard links.
func FuzzTar(f *testing.F) {
	for _, n := range []string{"none.deb", realDeb + ".deb"} {
		d, err := New(fixture(n), Options{Algorithm: digests.SHA256})
		if err != nil {
			f.Fatal(err)
		}
		dr, err := Open(bytes.NewReader(readFixture(f, n)), n)
		if err != nil {
			f.Fatal(err)
		}
		raw, err := io.ReadAll(dr.dec) // the decompressed data.tar
		dr.Close()
		if err != nil || len(raw) == 0 {
			f.Fatalf("%s (%s): %d bytes, %v", n, d.DataMember(), len(raw), err)
		}
		f.Add(raw)
	}
	for _, entries := range [][]tar.Header{
		{{Name: "./a", Typeflag: tar.TypeReg, Size: 1}, {Name: "./b", Typeflag: tar.TypeLink, Linkname: "./a"}},
		{{Name: "./bin/", Typeflag: tar.TypeDir}, {Name: "./bin/x", Typeflag: tar.TypeReg, Size: 1}, {Name: "./bin/y", Typeflag: tar.TypeSymlink, Linkname: "x"}},
	} {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for _, h := range entries {
			tw.WriteHeader(&h)
			if h.Size > 0 {
				tw.Write([]byte("z"))
			}
		}
		tw.Close()
		f.Add(b.Bytes())
	}
	f.Fuzz(func(t *testing.T, dataTar []byte) {
		deb := arArchive(t, "debian-binary", []byte("2.0\n"), "control.tar", make([]byte, 512), "data.tar", dataTar)
		walkErr := checkWalk(t, deb)
		if _, err := streamAll(deb); (err == nil) != (walkErr == nil) {
			t.Fatalf("Walk: %v; Open: %v", walkErr, err)
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
