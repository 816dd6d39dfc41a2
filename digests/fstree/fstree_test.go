//go:build linux

package fstree

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/zest-attest/zest/digests"
)

// testTree describes the tree built by buildTree, root-relative, as IMA
// paths (spaces as '_').
var (
	// files hashed with default options.
	defaultFiles = []string{
		"/a/b/c/deep.txt",
		"/with_space/file_name.txt",
		"/empty",
		"/big.bin",
		"/hard1",
		"/a/hard2",
		"/home/user/secret",
		"/homework/notes",
		"/a/tmp/not-skipped.txt",
		"/user-owned",
	}
	inDefaultSkips = []string{"/tmp/in-default-skip.txt", "/var/lib/x"}
)

// buildTree creates, under a fresh directory, regular files of many shapes
// plus everything the walk must not hash: symlinks to files and dirs, a
// dangling symlink, a fifo, a socket, names that are not UTF-8, and files in
// DefaultSkips directories.
func buildTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	write := func(rel string, data []byte) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	big := make([]byte, 3<<20+17) // several reads with any buffer size
	for i := range big {
		big[i] = byte(i*7 + i>>11)
	}
	write("a/b/c/deep.txt", []byte("deep\n"))
	write("with space/file name.txt", []byte("spaces"))
	write("empty", nil)
	write("big.bin", big)
	write("hard1", []byte("hardlinked\n"))
	write("home/user/secret", []byte("secret"))
	write("homework/notes", []byte("not under /home"))
	write("a/tmp/not-skipped.txt", []byte("only /tmp is skipped, not /a/tmp"))
	write("user-owned", []byte("uid 1000"))
	write("tmp/in-default-skip.txt", []byte("tmp"))
	write("var/lib/x", []byte("var"))
	write("bad\xffname", []byte("not utf-8"))
	write("baddir\xfe/inner", []byte("inside a non-utf-8 dir"))
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Link(filepath.Join(root, "hard1"), filepath.Join(root, "a/hard2")))
	must(os.Symlink("a/b/c/deep.txt", filepath.Join(root, "link-file")))
	must(os.Symlink("a", filepath.Join(root, "link-dir")))
	must(os.Symlink("nope", filepath.Join(root, "dangling")))
	must(syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644))
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(root, "sock"), Net: "unix"})
	must(err)
	l.SetUnlinkOnClose(false)
	l.Close()
	if os.Geteuid() == 0 {
		must(os.Chown(filepath.Join(root, "user-owned"), 1000, 1000))
	}
	return root
}

// sumTool computes the expected digest with coreutils, independently of Go's
// crypto packages.
func sumTool(t *testing.T, alg digests.Algorithm, file string) string {
	t.Helper()
	out, err := exec.Command(string(alg)+"sum", "--", file).Output()
	if err != nil {
		t.Fatalf("%ssum %s: %v", alg, file, err)
	}
	// A leading backslash marks an escaped file name, not part of the digest.
	return strings.TrimPrefix(strings.Fields(string(out))[0], `\`)
}

// expected maps IMA paths to digests; diskRel undoes the '_' for spaces.
func expected(t *testing.T, root string, alg digests.Algorithm, paths []string) map[string]string {
	t.Helper()
	m := make(map[string]string)
	for _, p := range paths {
		disk := strings.ReplaceAll(p, "with_space/file_name", "with space/file name")
		m[p] = sumTool(t, alg, filepath.Join(root, disk))
	}
	return m
}

func collect(t *testing.T, tr *Tree) (map[string]string, error) {
	t.Helper()
	got := make(map[string]string)
	err := tr.Walk(context.Background(), func(d digests.Digest) error {
		if _, dup := got[d.Path]; dup {
			return fmt.Errorf("path %s yielded twice", d.Path)
		}
		if d.Algorithm != tr.alg || len(d.Value) != tr.alg.Size() {
			return fmt.Errorf("%s: algorithm %s, %d bytes", d.Path, d.Algorithm, len(d.Value))
		}
		got[d.Path] = hex.EncodeToString(d.Value)
		return nil
	})
	return got, err
}

func without(list []string, drop ...string) []string {
	return slices.DeleteFunc(slices.Clone(list), func(s string) bool { return slices.Contains(drop, s) })
}

func TestWalk(t *testing.T) {
	root := buildTree(t)
	isRoot := os.Geteuid() == 0
	tests := []struct {
		name  string
		opts  Options
		files []string
		// checks on Stats beyond Files/Hashed, which are always checked.
		skippedDirs, symlinks, special, notRootOwned, nonUTF8 int64
	}{
		{
			name:  "defaults sha256",
			opts:  Options{Algorithm: digests.SHA256},
			files: defaultFiles, skippedDirs: 2, symlinks: 3, special: 2, nonUTF8: 2,
		},
		{
			name:  "defaults sha1 one worker",
			opts:  Options{Algorithm: digests.SHA1, Workers: 1},
			files: defaultFiles, skippedDirs: 2, symlinks: 3, special: 2, nonUTF8: 2,
		},
		{
			name:  "sha384 many workers",
			opts:  Options{Algorithm: digests.SHA384, Workers: 8},
			files: defaultFiles, skippedDirs: 2, symlinks: 3, special: 2, nonUTF8: 2,
		},
		{
			name:  "sha512",
			opts:  Options{Algorithm: digests.SHA512},
			files: defaultFiles, skippedDirs: 2, symlinks: 3, special: 2, nonUTF8: 2,
		},
		{
			// Exact matching: /homework survives /home, a trailing slash is
			// accepted, and a nested dir is named by its full path.
			name:  "skip option",
			opts:  Options{Algorithm: digests.SHA256, Skip: []string{"/home", "/a/b/"}},
			files: without(defaultFiles, "/home/user/secret", "/a/b/c/deep.txt"), skippedDirs: 4, symlinks: 3, special: 2, nonUTF8: 2,
		},
		{
			name:  "no default skips",
			opts:  Options{Algorithm: digests.SHA256, NoDefaultSkips: true},
			files: append(slices.Clone(defaultFiles), inDefaultSkips...), symlinks: 3, special: 2, nonUTF8: 2,
		},
		{
			name:  "skip option without defaults",
			opts:  Options{Algorithm: digests.SHA256, NoDefaultSkips: true, Skip: []string{"/var/lib"}},
			files: append(slices.Clone(defaultFiles), "/tmp/in-default-skip.txt"), skippedDirs: 1, symlinks: 3, special: 2, nonUTF8: 2,
		},
	}
	if isRoot {
		tests = append(tests, struct {
			name                                                  string
			opts                                                  Options
			files                                                 []string
			skippedDirs, symlinks, special, notRootOwned, nonUTF8 int64
		}{
			name:  "root owned only",
			opts:  Options{Algorithm: digests.SHA256, RootOwnedOnly: true},
			files: without(defaultFiles, "/user-owned"), skippedDirs: 2, symlinks: 3, special: 2, notRootOwned: 1, nonUTF8: 2,
		})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Root = root
			tr, err := New(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			got, err := collect(t, tr)
			if err != nil {
				t.Fatal(err)
			}
			want := expected(t, root, tc.opts.Algorithm, tc.files)
			if !maps.Equal(got, want) {
				for p := range maps.Keys(want) {
					if got[p] != want[p] {
						t.Errorf("%s: got %q, want %q", p, got[p], want[p])
					}
				}
				for p := range maps.Keys(got) {
					if _, ok := want[p]; !ok {
						t.Errorf("unexpected path %q", p)
					}
				}
			}
			st := tr.Stats()
			wantStats := Stats{
				Files: int64(len(tc.files)), Hashed: int64(len(tc.files)) - 1, // hard1 == a/hard2
				Bytes:    st.Bytes,
				Symlinks: tc.symlinks, Special: tc.special, SkippedDirs: tc.skippedDirs,
				NotRootOwned: tc.notRootOwned, NonUTF8: tc.nonUTF8,
				NonUTF8Names: st.NonUTF8Names,
			}
			if !statsEqual(st, wantStats) {
				t.Errorf("Stats = %+v\nwant    %+v", st, wantStats)
			}
			slices.Sort(st.NonUTF8Names)
			if want := []string{"/baddir\xfe", "/bad\xffname"}; !slices.Equal(st.NonUTF8Names, want) {
				t.Errorf("NonUTF8Names = %q, want %q", st.NonUTF8Names, want)
			}
			if st.Bytes < 3<<20 {
				t.Errorf("Bytes = %d, want at least big.bin", st.Bytes)
			}
		})
	}
}

func statsEqual(a, b Stats) bool {
	return slices.Equal(a.NonUTF8Names, b.NonUTF8Names) && func() bool {
		a.NonUTF8Names, b.NonUTF8Names = nil, nil
		return fmt.Sprint(a) == fmt.Sprint(b)
	}()
}

// TestKeylimeFixture uses the tree from Keylime's own create-runtime-policy
// test; the digest is the one Keylime's test expects.
func TestKeylimeFixture(t *testing.T) {
	tr, err := New(Options{Root: "../../fixtures/keylime/create-runtime-policy/rootfs", Algorithm: digests.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	got, err := collect(t, tr)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"/rootfs_data": "7d4e74aa211d3bc50471bd71d5199f0509681fe9f03eb048a3243c389a55e5df"}
	if !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestSkipAtSlash checks Keylime's D3: with Root "/" the skip list must
// still apply. Every top-level directory is skipped, so the walk is cheap
// and anything yielded must be a top-level file.
func TestSkipAtSlash(t *testing.T) {
	ents, err := os.ReadDir("/")
	if err != nil {
		t.Fatal(err)
	}
	var skip []string
	for _, e := range ents {
		if e.IsDir() {
			skip = append(skip, "/"+e.Name())
		}
	}
	tr, err := New(Options{Root: "/", Algorithm: digests.SHA256, NoDefaultSkips: true, Skip: skip})
	if err != nil {
		t.Fatal(err)
	}
	got, err := collect(t, tr)
	if err != nil {
		t.Fatal(err)
	}
	for p := range got {
		if strings.Count(p, "/") != 1 {
			t.Errorf("yielded %s from a skipped directory", p)
		}
	}
	if st := tr.Stats(); st.SkippedDirs != int64(len(skip)) {
		t.Errorf("SkippedDirs = %d, want %d", st.SkippedDirs, len(skip))
	}
}

// TestOtherMounts mounts a tmpfs inside the tree: by default it is not
// entered, with CrossMounts it is.
func TestOtherMounts(t *testing.T) {
	root := t.TempDir()
	mnt := filepath.Join(root, "mnt2")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "top"), []byte("top"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs here (needs CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
	if err := os.WriteFile(filepath.Join(mnt, "inside"), []byte("on tmpfs"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, cross := range []bool{false, true} {
		t.Run(fmt.Sprint("CrossMounts=", cross), func(t *testing.T) {
			tr, err := New(Options{Root: root, Algorithm: digests.SHA256, CrossMounts: cross})
			if err != nil {
				t.Fatal(err)
			}
			got, err := collect(t, tr)
			if err != nil {
				t.Fatal(err)
			}
			want := []string{"/top"}
			wantOther := int64(1)
			if cross {
				want, wantOther = append(want, "/mnt2/inside"), 0
			}
			if !maps.Equal(got, expected(t, root, digests.SHA256, want)) {
				t.Errorf("got %v, want paths %v", got, want)
			}
			if st := tr.Stats(); st.OtherMounts != wantOther {
				t.Errorf("OtherMounts = %d, want %d", st.OtherMounts, wantOther)
			}
		})
	}
}

// TestHardlinksConcurrent gives many workers many links to few inodes, to
// exercise the inode cache under -race.
func TestHardlinksConcurrent(t *testing.T) {
	root := t.TempDir()
	const inodes, links = 5, 40
	var paths []string
	for i := range inodes {
		first := filepath.Join(root, fmt.Sprintf("f%d", i))
		if err := os.WriteFile(first, []byte(strings.Repeat(fmt.Sprint(i), 100000)), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, fmt.Sprintf("/f%d", i))
		for j := range links {
			if err := os.Link(first, filepath.Join(root, fmt.Sprintf("l%d-%d", i, j))); err != nil {
				t.Fatal(err)
			}
			paths = append(paths, fmt.Sprintf("/l%d-%d", i, j))
		}
	}
	want := make(map[string]string)
	for i := range inodes {
		sum := sumTool(t, digests.SHA256, filepath.Join(root, fmt.Sprintf("f%d", i)))
		for _, p := range paths {
			if strings.HasPrefix(p, fmt.Sprintf("/f%d", i)) || strings.HasPrefix(p, fmt.Sprintf("/l%d-", i)) {
				want[p] = sum
			}
		}
	}
	tr, err := New(Options{Root: root, Algorithm: digests.SHA256, Workers: 8})
	if err != nil {
		t.Fatal(err)
	}
	got, err := collect(t, tr)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(got, want) {
		t.Errorf("got %d paths, want %d (or digests differ)", len(got), len(want))
	}
	if st := tr.Stats(); st.Hashed != inodes || st.Files != inodes*(links+1) || st.Bytes != inodes*100000 {
		t.Errorf("Stats = %+v, want %d inodes hashed once, %d paths", st, inodes, inodes*(links+1))
	}
}

type countingProgress struct{ files, bytes atomic.Int64 }

func (p *countingProgress) Add(files, bytes int64) { p.files.Add(files); p.bytes.Add(bytes) }

func TestProgress(t *testing.T) {
	root := buildTree(t)
	p := &countingProgress{}
	tr, err := New(Options{Root: root, Algorithm: digests.SHA256, Progress: p})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := collect(t, tr); err != nil {
		t.Fatal(err)
	}
	st := tr.Stats()
	if p.files.Load() != st.Hashed || p.bytes.Load() != st.Bytes {
		t.Errorf("progress saw %d files %d bytes, Stats %d/%d", p.files.Load(), p.bytes.Load(), st.Hashed, st.Bytes)
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no root", Options{Algorithm: digests.SHA256}, "Root is required"},
		{"root missing", Options{Root: filepath.Join(dir, "nope"), Algorithm: digests.SHA256}, "no such file"},
		{"root is a file", Options{Root: file, Algorithm: digests.SHA256}, "not a directory"},
		{"no algorithm", Options{Root: dir}, "unknown digest algorithm"},
		// Keylime's D1: an algorithm it cannot compute dropped every file.
		{"sm3", Options{Root: dir, Algorithm: digests.SM3}, "cannot compute"},
		{"negative workers", Options{Root: dir, Algorithm: digests.SHA256, Workers: -1}, "Workers"},
		{"relative skip", Options{Root: dir, Algorithm: digests.SHA256, Skip: []string{"home"}}, "must start with '/'"},
		{"skip slash", Options{Root: dir, Algorithm: digests.SHA256, Skip: []string{"/"}}, "whole tree"},
		{"skip dotdot", Options{Root: dir, Algorithm: digests.SHA256, Skip: []string{"/a/../b"}}, "not clean"},
		{"skip double slash", Options{Root: dir, Algorithm: digests.SHA256, Skip: []string{"//home"}}, "not clean"},
		{"skip nul", Options{Root: dir, Algorithm: digests.SHA256, Skip: []string{"/a\x00"}}, "not a valid path"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func TestYieldErrorStops(t *testing.T) {
	root := buildTree(t)
	tr, err := New(Options{Root: root, Algorithm: digests.SHA256, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	stop := errors.New("stop")
	calls := 0
	err = tr.Walk(context.Background(), func(digests.Digest) error {
		calls++
		return stop
	})
	if err != stop || calls != 1 {
		t.Errorf("Walk = %v after %d calls, want the yield error after 1", err, calls)
	}
}

// TestCancel cancels mid-walk, from yield, and checks that Walk returns the
// context error and that every goroutine it started has exited.
func TestCancel(t *testing.T) {
	root := t.TempDir()
	for i := range 200 {
		p := filepath.Join(root, fmt.Sprintf("d%d", i%10), fmt.Sprintf("f%d", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(strings.Repeat("x", 70000)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	before := runtime.NumGoroutine()
	tr, err := New(Options{Root: root, Algorithm: digests.SHA256, Workers: 4})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	err = tr.Walk(ctx, func(digests.Digest) error {
		if n++; n == 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Walk = %v, want context.Canceled", err)
	}
	if n != 3 {
		t.Errorf("yield called %d times, want no calls after cancel", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > before {
		t.Errorf("%d goroutines after Walk, %d before", g, before)
	}
}

func TestConcurrentWalkRefused(t *testing.T) {
	root := buildTree(t)
	tr, err := New(Options{Root: root, Algorithm: digests.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	var inner error
	var once sync.Once
	err = tr.Walk(context.Background(), func(digests.Digest) error {
		once.Do(func() { inner = tr.Walk(context.Background(), func(digests.Digest) error { return nil }) })
		return nil
	})
	if err != nil || inner == nil || !strings.Contains(inner.Error(), "already running") {
		t.Errorf("outer %v, inner %v; want the inner Walk refused", err, inner)
	}
}

// TestUnreadable needs a process that file permissions apply to. Root
// bypasses them (CAP_DAC_OVERRIDE), so when running as root the test binary
// re-runs this test as user nobody.
func TestUnreadable(t *testing.T) {
	if os.Getenv("FSTREE_UNREADABLE_ROOT") != "" {
		unreadableChild(t, os.Getenv("FSTREE_UNREADABLE_ROOT"))
		return
	}
	root := t.TempDir()
	mk := func(rel string, mode os.FileMode) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(rel), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	mk("ok", 0o644)
	mk("secret", 0o000)
	mk("closed/inner", 0o644)
	if err := os.Chmod(filepath.Join(root, "closed"), 0o000); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(root, "closed"), 0o755) })
	if os.Geteuid() != 0 {
		unreadableChild(t, root)
		return
	}
	// Let nobody reach the tree and run a copy of the test binary.
	for p := root; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		os.Chmod(p, 0o755)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "..", "fstree.test")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestUnreadable$", "-test.v")
	cmd.Env = append(os.Environ(), "FSTREE_UNREADABLE_ROOT="+root, "GOCOVERDIR=")
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child as nobody: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestUnreadable") {
		t.Fatalf("child did not run the test:\n%s", out)
	}
}

func unreadableChild(t *testing.T, root string) {
	tr, err := New(Options{Root: root, Algorithm: digests.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	got, err := collect(t, tr)
	var werr *WalkError
	if !errors.As(err, &werr) {
		t.Fatalf("Walk = %v, want *WalkError", err)
	}
	if werr.Total != 2 || len(werr.Errs) != 2 {
		t.Fatalf("WalkError has %d/%d errors, want 2: %v", len(werr.Errs), werr.Total, err)
	}
	var named []string
	for _, e := range werr.Errs {
		var pe *fs.PathError
		if !errors.As(e, &pe) || !errors.Is(e, fs.ErrPermission) {
			t.Errorf("error %v is not a permission *fs.PathError", e)
			continue
		}
		named = append(named, pe.Path)
	}
	slices.Sort(named)
	if want := []string{filepath.Join(root, "closed"), filepath.Join(root, "secret")}; !slices.Equal(named, want) {
		t.Errorf("errors name %q, want %q", named, want)
	}
	// The readable file is still hashed; the caller decides to discard.
	if _, ok := got["/ok"]; !ok || len(got) != 1 {
		t.Errorf("got %v, want only /ok", got)
	}
}

func FuzzCleanSkip(f *testing.F) {
	for _, s := range append(slices.Clone(DefaultSkips), "", "/", "home", "/a/", "/a/../b", "//x", "/a/./b", "/\xff") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := cleanSkip(s)
		if err != nil {
			return
		}
		if !strings.HasPrefix(c, "/") || c == "/" || filepath.Clean(c) != c || strings.Contains(c, "\x00") {
			t.Errorf("cleanSkip(%q) accepted %q", s, c)
		}
		if c2, err := cleanSkip(c); err != nil || c2 != c {
			t.Errorf("cleanSkip not idempotent: %q -> %q -> %q, %v", s, c, c2, err)
		}
	})
}
