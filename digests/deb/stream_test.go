package deb

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
)

// onlyReader hides every method but Read, so Open cannot seek.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// streamDigests hashes every regular file and hard link of a package read
// with Open, as "path hex" lines with package paths (no merged-/usr).
func streamDigests(t *testing.T, r io.Reader, name string) ([]string, error) {
	t.Helper()
	dr, err := Open(onlyReader{r}, name)
	if err != nil {
		return nil, err
	}
	defer dr.Close()
	sums := map[string]string{}
	var out []string
	for {
		e, err := dr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch {
		case e.IsRegular():
			h := sha256.New()
			if n, err := io.Copy(h, dr); err != nil || n != e.Size {
				return nil, errors.Join(err, errors.New("short read"))
			}
			sums[e.Path] = hex.EncodeToString(h.Sum(nil))
		case e.Type == tar.TypeLink:
			sums[e.Path] = sums[e.Linkname]
		default:
			if n, err := io.Copy(io.Discard, dr); n != 0 || err != nil {
				t.Errorf("%s: non-regular entry has %d bytes, %v", e.Path, n, err)
			}
			continue
		}
		out = append(out, strings.ReplaceAll(e.Path, " ", "_")+" "+sums[e.Path])
	}
	slices.Sort(out)
	return out, nil
}

// TestOpenStream reads every fixture through a plain io.Reader and checks
// the digests against dpkg-deb -x + sha256sum.
func TestOpenStream(t *testing.T) {
	for _, p := range packages {
		t.Run(p.name, func(t *testing.T) {
			f, err := os.Open(fixture(p.name + ".deb"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := streamDigests(t, f, p.name)
			if err != nil {
				t.Fatal(err)
			}
			if w := expected(t, p.expected, false); !slices.Equal(got, w) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(w, "\n"))
			}
		})
	}
}

// TestOpenOneFile pulls one file out of Debian's bzip2 package, the way a
// caller extracts a kernel image.
func TestOpenOneFile(t *testing.T) {
	f, err := os.Open(fixture(realDeb + ".deb"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dr, err := Open(f, realDeb)
	if err != nil {
		t.Fatal(err)
	}
	defer dr.Close()
	if dr.DataMember() != "data.tar.xz" || dr.Version() != "2.0" {
		t.Errorf("member %q version %q", dr.DataMember(), dr.Version())
	}
	var want string
	for _, l := range expected(t, "debian/bzip2.sha256", false) {
		if p, sum, _ := strings.Cut(l, " "); p == "/bin/bunzip2" {
			want = sum
		}
	}
	for {
		e, err := dr.Next()
		if err != nil {
			t.Fatal(err)
		}
		if e.Path == "/bin/bunzip2" {
			b, err := io.ReadAll(dr)
			if err != nil {
				t.Fatal(err)
			}
			if s := sha256.Sum256(b); hex.EncodeToString(s[:]) != want || !bytes.HasPrefix(b, []byte("\x7fELF")) {
				t.Errorf("bunzip2: %d bytes, sha256 %x, want %s", len(b), s, want)
			}
			return
		}
	}
}

func TestOpenBroken(t *testing.T) {
	odd := buildDebWith(t, make([]byte, 1023)) // control.tar of odd size: a pad byte follows
	badPad := bytes.Clone(odd)
	badPad[8+60+4+60+1023] = 'X'
	tests := []struct {
		name string
		data []byte
		want []string
	}{
		{"truncated", readFixture(t, "truncated.deb"), []string{`member "data.tar.xz"`, "truncated"}},
		{"corrupt", readFixture(t, "corrupt.deb"), []string{`member "data.tar.xz"`}},
		{"empty", nil, []string{"too short"}},
		{"magic-only", []byte(arMagic), []string{"empty ar archive"}},
		{"header-cut", readFixture(t, "xz.deb")[:40], []string{"an ar member header needs 60"}},
		{"no-data", readFixture(t, "xz.deb")[:8+60+4], []string{"no control.tar member"}},
		{"bad-pad", badPad, []string{"pad byte"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := streamDigests(t, bytes.NewReader(tt.data), tt.name+".deb")
			if err == nil {
				t.Fatal("no error")
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Errorf("not a FormatError: %v", err)
			}
			for _, w := range append(tt.want, tt.name+".deb") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	if _, err := streamDigests(t, bytes.NewReader(odd), "odd.deb"); err != nil {
		t.Errorf("odd-sized control member: %v", err)
	}
}

// buildDebWith is buildDeb's one-file package with the given control
// member content.
func buildDebWith(t *testing.T, control []byte) []byte {
	var data bytes.Buffer
	tw := tar.NewWriter(&data)
	tw.WriteHeader(&tar.Header{Name: "./usr/bin/x", Typeflag: tar.TypeReg, Size: 2, Mode: 0o755})
	tw.Write([]byte("x\n"))
	tw.Close()
	return arArchive(t, "debian-binary", []byte("2.0\n"), "control.tar", control, "data.tar", data.Bytes())
}
