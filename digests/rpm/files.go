package rpm

import (
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/zest-attest/zest/digests"
	"github.com/zest-attest/zest/digests/imasig"
)

// FileFlags are FILEFLAGS bits (include/rpm/rpmfiles.h).
type FileFlags uint32

// The FILEFLAGS bits zest looks at.
const (
	FlagConfig    FileFlags = 1 << 0 // %config
	FlagDoc       FileFlags = 1 << 1 // %doc
	FlagMissingOK FileFlags = 1 << 3 // %config(missingok)
	FlagNoReplace FileFlags = 1 << 4 // %config(noreplace)
	FlagGhost     FileFlags = 1 << 6 // %ghost: not in the payload
	FlagLicense   FileFlags = 1 << 7 // %license
)

// File type bits of FileInfo.Mode.
const (
	ModeTypeMask = 0o170000
	ModeRegular  = 0o100000
	ModeDir      = 0o040000
	ModeSymlink  = 0o120000
)

// FileInfo is one file of a package as its main header describes it.
type FileInfo struct {
	// Path as packaged: absolute, spaces kept (digests.IMAPath gives the
	// form IMA logs).
	Path  string
	Mode  uint16 // st_mode: type bits and permissions
	Flags FileFlags
	Size  int64
	// Digest is the FILEDIGESTS value in the header's algorithm, nil when
	// the header has none (directories, symlinks, ghosts).
	Digest []byte
	// LinkTo is the symlink target, "" for other files.
	LinkTo string
	// Device and Inode are rpm's synthetic ids: equal pairs are hard links.
	Device, Inode uint32
	// Signature is the file's security.ima value (0x03, v2 header,
	// signature) from FILESIGNATURES, nil when unsigned. Parsed, not
	// verified.
	Signature []byte
}

// IsRegular reports a regular file.
func (f *FileInfo) IsRegular() bool { return f.Mode&ModeTypeMask == ModeRegular }

// IsDir reports a directory.
func (f *FileInfo) IsDir() bool { return f.Mode&ModeTypeMask == ModeDir }

// IsSymlink reports a symbolic link.
func (f *FileInfo) IsSymlink() bool { return f.Mode&ModeTypeMask == ModeSymlink }

// IsGhost reports a %ghost file, which the package lists but does not ship.
func (f *FileInfo) IsGhost() bool { return f.Flags&FlagGhost != 0 }

// IsConfig reports a %config file, which is often edited on the target.
func (f *FileInfo) IsConfig() bool { return f.Flags&FlagConfig != 0 }

// HasContentDigest reports whether the file is one IMA can measure with the
// header's digest: a regular, non-ghost file with a digest that is not all
// zeros (Keylime drops those too).
func (f *FileInfo) HasContentDigest() bool {
	return f.IsRegular() && !f.IsGhost() && len(f.Digest) > 0 && strings.Trim(string(f.Digest), "\x00") != ""
}

// ErrUnknownAlgorithm: FILEDIGESTALGO names an algorithm zest cannot use.
var ErrUnknownAlgorithm = errors.New("unsupported file digest algorithm")

// digestAlgos maps FILEDIGESTALGO (PGPHASHALGO_*) ids to digests'
// algorithms and the kernel hash_algo a v2 signature of that digest names.
var digestAlgos = map[uint32]struct {
	alg  digests.Algorithm
	hash imasig.HashAlgo
}{
	1:  {digests.MD5, imasig.HashMD5},
	2:  {digests.SHA1, imasig.HashSHA1},
	8:  {digests.SHA256, imasig.HashSHA256},
	9:  {digests.SHA384, imasig.HashSHA384},
	10: {digests.SHA512, imasig.HashSHA512},
}

// FileDigestAlgorithm returns the algorithm of FILEDIGESTS: FILEDIGESTALGO,
// or MD5 when the tag is absent (librpm's default, lib/rpmfi.cc).
func (h *Header) FileDigestAlgorithm() (digests.Algorithm, error) {
	alg, _, err := h.digestAlgo()
	return alg, err
}

func (h *Header) digestAlgo() (digests.Algorithm, imasig.HashAlgo, error) {
	if !h.main.Has(TagFileDigestAlgo) {
		return digests.MD5, imasig.HashMD5, nil
	}
	id, err := h.main.Uint32(TagFileDigestAlgo)
	if err != nil {
		return "", 0, err
	}
	a, ok := digestAlgos[id]
	if !ok {
		e, _ := h.main.lookup(TagFileDigestAlgo)
		return "", 0, h.main.errAt(h.main.dataOffset(e), TagFileDigestAlgo, ErrUnknownAlgorithm, "id %d", id)
	}
	return a.alg, a.hash, nil
}

// fileArray checks that an array tag has n elements.
func fileArray[T any](t *Tags, tag Tag, n int, get func(Tag) ([]T, error)) ([]T, error) {
	v, err := get(tag)
	if err != nil {
		return nil, err
	}
	if len(v) != n {
		e, _ := t.lookup(tag)
		return nil, t.errAt(t.dataOffset(e), tag, nil, "%d elements for %d files", len(v), n)
	}
	return v, nil
}

// optionalArray is fileArray for a tag that may be absent (nil, nil).
func optionalArray[T any](t *Tags, tag Tag, n int, get func(Tag) ([]T, error)) ([]T, error) {
	if !t.Has(tag) {
		return nil, nil
	}
	return fileArray(t, tag, n, get)
}

// signatureTags returns the tags holding IMA signatures: the signature
// header's 274 when present, else the main header's 5090, else nil.
func (h *Header) signatureTags() (*Tags, Tag) {
	switch {
	case h.sig.Has(TagSigFileSigs):
		return h.sig, TagSigFileSigs
	case h.main.Has(TagFileSignatures):
		return h.main, TagFileSignatures
	}
	return nil, 0
}

// signatures decodes and parses the IMA signatures, one per file (nil for
// ""), checking each names the header's digest algorithm.
func (h *Header) signatures(n int, hashAlgo imasig.HashAlgo) ([][]byte, error) {
	t, tag := h.signatureTags()
	if t == nil {
		return nil, nil
	}
	hexes, err := fileArray(t, tag, n, t.Strings)
	if err != nil {
		return nil, err
	}
	e, _ := t.lookup(tag)
	at := t.dataOffset(e)
	out := make([][]byte, n)
	for i, s := range hexes {
		if s == "" {
			continue
		}
		b, err := hex.DecodeString(s)
		if err != nil {
			return nil, t.errAt(at, tag, err, "file %d: signature is not hex", i)
		}
		sig, err := imasig.ParseSignature(b)
		if err != nil {
			return nil, t.errAt(at, tag, err, "file %d", i)
		}
		if sig.Type != imasig.TypeDigsig {
			return nil, t.errAt(at, tag, nil, "file %d: signature type 0x%02x, want 0x03", i, sig.Type)
		}
		if sig.HashAlgo != hashAlgo {
			return nil, t.errAt(at, tag, nil, "file %d: signature is over a %s digest, the header's digests are %s", i, sig.HashAlgo, hashAlgo)
		}
		out[i] = b
	}
	return out, nil
}

// KeyIDs returns the distinct keyids of the package's IMA signatures in
// ascending order: the keys a verifier needs for this package. A package
// without signatures has none.
func (h *Header) KeyIDs() ([]uint32, error) {
	t, tag := h.signatureTags()
	if t == nil {
		return nil, nil
	}
	_, hashAlgo, err := h.digestAlgo()
	if err != nil {
		return nil, err
	}
	hexes, err := t.Strings(tag)
	if err != nil {
		return nil, err
	}
	sigs, err := h.signatures(len(hexes), hashAlgo)
	if err != nil {
		return nil, err
	}
	var ids []uint32
	for _, b := range sigs {
		if b != nil {
			s, _ := imasig.ParseSignature(b) // parsed once already
			ids = append(ids, s.KeyID)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// Files reconstructs the file list from the main header (packages.md §2.6):
// paths from DIRNAMES, DIRINDEXES and BASENAMES, with modes, flags, sizes,
// digests, link targets, inode ids and IMA signatures. Every per-file array
// must have one element per file. A package without files returns nil.
func (h *Header) Files() ([]FileInfo, error) {
	m := h.main
	if !m.Has(TagBaseNames) {
		if m.Has(TagOldFileNames) {
			return nil, m.errAt(m.start, TagOldFileNames, nil, "rpm v3 file list (OLDFILENAMES) is not supported")
		}
		return nil, nil
	}
	alg, hashAlgo, err := h.digestAlgo()
	if err != nil {
		return nil, err
	}
	base, err := m.Strings(TagBaseNames)
	if err != nil {
		return nil, err
	}
	n := len(base)
	dirs, err := m.Strings(TagDirNames)
	if err != nil {
		return nil, err
	}
	dirIdx, err := fileArray(m, TagDirIndexes, n, m.Uint32s)
	if err != nil {
		return nil, err
	}
	modes, err := fileArray(m, TagFileModes, n, m.Uint16s)
	if err != nil {
		return nil, err
	}
	flags, err := fileArray(m, TagFileFlags, n, m.Uint32s)
	if err != nil {
		return nil, err
	}
	dgs, err := fileArray(m, TagFileDigests, n, m.Strings)
	if err != nil {
		return nil, err
	}
	links, err := fileArray(m, TagFileLinkTos, n, m.Strings)
	if err != nil {
		return nil, err
	}
	sizes32, err := optionalArray(m, TagFileSizes, n, m.Uint32s)
	if err != nil {
		return nil, err
	}
	sizes64, err := optionalArray(m, TagLongFileSizes, n, m.Uint64s)
	if err != nil {
		return nil, err
	}
	if (sizes32 == nil) == (sizes64 == nil) {
		return nil, m.errAt(m.start, TagFileSizes, nil, "want exactly one of FILESIZES and LONGFILESIZES")
	}
	devs, err := optionalArray(m, TagFileDevices, n, m.Uint32s)
	if err != nil {
		return nil, err
	}
	inodes, err := optionalArray(m, TagFileInodes, n, m.Uint32s)
	if err != nil {
		return nil, err
	}
	sigs, err := h.signatures(n, hashAlgo)
	if err != nil {
		return nil, err
	}
	for i, d := range dirs {
		if !strings.HasPrefix(d, "/") || !strings.HasSuffix(d, "/") || badPath(d) {
			e, _ := m.lookup(TagDirNames)
			return nil, m.errAt(m.dataOffset(e), TagDirNames, nil, "directory %d %q is not a clean absolute path ending in /", i, d)
		}
	}

	digestEntry, _ := m.lookup(TagFileDigests)
	files := make([]FileInfo, n)
	for i := range files {
		if int(dirIdx[i]) >= len(dirs) {
			e, _ := m.lookup(TagDirIndexes)
			return nil, m.errAt(m.dataOffset(e), TagDirIndexes, nil, "file %d: directory index %d of %d", i, dirIdx[i], len(dirs))
		}
		if b := base[i]; b == "" || b == "." || b == ".." || strings.IndexByte(b, '/') >= 0 {
			e, _ := m.lookup(TagBaseNames)
			return nil, m.errAt(m.dataOffset(e), TagBaseNames, nil, "file %d: bad base name %q", i, b)
		}
		f := &files[i]
		f.Path = dirs[dirIdx[i]] + base[i]
		f.Mode = modes[i]
		f.Flags = FileFlags(flags[i])
		if sizes32 != nil {
			f.Size = int64(sizes32[i])
		} else {
			if sizes64[i] > 1<<62 {
				e, _ := m.lookup(TagLongFileSizes)
				return nil, m.errAt(m.dataOffset(e), TagLongFileSizes, nil, "file %d: size %d", i, sizes64[i])
			}
			f.Size = int64(sizes64[i])
		}
		if dgs[i] != "" {
			d, err := hex.DecodeString(dgs[i])
			if err == nil && len(d) != alg.Size() {
				err = fmt.Errorf("%d bytes, %s needs %d", len(d), alg, alg.Size())
			}
			if err != nil {
				return nil, m.errAt(m.dataOffset(digestEntry), TagFileDigests, err, "file %d (%s): bad digest %q", i, f.Path, dgs[i])
			}
			f.Digest = d
		}
		f.LinkTo = links[i]
		if devs != nil {
			f.Device = devs[i]
		}
		if inodes != nil {
			f.Inode = inodes[i]
		}
		if sigs != nil && sigs[i] != nil {
			if !f.HasContentDigest() {
				t, tag := h.signatureTags()
				e, _ := t.lookup(tag)
				return nil, t.errAt(t.dataOffset(e), tag, nil, "file %d (%s) has a signature but no content digest", i, f.Path)
			}
			f.Signature = sigs[i]
		}
	}
	return files, nil
}

// badPath reports "." or ".." components, empty components inside the path
// and NUL bytes.
func badPath(p string) bool {
	if strings.IndexByte(p, 0) >= 0 {
		return true
	}
	for _, c := range strings.Split(strings.Trim(p, "/"), "/") {
		if c == "." || c == ".." || (c == "" && p != "/") {
			return true
		}
	}
	return false
}
