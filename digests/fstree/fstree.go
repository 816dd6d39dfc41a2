// Package fstree owns hashing a filesystem tree (a golden machine's "/", or
// an unpacked image in CI) into reference digests, the job Keylime's
// `keylime-policy create runtime --rootfs` does.
//
// It differs from Keylime on purpose: skip paths work for Root "/" too
// (Keylime's D3), an algorithm zest cannot compute is refused up front
// instead of dropping every file (D1), mounts are detected exactly by st_dev
// rather than by comparing fstype strings of host mount points, and any
// file or directory that cannot be read fails the walk, so a policy is never
// silently incomplete.
//
// It must not import policygen, verifier, archive or any CLI package; it
// never prints, logs or exits.
package fstree

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/zest-attest/zest/digests"
)

// DefaultSkips are the root-relative directories Keylime never enters when it
// scans a rootfs (keylime/policy/create_runtime_policy.py, BASE_EXCLUDE_DIRS):
// pseudo filesystems and volatile or per-host data.
var DefaultSkips = []string{"/proc", "/sys", "/run", "/dev", "/tmp", "/var", "/lost+found", "/media", "/snap", "/mnt"}

// MaxNonUTF8Names bounds how many non-UTF-8 names Stats keeps as examples.
const MaxNonUTF8Names = 10

// maxReportedErrors bounds how many per-path errors a WalkError keeps; the
// walk goes on after an unreadable path so one run names all of them.
const maxReportedErrors = 20

// Options configure a Tree. The zero value of every optional field is the
// Keylime-compatible choice, except RootOwnedOnly (see there).
type Options struct {
	// Root is the directory to hash. Digest paths are relative to it:
	// the file Root/usr/bin/x is yielded as "/usr/bin/x". Root itself may
	// be reached through a symlink; nothing below it is.
	Root string
	// Algorithm is the digest algorithm; it must be one zest can compute.
	Algorithm digests.Algorithm
	// Workers is the number of hashing goroutines; 0 means
	// runtime.GOMAXPROCS(0).
	Workers int
	// Skip lists extra root-relative directories not to enter, such as
	// "/home". Each must be absolute-looking and clean; "/" is refused.
	Skip []string
	// NoDefaultSkips disables DefaultSkips.
	NoDefaultSkips bool
	// CrossMounts enters directories whose st_dev differs from Root's.
	// By default they are skipped, which is Keylime's fstype rule made exact.
	CrossMounts bool
	// RootOwnedOnly skips regular files whose owner uid is not 0, as
	// Keylime does. zest hashes all files by default because unpacked
	// image trees belong to the CI user.
	RootOwnedOnly bool
	// Progress, if set, is told about every file hashed.
	Progress digests.Progress
}

// Stats counts what one Walk did. Files counts yielded paths; Hashed counts
// distinct files (inodes) read, so Files-Hashed paths were extra hard links.
type Stats struct {
	Files  int64 // paths yielded
	Hashed int64 // distinct inodes read
	Bytes  int64 // bytes read (each inode once)

	Symlinks     int64 // symlinks seen (never followed nor hashed)
	Special      int64 // fifos, sockets, devices
	OtherMounts  int64 // directories on another device, not entered
	SkippedDirs  int64 // directories in Skip or DefaultSkips, not entered
	NotRootOwned int64 // regular files skipped by RootOwnedOnly
	NonUTF8      int64 // names that are not valid UTF-8, not hashed nor entered
	// NonUTF8Names holds the first MaxNonUTF8Names such root-relative
	// paths, byte for byte (print them with %q).
	NonUTF8Names []string
}

// WalkError reports every path that could not be read. The walk yields all
// other files before returning it, but the result is incomplete and must not
// become a policy.
type WalkError struct {
	Root string
	// Errs holds the first errors, each an *fs.PathError naming the path on
	// disk (Root joined with the root-relative path).
	Errs []error
	// Total counts all errors, including those not kept in Errs.
	Total int
}

func (e *WalkError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "fstree: %d unreadable path(s) under %s", e.Total, e.Root)
	for _, err := range e.Errs {
		b.WriteString("\n\t")
		b.WriteString(err.Error())
	}
	if more := e.Total - len(e.Errs); more > 0 {
		fmt.Fprintf(&b, "\n\t... and %d more", more)
	}
	return b.String()
}

// Unwrap lets errors.Is and errors.As see the per-path errors.
func (e *WalkError) Unwrap() []error { return e.Errs }

// Tree hashes the regular files under a directory. It is a digests.Source.
type Tree struct {
	root          string
	alg           digests.Algorithm
	workers       int
	skip          map[string]struct{}
	crossMounts   bool
	rootOwnedOnly bool
	progress      digests.Progress

	running atomic.Bool
	stats   counters
}

var _ digests.Source = (*Tree)(nil)

// New validates opts and returns a Tree. Nothing is read yet except a stat of
// Root.
func New(opts Options) (*Tree, error) {
	if opts.Root == "" {
		return nil, errors.New("fstree: Root is required")
	}
	if _, err := opts.Algorithm.New(); err != nil {
		return nil, fmt.Errorf("fstree: %w", err)
	}
	if opts.Workers < 0 {
		return nil, fmt.Errorf("fstree: Workers must be >= 0, got %d", opts.Workers)
	}
	fi, err := os.Stat(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("fstree: root: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("fstree: root %s is not a directory", opts.Root)
	}
	t := &Tree{
		root:          filepath.Clean(opts.Root),
		alg:           opts.Algorithm,
		workers:       opts.Workers,
		skip:          make(map[string]struct{}),
		crossMounts:   opts.CrossMounts,
		rootOwnedOnly: opts.RootOwnedOnly,
		progress:      opts.Progress,
	}
	if t.workers == 0 {
		t.workers = runtime.GOMAXPROCS(0)
	}
	if !opts.NoDefaultSkips {
		for _, s := range DefaultSkips {
			t.skip[s] = struct{}{}
		}
	}
	for _, s := range opts.Skip {
		c, err := cleanSkip(s)
		if err != nil {
			return nil, err
		}
		t.skip[c] = struct{}{}
	}
	return t, nil
}

// cleanSkip accepts "/home" and "/home/", and refuses anything that would
// not compare equal to a root-relative directory path: relative paths, "."
// and ".." elements, doubled slashes, "/" itself (that would skip the whole
// tree, which Keylime answers with an empty policy) and NUL bytes.
func cleanSkip(s string) (string, error) {
	c := s
	if len(c) > 1 {
		c = strings.TrimSuffix(c, "/")
	}
	switch {
	case !strings.HasPrefix(c, "/"):
		return "", fmt.Errorf("fstree: skip path %q must start with '/' (it is relative to Root)", s)
	case c == "/":
		return "", fmt.Errorf("fstree: skip path %q would skip the whole tree", s)
	case strings.IndexByte(c, 0) >= 0 || !utf8.ValidString(c):
		return "", fmt.Errorf("fstree: skip path %q is not a valid path", s)
	case path.Clean(c) != c:
		return "", fmt.Errorf("fstree: skip path %q is not clean (want %q)", s, path.Clean(c))
	}
	return c, nil
}

// Stats returns the counters of the current or last Walk.
func (t *Tree) Stats() Stats { return t.stats.snapshot() }

type counters struct {
	files, hashed, bytes               atomic.Int64
	symlinks, special, otherMounts     atomic.Int64
	skippedDirs, notRootOwned, nonUTF8 atomic.Int64
	mu                                 sync.Mutex
	nonUTF8Names                       []string
}

func (c *counters) reset() {
	for _, v := range []*atomic.Int64{&c.files, &c.hashed, &c.bytes, &c.symlinks, &c.special,
		&c.otherMounts, &c.skippedDirs, &c.notRootOwned, &c.nonUTF8} {
		v.Store(0)
	}
	c.mu.Lock()
	c.nonUTF8Names = nil
	c.mu.Unlock()
}

func (c *counters) addNonUTF8(rel string) {
	c.nonUTF8.Add(1)
	c.mu.Lock()
	if len(c.nonUTF8Names) < MaxNonUTF8Names {
		c.nonUTF8Names = append(c.nonUTF8Names, rel)
	}
	c.mu.Unlock()
}

func (c *counters) snapshot() Stats {
	c.mu.Lock()
	names := append([]string(nil), c.nonUTF8Names...)
	c.mu.Unlock()
	return Stats{
		Files: c.files.Load(), Hashed: c.hashed.Load(), Bytes: c.bytes.Load(),
		Symlinks: c.symlinks.Load(), Special: c.special.Load(), OtherMounts: c.otherMounts.Load(),
		SkippedDirs: c.skippedDirs.Load(), NotRootOwned: c.notRootOwned.Load(), NonUTF8: c.nonUTF8.Load(),
		NonUTF8Names: names,
	}
}

// result travels from the walker and the workers to the one goroutine that
// calls yield. Exactly one of value and err is set.
type result struct {
	rel   string
	value []byte
	err   error
}

// Walk hashes every regular file under Root and calls yield once per path,
// from the calling goroutine only.
//
// Digests arrive in completion order, which varies between runs; consumers
// that need a stable output sort (policygen does). Hard links are read once
// and yielded under every path. Symlinks are never followed, and an
// unreadable file or directory does not stop the walk but makes Walk return
// a *WalkError listing them. If yield returns an error, Walk stops and
// returns that error unchanged. The tree should be quiescent: a file that
// disappears during the walk is an error, not a silent omission.
//
// A Tree runs one Walk at a time.
func (t *Tree) Walk(ctx context.Context, yield func(digests.Digest) error) error {
	if !t.running.CompareAndSwap(false, true) {
		return errors.New("fstree: Walk is already running on this Tree")
	}
	defer t.running.Store(false)
	t.stats.reset()

	r, err := openRoot(t.root)
	if err != nil {
		return fmt.Errorf("fstree: open root: %w", err)
	}
	defer r.close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Short queues: a job is only a path, and a deep queue would just hold memory
	// while the workers are the bottleneck anyway.
	jobs := make(chan string, 4*t.workers)
	results := make(chan result, 4*t.workers)
	inodes := &inodeCache{m: make(map[inodeKey]*inodeEntry)}

	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(jobs)
		t.walkDirs(ctx, r, jobs, results)
	})
	for range t.workers {
		wg.Go(func() { t.hashWorker(ctx, r, inodes, jobs, results) })
	}
	go func() {
		wg.Wait()
		close(results)
	}()

	var (
		yieldErr error
		werr     = &WalkError{Root: t.root}
	)
	for res := range results {
		if yieldErr != nil || ctx.Err() != nil {
			continue // draining so every goroutine can finish
		}
		if res.err != nil {
			werr.Total++
			if len(werr.Errs) < maxReportedErrors {
				werr.Errs = append(werr.Errs, res.err)
			}
			continue
		}
		t.stats.files.Add(1)
		if err := yield(digests.Digest{Path: digests.IMAPath(res.rel), Algorithm: t.alg, Value: res.value}); err != nil {
			yieldErr = err
			cancel()
		}
	}
	switch {
	case yieldErr != nil:
		return yieldErr
	case ctx.Err() != nil:
		return fmt.Errorf("fstree: walk %s: %w", t.root, context.Cause(ctx))
	case werr.Total > 0:
		return werr
	}
	return nil
}

// diskPath names a root-relative path as the user would find it on disk,
// for error messages.
func (t *Tree) diskPath(rel string) string { return filepath.Join(t.root, rel) }

func (t *Tree) pathErr(op, rel string, err error) result {
	return result{rel: rel, err: &fs.PathError{Op: op, Path: t.diskPath(rel), Err: err}}
}

func joinRel(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// send delivers r unless the walk was cancelled.
func send[T any](ctx context.Context, ch chan<- T, v T) bool {
	select {
	case ch <- v:
		return true
	case <-ctx.Done():
		return false
	}
}

// walkDirs is the single walker: it reads directories depth first with an
// explicit stack, and hands regular files to the workers by path. Pending
// directories are kept as names only and each directory is closed before its
// children are opened, so memory and open descriptors stay flat however deep
// or wide the tree is.
func (t *Tree) walkDirs(ctx context.Context, r *root, jobs chan<- string, results chan<- result) {
	stack := []string{"/"}
	for len(stack) > 0 && ctx.Err() == nil {
		rel := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		d, err := r.openDir(rel)
		if err != nil {
			if !send(ctx, results, t.pathErr("open", rel, err)) {
				return
			}
			continue
		}
		if !t.crossMounts && d.dev != r.dev {
			// A mount appeared after the parent saw this entry.
			t.stats.otherMounts.Add(1)
			d.f.Close()
			continue
		}
		for ctx.Err() == nil {
			ents, rerr := d.f.ReadDir(1024)
			for _, e := range ents {
				name := e.Name()
				child := joinRel(rel, name)
				if !utf8.ValidString(name) {
					t.stats.addNonUTF8(child)
					continue
				}
				typ := e.Type()
				switch {
				case typ.IsDir():
					if _, ok := t.skip[child]; ok {
						t.stats.skippedDirs.Add(1)
						continue
					}
					if !t.crossMounts {
						dev, err := d.childDev(name)
						if err != nil {
							if !send(ctx, results, t.pathErr("lstat", child, err)) {
								d.f.Close()
								return
							}
							continue
						}
						if dev != r.dev {
							t.stats.otherMounts.Add(1)
							continue
						}
					}
					stack = append(stack, child)
				case typ&fs.ModeSymlink != 0:
					t.stats.symlinks.Add(1)
				case typ.IsRegular():
					if !send(ctx, jobs, child) {
						d.f.Close()
						return
					}
				default:
					t.stats.special.Add(1)
				}
			}
			if rerr != nil {
				if !errors.Is(rerr, io.EOF) {
					send(ctx, results, t.pathErr("readdir", rel, rerr))
				}
				break
			}
		}
		d.f.Close()
	}
}

// bufSize is the per-worker read buffer. 256 KiB measured best on the
// benchmark tree (see BenchmarkBuffer); it is a variable for that
// benchmark only.
var bufSize = 256 << 10

// useFadvise turns on posix_fadvise(SEQUENTIAL) per file; a variable so the
// benchmark can compare.
var useFadvise = true

func (t *Tree) hashWorker(ctx context.Context, r *root, inodes *inodeCache, jobs <-chan string, results chan<- result) {
	h, _ := t.alg.New() // New checked the algorithm
	buf := make([]byte, bufSize)
	for rel := range jobs {
		if ctx.Err() != nil {
			continue // let the walker see cancellation and close jobs
		}
		if res, ok := t.hashOne(ctx, r, inodes, h, buf, rel); ok {
			send(ctx, results, res)
		}
	}
}

type inodeKey struct{ dev, ino uint64 }

// inodeEntry is shared by all paths of one multiply-linked inode. The first
// worker to meet it hashes; the others wait on done. An entry is dropped once
// all of its links were seen, so the cache holds only inodes with links
// still ahead in the walk.
type inodeEntry struct {
	done      chan struct{}
	value     []byte
	ok        bool
	remaining int64
}

type inodeCache struct {
	mu sync.Mutex
	m  map[inodeKey]*inodeEntry
}

// claim returns the entry for k and whether the caller must hash it.
func (c *inodeCache) claim(k inodeKey, nlink uint64) (*inodeEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.m[k]
	if e == nil {
		e = &inodeEntry{done: make(chan struct{}), remaining: int64(nlink) - 1}
		c.m[k] = e
		return e, true
	}
	e.remaining--
	if e.remaining <= 0 {
		delete(c.m, k)
	}
	return e, false
}

// hashOne opens, checks and hashes one file. ok is false when the file is
// skipped (and counted) rather than yielded or failed.
func (t *Tree) hashOne(ctx context.Context, r *root, inodes *inodeCache, h hash.Hash, buf []byte, rel string) (res result, ok bool) {
	f, err := r.openFile(rel)
	if err != nil {
		return t.pathErr("open", rel, err), true
	}
	defer f.close()
	if !f.regular {
		// Replaced by something else since the directory was read.
		t.stats.special.Add(1)
		return result{}, false
	}
	if t.rootOwnedOnly && f.uid != 0 {
		t.stats.notRootOwned.Add(1)
		return result{}, false
	}
	var e *inodeEntry
	if f.nlink > 1 {
		var mine bool
		e, mine = inodes.claim(inodeKey{f.dev, f.ino}, f.nlink)
		if !mine {
			select {
			case <-e.done:
			case <-ctx.Done():
				return result{}, false
			}
			if !e.ok {
				return result{}, false // the first path carries the error
			}
			return result{rel: rel, value: append([]byte(nil), e.value...)}, true
		}
		defer close(e.done)
	}
	h.Reset()
	n, err := f.hashTo(ctx, h, buf)
	if err != nil {
		return t.pathErr("read", rel, err), true
	}
	value := h.Sum(nil)
	if e != nil {
		e.value, e.ok = value, true
		value = append([]byte(nil), value...)
	}
	t.stats.hashed.Add(1)
	t.stats.bytes.Add(n)
	if t.progress != nil {
		t.progress.Add(1, n)
	}
	return result{rel: rel, value: value}, true
}
