//go:build !linux

package fstree

import (
	"context"
	"errors"
	"hash"
	"os"
)

// The walk relies on openat2(2) and Linux stat fields; Keylime agents and
// golden machines are Linux, so other systems get a clear error instead of a
// weaker walk.
var errUnsupported = errors.New("filesystem tree hashing is only supported on Linux")

type root struct{ dev uint64 }

type dir struct {
	f   *os.File
	dev uint64
}

type file struct {
	regular  bool
	uid      uint32
	nlink    uint64
	dev, ino uint64
}

func openRoot(string) (*root, error)                                     { return nil, errUnsupported }
func (r *root) close()                                                   {}
func (r *root) openDir(string) (*dir, error)                             { return nil, errUnsupported }
func (r *root) openFile(string) (*file, error)                           { return nil, errUnsupported }
func (d *dir) childDev(string) (uint64, error)                           { return 0, errUnsupported }
func (f *file) close()                                                   {}
func (f *file) hashTo(context.Context, hash.Hash, []byte) (int64, error) { return 0, errUnsupported }
