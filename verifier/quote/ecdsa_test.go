package quote_test

import (
	"encoding/base64"
	"encoding/binary"
	"testing"

	"github.com/zest-attest/zest/verifier/failure"
	"github.com/zest-attest/zest/verifier/quote"
)

// TestECDSAComponentLengths: r and s are integers; a TPM (or a TSS) may
// send them shorter or longer than the coordinate size. Re-encode a real
// ECDSA quote's r and s with extra leading zero octets and with leading
// zeros stripped: the signature must still verify.
func TestECDSAComponentLengths(t *testing.T) {
	s := loadStored(t)["ecdsa-p256"]
	pub, _ := base64.StdEncoding.DecodeString(s.AKTPM)
	ak, err := quote.ParseAK(pub)
	if err != nil {
		t.Fatal(err)
	}
	q, err := quote.Parse(s.Quote)
	if err != nil {
		t.Fatal(err)
	}
	enc := func(r, sv []byte) []byte {
		b := binary.BigEndian.AppendUint16(nil, uint16(quote.AlgECDSA))
		b = binary.BigEndian.AppendUint16(b, uint16(q.Signature.Hash))
		b = binary.BigEndian.AppendUint16(b, uint16(len(r)))
		b = append(b, r...)
		b = binary.BigEndian.AppendUint16(b, uint16(len(sv)))
		return append(b, sv...)
	}
	strip := func(b []byte) []byte {
		for len(b) > 1 && b[0] == 0 {
			b = b[1:]
		}
		return b
	}
	pad := func(b []byte, n int) []byte { return append(make([]byte, n), b...) }
	r, sv := q.Signature.R, q.Signature.S
	for name, sig := range map[string][]byte{
		"as sent":        enc(r, sv),
		"padded r":       enc(pad(r, 1), sv),
		"padded r and s": enc(pad(r, 3), pad(sv, 2)),
		"stripped":       enc(strip(r), strip(sv)),
	} {
		v, fl := quote.VerifyString(quote.String(q.AttestBytes, sig, q.PCRBlobBytes), ak, quote.Options{Nonce: []byte(s.Nonce)})
		if v == nil {
			t.Errorf("%s: %v", name, checks(fl))
		}
	}
	// Too long for any curve the parser knows: malformed, not a panic.
	_, fl := quote.VerifyString(quote.String(q.AttestBytes, enc(pad(r, 40), sv), q.PCRBlobBytes), ak, quote.Options{Nonce: []byte(s.Nonce)})
	if len(fl) != 1 || fl[0].ID != failure.QuoteMalformed {
		t.Errorf("67-byte r: %v", checks(fl))
	}
}
