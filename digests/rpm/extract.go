package rpm

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/zest-attest/zest/digests/cpio"
)

// Extract reads the package at path and returns the content of the one
// regular file whose packaged path (FileInfo.Path) satisfies match, checked
// against the header's FILEDIGESTS entry. It fails when no file or more
// than one file matches (listing them), when the file is larger than max
// bytes, or when its content does not hash to the header's digest. Boot
// components (shim, GRUB, vmlinuz) are read this way for measured-boot
// reference states.
func Extract(ctx context.Context, path string, match func(string) bool, max int64) (name string, data []byte, err error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", nil, fmt.Errorf("rpm: %w", err)
	}
	defer fh.Close()
	br := bufio.NewReaderSize(fh, 64<<10)
	h, err := ReadHeader(br, path)
	if err != nil {
		return "", nil, err
	}
	files, err := h.Files()
	if err != nil {
		return "", nil, err
	}
	var want *FileInfo
	var names []string
	for i := range files {
		if files[i].IsRegular() && !files[i].IsGhost() && match(files[i].Path) {
			names = append(names, files[i].Path)
			want = &files[i]
		}
	}
	switch {
	case len(names) == 0:
		return "", nil, fmt.Errorf("rpm: %s: no matching regular file", path)
	case len(names) > 1:
		slices.Sort(names)
		return "", nil, fmt.Errorf("rpm: %s: several matching files (%s)", path, strings.Join(names, ", "))
	case want.Size > max:
		return "", nil, fmt.Errorf("rpm: %s: %s is %d bytes, more than %d", path, want.Path, want.Size, max)
	case want.Digest == nil:
		return "", nil, fmt.Errorf("rpm: %s: %s has no digest in the header", path, want.Path)
	}
	// A hard-link set's content travels with one of its names, usually the
	// last.
	carriers := map[string]bool{}
	for i := range files {
		if files[i].Device == want.Device && files[i].Inode == want.Inode && files[i].IsRegular() {
			carriers[files[i].Path] = true
		}
	}
	alg, err := h.FileDigestAlgorithm()
	if err != nil {
		return "", nil, err
	}
	if want.Size == 0 {
		hh, err := newHash(alg)
		if err != nil {
			return "", nil, err
		}
		if !bytes.Equal(hh.Sum(nil), want.Digest) {
			return "", nil, fmt.Errorf("rpm: %s: %s is empty but its header digest is not that of no bytes", path, want.Path)
		}
		return want.Path, []byte{}, nil
	}
	comp := ""
	if h.main.Has(TagPayloadCompressor) {
		if comp, err = h.main.String(TagPayloadCompressor); err != nil {
			return "", nil, err
		}
	}
	dec, closeDec, err := decompressor(comp, br)
	if err != nil {
		return "", nil, fmt.Errorf("rpm: %s: payload compressor %q: %w", path, comp, err)
	}
	defer closeDec()
	cr := cpio.NewReader(bufio.NewReaderSize(dec, 64<<10))
	for {
		if err := ctx.Err(); err != nil {
			return "", nil, err
		}
		hdr, err := cr.Next()
		if err == io.EOF {
			return "", nil, fmt.Errorf("rpm: %s: %s is not in the payload", path, want.Path)
		}
		if err != nil {
			return "", nil, fmt.Errorf("rpm: %s: reading the payload: %w", path, err)
		}
		if !carriers[strings.TrimPrefix(hdr.Name, ".")] || !hdr.IsRegular() || hdr.Size == 0 {
			continue
		}
		if hdr.Size > max {
			return "", nil, fmt.Errorf("rpm: %s: %s is %d bytes in the payload, more than %d", path, want.Path, hdr.Size, max)
		}
		b, err := io.ReadAll(io.LimitReader(cr, max+1))
		if err != nil {
			return "", nil, fmt.Errorf("rpm: %s: reading %s: %w", path, want.Path, err)
		}
		hh, err := newHash(alg)
		if err != nil {
			return "", nil, err
		}
		hh.Write(b)
		if !bytes.Equal(hh.Sum(nil), want.Digest) {
			return "", nil, fmt.Errorf("rpm: %s: %s does not hash to the header's %s digest", path, want.Path, alg)
		}
		return want.Path, b, nil
	}
}
