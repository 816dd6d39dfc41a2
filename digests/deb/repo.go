package deb

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/zest-attest/zest/digests"
)

// ErrNotFound is wrapped by errors about a repository file that does not
// exist (HTTP 404, or a missing local file).
var ErrNotFound = errors.New("not found")

// ErrHashMismatch is wrapped by errors about a downloaded file whose size or
// SHA-256 differs from what the index above it says.
var ErrHashMismatch = errors.New("size or SHA-256 does not match the index")

// ErrNoKeyring is returned by OpenRepo when RepoOptions has neither a
// Keyring nor InsecureSkipReleaseSignature.
var ErrNoKeyring = errors.New("no keyring to verify the Release signature with: give the archive keyring, or explicitly skip the check to trust the Release as fetched")

// Limits on what a repository may make zest read.
const (
	maxRelease   = 64 << 20 // a Release file
	maxIndex     = 1 << 30  // a compressed Packages file, as Release states it
	maxIndexLine = 1 << 20  // one line of Packages, decompressed
)

// RepoOptions control OpenRepo. Algorithm must be set, and so must
// InsecureSkipReleaseSignature; the other zero values are the defaults.
type RepoOptions struct {
	// Algorithm, NoMergedUsr and Progress are passed to each package's
	// Options.
	Algorithm   digests.Algorithm
	NoMergedUsr bool
	Progress    digests.Progress

	// Keyring holds the OpenPGP public keys (binary, as in
	// /usr/share/keyrings/debian-archive-keyring.gpg, or ASCII-armored)
	// one of which must have signed the Release: dists/<suite>/InRelease
	// is read first, then Release with Release.gpg. Key and signature
	// expiry and revocation are checked; SHA-1 and MD5 signatures are
	// refused.
	Keyring []byte

	// InsecureSkipReleaseSignature reads the Release without any
	// signature check (Release, else InRelease with its signature
	// ignored): the chain Release → Packages → .deb is still checked hash
	// by hash, but its root is trusted as fetched. Use it only with a
	// repository reached over a channel you trust (a local mirror you
	// verified with gpgv). It cannot be combined with Keyring.
	InsecureSkipReleaseSignature bool

	// AllowExpiredRelease accepts a Release whose Valid-Until has passed
	// (snapshot archives), as apt's Check-Valid-Until=no.
	AllowExpiredRelease bool

	// Now is the time keys, signatures and Valid-Until are checked
	// against; nil means time.Now.
	Now func() time.Time

	// Packages, if not empty, restricts the repository to these package
	// names; a name not in the index is an error.
	Packages []string
	// Client fetches http and https locations; nil means
	// http.DefaultClient.
	Client *http.Client
	// Concurrency is how many packages are fetched and hashed at once;
	// 0 means 4.
	Concurrency int
	// Attempts is how many times a request is tried when the server
	// answers 5xx or the connection fails; 0 means 4.
	Attempts int
	// RetryDelay is the wait before the first retry, doubled each time;
	// 0 means 500ms.
	RetryDelay time.Duration
	// TempDir holds downloaded packages while they are hashed; "" means
	// os.TempDir().
	TempDir string
}

// Package is one stanza of a Packages index.
type Package struct {
	Name         string
	Version      string
	Architecture string
	Filename     string // relative to the repository root: pool/main/h/hello/hello_2.10-3_amd64.deb
	Size         int64
	SHA256       []byte
}

// Repo is a digests.Source over the packages of one suite, component and
// architecture of an APT repository.
type Repo struct {
	fetch    fetcher
	opts     RepoOptions
	index    string // the Packages file read, for errors
	packages []Package
	signer   string // fingerprint of the key that signed the Release
}

// Signer is the fingerprint (upper-case hex) of the primary key whose
// signature on the Release verified, or "" with
// InsecureSkipReleaseSignature.
func (r *Repo) Signer() string { return r.signer }

// OpenRepo reads the Release of dists/<suite>/ from location (an http,
// https or file URL, or a directory) and checks its signature (see
// RepoOptions.Keyring), that it is for suite, and its Valid-Until. It then
// picks <component>/binary-<arch>/Packages.xz, Packages.gz or Packages, in
// that order of preference among those the Release lists in its SHA256
// section, checks its size and SHA-256, and parses its stanzas. No .deb is
// fetched until Walk or Open.
func OpenRepo(ctx context.Context, location, suite, component, arch string, opts RepoOptions) (*Repo, error) {
	switch {
	case len(opts.Keyring) == 0 && !opts.InsecureSkipReleaseSignature:
		return nil, fmt.Errorf("deb: %s: %w", location, ErrNoKeyring)
	case len(opts.Keyring) > 0 && opts.InsecureSkipReleaseSignature:
		return nil, fmt.Errorf("deb: %s: Keyring and InsecureSkipReleaseSignature contradict each other", location)
	}
	if _, err := opts.Algorithm.New(); err != nil {
		return nil, fmt.Errorf("deb: %w", err)
	}
	for _, s := range []string{suite, component, arch} {
		if s == "" || strings.Contains(s, "..") || strings.HasPrefix(s, "/") || strings.ContainsAny(s, "?#\\") {
			return nil, fmt.Errorf("deb: bad suite, component or architecture %q", s)
		}
	}
	now := time.Now()
	if opts.Now != nil {
		now = opts.Now()
	}
	f, err := newFetcher(location, opts)
	if err != nil {
		return nil, err
	}
	dist := "dists/" + suite + "/"
	text, relName, signer, err := readRelease(ctx, f, dist, opts, now)
	if err != nil {
		return nil, err
	}
	rel, err := parseRelease(text)
	if err != nil {
		return nil, fmt.Errorf("deb: %s: %w", relName, err)
	}
	if err := rel.check(suite, now, opts.AllowExpiredRelease); err != nil {
		return nil, fmt.Errorf("deb: %s: %w", relName, err)
	}
	base := component + "/binary-" + arch + "/Packages"
	for _, ext := range []string{".xz", ".gz", ""} {
		want, ok := rel.sha256[base+ext]
		if !ok {
			continue
		}
		if want.size > maxIndex {
			return nil, fmt.Errorf("deb: %s: %s is %d bytes (limit %d)", relName, base+ext, want.size, maxIndex)
		}
		name := dist + base + ext
		raw, err := f.get(ctx, name, want.size)
		if err != nil {
			return nil, err
		}
		if err := checkHash(raw, want.size, want.sum, relName); err != nil {
			return nil, fmt.Errorf("deb: %s: %w", f.name(name), err)
		}
		pkgs, err := parsePackages(bytes.NewReader(raw), ext)
		if err != nil {
			return nil, fmt.Errorf("deb: %s: %w", f.name(name), err)
		}
		r := &Repo{fetch: f, opts: opts, index: f.name(name), packages: pkgs, signer: signer}
		if len(opts.Packages) > 0 {
			if err := r.restrict(opts.Packages); err != nil {
				return nil, err
			}
		}
		return r, nil
	}
	return nil, fmt.Errorf("deb: %s: its SHA256 section lists no %s{.xz,.gz,}", relName, base)
}

// readRelease returns the Release text, the name of the file it came from
// and, when verified, the signer's fingerprint.
func readRelease(ctx context.Context, f fetcher, dist string, opts RepoOptions, now time.Time) (text []byte, name, signer string, err error) {
	if opts.InsecureSkipReleaseSignature {
		name = f.name(dist + "Release")
		text, err = f.get(ctx, dist+"Release", maxRelease)
		if errors.Is(err, ErrNotFound) {
			name = f.name(dist + "InRelease")
			if text, err = f.get(ctx, dist+"InRelease", maxRelease); err == nil {
				text, err = stripClearsign(text)
				if err != nil {
					err = fmt.Errorf("deb: %s: %w", name, err)
				}
			}
		}
		return text, name, "", err
	}
	kr, err := parseKeyring(opts.Keyring)
	if err != nil {
		return nil, "", "", fmt.Errorf("deb: %w", err)
	}
	name = f.name(dist + "InRelease")
	inrel, err := f.get(ctx, dist+"InRelease", maxRelease)
	if err == nil {
		text, signer, err = verifyInRelease(inrel, kr, now)
		if err != nil {
			return nil, "", "", fmt.Errorf("deb: %s: %w", name, err)
		}
		return text, name, signer, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return nil, "", "", err
	}
	name = f.name(dist + "Release")
	if text, err = f.get(ctx, dist+"Release", maxRelease); err != nil {
		return nil, "", "", err
	}
	sig, err := f.get(ctx, dist+"Release.gpg", maxRelease)
	if errors.Is(err, ErrNotFound) {
		return nil, "", "", fmt.Errorf("deb: %s: %w: neither InRelease nor Release.gpg exists: %w", name, ErrSignature, err)
	}
	if err != nil {
		return nil, "", "", err
	}
	if signer, err = verifyDetached(text, sig, kr, now); err != nil {
		return nil, "", "", fmt.Errorf("deb: %s: %w", name, err)
	}
	return text, name, signer, nil
}

func (r *Repo) restrict(names []string) error {
	var keep []Package
	for _, n := range names {
		found := false
		for _, p := range r.packages {
			if p.Name == n {
				keep = append(keep, p)
				found = true
			}
		}
		if !found {
			return fmt.Errorf("deb: %s: no package %q", r.index, n)
		}
	}
	slices.SortFunc(keep, func(a, b Package) int { return strings.Compare(a.Filename, b.Filename) })
	r.packages = slices.CompactFunc(keep, func(a, b Package) bool { return a.Filename == b.Filename })
	return nil
}

// Packages returns the index's stanzas (or those named in
// RepoOptions.Packages), sorted by Filename.
func (r *Repo) Packages() []Package { return slices.Clone(r.packages) }

// Open downloads p to a temporary file, checks its size and SHA-256 against
// the index, and returns it as a Deb with the repository's options. Call
// cleanup when done with it.
func (r *Repo) Open(ctx context.Context, p Package) (d *Deb, cleanup func(), err error) {
	tmp, err := os.CreateTemp(r.opts.TempDir, "zest-deb-*.deb")
	if err != nil {
		return nil, nil, fmt.Errorf("deb: %w", err)
	}
	remove := func() { tmp.Close(); os.Remove(tmp.Name()) }
	defer func() {
		if err != nil {
			remove()
		}
	}()
	h := sha256.New()
	n, err := r.fetch.copy(ctx, p.Filename, io.MultiWriter(tmp, h), p.Size)
	if err != nil {
		return nil, nil, err
	}
	if n != p.Size || !bytes.Equal(h.Sum(nil), p.SHA256) {
		return nil, nil, fmt.Errorf("deb: %s: %w: %d bytes with SHA-256 %x, %s says %d bytes with %x",
			r.fetch.name(p.Filename), ErrHashMismatch, n, h.Sum(nil), r.index, p.Size, p.SHA256)
	}
	st, err := tmp.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("deb: %w", err)
	}
	d, err = Load(tmp, st.Size(), r.fetch.name(p.Filename), Options{Algorithm: r.opts.Algorithm, NoMergedUsr: r.opts.NoMergedUsr, Progress: r.opts.Progress})
	if err != nil {
		return nil, nil, err
	}
	return d, remove, nil
}

// Walk fetches, verifies and hashes every package (RepoOptions.Concurrency
// at a time) and, once all have succeeded, yields their digests sorted by
// path then digest, a (path, digest) pair shipped by several packages once.
// The first failure stops the walk and nothing is yielded. All digests are
// held in memory until then (about 100 bytes each).
func (r *Repo) Walk(ctx context.Context, yield func(digests.Digest) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := r.opts.Concurrency
	if n <= 0 {
		n = 4
	}
	results := make([][]digests.Digest, len(r.packages))
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	work := make(chan int)
	for range min(n, len(r.packages)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				ds, err := r.walkOne(ctx, r.packages[i])
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					cancel()
					continue
				}
				results[i] = ds
			}
		}()
	}
feed:
	for i := range r.packages {
		select {
		case work <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var all []digests.Digest
	for _, ds := range results {
		all = append(all, ds...)
	}
	slices.SortFunc(all, digests.Compare)
	all = slices.CompactFunc(all, func(a, b digests.Digest) bool { return digests.Compare(a, b) == 0 })
	for _, d := range all {
		if err := yield(d); err != nil {
			return err
		}
	}
	return nil
}

func (r *Repo) walkOne(ctx context.Context, p Package) ([]digests.Digest, error) {
	d, cleanup, err := r.Open(ctx, p)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	var ds []digests.Digest
	err = d.Walk(ctx, func(x digests.Digest) error { ds = append(ds, x); return nil })
	return ds, err
}

func checkHash(b []byte, size int64, sum []byte, relName string) error {
	got := sha256.Sum256(b)
	if int64(len(b)) != size || !bytes.Equal(got[:], sum) {
		return fmt.Errorf("%w: %d bytes with SHA-256 %x, %s says %d bytes with %x", ErrHashMismatch, len(b), got, relName, size, sum)
	}
	return nil
}

// parsePackages reads the stanzas of a Packages index (compressed as ext
// says), keeping those with a Filename. Every kept stanza must have a
// relative Filename without "..", a Size and a SHA256.
func parsePackages(r io.Reader, ext string) ([]Package, error) {
	var dec io.Reader
	switch ext {
	case ".xz":
		z, err := newXz(bufio.NewReaderSize(r, 64<<10))
		if err != nil {
			return nil, err
		}
		dec = z
	case ".gz":
		z, err := gzip.NewReader(r)
		if err != nil {
			return nil, err
		}
		dec = z
	default:
		dec = r
	}
	sc := bufio.NewScanner(dec)
	sc.Buffer(make([]byte, 64<<10), maxIndexLine)
	var (
		out    []Package
		cur    map[string]string
		start  int
		lineNo int
	)
	flush := func() error {
		if cur == nil {
			return nil
		}
		defer func() { cur = nil }()
		p := Package{Name: cur["package"], Version: cur["version"], Architecture: cur["architecture"], Filename: cur["filename"]}
		if p.Filename == "" {
			return nil
		}
		bad := func(format string, args ...any) error {
			return fmt.Errorf("stanza at line %d (%s): %s", start, p.Name, fmt.Sprintf(format, args...))
		}
		if strings.HasPrefix(p.Filename, "/") || slices.Contains(strings.Split(p.Filename, "/"), "..") || strings.Contains(p.Filename, "\\") {
			return bad("bad Filename %q", p.Filename)
		}
		var err error
		if p.Size, err = strconv.ParseInt(cur["size"], 10, 64); err != nil || p.Size < 0 {
			return bad("bad Size %q", cur["size"])
		}
		if p.SHA256, err = hex.DecodeString(cur["sha256"]); err != nil || len(p.SHA256) != sha256.Size {
			return bad("bad or missing SHA256 %q", cur["sha256"])
		}
		out = append(out, p)
		return nil
	}
	last := ""
	for sc.Scan() {
		lineNo++
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		if cur == nil {
			cur, start = map[string]string{}, lineNo
		}
		if line[0] == ' ' || line[0] == '\t' {
			if last == "" {
				return nil, fmt.Errorf("line %d: continuation line without a field", lineNo)
			}
			continue // multi-line values (Description) are not needed
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("line %d: not a field: %q", lineNo, line)
		}
		last = strings.ToLower(strings.TrimSpace(name))
		if _, dup := cur[last]; dup {
			return nil, fmt.Errorf("line %d: field %s repeated", lineNo, name)
		}
		cur[last] = strings.TrimSpace(value)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", lineNo+1, err)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if _, err := io.Copy(io.Discard, dec); err != nil { // check the trailer
		return nil, err
	}
	slices.SortFunc(out, func(a, b Package) int { return strings.Compare(a.Filename, b.Filename) })
	for i := 1; i < len(out); i++ {
		if out[i].Filename == out[i-1].Filename {
			return nil, fmt.Errorf("Filename %s appears twice", out[i].Filename)
		}
	}
	return out, nil
}

// fetcher reads files relative to a repository root.
type fetcher interface {
	// copy writes the file to w, failing if it is longer than limit.
	copy(ctx context.Context, rel string, w io.Writer, limit int64) (int64, error)
	get(ctx context.Context, rel string, limit int64) ([]byte, error)
	name(rel string) string
}

func newFetcher(location string, opts RepoOptions) (fetcher, error) {
	u, err := url.Parse(location)
	if err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		c := opts.Client
		if c == nil {
			c = http.DefaultClient
		}
		attempts := opts.Attempts
		if attempts <= 0 {
			attempts = 4
		}
		delay := opts.RetryDelay
		if delay <= 0 {
			delay = 500 * time.Millisecond
		}
		u.Path = strings.TrimSuffix(u.Path, "/") + "/"
		return &httpFetcher{base: u, client: c, attempts: attempts, delay: delay}, nil
	}
	if err == nil && u.Scheme == "file" {
		location = u.Path
	} else if err == nil && u.Scheme != "" && len(u.Scheme) > 1 {
		return nil, fmt.Errorf("deb: %s: unsupported scheme %q", location, u.Scheme)
	}
	st, err := os.Stat(location)
	if err != nil {
		return nil, fmt.Errorf("deb: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("deb: %s is not a directory", location)
	}
	return dirFetcher(location), nil
}

type dirFetcher string

func (d dirFetcher) name(rel string) string { return filepath.Join(string(d), filepath.FromSlash(rel)) }

func (d dirFetcher) copy(ctx context.Context, rel string, w io.Writer, limit int64) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	f, err := os.Open(d.name(rel))
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("deb: %s: %w", d.name(rel), ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("deb: %w", err)
	}
	defer f.Close()
	return limitedCopy(w, f, limit, d.name(rel))
}

func (d dirFetcher) get(ctx context.Context, rel string, limit int64) ([]byte, error) {
	var b bytes.Buffer
	_, err := d.copy(ctx, rel, &b, limit)
	return b.Bytes(), err
}

// limitedCopy copies at most limit bytes and fails if there are more.
func limitedCopy(w io.Writer, r io.Reader, limit int64, name string) (int64, error) {
	n, err := io.Copy(w, io.LimitReader(r, limit+1))
	if err != nil {
		return n, fmt.Errorf("deb: %s: %w", name, err)
	}
	if n > limit {
		return n, fmt.Errorf("deb: %s: %w: longer than the %d bytes expected", name, ErrHashMismatch, limit)
	}
	return n, nil
}

type httpFetcher struct {
	base     *url.URL
	client   *http.Client
	attempts int
	delay    time.Duration
}

func (h *httpFetcher) name(rel string) string {
	return h.base.ResolveReference(&url.URL{Path: path.Clean(rel)}).String()
}

func (h *httpFetcher) get(ctx context.Context, rel string, limit int64) ([]byte, error) {
	var b bytes.Buffer
	_, err := h.copy(ctx, rel, &b, limit)
	return b.Bytes(), err
}

// retryable marks a failure worth another attempt: a 5xx answer, or a
// connection or body read that failed.
type retryable struct{ err error }

func (r retryable) Error() string { return r.err.Error() }
func (r retryable) Unwrap() error { return r.err }

// copy GETs the file, trying again after a 5xx or a transport error that
// came before any byte was written to w (bytes written cannot be taken
// back, so a body cut short is an error).
func (h *httpFetcher) copy(ctx context.Context, rel string, w io.Writer, limit int64) (int64, error) {
	u := h.name(rel)
	delay := h.delay
	var last error
	for attempt := 0; attempt < h.attempts; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return 0, ctx.Err()
			case <-t.C:
			}
			delay *= 2
		}
		n, err := h.once(ctx, u, w, limit)
		if err == nil {
			return n, nil
		}
		var re retryable
		if !errors.As(err, &re) || n > 0 || ctx.Err() != nil {
			// Bytes already written cannot be taken back from w.
			return n, err
		}
		last = err
	}
	return 0, fmt.Errorf("%w (after %d attempts)", last, h.attempts)
}

func (h *httpFetcher) once(ctx context.Context, u string, w io.Writer, limit int64) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, fmt.Errorf("deb: %w", err)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, retryable{fmt.Errorf("deb: %w", err)}
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusNotFound:
		return 0, fmt.Errorf("deb: GET %s: %s: %w", u, resp.Status, ErrNotFound)
	case resp.StatusCode >= 500:
		return 0, retryable{fmt.Errorf("deb: GET %s: %s", u, resp.Status)}
	default:
		return 0, fmt.Errorf("deb: GET %s: %s", u, resp.Status)
	}
	if resp.ContentLength > limit {
		return 0, fmt.Errorf("deb: GET %s: %w: %d bytes, want at most %d", u, ErrHashMismatch, resp.ContentLength, limit)
	}
	n, err := io.Copy(w, io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return n, fmt.Errorf("deb: GET %s: %w", u, err)
	}
	if n > limit {
		return n, fmt.Errorf("deb: GET %s: %w: longer than the %d bytes expected", u, ErrHashMismatch, limit)
	}
	return n, nil
}
