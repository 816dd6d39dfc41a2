package quote

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/zest-attest/zest/verifier/failure"
)

// maxQuoteString bounds the quote string before anything is decoded; a
// real one is about 1.5 KB per 8 PCR values.
const maxQuoteString = 64 << 10

// Quote is an unverified quote: the three raw parts and their parsed forms.
// Nothing here is a fact until Verify returns a *Verified.
type Quote struct {
	// Raw parts exactly as received (after base64 decoding).
	AttestBytes    []byte
	SignatureBytes []byte
	PCRBlobBytes   []byte

	Attest    *Attest
	Signature *Signature
	PCRBlob   *PCRBlob
}

// Parse parses a Keylime quote string "r<b64 TPMS_ATTEST>:<b64
// TPMT_SIGNATURE>:<b64 pcrblob>". Errors are *ParseError.
func Parse(s string) (*Quote, error) {
	if len(s) > maxQuoteString {
		return nil, &ParseError{Part: PartString, Msg: fmt.Sprintf("%d bytes, longer than %d", len(s), maxQuoteString)}
	}
	if s == "" || s[0] != 'r' {
		return nil, &ParseError{Part: PartString, Msg: `quote type is not "r" (TPM 2.0 quote)`}
	}
	parts := strings.Split(s[1:], ":")
	if len(parts) != 3 {
		return nil, &ParseError{Part: PartString, Msg: fmt.Sprintf("%d ':'-separated parts, want 3 (attest:signature:pcrblob)", len(parts))}
	}
	var raw [3][]byte
	off := 1
	for i, p := range parts {
		b, err := base64.StdEncoding.Strict().DecodeString(p)
		if err != nil {
			var ce base64.CorruptInputError
			at := off
			if errors.As(err, &ce) {
				at += int(ce)
			}
			return nil, &ParseError{Part: PartString, Offset: at, Field: partNames[i], Msg: "invalid base64"}
		}
		raw[i] = b
		off += len(p) + 1
	}
	return FromBytes(raw[0], raw[1], raw[2])
}

var partNames = [3]string{PartAttest, PartSignature, PartPCRBlob}

// ParseParts parses the push-model (API v3) tpm_quote evidence: message
// (TPMS_ATTEST), signature (TPMT_SIGNATURE) and subject_data (pcrblob),
// each standard base64.
func ParseParts(message, signature, subjectData string) (*Quote, error) {
	var raw [3][]byte
	for i, p := range [3]string{message, signature, subjectData} {
		if len(p) > maxQuoteString {
			return nil, &ParseError{Part: partNames[i], Msg: "base64 text too long"}
		}
		b, err := base64.StdEncoding.Strict().DecodeString(p)
		if err != nil {
			var ce base64.CorruptInputError
			at := 0
			if errors.As(err, &ce) {
				at = int(ce)
			}
			return nil, &ParseError{Part: partNames[i], Offset: at, Field: "base64", Msg: "invalid base64"}
		}
		raw[i] = b
	}
	return FromBytes(raw[0], raw[1], raw[2])
}

// FromBytes parses the three decoded parts. The slices are retained.
func FromBytes(attest, signature, pcrblob []byte) (*Quote, error) {
	q := &Quote{AttestBytes: attest, SignatureBytes: signature, PCRBlobBytes: pcrblob}
	var err error
	if q.Attest, err = ParseAttest(attest); err != nil {
		return nil, err
	}
	if q.Signature, err = ParseSignature(signature); err != nil {
		return nil, err
	}
	if q.PCRBlob, err = ParsePCRBlob(pcrblob); err != nil {
		return nil, err
	}
	return q, nil
}

// String is the Keylime quote string of q's raw parts.
func (q *Quote) String() string {
	return String(q.AttestBytes, q.SignatureBytes, q.PCRBlobBytes)
}

// String encodes raw parts as a Keylime quote string.
func String(attest, signature, pcrblob []byte) string {
	e := base64.StdEncoding
	return "r" + e.EncodeToString(attest) + ":" + e.EncodeToString(signature) + ":" + e.EncodeToString(pcrblob)
}

// MalformedFailure turns a parse error into the failure a verifier reports
// for evidence it could not evaluate: failure.QuoteMalformed, kind Error,
// with the part, offset and field in the context.
func MalformedFailure(err error) failure.Failure {
	ctx := map[string]any{"check": "parse"}
	var pe *ParseError
	if errors.As(err, &pe) {
		ctx["part"] = pe.Part
		ctx["offset"] = pe.Offset
		if pe.Field != "" {
			ctx["field"] = pe.Field
		}
	}
	return failure.Errorf(failure.QuoteMalformed, ctx, "The quote could not be parsed: %v.", err)
}
