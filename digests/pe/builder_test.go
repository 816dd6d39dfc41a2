package pe

import (
	"encoding/binary"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// testImage describes a minimal, valid PE/COFF EFI application. The
// builder lays sections out in file order after the headers (plus gap
// bytes), then appends trailing bytes; table lists the section-table order
// as indexes into sections (nil: file order). Content bytes come from a
// seeded PRNG so that hashing a wrong range changes the digest.
type testImage struct {
	pe32     bool
	nrva     int // NumberOfRvaAndSizes
	sections []testSection
	table    []int
	gap      int // bytes between SizeOfHeaders and the first section
	trailing int // bytes after the last section (COFF symbols, say)
	seed     uint64
}

type testSection struct {
	name string
	raw  int // SizeOfRawData; 0 for .bss-like sections
}

// Offsets of the fields the tests poke, filled in by build.
type layout struct {
	peOff, optOff, checksum, certEntry, secTable, sizeOfHeaders int
	sectionPtr                                                  []int // PointerToRawData by table index
}

const fileAlign, sectAlign = 0x200, 0x1000

func (ti testImage) build() ([]byte, layout) {
	rng := rand.New(rand.NewPCG(ti.seed, 0x7a657374))
	le := binary.LittleEndian
	var l layout
	l.peOff = 0x80
	l.optOff = l.peOff + 24
	noDirs := optNoDirsPE32P
	if ti.pe32 {
		noDirs = optNoDirsPE32
	}
	optSize := noDirs + 8*ti.nrva
	l.secTable = l.optOff + optSize
	n := len(ti.sections)
	l.sizeOfHeaders = alignUp(l.secTable+40*n, fileAlign)
	l.checksum = l.optOff + 64
	l.certEntry = -1
	if ti.nrva > dirSecurity {
		l.certEntry = l.optOff + noDirs + 8*dirSecurity
	}
	// File layout in section order.
	ptrs := make([]int, n)
	pos := l.sizeOfHeaders + ti.gap
	for i, s := range ti.sections {
		if s.raw == 0 {
			continue
		}
		ptrs[i] = pos
		pos += s.raw
	}
	size := pos + ti.trailing
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	clear(b[:l.sizeOfHeaders]) // headers: zero, then fields
	copy(b, "MZ")
	le.PutUint32(b[0x3c:], uint32(l.peOff))
	copy(b[0x40:], "\x0e\x1f\xba\x0e\x00\xb4\x09\xcd\x21\xb8\x01\x4c\xcd\x21This program cannot be run in DOS mode.\r\r\n$")
	copy(b[l.peOff:], peSignature)
	coff := b[l.peOff+4:]
	if ti.pe32 {
		le.PutUint16(coff[0:], 0x14c)
		le.PutUint16(coff[18:], 0x0102)
	} else {
		le.PutUint16(coff[0:], 0x8664)
		le.PutUint16(coff[18:], 0x0022)
	}
	le.PutUint16(coff[2:], uint16(n))
	le.PutUint16(coff[16:], uint16(optSize))
	o := b[l.optOff:]
	sizeOfImage := sectAlign * (n + 1)
	o[2] = 14
	le.PutUint32(o[16:], sectAlign) // AddressOfEntryPoint
	le.PutUint32(o[20:], sectAlign) // BaseOfCode
	le.PutUint32(o[32:], sectAlign)
	le.PutUint32(o[36:], fileAlign)
	le.PutUint32(o[56:], uint32(sizeOfImage))
	le.PutUint32(o[60:], uint32(l.sizeOfHeaders))
	le.PutUint32(o[64:], 0x5a455354) // a CheckSum that is certainly wrong: it must not matter
	le.PutUint16(o[68:], 10)         // EFI application
	if ti.pe32 {
		le.PutUint16(o[0:], magicPE32)
		le.PutUint32(o[72:], 0x10000)
		le.PutUint32(o[76:], 0x1000)
		le.PutUint32(o[80:], 0x10000)
		le.PutUint32(o[84:], 0x1000)
		le.PutUint32(o[92:], uint32(ti.nrva))
	} else {
		le.PutUint16(o[0:], magicPE32Plus)
		le.PutUint64(o[72:], 0x10000)
		le.PutUint64(o[80:], 0x1000)
		le.PutUint64(o[88:], 0x10000)
		le.PutUint64(o[96:], 0x1000)
		le.PutUint32(o[108:], uint32(ti.nrva))
	}
	order := ti.table
	if order == nil {
		for i := range n {
			order = append(order, i)
		}
	}
	l.sectionPtr = make([]int, n)
	for ti2, i := range order {
		s := ti.sections[i]
		e := b[l.secTable+40*ti2:]
		copy(e[:8], s.name)
		le.PutUint32(e[8:], uint32(max(s.raw, 0x80)))
		le.PutUint32(e[12:], uint32(sectAlign*(i+1)))
		le.PutUint32(e[16:], uint32(s.raw))
		le.PutUint32(e[20:], uint32(ptrs[i]))
		le.PutUint32(e[36:], 0x60000020)
		l.sectionPtr[ti2] = ptrs[i]
	}
	return b, l
}

func alignUp(n, a int) int { return (n + a - 1) / a * a }

// fixtureImages are the unsigned images committed under fixtures/pe
// (regenerated with gen.sh). Their expected digests come from pesign.
var fixtureImages = map[string]testImage{
	// Unsigned, size % 8 == 3: EDK2 and the Microsoft spec disagree.
	"odd.efi": {nrva: 16, seed: 1, trailing: 0x123,
		sections: []testSection{{".text", 0x400}, {".data", 0x200}, {".reloc", 0x200}}},
	// Size % 8 == 0, no trailing data: every variant agrees.
	"even.efi": {nrva: 16, seed: 2,
		sections: []testSection{{".text", 0x600}, {".data", 0x200}}},
	// Section table in reverse file order, a .bss without file data, an
	// unhashed gap after the headers, and trailing data.
	"unsorted.efi": {nrva: 16, seed: 3, gap: 0x200, trailing: 0x40,
		sections: []testSection{{".text", 0x400}, {".bss", 0}, {".data", 0x200}, {".sbat", 0x200}},
		table:    []int{3, 2, 1, 0}},
	// An unhashed gap after the headers, sections in table order: pesign
	// agrees with EDK2 here (trailing data starts at SUM, inside .data).
	"gap.efi": {nrva: 16, seed: 7, gap: 0x200, trailing: 0x40,
		sections: []testSection{{".text", 0x400}, {".data", 0x200}}},
	// PE32 (i386): the data directory is 16 bytes earlier than in PE32+.
	"pe32.efi": {pe32: true, nrva: 16, seed: 4, trailing: 5,
		sections: []testSection{{".text", 0x400}, {".data", 0x200}}},
	// Six data directories, as Linux EFI-stub kernels have.
	"nrva6.efi": {nrva: 6, seed: 5, trailing: 0x10,
		sections: []testSection{{".setup", 0x200}, {".text", 0x800}}},
	// Four data directories: no certificate-table entry to skip.
	"nrva4.efi": {nrva: 4, seed: 6, trailing: 7,
		sections: []testSection{{".text", 0x400}}},
}

var generate = flag.Bool("generate", false, "write the unsigned images of fixtureImages to ../../fixtures/pe (gen.sh runs this)")

// TestGenerateFixtures writes the unsigned fixture images; gen.sh then
// signs copies and records the expected digests with pesign/osslsigncode.
func TestGenerateFixtures(t *testing.T) {
	if !*generate {
		t.Skip("run with -generate (fixtures/pe/gen.sh)")
	}
	for name, ti := range fixtureImages {
		b, _ := ti.build()
		if err := os.WriteFile(filepath.Join(fixtureDir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
