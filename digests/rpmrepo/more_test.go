package rpmrepo

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zest-attest/zest/digests"
)

// TestCommittedFilelistsExt: the filelists-ext fixtures (written by gen.sh
// from `rpm -qp`, not by zest) give, without touching a package, the same
// digests as reading every header, and both equal the installed files'
// sums.
func TestCommittedFilelistsExt(t *testing.T) {
	for _, variant := range []string{"full-ext", "many-ext"} {
		t.Run(variant, func(t *testing.T) {
			dir := mkRepo(t, variant)
			pkgs := pkgList(t, variant)
			srv := serve(t, dir)
			prog := &countProgress{}
			fast, st, err := walk(t, srv.URL, Options{Progress: prog})
			if err != nil {
				t.Fatal(err)
			}
			if !st.FastPath || st.Fetched != 0 || st.Packages != len(pkgs) || srv.pkgReqs.Load() != 0 {
				t.Errorf("fast path: stats %+v, %d package requests", st, srv.pkgReqs.Load())
			}
			if prog.files.Load() != int64(len(pkgs)) {
				t.Errorf("progress: %d packages, want %d", prog.files.Load(), len(pkgs))
			}
			slow, st, err := walk(t, srv.URL, Options{HeadersOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			if st.FastPath || st.Fetched != len(pkgs) || srv.pkgReqs.Load() != int64(len(pkgs)) {
				t.Errorf("header path: stats %+v, %d package requests", st, srv.pkgReqs.Load())
			}
			want := expected(t, pkgs)
			if !slices.Equal(fast.set, want) {
				t.Errorf("filelists-ext: %d digests differ from the installed files' %d", len(fast.set), len(want))
			}
			if !slices.Equal(slow.set, want) {
				t.Errorf("headers: %d digests differ from the installed files' %d", len(slow.set), len(want))
			}
		})
	}
}

type countProgress struct{ files, bytes atomic.Int64 }

func (c *countProgress) Add(files, bytes int64) { c.files.Add(files); c.bytes.Add(bytes) }

// TestAddFivePackages: a 195-package repository grows to 200 (createrepo_c
// metadata for both); with a cache the second walk fetches exactly the 5
// new headers, by the walk's counters and by the server's own.
func TestAddFivePackages(t *testing.T) {
	dir := t.TempDir()
	installRepo(t, dir, "many-195")
	srv := serve(t, dir)
	cache := t.TempDir()
	prog := &countProgress{}
	opts := Options{CacheDir: cache, Progress: prog}
	first, st, err := walk(t, srv.URL, opts)
	if err != nil {
		t.Fatal(err)
	}
	if st.Fetched != 195 || st.Cached != 0 || srv.pkgReqs.Load() != 195 {
		t.Fatalf("first run: %+v, %d package requests", st, srv.pkgReqs.Load())
	}
	if !slices.Equal(first.set, expected(t, pkgList(t, "many-195"))) {
		t.Error("first run differs from the installed files")
	}
	if prog.files.Load() != 195 || prog.bytes.Load() == 0 {
		t.Errorf("progress %d packages %d bytes", prog.files.Load(), prog.bytes.Load())
	}
	installRepo(t, dir, "many")
	before := srv.pkgReqs.Load()
	second, st, err := walk(t, srv.URL, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := srv.pkgReqs.Load() - before; got != 5 || st.Fetched != 5 || st.Cached != 195 || st.Packages != 200 {
		t.Fatalf("after adding 5: %+v, server saw %d package requests (want 5)", st, got)
	}
	if !slices.Equal(second.set, expected(t, pkgList(t, "many"))) {
		t.Error("second run differs from the installed files")
	}
	if len(second.set)-len(first.set) != 5 {
		t.Errorf("second run has %d more digests, want 5", len(second.set)-len(first.set))
	}
}

// TestNotFoundNotRetried: a 404 names the URL and is asked once; a 500 is
// retried Retries times.
func TestNotFoundNotRetried(t *testing.T) {
	const gz = "Packages/gzip-sha256.rpm"
	for _, code := range []int{404, 500, 503} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			dir := mkRepo(t, "base")
			srv := serve(t, dir)
			var hits atomic.Int64
			srv.setMutate(func(w http.ResponseWriter, r *http.Request) bool {
				if strings.HasSuffix(r.URL.Path, gz) {
					hits.Add(1)
					http.Error(w, "no", code)
					return true
				}
				return false
			})
			w, _, err := walk(t, srv.URL, Options{Retries: 2})
			if err == nil || !strings.Contains(err.Error(), srv.URL+"/"+gz) {
				t.Fatalf("error %v does not name the URL", err)
			}
			if len(w.all) != 0 {
				t.Error("digests yielded")
			}
			want := int64(3)
			if code == 404 {
				want = 1
				if !errors.Is(err, ErrNotFound) {
					t.Errorf("%v is not ErrNotFound", err)
				}
			}
			if hits.Load() != want {
				t.Errorf("%d requests for the package, want %d", hits.Load(), want)
			}
		})
	}
}

// TestTransientErrorRecovers: two 503s, then the real file: the walk
// succeeds after backing off.
func TestTransientErrorRecovers(t *testing.T) {
	dir := mkRepo(t, "base")
	srv := serve(t, dir)
	var n atomic.Int64
	srv.setMutate(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "gzip-sha1.rpm") && n.Add(1) <= 2 {
			http.Error(w, "busy", 503)
			return true
		}
		return false
	})
	w, _, err := walk(t, srv.URL, Options{Retries: 3})
	if err != nil {
		t.Fatal(err)
	}
	if n.Load() != 3 || !slices.Equal(w.set, expected(t, pkgList(t, "base"))) {
		t.Errorf("%d attempts", n.Load())
	}
}

// TestCancel: cancelling the context stops a walk of a slow server
// promptly, with the context's error and nothing yielded.
func TestCancel(t *testing.T) {
	dir := mkRepo(t, "many")
	srv := serve(t, dir)
	srv.setMutate(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, ".rpm") {
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
		}
		return false
	})
	ctx, cancel := context.WithCancel(context.Background())
	r, err := Open(ctx, srv.URL, Options{})
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	n := 0
	err = r.Walk(ctx, func(digests.Digest) error { n++; return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("cancel took %v", d)
	}
	if n != 0 {
		t.Errorf("%d digests yielded", n)
	}
}

// TestPerHost: with Workers 8 and PerHost 2 the server never sees more
// than 2 package requests at once (and does see 2).
func TestPerHost(t *testing.T) {
	dir := mkRepo(t, "many")
	srv := serve(t, dir)
	var cur, peak atomic.Int64
	srv.setMutate(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, ".rpm") {
			c := cur.Add(1)
			for {
				p := peak.Load()
				if c <= p || peak.CompareAndSwap(p, c) {
					break
				}
			}
			time.Sleep(2 * time.Millisecond)
			defer cur.Add(-1)
		}
		return false
	})
	if _, _, err := walk(t, srv.URL, Options{Workers: 8, PerHost: 2}); err != nil {
		t.Fatal(err)
	}
	if peak.Load() != 2 {
		t.Errorf("peak %d concurrent package requests, want 2", peak.Load())
	}
}

// TestVerifyPackages: a package whose payload was altered still has a
// valid header (the header path accepts it: the signature header is not
// authenticated), but fails primary.xml's whole-file checksum.
func TestVerifyPackages(t *testing.T) {
	dir := mkRepo(t, "base")
	pkg := filepath.Join(dir, "Packages", "gzip-sha256.rpm")
	vcache := t.TempDir()
	for i := range 2 {
		_, st, err := walk(t, dir, Options{VerifyPackages: true, CacheDir: vcache})
		if err != nil {
			t.Fatalf("intact repo: %v", err)
		}
		if st.Cached != 4*i || st.Fetched != 4*(1-i) {
			t.Errorf("intact repo, run %d: %+v", i+1, st)
		}
	}
	b, err := os.ReadFile(pkg)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 0xff
	if err := os.WriteFile(pkg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	if _, _, err := walk(t, dir, Options{CacheDir: cache}); err != nil {
		t.Fatalf("header path: %v", err)
	}
	srv := serve(t, dir)
	for _, loc := range []string{dir, srv.URL} {
		// The unverified cache entries from the walk above must not be used.
		w, _, err := walk(t, loc, Options{VerifyPackages: true, CacheDir: cache})
		if !errors.Is(err, ErrPackageChecksum) || !strings.Contains(err.Error(), "gzip-sha256.rpm") {
			t.Errorf("%s: %v", loc, err)
		}
		if len(w.all) != 0 {
			t.Error("digests yielded")
		}
	}
}

// TestTimeoutRetried: a package request that outlives the client's
// timeout is retried and the walk succeeds.
func TestTimeoutRetried(t *testing.T) {
	dir := mkRepo(t, "base")
	srv := serve(t, dir)
	var n atomic.Int64
	srv.setMutate(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "gzip-sha1.rpm") && n.Add(1) == 1 {
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
			}
			return true
		}
		return false
	})
	w, _, err := walk(t, srv.URL, Options{Retries: 2, HTTPClient: &http.Client{Timeout: 300 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if n.Load() != 2 || !slices.Equal(w.set, expected(t, pkgList(t, "base"))) {
		t.Errorf("%d attempts", n.Load())
	}
}

// TestXMLBaseOtherHost: primary.xml's <location xml:base> puts the
// packages on a second server; they are fetched from there (and only
// there), and the metadata rewrite is covered by repomd.xml's checksums.
func TestXMLBaseOtherHost(t *testing.T) {
	dir := mkRepo(t, "full")
	pkgs := t.TempDir()
	installRepo(t, pkgs, "full")
	mirror := serve(t, pkgs)
	prim := readMetadata(t, dir, "primary")
	prim = bytes.ReplaceAll(prim, []byte(`<location href="`), []byte(`<location xml:base="`+mirror.URL+`/" href="`))
	writeMetadata(t, dir, "primary", "gz", prim)
	if err := os.RemoveAll(filepath.Join(dir, "Packages")); err != nil {
		t.Fatal(err)
	}
	srv := serve(t, dir)
	w, st, err := walk(t, srv.URL, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if srv.pkgReqs.Load() != 0 || mirror.pkgReqs.Load() != int64(st.Fetched) || st.Fetched != 7 {
		t.Errorf("stats %+v; repo server %d, mirror %d package requests", st, srv.pkgReqs.Load(), mirror.pkgReqs.Load())
	}
	if !slices.Equal(w.set, expected(t, pkgList(t, "full"))) {
		t.Error("digests differ from .sums")
	}
	// A local repository does not follow xml:base.
	if _, _, err := walk(t, dir, Options{}); err == nil || !strings.Contains(err.Error(), "xml:base") {
		t.Errorf("local xml:base: %v", err)
	}
}
