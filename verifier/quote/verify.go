package quote

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"slices"
	"strconv"

	"github.com/zest-attest/zest/verifier/failure"
)

// EventInvalidSignAlg is Keylime's event for a signature scheme outside
// accept_tpm_signing_algs (verifier/failure has no constant for it yet).
const EventInvalidSignAlg = "qoute_validation.invalid_sign_alg"

// DataPCR is the PCR Keylime agents bind their payload public key to.
const DataPCR = 16

// Defaults when Options leaves the lists nil: Keylime's default
// accept_tpm_hash_algs (SHA-1 only with AllowSHA1) and the schemes zest
// verifies.
var (
	DefaultHashes   = []Alg{AlgSHA256, AlgSHA384, AlgSHA512}
	DefaultSignAlgs = []Alg{AlgRSASSA, AlgRSAPSS, AlgECDSA}
)

// Options says what a quote must satisfy. The zero value is strict except
// that it requires a Nonce, which every caller must supply.
type Options struct {
	// Nonce is the qualifying data the verifier asked for, compared
	// byte-for-byte with TPMS_ATTEST.extraData: the nonce string's bytes in
	// pull mode, the base64-decoded challenge in push mode. Required.
	Nonce []byte
	// HashAlg, when set, is the hash algorithm the agent reported
	// (Keylime's hash_alg); the signature must use it.
	HashAlg Alg
	// Hashes are the accepted signature hash algorithms; nil means
	// DefaultHashes. SHA-1 is decided by AllowSHA1 alone: refused unless it
	// is set (even if listed), accepted when it is.
	Hashes    []Alg
	AllowSHA1 bool
	// SignAlgs are the accepted signature schemes; nil means
	// DefaultSignAlgs.
	SignAlgs []Alg
	// Bank is the PCR bank Mask and Data refer to; zero means the
	// signature's hash algorithm (Keylime agents quote their hash_alg bank).
	Bank Alg
	// Mask lists PCRs (bit i = PCR i, Keylime's mask) that must be quoted
	// in Bank.
	Mask uint32
	// Data, when non-nil, is bound to PCR 16: the quoted Bank's PCR 16 must
	// equal H(0…0 || H(Data)) (rust-keylime resets PCR 16 and extends the
	// hash of its payload public key PEM). An empty non-nil slice binds
	// the empty string.
	Data []byte
	// QualifiedSigner, when set, must equal TPMS_ATTEST.qualifiedSigner:
	// the AK's Qualified Name (see QualifiedName), which binds the quote to
	// the AK's place in the TPM's key hierarchy (e.g. under the EK).
	QualifiedSigner []byte
	// Previous is the clock information of the last successful round; nil
	// skips the monotonicity checks (first round).
	Previous *ClockInfo
	// AllowAKAttributes accepts an AK whose TPM attributes are not those of
	// an attestation key (see AK.CheckAttributes).
	AllowAKAttributes bool
}

// Verified is a quote that passed every check of Verify. Only Verify
// builds one; its accessors return copies.
type Verified struct {
	hashAlg         Alg
	signAlg         Alg
	nonce           []byte
	clock           ClockInfo
	firmwareVersion uint64
	qualifiedSigner []byte
	selection       []PCRSelection
	pcrs            map[Alg]map[int][]byte
	rebooted        bool
}

// HashAlg is the signature (and pcrDigest) hash algorithm.
func (v *Verified) HashAlg() Alg { return v.hashAlg }

// SignAlg is the signature scheme.
func (v *Verified) SignAlg() Alg { return v.signAlg }

// Nonce is the qualifying data the quote was made over.
func (v *Verified) Nonce() []byte { return bytes.Clone(v.nonce) }

// ClockInfo is the TPM clock information; store it as the next round's
// Options.Previous.
func (v *Verified) ClockInfo() ClockInfo { return v.clock }

// FirmwareVersion is TPMS_ATTEST.firmwareVersion.
func (v *Verified) FirmwareVersion() uint64 { return v.firmwareVersion }

// QualifiedSigner is the signing key's Qualified Name (not its Name).
func (v *Verified) QualifiedSigner() []byte { return bytes.Clone(v.qualifiedSigner) }

// Rebooted reports that resetCount increased since Options.Previous: the
// machine rebooted, so IMA and measured-boot state must start over.
func (v *Verified) Rebooted() bool { return v.rebooted }

// Selection is the quoted PCR selection.
func (v *Verified) Selection() []PCRSelection {
	out := make([]PCRSelection, len(v.selection))
	for i, s := range v.selection {
		out[i] = PCRSelection{Hash: s.Hash, Select: bytes.Clone(s.Select)}
	}
	return out
}

// Banks lists the quoted banks in selection order.
func (v *Verified) Banks() []Alg {
	var out []Alg
	for _, s := range v.selection {
		if !slices.Contains(out, s.Hash) {
			out = append(out, s.Hash)
		}
	}
	return out
}

// PCR is the quoted value of one PCR.
func (v *Verified) PCR(bank Alg, index int) ([]byte, bool) {
	d, ok := v.pcrs[bank][index]
	return bytes.Clone(d), ok
}

// PCRs is a copy of one bank's quoted values by PCR index.
func (v *Verified) PCRs(bank Alg) map[int][]byte {
	out := make(map[int][]byte, len(v.pcrs[bank]))
	for i, d := range v.pcrs[bank] {
		out[i] = bytes.Clone(d)
	}
	return out
}

// MarshalJSON renders the verified facts:
// {"hash_alg","sign_alg","nonce"(hex),"clock_info","firmware_version",
// "rebooted","pcrs":{"sha256":{"16":"hex"}}}.
func (v *Verified) MarshalJSON() ([]byte, error) {
	pcrs := map[string]map[string]string{}
	for bank, m := range v.pcrs {
		bm := map[string]string{}
		for i, d := range m {
			bm[strconv.Itoa(i)] = hex.EncodeToString(d)
		}
		pcrs[bank.String()] = bm
	}
	return json.Marshal(struct {
		HashAlg         Alg                          `json:"hash_alg"`
		SignAlg         Alg                          `json:"sign_alg"`
		Nonce           string                       `json:"nonce"`
		ClockInfo       ClockInfo                    `json:"clock_info"`
		FirmwareVersion uint64                       `json:"firmware_version"`
		Rebooted        bool                         `json:"rebooted"`
		PCRs            map[string]map[string]string `json:"pcrs"`
	}{v.hashAlg, v.signAlg, hex.EncodeToString(v.nonce), v.clock, v.firmwareVersion, v.rebooted, pcrs})
}

// VerifyString parses a Keylime quote string and verifies it; a parse error
// is reported as MalformedFailure.
func VerifyString(s string, ak *AK, opts Options) (*Verified, failure.List) {
	q, err := Parse(s)
	if err != nil {
		return nil, failure.List{MalformedFailure(err)}
	}
	return Verify(q, ak, opts)
}

// Verify checks q against the attestation key and opts. It returns a
// non-nil *Verified only when every check passed; otherwise every failure
// found, each with a Keylime event id and the check in Context["check"].
func Verify(q *Quote, ak *AK, opts Options) (*Verified, failure.List) {
	var fl failure.List
	if q == nil || q.Attest == nil || q.Signature == nil || q.PCRBlob == nil {
		fl.Errorf(failure.QuoteMalformed, map[string]any{"check": "parse"}, "No parsed quote to verify.")
		return nil, fl
	}
	if ak == nil || ak.Key == nil {
		fl.Errorf(failure.QuoteNoPubkey, map[string]any{"check": "ak"}, "No attestation key to verify the quote against.")
		return nil, fl
	}
	a, sig, blob := q.Attest, q.Signature, q.PCRBlob
	reject := func(id, check string, ctx map[string]any, format string, args ...any) {
		if ctx == nil {
			ctx = map[string]any{}
		}
		ctx["check"] = check
		fl.Rejectf(id, ctx, format, args...)
	}

	if !opts.AllowAKAttributes {
		if err := ak.CheckAttributes(); err != nil {
			reject(failure.QuoteInvalid, "ak_attributes", map[string]any{"attributes": fmt.Sprintf("0x%08x", ak.Attributes)}, "The attestation key is not a restricted signing key: %v.", err)
		}
	}

	// Algorithms.
	signAlgs := opts.SignAlgs
	if signAlgs == nil {
		signAlgs = DefaultSignAlgs
	}
	hashes := opts.Hashes
	if hashes == nil {
		hashes = DefaultHashes
	}
	hashOK := slices.Contains(hashes, sig.Hash)
	if sig.Hash == AlgSHA1 {
		hashOK = opts.AllowSHA1
	}
	if _, ok := sig.Hash.Hash(); !ok {
		hashOK = false
	}
	if !slices.Contains(signAlgs, sig.Alg) {
		reject(EventInvalidSignAlg, "sign_alg", map[string]any{"sign_alg": sig.Alg.String(), "accepted": algNamesOf(signAlgs)}, "The quote is signed with %v, which is not accepted.", sig.Alg)
	}
	if !hashOK {
		reject(failure.QuoteHashAlg, "hash_alg", map[string]any{"hash_alg": sig.Hash.String(), "accepted": algNamesOf(hashes), "allow_sha1": opts.AllowSHA1}, "The quote signature uses hash %v, which is not accepted.", sig.Hash)
	}
	if opts.HashAlg != 0 && opts.HashAlg != sig.Hash {
		reject(failure.QuoteHashAlg, "hash_alg_mismatch", map[string]any{"expected": opts.HashAlg.String(), "got": sig.Hash.String()}, "The quote was expected to use %v but used %v.", opts.HashAlg, sig.Hash)
	}

	// Signature over the raw TPMS_ATTEST.
	if hashOK {
		if err := verifySignature(ak, sig, q.AttestBytes); err != nil {
			reject(failure.QuoteInvalid, "signature", map[string]any{"sign_alg": sig.Alg.String(), "hash_alg": sig.Hash.String()}, "The quote signature does not verify with the attestation key: %v.", err)
		}
	}

	// Header.
	if a.Magic != GeneratedValue {
		reject(failure.QuoteInvalid, "magic", map[string]any{"got": fmt.Sprintf("0x%08x", a.Magic)}, "TPMS_ATTEST magic is 0x%08x, not TPM_GENERATED_VALUE 0xff544347.", a.Magic)
	}
	if a.Type != TypeQuote {
		reject(failure.QuoteInvalid, "type", map[string]any{"got": fmt.Sprintf("0x%04x", a.Type)}, "TPMS_ATTEST type is 0x%04x, not TPM_ST_ATTEST_QUOTE 0x8018.", a.Type)
		return nil, fl
	}

	if opts.QualifiedSigner != nil && !bytes.Equal(opts.QualifiedSigner, a.QualifiedSigner) {
		reject(failure.QuoteInvalid, "qualified_signer", map[string]any{"expected": hex.EncodeToString(opts.QualifiedSigner), "got": hex.EncodeToString(a.QualifiedSigner)}, "The quote's qualifiedSigner is not the expected Qualified Name of the attestation key.")
	}

	// Freshness.
	if len(opts.Nonce) == 0 {
		fl.Errorf(failure.QuoteInvalid, map[string]any{"check": "nonce"}, "No nonce was given to check the quote's freshness against.")
	} else if subtle.ConstantTimeCompare(opts.Nonce, a.ExtraData) != 1 {
		reject(failure.QuoteInvalid, "nonce", map[string]any{"expected": hex.EncodeToString(opts.Nonce), "got": hex.EncodeToString(a.ExtraData)}, "The quote's extraData is not the nonce that was sent.")
	}

	// PCR selection: the signed one must be exactly the one the blob claims,
	// since pcrDigest covers values, not indices.
	if !sameSelection(a.PCRSelect, blob.Selection) {
		reject(failure.QuoteInvalid, "pcr_selection", map[string]any{"quoted": selectionStrings(a.PCRSelect), "pcrblob": selectionStrings(blob.Selection)}, "The PCR selection in the pcrblob differs from the signed selection.")
	}
	pcrs, valuesOK := mapValues(blob, &fl)
	quoted := 0
	for _, s := range a.PCRSelect {
		quoted += len(s.PCRs())
	}
	if quoted == 0 {
		reject(failure.QuoteInvalid, "pcr_selection", nil, "The quote covers no PCRs.")
	}
	if valuesOK && hashOK {
		got := digest(sig.Hash, blob.Values()...)
		if !bytes.Equal(got, a.PCRDigest) {
			reject(failure.QuoteInvalid, "pcr_digest", map[string]any{"expected": hex.EncodeToString(a.PCRDigest), "computed": hex.EncodeToString(got), "hash_alg": sig.Hash.String()}, "The PCR values in the pcrblob do not hash to the signed pcrDigest.")
		}
	}

	// Requested PCRs.
	bank := opts.Bank
	if bank == 0 {
		bank = sig.Hash
	}
	// With an unaccepted signature hash and no explicit bank there is no
	// bank to check Mask and Data in; the hash failure already rejects.
	bankKnown := opts.Bank != 0 || hashOK
	// Without a consistent value list there are no PCR values to check.
	bankKnown = bankKnown && valuesOK
	if opts.Mask != 0 && bankKnown {
		var missing []int
		for i := 0; i < 32; i++ {
			if opts.Mask&(1<<i) == 0 || (i == DataPCR && opts.Data != nil) {
				continue
			}
			if _, ok := pcrs[bank][i]; !ok {
				missing = append(missing, i)
			}
		}
		if len(missing) > 0 {
			reject(failure.PCRMissing, "requested_pcrs", map[string]any{"bank": bank.String(), "data": missing, "mask": fmt.Sprintf("0x%x", opts.Mask)}, "Requested PCRs %v are not in the quote's %v bank.", missing, bank)
		}
	}

	// Clock.
	rebooted := checkClock(a.ClockInfo, opts.Previous, reject)

	// PCR 16 data binding.
	if opts.Data != nil && bankKnown {
		checkData(bank, pcrs, opts.Data, &fl)
	}

	if len(fl) > 0 {
		return nil, fl
	}
	// Copy everything: the caller still holds q and must not be able to
	// change what was verified.
	v := &Verified{
		hashAlg:         sig.Hash,
		signAlg:         sig.Alg,
		nonce:           bytes.Clone(a.ExtraData),
		clock:           a.ClockInfo,
		firmwareVersion: a.FirmwareVersion,
		qualifiedSigner: bytes.Clone(a.QualifiedSigner),
		pcrs:            make(map[Alg]map[int][]byte, len(pcrs)),
		rebooted:        rebooted,
	}
	for _, s := range a.PCRSelect {
		v.selection = append(v.selection, PCRSelection{Hash: s.Hash, Select: bytes.Clone(s.Select)})
	}
	for bank, m := range pcrs {
		c := make(map[int][]byte, len(m))
		for i, d := range m {
			c[i] = bytes.Clone(d)
		}
		v.pcrs[bank] = c
	}
	return v, nil
}

func verifySignature(ak *AK, sig *Signature, attest []byte) error {
	h, _ := sig.Hash.Hash()
	d := digest(sig.Hash, attest)
	switch k := ak.Key.(type) {
	case *rsa.PublicKey:
		switch sig.Alg {
		case AlgRSASSA:
			return rsa.VerifyPKCS1v15(k, h, d, sig.RSA)
		case AlgRSAPSS:
			// The reference TPM uses salt = hLen, but the spec allows the
			// maximum; detect it.
			return rsa.VerifyPSS(k, h, d, sig.RSA, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto, Hash: h})
		}
	case *ecdsa.PublicKey:
		if sig.Alg == AlgECDSA {
			r, s := new(big.Int).SetBytes(sig.R), new(big.Int).SetBytes(sig.S)
			if !ecdsa.Verify(k, d, r, s) {
				return fmt.Errorf("ECDSA verification failed")
			}
			return nil
		}
	default:
		return fmt.Errorf("unsupported key type %T", ak.Key)
	}
	return fmt.Errorf("a %v signature cannot come from a %s key", sig.Alg, keyKind(ak.Key))
}

func keyKind(k any) string {
	if _, ok := k.(*rsa.PublicKey); ok {
		return "RSA"
	}
	return "ECC"
}

func sameSelection(a, b []PCRSelection) bool {
	return slices.EqualFunc(a, b, PCRSelection.equal)
}

func selectionStrings(sels []PCRSelection) []string {
	out := make([]string, len(sels))
	for i, s := range sels {
		out[i] = fmt.Sprintf("%v:%v(sizeofSelect=%d)", s.Hash, s.PCRs(), len(s.Select))
	}
	return out
}

func algNamesOf(algs []Alg) []string {
	out := make([]string, len(algs))
	for i, a := range algs {
		out[i] = a.String()
	}
	return out
}

// mapValues assigns the blob's values to (bank, PCR) in selection order.
func mapValues(blob *PCRBlob, fl *failure.List) (map[Alg]map[int][]byte, bool) {
	values := blob.Values()
	pcrs := map[Alg]map[int][]byte{}
	n := 0
	ok := true
	for _, s := range blob.Selection {
		size := s.Hash.DigestSize()
		if size == 0 {
			fl.Rejectf(failure.QuoteInvalid, map[string]any{"check": "pcr_bank", "bank": s.Hash.String()}, "The quote selects PCR bank %v, which is not a known hash algorithm.", s.Hash)
			ok = false
		}
		if _, dup := pcrs[s.Hash]; dup {
			fl.Rejectf(failure.QuoteInvalid, map[string]any{"check": "pcr_selection", "bank": s.Hash.String()}, "The quote selects bank %v twice.", s.Hash)
			ok = false
		}
		m := map[int][]byte{}
		for _, i := range s.PCRs() {
			if n < len(values) {
				if size != 0 && len(values[n]) != size {
					fl.Rejectf(failure.QuoteInvalid, map[string]any{"check": "pcr_values", "bank": s.Hash.String(), "pcr": i, "size": len(values[n])}, "PCR %d of bank %v is %d bytes, not %d.", i, s.Hash, len(values[n]), size)
					ok = false
				}
				m[i] = values[n]
			}
			n++
		}
		pcrs[s.Hash] = m
	}
	if n != len(values) {
		fl.Rejectf(failure.QuoteInvalid, map[string]any{"check": "pcr_values", "selected": n, "values": len(values)}, "The pcrblob selects %d PCRs but carries %d values.", n, len(values))
		ok = false
	}
	if !ok {
		return map[Alg]map[int][]byte{}, false
	}
	return pcrs, true
}

// checkClock applies zest's clock rule (reference §10 P9, stricter and
// more reboot-aware than Keylime's check_quote_timing): safe must be set;
// resetCount must not decrease; without a reset restartCount must not
// decrease; clock must strictly increase in every case (Clock survives a TPM
// Reset and only goes backwards after a disorderly shutdown, which clears
// safe). It returns whether resetCount increased.
func checkClock(c ClockInfo, prev *ClockInfo, reject func(id, check string, ctx map[string]any, format string, args ...any)) bool {
	ctx := func() map[string]any {
		m := map[string]any{"clock_info": c}
		if prev != nil {
			m["previous"] = *prev
		}
		return m
	}
	if !c.Safe {
		reject(failure.QuoteInvalid, "clock_safe", ctx(), "The TPM clock's safe flag is clear: its clock may have gone backwards.")
	}
	if prev == nil {
		return false
	}
	switch {
	case c.ResetCount < prev.ResetCount:
		reject(failure.QuoteInvalid, "reset_count", ctx(), "The TPM resetCount decreased from %d to %d between rounds.", prev.ResetCount, c.ResetCount)
	case c.ResetCount == prev.ResetCount && c.RestartCount < prev.RestartCount:
		reject(failure.QuoteInvalid, "restart_count", ctx(), "The TPM restartCount decreased from %d to %d without a reset.", prev.RestartCount, c.RestartCount)
	}
	if c.Clock <= prev.Clock {
		reject(failure.QuoteInvalid, "clock", ctx(), "The TPM clock did not advance (%d ms after %d ms).", c.Clock, prev.Clock)
	}
	return c.ResetCount > prev.ResetCount
}

// checkData checks the PCR 16 binding in bank.
func checkData(bank Alg, pcrs map[Alg]map[int][]byte, data []byte, fl *failure.List) {
	if _, ok := bank.Hash(); !ok {
		fl.Errorf(failure.QuoteInvalidData, map[string]any{"check": "data_pcr", "bank": bank.String()}, "PCR %d cannot be computed in bank %v.", DataPCR, bank)
		return
	}
	got, ok := pcrs[bank][DataPCR]
	if !ok {
		fl.Rejectf(failure.PCR16Missing, map[string]any{"check": "data_pcr", "bank": bank.String()}, "PCR %d, which binds the agent's key, is not in the quote's %v bank.", DataPCR, bank)
		return
	}
	want := ExtendFromZero(bank, data)
	if !bytes.Equal(got, want) {
		fl.Rejectf(failure.InvalidPCR(DataPCR), map[string]any{"check": "data_pcr", "bank": bank.String(), "pcr": DataPCR, "expected": hex.EncodeToString(want), "got": hex.EncodeToString(got)}, "PCR %d does not bind the agent's key: it is not the extend of H(data) from zero.", DataPCR)
	}
}

// ExtendFromZero is H(0…0 || H(data)) in bank: a reset PCR extended once
// with the hash of data, as rust-keylime binds its payload key to PCR 16.
// bank must be a hash Go implements (Alg.Hash).
func ExtendFromZero(bank Alg, data []byte) []byte {
	return digest(bank, make([]byte, bank.DigestSize()), digest(bank, data))
}
