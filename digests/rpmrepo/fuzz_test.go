package rpmrepo

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// seedRepomds returns the committed createrepo_c repomd.xml files.
func seedRepomds(f *testing.F) []string {
	m, err := filepath.Glob(filepath.Join(repoFixtures, "*", "repodata", "repomd.xml"))
	if err != nil || len(m) == 0 {
		f.Fatalf("no repomd.xml fixtures: %v", err)
	}
	return m
}

func FuzzRepomd(f *testing.F) {
	for _, p := range seedRepomds(f) {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		md, err := parseRepomd(b, "fuzz")
		if err != nil {
			return
		}
		for i := range md.Data {
			_ = md.Data[i].check(false)
		}
	})
}

func FuzzPrimary(f *testing.F) {
	for _, p := range seedRepomds(f) {
		dir := filepath.Dir(filepath.Dir(p))
		f.Add(readMetadata(f, dir, "primary"))
		f.Add(readMetadata(f, dir, "filelists"))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		pkgs, err := parsePrimary(bytes.NewReader(b), "fuzz")
		if err != nil {
			return
		}
		for _, p := range pkgs {
			if p.HeaderEnd <= 0 || p.HeaderEnd > MaxHeaderSize || p.Href == "" || isSourceArch(p.Arch) {
				t.Fatalf("accepted bad package %+v", p)
			}
		}
	})
}

// FuzzFilelistsExt parses filelists-ext.xml (seeds: the committed
// fixtures, in createrepo_c 0.21's format, and createrepo_c's own
// filelists.xml) and checks what it accepts.
func FuzzFilelistsExt(f *testing.F) {
	for _, p := range seedRepomds(f) {
		dir := filepath.Dir(filepath.Dir(p))
		f.Add(readMetadata(f, dir, "filelists"))
		if b, _ := os.ReadFile(p); bytes.Contains(b, []byte(`"filelists-ext"`)) {
			f.Add(readMetadata(f, dir, "filelists-ext"))
		}
	}
	r := &Repo{opts: Options{}}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseFilelistsExt(bytes.NewReader(b), "fuzz", func(_ string, e extFile) error {
			d, err := r.extDigest(e)
			if err != nil || d == nil {
				return err
			}
			if !strings.HasPrefix(d.Path, "/") || strings.Contains(d.Path, " ") || len(d.Value) != d.Algorithm.Size() || d.Algorithm == "md5" {
				t.Fatalf("accepted bad digest %+v", d)
			}
			return nil
		})
	})
}

// FuzzMetadata runs decompression by magic and the filelists-ext parser
// on arbitrary bytes, with the decompressed size capped.
func FuzzMetadata(f *testing.F) {
	for _, p := range seedRepomds(f) {
		m, _ := filepath.Glob(filepath.Join(filepath.Dir(p), "*primary*"))
		for _, x := range m {
			b, _ := os.ReadFile(x)
			f.Add(b)
		}
	}
	f.Add([]byte(`<filelists-ext xmlns="http://linux.duke.edu/metadata/filelists-ext"><package name="a" arch="x86_64"><checksum type="sha256"/><file hash="e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855">/a b</file></package></filelists-ext>`))
	r := &Repo{opts: Options{}}
	f.Fuzz(func(t *testing.T, b []byte) {
		dr, closeFn, err := decompress(b, 1<<20, "fuzz")
		if err != nil {
			return
		}
		defer closeFn()
		_, _ = parseFilelistsExt(dr, "fuzz", func(_ string, e extFile) error {
			_, err := r.extDigest(e)
			return err
		})
		_, _ = io.Copy(io.Discard, dr)
	})
}
