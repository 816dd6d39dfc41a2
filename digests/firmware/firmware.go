// Package firmware lists the UEFI firmware volumes (PI spec vol. 3) inside
// a firmware image such as Debian's OVMF_CODE.fd, including volumes nested
// in FV_IMAGE files behind LZMA-compressed GUID-defined sections, with the
// SHA-256 of each volume's bytes.
//
// Those digests are candidates for the EV_EFI_PLATFORM_FIRMWARE_BLOB(2)
// events in PCR 0: EDK2's Tcg2Pei extends H(FvLength bytes at the volume's
// base) for every volume reported to PEI. For OVMF that is PEIFV and DXEFV,
// which SEC decompresses out of FVMAIN_COMPACT and copies to RAM. DXEFV's
// digest equals the decompressed image from the file; PEIFV is measured
// after PEI modules running in place have written into it (its digest
// changes with the guest's RAM size), so it can only come from a golden
// boot's event log. SECFV and FVMAIN_COMPACT themselves are not measured.
// Real hardware (Boot Guard S-CRTM, vendor layouts) is not predictable from
// files at all.
//
// The image is untrusted: every length is checked against what remains,
// decompression is bounded (MaxDecompressed, MaxDictionary), nesting is
// bounded (MaxDepth) and the parser never panics. It never prints or exits.
package firmware

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/ulikunitz/xz/lzma"

	"github.com/zest-attest/zest/digests/eventlog"
)

// Limits on untrusted images.
const (
	// MaxImage is the largest image Parse accepts (64 MiB; flash chips are 8-32 MiB).
	MaxImage = 64 << 20
	// MaxDecompressed bounds the bytes all LZMA sections of one image may
	// decompress to, together (256 MiB).
	MaxDecompressed = 256 << 20
	// MaxDictionary bounds an LZMA stream's declared dictionary (64 MiB).
	MaxDictionary = 64 << 20
	// MaxDepth bounds volume nesting.
	MaxDepth = 8
	// MaxVolumes bounds the volumes listed for one image.
	MaxVolumes = 1024
)

// Well-known GUIDs.
var (
	// LZMACustomDecompressGUID marks EDK2's LZMA GUID-defined sections.
	LZMACustomDecompressGUID = mustGUID("ee4e5898-3914-4259-9d6e-dc7bd79403cf")
	// FFS2 and FFS3 are the file systems of PI firmware volumes.
	FFS2GUID = mustGUID("8c8ce578-8a3d-4f1c-9935-896185c32dd3")
	FFS3GUID = mustGUID("5473c07a-3dcb-4dca-bd6f-1e9689e7349a")
)

func mustGUID(s string) eventlog.GUID {
	g, err := eventlog.ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

// Volume is one firmware volume found in the image.
type Volume struct {
	// Path says where the volume was found: "image@0x348000" for a volume
	// in the image itself, "image@0x0/file 9e21fd93-…/lzma/fv@0x7c" for one
	// nested in an FV_IMAGE file (offsets within the decompressed data).
	Path string
	// Offset is the volume's offset in the image, or -1 for a volume that
	// only exists after decompression.
	Offset int64
	Depth  int
	// Name is the volume's name from its extended header (zero if none).
	Name       eventlog.GUID
	FileSystem eventlog.GUID
	Length     uint64
	// SHA256 is the digest of the volume's Length bytes.
	SHA256 [32]byte
}

// HasName reports whether the volume has an extended header name.
func (v Volume) HasName() bool { return v.Name != eventlog.GUID{} }

// FormatError names where the image is malformed.
type FormatError struct {
	Path string // location as in Volume.Path
	Msg  string
}

func (e *FormatError) Error() string { return "firmware: " + e.Path + ": " + e.Msg }

type parser struct {
	vols         []Volume
	decompressed int64
}

// Parse lists the firmware volumes in image: every volume found at an
// 8-byte aligned offset of the image with a valid header and checksum, and
// every volume nested in their FV_IMAGE files, depth first, in order.
func Parse(image []byte) ([]Volume, error) {
	if len(image) > MaxImage {
		return nil, &FormatError{Path: "image", Msg: fmt.Sprintf("%d bytes, more than %d", len(image), MaxImage)}
	}
	p := &parser{}
	for off := 0; off+56 <= len(image); {
		if !looksLikeFV(image, off) {
			off += 8
			continue
		}
		n, err := p.volume(image, off, fmt.Sprintf("image@%#x", off), int64(off), 0)
		if err != nil {
			return nil, err
		}
		off += int(n)
	}
	if len(p.vols) == 0 {
		return nil, &FormatError{Path: "image", Msg: "no firmware volume (no valid _FVH header)"}
	}
	return p.vols, nil
}

// looksLikeFV checks the signature, length and header checksum at off.
func looksLikeFV(b []byte, off int) bool {
	if off+56 > len(b) || string(b[off+40:off+44]) != "_FVH" {
		return false
	}
	fvLen := binary.LittleEndian.Uint64(b[off+32:])
	hdrLen := int(binary.LittleEndian.Uint16(b[off+48:]))
	if fvLen < 56 || fvLen > uint64(len(b)-off) || hdrLen < 56 || uint64(hdrLen) > fvLen || hdrLen%2 != 0 {
		return false
	}
	var sum uint16
	for i := 0; i < hdrLen; i += 2 {
		sum += binary.LittleEndian.Uint16(b[off+i:])
	}
	return sum == 0
}

const (
	ffsAttribLargeFile = 0x01
	ffsTypeFVImage     = 0x0B
	ffsTypePad         = 0xF0
	fvb2ErasePolarity  = 0x00000800

	sectionGUIDDefined    = 0x02
	sectionFVImage        = 0x17
	guidProcessingRequird = 0x01
)

// volume parses the volume at off in b (already checked by looksLikeFV)
// and returns its length.
func (p *parser) volume(b []byte, off int, path string, imageOff int64, depth int) (uint64, error) {
	if depth > MaxDepth {
		return 0, &FormatError{Path: path, Msg: fmt.Sprintf("volumes nested more than %d deep", MaxDepth)}
	}
	if len(p.vols) >= MaxVolumes {
		return 0, &FormatError{Path: path, Msg: fmt.Sprintf("more than %d volumes", MaxVolumes)}
	}
	fvLen := binary.LittleEndian.Uint64(b[off+32:])
	fv := b[off : off+int(fvLen)]
	v := Volume{Path: path, Offset: imageOff, Depth: depth, Length: fvLen, SHA256: sha256.Sum256(fv)}
	copy(v.FileSystem[:], fv[16:32])
	attrs := binary.LittleEndian.Uint32(fv[44:])
	hdrLen := int(binary.LittleEndian.Uint16(fv[48:]))
	filesStart := hdrLen
	if ext := int(binary.LittleEndian.Uint16(fv[52:])); ext != 0 {
		if ext < hdrLen || ext+20 > len(fv) {
			return 0, &FormatError{Path: path, Msg: fmt.Sprintf("ExtHeaderOffset %#x outside the volume", ext)}
		}
		copy(v.Name[:], fv[ext:ext+16])
		extSize := int(binary.LittleEndian.Uint32(fv[ext+16:]))
		if extSize < 20 || ext+extSize > len(fv) {
			return 0, &FormatError{Path: path, Msg: fmt.Sprintf("ExtHeaderSize %d outside the volume", extSize)}
		}
		filesStart = ext + extSize
	}
	p.vols = append(p.vols, v)
	if v.FileSystem != FFS2GUID && v.FileSystem != FFS3GUID {
		return fvLen, nil // not a file system zest walks (e.g. NV variable store)
	}
	erased := byte(0)
	if attrs&fvb2ErasePolarity != 0 {
		erased = 0xFF
	}
	for pos := align(filesStart, 8); pos+24 <= len(fv); {
		hdr := fv[pos : pos+24]
		if allByte(hdr, erased) {
			break // free space
		}
		var name eventlog.GUID
		copy(name[:], hdr[:16])
		typ, fattr := hdr[18], hdr[19]
		size := int(hdr[20]) | int(hdr[21])<<8 | int(hdr[22])<<16
		hlen := 24
		fpath := fmt.Sprintf("%s/file %s", path, name)
		if fattr&ffsAttribLargeFile != 0 {
			if pos+32 > len(fv) {
				return 0, &FormatError{Path: fpath, Msg: "large-file header truncated"}
			}
			s := binary.LittleEndian.Uint64(fv[pos+24:])
			if s > uint64(len(fv)) {
				return 0, &FormatError{Path: fpath, Msg: fmt.Sprintf("size %d exceeds the volume", s)}
			}
			size, hlen = int(s), 32
		}
		if size < hlen || size > len(fv)-pos {
			return 0, &FormatError{Path: fpath, Msg: fmt.Sprintf("size %d does not fit (header %d, %d bytes left in the volume)", size, hlen, len(fv)-pos)}
		}
		if typ == ffsTypeFVImage {
			if err := p.sections(fv[pos+hlen:pos+size], fpath, depth); err != nil {
				return 0, err
			}
		}
		_ = ffsTypePad
		pos = align(pos+size, 8)
	}
	return fvLen, nil
}

// sections walks a section stream (4-byte aligned sections).
func (p *parser) sections(b []byte, path string, depth int) error {
	for pos := 0; pos+4 <= len(b); {
		size := int(b[pos]) | int(b[pos+1])<<8 | int(b[pos+2])<<16
		typ := b[pos+3]
		hlen := 4
		if size == 0xFFFFFF {
			if pos+8 > len(b) {
				return &FormatError{Path: path, Msg: fmt.Sprintf("section at %#x: extended size truncated", pos)}
			}
			size, hlen = int(binary.LittleEndian.Uint32(b[pos+4:])), 8
		}
		if size < hlen || size > len(b)-pos {
			return &FormatError{Path: path, Msg: fmt.Sprintf("section at %#x: size %d does not fit (%d bytes left)", pos, size, len(b)-pos)}
		}
		body := b[pos+hlen : pos+size]
		switch typ {
		case sectionFVImage:
			spath := fmt.Sprintf("%s/fv@%#x", path, pos+hlen)
			if !looksLikeFV(body, 0) {
				return &FormatError{Path: spath, Msg: "FV_IMAGE section holds no valid firmware volume"}
			}
			if _, err := p.volume(body, 0, spath, -1, depth+1); err != nil {
				return err
			}
		case sectionGUIDDefined:
			if len(body) < 20 {
				return &FormatError{Path: path, Msg: fmt.Sprintf("GUID-defined section at %#x: header truncated", pos)}
			}
			var g eventlog.GUID
			copy(g[:], body[:16])
			dataOff := int(binary.LittleEndian.Uint16(body[16:])) - hlen
			attrs := binary.LittleEndian.Uint16(body[18:])
			if dataOff < 20 || dataOff > len(body) {
				return &FormatError{Path: path, Msg: fmt.Sprintf("GUID-defined section at %#x: DataOffset %d outside the section", pos, dataOff+hlen)}
			}
			data := body[dataOff:]
			switch {
			case g == LZMACustomDecompressGUID:
				dec, err := p.lzma(data, path)
				if err != nil {
					return err
				}
				if err := p.sections(dec, path+"/lzma", depth); err != nil {
					return err
				}
			case attrs&guidProcessingRequird == 0:
				if err := p.sections(data, fmt.Sprintf("%s/guid %s", path, g), depth); err != nil {
					return err
				}
			}
			// Other encodings (e.g. Brotli, TianoCompress) are not walked.
		}
		pos = align(pos+size, 4)
	}
	return nil
}

// lzma decompresses an EDK2 LZMA section body: the classic 13-byte header
// (properties, dictionary size, uncompressed size) and the stream, with the
// declared sizes checked before any allocation.
func (p *parser) lzma(data []byte, path string) ([]byte, error) {
	if len(data) < 13 {
		return nil, &FormatError{Path: path, Msg: "LZMA section shorter than its 13-byte header"}
	}
	dict := binary.LittleEndian.Uint32(data[1:])
	size := binary.LittleEndian.Uint64(data[5:])
	switch {
	case dict > MaxDictionary:
		return nil, &FormatError{Path: path, Msg: fmt.Sprintf("LZMA dictionary of %d bytes exceeds %d", dict, MaxDictionary)}
	case size == ^uint64(0):
		return nil, &FormatError{Path: path, Msg: "LZMA stream without a declared size"}
	case size > uint64(MaxDecompressed-p.decompressed):
		return nil, &FormatError{Path: path, Msg: fmt.Sprintf("LZMA section decompresses to %d bytes, over the %d-byte budget", size, MaxDecompressed)}
	}
	// The default ReaderConfig allocates at least 8 MiB; the header's own
	// (checked) dictionary size is enough.
	r, err := lzma.ReaderConfig{DictCap: int(MaxDictionary)}.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, &FormatError{Path: path, Msg: "LZMA: " + err.Error()}
	}
	out := make([]byte, size)
	if _, err := io.ReadFull(r, out); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return nil, &FormatError{Path: path, Msg: fmt.Sprintf("LZMA stream ends before the declared %d bytes", size)}
		}
		return nil, &FormatError{Path: path, Msg: "LZMA: " + err.Error()}
	}
	p.decompressed += int64(size)
	return out, nil
}

func align(n, a int) int { return (n + a - 1) &^ (a - 1) }

func allByte(b []byte, c byte) bool {
	for _, x := range b {
		if x != c {
			return false
		}
	}
	return true
}
