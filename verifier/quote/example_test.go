package quote_test

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/zest-attest/zest/verifier/quote"
)

// Verify the quote from Keylime's own checkquote test against its AK and
// nonce, then the same quote presented with a different nonce.
func ExampleVerifyString() {
	b, _ := os.ReadFile("../../fixtures/keylime/quote-vector.json")
	var v struct {
		AK     string `json:"aik_pem"`
		Nonce  string `json:"nonce"`
		Sig    string `json:"sigblob_b64"`
		Attest string `json:"quoteblob_b64"`
		PCRs   string `json:"pcrblob_b64"`
	}
	json.Unmarshal(b, &v)
	s := "r" + v.Attest + ":" + v.Sig + ":" + v.PCRs // attest:signature:pcrblob

	ak, err := quote.ParseAK([]byte(v.AK))
	if err != nil {
		panic(err)
	}
	verified, failures := quote.VerifyString(s, ak, quote.Options{Nonce: []byte(v.Nonce), Mask: 1 << 16})
	pcr16, _ := verified.PCR(quote.AlgSHA256, 16)
	fmt.Printf("%d failures; %v/%v; clock %+v\nPCR 16 %x\n", len(failures), verified.SignAlg(), verified.HashAlg(), verified.ClockInfo(), pcr16)

	_, failures = quote.VerifyString(s, ak, quote.Options{Nonce: []byte("replayed")})
	for _, f := range failures {
		fmt.Println(f.ID, f.Context["check"], f.Message)
	}
	// Output:
	// 0 failures; rsassa/sha256; clock {Clock:1284787942 ResetCount:3 RestartCount:0 Safe:true}
	// PCR 16 d471c0674951f0ef075aecdd42fbefa6eca6019820add0bd222d1c4e6242ce6f
	// qoute_validation.quote_validation nonce The quote's extraData is not the nonce that was sent.
}
