package pe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/zest-attest/zest/digests"
)

var le = binary.LittleEndian

// TestSkippedBytes: CheckSum and the certificate-table entry do not count;
// bytes in the gap after the headers do not count; every other header byte
// and the bytes around the skipped fields do.
func TestSkippedBytes(t *testing.T) {
	for _, ti := range []testImage{fixtureImages["odd.efi"], fixtureImages["pe32.efi"], fixtureImages["unsorted.efi"]} {
		b, l := ti.build()
		base := digest(t, b)
		same := func(off int, what string) {
			c := bytes.Clone(b)
			c[off] ^= 0xff
			if !bytes.Equal(digest(t, c), base) {
				t.Errorf("pe32=%v: changing %s (0x%x) changed the digest", ti.pe32, what, off)
			}
		}
		differs := func(off int, what string) {
			c := bytes.Clone(b)
			c[off] ^= 0xff
			if bytes.Equal(digest(t, c), base) {
				t.Errorf("pe32=%v: changing %s (0x%x) did not change the digest", ti.pe32, what, off)
			}
		}
		for i := range 4 {
			same(l.checksum+i, "CheckSum")
		}
		for i := range 4 { // the VirtualAddress half: Size 0 keeps it unsigned
			same(l.certEntry+i, "certificate entry VirtualAddress")
		}
		differs(l.checksum-8, "SizeOfImage, before CheckSum")
		differs(l.checksum+4, "byte after CheckSum")
		differs(l.certEntry-1, "byte before certificate entry")
		differs(l.certEntry+8, "byte after certificate entry")
		differs(0x50, "DOS stub")
		differs(l.sizeOfHeaders-1, "last header byte")
		differs(len(b)-1, "last byte")
		if ti.gap > 0 {
			same(l.sizeOfHeaders, "gap after headers")
		}
	}
}

func digest(t *testing.T, b []byte) []byte {
	t.Helper()
	d, err := Authenticode(bytes.NewReader(b), int64(len(b)), digests.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestBadImages: malformed images give a *FormatError naming the field and
// offset, never a panic or a digest.
func TestBadImages(t *testing.T) {
	good, l := fixtureImages["odd.efi"].build()
	size := len(good)
	opt := l.optOff
	sec := func(i, field int) int { return l.secTable + 40*i + field }
	put32 := func(off int, v uint32) func([]byte) []byte {
		return func(b []byte) []byte { le.PutUint32(b[off:], v); return b }
	}
	put16 := func(off int, v uint16) func([]byte) []byte {
		return func(b []byte) []byte { le.PutUint16(b[off:], v); return b }
	}
	for _, tc := range []struct {
		name   string
		mutate func([]byte) []byte
		want   string
	}{
		{"empty", func(b []byte) []byte { return nil }, "DOS header at offset 0x0: file size 0x0"},
		{"truncated DOS header", func(b []byte) []byte { return b[:40] }, "smaller than the 0x40-byte DOS header"},
		{"truncated PE headers", func(b []byte) []byte { return b[:0x100] }, "e_lfanew at offset 0x3c: PE header at 0x80 needs 0x108 bytes but the file size is 0x100"},
		{"e_lfanew beyond file", put32(0x3c, 0xfffffff0), "e_lfanew"},
		{"no PE signature", put32(l.peOff, 0x5a56), "PE signature at offset 0x80"},
		{"bad magic", put16(opt, 0x107), "optional header Magic at offset 0x98: 0x107"},
		{"too many directories", put32(opt+108, 17), "NumberOfRvaAndSizes"},
		{"optional header size", put16(l.peOff+4+16, 0xf8), "SizeOfOptionalHeader"},
		{"absurd section count", put16(l.peOff+4+2, 0xffff), "COFF header NumberOfSections"},
		{"section table beyond SizeOfHeaders", put16(l.peOff+4+2, 12), "do not fit in SizeOfHeaders"},
		{"SizeOfHeaders beyond file", func(b []byte) []byte {
			le.PutUint32(b[opt+56:], 0x100000)
			le.PutUint32(b[opt+60:], 0x10000)
			return b
		}, "SizeOfHeaders at offset 0xd4: 0x10000 is beyond file size"},
		{"SizeOfHeaders not below SizeOfImage", put32(opt+60, 0x4000), "is not below SizeOfImage"},
		{"section beyond file", put32(sec(0, 16), 0x4000), "section 1 (.text) at offset 0x198: PointerToRawData+SizeOfRawData 0x4200 beyond file size 0xb23"},
		{"section offset overflows", put32(sec(1, 20), 0xffffff00), "section 2 (.data) at offset 0x1c0: PointerToRawData 0xffffff00 + SizeOfRawData 0x200 overflows 32 bits"},
		{"section inside headers", put32(sec(2, 20), 0x100), "section 3 (.reloc) at offset 0x1ec: PointerToRawData 0x100 is inside the headers"},
		{"section RVA inside headers", put32(sec(2, 12), 0x10), "VirtualAddress 0x10 is inside the headers"},
		{"overlapping sections", put32(sec(1, 20), 0x300), "section 2 (.data) at offset 0x1c4: file data [0x300,0x500) overlaps section 1 (.text) [0x200,0x600)"},
		{"certificate table outside file", func(b []byte) []byte {
			le.PutUint32(b[l.certEntry:], uint32(size))
			le.PutUint32(b[l.certEntry+4:], 8)
			return b
		}, "certificate table (DataDirectory[4]) at offset 0x128: VirtualAddress+Size 0xb2b beyond file size 0xb23"},
		{"certificate table overflows", func(b []byte) []byte {
			le.PutUint32(b[l.certEntry:], 0xfffffff0)
			le.PutUint32(b[l.certEntry+4:], 0x20)
			return b
		}, "overflows 32 bits"},
		{"certificate table overlaps sections", func(b []byte) []byte {
			le.PutUint32(b[l.certEntry:], 0x200)
			le.PutUint32(b[l.certEntry+4:], uint32(size-0x200))
			return b
		}, "does not fit after the 0xa00 bytes of headers and sections"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.mutate(bytes.Clone(good))
			_, err := Authenticode(bytes.NewReader(b), int64(len(b)), digests.SHA256)
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v (%T), want a *FormatError", err, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error\n  %v\nwant it to contain\n  %s", err, tc.want)
			}
		})
	}
}

// TestErrorNamesFile: an *os.File names itself in errors; a truncated
// signed file is refused because its certificate table now runs past the
// end.
func TestErrorNamesFile(t *testing.T) {
	b := readFixture(t, "signed-sbsign.efi")
	p := filepath.Join(t.TempDir(), "truncated.efi")
	if err := os.WriteFile(p, b[:len(b)-100], 0o644); err != nil {
		t.Fatal(err)
	}
	fh, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	_, err = Authenticode(fh, int64(len(b)-100), digests.SHA256)
	if err == nil || !strings.HasPrefix(err.Error(), p+": certificate table (DataDirectory[4])") || !strings.Contains(err.Error(), "beyond file size") {
		t.Errorf("got %v", err)
	}
	// A reader shorter than the size it is given: an I/O error, not a panic.
	_, err = Authenticode(bytes.NewReader(b[:len(b)/2]), int64(len(b)), digests.SHA256)
	if err == nil || !strings.Contains(err.Error(), "unexpected EOF") {
		t.Errorf("short reader: %v", err)
	}
}

// TestBadSignatures: a certificate table whose content is not a
// WIN_CERTIFICATE with PKCS#7 SignedData gives a clear error.
func TestBadSignatures(t *testing.T) {
	good := readFixture(t, "signed-osslsigncode.efi")
	f := openFixture(t, "signed-osslsigncode.efi")
	ct := int(f.CertTable.VirtualAddress)
	for _, tc := range []struct {
		name   string
		mutate func([]byte)
		want   string
	}{
		{"dwLength too long", func(b []byte) { le.PutUint32(b[ct:], 0x100000) }, "WIN_CERTIFICATE dwLength"},
		{"dwLength too short", func(b []byte) { le.PutUint32(b[ct:], 4) }, "WIN_CERTIFICATE dwLength"},
		{"revision", func(b []byte) { le.PutUint16(b[ct+4:], 0x100) }, "wRevision"},
		{"not PKCS#7", func(b []byte) { le.PutUint16(b[ct+6:], 1) }, "no PKCS#7 SignedData entry"},
		{"garbage DER", func(b []byte) { b[ct+8] = 0x04 }, "PKCS#7 SignedData"},
		{"truncated DER", func(b []byte) { clear(b[ct+200:]) }, "PKCS#7 SignedData"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bytes.Clone(good)
			tc.mutate(b)
			_, err := Signatures(bytes.NewReader(b), int64(len(b)))
			var fe *FormatError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want a *FormatError containing %q", err, tc.want)
			}
		})
	}
}

// TestIA64Quirk: an IA64 image with the PE32 magic is read as PE32+, as
// EDK2 does for old ELILO builds.
func TestIA64Quirk(t *testing.T) {
	b, l := fixtureImages["even.efi"].build()
	le.PutUint16(b[l.peOff+4:], machineIA64)
	le.PutUint16(b[l.optOff:], magicPE32)
	f, err := Open(bytes.NewReader(b), int64(len(b)), "ia64.efi")
	if err != nil {
		t.Fatal(err)
	}
	if !f.PE32Plus || f.certEntryOffset != int64(l.certEntry) {
		t.Errorf("PE32+ %v, cert entry 0x%x; want true, 0x%x", f.PE32Plus, f.certEntryOffset, l.certEntry)
	}
}

// FuzzAuthenticode: any input gives digests or errors, never a panic; a
// digest is only given for an image whose ranges lie inside the file.
// Seeds are the fixture images.
func FuzzAuthenticode(f *testing.F) {
	names, err := filepath.Glob(filepath.Join(fixtureDir, "*.efi"))
	if err != nil || len(names) == 0 {
		f.Fatalf("no fixtures: %v", err)
	}
	for _, n := range names {
		f.Add(readFixture(f, filepath.Base(n)))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		pf, err := Open(r, int64(len(data)), "fuzz")
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("Open error %v is not a *FormatError", err)
			}
			return
		}
		if rs, err := pf.Ranges(); err == nil {
			for _, rg := range rs {
				if rg.Offset < 0 || rg.Length <= 0 || rg.Offset+rg.Length > int64(len(data)) {
					t.Fatalf("range %+v outside file of 0x%x bytes", rg, len(data))
				}
			}
		}
		d, err := pf.Authenticode(digests.SHA256)
		if err == nil && len(d) != 32 {
			t.Fatalf("digest of %d bytes", len(d))
		}
		pf.AuthenticodePadded(digests.SHA1)
		if sigs, err := pf.Signatures(); err == nil {
			for _, s := range sigs {
				if alg, dg := s.SignedDigest(); len(dg) != alg.Size() {
					t.Fatalf("signed %s digest of %d bytes", alg, len(dg))
				}
			}
		}
	})
}
