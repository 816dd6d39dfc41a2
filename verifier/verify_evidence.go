package verifier

import (
	"encoding/base64"
	"unsafe"

	"github.com/zest-attest/zest/digests/imalog"
	"github.com/zest-attest/zest/policygen"
	"github.com/zest-attest/zest/verifier/failure"
	"github.com/zest-attest/zest/verifier/ima"
	"github.com/zest-attest/zest/verifier/quote"
)

// EvidenceOptions tune VerifyEvidence. The zero value is strict.
type EvidenceOptions struct {
	Options
	// IMA options for compiling the request's runtime policy.
	IMA ima.Options
	// MB builds the measured-boot evaluator from the request's mb_policy
	// (a Keylime refstate). Nil: an mb_policy is an error (not evaluated).
	MB func(refstate []byte) (MBEvaluator, error)
	// Cache, if set, keeps compiled runtime policies between requests
	// (keyed by the runtime_policy field as sent); nil compiles each time.
	Cache *PolicyCache
}

// VerifyEvidence evaluates a Keylime /verify/evidence request statelessly:
// no previous round, so no clock monotonicity, and no PCR 16 binding (the
// request carries no agent key), as in Keylime. Unlike Keylime, a quote that
// does not verify is never valid, every requested policy is evaluated (an
// mb_policy included) and PCRs a policy needs must be in the quote.
func VerifyEvidence(req *EvidenceRequest, opts EvidenceOptions) *Result {
	res := &Result{}
	fail := func(f failure.Failure) *Result {
		res.Failures.Add(f)
		res.Verdict = res.Failures.Verdict()
		return res
	}
	d := &req.Data
	akBytes, err := base64.StdEncoding.DecodeString(d.TPMAK)
	if err != nil {
		return fail(failure.Errorf(failure.QuoteNoPubkey, map[string]any{"param": "tpm_ak"}, "tpm_ak is not base64: %v", err))
	}
	ak, err := quote.ParseAK(akBytes)
	if err != nil {
		return fail(failure.Errorf(failure.QuoteNoPubkey, map[string]any{"param": "tpm_ak"}, "tpm_ak is not an attestation key: %v", err))
	}
	var pol Policies
	if opts.Cache != nil && !isEmptyJSON(d.RuntimePolicy) {
		pol.Runtime = opts.Cache.get(d.RuntimePolicy)
	}
	if pol.Runtime != nil {
		// compiled before from the same bytes
	} else if b, err := PolicyBytes(d.RuntimePolicy); err != nil {
		return fail(failure.Errorf(MissingPolicy, map[string]any{"param": "runtime_policy"}, "runtime_policy: %v", err))
	} else if b != nil {
		rp, err := policygen.ParseRuntimePolicy(b, "runtime_policy")
		if err != nil {
			return fail(failure.Errorf(MissingPolicy, map[string]any{"param": "runtime_policy", "error": err.Error()}, "runtime_policy is not a valid runtime policy: %v", err))
		}
		if pol.Runtime, err = ima.Compile(rp, opts.IMA); err != nil {
			return fail(failure.Errorf(MissingPolicy, map[string]any{"param": "runtime_policy", "error": err.Error()}, "runtime_policy cannot be evaluated: %v", err))
		}
		if opts.Cache != nil {
			opts.Cache.put(d.RuntimePolicy, pol.Runtime)
		}
	}
	if b, err := PolicyBytes(d.TPMPolicy); err != nil {
		return fail(failure.Errorf(MissingPolicy, map[string]any{"param": "tpm_policy"}, "tpm_policy: %v", err))
	} else if b != nil {
		if pol.TPM, err = ParseTPMPolicy(b); err != nil {
			return fail(failure.Errorf(MissingPolicy, map[string]any{"param": "tpm_policy", "error": err.Error()}, "%v", err))
		}
	}
	if b, err := PolicyBytes(d.MBPolicy); err != nil {
		return fail(failure.Errorf(failure.MBPolicyInvalid, map[string]any{"param": "mb_policy"}, "mb_policy: %v", err))
	} else if b != nil {
		if opts.MB == nil {
			return fail(failure.Errorf(failure.MBPolicyInvalid, nil, "an mb_policy was given but measured-boot evaluation is not configured"))
		}
		if pol.MB, err = opts.MB(b); err != nil {
			return fail(failure.Errorf(failure.MBPolicyInvalid, map[string]any{"error": err.Error()}, "Invalid measured boot policy: %v", err))
		}
	}
	mbLog, err := d.MBLogBytes()
	if err != nil {
		return fail(failure.Errorf(failure.MBParser, map[string]any{"param": "mb_log"}, "%v", err))
	}
	q, _ := quote.Parse(d.Quote) // errors are reported by Verify
	ev := Evidence{Quote: d.Quote, HashAlg: d.HashAlg, MBLog: mbLog}
	if d.IMAMeasurementList != "" || pol.Runtime != nil {
		// Read in place, not copied into the reader's buffer and again
		// into the evaluator's batches. imalog only reads the bytes.
		ev.IMAList = imalog.InMemory(unsafe.Slice(unsafe.StringData(d.IMAMeasurementList), len(d.IMAMeasurementList)))
	}
	o := opts.Options
	o.Stateless = true
	// The quote must cover what the policies need; the request says nothing
	// about what was asked of the agent, so that is the requirement.
	ch := Challenge{Nonce: EvidenceNonce(d.Nonce, q), Mask: pol.Mask(false)}
	return Verify(ak, ch, ev, pol, State{}, o)
}
