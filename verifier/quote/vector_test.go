package quote_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"slices"
	"testing"

	"github.com/zest-attest/zest/verifier/failure"
	"github.com/zest-attest/zest/verifier/quote"
)

// keylimeVector is fixtures/keylime/quote-vector.json: the quote Keylime's
// own tpm_util_test.py test_checkquote verifies.
type keylimeVector struct {
	AKPEM   string `json:"aik_pem"`
	Nonce   string `json:"nonce"`
	Sig     string `json:"sigblob_b64"`
	Attest  string `json:"quoteblob_b64"`
	PCRBlob string `json:"pcrblob_b64"`
	HashAlg string `json:"hash_alg"`
}

func loadVector(t testing.TB) (v keylimeVector, attest, sig, blob []byte) {
	t.Helper()
	b, err := os.ReadFile("../../fixtures/keylime/quote-vector.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	dec := func(s string) []byte {
		d, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	return v, dec(v.Attest), dec(v.Sig), dec(v.PCRBlob)
}

func TestKeylimeVector(t *testing.T) {
	v, attest, sig, blob := loadVector(t)
	ak, err := quote.ParseAK([]byte(v.AKPEM))
	if err != nil {
		t.Fatal(err)
	}
	s := quote.String(attest, sig, blob)
	ver, fl := quote.VerifyString(s, ak, quote.Options{Nonce: []byte(v.Nonce), HashAlg: quote.AlgSHA256, Mask: 1 << 16})
	if fl != nil || ver == nil {
		t.Fatalf("vector does not verify: %v", fl)
	}
	// Expected values from Keylime's test (reference §11.1), not from zest.
	if got, _ := ver.PCR(quote.AlgSHA256, 16); hex.EncodeToString(got) != "d471c0674951f0ef075aecdd42fbefa6eca6019820add0bd222d1c4e6242ce6f" {
		t.Errorf("PCR16 = %x", got)
	}
	if c := ver.ClockInfo(); c != (quote.ClockInfo{Clock: 1284787942, ResetCount: 3, RestartCount: 0, Safe: true}) {
		t.Errorf("clock info %+v", c)
	}
	if ver.FirmwareVersion() != 0x2019102300163636 || ver.HashAlg() != quote.AlgSHA256 || ver.SignAlg() != quote.AlgRSASSA || string(ver.Nonce()) != v.Nonce {
		t.Errorf("verified %+v", ver)
	}
	if len(ver.PCRs(quote.AlgSHA256)) != 1 || !slices.Equal(ver.Banks(), []quote.Alg{quote.AlgSHA256}) || ver.Rebooted() {
		t.Errorf("pcrs %v banks %v", ver.PCRs(quote.AlgSHA256), ver.Banks())
	}
	// The same evidence in the push model's three parts.
	e := base64.StdEncoding
	q, err := quote.ParseParts(e.EncodeToString(attest), e.EncodeToString(sig), e.EncodeToString(blob))
	if err != nil {
		t.Fatal(err)
	}
	if _, fl := quote.Verify(q, ak, quote.Options{Nonce: []byte(v.Nonce)}); fl != nil {
		t.Fatalf("push-model parts: %v", fl)
	}
	if q.String() != s {
		t.Error("String does not round-trip")
	}
	// Keylime's own negative cases: sha1 expected, another nonce.
	if _, fl := quote.Verify(q, ak, quote.Options{Nonce: []byte(v.Nonce), HashAlg: quote.AlgSHA1}); !hasCheck(fl, failure.QuoteHashAlg, "hash_alg_mismatch") {
		t.Errorf("sha1 expected: %v", fl)
	}
	if _, fl := quote.Verify(q, ak, quote.Options{Nonce: []byte("another nonce")}); !hasCheck(fl, failure.QuoteInvalid, "nonce") {
		t.Errorf("other nonce: %v", fl)
	}
	if _, fl := quote.Verify(q, ak, quote.Options{}); !hasCheck(fl, failure.QuoteInvalid, "nonce") || fl.Verdict() != failure.VerdictError {
		t.Errorf("no nonce: %v", fl)
	}
	if _, fl := quote.Verify(q, nil, quote.Options{Nonce: []byte(v.Nonce)}); len(fl) != 1 || fl[0].ID != failure.QuoteNoPubkey {
		t.Errorf("no AK: %v", fl)
	}
}

func hasCheck(fl failure.List, id, check string) bool {
	for _, f := range fl {
		if f.ID == id && f.Context["check"] == check {
			return true
		}
	}
	return false
}

// checks lists "id/check" of every failure.
func checks(fl failure.List) []string {
	var out []string
	for _, f := range fl {
		c, _ := f.Context["check"].(string)
		out = append(out, f.ID+"/"+c)
	}
	return out
}

// TestDisplayGolden pins the display JSON of the parsed (unverified)
// Keylime vector; regenerate with -update and review the diff.
func TestDisplayGolden(t *testing.T) {
	_, attest, sig, blob := loadVector(t)
	q, err := quote.FromBytes(attest, sig, blob)
	if err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(q, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	const golden = "testdata/keylime-vector-display.json"
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("display JSON differs from %s:\n%s", golden, got)
	}
	// The selection round-trips through its JSON form.
	var sel quote.PCRSelection
	b, _ := json.Marshal(q.Attest.PCRSelect[0])
	if err := json.Unmarshal(b, &sel); err != nil || sel.Mask() != 1<<16 || len(sel.Select) != 3 {
		t.Errorf("selection JSON round trip: %s %v %+v", b, err, sel)
	}
}

// TestVerifiedIsACopy: changing the parsed quote after Verify must not
// change what was verified.
func TestVerifiedIsACopy(t *testing.T) {
	v, attest, sig, blob := loadVector(t)
	ak, _ := quote.ParseAK([]byte(v.AKPEM))
	q, err := quote.FromBytes(attest, sig, blob)
	if err != nil {
		t.Fatal(err)
	}
	ver, fl := quote.Verify(q, ak, quote.Options{Nonce: []byte(v.Nonce)})
	if ver == nil {
		t.Fatal(fl)
	}
	before, _ := ver.PCR(quote.AlgSHA256, 16)
	q.PCRBlob.Lists[0][0][0] ^= 0xff
	q.Attest.PCRSelect[0].Select[0] = 0xff
	q.Attest.ExtraData[0] ^= 0xff
	after, _ := ver.PCR(quote.AlgSHA256, 16)
	if !bytes.Equal(before, after) || ver.Selection()[0].Mask() != 1<<16 || string(ver.Nonce()) != v.Nonce {
		t.Fatal("Verified shares memory with the Quote")
	}
	after[0] ^= 0xff
	if again, _ := ver.PCR(quote.AlgSHA256, 16); !bytes.Equal(before, again) {
		t.Fatal("PCR returns Verified's own slice")
	}
}
