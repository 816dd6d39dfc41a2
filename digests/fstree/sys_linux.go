//go:build linux

package fstree

import (
	"context"
	"errors"
	"hash"
	"os"
	"path/filepath"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// root is an open descriptor on Root. Every later open is resolved relative
// to it with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS), so a symlink is
// never followed in any path component (not only the last one) and nothing
// outside Root is reached, even if the tree changes under the walk.
type root struct {
	path       string
	fd         int
	dev        uint64
	useOpenat2 bool // false on kernels before 5.6 or seccomp filters that refuse it
	noatime    atomic.Bool
}

func openRoot(path string) (*root, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	r := &root{path: path, fd: fd, dev: uint64(st.Dev), useOpenat2: true}
	// O_NOATIME keeps a scan of a golden machine from rewriting every
	// inode's atime; it needs file ownership or CAP_FOWNER, so it is
	// dropped after the first EPERM.
	r.noatime.Store(true)
	probe, err := r.openat2(".", unix.O_RDONLY|unix.O_DIRECTORY)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		// Fallback: O_NOFOLLOW guards only the last component.
		r.useOpenat2 = false
	} else if err == nil {
		unix.Close(probe)
	}
	return r, nil
}

func (r *root) close() { unix.Close(r.fd) }

func (r *root) openat2(name string, flags int) (int, error) {
	how := unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC | unix.O_NOFOLLOW),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS,
	}
	for tries := 0; ; tries++ {
		fd, err := unix.Openat2(r.fd, name, &how)
		// EAGAIN: a concurrent rename or mount raced the resolution.
		if err == unix.EINTR || (err == unix.EAGAIN && tries < 8) {
			continue
		}
		return fd, err
	}
}

// open opens the root-relative path rel ("/" is Root itself).
func (r *root) open(rel string, flags int) (int, error) {
	name := rel[1:]
	if name == "" {
		name = "."
	}
	if r.useOpenat2 {
		return r.openat2(name, flags)
	}
	for {
		fd, err := unix.Openat(r.fd, name, flags|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err == unix.EINTR {
			continue
		}
		return fd, err
	}
}

type dir struct {
	f   *os.File
	fd  int
	dev uint64
}

func (r *root) openDir(rel string) (*dir, error) {
	fd, err := r.open(rel, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &dir{f: os.NewFile(uintptr(fd), filepath.Join(r.path, rel)), fd: fd, dev: uint64(st.Dev)}, nil
}

// childDev reports the device of a subdirectory without opening it, so that
// an autofs mount point is not triggered just to learn it must be skipped.
func (d *dir) childDev(name string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW|unix.AT_NO_AUTOMOUNT); err != nil {
		return 0, err
	}
	return uint64(st.Dev), nil
}

type file struct {
	fd       int
	regular  bool
	uid      uint32
	nlink    uint64
	dev, ino uint64
	size     int64
}

// openFile opens a file the walker saw as regular and reports what it is
// now: the checks use fstat on the open descriptor, so what is checked is
// what is hashed.
func (r *root) openFile(rel string) (*file, error) {
	// O_NONBLOCK: if the entry was swapped for a fifo, open must not hang.
	flags := unix.O_RDONLY | unix.O_NONBLOCK | unix.O_NOCTTY
	var fd int
	var err error
	if r.noatime.Load() {
		fd, err = r.open(rel, flags|unix.O_NOATIME)
		if err == unix.EPERM {
			r.noatime.Store(false)
			fd, err = r.open(rel, flags)
		}
	} else {
		fd, err = r.open(rel, flags)
	}
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &file{
		fd:      fd,
		regular: st.Mode&unix.S_IFMT == unix.S_IFREG,
		uid:     st.Uid,
		nlink:   uint64(st.Nlink),
		dev:     uint64(st.Dev),
		ino:     uint64(st.Ino),
		size:    st.Size,
	}, nil
}

func (f *file) close() { unix.Close(f.fd) }

// hashTo streams the file through h using the worker's buffer; the file is
// never held in memory. It checks ctx between reads so that cancellation
// does not wait for a large file to finish.
func (f *file) hashTo(ctx context.Context, h hash.Hash, buf []byte) (int64, error) {
	if useFadvise && f.size > int64(len(buf)) {
		// Advisory only: a failure changes nothing about the result.
		_ = unix.Fadvise(f.fd, 0, 0, unix.FADV_SEQUENTIAL)
	}
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, err := unix.Read(f.fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return total, err
		}
		if n == 0 {
			return total, nil
		}
		h.Write(buf[:n])
		total += int64(n)
	}
}
