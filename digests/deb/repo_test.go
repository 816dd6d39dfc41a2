package deb

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zest-attest/zest/digests"
)

// The repository fixture is fixtures/deb/repo (gen.sh: dpkg-scanpackages
// for Packages, sha256sum for Release). Its packages are xz.deb and
// two.deb, whose expected digests are xz.sha256 and two.sha256.
var repoDir = filepath.Join(fixtures, "repo")

func repoOpts() RepoOptions {
	return RepoOptions{Algorithm: digests.SHA256, InsecureSkipReleaseSignature: true, RetryDelay: time.Millisecond}
}

func expectedRepo(t *testing.T) []string {
	// Filename order: pool/main/z/zest-fixture/... then pool/main/z/zest-two/...
	return append(expected(t, "xz.sha256", true), expected(t, "two.sha256", true)...)
}

// server serves the fixture repository on 127.0.0.1; hook may answer a
// request itself by returning true.
func server(t *testing.T, hook func(w http.ResponseWriter, r *http.Request) bool) *httptest.Server {
	t.Helper()
	fs := http.FileServer(http.Dir(repoDir))
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hook != nil && hook(w, r) {
			return
		}
		fs.ServeHTTP(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func TestRepo(t *testing.T) {
	s := server(t, nil)
	for _, loc := range []string{repoDir, "file://" + mustAbs(t, repoDir), s.URL, s.URL + "/"} {
		t.Run(loc, func(t *testing.T) {
			r, err := OpenRepo(context.Background(), loc, "zest", "main", "amd64", repoOpts())
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, p := range r.Packages() {
				names = append(names, p.Name+" "+p.Version+" "+p.Architecture)
			}
			if want := []string{"zest-fixture 1.0-1 all", "zest-two 2.0-1 amd64"}; !slices.Equal(names, want) {
				t.Errorf("packages %q, want %q", names, want)
			}
			got, err := walkAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if g, w := lines(t, got, digests.SHA256), expectedRepo(t); !slices.Equal(g, w) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(g, "\n"), strings.Join(w, "\n"))
			}
		})
	}
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestRepoRequiresInsecureFlag(t *testing.T) {
	o := repoOpts()
	o.InsecureSkipReleaseSignature = false
	if _, err := OpenRepo(context.Background(), repoDir, "zest", "main", "amd64", o); !errors.Is(err, ErrUnsignedRelease) {
		t.Errorf("error %v, want ErrUnsignedRelease", err)
	}
}

func TestRepoPackagesFilter(t *testing.T) {
	o := repoOpts()
	o.Packages = []string{"zest-two"}
	r, err := OpenRepo(context.Background(), repoDir, "zest", "main", "amd64", o)
	if err != nil {
		t.Fatal(err)
	}
	got, err := walkAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := lines(t, got, digests.SHA256), expected(t, "two.sha256", true); !slices.Equal(g, w) {
		t.Errorf("got %q want %q", g, w)
	}
	o.Packages = []string{"nope"}
	if _, err := OpenRepo(context.Background(), repoDir, "zest", "main", "amd64", o); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("error %v", err)
	}
}

// TestRepoRetries: two 503s per file are retried; a 404 names the URL.
func TestRepoRetries(t *testing.T) {
	var mu sync.Mutex
	fails := map[string]int{}
	s := server(t, func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		if fails[r.URL.Path] < 2 {
			fails[r.URL.Path]++
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	r, err := OpenRepo(context.Background(), s.URL, "zest", "main", "amd64", repoOpts())
	if err != nil {
		t.Fatal(err)
	}
	got, err := walkAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(expectedRepo(t)) {
		t.Errorf("%d digests", len(got))
	}

	o := repoOpts()
	o.Attempts = 2
	s2 := server(t, func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "down", http.StatusBadGateway)
		return true
	})
	if _, err := OpenRepo(context.Background(), s2.URL, "zest", "main", "amd64", o); err == nil || !strings.Contains(err.Error(), "502") || !strings.Contains(err.Error(), "after 2 attempts") {
		t.Errorf("error %v", err)
	}

	s3 := server(t, func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "_amd64.deb") {
			http.NotFound(w, r)
			return true
		}
		return false
	})
	r, err = OpenRepo(context.Background(), s3.URL, "zest", "main", "amd64", repoOpts())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	err = r.Walk(context.Background(), func(digests.Digest) error { n++; return nil })
	if want := s3.URL + "/pool/main/z/zest-two/zest-two_2.0-1_amd64.deb"; !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), want) || n != 0 {
		t.Errorf("error %v (%d yielded), want 404 naming %s", err, n, want)
	}
}

// TestRepoTampered: a changed .deb, Packages or Release is refused.
func TestRepoTampered(t *testing.T) {
	flip := func(suffix string) func(w http.ResponseWriter, r *http.Request) bool {
		return func(w http.ResponseWriter, r *http.Request) bool {
			if !strings.HasSuffix(r.URL.Path, suffix) {
				return false
			}
			b, err := os.ReadFile(filepath.Join(repoDir, filepath.FromSlash(r.URL.Path)))
			if err != nil {
				t.Error(err)
			}
			b[len(b)/2] ^= 1
			w.Write(b)
			return true
		}
	}
	for _, tt := range []struct{ suffix, want string }{
		{"_all.deb", "zest-fixture_1.0-1_all.deb"},
		{"Packages.xz", "Packages.xz"},
	} {
		t.Run(tt.suffix, func(t *testing.T) {
			s := server(t, flip(tt.suffix))
			r, err := OpenRepo(context.Background(), s.URL, "zest", "main", "amd64", repoOpts())
			n := 0
			if err == nil {
				err = r.Walk(context.Background(), func(digests.Digest) error { n++; return nil })
			}
			if !errors.Is(err, ErrHashMismatch) || !strings.Contains(err.Error(), tt.want) || n != 0 {
				t.Errorf("error %v (%d yielded)", err, n)
			}
		})
	}
	// A Release listing only a Packages that is missing.
	s := server(t, func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/Release") {
			w.Write([]byte("Suite: zest\nSHA256:\n " + strings.Repeat("00", 32) + " 5 main/binary-amd64/Packages\n"))
			return true
		}
		return false
	})
	if _, err := OpenRepo(context.Background(), s.URL, "zest", "main", "amd64", repoOpts()); !errors.Is(err, ErrHashMismatch) {
		t.Errorf("error %v", err)
	}
	if _, err := OpenRepo(context.Background(), s.URL, "zest", "main", "arm64", repoOpts()); err == nil || !strings.Contains(err.Error(), "lists no main/binary-arm64/Packages") {
		t.Errorf("error %v", err)
	}
}

// TestInRelease: with no Release, a clearsigned InRelease is read (its
// signature ignored, as documented).
func TestInRelease(t *testing.T) {
	rel, err := os.ReadFile(filepath.Join(repoDir, "dists/zest/Release"))
	if err != nil {
		t.Fatal(err)
	}
	inrel := "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n" + string(rel) +
		"-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n"
	s := server(t, func(w http.ResponseWriter, r *http.Request) bool {
		switch {
		case strings.HasSuffix(r.URL.Path, "/Release"):
			http.NotFound(w, r)
		case strings.HasSuffix(r.URL.Path, "/InRelease"):
			w.Write([]byte(inrel))
		default:
			return false
		}
		return true
	})
	r, err := OpenRepo(context.Background(), s.URL, "zest", "main", "amd64", repoOpts())
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Packages()) != 2 {
		t.Errorf("%d packages", len(r.Packages()))
	}
}

func TestParsePackages(t *testing.T) {
	good := "Package: a\nFilename: pool/a.deb\nSize: 1\nSHA256: " + strings.Repeat("ab", 32) + "\nDescription: x\n more\n"
	for _, tt := range []struct{ in, want string }{
		{strings.Replace(good, "pool/a.deb", "../a.deb", 1), "bad Filename"},
		{strings.Replace(good, "pool/a.deb", "/a.deb", 1), "bad Filename"},
		{strings.Replace(good, "Size: 1", "Size: -1", 1), "bad Size"},
		{strings.Replace(good, "SHA256: ab", "SHA256: zz", 1), "SHA256"},
		{good + "\n" + good, "twice"},
		{" x\n", "continuation"},
		{"Package: a\nPackage: b\n", "repeated"},
	} {
		if _, err := parsePackages(bytes.NewReader([]byte(tt.in)), ""); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want %q", tt.in, err, tt.want)
		}
	}
	ps, err := parsePackages(strings.NewReader(good+"\nPackage: nofile\n"), "")
	if err != nil || len(ps) != 1 || ps[0].Name != "a" {
		t.Errorf("%+v %v", ps, err)
	}
}
