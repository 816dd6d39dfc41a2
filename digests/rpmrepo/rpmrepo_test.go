package rpmrepo

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/zest-attest/zest/digests"
	"github.com/zest-attest/zest/digests/rpm"
)

const (
	rpmFixtures  = "../../fixtures/rpm"
	repoFixtures = "../../fixtures/rpmrepo"
)

// isMany reports whether variant is one of the 200-package repositories,
// whose packages are committed in fixtures/rpmrepo/many/Packages.
func isMany(variant string) bool { return strings.HasPrefix(variant, "many") }

// pkgFile is where a fixture package is stored.
func pkgFile(variant, p string) string {
	if isMany(variant) {
		return filepath.Join(repoFixtures, "many", "Packages", p+".rpm")
	}
	return filepath.Join(rpmFixtures, p+".rpm")
}

// pkgList reads the names of a fixture repo's packages.
func pkgList(t testing.TB, variant string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoFixtures, variant, "packages"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(string(b))
}

func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// installRepo puts the committed repodata of variant and the fixture RPMs
// it lists into dir (replacing any repodata already there).
func installRepo(t testing.TB, dir, variant string) {
	t.Helper()
	os.RemoveAll(filepath.Join(dir, "repodata"))
	md, err := filepath.Glob(filepath.Join(repoFixtures, variant, "repodata", "*"))
	if err != nil || len(md) == 0 {
		t.Fatalf("no repodata for %s: %v", variant, err)
	}
	for _, f := range md {
		copyFile(t, f, filepath.Join(dir, "repodata", filepath.Base(f)))
	}
	for _, p := range pkgList(t, variant) {
		copyFile(t, pkgFile(variant, p), filepath.Join(dir, "Packages", p+".rpm"))
	}
}

func mkRepo(t testing.TB, variant string) string {
	dir := t.TempDir()
	installRepo(t, dir, variant)
	return dir
}

// expected is the set "path alg hex" from the packages' .sums files
// (rpm --root -i + shaNsum: independent of zest), or for the 200-package
// repositories from many/expected (the same, written by gen.sh).
func expected(t testing.TB, pkgs []string) []string {
	t.Helper()
	var out []string
	if len(pkgs) > 0 && strings.HasPrefix(pkgs[0], "zest-many-") {
		b, err := os.ReadFile(filepath.Join(repoFixtures, "many", "expected"))
		if err != nil {
			t.Fatal(err)
		}
		sums := map[string][]string{}
		for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
			f := strings.SplitN(l, " ", 3)
			if len(f) != 3 {
				t.Fatalf("many/expected: bad line %q", l)
			}
			sums[f[0]] = append(sums[f[0]], digests.IMAPath(f[2])+" sha256 "+f[1])
		}
		for _, p := range pkgs {
			name := strings.TrimSuffix(p, "-1.0-1.noarch")
			if len(sums[name]) == 0 {
				t.Fatalf("many/expected has nothing for %s", name)
			}
			out = append(out, sums[name]...)
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	for _, p := range pkgs {
		alg := map[string]string{"signed-ecdsa": "sha512", "signed-rsa": "sha256", "signed-rsa-main": "sha256"}[p]
		if alg == "" {
			alg = p[strings.LastIndexByte(p, '-')+1:]
		}
		b, err := os.ReadFile(filepath.Join(rpmFixtures, p+".sums"))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
			sum, path, ok := strings.Cut(l, "  ")
			if !ok {
				t.Fatalf("%s.sums: bad line %q", p, l)
			}
			out = append(out, digests.IMAPath(path)+" "+alg+" "+sum)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

type walked struct {
	set  []string          // "path alg hex", sorted, unique
	sigs map[string]string // "path alg hex" -> hex signature, signed records only
	all  []digests.Digest
}

func walk(t testing.TB, loc string, opts Options) (walked, Stats, error) {
	t.Helper()
	ctx := context.Background()
	r, err := Open(ctx, loc, opts)
	if err != nil {
		return walked{}, Stats{}, err
	}
	w := walked{sigs: map[string]string{}}
	err = r.Walk(ctx, func(d digests.Digest) error {
		w.all = append(w.all, d)
		k := fmt.Sprintf("%s %s %x", d.Path, d.Algorithm, d.Value)
		w.set = append(w.set, k)
		if d.Signature != nil {
			w.sigs[k] = hex.EncodeToString(d.Signature)
		}
		return nil
	})
	slices.Sort(w.set)
	w.set = slices.Compact(w.set)
	return w, r.Stats(), err
}

// server serves dir, counting requests for .rpm files.
type server struct {
	*httptest.Server
	pkgReqs  atomic.Int64
	allReqs  atomic.Int64
	mutate   atomic.Pointer[func(w http.ResponseWriter, r *http.Request) bool]
	rangeHdr atomic.Int64 // requests that carried Range
}

func serve(t testing.TB, dir string) *server {
	s := &server{}
	fs := http.FileServer(http.Dir(dir))
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.allReqs.Add(1)
		if strings.HasSuffix(r.URL.Path, ".rpm") {
			s.pkgReqs.Add(1)
		}
		if r.Header.Get("Range") != "" {
			s.rangeHdr.Add(1)
		}
		if m := s.mutate.Load(); m != nil && (*m)(w, r) {
			return
		}
		fs.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) setMutate(f func(w http.ResponseWriter, r *http.Request) bool) { s.mutate.Store(&f) }

func TestLocalAndHTTPMatchSums(t *testing.T) {
	for _, variant := range []string{"base", "full", "full-xz", "full-bz2", "many"} {
		t.Run(variant, func(t *testing.T) {
			dir := mkRepo(t, variant)
			want := expected(t, pkgList(t, variant))
			local, st, err := walk(t, dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(local.set, want) {
				t.Errorf("local digests differ from .sums:\n got %d %q\nwant %d", len(local.set), local.set, len(want))
			}
			n := len(pkgList(t, variant))
			if st.Packages != n || st.Fetched != n || st.FastPath {
				t.Errorf("local stats %+v, want %d packages fetched", st, n)
			}
			srv := serve(t, dir)
			remote, st, err := walk(t, srv.URL, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(remote.all, local.all, func(a, b digests.Digest) bool { return digests.Compare(a, b) == 0 }) {
				t.Errorf("remote walk differs from local")
			}
			if st.Fetched != n || srv.pkgReqs.Load() != int64(n) || srv.rangeHdr.Load() != int64(n) {
				t.Errorf("remote: stats %+v, %d package requests, %d with Range; want %d", st, srv.pkgReqs.Load(), srv.rangeHdr.Load(), n)
			}
			checkSigs(t, local, pkgList(t, variant))
			if !slices.IsSortedFunc(local.all, digests.Compare) {
				t.Error("not sorted")
			}
		})
	}
}

// checkSigs compares the IMA signatures yielded with the .sigs files
// (rpm -qp --qf FILESIGNATURES).
func checkSigs(t *testing.T, w walked, pkgs []string) {
	t.Helper()
	wantSigs := map[string]bool{}
	for _, p := range pkgs {
		b, err := os.ReadFile(filepath.Join(rpmFixtures, p+".sigs"))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
			sig, path, _ := strings.Cut(l, "\t")
			wantSigs[digests.IMAPath(path)+" "+sig] = true
		}
	}
	got := map[string]bool{}
	for k, sig := range w.sigs {
		got[strings.SplitN(k, " ", 2)[0]+" "+sig] = true
	}
	for k := range wantSigs {
		if !got[k] {
			t.Errorf("signature missing: %s", k)
		}
	}
	if len(got) != len(wantSigs) {
		t.Errorf("%d signatures yielded, want %d", len(got), len(wantSigs))
	}
}

// writeMetadata compresses content, stores it as repodata/<sum>-<typ>.xml<ext>
// and adds or replaces the <data type=typ> entry in repomd.xml.
func writeMetadata(t testing.TB, dir, typ, comp string, content []byte) {
	t.Helper()
	var buf bytes.Buffer
	ext := ""
	switch comp {
	case "gz":
		zw := gzip.NewWriter(&buf)
		zw.Write(content)
		zw.Close()
		ext = ".gz"
	case "zst":
		zw, _ := zstd.NewWriter(&buf)
		zw.Write(content)
		zw.Close()
		ext = ".zst"
	case "plain":
		buf.Write(content)
	default:
		t.Fatalf("compression %s", comp)
	}
	sum := sha256.Sum256(buf.Bytes())
	osum := sha256.Sum256(content)
	href := fmt.Sprintf("repodata/%x-%s.xml%s", sum, typ, ext)
	if err := os.WriteFile(filepath.Join(dir, href), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	entry := fmt.Sprintf(`<data type=%q>
    <checksum type="sha256">%x</checksum>
    <open-checksum type="sha256">%x</open-checksum>
    <location href=%q/>
    <timestamp>1700000000</timestamp>
    <size>%d</size>
    <open-size>%d</open-size>
  </data>`, typ, sum, osum, href, buf.Len(), len(content))
	mdPath := filepath.Join(dir, "repodata", "repomd.xml")
	md, err := os.ReadFile(mdPath)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?s)<data type="` + regexp.QuoteMeta(typ) + `">.*?</data>`)
	if re.Match(md) {
		md = re.ReplaceAll(md, []byte(entry))
	} else {
		md = bytes.Replace(md, []byte("</repomd>"), []byte("  "+entry+"\n</repomd>"), 1)
	}
	if err := os.WriteFile(mdPath, md, 0o644); err != nil {
		t.Fatal(err)
	}
}

// readMetadata returns the decompressed content of repomd's typ entry.
func readMetadata(t testing.TB, dir, typ string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "repodata", "repomd.xml"))
	if err != nil {
		t.Fatal(err)
	}
	md, err := parseRepomd(b, "repomd.xml")
	if err != nil {
		t.Fatal(err)
	}
	f := md.find(typ)
	raw, err := os.ReadFile(filepath.Join(dir, f.Location.Href))
	if err != nil {
		t.Fatal(err)
	}
	r, closeFn, err := decompress(raw, MaxOpenMetadataSize, typ)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// filelistsExt writes filelists-ext.xml for the packages from their
// headers, as createrepo_c >= 0.21 --filelists-ext would (Debian's 0.17.3
// cannot): one <checksum type> per package, hash on files with a digest.
func filelistsExt(t testing.TB, dir string, pkgs []string) []byte {
	t.Helper()
	var b bytes.Buffer
	fmt.Fprintf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<filelists-ext xmlns=\"http://linux.duke.edu/metadata/filelists-ext\" packages=\"%d\">\n", len(pkgs))
	for _, p := range pkgs {
		fh, err := os.Open(filepath.Join(dir, "Packages", p+".rpm"))
		if err != nil {
			t.Fatal(err)
		}
		h, err := rpm.ReadHeader(fh, p)
		fh.Close()
		if err != nil {
			t.Fatal(err)
		}
		alg, _ := h.FileDigestAlgorithm()
		files, err := h.Files()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "<package pkgid=\"x\" name=%q arch=%q>\n  <version epoch=\"0\" ver=%q rel=%q/>\n  <checksum type=%q/>\n", h.Name(), h.Arch(), h.Version(), h.Release(), alg)
		for _, f := range files {
			typ := ""
			switch {
			case f.IsDir():
				typ = ` type="dir"`
			case f.IsGhost():
				typ = ` type="ghost"`
			}
			hash := ""
			if len(f.Digest) > 0 {
				hash = fmt.Sprintf(` hash="%x"`, f.Digest)
			}
			fmt.Fprintf(&b, "  <file%s%s>%s</file>\n", typ, hash, f.Path)
		}
		b.WriteString("</package>\n")
	}
	b.WriteString("</filelists-ext>\n")
	return b.Bytes()
}

func TestFilelistsExtEqualsHeaders(t *testing.T) {
	dir := mkRepo(t, "full")
	pkgs := pkgList(t, "full")
	writeMetadata(t, dir, "filelists-ext", "zst", filelistsExt(t, dir, pkgs))
	srv := serve(t, dir)
	fast, st, err := walk(t, srv.URL, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !st.FastPath || st.Fetched != 0 || srv.pkgReqs.Load() != 0 || st.Packages != len(pkgs) {
		t.Errorf("fast path stats %+v, %d package requests", st, srv.pkgReqs.Load())
	}
	slow, st, err := walk(t, dir, Options{HeadersOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if st.FastPath {
		t.Error("HeadersOnly took the fast path")
	}
	if !slices.Equal(fast.set, slow.set) {
		t.Errorf("filelists-ext differs from headers:\n%q\n%q", fast.set, slow.set)
	}
	if !slices.Equal(fast.set, expected(t, pkgs)) {
		t.Error("filelists-ext differs from .sums")
	}
	if len(fast.sigs) != 0 {
		t.Error("filelists-ext cannot carry signatures")
	}
}

func TestMetadataCompressions(t *testing.T) {
	for _, comp := range []string{"zst", "plain", "gz"} {
		t.Run(comp, func(t *testing.T) {
			dir := mkRepo(t, "base")
			writeMetadata(t, dir, "primary", comp, readMetadata(t, dir, "primary"))
			w, _, err := walk(t, dir, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(w.set, expected(t, pkgList(t, "base"))) {
				t.Error("digests differ from .sums")
			}
		})
	}
}

func TestCacheFetchesOnlyNewPackages(t *testing.T) {
	dir := t.TempDir()
	installRepo(t, dir, "base")
	srv := serve(t, dir)
	cache := t.TempDir()
	opts := Options{CacheDir: cache}
	first, st, err := walk(t, srv.URL, opts)
	if err != nil {
		t.Fatal(err)
	}
	if st.Fetched != 4 || st.Cached != 0 || srv.pkgReqs.Load() != 4 {
		t.Fatalf("first run: %+v, %d package requests", st, srv.pkgReqs.Load())
	}
	second, st, err := walk(t, srv.URL, opts)
	if err != nil {
		t.Fatal(err)
	}
	if st.Fetched != 0 || st.Cached != 4 || srv.pkgReqs.Load() != 4 {
		t.Fatalf("second run: %+v, %d package requests (want still 4)", st, srv.pkgReqs.Load())
	}
	if !slices.EqualFunc(first.all, second.all, func(a, b digests.Digest) bool { return digests.Compare(a, b) == 0 }) {
		t.Error("cached walk differs (signatures included)")
	}
	installRepo(t, dir, "full") // three packages added
	third, st, err := walk(t, srv.URL, opts)
	if err != nil {
		t.Fatal(err)
	}
	if st.Fetched != 3 || st.Cached != 4 || srv.pkgReqs.Load() != 7 {
		t.Fatalf("after adding: %+v, %d package requests (want 7)", st, srv.pkgReqs.Load())
	}
	if !slices.Equal(third.set, expected(t, pkgList(t, "full"))) {
		t.Error("digests differ from .sums")
	}
	checkSigs(t, third, pkgList(t, "full"))
}

func TestServerIgnoringRange(t *testing.T) {
	dir := mkRepo(t, "base")
	srv := serve(t, dir)
	srv.setMutate(func(w http.ResponseWriter, r *http.Request) bool {
		r.Header.Del("Range")
		return false
	})
	w, st, err := walk(t, srv.URL, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Fetched != 4 || !slices.Equal(w.set, expected(t, pkgList(t, "base"))) {
		t.Errorf("200 fallback: %+v", st)
	}
}

func TestErrors(t *testing.T) {
	type tc struct {
		name   string
		setup  func(t *testing.T, dir string, srv *server)
		local  bool
		is     error
		substr string
	}
	gz := "Packages/gzip-sha256.rpm"
	cases := []tc{
		{name: "primary checksum", local: true, is: ErrChecksum, substr: "primary.xml.gz", setup: func(t *testing.T, dir string, _ *server) {
			m, _ := filepath.Glob(filepath.Join(dir, "repodata", "*primary.xml.gz"))
			b, _ := os.ReadFile(m[0])
			b[len(b)-5] ^= 1
			os.WriteFile(m[0], b, 0o644)
		}},
		{name: "open checksum", local: true, is: ErrChecksum, substr: "decompressed", setup: func(t *testing.T, dir string, _ *server) {
			md := filepath.Join(dir, "repodata", "repomd.xml")
			b, _ := os.ReadFile(md)
			b = regexp.MustCompile(`(<open-checksum type="sha256">)0*[0-9a-f]`).ReplaceAllFunc(b, func(m []byte) []byte {
				m = bytes.Clone(m)
				if m[len(m)-1] == '0' {
					m[len(m)-1] = '1'
				} else {
					m[len(m)-1] = '0'
				}
				return m
			})
			os.WriteFile(md, b, 0o644)
		}},
		{name: "local missing package", local: true, is: ErrNotFound, substr: "gzip-sha256.rpm", setup: func(t *testing.T, dir string, _ *server) {
			os.Remove(filepath.Join(dir, gz))
		}},
		{name: "local truncated header", local: true, is: rpm.ErrTruncated, substr: "gzip-sha256.rpm", setup: func(t *testing.T, dir string, _ *server) {
			copyFile(t, filepath.Join(rpmFixtures, "truncated.rpm"), filepath.Join(dir, gz))
		}},
		{name: "local corrupt header", local: true, is: rpm.ErrHeaderDigest, substr: "gzip-sha256.rpm", setup: func(t *testing.T, dir string, _ *server) {
			copyFile(t, filepath.Join(rpmFixtures, "corrupt-header.rpm"), filepath.Join(dir, gz))
		}},
		{name: "http 404", is: ErrNotFound, substr: "/" + gz + ": HTTP 404", setup: func(t *testing.T, dir string, _ *server) {
			os.Remove(filepath.Join(dir, gz))
		}},
		{name: "http 500", substr: "/" + gz + ": HTTP 500", setup: func(t *testing.T, _ string, srv *server) {
			srv.setMutate(func(w http.ResponseWriter, r *http.Request) bool {
				if strings.HasSuffix(r.URL.Path, gz) {
					http.Error(w, "boom", 500)
					return true
				}
				return false
			})
		}},
		{name: "http bad content-range", substr: "server sent", setup: func(t *testing.T, _ string, srv *server) {
			srv.setMutate(func(w http.ResponseWriter, r *http.Request) bool {
				if strings.HasSuffix(r.URL.Path, gz) {
					w.Header().Set("Content-Range", "bytes 100-200/15371")
					w.WriteHeader(http.StatusPartialContent)
					w.Write(make([]byte, 101))
					return true
				}
				return false
			})
		}},
		{name: "http truncated header", is: rpm.ErrTruncated, substr: gz, setup: func(t *testing.T, dir string, _ *server) {
			copyFile(t, filepath.Join(rpmFixtures, "truncated.rpm"), filepath.Join(dir, gz))
		}},
		{name: "http short body", is: rpm.ErrTruncated, substr: gz, setup: func(t *testing.T, _ string, srv *server) {
			srv.setMutate(func(w http.ResponseWriter, r *http.Request) bool {
				if strings.HasSuffix(r.URL.Path, gz) {
					b, _ := os.ReadFile(filepath.Join(rpmFixtures, "gzip-sha256.rpm"))
					w.Write(b[:6000]) // 200, cut inside the main header
					return true
				}
				return false
			})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := mkRepo(t, "base")
			srv := serve(t, dir)
			c.setup(t, dir, srv)
			loc := srv.URL
			if c.local {
				loc = dir
			}
			w, _, err := walk(t, loc, Options{Retries: 1, CacheDir: t.TempDir()})
			if err == nil {
				t.Fatal("no error")
			}
			if len(w.all) != 0 {
				t.Errorf("%d digests yielded before the error", len(w.all))
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %v is not %v", err, c.is)
			}
			if !strings.Contains(err.Error(), c.substr) {
				t.Errorf("error %q does not mention %q", err, c.substr)
			}
			if c.name == "http 500" && srv.pkgReqs.Load() < 2 {
				t.Errorf("500 not retried")
			}
		})
	}
}

func TestRepomdSignature(t *testing.T) {
	dir := mkRepo(t, "base")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	md, _ := os.ReadFile(filepath.Join(dir, "repodata", "repomd.xml"))
	sum := sha256.Sum256(md)
	sig, _ := ecdsa.SignASN1(rand.Reader, key, sum[:])
	asc := filepath.Join(dir, "repodata", "repomd.xml.asc")
	ctx := context.Background()
	if _, err := Open(ctx, dir, Options{VerifyKey: &key.PublicKey}); !errors.Is(err, ErrSignature) {
		t.Errorf("missing .asc: %v", err)
	}
	os.WriteFile(asc, sig, 0o644)
	if _, err := Open(ctx, dir, Options{VerifyKey: &key.PublicKey}); err != nil {
		t.Errorf("good signature: %v", err)
	}
	if _, err := Open(ctx, dir, Options{VerifyKey: &other.PublicKey}); !errors.Is(err, ErrSignature) {
		t.Errorf("wrong key: %v", err)
	}
	rk, _ := rsa.GenerateKey(rand.Reader, 1024)
	if _, err := Open(ctx, dir, Options{VerifyKey: &rk.PublicKey}); !errors.Is(err, ErrSignature) {
		t.Errorf("RSA key: %v", err)
	}
	os.WriteFile(asc, []byte("-----BEGIN PGP SIGNATURE-----\n\nxx\n-----END PGP SIGNATURE-----\n"), 0o644)
	if _, err := Open(ctx, dir, Options{VerifyKey: &key.PublicKey}); !errors.Is(err, ErrSignature) || !strings.Contains(err.Error(), "OpenPGPKeys") {
		t.Errorf("PGP .asc: %v", err)
	}
	if _, err := Open(ctx, dir, Options{}); err != nil {
		t.Errorf("no key, PGP .asc: %v", err)
	}
}

func TestMD5Refused(t *testing.T) {
	dir := mkRepo(t, "base")
	pkgs := []string{"gzip-md5"}
	copyFile(t, filepath.Join(rpmFixtures, "gzip-md5.rpm"), filepath.Join(dir, "Packages", "gzip-md5.rpm"))
	writeMetadata(t, dir, "filelists-ext", "gz", filelistsExt(t, dir, pkgs))
	if _, _, err := walk(t, dir, Options{}); !errors.Is(err, rpm.ErrMD5) {
		t.Errorf("md5 filelists-ext: %v", err)
	}
	w, _, err := walk(t, dir, Options{AllowMD5: true})
	if err != nil || !slices.Equal(w.set, expected(t, pkgs)) {
		t.Errorf("AllowMD5: %v", err)
	}
}
