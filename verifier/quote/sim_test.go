package quote_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/zest-attest/zest/verifier/failure"
	"github.com/zest-attest/zest/verifier/quote"
	"github.com/zest-attest/zest/verifier/quote/quotetest"
)

func openTPM(t testing.TB) *quotetest.TPM {
	t.Helper()
	tpm, err := quotetest.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tpm.Close() })
	return tpm
}

func newAK(t testing.TB, tpm *quotetest.TPM, k quotetest.Kind, hash quote.Alg) *quotetest.AK {
	t.Helper()
	ak, err := tpm.NewAK(k, hash)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ak.Close() })
	return ak
}

// payloadPEM stands in for the agent's payload public key PEM that
// rust-keylime binds to PCR 16.
var payloadPEM = []byte("-----BEGIN PUBLIC KEY-----\nzest test payload key\n-----END PUBLIC KEY-----\n")

// measure extends a few PCRs in the SHA-256 and SHA-1 banks so quotes cover
// non-trivial values, and binds payloadPEM to PCR 16 in bank.
func measure(t testing.TB, tpm *quotetest.TPM, bank quote.Alg) {
	t.Helper()
	for _, pcr := range []int{0, 7, 10} {
		for _, b := range []quote.Alg{quote.AlgSHA1, quote.AlgSHA256} {
			h, _ := b.Hash()
			w := h.New()
			fmt.Fprintf(w, "event for PCR %d", pcr)
			if err := tpm.Extend(b, pcr, w.Sum(nil)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tpm.BindData(bank, payloadPEM); err != nil {
		t.Fatal(err)
	}
}

var schemes = []struct {
	kind quotetest.Kind
	hash quote.Alg
	sig  quote.Alg
}{
	{quotetest.RSASSA, quote.AlgSHA256, quote.AlgRSASSA},
	{quotetest.RSAPSS, quote.AlgSHA256, quote.AlgRSAPSS},
	{quotetest.ECDSAP256, quote.AlgSHA256, quote.AlgECDSA},
	{quotetest.ECDSAP384, quote.AlgSHA384, quote.AlgECDSA},
}

// TestSimulatorQuotes verifies real quotes from the reference TPM for each
// scheme, with the AK given as TPM2B_PUBLIC and as PEM, and cross-checks
// each quote and pcrblob with tpm2-tools' tpm2_checkquote.
func TestSimulatorQuotes(t *testing.T) {
	tpm := openTPM(t)
	for _, s := range schemes {
		t.Run(s.kind.String(), func(t *testing.T) {
			measure(t, tpm, s.hash)
			ak := newAK(t, tpm, s.kind, s.hash)
			nonce := []byte("0123456789abcdefghij")
			sel := quote.NewPCRSelection(s.hash, 0, 7, 10, 16)
			q, err := ak.Quote(nonce, sel)
			if err != nil {
				t.Fatal(err)
			}
			pemAK, err := quote.ParseAK(ak.PEM())
			if err != nil {
				t.Fatal(err)
			}
			for name, key := range map[string]*quote.AK{"tpm2b": ak.Key(), "pem": pemAK} {
				v, fl := quote.VerifyString(q.String(), key, quote.Options{Nonce: nonce, HashAlg: s.hash, Mask: 1<<10 | 1<<16, Data: payloadPEM})
				if v == nil {
					t.Fatalf("%s: %v", name, fl)
				}
				if v.SignAlg() != s.sig || v.HashAlg() != s.hash {
					t.Errorf("%s: scheme %v/%v", name, v.SignAlg(), v.HashAlg())
				}
			}
			// Values must be what the TPM reports.
			lists, err := tpm.ReadPCRs([]quote.PCRSelection{sel})
			if err != nil {
				t.Fatal(err)
			}
			v, _ := quote.VerifyString(q.String(), ak.Key(), quote.Options{Nonce: nonce})
			var want []string
			for _, l := range lists {
				for _, d := range l {
					want = append(want, hex.EncodeToString(d))
				}
			}
			var got []string
			for _, i := range sel.PCRs() {
				d, _ := v.PCR(s.hash, i)
				got = append(got, hex.EncodeToString(d))
			}
			if !slices.Equal(got, want) {
				t.Errorf("PCR values %v, TPM has %v", got, want)
			}
			if s.sig == quote.AlgRSAPSS {
				// tpm2_checkquote 5.4 verifies RSA quotes with PKCS#1 v1.5
				// padding only; check the PSS signature with openssl.
				opensslPSS(t, ak.PEM(), q)
			} else {
				checkquote(t, ak.PEM(), q, s.hash, nonce, v)
			}
			// Push model: the same quote as three parts.
			pq, err := quote.ParseParts(q.Parts())
			if err != nil {
				t.Fatal(err)
			}
			if _, fl := quote.Verify(pq, ak.Key(), quote.Options{Nonce: nonce}); fl != nil {
				t.Fatal(fl)
			}
		})
	}
}

var (
	bankRE = regexp.MustCompile(`^  (sha1|sha256|sha384|sha512):\s*$`)
	pcrRE  = regexp.MustCompile(`^\s+(\d+)\s*:\s*0x([0-9A-Fa-f]+)`)
)

// checkquote runs tpm2-tools' tpm2_checkquote on the quote and compares
// the PCR values it prints with Verified's.
func checkquote(t *testing.T, akPEM []byte, q *quotetest.Quote, hash quote.Alg, nonce []byte, v *quote.Verified) {
	t.Helper()
	bin, err := exec.LookPath("tpm2_checkquote")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tpm2_checkquote (Debian tpm2-tools) is required in CI")
		}
		t.Skip("tpm2_checkquote not installed")
	}
	dir := t.TempDir()
	files := map[string][]byte{"ak.pem": akPEM, "msg": q.Attest, "sig": q.Signature, "pcrs": q.PCRBlob}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-u", "ak.pem", "-m", "msg", "-s", "sig", "-f", "pcrs", "-g", hash.String(), "-q", hex.EncodeToString(nonce))
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tpm2_checkquote rejects the quote: %v\n%s", err, out)
	}
	// "pcrs:\n  sha256:\n    0 : 0x…\n  sha1:\n …" — compare every value printed.
	printed := 0
	bank := quote.Alg(0)
	for _, line := range strings.Split(string(out), "\n") {
		if m := bankRE.FindStringSubmatch(line); m != nil {
			bank, _ = quote.ParseAlg(m[1])
			continue
		}
		m := pcrRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		printed++
		var i int
		fmt.Sscan(m[1], &i)
		d, ok := v.PCR(bank, i)
		if !ok || !strings.EqualFold(hex.EncodeToString(d), m[2]) {
			t.Errorf("%v PCR %d: tpm2_checkquote says %s, zest %x", bank, i, m[2], d)
		}
	}
	total := 0
	for _, b := range v.Banks() {
		total += len(v.PCRs(b))
	}
	if printed != total {
		t.Errorf("tpm2_checkquote printed %d PCRs, zest verified %d:\n%s", printed, total, out)
	}
	// The negative: tpm2_checkquote must reject another nonce too.
	cmd = exec.Command(bin, "-u", "ak.pem", "-m", "msg", "-s", "sig", "-f", "pcrs", "-g", hash.String(), "-q", "00")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("tpm2_checkquote accepts a wrong nonce:\n%s", out)
	}
}

// opensslPSS verifies an RSAPSS quote signature with openssl (salt = hash
// length, as the reference TPM signs).
func opensslPSS(t *testing.T, akPEM []byte, q *quotetest.Quote) {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("openssl is required in CI")
		}
		t.Skip("openssl not installed")
	}
	sig, err := quote.ParseSignature(q.Signature)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for n, b := range map[string][]byte{"ak.pem": akPEM, "msg": q.Attest, "sig": sig.RSA} {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, msg := range []string{"msg", "ak.pem"} {
		cmd := exec.Command(bin, "dgst", "-"+sig.Hash.String(), "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest", "-verify", "ak.pem", "-signature", "sig", msg)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if ok := err == nil; ok != (msg == "msg") {
			t.Errorf("openssl PSS verify of %s: %v\n%s", msg, err, out)
		}
	}
}

// TestSimulatorTamper runs the exhaustive single-byte tamper table over
// real RSASSA and ECDSA quotes.
func TestSimulatorTamper(t *testing.T) {
	tpm := openTPM(t)
	measure(t, tpm, quote.AlgSHA256)
	for _, k := range []quotetest.Kind{quotetest.RSASSA, quotetest.ECDSAP256} {
		ak := newAK(t, tpm, k, quote.AlgSHA256)
		nonce := []byte("tamper-nonce-0123456")
		q, err := ak.Quote(nonce, quote.NewPCRSelection(quote.AlgSHA256, 0, 7, 10, 16))
		if err != nil {
			t.Fatal(err)
		}
		runTamper(t, tamperCase{name: k.String(), attest: q.Attest, sig: q.Signature, pcrblb: q.PCRBlob, nonce: nonce, ak: ak.Key(), opts: quote.Options{Data: payloadPEM}})
	}
}

func TestSimulatorMultiBank(t *testing.T) {
	tpm := openTPM(t)
	measure(t, tpm, quote.AlgSHA256)
	ak := newAK(t, tpm, quotetest.RSASSA, quote.AlgSHA256)
	nonce := []byte("multi-bank")
	// 12 values: more than one TPML_DIGEST (8 per TPM2_PCR_Read).
	sels := []quote.PCRSelection{
		quote.NewPCRSelection(quote.AlgSHA256, 0, 1, 2, 3, 4, 5, 6, 7, 10, 16),
		quote.NewPCRSelection(quote.AlgSHA1, 7, 10),
	}
	q, err := ak.Quote(nonce, sels...)
	if err != nil {
		t.Fatal(err)
	}
	blob, err := quote.ParsePCRBlob(q.PCRBlob)
	if err != nil {
		t.Fatal(err)
	}
	if len(blob.Lists) < 2 {
		t.Errorf("expected several TPML_DIGEST lists, got %d", len(blob.Lists))
	}
	v, fl := quote.VerifyString(q.String(), ak.Key(), quote.Options{Nonce: nonce, Data: payloadPEM, Mask: 0xff | 1<<10})
	if v == nil {
		t.Fatal(fl)
	}
	if !slices.Equal(v.Banks(), []quote.Alg{quote.AlgSHA256, quote.AlgSHA1}) || len(v.PCRs(quote.AlgSHA1)) != 2 || len(v.PCRs(quote.AlgSHA256)) != 10 {
		t.Errorf("banks %v", v.Banks())
	}
	if d, _ := v.PCR(quote.AlgSHA1, 10); len(d) != 20 {
		t.Errorf("SHA-1 PCR 10 is %d bytes", len(d))
	}
	checkquote(t, ak.PEM(), q, quote.AlgSHA256, nonce, v)
	// The mask refers to the signature-hash bank unless Bank says otherwise.
	if _, fl := quote.VerifyString(q.String(), ak.Key(), quote.Options{Nonce: nonce, Bank: quote.AlgSHA1, Mask: 1 << 0}); !hasCheck(fl, failure.PCRMissing, "requested_pcrs") {
		t.Errorf("SHA-1 bank PCR 0 requested: %v", checks(fl))
	}
}

// mintPair returns two consecutive quotes from one AK.
func mintPair(t *testing.T, tpm *quotetest.TPM, ak *quotetest.AK, sel quote.PCRSelection) (q1, q2 *quotetest.Quote) {
	t.Helper()
	q1, err := ak.Quote([]byte("n1"), sel)
	if err != nil {
		t.Fatal(err)
	}
	// The simulator's clock advances in real milliseconds.
	for i := 0; ; i++ {
		q2, err = ak.Quote([]byte("n2"), sel)
		if err != nil {
			t.Fatal(err)
		}
		a1, _ := quote.ParseAttest(q1.Attest)
		a2, _ := quote.ParseAttest(q2.Attest)
		if a2.ClockInfo.Clock > a1.ClockInfo.Clock {
			return q1, q2
		}
		if i > 1000 {
			t.Fatal("simulator clock does not advance")
		}
	}
}

func clockOf(t *testing.T, q *quotetest.Quote) *quote.ClockInfo {
	a, err := quote.ParseAttest(q.Attest)
	if err != nil {
		t.Fatal(err)
	}
	return &a.ClockInfo
}

func TestSimulatorChecks(t *testing.T) {
	tpm := openTPM(t)
	measure(t, tpm, quote.AlgSHA256)
	ak := newAK(t, tpm, quotetest.RSASSA, quote.AlgSHA256)
	otherAK := newAK(t, tpm, quotetest.RSAPSS, quote.AlgSHA256)
	pssQ, err := otherAK.Quote([]byte("n1"), quote.NewPCRSelection(quote.AlgSHA256, 10, 15, 16))
	if err != nil {
		t.Fatal(err)
	}
	otherAK.Close()
	eccAK := newAK(t, tpm, quotetest.ECDSAP256, quote.AlgSHA256)
	eccAK.Close()
	sha1AK := newAK(t, tpm, quotetest.RSASSA, quote.AlgSHA1)
	sel := quote.NewPCRSelection(quote.AlgSHA256, 10, 15, 16)
	q1, q2 := mintPair(t, tpm, ak, sel)
	sha1Q, err := sha1AK.Quote([]byte("n1"), quote.NewPCRSelection(quote.AlgSHA1, 10))
	if err != nil {
		t.Fatal(err)
	}
	sha1AK.Close()
	noPCR16, err := ak.Quote([]byte("n1"), quote.NewPCRSelection(quote.AlgSHA256, 10))
	if err != nil {
		t.Fatal(err)
	}

	noPCRs, err := ak.Quote([]byte("n1"), quote.NewPCRSelection(quote.AlgSHA256))
	if err != nil {
		t.Fatal(err)
	}

	// Relabel: PCRs 15 and 16 swapped indices cannot be expressed, but a
	// pcrblob claiming {10,14,16} with the same three values keeps the
	// digest valid; only the selection cross-check catches it.
	relabeled := func() string {
		b, _ := quote.ParsePCRBlob(q1.PCRBlob)
		blob, err := quote.MarshalPCRBlobLists([]quote.PCRSelection{quote.NewPCRSelection(quote.AlgSHA256, 10, 14, 16)}, b.Lists)
		if err != nil {
			t.Fatal(err)
		}
		return quote.String(q1.Attest, q1.Signature, blob)
	}()

	// An AK public area whose attributes lack restricted (0x00010000):
	// same key, so only the attribute check can fail.
	unrestricted := func() *quote.AK {
		pub := ak.Public()
		pub[2+4+1] &^= 0x01 // objectAttributes byte 1 (bits 16..23)
		k, err := quote.ParseAK(pub)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}()

	// The TPM computes qualifiedSigner itself: QN of a primary key in the
	// endorsement hierarchy.
	akName, err := ak.Key().Name()
	if err != nil {
		t.Fatal(err)
	}
	qn, err := quote.QualifiedName(quote.HierarchyQN(quote.RHEndorsement), akName)
	if err != nil {
		t.Fatal(err)
	}
	ownerQN, _ := quote.QualifiedName(quote.HierarchyQN(quote.RHOwner), akName)

	tests := []struct {
		name  string
		quote string
		ak    *quote.AK
		opts  quote.Options
		want  []string // id/check of every failure, in order; nil = verifies
	}{
		{"ok", q1.String(), ak.Key(), quote.Options{Nonce: []byte("n1"), Data: payloadPEM}, nil},
		{"pcr selection relabeled", relabeled, ak.Key(), quote.Options{Nonce: []byte("n1")}, []string{failure.QuoteInvalid + "/pcr_selection"}},
		{"wrong AK", q1.String(), otherAK.Key(), quote.Options{Nonce: []byte("n1")}, []string{failure.QuoteInvalid + "/signature"}},
		{"ECC AK for an RSA quote", q1.String(), eccAK.Key(), quote.Options{Nonce: []byte("n1")}, []string{failure.QuoteInvalid + "/signature"}},
		{"unrestricted AK", q1.String(), unrestricted, quote.Options{Nonce: []byte("n1")}, []string{failure.QuoteInvalid + "/ak_attributes"}},
		{"unrestricted AK allowed", q1.String(), unrestricted, quote.Options{Nonce: []byte("n1"), AllowAKAttributes: true}, nil},
		{"replayed quote (stale nonce)", q1.String(), ak.Key(), quote.Options{Nonce: []byte("n2")}, []string{failure.QuoteInvalid + "/nonce"}},
		{"clock advances", q2.String(), ak.Key(), quote.Options{Nonce: []byte("n2"), Previous: clockOf(t, q1)}, nil},
		{"clock regression", q1.String(), ak.Key(), quote.Options{Nonce: []byte("n1"), Previous: clockOf(t, q2)}, []string{failure.QuoteInvalid + "/clock"}},
		{"same quote twice", q1.String(), ak.Key(), quote.Options{Nonce: []byte("n1"), Previous: clockOf(t, q1)}, []string{failure.QuoteInvalid + "/clock"}},
		{"restartCount regression", q1.String(), ak.Key(), quote.Options{Nonce: []byte("n1"), Previous: func() *quote.ClockInfo {
			c := *clockOf(t, q1)
			c.Clock, c.RestartCount = 0, c.RestartCount+1
			return &c
		}()}, []string{failure.QuoteInvalid + "/restart_count"}},
		{"safe flag clear in baseline is irrelevant", q2.String(), ak.Key(), quote.Options{Nonce: []byte("n2"), Previous: func() *quote.ClockInfo {
			c := *clockOf(t, q1)
			c.Safe = false
			return &c
		}()}, nil},
		{"PCR 16 binds other data", q1.String(), ak.Key(), quote.Options{Nonce: []byte("n1"), Data: []byte("another key")}, []string{failure.InvalidPCR(16) + "/data_pcr"}},
		{"PCR 16 not quoted", noPCR16.String(), ak.Key(), quote.Options{Nonce: []byte("n1"), Data: payloadPEM, Mask: 1<<10 | 1<<16}, []string{failure.PCR16Missing + "/data_pcr"}},
		{"requested PCR not quoted", noPCR16.String(), ak.Key(), quote.Options{Nonce: []byte("n1"), Mask: 1<<0 | 1<<10}, []string{failure.PCRMissing + "/requested_pcrs"}},
		{"agent reports another hash", q1.String(), ak.Key(), quote.Options{Nonce: []byte("n1"), HashAlg: quote.AlgSHA384}, []string{failure.QuoteHashAlg + "/hash_alg_mismatch"}},
		{"SHA-1 refused by default", sha1Q.String(), sha1AK.Key(), quote.Options{Nonce: []byte("n1")}, []string{failure.QuoteHashAlg + "/hash_alg"}},
		{"SHA-1 with AllowSHA1", sha1Q.String(), sha1AK.Key(), quote.Options{Nonce: []byte("n1"), AllowSHA1: true}, nil},
		{"SHA-1 listed but not allowed", sha1Q.String(), sha1AK.Key(), quote.Options{Nonce: []byte("n1"), Hashes: []quote.Alg{quote.AlgSHA1}}, []string{failure.QuoteHashAlg + "/hash_alg"}},
		{"RSAPSS not accepted", pssQ.String(), otherAK.Key(), quote.Options{Nonce: []byte("n1"), SignAlgs: []quote.Alg{quote.AlgRSASSA}}, []string{quote.EventInvalidSignAlg + "/sign_alg"}},
		{"qualified signer", q1.String(), ak.Key(), quote.Options{Nonce: []byte("n1"), QualifiedSigner: qn}, nil},
		{"qualified signer in another hierarchy", q1.String(), ak.Key(), quote.Options{Nonce: []byte("n1"), QualifiedSigner: ownerQN}, []string{failure.QuoteInvalid + "/qualified_signer"}},
		{"quote covers no PCRs", noPCRs.String(), ak.Key(), quote.Options{Nonce: []byte("n1")}, []string{failure.QuoteInvalid + "/pcr_selection"}},
		{"malformed", "r" + q1.String()[1:20], ak.Key(), quote.Options{Nonce: []byte("n1")}, []string{failure.QuoteMalformed + "/parse"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, fl := quote.VerifyString(tt.quote, tt.ak, tt.opts)
			if got := checks(fl); !slices.Equal(got, tt.want) {
				t.Errorf("failures %v, want %v", got, tt.want)
			}
			if (v != nil) != (tt.want == nil) {
				t.Errorf("verified = %v with failures %v", v != nil, checks(fl))
			}
			for _, f := range fl {
				if f.Message == "" || !strings.HasSuffix(f.Message, ".") {
					t.Errorf("failure message %q is not a sentence", f.Message)
				}
			}
		})
	}
}

// TestSimulatorReboot: a TPM Reset between rounds is not a failure, but
// Verified says Rebooted so the caller restarts IMA and boot state; an
// older quote presented after the reboot is caught by resetCount.
func TestSimulatorReboot(t *testing.T) {
	tpm := openTPM(t)
	measure(t, tpm, quote.AlgSHA256)
	ak := newAK(t, tpm, quotetest.ECDSAP256, quote.AlgSHA256)
	sel := quote.NewPCRSelection(quote.AlgSHA256, 10, 16)
	before, err := ak.Quote([]byte("before"), sel)
	if err != nil {
		t.Fatal(err)
	}
	if err := tpm.Reboot(); err != nil {
		t.Fatal(err)
	}
	after, err := ak.Quote([]byte("after"), sel)
	if err != nil {
		t.Fatal(err)
	}
	c0, c1 := clockOf(t, before), clockOf(t, after)
	if c1.ResetCount != c0.ResetCount+1 || c1.RestartCount != 0 {
		t.Fatalf("reboot: clock info %+v then %+v", c0, c1)
	}
	v, fl := quote.VerifyString(after.String(), ak.Key(), quote.Options{Nonce: []byte("after"), Previous: c0})
	if v == nil {
		t.Fatalf("quote after reboot: %v (clock %+v after %+v)", checks(fl), c1, c0)
	}
	if !v.Rebooted() {
		t.Error("Rebooted() is false after a TPM Reset")
	}
	if d, _ := v.PCR(quote.AlgSHA256, 10); !bytes.Equal(d, make([]byte, 32)) {
		t.Errorf("PCR 10 after reboot = %x, want zero", d)
	}
	// Data binding was reset with the PCRs.
	if _, fl := quote.VerifyString(after.String(), ak.Key(), quote.Options{Nonce: []byte("after"), Data: payloadPEM}); !hasCheck(fl, failure.InvalidPCR(16), "data_pcr") {
		t.Errorf("PCR 16 after reboot: %v", checks(fl))
	}
	// The pre-reboot quote presented after the reboot one.
	_, fl = quote.VerifyString(before.String(), ak.Key(), quote.Options{Nonce: []byte("before"), Previous: c1})
	if !hasCheck(fl, failure.QuoteInvalid, "reset_count") {
		t.Errorf("old quote after reboot: %v", checks(fl))
	}
	// Same AK across the reboot (primary keys derive from the seed).
	if !bytes.Equal(ak.Key().TPMPublic, mustAK(t, ak.Public()).TPMPublic) {
		t.Error("AK changed")
	}
	_ = sha256.New
	_ = base64.StdEncoding
}

func mustAK(t *testing.T, b []byte) *quote.AK {
	k, err := quote.ParseAK(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
