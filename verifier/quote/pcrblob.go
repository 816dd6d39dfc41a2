package quote

import (
	"encoding/binary"
	"fmt"
)

// The tpm2-tools pcrblob ("tpm2_quote -o", rust-keylime pcrdata_to_vec) is
// the x86 memory image of two TSS2 C structures, little-endian with natural
// alignment:
//
//	TPML_PCR_SELECTION: u32 count, 16 slots of {u16 hash, u8 sizeofSelect,
//	                    u8 pcrSelect[4], u8 pad}                    (132 bytes)
//	u32 N, then N × TPML_DIGEST: u32 count, 8 slots of
//	                    {u16 size, u8 buffer[64]}                   (532 bytes each)
const (
	blobSlots       = 16
	blobSlotSize    = 8
	blobDigestsAt   = 4 + blobSlots*blobSlotSize // 132
	blobListSize    = 4 + 8*(2+64)               // 532
	blobListDigests = 8
	// maxBlobLists bounds N: 16 banks × 32 PCRs at one value per list.
	maxBlobLists = blobSlots * 32
)

// PCRBlob is a parsed pcrblob: the selection the agent claims and the PCR
// values in selection order (bank order, then ascending PCR index).
type PCRBlob struct {
	Selection []PCRSelection
	// Lists are the TPML_DIGEST lists as read (one per TPM2_PCR_Read).
	Lists [][][]byte
}

// Values flattens Lists in order.
func (p *PCRBlob) Values() [][]byte {
	var out [][]byte
	for _, l := range p.Lists {
		out = append(out, l...)
	}
	return out
}

// ParsePCRBlob parses a tpm2-tools pcrblob. Only the canonical encoding is
// accepted: unused slots, padding and buffer tails must be zero, so that
// every byte of the blob is either meaningful or checked. Errors are
// *ParseError with Part PartPCRBlob.
func ParsePCRBlob(b []byte) (*PCRBlob, error) {
	fail := func(off int, field, format string, args ...any) error {
		return &ParseError{Part: PartPCRBlob, Offset: off, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	if len(b) < blobDigestsAt+4 {
		return nil, fail(0, "", "%d bytes, shorter than the %d-byte header", len(b), blobDigestsAt+4)
	}
	count := binary.LittleEndian.Uint32(b)
	if count > blobSlots {
		return nil, fail(0, "pcrSelections.count", "%d selections exceed %d", count, blobSlots)
	}
	p := &PCRBlob{}
	for i := 0; i < int(count); i++ {
		off := 4 + i*blobSlotSize
		n := int(b[off+2])
		if n > maxSelect {
			return nil, fail(off+2, fmt.Sprintf("pcrSelections[%d].sizeofSelect", i), "sizeofSelect %d exceeds %d", n, maxSelect)
		}
		p.Selection = append(p.Selection, PCRSelection{
			Hash:   Alg(binary.LittleEndian.Uint16(b[off:])),
			Select: append([]byte(nil), b[off+3:off+3+n]...),
		})
	}
	nLists := binary.LittleEndian.Uint32(b[blobDigestsAt:])
	if nLists > maxBlobLists {
		return nil, fail(blobDigestsAt, "digest lists", "%d lists exceed %d", nLists, maxBlobLists)
	}
	if want := blobDigestsAt + 4 + int(nLists)*blobListSize; len(b) != want {
		return nil, fail(blobDigestsAt, "digest lists", "%d lists need %d bytes, blob has %d", nLists, want, len(b))
	}
	for l := 0; l < int(nLists); l++ {
		off := blobDigestsAt + 4 + l*blobListSize
		n := binary.LittleEndian.Uint32(b[off:])
		if n > blobListDigests {
			return nil, fail(off, fmt.Sprintf("digests[%d].count", l), "%d digests exceed %d", n, blobListDigests)
		}
		list := make([][]byte, 0, n)
		for d := 0; d < int(n); d++ {
			so := off + 4 + d*66
			size := int(binary.LittleEndian.Uint16(b[so:]))
			if size > maxDigest {
				return nil, fail(so, fmt.Sprintf("digests[%d][%d].size", l, d), "size %d exceeds %d", size, maxDigest)
			}
			list = append(list, append([]byte(nil), b[so+2:so+2+size]...))
		}
		p.Lists = append(p.Lists, list)
	}
	// Everything not read above must be zero: compare with the canonical
	// encoding of what was read.
	canon := p.marshal()
	for i := range b {
		if b[i] != canon[i] {
			return nil, fail(i, blobField(i), "byte 0x%02x where the encoding has 0x%02x (non-zero padding or unused slot)", b[i], canon[i])
		}
	}
	return p, nil
}

// blobField names the structure field at a pcrblob offset.
func blobField(off int) string {
	switch {
	case off < 4:
		return "pcrSelections.count"
	case off < blobDigestsAt:
		i, o := (off-4)/blobSlotSize, (off-4)%blobSlotSize
		name := [...]string{"hash", "hash", "sizeofSelect", "pcrSelect", "pcrSelect", "pcrSelect", "pcrSelect", "pad"}[o]
		return fmt.Sprintf("pcrSelections[%d].%s", i, name)
	case off < blobDigestsAt+4:
		return "digest lists"
	}
	l, o := (off-blobDigestsAt-4)/blobListSize, (off-blobDigestsAt-4)%blobListSize
	if o < 4 {
		return fmt.Sprintf("digests[%d].count", l)
	}
	d, o := (o-4)/66, (o-4)%66
	if o < 2 {
		return fmt.Sprintf("digests[%d][%d].size", l, d)
	}
	return fmt.Sprintf("digests[%d][%d].buffer", l, d)
}

func (p *PCRBlob) marshal() []byte {
	b := make([]byte, blobDigestsAt+4+len(p.Lists)*blobListSize)
	binary.LittleEndian.PutUint32(b, uint32(len(p.Selection)))
	for i, s := range p.Selection {
		off := 4 + i*blobSlotSize
		binary.LittleEndian.PutUint16(b[off:], uint16(s.Hash))
		b[off+2] = byte(len(s.Select))
		copy(b[off+3:off+3+maxSelect], s.Select)
	}
	binary.LittleEndian.PutUint32(b[blobDigestsAt:], uint32(len(p.Lists)))
	for l, list := range p.Lists {
		off := blobDigestsAt + 4 + l*blobListSize
		binary.LittleEndian.PutUint32(b[off:], uint32(len(list)))
		for d, v := range list {
			so := off + 4 + d*66
			binary.LittleEndian.PutUint16(b[so:], uint16(len(v)))
			copy(b[so+2:so+2+maxDigest], v)
		}
	}
	return b
}

// MarshalPCRBlob encodes a selection and its PCR values (in selection
// order) the way tpm2-tools and rust-keylime do, eight values per
// TPML_DIGEST (one TPM2_PCR_Read response each).
func MarshalPCRBlob(sel []PCRSelection, values [][]byte) ([]byte, error) {
	var lists [][][]byte
	for i, v := range values {
		if i%blobListDigests == 0 {
			lists = append(lists, nil)
		}
		lists[len(lists)-1] = append(lists[len(lists)-1], v)
	}
	return MarshalPCRBlobLists(sel, lists)
}

// MarshalPCRBlobLists is MarshalPCRBlob with the grouping of values into
// TPML_DIGEST lists given explicitly (as the TPM returned them).
func MarshalPCRBlobLists(sel []PCRSelection, lists [][][]byte) ([]byte, error) {
	if len(sel) > blobSlots {
		return nil, fmt.Errorf("pcrblob: %d selections exceed %d", len(sel), blobSlots)
	}
	if len(lists) > maxBlobLists {
		return nil, fmt.Errorf("pcrblob: %d digest lists exceed %d", len(lists), maxBlobLists)
	}
	want := 0
	for i, s := range sel {
		if len(s.Select) > maxSelect {
			return nil, fmt.Errorf("pcrblob: selection %d: sizeofSelect %d exceeds %d", i, len(s.Select), maxSelect)
		}
		want += len(s.PCRs())
	}
	got := 0
	for i, l := range lists {
		if len(l) > blobListDigests {
			return nil, fmt.Errorf("pcrblob: digest list %d has %d values, more than %d", i, len(l), blobListDigests)
		}
		for j, v := range l {
			if len(v) > maxDigest {
				return nil, fmt.Errorf("pcrblob: value %d of list %d is %d bytes, more than %d", j, i, len(v), maxDigest)
			}
		}
		got += len(l)
	}
	if want != got {
		return nil, fmt.Errorf("pcrblob: selection has %d PCRs, %d values given", want, got)
	}
	return (&PCRBlob{Selection: sel, Lists: lists}).marshal(), nil
}
