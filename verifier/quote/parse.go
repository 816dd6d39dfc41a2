package quote

import (
	"encoding/binary"
	"fmt"
)

// Part names used in ParseError.Part.
const (
	PartString    = "quote string"
	PartAttest    = "TPMS_ATTEST"
	PartSignature = "TPMT_SIGNATURE"
	PartPCRBlob   = "pcrblob"
	PartAK        = "AK public"
)

// ParseError says which part of the evidence is malformed, where, and why.
type ParseError struct {
	Part   string // PartString, PartAttest, PartSignature, PartPCRBlob or PartAK
	Offset int    // byte offset in the decoded part (character offset in the quote string)
	Field  string // the structure field being read
	Msg    string
}

func (e *ParseError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("%s: offset %d: %s", e.Part, e.Offset, e.Msg)
	}
	return fmt.Sprintf("%s: offset %d (%s): %s", e.Part, e.Offset, e.Field, e.Msg)
}

// reader reads big-endian TPM marshalling with bounds checks. The first
// error sticks; later reads return zero values.
type reader struct {
	b    []byte
	off  int
	part string
	err  *ParseError
}

func (r *reader) fail(field, format string, args ...any) {
	if r.err == nil {
		r.err = &ParseError{Part: r.part, Offset: r.off, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
}

func (r *reader) take(field string, n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.off {
		r.fail(field, "need %d bytes, %d remain", n, len(r.b)-r.off)
		return nil
	}
	v := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return v
}

func (r *reader) u8(field string) uint8 {
	if v := r.take(field, 1); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u16(field string) uint16 {
	if v := r.take(field, 2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (r *reader) u32(field string) uint32 {
	if v := r.take(field, 4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (r *reader) u64(field string) uint64 {
	if v := r.take(field, 8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// tpm2b reads a u16 size and that many bytes, refusing sizes above max.
func (r *reader) tpm2b(field string, max int) []byte {
	start := r.off
	n := int(r.u16(field + ".size"))
	if r.err != nil {
		return nil
	}
	if n > max {
		r.off = start
		r.fail(field+".size", "size %d exceeds the maximum %d", n, max)
		return nil
	}
	return r.take(field, n)
}

// end fails unless every byte was consumed.
func (r *reader) end() {
	if r.err == nil && r.off != len(r.b) {
		r.fail("", "%d trailing bytes", len(r.b)-r.off)
	}
}

// PCRSelection is one TPMS_PCR_SELECTION: a bank and its select bitmap
// (bit i of octet j selects PCR 8j+i). len(Select) is sizeofSelect.
type PCRSelection struct {
	Hash   Alg
	Select []byte
}

// maxSelect is the largest sizeofSelect zest accepts: tpm2-tools' pcrblob
// slot (TPM2_PCR_SELECT_MAX) holds 4 octets, i.e. 32 PCRs.
const maxSelect = 4

// maxBanks bounds TPML_PCR_SELECTION.count (TPM2_NUM_PCR_BANKS in the TSS).
const maxBanks = 16

// NewPCRSelection selects pcrs (0..31) in bank hash with the PC-client
// sizeofSelect of 3 octets (4 if a PCR above 23 is selected).
func NewPCRSelection(hash Alg, pcrs ...int) PCRSelection {
	n := 3
	for _, p := range pcrs {
		if p >= 24 {
			n = 4
		}
	}
	s := PCRSelection{Hash: hash, Select: make([]byte, n)}
	for _, p := range pcrs {
		if p >= 0 && p < 8*n {
			s.Select[p/8] |= 1 << (p % 8)
		}
	}
	return s
}

// SelectionFromMask is NewPCRSelection for a Keylime mask (bit i = PCR i).
func SelectionFromMask(hash Alg, mask uint32) PCRSelection {
	var pcrs []int
	for i := 0; i < 32; i++ {
		if mask&(1<<i) != 0 {
			pcrs = append(pcrs, i)
		}
	}
	return NewPCRSelection(hash, pcrs...)
}

// PCRs lists the selected PCR indices in ascending order.
func (s PCRSelection) PCRs() []int {
	var out []int
	for j, b := range s.Select {
		for i := 0; i < 8; i++ {
			if b&(1<<i) != 0 {
				out = append(out, 8*j+i)
			}
		}
	}
	return out
}

// Mask is the selection as a Keylime mask (bit i = PCR i).
func (s PCRSelection) Mask() uint32 {
	var m uint32
	for j, b := range s.Select {
		m |= uint32(b) << (8 * j)
	}
	return m
}

func (s PCRSelection) equal(o PCRSelection) bool {
	if s.Hash != o.Hash || len(s.Select) != len(o.Select) {
		return false
	}
	for i := range s.Select {
		if s.Select[i] != o.Select[i] {
			return false
		}
	}
	return true
}

func (r *reader) pcrSelection(field string) []PCRSelection {
	count := r.u32(field + ".count")
	if r.err != nil {
		return nil
	}
	if count > maxBanks {
		r.off -= 4
		r.fail(field+".count", "%d selections exceed the maximum %d", count, maxBanks)
		return nil
	}
	sels := make([]PCRSelection, 0, count)
	for i := 0; i < int(count); i++ {
		f := fmt.Sprintf("%s[%d]", field, i)
		hash := Alg(r.u16(f + ".hash"))
		n := int(r.u8(f + ".sizeofSelect"))
		if r.err == nil && n > maxSelect {
			r.off--
			r.fail(f+".sizeofSelect", "sizeofSelect %d exceeds %d", n, maxSelect)
		}
		sel := r.take(f+".pcrSelect", n)
		if r.err != nil {
			return nil
		}
		sels = append(sels, PCRSelection{Hash: hash, Select: append([]byte(nil), sel...)})
	}
	return sels
}
