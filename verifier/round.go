package verifier

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/zest-attest/zest/digests"
	"github.com/zest-attest/zest/digests/eventlog"
	"github.com/zest-attest/zest/verifier/failure"
	"github.com/zest-attest/zest/verifier/ima"
	"github.com/zest-attest/zest/verifier/mb"
	"github.com/zest-attest/zest/verifier/quote"
)

// MBPCRs are the PCRs measured boot covers (Keylime's MEASUREDBOOT_PCRS):
// 0-9 and 11-15. PCR 10 is IMA's and 16 the agent's data PCR.
var MBPCRs = []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 15}

// MaxMBLog bounds a UEFI event log (real ones are tens to hundreds of KB).
const MaxMBLog = 16 << 20

// Event ids of the round itself (the components add their own).
const (
	// IDNoPolicy: the round has nothing to evaluate (no policy at all).
	IDNoPolicy = "default.missing_policy"
	// IDMBNoLog: a measured-boot policy is set but the agent sent no log.
	IDMBNoLog = "measured_boot.missing_log"
	// IDNoIMAList: a runtime policy is set but no IMA list came.
	IDNoIMAList = "ima.validation.no_list"
)

// Policies are what one agent is checked against. A nil member is not
// evaluated; at least one must be set.
type Policies struct {
	// Runtime is the compiled IMA runtime policy (PCR 10).
	Runtime *ima.Policy
	// MB evaluates a verified UEFI event log (measured boot, PCRs 0-9, 11-15).
	MB MBEvaluator
	// TPM pins PCR values (Keylime's tpm_policy).
	TPM *TPMPolicy
}

// MBEvaluator evaluates an event log that has already been replayed
// against the quote. It is an interface so the verifier core does not fix
// the refstate format; verifier/mb provides the Keylime refstate one.
type MBEvaluator interface {
	EvaluateMB(v *eventlog.Verified) failure.List
}

// Mask is the PCR selection to request for these policies: the TPM policy's
// mask; PCR 10 and PCRs 0-9 for a runtime policy (so boot_aggregate is
// always checked against quoted values, which Keylime skips without a
// measured-boot log); every measured-boot PCR for an MB policy; and PCR 16
// when the agent's key is to be bound (withData).
func (p Policies) Mask(withData bool) uint32 {
	var m uint32
	if p.TPM != nil {
		m |= p.TPM.Mask
	}
	if p.Runtime != nil {
		m |= 1<<IMAPCR | 0x3ff
	}
	if p.MB != nil {
		for _, i := range MBPCRs {
			m |= 1 << i
		}
	}
	if withData {
		m |= 1 << DataPCR
	}
	return m
}

func (p Policies) empty() bool { return p.Runtime == nil && p.MB == nil && p.TPM == nil }

// Evidence is what an agent sent for one round. Everything in it is
// untrusted until Verify has checked it against the quote.
type Evidence struct {
	// Quote is the Keylime quote string r<attest>:<signature>:<pcrblob>.
	Quote string
	// HashAlg is the agent's reported hash_alg ("sha256"); the quote must
	// use it. Empty: not checked against a report.
	HashAlg string
	// IMAList is the ASCII IMA list from entry IMAStart; nil when none sent.
	IMAList  io.Reader
	IMAStart uint64
	// MBLog is the binary UEFI event log (binary_bios_measurements); nil
	// when none sent.
	MBLog []byte
}

// Challenge is what the verifier asked of the agent this round.
type Challenge struct {
	// Nonce is the qualifying data: the nonce string's bytes in pull mode,
	// the decoded challenge in push mode. Required.
	Nonce []byte
	// Mask is the PCR selection requested; zero means Policies.Mask.
	Mask uint32
	// Data, when non-nil, must be bound into PCR 16 (the agent's payload
	// key PEM in pull mode).
	Data []byte
}

// State is what one round of an agent hands to the next. The zero value is
// a first round. It is JSON so stores can keep it.
type State struct {
	// Clock is the TPM clock of the last verified quote.
	Clock *quote.ClockInfo `json:"clock,omitempty"`
	// IMA is where the IMA list continues.
	IMA ima.State `json:"ima"`
	// Rounds counts verified rounds since the last reboot or reset.
	Rounds uint64 `json:"rounds"`
}

// Options tune Verify. The zero value is strict.
type Options struct {
	// Quote algorithm lists; nil means the quote package's defaults.
	Hashes    []quote.Alg
	SignAlgs  []quote.Alg
	AllowSHA1 bool
	// AllowEventLogQuirks lets the UEFI log replay try the named quirks of
	// digests/eventlog when a clean replay does not match.
	AllowEventLogQuirks bool
	// AllowAKAttributes accepts an AK whose TPM attributes are not an AK's.
	AllowAKAttributes bool
	// Stateless skips the checks that need a previous round (clock
	// monotonicity), as /verify/evidence does.
	Stateless bool
}

// Result is the outcome of one round. Verdict is trusted only when every
// configured policy was evaluated and passed.
type Result struct {
	Verdict  failure.Verdict `json:"verdict"`
	Failures failure.List    `json:"failures"`
	// Next is the state for the next round of this agent.
	Next State `json:"state"`
	// Quote is the verified quote (nil when it did not verify).
	Quote *quote.Verified `json:"quote,omitempty"`
	// IMA is the IMA evaluation (nil when not evaluated).
	IMA *ima.Result `json:"ima,omitempty"`
	// MBPCRs lists the measured-boot PCRs the UEFI log was verified against.
	MBPCRs []int `json:"mb_pcrs,omitempty"`
	// Rebooted: the TPM was reset since the previous round.
	Rebooted bool `json:"rebooted,omitempty"`
}

// Verify evaluates one round: the quote against the AK and the challenge,
// then (only on a verified quote) the UEFI log, the IMA list and the PCR
// policy against the quoted PCRs. All failures are collected. A round with
// nothing verified is never trusted.
func Verify(ak *quote.AK, ch Challenge, ev Evidence, pol Policies, prev State, opts Options) *Result {
	res := &Result{Next: prev}
	fl := &res.Failures
	defer func() { res.Verdict = res.Failures.Verdict() }()
	if pol.empty() {
		fl.Errorf(IDNoPolicy, nil, "no runtime, measured-boot or TPM policy is configured: nothing to verify")
		return res
	}
	if ak == nil {
		fl.Errorf(failure.QuoteNoPubkey, nil, "no attestation key to verify the quote with")
		return res
	}
	if len(ch.Nonce) == 0 {
		fl.Errorf(failure.QuoteInvalid, map[string]any{"check": "nonce"}, "no nonce was issued for this round")
		return res
	}
	q, err := quote.Parse(ev.Quote)
	if err != nil {
		fl.Add(quote.MalformedFailure(err))
		return res
	}
	mask := ch.Mask
	if mask == 0 {
		mask = pol.Mask(ch.Data != nil)
	}
	qo := quote.Options{
		Nonce: ch.Nonce, Mask: mask, Data: ch.Data,
		Hashes: opts.Hashes, SignAlgs: opts.SignAlgs, AllowSHA1: opts.AllowSHA1,
		AllowAKAttributes: opts.AllowAKAttributes,
	}
	if ev.HashAlg != "" {
		a, err := quote.ParseAlg(ev.HashAlg)
		if err != nil {
			fl.Errorf(failure.QuoteHashAlg, map[string]any{"hash_alg": ev.HashAlg}, "the agent reports hash algorithm %q, which zest does not know", ev.HashAlg)
			return res
		}
		qo.HashAlg = a
	}
	if !opts.Stateless {
		qo.Previous = prev.Clock
	}
	v, qfl := quote.Verify(q, ak, qo)
	fl.Add(qfl...)
	if v == nil {
		if len(qfl) == 0 {
			fl.Errorf(failure.QuoteInvalid, nil, "the quote did not verify")
		}
		return res
	}
	res.Quote = v
	clock := v.ClockInfo()
	res.Next.Clock = &clock
	if v.Rebooted() {
		// A TPM reset starts a new boot: the IMA list starts over.
		res.Rebooted = true
		res.Next.IMA = ima.State{}
		res.Next.Rounds = 0
	}
	bank := v.HashAlg()
	dalg, err := digests.ParseAlgorithm(bank.String())
	if err != nil {
		fl.Errorf(failure.QuoteHashAlg, map[string]any{"hash_alg": bank.String()}, "quoted bank %s has no digest algorithm in zest", bank)
		return res
	}
	pcrs := v.PCRs(bank)

	// Measured boot: replay the UEFI log against the quoted MB PCRs.
	var mbVerified *eventlog.Verified
	if pol.MB != nil || len(ev.MBLog) > 0 {
		mbVerified = verifyMB(ev.MBLog, dalg, pcrs, pol.MB != nil, opts, res)
		if mbVerified != nil && pol.MB != nil {
			fl.Add(pol.MB.EvaluateMB(mbVerified)...)
		}
	}

	// IMA against PCR 10.
	if pol.Runtime != nil {
		pcr10, ok := pcrs[IMAPCR]
		switch {
		case !ok:
			fl.Rejectf(failure.PCRMissing, map[string]any{"pcrs": []int{IMAPCR}}, "a runtime policy is set but PCR 10 is not in the quote")
		case ev.IMAList == nil:
			fl.Errorf(IDNoIMAList, nil, "a runtime policy is set but the agent sent no IMA measurement list")
		case res.Rebooted && ev.IMAStart != 0:
			// The list of the new boot must be evaluated from its first
			// entry; what was sent cannot be. Not a rejection: the next
			// round asks for entry 0.
			fl.Errorf(failure.IMAInvalidEntryNB, map[string]any{"expected": 0, "got": ev.IMAStart},
				"the TPM was reset since the last round, but the IMA list was sent from entry %d; the next round asks for entry 0", ev.IMAStart)
		default:
			in := ima.Input{
				Log:        ev.IMAList,
				StartEntry: ev.IMAStart,
				PCR10:      map[digests.Algorithm][]byte{dalg: pcr10},
				BootPCRs:   map[digests.Algorithm]map[int][]byte{dalg: bootPCRs(pcrs)},
			}
			if mbVerified != nil {
				if ba, err := eventlog.BootAggregate(mbVerified.PCRs(), dalg); err == nil {
					in.BootAggregates = [][]byte{ba}
				}
			}
			ir := pol.Runtime.Evaluate(res.Next.IMA, in)
			res.IMA = ir
			fl.Add(ir.Failures...)
			res.Next.IMA = ir.State
		}
	}

	// TPM policy: pinned PCR values.
	if pol.TPM != nil {
		var missing []int
		for _, i := range slices.Sorted(maps.Keys(pol.TPM.Allowed)) {
			got, ok := pcrs[i]
			if !ok {
				missing = append(missing, i)
				continue
			}
			if !slices.ContainsFunc(pol.TPM.Allowed[i], func(b []byte) bool { return bytes.Equal(b, got) }) {
				fl.Rejectf(failure.InvalidPCR(i), map[string]any{"pcr": i, "got": fmt.Sprintf("%x", got)},
					"PCR %d value %x is not in the TPM policy's allowlist", i, got)
			}
		}
		if len(missing) > 0 {
			fl.Rejectf(failure.PCRMissing, map[string]any{"pcrs": missing}, "PCRs %v are pinned by the TPM policy but not in the quote", missing)
		}
	}
	if len(res.Failures) == 0 {
		res.Next.Rounds++
	}
	return res
}

func bootPCRs(pcrs map[int][]byte) map[int][]byte {
	out := map[int][]byte{}
	for i := 0; i <= 9; i++ {
		if v, ok := pcrs[i]; ok {
			out[i] = v
		}
	}
	return out
}

// verifyMB parses and replays the UEFI log against the quoted MB PCRs the
// log covers. required: an MB policy needs the log.
func verifyMB(raw []byte, alg digests.Algorithm, pcrs map[int][]byte, required bool, opts Options, res *Result) *eventlog.Verified {
	fl := &res.Failures
	if len(raw) == 0 {
		if required {
			fl.Errorf(IDMBNoLog, nil, "a measured-boot policy is set but the agent sent no UEFI event log")
		}
		return nil
	}
	if len(raw) > MaxMBLog {
		fl.Errorf(failure.MBParser, map[string]any{"size": len(raw)}, "the UEFI event log is %d bytes, over the %d-byte limit", len(raw), MaxMBLog)
		return nil
	}
	log, err := eventlog.Parse(raw)
	if err != nil {
		fl.Add(mb.VerifyFailures(err)...)
		return nil
	}
	quoted := map[int][]byte{}
	for _, i := range MBPCRs {
		if v, ok := pcrs[i]; ok {
			quoted[i] = v
		}
	}
	if len(quoted) == 0 {
		if required {
			fl.Rejectf(failure.MBMissingPCRs, map[string]any{"pcrs": MBPCRs}, "a measured-boot policy is set but no measured-boot PCR is in the quote")
		}
		return nil
	}
	if !log.HasBank(alg) {
		fl.Errorf(failure.MBParser, map[string]any{"bank": string(alg)}, "the UEFI event log has no %s digests to replay against the quote", alg)
		return nil
	}
	v, err := eventlog.VerifyWithOptions(log, alg, quoted, eventlog.VerifyOptions{AllowQuirks: opts.AllowEventLogQuirks})
	if err != nil {
		// Mismatches become measured_boot.invalid_pcr_N rejections,
		// anything else one measured_boot.parser error.
		fl.Add(mb.VerifyFailures(err)...)
		return nil
	}
	res.MBPCRs = slices.Sorted(maps.Keys(quoted))
	return v
}

// EvidenceNonce picks the qualifying data for a /verify/evidence nonce:
// the nonce string's bytes (pull mode) unless the quote's extraData is the
// base64 decoding of it (push-mode challenge), as Keylime accepts both.
func EvidenceNonce(nonce string, q *quote.Quote) []byte {
	if q != nil && q.Attest != nil && !bytes.Equal(q.Attest.ExtraData, []byte(nonce)) {
		if b, err := base64.StdEncoding.DecodeString(nonce); err == nil && len(b) > 0 && bytes.Equal(b, q.Attest.ExtraData) {
			return b
		}
	}
	return []byte(nonce)
}
