package archive

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/zest-attest/zest/policygen"
	"github.com/zest-attest/zest/verifier"
	"github.com/zest-attest/zest/verifier/failure"
	"github.com/zest-attest/zest/verifier/ima"
	"github.com/zest-attest/zest/verifier/mb"
	"github.com/zest-attest/zest/verifier/quote"
)

// Reverifier re-evaluates archived rounds with zest's verifier library:
// the quote against the registered AK and the archived nonce, the TPM
// clock against the previous round, the UEFI log and the IMA lines (chained
// round to round from the boot's first entry) against the archived
// policies. It is the RoundVerifier zest archive replay and audit use.
type Reverifier struct {
	Options verifier.Options
	IMA     ima.Options
	MB      mb.Options

	compiled map[Ref]*ima.Policy
	refs     map[Ref]verifier.MBEvaluator
	aks      map[Ref]*quote.AK
	// imaBuf is reused for every round's IMA lines: imalog.NewReader
	// takes a bufio.Reader that is large enough as it is, instead of
	// allocating its 256 KiB buffer per round. VerifyRound is not safe
	// for concurrent use (replay calls it in order).
	imaBuf *bufio.Reader
}

// VerifyRound implements RoundVerifier.
func (rv *Reverifier) VerifyRound(_ context.Context, prev *ReplayState, in *RoundInput) (*RoundResult, error) {
	rd := in.Round
	res := &RoundResult{}
	fail := func(f failure.Failure) (*RoundResult, error) {
		res.Failures = failure.List{f}
		res.Verdict = res.Failures.Verdict()
		return res, nil
	}
	ak, err := rv.ak(in.AK)
	if err != nil {
		return fail(failure.Errorf(failure.QuoteNoPubkey, nil, "archived AK: %v", err))
	}
	var pol verifier.Policies
	if len(in.RuntimePolicy) > 0 {
		if pol.Runtime, err = rv.runtime(rd.RuntimePolicy, in.RuntimePolicy); err != nil {
			return fail(failure.Errorf(verifier.MissingPolicy, nil, "archived runtime policy %s: %v", rd.RuntimePolicy, err))
		}
	}
	if len(in.MBPolicy) > 0 {
		if pol.MB, err = rv.refstate(rd.MBPolicy, in.MBPolicy); err != nil {
			return fail(failure.Errorf(failure.MBPolicyInvalid, nil, "archived measured-boot policy %s: %v", rd.MBPolicy, err))
		}
	}
	if len(in.TPMPolicy) > 0 {
		if pol.TPM, err = verifier.ParseTPMPolicy(in.TPMPolicy); err != nil {
			return fail(failure.Errorf(verifier.MissingPolicy, nil, "archived TPM policy %s: %v", rd.TPMPolicy, err))
		}
	}
	nonce := []byte(rd.Evidence.Nonce)
	if rd.Evidence.Mode == "push" {
		if nonce, err = base64.StdEncoding.DecodeString(rd.Evidence.Nonce); err != nil {
			return fail(failure.Errorf(failure.QuoteInvalid, map[string]any{"check": "nonce"}, "archived push challenge is not base64"))
		}
	}
	var state verifier.State
	if prev != nil {
		if st, ok := prev.Verifier.(verifier.State); ok {
			state = st
		}
	}
	ev := verifier.Evidence{
		Quote: rd.Evidence.Quote, HashAlg: rd.Evidence.HashAlg,
		IMAStart: rd.Evidence.IMAStart, MBLog: in.UEFILog,
	}
	if rd.Evidence.IMALines != "" || pol.Runtime != nil {
		if rv.imaBuf == nil {
			rv.imaBuf = bufio.NewReaderSize(nil, 256<<10)
		}
		rv.imaBuf.Reset(bytes.NewReader(in.IMALines))
		ev.IMAList = rv.imaBuf
	}
	ch := verifier.Challenge{Nonce: nonce, Mask: rd.Evidence.Mask}
	if rd.Evidence.Data != "" {
		ch.Data = in.Data
	}
	r := verifier.Verify(ak, ch, ev, pol, state, rv.Options)
	res.Verdict, res.Failures, res.Verifier = r.Verdict, r.Failures, r.Next
	next := r.Next.IMA.NextEntry
	res.IMANext = &next
	return res, nil
}

// ak parses an archived AK once per replay, keyed by its hash.
func (rv *Reverifier) ak(data []byte) (*quote.AK, error) {
	ref := RefOf(data)
	if ak, ok := rv.aks[ref]; ok {
		return ak, nil
	}
	ak, err := quote.ParseAK(data)
	if err != nil {
		return nil, err
	}
	if rv.aks == nil || len(rv.aks) > 16 {
		rv.aks = map[Ref]*quote.AK{}
	}
	rv.aks[ref] = ak
	return ak, nil
}

func (rv *Reverifier) runtime(ref Ref, data []byte) (*ima.Policy, error) {
	if p, ok := rv.compiled[ref]; ok {
		return p, nil
	}
	rp, err := policygen.ParseRuntimePolicy(data, string(ref))
	if err != nil {
		return nil, err
	}
	p, err := ima.Compile(rp, rv.IMA)
	if err != nil {
		return nil, err
	}
	if rv.compiled == nil || len(rv.compiled) > 16 {
		rv.compiled = map[Ref]*ima.Policy{}
	}
	rv.compiled[ref] = p
	return p, nil
}

func (rv *Reverifier) refstate(ref Ref, data []byte) (verifier.MBEvaluator, error) {
	if e, ok := rv.refs[ref]; ok {
		return e, nil
	}
	e, err := verifier.ParseRefstate(data, string(ref), rv.MB)
	if err != nil {
		return nil, err
	}
	if rv.refs == nil || len(rv.refs) > 16 {
		rv.refs = map[Ref]verifier.MBEvaluator{}
	}
	rv.refs[ref] = e
	return e, nil
}

// StateOf decodes the verifier state a round recorded (nil: none).
func StateOf(r *Round) (*verifier.State, error) {
	if len(r.State) == 0 {
		return nil, nil
	}
	var st verifier.State
	if err := json.Unmarshal(r.State, &st); err != nil {
		return nil, fmt.Errorf("round %s/%d: state: %w", r.AgentID, r.Seq, err)
	}
	return &st, nil
}
