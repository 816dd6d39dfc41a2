// Package rpmrepo owns reading an RPM repository (repodata/repomd.xml and
// the metadata it lists) as a source of reference digests, from a local
// directory or over HTTP(S).
//
// Each metadata file used is checked against repomd.xml's checksums before
// anything from it is trusted, and is decompressed by magic (gzip, xz,
// zstd, bzip2 or plain: Keylime takes only gzip, D5). repomd.xml itself is
// authenticated only when a key is given: Options.VerifyKey (ECDSA-SHA256
// over its bytes in repomd.xml.asc, Keylime's non-GPG form) or
// Options.OpenPGPKeys (a detached OpenPGP signature, as dnf's
// repo_gpgcheck). The key comes from the caller, never from the
// repository (Keylime trusts repomd.xml.key from the same server).
//
// The authentication chain is repomd.xml -> metadata checksums -> each
// package's <checksum>. A header read alone (the default) is checked
// against its SHA256HEADER, which sits in the unauthenticated signature
// header: it proves integrity, not origin. Options.VerifyPackages reads
// packages whole to close the chain.
//
// When repomd.xml lists filelists-ext the digests come from it alone (the
// fast path: no packages are touched, but no IMA signatures either).
// Otherwise each binary package in primary.xml has its header read (a local
// file, or an HTTP Range request for bytes 0..rpm:header-range end-1; a
// server that ignores Range and answers 200 is read only that far, then
// the connection is dropped) and
// checked with digests/rpm, keeping the IMA signatures that Keylime drops
// (D4). Headers' file lists can be cached by package checksum.
//
// This package builds on digests/rpm; it must not import policygen,
// verifier, archive or CLI packages. It never prints (Keylime's stray
// "ASC" print is D7), logs or exits.
package rpmrepo

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/zest-attest/zest/digests"
	"github.com/zest-attest/zest/digests/rpm"
)

// Options control a Repo. The zero value is the strict choice.
type Options struct {
	// Workers is the number of packages read at once; 0 means 8.
	Workers int
	// PerHost bounds the HTTP requests in flight to one host (packages
	// may sit on other hosts through xml:base); 0 means 6.
	PerHost int
	// Retries is how often a request failing with a 5xx status or a
	// transport error is retried, with doubling backoff from 100ms; 0
	// means 3, negative means none. 4xx answers are never retried.
	Retries int
	// CacheDir, if not empty, keeps each package's extracted file list
	// under its primary.xml checksum, so a later walk reads only packages
	// it has not seen.
	CacheDir string
	// VerifyKey, if not nil, must be an *ecdsa.PublicKey: repomd.xml.asc
	// must then hold its ECDSA-SHA256 DER signature over repomd.xml
	// (Keylime's non-GPG form). Without VerifyKey or OpenPGPKeys
	// repomd.xml is not authenticated.
	VerifyKey crypto.PublicKey
	// OpenPGPKeys, if not empty, holds OpenPGP public keys (binary or
	// ASCII-armored, as `gpg --export [--armor]` writes them):
	// repomd.xml.asc must then be a detached OpenPGP signature over
	// repomd.xml by one of them, as dnf checks with repo_gpgcheck=1.
	// Setting both VerifyKey and OpenPGPKeys is an error.
	OpenPGPKeys []byte
	// HTTPClient is used for remote repositories; nil means a client with
	// a 60s per-request timeout.
	HTTPClient *http.Client
	// AllowMD5 accepts packages whose file digests are MD5 (and MD5
	// metadata checksums).
	AllowMD5 bool
	// HeadersOnly skips the filelists-ext fast path, so that IMA
	// signatures (only in headers) are read.
	HeadersOnly bool
	// VerifyPackages reads every package whole and checks it against
	// primary.xml's <checksum> (the pkgid), instead of reading only its
	// header. Only then does a verified repomd.xml signature cover the
	// digests: a header's SHA256HEADER sits in the unauthenticated
	// signature header, so a header read alone is checked for integrity
	// but not authenticated. Costs the whole package per package.
	VerifyPackages bool
	// Progress, if not nil, is told once per package done: Add(1, bytes
	// read from the repository for it; 0 when it came from CacheDir).
	// The filelists-ext fast path reports Add(1, 0) per package.
	Progress digests.Progress
}

// Stats describes the last Walk.
type Stats struct {
	Packages int  // binary packages (or filelists-ext packages) used
	Fetched  int  // package headers read from the repository
	Cached   int  // package file lists read from CacheDir
	FastPath bool // digests came from filelists-ext
}

// Repo is an opened repository: repomd.xml has been read (and verified when
// a key was given); Walk reads the rest.
type Repo struct {
	loc    string
	dir    string   // local repository root, or ""
	base   *url.URL // remote repository base, ending in '/', or nil
	opts   Options
	client *http.Client
	md     *repomd

	signedBy string

	hostMu sync.Mutex
	hosts  map[string]chan struct{} // per-host request slots

	mu    sync.Mutex
	stats Stats
}

// ErrNotFound reports a repository file the server or directory lacks.
var ErrNotFound = errors.New("not found")

// ErrSignature reports a repomd.xml signature that is missing, unsupported
// or does not verify.
var ErrSignature = errors.New("repomd.xml signature")

// Open reads location/repodata/repomd.xml; location is a directory or an
// http(s) URL of the directory holding repodata/.
func Open(ctx context.Context, location string, opts Options) (*Repo, error) {
	r := &Repo{loc: location, opts: opts, client: opts.HTTPClient}
	if r.opts.Workers <= 0 {
		r.opts.Workers = 8
	}
	if r.opts.PerHost <= 0 {
		r.opts.PerHost = 6
	}
	if r.opts.Retries == 0 {
		r.opts.Retries = 3
	}
	if r.client == nil {
		r.client = &http.Client{Timeout: 60 * time.Second}
	}
	if strings.HasPrefix(location, "http://") || strings.HasPrefix(location, "https://") {
		u, err := url.Parse(location)
		if err != nil {
			return nil, fmt.Errorf("rpmrepo: %w", err)
		}
		if !strings.HasSuffix(u.Path, "/") {
			u.Path += "/"
		}
		u.RawQuery, u.Fragment = "", ""
		r.base = u
	} else {
		fi, err := os.Stat(location)
		if err != nil {
			return nil, fmt.Errorf("rpmrepo: %w", err)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("rpmrepo: %s is not a directory", location)
		}
		r.dir = location
	}
	if opts.VerifyKey != nil && len(opts.OpenPGPKeys) > 0 {
		return nil, fmt.Errorf("rpmrepo: %w: both VerifyKey and OpenPGPKeys are set; give the one key repomd.xml.asc is made with", ErrSignature)
	}
	var ring openpgp.EntityList
	if len(opts.OpenPGPKeys) > 0 {
		var err error
		if ring, err = parseKeyring(opts.OpenPGPKeys); err != nil {
			return nil, fmt.Errorf("rpmrepo: %w: OpenPGPKeys: %w", ErrSignature, err)
		}
	}
	var key *ecdsa.PublicKey
	if opts.VerifyKey != nil {
		k, ok := opts.VerifyKey.(*ecdsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("rpmrepo: %w: VerifyKey is a %T; only ECDSA keys (ECDSA-SHA256, Keylime's non-GPG form) are supported", ErrSignature, opts.VerifyKey)
		}
		key = k
	}
	b, name, err := r.get(ctx, "repodata/repomd.xml", MaxRepomdSize)
	if err != nil {
		return nil, err
	}
	if key != nil || ring != nil {
		sig, sigName, err := r.get(ctx, "repodata/repomd.xml.asc", MaxSignatureSize)
		if err != nil {
			return nil, fmt.Errorf("rpmrepo: %w: a key is set but the signature cannot be read: %w", ErrSignature, err)
		}
		if ring != nil {
			fp, err := verifyOpenPGP(b, sig, ring, time.Now())
			if err != nil {
				return nil, fmt.Errorf("rpmrepo: %s: %w: %w", sigName, ErrSignature, err)
			}
			r.signedBy = "openpgp:" + fp
		} else {
			if bytes.Contains(sig, []byte("-----BEGIN PGP")) {
				return nil, fmt.Errorf("rpmrepo: %s: %w: an OpenPGP signature, but VerifyKey is an ECDSA key (give the OpenPGP key as OpenPGPKeys)", sigName, ErrSignature)
			}
			sum := sha256.Sum256(b)
			if !ecdsa.VerifyASN1(key, sum[:], bytes.TrimSpace(sig)) && !ecdsa.VerifyASN1(key, sum[:], sig) {
				return nil, fmt.Errorf("rpmrepo: %s: %w: does not verify with the given key", sigName, ErrSignature)
			}
			der, err := x509.MarshalPKIXPublicKey(key)
			if err != nil {
				return nil, fmt.Errorf("rpmrepo: %w: %w", ErrSignature, err)
			}
			h := sha256.Sum256(der)
			r.signedBy = "ecdsa:" + hex.EncodeToString(h[:])
		}
	}
	md, err := parseRepomd(b, name)
	if err != nil {
		return nil, err
	}
	r.md = md
	return r, nil
}

// SignedBy names the key repomd.xml's signature was verified with:
// "openpgp:<fingerprint hex>" or "ecdsa:<hex SHA-256 of the key's PKIX
// DER>"; "" when no key was given (repomd.xml not authenticated).
func (r *Repo) SignedBy() string { return r.signedBy }

// Stats returns the counters of the last Walk.
func (r *Repo) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Walk yields every regular, non-ghost file with a content digest in the
// repository's binary packages, sorted by path, then digest, then
// algorithm, then signature; identical records from several packages are
// yielded once. Everything is read and checked before the first yield, so
// an error means nothing was yielded.
func (r *Repo) Walk(ctx context.Context, yield func(digests.Digest) error) error {
	var (
		out   []digests.Digest
		stats Stats
		err   error
	)
	if ext := r.md.find("filelists-ext"); ext != nil && !r.opts.HeadersOnly {
		out, stats, err = r.walkExt(ctx, ext)
	} else {
		out, stats, err = r.walkHeaders(ctx)
	}
	r.mu.Lock()
	r.stats = stats
	r.mu.Unlock()
	if err != nil {
		return err
	}
	slices.SortFunc(out, digests.Compare)
	out = slices.CompactFunc(out, func(a, b digests.Digest) bool { return digests.Compare(a, b) == 0 })
	for _, d := range out {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := yield(d); err != nil {
			return err
		}
	}
	return nil
}

// metadata downloads a <data> file, checks its checksum, and hands its
// decompressed content to fn; the open-checksum is checked after fn has
// read everything, and fn's result is discarded on mismatch.
func (r *Repo) metadata(ctx context.Context, f *dataFile, fn func(io.Reader, string) error) error {
	if err := f.check(r.opts.AllowMD5); err != nil {
		return fmt.Errorf("rpmrepo: %s: repodata/repomd.xml: %w", r.loc, err)
	}
	if f.Location.Base != "" {
		return fmt.Errorf("rpmrepo: %s: <data type=%q> has xml:base %q; metadata outside the repository is not supported", r.loc, f.Type, f.Location.Base)
	}
	limit := int64(MaxMetadataSize)
	if f.Size > 0 {
		limit = f.Size
	}
	b, name, err := r.get(ctx, f.Location.Href, limit)
	if err != nil {
		return err
	}
	if f.Size > 0 && int64(len(b)) != f.Size {
		return fmt.Errorf("rpmrepo: %s: %d bytes, repomd.xml says %d: %w", name, len(b), f.Size, ErrChecksum)
	}
	c, _ := newChecksum(f.Checksum, r.opts.AllowMD5)
	c.Write(b)
	if err := c.verify(name); err != nil {
		return err
	}
	openLimit := int64(MaxOpenMetadataSize)
	if f.OpenSize > 0 {
		openLimit = f.OpenSize
	}
	dr, closeFn, err := decompress(b, openLimit, name)
	if err != nil {
		return err
	}
	defer closeFn()
	var oc *checker
	if f.OpenChecksum.Value != "" {
		oc, _ = newChecksum(f.OpenChecksum, r.opts.AllowMD5)
		dr = io.TeeReader(dr, oc)
	}
	cr := &countReader{r: dr}
	if err := fn(cr, name); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return fmt.Errorf("rpmrepo: %s: %w", name, err)
	}
	if f.OpenSize > 0 && cr.n != f.OpenSize {
		return fmt.Errorf("rpmrepo: %s: decompresses to %d bytes, repomd.xml says %d: %w", name, cr.n, f.OpenSize, ErrChecksum)
	}
	if oc != nil {
		return oc.verify(name + " (decompressed)")
	}
	return nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// walkExt is the fast path: filelists-ext's hashes, no packages read.
func (r *Repo) walkExt(ctx context.Context, f *dataFile) ([]digests.Digest, Stats, error) {
	st := Stats{FastPath: true}
	var out []digests.Digest
	err := r.metadata(ctx, f, func(rd io.Reader, name string) error {
		n, err := parseFilelistsExt(rd, name, func(pkg string, e extFile) error {
			d, err := r.extDigest(e)
			if err != nil || d == nil {
				return err
			}
			out = append(out, *d)
			return nil
		})
		st.Packages = n
		return err
	})
	if err != nil {
		return nil, st, err
	}
	if r.opts.Progress != nil {
		r.opts.Progress.Add(int64(st.Packages), 0)
	}
	return out, st, nil
}

func (r *Repo) extDigest(e extFile) (*digests.Digest, error) {
	var alg digests.Algorithm
	if t := strings.ToLower(e.Alg); t == "unknown" || t == "" {
		// createrepo_c writes "unknown" when FILEDIGESTALGO is absent,
		// which rpm reads as MD5.
		alg = digests.MD5
	} else {
		a, err := digests.ParseAlgorithm(t)
		if err != nil {
			return nil, fmt.Errorf("file %q: %w", e.Path, err)
		}
		alg = a
	}
	if alg == digests.MD5 && !r.opts.AllowMD5 {
		return nil, fmt.Errorf("file %q: %w", e.Path, rpm.ErrMD5)
	}
	v, err := hex.DecodeString(e.Hash)
	if err != nil || len(v) != alg.Size() {
		return nil, fmt.Errorf("file %q: hash %q is not a %s digest", e.Path, e.Hash, alg)
	}
	if !strings.HasPrefix(e.Path, "/") || strings.ContainsAny(e.Path, "\x00\n") {
		return nil, fmt.Errorf("file %q: not an absolute path", e.Path)
	}
	if strings.Trim(string(v), "\x00") == "" {
		return nil, nil
	}
	return &digests.Digest{Path: digests.IMAPath(e.Path), Algorithm: alg, Value: v}, nil
}

// pkgFiles is what a package contributes, as cached.
type pkgFiles struct {
	Alg   digests.Algorithm
	Files []digests.Digest
}

// walkHeaders reads each binary package's header (or its cache entry).
func (r *Repo) walkHeaders(ctx context.Context) ([]digests.Digest, Stats, error) {
	var st Stats
	f := r.md.find("primary")
	if f == nil {
		return nil, st, fmt.Errorf("rpmrepo: %s: repodata/repomd.xml lists neither filelists-ext nor primary", r.loc)
	}
	var pkgs []pkgRef
	err := r.metadata(ctx, f, func(rd io.Reader, name string) error {
		var err error
		pkgs, err = parsePrimary(rd, name)
		return err
	})
	if err != nil {
		return nil, st, err
	}
	st.Packages = len(pkgs)
	if t, ok := r.opts.Progress.(digests.ProgressTotal); ok {
		t.SetTotal(int64(len(pkgs)))
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	results := make([]*pkgFiles, len(pkgs))
	var fetched, cached atomic.Int64
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(r.opts.Workers, max(len(pkgs), 1)) {
		wg.Go(func() {
			for i := range work {
				pf, fromCache, err := r.packageFiles(ctx, &pkgs[i])
				if err != nil {
					cancel(err)
					continue
				}
				if fromCache {
					cached.Add(1)
				} else {
					fetched.Add(1)
				}
				results[i] = pf
			}
		})
	}
feed:
	for i := range pkgs {
		select {
		case work <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	st.Fetched, st.Cached = int(fetched.Load()), int(cached.Load())
	if err := context.Cause(ctx); err != nil {
		return nil, st, err
	}
	var out []digests.Digest
	for _, pf := range results {
		out = append(out, pf.Files...)
	}
	return out, st, nil
}

// packageFiles returns a package's file digests from the cache or its
// header.
func (r *Repo) packageFiles(ctx context.Context, p *pkgRef) (*pkgFiles, bool, error) {
	if pf, ok := r.cacheGet(p); ok {
		if err := r.checkAlg(p, pf.Alg); err != nil {
			return nil, false, err
		}
		if r.opts.Progress != nil {
			r.opts.Progress.Add(1, 0)
		}
		return pf, true, nil
	}
	hdr, n, err := r.header(ctx, p)
	if err != nil {
		return nil, false, err
	}
	name := hdr.Input()
	if hdr.IsSource() {
		return nil, false, fmt.Errorf("rpmrepo: %s: primary.xml lists it as %s but it is a %w", name, p.Arch, rpm.ErrSourcePackage)
	}
	if _, end := hdr.Range(); end != p.HeaderEnd {
		return nil, false, fmt.Errorf("rpmrepo: %s: header ends at byte %d, primary.xml's rpm:header-range says %d (stale metadata?)", name, end, p.HeaderEnd)
	}
	alg, err := hdr.FileDigestAlgorithm()
	if err != nil {
		return nil, false, fmt.Errorf("rpmrepo: %s: %w", name, err)
	}
	if err := r.checkAlg(p, alg); err != nil {
		return nil, false, err
	}
	files, err := hdr.Files()
	if err != nil {
		return nil, false, fmt.Errorf("rpmrepo: %s: %w", name, err)
	}
	pf := &pkgFiles{Alg: alg}
	for i := range files {
		fi := &files[i]
		if !fi.HasContentDigest() {
			continue
		}
		pf.Files = append(pf.Files, digests.Digest{Path: digests.IMAPath(fi.Path), Algorithm: alg, Value: fi.Digest, Signature: fi.Signature})
	}
	if r.opts.Progress != nil {
		r.opts.Progress.Add(1, n)
	}
	if err := r.cachePut(p, pf); err != nil {
		return nil, false, err
	}
	return pf, false, nil
}

func (r *Repo) checkAlg(p *pkgRef, alg digests.Algorithm) error {
	if alg == digests.MD5 && !r.opts.AllowMD5 {
		return fmt.Errorf("rpmrepo: %s: %w", p.Href, rpm.ErrMD5)
	}
	return nil
}

// header reads a package's lead, signature and main header.
func (r *Repo) header(ctx context.Context, p *pkgRef) (*rpm.Header, int64, error) {
	if r.dir != "" {
		if p.Base != "" {
			return nil, 0, fmt.Errorf("rpmrepo: %s: package %s has xml:base %q; packages outside a local repository are not supported", r.loc, p.Href, p.Base)
		}
		fp, err := r.localPath(p.Href)
		if err != nil {
			return nil, 0, err
		}
		fh, err := os.Open(fp)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, 0, fmt.Errorf("rpmrepo: %s: %w", fp, ErrNotFound)
			}
			return nil, 0, fmt.Errorf("rpmrepo: %w", err)
		}
		defer fh.Close()
		if r.opts.VerifyPackages {
			return r.wholeHeader(p, fh, fp)
		}
		hdr, err := rpm.ReadHeader(bufio.NewReaderSize(io.LimitReader(fh, p.HeaderEnd), 64<<10), fp)
		if err != nil {
			return nil, 0, err
		}
		return hdr, p.HeaderEnd, nil
	}
	u, err := r.resolve(p.Base, p.Href)
	if err != nil {
		return nil, 0, err
	}
	if r.opts.VerifyPackages {
		var (
			hdr *rpm.Header
			n   int64
		)
		err := r.do(ctx, u, "", func(resp *http.Response) error {
			if resp.StatusCode != http.StatusOK {
				return statusError(u, resp)
			}
			var err error
			hdr, n, err = r.wholeHeader(p, resp.Body, u.String())
			return err
		})
		return hdr, n, err
	}
	b, err := r.fetchRange(ctx, u, p.HeaderEnd)
	if err != nil {
		return nil, 0, err
	}
	hdr, err := rpm.ReadHeader(bytes.NewReader(b), u.String())
	if err != nil {
		return nil, 0, err
	}
	return hdr, int64(len(b)), nil
}

// MaxPackageSize bounds a package read whole (Options.VerifyPackages).
const MaxPackageSize = 16 << 30

// ErrPackageChecksum reports a package whose bytes do not match
// primary.xml's <checksum>.
var ErrPackageChecksum = errors.New("package checksum mismatch")

// wholeHeader reads a whole package, checks it against primary.xml's
// checksum, and only then returns its header.
func (r *Repo) wholeHeader(p *pkgRef, rd io.Reader, name string) (*rpm.Header, int64, error) {
	c, err := newChecksum(checksum{Type: p.ChecksumType, Value: p.Checksum}, r.opts.AllowMD5)
	if err != nil {
		return nil, 0, fmt.Errorf("rpmrepo: %s: primary.xml checksum: %w", name, err)
	}
	var head bytes.Buffer
	head.Grow(int(p.HeaderEnd))
	cr := &countReader{r: io.LimitReader(rd, MaxPackageSize+1)}
	tr := io.TeeReader(cr, c)
	if _, err := io.CopyN(&head, tr, p.HeaderEnd); err != nil && err != io.EOF {
		return nil, 0, fmt.Errorf("rpmrepo: %s: %w", name, err)
	}
	if _, err := io.Copy(io.Discard, tr); err != nil {
		return nil, 0, fmt.Errorf("rpmrepo: %s: %w", name, err)
	}
	if cr.n > MaxPackageSize {
		return nil, 0, fmt.Errorf("rpmrepo: %s: larger than %d bytes", name, int64(MaxPackageSize))
	}
	if got := c.h.Sum(nil); !bytes.Equal(got, c.want) {
		return nil, 0, fmt.Errorf("rpmrepo: %s: %s %x, primary.xml says %x: %w", name, c.typ, got, c.want, ErrPackageChecksum)
	}
	hdr, err := rpm.ReadHeader(bytes.NewReader(head.Bytes()), name)
	if err != nil {
		return nil, 0, err
	}
	return hdr, cr.n, nil
}

// localPath resolves a location href inside the repository directory.
func (r *Repo) localPath(href string) (string, error) {
	if strings.Contains(href, "://") || !filepath.IsLocal(filepath.FromSlash(href)) {
		return "", fmt.Errorf("rpmrepo: %s: location %q is not inside the repository", r.loc, href)
	}
	return filepath.Join(r.dir, filepath.FromSlash(href)), nil
}

// resolve turns a location (and optional xml:base) into an http(s) URL.
func (r *Repo) resolve(base, href string) (*url.URL, error) {
	b := r.base
	if base != "" {
		bu, err := url.Parse(base)
		if err != nil {
			return nil, fmt.Errorf("rpmrepo: %s: xml:base %q: %w", r.loc, base, err)
		}
		if !strings.HasSuffix(bu.Path, "/") {
			bu.Path += "/"
		}
		b = r.base.ResolveReference(bu)
	}
	h, err := url.Parse(href)
	if err != nil {
		return nil, fmt.Errorf("rpmrepo: %s: location %q: %w", r.loc, href, err)
	}
	u := b.ResolveReference(h)
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("rpmrepo: %s: location %q resolves to %s, not http(s)", r.loc, href, u)
	}
	return u, nil
}

// get reads a repository file whole, failing past limit bytes. It returns
// the bytes and the file's name (path or URL) for errors.
func (r *Repo) get(ctx context.Context, href string, limit int64) ([]byte, string, error) {
	if r.dir != "" {
		fp, err := r.localPath(href)
		if err != nil {
			return nil, "", err
		}
		fh, err := os.Open(fp)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fp, fmt.Errorf("rpmrepo: %s: %w", fp, ErrNotFound)
			}
			return nil, fp, fmt.Errorf("rpmrepo: %w", err)
		}
		defer fh.Close()
		b, err := io.ReadAll(io.LimitReader(fh, limit+1))
		if err != nil {
			return nil, fp, fmt.Errorf("rpmrepo: %s: %w", fp, err)
		}
		if int64(len(b)) > limit {
			return nil, fp, fmt.Errorf("rpmrepo: %s: larger than %d bytes", fp, limit)
		}
		return b, fp, nil
	}
	u, err := r.resolve("", href)
	if err != nil {
		return nil, "", err
	}
	var b []byte
	err = r.do(ctx, u, "", func(resp *http.Response) error {
		if resp.StatusCode != http.StatusOK {
			return statusError(u, resp)
		}
		var err error
		b, err = io.ReadAll(io.LimitReader(resp.Body, limit+1))
		if err != nil {
			return fmt.Errorf("rpmrepo: %s: %w", u, err)
		}
		if int64(len(b)) > limit {
			return fmt.Errorf("rpmrepo: %s: larger than %d bytes", u, limit)
		}
		return nil
	})
	return b, u.String(), err
}

// fetchRange reads bytes [0, end) of u with a Range request. A 200 answer
// (server ignoring Range) is read only up to end.
func (r *Repo) fetchRange(ctx context.Context, u *url.URL, end int64) ([]byte, error) {
	var b []byte
	err := r.do(ctx, u, fmt.Sprintf("bytes=0-%d", end-1), func(resp *http.Response) error {
		switch resp.StatusCode {
		case http.StatusPartialContent:
			var first, last, total int64
			cr := resp.Header.Get("Content-Range")
			if _, err := fmt.Sscanf(cr, "bytes %d-%d/%d", &first, &last, &total); err != nil {
				if _, err := fmt.Sscanf(cr, "bytes %d-%d/*", &first, &last); err != nil {
					return fmt.Errorf("rpmrepo: %s: 206 with Content-Range %q", u, cr)
				}
			}
			// A file shorter than the range is sent whole (last+1 ==
			// total); the header reader then reports the truncation.
			if first != 0 || (last != end-1 && (last > end-1 || total != last+1)) {
				return fmt.Errorf("rpmrepo: %s: asked for bytes 0-%d, server sent %q", u, end-1, cr)
			}
		case http.StatusOK:
			// Fallback: the server ignored Range; read the prefix only.
		default:
			return statusError(u, resp)
		}
		var err error
		b, err = io.ReadAll(io.LimitReader(resp.Body, end))
		if err != nil {
			return fmt.Errorf("rpmrepo: %s: %w", u, err)
		}
		return nil
	})
	return b, err
}

type retryable struct{ error }

func (e retryable) Unwrap() error { return e.error }

func statusError(u *url.URL, resp *http.Response) error {
	err := fmt.Errorf("rpmrepo: %s: HTTP %s", u, resp.Status)
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone {
		err = fmt.Errorf("rpmrepo: %s: HTTP %s: %w", u, resp.Status, ErrNotFound)
	}
	if resp.StatusCode >= 500 {
		return retryable{err}
	}
	return err
}

// do runs a GET with retries on 5xx and transport errors.
func (r *Repo) do(ctx context.Context, u *url.URL, rangeHdr string, fn func(*http.Response) error) error {
	tries := 1 + max(r.opts.Retries, 0)
	backoff := 100 * time.Millisecond
	var err error
	for i := range tries {
		if i > 0 {
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return ctx.Err()
			}
			backoff *= 2
		}
		err = r.once(ctx, u, rangeHdr, fn)
		var re retryable
		if err == nil || !errors.As(err, &re) || ctx.Err() != nil {
			break
		}
	}
	var re retryable
	if errors.As(err, &re) {
		return fmt.Errorf("%w (after %d attempts)", re.error, tries)
	}
	return err
}

// slot takes one of u's host's PerHost request slots; the returned
// function gives it back.
func (r *Repo) slot(ctx context.Context, u *url.URL) (func(), error) {
	r.hostMu.Lock()
	if r.hosts == nil {
		r.hosts = map[string]chan struct{}{}
	}
	ch := r.hosts[u.Host]
	if ch == nil {
		ch = make(chan struct{}, r.opts.PerHost)
		r.hosts[u.Host] = ch
	}
	r.hostMu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (r *Repo) once(ctx context.Context, u *url.URL, rangeHdr string, fn func(*http.Response) error) error {
	release, err := r.slot(ctx, u)
	if err != nil {
		return err
	}
	defer release()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("rpmrepo: %w", err)
	}
	if rangeHdr != "" {
		req.Header.Set("Range", rangeHdr)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return retryable{fmt.Errorf("rpmrepo: %w", err)}
	}
	defer func() {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) //nolint:errcheck // connection reuse only
		resp.Body.Close()
	}()
	return fn(resp)
}

var _ digests.Source = (*Repo)(nil)
