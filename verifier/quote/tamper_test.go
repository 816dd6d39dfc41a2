package quote_test

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"github.com/zest-attest/zest/verifier/failure"
	"github.com/zest-attest/zest/verifier/quote"
)

// tamperCase is one evidence set and how each part's bytes map to the
// check that must catch a change there (beyond the part's general rule).
type tamperCase struct {
	name                string
	attest, sig, pcrblb []byte
	nonce               []byte
	ak                  *quote.AK
	opts                quote.Options
}

// regionCheck names the extra check a tampered TPMS_ATTEST byte must also
// trigger when the tampered attest still parses, from the layout of
// reference §2.2 (qualifiedSigner of size qs, extraData of size ed).
func regionCheck(off, qs, ed, selLen int) string {
	extra := 6 + 2 + qs
	clock := extra + 2 + ed
	sel := clock + 17 + 8
	digest := sel + selLen
	switch {
	case off < 4:
		return "magic"
	case off < 6:
		return "type"
	case off >= extra+2 && off < clock:
		return "nonce"
	case off >= digest+2:
		return "pcr_digest"
	}
	return ""
}

func runTamper(t *testing.T, tc tamperCase) {
	t.Helper()
	verify := func(attest, sig, blob, nonce []byte) (*quote.Verified, failure.List) {
		opts := tc.opts
		opts.Nonce = nonce
		return quote.VerifyString(quote.String(attest, sig, blob), tc.ak, opts)
	}
	if v, fl := verify(tc.attest, tc.sig, tc.pcrblb, tc.nonce); v == nil {
		t.Fatalf("%s: untampered evidence fails: %v", tc.name, fl)
	}
	a, err := quote.ParseAttest(tc.attest)
	if err != nil {
		t.Fatal(err)
	}
	selLen := 4
	for _, s := range a.PCRSelect {
		selLen += 3 + len(s.Select)
	}
	masks := []byte{0x01, 0x80, 0xff}
	n := 0
	flip := func(b []byte, i int, m byte) []byte {
		c := bytes.Clone(b)
		c[i] ^= m
		return c
	}
	fail := func(part string, i int, m byte, fl failure.List, why string) {
		t.Errorf("%s: %s byte %d ^ 0x%02x: %s; got %v", tc.name, part, i, m, why, checks(fl))
	}
	for i := range tc.attest {
		for _, m := range masks {
			n++
			v, fl := verify(flip(tc.attest, i, m), tc.sig, tc.pcrblb, tc.nonce)
			switch {
			case v != nil:
				fail("attest", i, m, fl, "verified")
			case len(fl) == 1 && fl[0].ID == failure.QuoteMalformed:
			case !hasCheck(fl, failure.QuoteInvalid, "signature"):
				fail("attest", i, m, fl, "no signature failure")
			default:
				if c := regionCheck(i, len(a.QualifiedSigner), len(a.ExtraData), selLen); c != "" && !hasCheck(fl, failure.QuoteInvalid, c) {
					fail("attest", i, m, fl, "no "+c+" failure")
				}
			}
		}
	}
	for i := range tc.sig {
		for _, m := range masks {
			n++
			v, fl := verify(tc.attest, flip(tc.sig, i, m), tc.pcrblb, tc.nonce)
			switch {
			case v != nil:
				fail("signature", i, m, fl, "verified")
			case len(fl) == 1 && fl[0].ID == failure.QuoteMalformed:
			case i < 2 && (hasCheck(fl, quote.EventInvalidSignAlg, "sign_alg") || hasCheck(fl, failure.QuoteInvalid, "signature")):
			case i >= 2 && i < 4 && (hasCheck(fl, failure.QuoteHashAlg, "hash_alg") || hasCheck(fl, failure.QuoteInvalid, "signature")):
			case i >= 4 && hasCheck(fl, failure.QuoteInvalid, "signature"):
			default:
				fail("signature", i, m, fl, "no sign_alg, hash_alg or signature failure")
			}
			if fl.HasError() && fl[0].ID != failure.QuoteMalformed {
				fail("signature", i, m, fl, "verdict error for evaluable evidence")
			}
		}
	}
	blobChecks := []string{"pcr_selection", "pcr_digest", "pcr_values", "pcr_bank"}
	for i := range tc.pcrblb {
		for _, m := range masks {
			n++
			v, fl := verify(tc.attest, tc.sig, flip(tc.pcrblb, i, m), tc.nonce)
			switch {
			case v != nil:
				fail("pcrblob", i, m, fl, "verified")
			case len(fl) == 1 && fl[0].ID == failure.QuoteMalformed:
			case !slices.ContainsFunc(blobChecks, func(c string) bool { return hasCheck(fl, failure.QuoteInvalid, c) }):
				fail("pcrblob", i, m, fl, "no PCR failure")
			case hasCheck(fl, failure.QuoteInvalid, "signature"):
				fail("pcrblob", i, m, fl, "signature blamed for an unsigned part")
			}
		}
	}
	for i := range tc.nonce {
		for _, m := range masks {
			n++
			v, fl := verify(tc.attest, tc.sig, tc.pcrblb, flip(tc.nonce, i, m))
			if v != nil || !slices.Equal(checks(fl), []string{failure.QuoteInvalid + "/nonce"}) {
				fail("nonce", i, m, fl, "want exactly the nonce failure")
			}
		}
	}
	t.Logf("%s: %d single-byte tampers rejected", tc.name, n)
}

// TestTamperKeylimeVector flips every bit pattern 0x01/0x80/0xff at every
// byte of the Keylime vector's attest, signature, pcrblob and nonce.
func TestTamperKeylimeVector(t *testing.T) {
	v, attest, sig, blob := loadVector(t)
	ak, err := quote.ParseAK([]byte(v.AKPEM))
	if err != nil {
		t.Fatal(err)
	}
	runTamper(t, tamperCase{name: "keylime", attest: attest, sig: sig, pcrblb: blob, nonce: []byte(v.Nonce), ak: ak})
}

var _ = fmt.Sprint
