package quote_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"testing"

	"github.com/zest-attest/zest/verifier/quote"
)

// seedQuotes are the real quotes in the fixtures: Keylime's vector and the
// stored simulator quotes.
func seedQuotes(f *testing.F) (quotes []string, aks [][]byte) {
	v, attest, sig, blob := loadVector(f)
	quotes = append(quotes, quote.String(attest, sig, blob))
	aks = append(aks, []byte(v.AKPEM))
	b, err := os.ReadFile(goldenQuotes)
	if err != nil {
		f.Fatal(err)
	}
	var stored []storedQuote
	if err := json.Unmarshal(b, &stored); err != nil {
		f.Fatal(err)
	}
	for _, s := range stored {
		quotes = append(quotes, s.Quote)
		pub, _ := base64.StdEncoding.DecodeString(s.AKTPM)
		aks = append(aks, pub, []byte(s.AKPEM))
	}
	for _, o := range loadObjectVectors(f) {
		aks = append(aks, o.bytes(f))
	}
	return quotes, aks
}

func parts(f *testing.F, s string) (attest, sig, blob []byte) {
	q, err := quote.Parse(s)
	if err != nil {
		f.Fatal(err)
	}
	return q.AttestBytes, q.SignatureBytes, q.PCRBlobBytes
}

func FuzzParse(f *testing.F) {
	quotes, aks := seedQuotes(f)
	for _, q := range quotes {
		f.Add(q)
	}
	f.Add("r::")
	f.Add("rAAAA:AAAA:AAAA")
	ak, err := quote.ParseAK(aks[0])
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := quote.Parse(s)
		if err != nil {
			if _, ok := err.(*quote.ParseError); !ok {
				t.Fatalf("error of type %T", err)
			}
			return
		}
		if q.String() != s {
			t.Fatalf("parsed quote does not re-encode to its input")
		}
		v, fl := quote.Verify(q, ak, quote.Options{Nonce: []byte("fuzz")})
		if (v == nil) == (len(fl) == 0) {
			t.Fatalf("Verified %v with %d failures", v != nil, len(fl))
		}
	})
}

func FuzzParseAttest(f *testing.F) {
	quotes, _ := seedQuotes(f)
	for _, q := range quotes {
		a, _, _ := parts(f, q)
		f.Add(a)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := quote.ParseAttest(b)
		if err == nil && a.Type == quote.TypeQuote && a.PCRDigest == nil {
			t.Fatal("quote without digest")
		}
	})
}

func FuzzParseSignature(f *testing.F) {
	quotes, _ := seedQuotes(f)
	for _, q := range quotes {
		_, s, _ := parts(f, q)
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		quote.ParseSignature(b)
	})
}

func FuzzParsePCRBlob(f *testing.F) {
	quotes, _ := seedQuotes(f)
	for _, q := range quotes {
		_, _, b := parts(f, q)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := quote.ParsePCRBlob(b)
		if err != nil {
			return
		}
		// Only canonical blobs parse: re-encoding gives the input back.
		again, err := quote.MarshalPCRBlobLists(p.Selection, p.Lists)
		if err == nil && !bytes.Equal(again, b) {
			t.Fatal("accepted pcrblob is not canonical")
		}
	})
}

func FuzzParseAK(f *testing.F) {
	_, aks := seedQuotes(f)
	for _, a := range aks {
		f.Add(a)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ak, err := quote.ParseAK(b)
		if err != nil {
			return
		}
		if ak.Key == nil {
			t.Fatal("parsed AK without key")
		}
		ak.Name()
		ak.CheckAttributes()
	})
}
