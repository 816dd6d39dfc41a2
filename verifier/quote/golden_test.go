package quote_test

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"testing"

	"github.com/zest-attest/zest/verifier/quote"
	"github.com/zest-attest/zest/verifier/quote/quotetest"
)

var update = flag.Bool("update", false, "regenerate testdata/sim-quotes.json from the TPM simulator")

const goldenQuotes = "testdata/sim-quotes.json"

// storedQuote is a real quote from the reference TPM, kept so tests and
// fuzz seeds do not depend on the simulator, and so other packages have
// RSASSA/RSAPSS/ECDSA evidence to replay. PCRs were read from the TPM with
// TPM2_PCR_Read when the quote was made, independently of zest.
type storedQuote struct {
	Kind    string                       `json:"kind"`
	AKTPM   string                       `json:"ak_tpm"` // base64 TPM2B_PUBLIC, as a registrar's aik_tpm
	AKPEM   string                       `json:"ak_pem"`
	Nonce   string                       `json:"nonce"`
	HashAlg string                       `json:"hash_alg"`
	Data    string                       `json:"data"` // bound to PCR 16
	Quote   string                       `json:"quote"`
	PCRs    map[string]map[string]string `json:"pcrs"`
}

func TestStoredQuotes(t *testing.T) {
	if *update {
		writeStoredQuotes(t)
	}
	b, err := os.ReadFile(goldenQuotes)
	if err != nil {
		t.Fatal(err)
	}
	var stored []storedQuote
	if err := json.Unmarshal(b, &stored); err != nil {
		t.Fatal(err)
	}
	if len(stored) < 4 {
		t.Fatalf("%d stored quotes", len(stored))
	}
	for _, s := range stored {
		t.Run(s.Kind, func(t *testing.T) {
			tpmPub, _ := base64.StdEncoding.DecodeString(s.AKTPM)
			ak, err := quote.ParseAK(tpmPub)
			if err != nil {
				t.Fatal(err)
			}
			hash, _ := quote.ParseAlg(s.HashAlg)
			v, fl := quote.VerifyString(s.Quote, ak, quote.Options{Nonce: []byte(s.Nonce), HashAlg: hash, Data: []byte(s.Data), Mask: 1 << 10})
			if v == nil {
				t.Fatal(fl)
			}
			n := 0
			for bankName, m := range s.PCRs {
				bank, _ := quote.ParseAlg(bankName)
				for idx, want := range m {
					var i int
					json.Unmarshal([]byte(idx), &i)
					got, ok := v.PCR(bank, i)
					if !ok || hex.EncodeToString(got) != want {
						t.Errorf("%s PCR %s = %x, TPM read %s", bankName, idx, got, want)
					}
					n++
				}
			}
			total := 0
			for _, b := range v.Banks() {
				total += len(v.PCRs(b))
			}
			if n != total {
				t.Errorf("verified %d PCRs, TPM read %d", total, n)
			}
		})
	}
}

func writeStoredQuotes(t *testing.T) {
	tpm := openTPM(t)
	var out []storedQuote
	for _, s := range schemes {
		measure(t, tpm, s.hash)
		ak := newAK(t, tpm, s.kind, s.hash)
		nonce := "stored-" + s.kind.String()
		sels := []quote.PCRSelection{quote.NewPCRSelection(s.hash, 0, 7, 10, 16)}
		if s.kind == quotetest.ECDSAP384 {
			sels = append(sels, quote.NewPCRSelection(quote.AlgSHA1, 0, 7, 10))
		}
		q, err := ak.Quote([]byte(nonce), sels...)
		if err != nil {
			t.Fatal(err)
		}
		pcrs := map[string]map[string]string{}
		for _, sel := range sels {
			lists, err := tpm.ReadPCRs([]quote.PCRSelection{sel})
			if err != nil {
				t.Fatal(err)
			}
			m := map[string]string{}
			var vals [][]byte
			for _, l := range lists {
				vals = append(vals, l...)
			}
			for i, p := range sel.PCRs() {
				b, _ := json.Marshal(p)
				m[string(b)] = hex.EncodeToString(vals[i])
			}
			pcrs[sel.Hash.String()] = m
		}
		out = append(out, storedQuote{
			Kind: s.kind.String(), AKTPM: base64.StdEncoding.EncodeToString(ak.Public()), AKPEM: string(ak.PEM()),
			Nonce: nonce, HashAlg: s.hash.String(), Data: string(payloadPEM), Quote: q.String(), PCRs: pcrs,
		})
		ak.Close()
	}
	b, err := json.MarshalIndent(out, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(goldenQuotes+".tmp", append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(goldenQuotes+".tmp", goldenQuotes); err != nil {
		t.Fatal(err)
	}
}
