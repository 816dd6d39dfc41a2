package deb

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
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

// repoOpts verifies the fixture repository's signature with its key.
func repoOpts(t *testing.T) RepoOptions {
	return RepoOptions{Algorithm: digests.SHA256, Keyring: readFixture(t, "repo-key.asc"), RetryDelay: time.Millisecond}
}

func insecureOpts() RepoOptions {
	return RepoOptions{Algorithm: digests.SHA256, InsecureSkipReleaseSignature: true, RetryDelay: time.Millisecond}
}

// expectedRepo is the union of the three packages' expected digests,
// sorted, each (path, digest) once.
func expectedRepo(t *testing.T) []string {
	all := append(expected(t, "xz.sha256", true), expected(t, "two.sha256", true)...)
	all = append(all, expected(t, "debian/bzip2.sha256", true)...)
	slices.Sort(all)
	return slices.Compact(all)
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
	fpr := strings.TrimSpace(string(readFixture(t, "repo-key.fingerprint")))
	for _, loc := range []string{repoDir, "file://" + mustAbs(t, repoDir), s.URL, s.URL + "/"} {
		t.Run(loc, func(t *testing.T) {
			r, err := OpenRepo(context.Background(), loc, "zest", "main", "amd64", repoOpts(t))
			if err != nil {
				t.Fatal(err)
			}
			if r.Signer() != fpr {
				t.Errorf("signer %q, want %q", r.Signer(), fpr)
			}
			var names []string
			for _, p := range r.Packages() {
				names = append(names, p.Name+" "+p.Version+" "+p.Architecture)
			}
			if want := []string{"bzip2 1.0.8-5+b1 amd64", "zest-fixture 1.0-1 all", "zest-two 2.0-1 amd64"}; !slices.Equal(names, want) {
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

// TestRepoSignature: the Release must verify with the keyring, through
// InRelease or Release.gpg; anything else is refused before Packages is read.
func TestRepoSignature(t *testing.T) {
	inrel := string(readFixture(t, "repo/dists/zest/InRelease"))
	rel := string(readFixture(t, "repo/dists/zest/Release"))
	sig := string(readFixture(t, "repo/dists/zest/Release.gpg"))
	// tamper changes one byte of the signed Release text: the first
	// SHA256 entry's hash.
	tamper := func(s string) string {
		i := strings.Index(s, "SHA256:\n ") + len("SHA256:\n ")
		c := byte('0')
		if s[i] == '0' {
			c = '1'
		}
		return s[:i] + string(c) + s[i+1:]
	}
	// serve answers for InRelease, Release and Release.gpg ("" = 404).
	serve := func(inrel, rel, sig string) func(w http.ResponseWriter, r *http.Request) bool {
		return func(w http.ResponseWriter, r *http.Request) bool {
			var body string
			switch path.Base(r.URL.Path) {
			case "InRelease":
				body = inrel
			case "Release":
				body = rel
			case "Release.gpg":
				body = sig
			default:
				return false
			}
			if body == "" {
				http.NotFound(w, r)
			} else {
				io.WriteString(w, body)
			}
			return true
		}
	}
	other := repoOpts(t)
	other.Keyring = readFixture(t, "other-key.asc")
	both := repoOpts(t)
	both.Keyring = append(readFixture(t, "other-key.asc"), both.Keyring...)
	none := repoOpts(t)
	none.Keyring = nil
	contradict := repoOpts(t)
	contradict.InsecureSkipReleaseSignature = true
	garbage := repoOpts(t)
	garbage.Keyring = []byte("not a key")
	for _, tt := range []struct {
		name     string
		hook     func(w http.ResponseWriter, r *http.Request) bool
		opts     RepoOptions
		want     error  // errors.Is, or nil for success
		wantText string // substring of the error
	}{
		{"inrelease", serve(inrel, "", ""), repoOpts(t), nil, ""},
		{"release-gpg", serve("", rel, sig), repoOpts(t), nil, ""},
		{"keyring-with-two-keys", serve(inrel, "", ""), both, nil, ""},
		{"other-key", serve(inrel, rel, sig), other, ErrSignature, "InRelease"},
		{"other-key-release-gpg", serve("", rel, sig), other, ErrSignature, "Release.gpg"},
		{"inrelease-tampered", serve(tamper(inrel), rel, sig), repoOpts(t), ErrSignature, "InRelease"},
		{"release-tampered", serve("", tamper(rel), sig), repoOpts(t), ErrSignature, "Release.gpg"},
		{"inrelease-unsigned", serve(rel, rel, sig), repoOpts(t), ErrSignature, "does not start"},
		{"inrelease-text-before", serve(rel+inrel, rel, sig), repoOpts(t), ErrSignature, "does not start"},
		{"inrelease-text-after", serve(inrel+rel, rel, sig), repoOpts(t), ErrSignature, "after the InRelease signature"},
		{"no-signature", serve("", rel, ""), repoOpts(t), ErrSignature, "neither InRelease nor Release.gpg"},
		{"release-gpg-not-a-signature", serve("", rel, "junk"), repoOpts(t), ErrSignature, "Release.gpg"},
		{"no-keyring", nil, none, ErrNoKeyring, ""},
		{"contradiction", nil, contradict, nil, "contradict"},
		{"bad-keyring", nil, garbage, nil, "keyring"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := server(t, tt.hook)
			r, err := OpenRepo(context.Background(), s.URL, "zest", "main", "amd64", tt.opts)
			switch {
			case tt.want == nil && tt.wantText == "":
				if err != nil {
					t.Fatal(err)
				}
				if len(r.Packages()) != 3 {
					t.Errorf("%d packages", len(r.Packages()))
				}
			case err == nil:
				t.Fatal("no error")
			case tt.want != nil && !errors.Is(err, tt.want), !strings.Contains(err.Error(), tt.wantText):
				t.Errorf("error %v, want %v containing %q", err, tt.want, tt.wantText)
			}
		})
	}
}

// TestRepoReleaseChecks: a signed Release served for another suite, and one
// past its Valid-Until, are refused.
func TestRepoReleaseChecks(t *testing.T) {
	s := server(t, func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasPrefix(r.URL.Path, "/dists/testing/") {
			r.URL.Path = "/dists/zest/" + strings.TrimPrefix(r.URL.Path, "/dists/testing/")
		}
		return false
	})
	if _, err := OpenRepo(context.Background(), s.URL, "testing", "main", "amd64", repoOpts(t)); err == nil || !strings.Contains(err.Error(), `not "testing"`) {
		t.Errorf("suite mismatch: %v", err)
	}
	o := repoOpts(t)
	o.Now = func() time.Time { return time.Date(2100, 1, 1, 0, 0, 1, 0, time.UTC) }
	if _, err := OpenRepo(context.Background(), s.URL, "zest", "main", "amd64", o); !errors.Is(err, ErrReleaseExpired) {
		t.Errorf("expired: %v", err)
	}
	o.AllowExpiredRelease = true
	if _, err := OpenRepo(context.Background(), s.URL, "zest", "main", "amd64", o); err != nil {
		t.Errorf("AllowExpiredRelease: %v", err)
	}
}

// TestDebianInRelease verifies the InRelease apt fetched on this machine
// with Debian's archive keyring, and reads its SHA256 section. Skipped where
// either is missing.
func TestDebianInRelease(t *testing.T) {
	kr, err := os.ReadFile("/usr/share/keyrings/debian-archive-keyring.gpg")
	if err != nil {
		t.Skip(err)
	}
	files, _ := filepath.Glob("/var/lib/apt/lists/*debian_dists_*_InRelease")
	if len(files) == 0 {
		t.Skip("no Debian InRelease in /var/lib/apt/lists")
	}
	keys, err := parseKeyring(kr)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		text, signer, err := verifyInRelease(b, keys, time.Now())
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		rel, err := parseRelease(text)
		if err != nil || len(rel.sha256) < 10 || signer == "" {
			t.Errorf("%s: %d SHA256 entries, signer %q, %v", f, len(rel.sha256), signer, err)
		}
		b[len(b)/3] ^= 1 // inside the signed text, or the armored signature
		if _, _, err := verifyInRelease(b, keys, time.Now()); err == nil {
			t.Errorf("%s: tampered copy verifies", f)
		}
	}
}

func TestRepoPackagesFilter(t *testing.T) {
	o := repoOpts(t)
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
	r, err := OpenRepo(context.Background(), s.URL, "zest", "main", "amd64", repoOpts(t))
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

	o := repoOpts(t)
	o.Attempts = 2
	s2 := server(t, func(w http.ResponseWriter, r *http.Request) bool {
		http.Error(w, "down", http.StatusBadGateway)
		return true
	})
	if _, err := OpenRepo(context.Background(), s2.URL, "zest", "main", "amd64", o); err == nil || !strings.Contains(err.Error(), "502") || !strings.Contains(err.Error(), "after 2 attempts") {
		t.Errorf("error %v", err)
	}

	s3 := server(t, func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "zest-two_2.0-1_amd64.deb") {
			http.NotFound(w, r)
			return true
		}
		return false
	})
	r, err = OpenRepo(context.Background(), s3.URL, "zest", "main", "amd64", repoOpts(t))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	err = r.Walk(context.Background(), func(digests.Digest) error { n++; return nil })
	if want := s3.URL + "/pool/main/z/zest-two/zest-two_2.0-1_amd64.deb"; !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), want) || n != 0 {
		t.Errorf("error %v (%d yielded), want 404 naming %s", err, n, want)
	}
}

// TestRepoTampered: a .deb or Packages that differs from what the index
// above it says, or that cannot be fetched, fails the whole walk, with an
// error naming the URL, and nothing is yielded.
func TestRepoTampered(t *testing.T) {
	// rewrite serves f(content) for paths ending in suffix.
	rewrite := func(suffix string, f func([]byte) []byte) func(w http.ResponseWriter, r *http.Request) bool {
		return func(w http.ResponseWriter, r *http.Request) bool {
			if !strings.HasSuffix(r.URL.Path, suffix) {
				return false
			}
			b, err := os.ReadFile(filepath.Join(repoDir, filepath.FromSlash(r.URL.Path)))
			if err != nil {
				t.Error(err)
			}
			w.Write(f(b))
			return true
		}
	}
	flip := func(b []byte) []byte { b[len(b)/2] ^= 1; return b }
	half := func(b []byte) []byte { return b[:len(b)/2] }
	longer := func(b []byte) []byte { return append(b, 0) }
	status := func(suffix string, code int) func(w http.ResponseWriter, r *http.Request) bool {
		return func(w http.ResponseWriter, r *http.Request) bool {
			if strings.HasSuffix(r.URL.Path, suffix) {
				http.Error(w, "no", code)
				return true
			}
			return false
		}
	}
	badRelease := func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/Release") {
			w.Write([]byte("Suite: zest\nSHA256:\n " + strings.Repeat("00", 32) + " 1857 main/binary-amd64/Packages\n"))
			return true
		}
		return false
	}
	const deb = "/pool/main/z/zest-fixture/zest-fixture_1.0-1_all.deb"
	const pkgs = "/dists/zest/main/binary-amd64/Packages.xz"
	for _, tt := range []struct {
		name string
		hook func(w http.ResponseWriter, r *http.Request) bool
		opts RepoOptions
		want error
		path string // the URL path the error must name
		text string
	}{
		{"deb-flipped", rewrite(deb, flip), repoOpts(t), ErrHashMismatch, deb, "SHA-256"},
		{"deb-truncated", rewrite(deb, half), repoOpts(t), ErrHashMismatch, deb, "2658 bytes"},
		{"deb-longer", rewrite(deb, longer), repoOpts(t), ErrHashMismatch, deb, "longer"},
		{"deb-404", status(deb, http.StatusNotFound), repoOpts(t), ErrNotFound, deb, "404"},
		{"deb-500", status(deb, http.StatusInternalServerError), repoOpts(t), nil, deb, "500 Internal Server Error (after 4 attempts)"},
		{"packages-flipped", rewrite(pkgs, flip), repoOpts(t), ErrHashMismatch, pkgs, "InRelease says"},
		{"packages-truncated", rewrite(pkgs, half), repoOpts(t), ErrHashMismatch, pkgs, "552 bytes"},
		{"packages-500", status(pkgs, http.StatusInternalServerError), repoOpts(t), nil, pkgs, "500"},
		{"release-hash", badRelease, insecureOpts(), ErrHashMismatch, "/dists/zest/main/binary-amd64/Packages", "Release says"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := server(t, tt.hook)
			r, err := OpenRepo(context.Background(), s.URL, "zest", "main", "amd64", tt.opts)
			n := 0
			if err == nil {
				err = r.Walk(context.Background(), func(digests.Digest) error { n++; return nil })
			}
			switch {
			case err == nil:
				t.Fatal("no error")
			case n != 0:
				t.Errorf("%d digests yielded", n)
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Errorf("error %v, want %v", err, tt.want)
			case !strings.Contains(err.Error(), s.URL+tt.path) || !strings.Contains(err.Error(), tt.text):
				t.Errorf("error %v, want it to name %s and say %q", err, s.URL+tt.path, tt.text)
			}
		})
	}
	if _, err := OpenRepo(context.Background(), repoDir, "zest", "main", "arm64", repoOpts(t)); err == nil || !strings.Contains(err.Error(), "lists no main/binary-arm64/Packages") {
		t.Errorf("error %v", err)
	}
}

// TestRepoCancel: cancelling the context stops a walk whose server hangs,
// promptly and with nothing yielded.
func TestRepoCancel(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	s := server(t, func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, ".deb") {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return true
		}
		return false
	})
	r, err := OpenRepo(context.Background(), s.URL, "zest", "main", "amd64", repoOpts(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	n := 0
	err = r.Walk(ctx, func(digests.Digest) error { n++; return nil })
	if !errors.Is(err, context.DeadlineExceeded) || n != 0 {
		t.Errorf("error %v, %d yielded", err, n)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

// TestRepoInsecure: with InsecureSkipReleaseSignature the Release is read
// as is; with no Release, InRelease's text is read and its signature
// ignored, as documented.
func TestRepoInsecure(t *testing.T) {
	r, err := OpenRepo(context.Background(), repoDir, "zest", "main", "amd64", insecureOpts())
	if err != nil {
		t.Fatal(err)
	}
	if r.Signer() != "" {
		t.Errorf("signer %q", r.Signer())
	}
	inrel := readFixture(t, "repo/dists/zest/InRelease")
	s := server(t, func(w http.ResponseWriter, r *http.Request) bool {
		switch path.Base(r.URL.Path) {
		case "Release":
			http.NotFound(w, r)
		case "InRelease":
			w.Write(inrel)
		default:
			return false
		}
		return true
	})
	r, err = OpenRepo(context.Background(), s.URL, "zest", "main", "amd64", insecureOpts())
	if err != nil {
		t.Fatal(err)
	}
	got, err := walkAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := lines(t, got, digests.SHA256), expectedRepo(t); !slices.Equal(g, w) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(g, "\n"), strings.Join(w, "\n"))
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
