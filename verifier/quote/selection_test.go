package quote_test

import (
	"encoding/hex"
	"slices"
	"testing"

	"github.com/zest-attest/zest/verifier/quote"
)

// TestSelectionEncodings uses the worked examples of the TPM quote
// reference §11.3 (mask → PCRs, pcrblob slot bytes).
func TestSelectionEncodings(t *testing.T) {
	tests := []struct {
		mask uint32
		pcrs []int
		slot string // pcrblob selection slot, little-endian with padding
	}{
		{0x10401, []int{0, 10, 16}, "0b00030104010000"},
		{0x408400, []int{10, 15, 22}, "0b00030084400000"},
		{1 << 16, []int{16}, "0b00030000010000"},
	}
	for _, tt := range tests {
		s := quote.SelectionFromMask(quote.AlgSHA256, tt.mask)
		if !slices.Equal(s.PCRs(), tt.pcrs) || s.Mask() != tt.mask || len(s.Select) != 3 {
			t.Errorf("mask 0x%x: PCRs %v mask 0x%x", tt.mask, s.PCRs(), s.Mask())
		}
		if n := quote.NewPCRSelection(quote.AlgSHA256, tt.pcrs...); n.Mask() != tt.mask {
			t.Errorf("NewPCRSelection(%v) = 0x%x", tt.pcrs, n.Mask())
		}
		values := make([][]byte, len(tt.pcrs))
		for i := range values {
			values[i] = make([]byte, 32)
		}
		blob, err := quote.MarshalPCRBlob([]quote.PCRSelection{s}, values)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(blob[4:12]); got != tt.slot || len(blob) != 668 {
			t.Errorf("mask 0x%x: slot %s, want %s (blob %d bytes)", tt.mask, got, tt.slot, len(blob))
		}
	}
	if s := quote.NewPCRSelection(quote.AlgSHA256, 24); len(s.Select) != 4 || s.Mask() != 1<<24 {
		t.Errorf("PCR 24 needs a fourth octet: %+v", s)
	}
	// Nine values need two TPML_DIGEST lists: 136 + 2*532 bytes.
	nine := make([][]byte, 9)
	for i := range nine {
		nine[i] = make([]byte, 32)
	}
	blob, err := quote.MarshalPCRBlob([]quote.PCRSelection{quote.NewPCRSelection(quote.AlgSHA256, 0, 1, 2, 3, 4, 5, 6, 7, 8)}, nine)
	if err != nil || len(blob) != 136+2*532 {
		t.Errorf("9 values: %d bytes, %v", len(blob), err)
	}
	if _, err := quote.MarshalPCRBlob([]quote.PCRSelection{quote.NewPCRSelection(quote.AlgSHA256, 0, 1)}, nine); err == nil {
		t.Error("value count mismatch accepted")
	}
}
