// Package pe owns zest's reading of PE/COFF images (EFI applications and
// drivers, shim, GRUB, EFI-stub kernels, UKIs): the Authenticode image digest
// that UEFI firmware extends into PCR 2/4, and the certificates and signed
// digest of an embedded Authenticode signature.
//
// The digest is computed exactly as EDK2 measures an image
// (SecurityPkg/Tcg/Tcg2Dxe/MeasureBootPeCoff.c MeasurePeImageAndExtend and
// its twin SecurityPkg/Library/DxeImageVerificationLib HashPeImage), after the
// structural checks EDK2's PeCoffLoaderGetImageInfo
// (MdePkg/Library/BasePeCoffLib/BasePeCoff.c PeCoffLoaderGetPeHeader) makes
// before anything is measured. See Authenticode for the algorithm and for the
// one place where EDK2 and the Microsoft PE/COFF specification differ
// (padding of unsigned images whose size is not a multiple of 8).
//
// Where zest and EDK2 part ways, on purpose:
//   - zest refuses images whose sections share file bytes (EDK2 would hash
//     the shared bytes twice); no linker or signer writes such images, and
//     they would let a small file cost arbitrarily much hashing;
//   - zest does not replicate PeCoffLoaderGetImageInfo's later reads (debug
//     directory / CodeView lookup), its machine-type support check, or
//     DxeTpm2MeasureBootLib's rule that only subsystems 10, 11 and 12 are
//     measured (File.Subsystem tells the caller); an image that fails those
//     in firmware is not measured at all, while zest still gives a digest.
//
// Images are untrusted input: every field is checked against the file size
// before it is used, allocations are bounded by the section table (at most
// 65535 × 40 bytes) and by the attribute certificate table, and errors name
// the file, the header or section and the offset. The package verifies no
// signature: Signatures extracts what is inside a WIN_CERTIFICATE and nothing
// in it is trusted.
//
// This package imports only the standard library and zest's digests package;
// it must not import policygen, verifier or archive, and it never prints.
package pe

import (
	"encoding/binary"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Layout constants of the PE/COFF specification (and EDK2's
// MdePkg/Include/IndustryStandard/PeImage.h).
const (
	dosHeaderSize   = 64    // sizeof(EFI_IMAGE_DOS_HEADER); EDK2 reads it whole
	ntHeadersRead   = 264   // sizeof(EFI_IMAGE_OPTIONAL_HEADER_UNION) = PE32+ NT headers; EDK2 reads it whole
	fileHeaderSize  = 20    // COFF file header
	sectionSize     = 40    // EFI_IMAGE_SIZEOF_SECTION_HEADER
	maxDirectories  = 16    // EFI_IMAGE_NUMBER_OF_DIRECTORY_ENTRIES
	dirSecurity     = 4     // EFI_IMAGE_DIRECTORY_ENTRY_SECURITY
	magicPE32       = 0x10b // EFI_IMAGE_NT_OPTIONAL_HDR32_MAGIC
	magicPE32Plus   = 0x20b // EFI_IMAGE_NT_OPTIONAL_HDR64_MAGIC
	machineIA64     = 0x200 // IMAGE_FILE_MACHINE_IA64
	optNoDirsPE32   = 96    // sizeof(EFI_IMAGE_OPTIONAL_HEADER32) without DataDirectory
	optNoDirsPE32P  = 112   // sizeof(EFI_IMAGE_OPTIONAL_HEADER64) without DataDirectory
	checksumInOpt   = 64    // OptionalHeader.CheckSum, same offset in PE32 and PE32+
	maxCertTable    = 64 << 20
	winCertHeader   = 8
	dosSignature    = "MZ"
	peSignature     = "PE\x00\x00"
	certTypePKCS7   = 0x0002 // WIN_CERT_TYPE_PKCS_SIGNED_DATA
	certRevision2_0 = 0x0200 // WIN_CERT_REVISION_2_0
)

// FormatError reports a malformed or unsupported image: which file, which
// header field or section, where, and what is wrong with it.
type FormatError struct {
	Name   string // the file as the caller named it
	Offset int64  // file offset of the field (or of the structure) at fault
	Field  string // "optional header SizeOfHeaders", "section 3 (.text)", ...
	Msg    string
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("%s: %s at offset 0x%x: %s", e.Name, e.Field, e.Offset, e.Msg)
}

// Section is one section-table entry, as far as Authenticode needs it.
type Section struct {
	Index            int    // position in the section table, from 1
	Name             string // NUL-trimmed, as stored (long "/n" names are not resolved)
	VirtualSize      uint32
	VirtualAddress   uint32
	SizeOfRawData    uint32
	PointerToRawData uint32
}

func (s Section) label() string {
	return fmt.Sprintf("section %d (%s)", s.Index, s.Name)
}

// DataDirectory is an optional-header data-directory entry. For the
// certificate table, VirtualAddress is a file offset, not an RVA.
type DataDirectory struct {
	VirtualAddress uint32
	Size           uint32
}

// File is a PE/COFF image whose headers passed EDK2's loader checks. Its
// fields describe the untrusted image; none of them has been verified
// against a signature.
type File struct {
	r    io.ReaderAt
	size int64
	name string

	Machine   uint16
	PE32Plus  bool   // optional header is PE32+ (or IA64 with a PE32 magic, see quirkIA64Magic)
	Subsystem uint16 // 10 EFI application, 11 boot-service driver, 12 runtime driver

	peOffset            int64 // e_lfanew, or 0 without a DOS header
	checksumOffset      int64
	certEntryOffset     int64 // -1 when NumberOfRvaAndSizes <= 4
	SizeOfHeaders       uint32
	NumberOfRvaAndSizes uint32
	// CertTable is DataDirectory[4], zero when the image has none.
	CertTable DataDirectory
	// Sections in section-table order.
	Sections []Section
}

// Name is the file name errors carry.
func (f *File) Name() string { return f.name }

// Size is the file size the image was parsed with.
func (f *File) Size() int64 { return f.size }

// Signed reports whether the image has a non-empty attribute certificate
// table (it says nothing about whether a signature in it is valid).
func (f *File) Signed() bool { return f.CertTable.Size != 0 }

// nameOf names r in errors: the file name when r is an *os.File (or
// anything with a Name method), else a generic label.
func nameOf(r io.ReaderAt) string {
	if n, ok := r.(interface{ Name() string }); ok && n.Name() != "" {
		return n.Name()
	}
	return "PE image"
}

// Open parses the headers and section table of the image of size bytes read
// from r, with EDK2's checks (see checkHeaders). name is used in errors.
func Open(r io.ReaderAt, size int64, name string) (*File, error) {
	f := &File{r: r, size: size, name: name, certEntryOffset: -1}
	if err := f.parse(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *File) errf(off int64, field, format string, args ...any) error {
	return &FormatError{Name: f.name, Offset: off, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// readAt reads exactly len(p) bytes at off, which the caller has checked to
// lie inside the file; a short read means the reader and size disagree.
func (f *File) readAt(p []byte, off int64, what string) error {
	n, err := f.r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%s: reading %s (0x%x bytes at offset 0x%x): %w", f.name, what, len(p), off, err)
}

func (f *File) parse() error {
	le := binary.LittleEndian
	if f.size < dosHeaderSize {
		return f.errf(0, "DOS header", "file size 0x%x is smaller than the 0x%x-byte DOS header EDK2 reads", f.size, dosHeaderSize)
	}
	var dos [dosHeaderSize]byte
	if err := f.readAt(dos[:], 0, "DOS header"); err != nil {
		return err
	}
	// EDK2 also accepts a bare PE header at offset 0 (no "MZ").
	if string(dos[:2]) == dosSignature {
		f.peOffset = int64(le.Uint32(dos[0x3c:]))
	}
	if f.peOffset+ntHeadersRead > f.size {
		return f.errf(0x3c, "DOS header e_lfanew", "PE header at 0x%x needs 0x%x bytes but the file size is 0x%x", f.peOffset, ntHeadersRead, f.size)
	}
	var nt [ntHeadersRead]byte
	if err := f.readAt(nt[:], f.peOffset, "PE headers"); err != nil {
		return err
	}
	if string(nt[:4]) != peSignature {
		return f.errf(f.peOffset, "PE signature", "got %q, want %q (TE and other formats are not measured as PE images)", nt[:4], peSignature)
	}
	coff := nt[4:]
	f.Machine = le.Uint16(coff[0:])
	numSections := uint32(le.Uint16(coff[2:]))
	sizeOfOpt := uint32(le.Uint16(coff[16:]))
	optOff := f.peOffset + 4 + fileHeaderSize
	opt := nt[4+fileHeaderSize:]
	magic := le.Uint16(opt[0:])
	magic = quirkIA64Magic(f.Machine, magic)
	var noDirs uint32
	switch magic {
	case magicPE32:
		noDirs = optNoDirsPE32
	case magicPE32Plus:
		noDirs = optNoDirsPE32P
		f.PE32Plus = true
	default:
		return f.errf(optOff, "optional header Magic", "0x%x is neither PE32 (0x10b) nor PE32+ (0x20b)", magic)
	}
	f.Subsystem = le.Uint16(opt[68:])
	sizeOfImage := le.Uint32(opt[56:])
	f.SizeOfHeaders = le.Uint32(opt[60:])
	f.checksumOffset = optOff + checksumInOpt
	f.NumberOfRvaAndSizes = le.Uint32(opt[noDirs-4:])
	if f.NumberOfRvaAndSizes > maxDirectories {
		return f.errf(optOff+int64(noDirs)-4, "optional header NumberOfRvaAndSizes", "%d is more than %d", f.NumberOfRvaAndSizes, maxDirectories)
	}
	// EDK2 requires the optional header to end exactly after its data
	// directories; that also puts the certificate entry inside the headers.
	if sizeOfOpt != noDirs+8*f.NumberOfRvaAndSizes {
		return f.errf(f.peOffset+4+16, "COFF header SizeOfOptionalHeader", "0x%x does not match NumberOfRvaAndSizes %d (want 0x%x)", sizeOfOpt, f.NumberOfRvaAndSizes, noDirs+8*f.NumberOfRvaAndSizes)
	}
	if f.NumberOfRvaAndSizes > dirSecurity {
		f.certEntryOffset = optOff + int64(noDirs) + 8*dirSecurity
		e := opt[int64(noDirs)+8*dirSecurity:]
		f.CertTable = DataDirectory{VirtualAddress: le.Uint32(e), Size: le.Uint32(e[4:])}
	}
	secOff := optOff + int64(sizeOfOpt)
	hdrField := "optional header SizeOfHeaders"
	hdrOff := optOff + 60
	switch {
	case int64(sizeOfImage) <= secOff:
		return f.errf(optOff+56, "optional header SizeOfImage", "0x%x does not extend past the section table at 0x%x", sizeOfImage, secOff)
	case (int64(sizeOfImage)-secOff)/sectionSize <= int64(numSections):
		return f.errf(f.peOffset+4+2, "COFF header NumberOfSections", "%d sections do not fit below SizeOfImage 0x%x", numSections, sizeOfImage)
	case int64(f.SizeOfHeaders) <= secOff:
		return f.errf(hdrOff, hdrField, "0x%x does not extend past the section table at 0x%x", f.SizeOfHeaders, secOff)
	case f.SizeOfHeaders >= sizeOfImage:
		return f.errf(hdrOff, hdrField, "0x%x is not below SizeOfImage 0x%x", f.SizeOfHeaders, sizeOfImage)
	case (int64(f.SizeOfHeaders)-secOff)/sectionSize < int64(numSections):
		return f.errf(f.peOffset+4+2, "COFF header NumberOfSections", "%d sections at 0x%x do not fit in SizeOfHeaders 0x%x", numSections, secOff, f.SizeOfHeaders)
	case int64(f.SizeOfHeaders) > f.size:
		return f.errf(hdrOff, hdrField, "0x%x is beyond file size 0x%x", f.SizeOfHeaders, f.size)
	}
	if ct := f.CertTable; ct.Size != 0 {
		end := uint64(ct.VirtualAddress) + uint64(ct.Size)
		if end > 0xffffffff {
			return f.errf(f.certEntryOffset, "certificate table (DataDirectory[4])", "VirtualAddress 0x%x + Size 0x%x overflows 32 bits", ct.VirtualAddress, ct.Size)
		}
		if int64(end) > f.size {
			return f.errf(f.certEntryOffset, "certificate table (DataDirectory[4])", "VirtualAddress+Size 0x%x beyond file size 0x%x", end, f.size)
		}
	}

	// The section table lies inside SizeOfHeaders, itself inside the file,
	// so this allocation is bounded by the file (and by 65535 × 40 bytes).
	table := make([]byte, numSections*sectionSize)
	if err := f.readAt(table, secOff, "section table"); err != nil {
		return err
	}
	f.Sections = make([]Section, numSections)
	for i := range f.Sections {
		b := table[i*sectionSize:]
		s := Section{
			Index:            i + 1,
			Name:             strings.TrimRight(string(b[:8]), "\x00"),
			VirtualSize:      le.Uint32(b[8:]),
			VirtualAddress:   le.Uint32(b[12:]),
			SizeOfRawData:    le.Uint32(b[16:]),
			PointerToRawData: le.Uint32(b[20:]),
		}
		f.Sections[i] = s
		if s.SizeOfRawData == 0 {
			continue // EDK2 checks and hashes only sections with file data
		}
		off := secOff + int64(i)*sectionSize
		switch end := int64(s.PointerToRawData) + int64(s.SizeOfRawData); {
		case s.VirtualAddress < f.SizeOfHeaders:
			return f.errf(off+12, s.label(), "VirtualAddress 0x%x is inside the headers (SizeOfHeaders 0x%x)", s.VirtualAddress, f.SizeOfHeaders)
		case s.PointerToRawData < f.SizeOfHeaders:
			return f.errf(off+20, s.label(), "PointerToRawData 0x%x is inside the headers (SizeOfHeaders 0x%x)", s.PointerToRawData, f.SizeOfHeaders)
		case end > 0xffffffff:
			return f.errf(off+16, s.label(), "PointerToRawData 0x%x + SizeOfRawData 0x%x overflows 32 bits", s.PointerToRawData, s.SizeOfRawData)
		case end > f.size:
			return f.errf(off+16, s.label(), "PointerToRawData+SizeOfRawData 0x%x beyond file size 0x%x", end, f.size)
		}
	}
	// zest-only check (EDK2 would hash overlapping sections twice): an
	// image whose sections share file bytes is not something a linker or
	// signer produces, and 65535 sections over the same bytes would make
	// one small file cost terabytes of hashing.
	sorted := f.hashOrder()
	for i := 1; i < len(sorted); i++ {
		prev, s := sorted[i-1], sorted[i]
		if int64(s.PointerToRawData) < int64(prev.PointerToRawData)+int64(prev.SizeOfRawData) {
			return f.errf(secOff+int64(s.Index-1)*sectionSize+20, s.label(),
				"file data [0x%x,0x%x) overlaps %s [0x%x,0x%x)", s.PointerToRawData, int64(s.PointerToRawData)+int64(s.SizeOfRawData),
				prev.label(), prev.PointerToRawData, int64(prev.PointerToRawData)+int64(prev.SizeOfRawData))
		}
	}
	return nil
}

// quirkIA64Magic: some versions of Linux ELILO for Itanium carry the PE32
// magic in a PE32+ header; EDK2 (MeasurePeImageAndExtend,
// PeCoffLoaderGetPeHeaderMagicValue) treats an IA64 image with magic 0x10b
// as PE32+, so zest does too.
func quirkIA64Magic(machine, magic uint16) uint16 {
	if machine == machineIA64 && magic == magicPE32 {
		return magicPE32Plus
	}
	return magic
}

// hashOrder returns the sections with file data, sorted by
// PointerToRawData; ties keep table order (EDK2's insertion sort is stable).
func (f *File) hashOrder() []Section {
	s := make([]Section, 0, len(f.Sections))
	for _, sec := range f.Sections {
		if sec.SizeOfRawData != 0 {
			s = append(s, sec)
		}
	}
	slices.SortStableFunc(s, func(a, b Section) int {
		return int(int64(a.PointerToRawData) - int64(b.PointerToRawData))
	})
	return s
}
