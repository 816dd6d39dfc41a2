package cpio

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const fixtures = "../../fixtures/initrd"

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtures, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type listEntry struct {
	name  string
	mode  uint32
	size  int64
	nlink uint32
}

// readList parses main.list, written by gen.sh from stat(1) over the source
// tree, in archive order (find | sort).
func readList(t *testing.T) []listEntry {
	t.Helper()
	var out []listEntry
	for _, line := range strings.Split(strings.TrimSuffix(string(readFixture(t, "main.list")), "\n"), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 4 {
			t.Fatalf("main.list: bad line %q", line)
		}
		mode, err1 := strconv.ParseUint(f[1], 16, 32)
		size, err2 := strconv.ParseInt(f[2], 10, 64)
		nlink, err3 := strconv.ParseUint(f[3], 10, 32)
		if err := errors.Join(err1, err2, err3); err != nil {
			t.Fatalf("main.list: %q: %v", line, err)
		}
		name := f[0]
		if name != "." {
			// GNU cpio stores "./x" as "x".
			name = strings.TrimPrefix(name, "./")
		}
		out = append(out, listEntry{name, uint32(mode), size, uint32(nlink)})
	}
	return out
}

// readSums parses sha256sum output written by gen.sh: "<hex>  /path".
func readSums(t *testing.T, name string) map[string]string {
	t.Helper()
	m := make(map[string]string)
	for _, line := range strings.Split(strings.TrimSuffix(string(readFixture(t, name)), "\n"), "\n") {
		sum, p, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("%s: bad line %q", name, line)
		}
		m[p] = sum
	}
	return m
}

// archiveEnd finds where an archive ends without this package: just after
// the NUL-terminated trailer name, rounded up to 4 bytes (trailers carry no
// data).
func archiveEnd(t *testing.T, b []byte) int64 {
	t.Helper()
	i := bytes.LastIndex(b, []byte("TRAILER!!!\x00"))
	if i < 0 {
		t.Fatal("no trailer")
	}
	return int64(i+len("TRAILER!!!\x00")+3) &^ 3
}

func TestReaderFixtures(t *testing.T) {
	list := readList(t)
	sums := readSums(t, "main.sha256")
	for _, tc := range []struct {
		file string
		crc  bool
	}{
		{"main.cpio", false},
		{"main-crc.cpio", true},
	} {
		t.Run(tc.file, func(t *testing.T) {
			data := readFixture(t, tc.file)
			// Trailing bytes after the archive must stay unread.
			tail := []byte("not part of the archive")
			src := bytes.NewReader(append(append([]byte(nil), data...), tail...))
			r := NewReader(src)
			linkSeen := map[uint32]int{}
			for i := 0; ; i++ {
				h, err := r.Next()
				if err == io.EOF {
					if i != len(list) {
						t.Fatalf("got %d entries, want %d", i, len(list))
					}
					break
				}
				if err != nil {
					t.Fatalf("entry %d: %v", i, err)
				}
				if i >= len(list) {
					t.Fatalf("extra entry %q", h.Name)
				}
				want := list[i]
				if h.Name != want.name || h.Mode != want.mode || h.Nlink != want.nlink || h.CRC != tc.crc {
					t.Errorf("entry %d: got %q mode %o nlink %d crc %v, want %q mode %o nlink %d crc %v",
						i, h.Name, h.Mode, h.Nlink, h.CRC, want.name, want.mode, want.nlink, tc.crc)
				}
				wantSize := want.size
				if h.IsRegular() && want.nlink > 1 {
					// newc stores a link group's data with its last name.
					linkSeen[h.Ino]++
					if uint32(linkSeen[h.Ino]) < want.nlink {
						wantSize = 0
					}
				}
				if h.Size != wantSize {
					t.Errorf("%s: size %d, want %d", h.Name, h.Size, wantSize)
				}
				if h.Offset%4 != 0 {
					t.Errorf("%s: header at unaligned offset %d", h.Name, h.Offset)
				}
				sum := sha256.New()
				n, err := io.Copy(sum, r)
				if err != nil || n != h.Size {
					t.Fatalf("%s: read %d bytes, err %v", h.Name, n, err)
				}
				if exp, ok := sums["/"+h.Name]; ok && h.Size > 0 {
					if got := hex.EncodeToString(sum.Sum(nil)); got != exp {
						t.Errorf("%s: sha256 %s, want %s (sha256sum)", h.Name, got, exp)
					}
				}
				if h.Type() == TypeSymlink && h.Size != 7 {
					t.Errorf("%s: symlink target size %d", h.Name, h.Size)
				}
			}
			if got, want := r.Offset(), archiveEnd(t, data); got != want {
				t.Errorf("Offset() = %d, want %d", got, want)
			}
			// The rest of the block padding and the tail are unread.
			rest, _ := io.ReadAll(src)
			if want := append(data[r.Offset():len(data):len(data)], tail...); !bytes.Equal(rest, want) {
				t.Errorf("reader consumed past the archive: %d bytes left, want %d", len(rest), len(want))
			}
			if _, err := r.Next(); err != io.EOF {
				t.Errorf("Next after the trailer: %v, want io.EOF", err)
			}
		})
	}
}

// TestReaderSkip does not read the data, so Next must skip it and its
// padding (and, in crc, still verify the checksum).
func TestReaderSkip(t *testing.T) {
	for _, file := range []string{"main.cpio", "main-crc.cpio", "early.cpio"} {
		data := readFixture(t, file)
		r := NewReader(bufio.NewReader(bytes.NewReader(data)))
		var names []string
		for {
			h, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			names = append(names, h.Name)
		}
		if r.Offset() != archiveEnd(t, data) {
			t.Errorf("%s: Offset %d, want %d", file, r.Offset(), archiveEnd(t, data))
		}
		if file == "early.cpio" {
			want := []string{".", "kernel", "kernel/x86", "kernel/x86/microcode", "kernel/x86/microcode/GenuineIntel.bin"}
			if fmt.Sprint(names) != fmt.Sprint(want) {
				t.Errorf("early.cpio names %q, want %q", names, want)
			}
		}
	}
}

func TestPadding(t *testing.T) {
	r := NewReader(bytes.NewReader(readFixture(t, "main.cpio")))
	want := map[string]string{"pad/a": "a", "pad/ab": "ab", "pad/abc": "abc", "pad/abcd": "abcd", "pad/abcde": "abcde"}
	for {
		h, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if w, ok := want[h.Name]; ok {
			b, err := io.ReadAll(r)
			if err != nil || string(b) != w {
				t.Errorf("%s: data %q err %v, want %q", h.Name, b, err, w)
			}
			delete(want, h.Name)
		}
	}
	if len(want) != 0 {
		t.Errorf("entries not found: %v", want)
	}
}

// patch returns a copy of b with s written at off.
func patch(b []byte, off int, s string) []byte {
	c := append([]byte(nil), b...)
	copy(c[off:], s)
	return c
}

func TestReaderErrors(t *testing.T) {
	mainData := readFixture(t, "main.cpio")
	crcData := readFixture(t, "main-crc.cpio")
	end := int(archiveEnd(t, mainData))
	trailerHdr := end - 124 // 110-byte header + "TRAILER!!!\0" padded to 4
	// Entry 1 ("bin") starts after "." (110 + 2-byte name = 112).
	const second = 112
	// hdrOf finds an entry's header by its NUL-terminated name.
	hdrOf := func(b []byte, name string) int { return bytes.Index(b, []byte(name+"\x00")) - HeaderSize }
	const bigName = "usr/lib/modules/6.1.0/kernel/drivers/net/big.ko"
	big, bigCRC := hdrOf(mainData, bigName), hdrOf(crcData, bigName)

	for _, tc := range []struct {
		name    string
		data    []byte
		maxName int
		read    bool // read data rather than skip it
		wantMsg string
		field   string
		off     int64
		is      error
	}{
		{name: "filesize not hex", data: patch(mainData, 54, "zzzzzzzz"),
			wantMsg: `cpio: header at offset 0: filesize "zzzzzzzz" is not hex`, field: "filesize"},
		{name: "mode with sign", data: patch(mainData, second+14, "+00041ED"),
			wantMsg: `cpio: header at offset 112: mode "+00041ED" is not hex`, field: "mode", off: second},
		{name: "check 0x prefix", data: patch(mainData, second+102, "0x000000"),
			field: "check", off: second},
		{name: "odc", data: patch(mainData, 0, "070707"), field: "magic"},
		{name: "bad magic", data: patch(mainData, second, "07070X"), field: "magic", off: second,
			wantMsg: `cpio: header at offset 112: magic "07070X" is not 070701 (newc) or 070702 (crc)`},
		{name: "namesize zero", data: patch(mainData, 94, "00000000"), field: "namesize"},
		{name: "namesize over limit", data: patch(mainData, 94, "00001001"), field: "namesize",
			wantMsg: "cpio: header at offset 0: namesize 4097 exceeds the limit of 4096"},
		{name: "namesize under custom limit", data: mainData, maxName: 8, field: "namesize",
			off: int64(hdrOf(mainData, "dir with space"))},
		{name: "name without NUL", data: patch(mainData, 94, "00000001"), field: "name"},
		{name: "name with NUL", data: patch(mainData, second+110, "b\x00n\x00"), field: "name", off: second},
		{name: "empty", data: nil, field: "magic", is: ErrMissingTrailer},
		{name: "truncated header", data: mainData[:second+50], field: "header", off: second, is: io.ErrUnexpectedEOF},
		{name: "truncated name", data: mainData[:second+111], field: "name", off: second, is: io.ErrUnexpectedEOF},
		{name: "truncated data skipped", data: mainData[:big+1000], field: "data", is: io.ErrUnexpectedEOF, off: int64(big)},
		{name: "truncated data read", data: mainData[:big+1000], read: true, field: "data", is: io.ErrUnexpectedEOF, off: int64(big)},
		{name: "missing trailer", data: mainData[:trailerHdr], field: "magic", off: int64(trailerHdr), is: ErrMissingTrailer},
		{name: "crc mismatch skipped", data: patch(crcData, bigCRC+1000, "X"), field: "check", is: ErrChecksum, off: int64(bigCRC)},
		{name: "crc mismatch read", data: patch(crcData, bigCRC+1000, "X"), read: true, field: "check", is: ErrChecksum, off: int64(bigCRC)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(bytes.NewReader(tc.data))
			r.MaxNameSize = tc.maxName
			var err error
			for err == nil {
				_, err = r.Next()
				if err == nil && tc.read {
					_, err = io.Copy(io.Discard, r)
				}
			}
			if err == io.EOF {
				t.Fatal("no error")
			}
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v (%T) is not a *FormatError", err, err)
			}
			if tc.wantMsg != "" && err.Error() != tc.wantMsg {
				t.Errorf("error %q, want %q", err, tc.wantMsg)
			}
			if fe.Field != tc.field {
				t.Errorf("field %q, want %q (%v)", fe.Field, tc.field, err)
			}
			if fe.Offset != tc.off {
				t.Errorf("offset %d, want %d (%v)", fe.Offset, tc.off, err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			// Errors are sticky.
			if _, err2 := r.Next(); err2 != err {
				t.Errorf("second Next: %v, want the same error", err2)
			}
		})
	}
}

func TestParseHex8(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint32
		ok   bool
	}{
		{"00000000", 0, true}, {"FFFFFFFF", 0xffffffff, true}, {"deadBEEF", 0xdeadbeef, true},
		{"0000001g", 0, false}, {" 0000001", 0, false}, {"-0000001", 0, false},
	} {
		got, ok := parseHex8([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseHex8(%q) = %x, %v; want %x, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// shrink drops the ~190 KiB entry (the last before the trailer) from a
// fixture archive and keeps the real trailer: fuzzing spends its time
// minimizing large inputs, not finding bugs.
func shrink(tb testing.TB, b []byte) []byte {
	big := bytes.Index(b, []byte("usr/lib/modules/6.1.0/kernel/drivers/net/big.ko\x00")) - HeaderSize
	trailer := bytes.LastIndex(b, []byte(Trailer)) - HeaderSize
	if big < 0 || trailer < big {
		tb.Fatal("fixture layout changed")
	}
	return append(append([]byte(nil), b[:big]...), b[trailer:]...)
}

func FuzzReader(f *testing.F) {
	f.Add(shrink(f, readFixture(f, "main.cpio")))
	f.Add(shrink(f, readFixture(f, "main-crc.cpio")))
	f.Add(readFixture(f, "early.cpio"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data))
		r.MaxNameSize = 256
		var buf [512]byte
		for {
			h, err := r.Next()
			if err == io.EOF {
				if r.Offset()%4 != 0 || r.Offset() > int64(len(data)) {
					t.Fatalf("archive end %d of %d bytes", r.Offset(), len(data))
				}
				return
			}
			if err != nil {
				var fe *FormatError
				if !errors.As(err, &fe) {
					t.Fatalf("error %v is not a *FormatError", err)
				}
				return
			}
			if len(h.Name) >= 256 || h.Offset%4 != 0 {
				t.Fatalf("bad header %+v", h)
			}
			var n int64
			for {
				m, err := r.Read(buf[:])
				n += int64(m)
				if err != nil {
					break
				}
			}
			if n > h.Size || r.Offset() > int64(len(data)) {
				t.Fatalf("read %d of %d bytes, offset %d of %d", n, h.Size, r.Offset(), len(data))
			}
		}
	})
}
