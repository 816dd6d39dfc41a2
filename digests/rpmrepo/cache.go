package rpmrepo

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/zest-attest/zest/digests"
)

// Cache entries are small text files named <checksum type>-<hex>.files
// after the package's primary.xml checksum (the whole .rpm's digest, so a
// rebuilt package gets a new entry):
//
//	zest-rpmrepo-cache 1 <algorithm>
//	<hex digest> <hex signature or -> <Go-quoted path>
//
// An unreadable or malformed entry is a cache miss, never an error: the
// header is simply read again.
const cacheMagic = "zest-rpmrepo-cache 1 "

// Entries written by a walk with Options.VerifyPackages (the whole
// package matched its checksum) end in ".verified.files"; such a walk
// reads only those, so a header cached unverified never stands in for a
// verified one.
func (r *Repo) cachePath(p *pkgRef, verified bool) string {
	ext := ".files"
	if verified {
		ext = ".verified.files"
	}
	return filepath.Join(r.opts.CacheDir, p.ChecksumType+"-"+p.Checksum+ext)
}

func (r *Repo) cacheGet(p *pkgRef) (*pkgFiles, bool) {
	if r.opts.CacheDir == "" {
		return nil, false
	}
	for _, verified := range []bool{true, false} {
		if !verified && r.opts.VerifyPackages {
			break
		}
		b, err := os.ReadFile(r.cachePath(p, verified))
		if err != nil {
			continue
		}
		if pf, err := parseCache(b); err == nil {
			return pf, true
		}
	}
	return nil, false
}

func parseCache(b []byte) (*pkgFiles, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), cacheMagic) {
		return nil, fmt.Errorf("bad cache header")
	}
	alg, err := digests.ParseAlgorithm(strings.TrimPrefix(sc.Text(), cacheMagic))
	if err != nil {
		return nil, err
	}
	pf := &pkgFiles{Alg: alg}
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 3)
		if len(f) != 3 {
			return nil, fmt.Errorf("bad cache line")
		}
		v, err := hex.DecodeString(f[0])
		if err != nil || len(v) != alg.Size() {
			return nil, fmt.Errorf("bad digest")
		}
		var sig []byte
		if f[1] != "-" {
			if sig, err = hex.DecodeString(f[1]); err != nil {
				return nil, err
			}
		}
		p, err := strconv.Unquote(f[2])
		if err != nil || !strings.HasPrefix(p, "/") {
			return nil, fmt.Errorf("bad path")
		}
		pf.Files = append(pf.Files, digests.Digest{Path: p, Algorithm: alg, Value: v, Signature: sig})
	}
	return pf, sc.Err()
}

// cachePut writes the entry to a temporary file and renames it into place,
// so concurrent walks never see half an entry.
func (r *Repo) cachePut(p *pkgRef, pf *pkgFiles) error {
	if r.opts.CacheDir == "" {
		return nil
	}
	if err := os.MkdirAll(r.opts.CacheDir, 0o755); err != nil {
		return fmt.Errorf("rpmrepo: cache: %w", err)
	}
	var b bytes.Buffer
	b.WriteString(cacheMagic + string(pf.Alg) + "\n")
	for _, d := range pf.Files {
		sig := "-"
		if len(d.Signature) > 0 {
			sig = hex.EncodeToString(d.Signature)
		}
		fmt.Fprintf(&b, "%x %s %s\n", d.Value, sig, strconv.Quote(d.Path))
	}
	tmp, err := os.CreateTemp(r.opts.CacheDir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("rpmrepo: cache: %w", err)
	}
	_, werr := tmp.Write(b.Bytes())
	cerr := tmp.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), r.cachePath(p, r.opts.VerifyPackages))
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("rpmrepo: cache: %w", werr)
	}
	return nil
}
