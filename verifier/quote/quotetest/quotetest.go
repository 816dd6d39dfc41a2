// Package quotetest mints real TPM 2.0 quotes for tests: a go-tpm-tools
// simulator (the Microsoft reference TPM compiled in), attestation keys
// created in it, and Keylime quote strings whose pcrblob is encoded the way
// tpm2-tools and rust-keylime encode it.
//
// The simulator is a process-wide singleton: Open blocks while another TPM
// from this package is open in the same process, so tests that use it in
// parallel serialize. It must not be imported by non-test code paths that
// run in production.
package quotetest

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"sort"
	"sync"

	"github.com/google/go-tpm-tools/simulator"
	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpmutil"

	"github.com/zest-attest/zest/verifier/quote"
)

// TPM is an open simulator. Its methods are safe for concurrent use.
type TPM struct {
	mu  sync.Mutex
	sim *simulator.Simulator
	gen int // bumped by Reboot; transient objects die with it
}

// Open starts a simulator with fresh random hierarchy seeds (kept across
// Reboot, so an AK is the same key before and after).
func Open() (*TPM, error) {
	sim, err := simulator.Get()
	if err != nil {
		return nil, fmt.Errorf("quotetest: start simulator: %w", err)
	}
	return &TPM{sim: sim}, nil
}

// Close shuts the simulator down and lets another Open proceed.
func (t *TPM) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sim.Close()
}

// Send implements go-tpm's transport.TPM, so callers can run any tpm2
// command against the simulator. It holds the TPM's lock.
func (t *TPM) Send(cmd []byte) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return tpmutil.RunCommandRaw(t.sim, cmd)
}

// Reboot performs an orderly TPM Reset (Shutdown(CLEAR), Startup(CLEAR)):
// resetCount increases, restartCount returns to 0, PCRs are cleared and
// transient keys are flushed (AKs are recreated on their next Quote).
func (t *TPM) Reboot() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.sim.Reset(); err != nil {
		return fmt.Errorf("quotetest: reboot: %w", err)
	}
	t.gen++
	return nil
}

func tpmHash(a quote.Alg) (tpm2.TPMIAlgHash, error) {
	switch a {
	case quote.AlgSHA1, quote.AlgSHA256, quote.AlgSHA384, quote.AlgSHA512:
		return tpm2.TPMIAlgHash(a), nil
	}
	return 0, fmt.Errorf("quotetest: %v is not a hash the simulator implements", a)
}

// Extend extends PCR pcr of bank with digest (TPM2_PCR_Extend).
func (t *TPM) Extend(bank quote.Alg, pcr int, digest []byte) error {
	h, err := tpmHash(bank)
	if err != nil {
		return err
	}
	_, err = tpm2.PCRExtend{
		PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(pcr), Auth: tpm2.PasswordAuth(nil)},
		Digests:   tpm2.TPMLDigestValues{Digests: []tpm2.TPMTHA{{HashAlg: h, Digest: digest}}},
	}.Execute(t)
	if err != nil {
		return fmt.Errorf("quotetest: extend PCR %d (%v): %w", pcr, bank, err)
	}
	return nil
}

// ResetPCR resets a PCR resettable from locality 0 (16 and 23 on PC
// clients) in every bank.
func (t *TPM) ResetPCR(pcr int) error {
	_, err := tpm2.PCRReset{PCRHandle: tpm2.AuthHandle{Handle: tpm2.TPMHandle(pcr), Auth: tpm2.PasswordAuth(nil)}}.Execute(t)
	if err != nil {
		return fmt.Errorf("quotetest: reset PCR %d: %w", pcr, err)
	}
	return nil
}

// BindData does what rust-keylime does before every quote: reset PCR 16
// and extend H(data) into it in bank.
func (t *TPM) BindData(bank quote.Alg, data []byte) error {
	h, ok := bank.Hash()
	if !ok {
		return fmt.Errorf("quotetest: bank %v has no Go hash", bank)
	}
	if err := t.ResetPCR(quote.DataPCR); err != nil {
		return err
	}
	w := h.New()
	w.Write(data)
	return t.Extend(bank, quote.DataPCR, w.Sum(nil))
}

func tpmSelection(sels []quote.PCRSelection) tpm2.TPMLPCRSelection {
	var l tpm2.TPMLPCRSelection
	for _, s := range sels {
		l.PCRSelections = append(l.PCRSelections, tpm2.TPMSPCRSelection{Hash: tpm2.TPMIAlgHash(s.Hash), PCRSelect: append([]byte(nil), s.Select...)})
	}
	return l
}

// ReadPCRs reads the selected PCRs the way tpm2-tools does (repeated
// TPM2_PCR_Read until the selection is exhausted) and returns one digest
// list per TPM2_PCR_Read, in selection order.
func (t *TPM) ReadPCRs(sels []quote.PCRSelection) ([][][]byte, error) {
	type key struct {
		bank quote.Alg
		pcr  int
	}
	got := map[key][]byte{}
	var lists [][]key
	remaining := make([]quote.PCRSelection, len(sels))
	for i, s := range sels {
		remaining[i] = quote.PCRSelection{Hash: s.Hash, Select: append([]byte(nil), s.Select...)}
	}
	for round := 0; ; round++ {
		left := 0
		for _, s := range remaining {
			left += len(s.PCRs())
		}
		if left == 0 {
			break
		}
		if round > 64 {
			return nil, fmt.Errorf("quotetest: PCR read did not converge")
		}
		rsp, err := tpm2.PCRRead{PCRSelectionIn: tpmSelection(remaining)}.Execute(t)
		if err != nil {
			return nil, fmt.Errorf("quotetest: PCR read: %w", err)
		}
		var list []key
		n := 0
		for _, out := range rsp.PCRSelectionOut.PCRSelections {
			s := quote.PCRSelection{Hash: quote.Alg(out.Hash), Select: out.PCRSelect}
			for _, p := range s.PCRs() {
				if n >= len(rsp.PCRValues.Digests) {
					return nil, fmt.Errorf("quotetest: PCR read returned fewer values than selected")
				}
				k := key{s.Hash, p}
				got[k] = rsp.PCRValues.Digests[n].Buffer
				list = append(list, k)
				n++
				for i := range remaining {
					if remaining[i].Hash == s.Hash && p/8 < len(remaining[i].Select) {
						remaining[i].Select[p/8] &^= 1 << (p % 8)
					}
				}
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("quotetest: PCR read returned nothing for %d selected PCRs", left)
		}
		lists = append(lists, list)
	}
	// tpm2-tools keeps the order the TPM returned; the TPM returns selection
	// order, which is what Keylime and tpm2_checkquote expect. Sort each
	// list into selection order to be safe.
	order := map[key]int{}
	for _, s := range sels {
		for _, p := range s.PCRs() {
			order[key{s.Hash, p}] = len(order)
		}
	}
	out := make([][][]byte, len(lists))
	for i, l := range lists {
		sort.SliceStable(l, func(a, b int) bool { return order[l[a]] < order[l[b]] })
		for _, k := range l {
			out[i] = append(out[i], got[k])
		}
	}
	return out, nil
}

// Kind is an AK key type and signature scheme.
type Kind int

const (
	RSASSA    Kind = iota // RSA-2048, RSASSA-PKCS1-v1_5
	RSAPSS                // RSA-2048, RSASSA-PSS
	ECDSAP256             // ECC NIST P-256, ECDSA
	ECDSAP384             // ECC NIST P-384, ECDSA
)

func (k Kind) String() string {
	return [...]string{"rsassa", "rsapss", "ecdsa-p256", "ecdsa-p384"}[k]
}

// AK is an attestation key in the simulator: a restricted signing primary
// key in the endorsement hierarchy (so clock and firmware fields are not
// obfuscated, like a Keylime AK under the EK).
type AK struct {
	tpm      *TPM
	template tpm2.TPMTPublic
	gen      int
	handle   tpm2.TPMHandle
	name     tpm2.TPM2BName
	public   []byte
	parsed   *quote.AK
}

// AKTemplate is the TPMT_PUBLIC of an attestation key of kind k signing
// with hash: fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|
// restricted|sign (0x00050072, Keylime's AK_EXPECTED_ATTRS).
func AKTemplate(k Kind, hash quote.Alg) (tpm2.TPMTPublic, error) {
	h, err := tpmHash(hash)
	if err != nil {
		return tpm2.TPMTPublic{}, err
	}
	attrs := tpm2.TPMAObject{FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true, UserWithAuth: true, Restricted: true, SignEncrypt: true}
	null := tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull}
	switch k {
	case RSASSA, RSAPSS:
		scheme := tpm2.TPMTRSAScheme{Scheme: tpm2.TPMAlgRSASSA, Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgRSASSA, &tpm2.TPMSSigSchemeRSASSA{HashAlg: h})}
		if k == RSAPSS {
			scheme = tpm2.TPMTRSAScheme{Scheme: tpm2.TPMAlgRSAPSS, Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgRSAPSS, &tpm2.TPMSSigSchemeRSAPSS{HashAlg: h})}
		}
		return tpm2.TPMTPublic{
			Type: tpm2.TPMAlgRSA, NameAlg: tpm2.TPMAlgSHA256, ObjectAttributes: attrs,
			Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, &tpm2.TPMSRSAParms{Symmetric: null, Scheme: scheme, KeyBits: 2048}),
			Unique:     tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{}),
		}, nil
	case ECDSAP256, ECDSAP384:
		curve := tpm2.TPMECCNistP256
		if k == ECDSAP384 {
			curve = tpm2.TPMECCNistP384
		}
		return tpm2.TPMTPublic{
			Type: tpm2.TPMAlgECC, NameAlg: tpm2.TPMAlgSHA256, ObjectAttributes: attrs,
			Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
				Symmetric: null,
				Scheme:    tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgECDSA, Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDSA, &tpm2.TPMSSigSchemeECDSA{HashAlg: h})},
				CurveID:   curve,
				KDF:       tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
			}),
			Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{}),
		}, nil
	}
	return tpm2.TPMTPublic{}, fmt.Errorf("quotetest: unknown AK kind %d", k)
}

// NewAK creates an attestation key of kind k whose scheme hashes with hash.
func (t *TPM) NewAK(k Kind, hash quote.Alg) (*AK, error) {
	tmpl, err := AKTemplate(k, hash)
	if err != nil {
		return nil, err
	}
	ak := &AK{tpm: t, template: tmpl, gen: -1}
	if err := ak.load(); err != nil {
		return nil, err
	}
	return ak, nil
}

// load (re)creates the primary key after NewAK or a Reboot. Primary keys
// derive from the hierarchy seed, so the key is the same every time.
func (ak *AK) load() error {
	ak.tpm.mu.Lock()
	gen := ak.tpm.gen
	ak.tpm.mu.Unlock()
	if gen == ak.gen {
		return nil
	}
	rsp, err := tpm2.CreatePrimary{
		PrimaryHandle: tpm2.TPMRHEndorsement,
		InPublic:      tpm2.New2B(ak.template),
	}.Execute(ak.tpm)
	if err != nil {
		return fmt.Errorf("quotetest: create AK: %w", err)
	}
	pub := tpm2.Marshal(rsp.OutPublic)
	if ak.public != nil && string(pub) != string(ak.public) {
		return fmt.Errorf("quotetest: AK changed across reboot")
	}
	parsed, err := quote.ParseAK(pub)
	if err != nil {
		return fmt.Errorf("quotetest: parse AK public: %w", err)
	}
	ak.handle, ak.name, ak.public, ak.parsed, ak.gen = rsp.ObjectHandle, rsp.Name, pub, parsed, gen
	return nil
}

// Close flushes the key from the TPM (the simulator holds only three
// loaded objects).
func (ak *AK) Close() error {
	ak.tpm.mu.Lock()
	gen := ak.tpm.gen
	ak.tpm.mu.Unlock()
	if gen != ak.gen {
		return nil // flushed by a reboot
	}
	ak.gen = -1
	if _, err := (tpm2.FlushContext{FlushHandle: ak.handle}).Execute(ak.tpm); err != nil {
		return fmt.Errorf("quotetest: flush AK: %w", err)
	}
	return nil
}

// Public is the AK's TPM2B_PUBLIC, as a Keylime registrar stores it in
// aik_tpm (base64 of these bytes).
func (ak *AK) Public() []byte { return append([]byte(nil), ak.public...) }

// Key is the AK parsed by quote.ParseAK.
func (ak *AK) Key() *quote.AK { return ak.parsed }

// PEM is the AK as a PEM SubjectPublicKeyInfo with a trailing newline.
func (ak *AK) PEM() []byte {
	der, err := x509.MarshalPKIXPublicKey(ak.parsed.Key)
	if err != nil {
		panic(err) // RSA and ECDSA keys always marshal
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// Quote is a quote as an agent sends it.
type Quote struct {
	Attest    []byte // TPMS_ATTEST
	Signature []byte // TPMT_SIGNATURE
	PCRBlob   []byte // tpm2-tools pcrblob
}

// String is the Keylime (pull model) quote string.
func (q *Quote) String() string { return quote.String(q.Attest, q.Signature, q.PCRBlob) }

// Parts are the push-model message, signature and subject_data.
func (q *Quote) Parts() (message, signature, subjectData string) {
	e := base64.StdEncoding
	return e.EncodeToString(q.Attest), e.EncodeToString(q.Signature), e.EncodeToString(q.PCRBlob)
}

// Quote has the TPM quote sels with nonce as qualifying data and reads the
// PCR values into a tpm2-tools pcrblob, as tpm2_quote and rust-keylime do.
func (ak *AK) Quote(nonce []byte, sels ...quote.PCRSelection) (*Quote, error) {
	if err := ak.load(); err != nil {
		return nil, err
	}
	rsp, err := tpm2.Quote{
		SignHandle:     tpm2.AuthHandle{Handle: ak.handle, Name: ak.name, Auth: tpm2.PasswordAuth(nil)},
		QualifyingData: tpm2.TPM2BData{Buffer: nonce},
		InScheme:       tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
		PCRSelect:      tpmSelection(sels),
	}.Execute(ak.tpm)
	if err != nil {
		return nil, fmt.Errorf("quotetest: quote: %w", err)
	}
	attest := rsp.Quoted.Bytes()
	parsed, err := quote.ParseAttest(attest)
	if err != nil {
		return nil, fmt.Errorf("quotetest: TPM returned an unparsable TPMS_ATTEST: %w", err)
	}
	// Read what the TPM actually quoted (it drops unimplemented PCRs).
	lists, err := ak.tpm.ReadPCRs(parsed.PCRSelect)
	if err != nil {
		return nil, err
	}
	blob, err := quote.MarshalPCRBlobLists(parsed.PCRSelect, lists)
	if err != nil {
		return nil, err
	}
	return &Quote{Attest: attest, Signature: tpm2.Marshal(rsp.Signature), PCRBlob: blob}, nil
}

// ExtendDigest is a convenience for tests: SHA-256 of s.
func ExtendDigest(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}
