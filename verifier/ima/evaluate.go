package ima

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"

	"github.com/zest-attest/zest/digests"
	"github.com/zest-attest/zest/digests/eventlog"
	"github.com/zest-attest/zest/digests/imalog"
	"github.com/zest-attest/zest/digests/imasig"
	"github.com/zest-attest/zest/verifier/failure"
)

// Event ids. Keylime's are kept verbatim (see verifier/failure); the ones
// Keylime has no counterpart for stay under the "ima" component.
const (
	IDNotInAllowlist = "ima.validation.ima-ng.not_in_allowlist"
	IDPolicyHash     = "ima.validation.ima-ng.runtime_policy_hash"
	IDTemplateHash   = "ima.validation.ima_hash"
	IDInvalidKey     = "ima.invalid_key"
	IDPCRMismatch    = "ima.pcr_mismatch"
	// IDBootAggregate: the list does not start with boot_aggregate
	// (Keylime does not check this).
	IDBootAggregate = "ima.validation.boot_aggregate"
	// IDInvalidState: the stored State or this round's input cannot be used.
	IDInvalidState = "ima.invalid_state"
	// IDFailuresOmitted summarises failures beyond Options.MaxFailures.
	IDFailuresOmitted = "ima.failures_omitted"
)

// pcrIMA is the PCR IMA extends (CONFIG_IMA_MEASURE_PCR_IDX).
const pcrIMA = 10

// Input is one round's evidence. Its PCR values must come from a verified
// quote (and the boot_aggregate candidates from a verified event log):
// Evaluate trusts them as given.
type Input struct {
	// Log is the ASCII measurement list the agent sent, starting at entry
	// StartEntry. nil is an empty list.
	Log io.Reader
	// StartEntry is the entry number the agent says Log starts at
	// (Keylime's ima_measurement_list_entry). 0 starts a full evaluation
	// whatever the state says (new boot, or the agent chose to resend).
	StartEntry uint64
	// PCR10 holds the quoted PCR 10 per bank; every bank given is replayed
	// and must match at the same entry. At least one is required.
	PCR10 map[digests.Algorithm][]byte
	// BootAggregates are the values boot_aggregate may have, computed with
	// eventlog.BootAggregate from the PCRs of a verified measured-boot log
	// (one per bank; add PCR 0-7 and 0-9 variants as Keylime does if
	// needed). The policy's digests["boot_aggregate"] are accepted too.
	BootAggregates [][]byte
	// BootPCRs are quoted PCRs 0-9 per bank. When BootAggregates is empty,
	// boot_aggregate is checked against the value these give for the bank
	// its d-ng algorithm names (PCR 0-7 for sha1, 0-9 otherwise, as Linux
	// >= 5.8); all of those PCRs must be present.
	BootPCRs map[digests.Algorithm]map[int][]byte
}

// Counts tallies how consumed entries passed.
type Counts struct {
	Allowlisted   int `json:"allowlisted"`    // digest listed for the path
	Signed        int `json:"signed"`         // ima-sig signature verified
	Excluded      int `json:"excluded"`       // path matched excludes
	Buffers       int `json:"buffers"`        // ima-buf data listed in ima-buf
	KeysLearned   int `json:"keys_learned"`   // key records accepted and learned
	KeysIgnored   int `json:"keys_ignored"`   // key records of ignored keyrings
	Violations    int `json:"violations"`     // violation records
	OtherPCR      int `json:"other_pcr"`      // records not for PCR 10
	BootAggregate int `json:"boot_aggregate"` // boot_aggregate records accepted
	Failed        int `json:"failed"`         // entries with a failure
}

func (c *Counts) add(o Counts) {
	c.Allowlisted += o.Allowlisted
	c.Signed += o.Signed
	c.Excluded += o.Excluded
	c.Buffers += o.Buffers
	c.KeysLearned += o.KeysLearned
	c.KeysIgnored += o.KeysIgnored
	c.Violations += o.Violations
	c.OtherPCR += o.OtherPCR
	c.BootAggregate += o.BootAggregate
	c.Failed += o.Failed
}

// Result is the outcome of one round.
type Result struct {
	// Verdict: trusted (no failures), rejected, or error (something could
	// not be evaluated; never a pass).
	Verdict  failure.Verdict `json:"verdict"`
	Failures failure.List    `json:"failures"`
	// State is what the next round starts from. After any failure it is
	// the zero State, so the next round re-evaluates the whole list and a
	// bad entry keeps failing (Keylime resets its IMA state the same way).
	State State `json:"state"`
	// StartEntry is where this round's lines start.
	StartEntry uint64 `json:"start_entry"`
	// Read is the number of lines read; Consumed the lines covered by the
	// quote and evaluated; Pending the rest, left for the next round.
	Read     uint64 `json:"read"`
	Consumed uint64 `json:"consumed"`
	Pending  uint64 `json:"pending"`
	// Matched: some prefix of the list replays to the quoted PCR 10.
	Matched bool   `json:"matched"`
	Counts  Counts `json:"counts"`
	// Allowed lists the weakening options in effect.
	Allowed []string `json:"allowed,omitempty"`
}

// Evaluate runs one round: it streams in.Log from state, replays it against
// the quoted PCR 10 and judges the entries the quote covers against the
// policy. It never returns a trusted verdict for input it could not
// evaluate.
func (p *Policy) Evaluate(state State, in Input) *Result {
	return p.evaluate(state, in, defaultConfig())
}

func defaultConfig() evalConfig {
	cfg := evalConfig{workers: runtime.GOMAXPROCS(0), seqLines: 256, batchLines: 256, batchBytes: 256 << 10}
	if cfg.workers < 2 {
		cfg.seqLines = -1 // one core: batches only add copying
	}
	return cfg
}

// evalConfig says how Evaluate spreads the per-line work: the first
// seqLines lines (all if negative) are read, hashed and judged one at a
// time, so a short list starts no goroutine; the rest go in batches of up to batchLines lines or
// batchBytes bytes whose parsing and hashing workers goroutines share while
// the previous batch is judged. Memory stays bounded by two batches.
type evalConfig struct {
	workers    int
	seqLines   int
	batchLines int
	batchBytes int
	// held (tests): chunks of every batch claimed by no one, as by a
	// helper that never runs, so the evaluating goroutine redoes them.
	held int
}

func (p *Policy) evaluate(state State, in Input, cfg evalConfig) *Result {
	r := &Result{StartEntry: in.StartEntry, Allowed: p.Allowed()}
	m := p.opts.MaxFailures
	e := &evaluator{p: p, in: &in, cfg: cfg, always: collector{max: m}, pending: collector{max: m}, done: collector{max: m}}
	defer func() { e.finish(r) }()

	if len(in.PCR10) == 0 {
		e.always.Errorf(IDInvalidState, nil, "no quoted PCR 10 to replay the IMA list against")
		return r
	}
	algs := make([]digests.Algorithm, 0, len(in.PCR10))
	for a := range in.PCR10 {
		algs = append(algs, a)
	}
	sort.Slice(algs, func(i, j int) bool { return algs[i] < algs[j] })
	for _, a := range algs {
		if !replayable(a) {
			e.always.Errorf(IDInvalidState, map[string]any{"bank": string(a)}, "cannot replay the %s bank", a)
			return r
		}
		if len(in.PCR10[a]) != a.Size() {
			e.always.Errorf(IDInvalidState, map[string]any{"bank": string(a)}, "quoted PCR 10 in bank %s has %d bytes, want %d", a, len(in.PCR10[a]), a.Size())
			return r
		}
		e.banks = append(e.banks, newBank(a, in.PCR10[a], p.opts.AllowPaddedSHA1Extend))
	}
	e.hasher = hasher{logAlg: p.logAlg, padded: p.opts.AllowPaddedSHA1Extend, files: p.files}
	for i := range e.banks {
		e.hasher.algs = append(e.hasher.algs, e.banks[i].alg)
		e.hasher.ff = append(e.hasher.ff, e.banks[i].ff)
	}

	switch {
	case in.StartEntry == 0:
		state = State{}
	case in.StartEntry != state.NextEntry:
		e.always.Rejectf(failure.IMAInvalidEntryNB, map[string]any{"expected": state.NextEntry, "got": in.StartEntry},
			"the agent sent the list from entry %d, but entry %d was requested", in.StartEntry, state.NextEntry)
		return r
	default:
		keys, err := resume(state, e.banks)
		if err != nil {
			e.always.Errorf(IDInvalidState, nil, "%v", err)
			return r
		}
		for _, k := range keys {
			e.learn(k)
		}
	}
	e.start = state
	e.run()
	r.Read, r.Consumed, r.Matched = e.read, e.consumed, e.matched
	r.Pending = e.read - e.consumed
	r.Counts = e.counts
	if !e.matched {
		e.always.Rejectf(IDPCRMismatch, e.mismatchContext(), "IMA measurement list does not match the quoted PCR 10")
	}
	return r
}

// collector is a failure list bounded by max, counting what it drops.
type collector struct {
	list          failure.List
	omitted       int
	omittedErrors bool
	max           int
}

func (c *collector) add(f failure.Failure) {
	if len(c.list) >= c.max {
		c.omitted++
		c.omittedErrors = c.omittedErrors || f.Kind == failure.Error
		return
	}
	c.list = append(c.list, f)
}

func (c *collector) Rejectf(id string, ctx map[string]any, format string, args ...any) {
	c.add(failure.Rejectf(id, ctx, format, args...))
}

func (c *collector) Errorf(id string, ctx map[string]any, format string, args ...any) {
	c.add(failure.Errorf(id, ctx, format, args...))
}

type evaluator struct {
	p      *Policy
	in     *Input
	cfg    evalConfig
	banks  []bank
	hasher hasher
	start  State

	always  collector // failures whatever the quote covers
	pending collector // failures of entries not yet covered by a match
	done    collector // failures of covered entries

	learned    []learned      // all keys, in order; those before the match go to State
	sigKeys    imasig.Keyring // learned keys usable for ima-sig
	counts     Counts         // committed
	pendCounts Counts

	read, consumed uint64
	matched        bool
	bootChecked    bool
	entryFailed    bool

	bv [64]byte // buffer digest scratch
}

func (e *evaluator) learn(k learned) {
	e.learned = append(e.learned, k)
	if k.Keyring == ".ima" || e.p.opts.AllowAnyLearnedKeyring {
		_ = e.sigKeys.Add(k.key) // LoadKey only returns usable keys
	}
}

// logName names the list in parse errors.
const logName = "IMA measurement list"

func (e *evaluator) run() {
	e.bootChecked = e.start.BootAggregateChecked
	e.checkMatch(0)
	if e.in.Log == nil {
		return
	}
	rd := imalog.NewReader(e.in.Log, logName)
	sc := &lineScratch{ps: imalog.NewParser(logName)}
	for n := 0; ; n++ {
		if n == e.cfg.seqLines {
			e.runBatches(rd, sc)
			return
		}
		line, no, off, err := rd.NextLine()
		if err == io.EOF || !e.line(sc, line, no, off, err) {
			return
		}
	}
}

// take judges one line in list order: its read or parse error, or its
// entry with the hashes prepare computed. It says whether reading goes on.
func (e *evaluator) take(ent *imalog.Entry, err error, h *lineHashes) bool {
	if err != nil {
		return e.parseError(err)
	}
	e.read = uint64(ent.Line)
	e.entry(ent, e.in.StartEntry+uint64(ent.Line)-1, h)
	if ent.PCR == pcrIMA {
		e.checkMatch(uint64(ent.Line))
	}
	return true
}

// parseError records a line that could not be parsed and says whether
// reading can go on.
func (e *evaluator) parseError(err error) bool {
	var pe *imalog.ParseError
	if !errors.As(err, &pe) {
		e.always.Errorf(failure.IMAParserEntry, nil, "reading the IMA measurement list: %v", err)
		return false
	}
	e.read = uint64(pe.Line)
	e.always.Errorf(failure.IMAParserEntry, map[string]any{"entry": e.in.StartEntry + uint64(pe.Line) - 1},
		"line was not parsable into a valid IMA entry: %s", pe.Msg)
	return true
}

// checkMatch commits everything read so far when every bank's replay equals
// its quoted value.
func (e *evaluator) checkMatch(lines uint64) {
	for i := range e.banks {
		if !e.banks[i].matches() {
			return
		}
	}
	e.matched = true
	e.consumed = lines
	for _, f := range e.pending.list {
		e.done.add(f)
	}
	e.done.omitted += e.pending.omitted
	e.done.omittedErrors = e.done.omittedErrors || e.pending.omittedErrors
	e.pending.list, e.pending.omitted, e.pending.omittedErrors = e.pending.list[:0], 0, false
	e.counts.add(e.pendCounts)
	e.pendCounts = Counts{}
	next := State{
		NextEntry:            e.in.StartEntry + lines,
		PCR10:                make(map[digests.Algorithm]string, len(e.banks)),
		BootAggregateChecked: e.bootChecked,
	}
	for i := range e.banks {
		next.PCR10[e.banks[i].alg] = hex.EncodeToString(e.banks[i].value())
	}
	for _, k := range e.learned {
		if k.Entry < next.NextEntry {
			next.LearnedKeys = append(next.LearnedKeys, k.LearnedKey)
		}
	}
	e.start = next
}

func (e *evaluator) finish(r *Result) {
	var all failure.List
	omitted, omittedErrors := 0, false
	for _, c := range []*collector{&e.always, &e.done} {
		all = append(all, c.list...)
		omitted += c.omitted
		omittedErrors = omittedErrors || c.omittedErrors
	}
	// In list order; failures about the round as a whole come last.
	sort.SliceStable(all, func(i, j int) bool {
		a, aok := all[i].Context["entry"].(uint64)
		b, bok := all[j].Context["entry"].(uint64)
		return aok && (!bok || a < b)
	})
	if omitted > 0 {
		ctx := map[string]any{"omitted": omitted}
		if omittedErrors {
			all.Errorf(IDFailuresOmitted, ctx, "%d more failures were not recorded", omitted)
		} else {
			all.Rejectf(IDFailuresOmitted, ctx, "%d more failures were not recorded", omitted)
		}
	}
	r.Failures = all
	if r.Failures == nil {
		r.Failures = failure.List{}
	}
	r.Verdict = all.Verdict()
	if len(all) == 0 && e.matched {
		r.State = e.start
	}
}

func (e *evaluator) mismatchContext() map[string]any {
	quoted := map[string]string{}
	replayed := map[string]string{}
	for i := range e.banks {
		quoted[string(e.banks[i].alg)] = hex.EncodeToString(e.banks[i].quoted)
		replayed[string(e.banks[i].alg)] = hex.EncodeToString(e.banks[i].value())
	}
	return map[string]any{"pcr": pcrIMA, "quoted": quoted, "replayed": replayed, "start_entry": e.in.StartEntry, "lines": e.read}
}

// fail records a failure of the current entry (pending until a match covers
// it).
func (e *evaluator) fail(f failure.Failure) {
	if !e.entryFailed {
		e.entryFailed = true
		e.pendCounts.Failed++
	}
	e.pending.add(f)
}

func entryContext(ent *imalog.Entry, idx uint64) map[string]any {
	return map[string]any{"entry": idx, "path": ent.Name(), "template": ent.Template}
}

// entry judges one entry whose hashes prepare computed: template hash,
// replay into every bank, then the policy.
func (e *evaluator) entry(ent *imalog.Entry, idx uint64, h *lineHashes) {
	e.entryFailed = false
	p := e.p

	// Template hash (log_hash_alg) and violation records.
	violation, hashOK := h.violation, true
	switch {
	case !h.sizeOK:
		hashOK = false
		ctx := entryContext(ent, idx)
		ctx["log_hash_alg"] = string(p.logAlg)
		e.always.Rejectf(IDTemplateHash, ctx, "entry %d lists a %d-byte template hash, but log_hash_alg %s has %d bytes",
			idx, len(ent.TemplateHash), p.logAlg, p.logAlg.Size())
	case violation:
	case !bytes.Equal(h.th, ent.TemplateHash):
		hashOK = false
		ctx := entryContext(ent, idx)
		ctx["expected"] = hex.EncodeToString(ent.TemplateHash)
		ctx["got"] = hex.EncodeToString(h.th)
		ctx["log_hash_alg"] = string(p.logAlg)
		e.always.Rejectf(IDTemplateHash, ctx, "IMA template hash of entry %d (%s) does not match the calculated hash", idx, ent.Name())
	}

	if ent.PCR != pcrIMA {
		// Never covered by the quoted PCR 10, so reported whatever the match.
		e.pendCounts.OtherPCR++
		e.always.add(failure.Rejectf(failure.IMAPCR, map[string]any{"entry": idx, "path": ent.Name(), "expected": "10", "got": fmt.Sprint(ent.PCR)},
			"IMA entry %d was extended into PCR %d, not the quoted PCR 10", idx, ent.PCR))
		return
	}

	// Replay into every quoted bank.
	for i := range e.banks {
		e.banks[i].extend(h.ext[i][:e.banks[i].alg.Size()])
	}

	first := idx == 0
	if first {
		e.bootChecked = true
	}
	if violation {
		e.pendCounts.Violations++
		if !p.opts.AllowViolations {
			e.fail(failure.Rejectf(failure.IMAToMToU, entryContext(ent, idx),
				"entry %d (%s) is a violation record (ToMToU/open_writers): its content was not measured", idx, ent.Name()))
		}
		return
	}
	if !hashOK {
		return // Keylime: a record whose template hash fails is not judged further
	}
	isBoot := string(ent.RawName) == "boot_aggregate" && !ent.HasBufField()
	if first && !isBoot {
		e.fail(failure.Rejectf(IDBootAggregate, entryContext(ent, idx),
			"the IMA list starts with %s, not boot_aggregate", ent.Name()))
	}
	switch {
	case ent.HasBufField():
		e.buffer(ent, idx)
	case isBoot:
		e.bootAggregate(ent, idx)
	case ent.HasSigField() && len(ent.Sig) > 0:
		e.signed(ent, idx, h)
	default:
		e.file(ent, idx, h, nil)
	}
}

// file is Keylime's _validate_ima_ng against digests: a listed digest or an
// excluded path passes. sigErr explains why a signature did not help.
func (e *evaluator) file(ent *imalog.Entry, idx uint64, h *lineHashes, sigErr error) {
	set, listed := h.set, h.listed
	if h.allowlisted {
		e.pendCounts.Allowlisted++
		return
	}
	if e.p.excluded(ent.RawName) {
		e.pendCounts.Excluded++
		return
	}
	e.notAllowed(ent, idx, set, listed, "digests", sigErr)
}

func (e *evaluator) notAllowed(ent *imalog.Entry, idx uint64, set []byte, listed bool, field string, sigErr error) {
	ctx := entryContext(ent, idx)
	if field != "digests" {
		ctx["policy_field"] = field
	}
	kind := failure.Reject
	if sigErr != nil {
		ctx["signature"] = sigErr.Error()
		var unsupported *imasig.UnsupportedKeyError
		// A signature zest cannot check is "could not evaluate", not "bad".
		if errors.Is(sigErr, imasig.ErrUnsupportedHash) || errors.As(sigErr, &unsupported) {
			kind = failure.Error
		}
	}
	f := failure.Failure{Kind: kind, Context: ctx}
	if !listed {
		f.ID = IDNotInAllowlist
		f.Message = "File not found in allowlist: " + ent.Name()
	} else {
		f.ID = IDPolicyHash
		f.Message = "Hash not found in runtime policy"
		ctx["got"] = hex.EncodeToString(ent.Digest.Value)
		ctx["expected"] = setHex(set)
		ctx["algorithm"] = ent.Digest.Algorithm
	}
	e.fail(f)
}

// signed is Keylime's _validate_ima_sig: an excluded path, a listed digest or
// a signature by a trusted key passes.
func (e *evaluator) signed(ent *imalog.Entry, idx uint64, h *lineHashes) {
	if h.allowlisted {
		e.pendCounts.Allowlisted++
		return
	}
	if e.p.excluded(ent.RawName) {
		e.pendCounts.Excluded++
		return
	}
	sig, err := imasig.ParseSignature(ent.Sig)
	if err == nil {
		if err = e.verify(sig, ent); err == nil {
			e.pendCounts.Signed++
			return
		}
	}
	e.file(ent, idx, h, err)
}

func (e *evaluator) verify(sig *imasig.Signature, ent *imalog.Entry) error {
	alg, err := ent.Digest.Alg()
	if err != nil {
		return err
	}
	if sa := sig.HashAlgo.Algorithm(); sa != alg {
		return fmt.Errorf("signature hash algorithm %s differs from the measured digest's %s", sig.HashAlgo, alg)
	}
	err = e.p.keys.Verify(sig, ent.Digest.Value)
	if err == nil {
		return nil
	}
	if e.sigKeys.Len() == 0 {
		return e.explainUnknownKey(err, sig.KeyID)
	}
	err2 := e.sigKeys.Verify(sig, ent.Digest.Value)
	if err2 == nil {
		return nil
	}
	if errors.Is(err, imasig.ErrUnknownKey) {
		err = err2
	}
	return e.explainUnknownKey(err, sig.KeyID)
}

// explainUnknownKey says when the key was learned, but into a keyring that
// does not verify file signatures.
func (e *evaluator) explainUnknownKey(err error, keyid uint32) error {
	if !errors.Is(err, imasig.ErrUnknownKey) {
		return err
	}
	for _, k := range e.learned {
		if k.key.KeyID == keyid && k.Keyring != ".ima" && !e.p.opts.AllowAnyLearnedKeyring {
			return fmt.Errorf("%w; key 0x%08x was learned into %s, and only keys of .ima verify file signatures (AllowAnyLearnedKeyring)", err, keyid, k.Keyring)
		}
	}
	return err
}

// buffer is Keylime's _validate_ima_buf: a key is checked against
// keyrings[name] and learned; other data against ima-buf[name].
func (e *evaluator) buffer(ent *imalog.Entry, idx uint64) {
	p := e.p
	if alg, err := ent.Digest.Alg(); err == nil && replayable(alg) {
		if got := sumInto(alg, e.bv[:0], ent.Buf); !bytes.Equal(got, ent.Digest.Value) {
			ctx := entryContext(ent, idx)
			ctx["expected"] = hex.EncodeToString(ent.Digest.Value)
			ctx["got"] = hex.EncodeToString(got)
			e.fail(failure.Rejectf(IDTemplateHash, ctx, "entry %d (%s): the buffer digest is not the %s of the buffer", idx, ent.Name(), alg))
			return
		}
	}
	var key *imasig.Key
	var kerr error
	if len(ent.Buf) > 0 {
		key, kerr = imasig.LoadKey(ent.Buf)
	} else {
		kerr = imasig.ErrNotKey
	}
	var unsupported *imasig.UnsupportedKeyError
	switch {
	case kerr == nil:
		if p.ignoreAll || p.ignored[string(ent.RawName)] {
			e.pendCounts.KeysIgnored++
			return
		}
		set, listed := p.keyrings.lookup(ent.RawName)
		if listed && setHas(set, ent.Digest.Value) {
			if len(e.learned) >= MaxLearnedKeys {
				e.always.Errorf(IDInvalidState, entryContext(ent, idx), "more than %d keys learned from the IMA list", MaxLearnedKeys)
				return
			}
			k, err := newLearned(ent.Name(), key, idx)
			if err != nil {
				e.fail(failure.Errorf(IDInvalidKey, entryContext(ent, idx), "key from %s: %v", ent.Name(), err))
				return
			}
			e.learn(k)
			e.pendCounts.KeysLearned++
			return
		}
		if p.excluded(ent.RawName) {
			e.pendCounts.Excluded++ // passes, but an excluded key is not trusted
			return
		}
		e.notAllowed(ent, idx, set, listed, "keyrings", nil)
	case errors.As(kerr, &unsupported) || !errors.Is(kerr, imasig.ErrNotKey):
		e.fail(failure.Rejectf(IDInvalidKey, entryContext(ent, idx), "key from %s does not have a supported key: %v", ent.Name(), kerr))
	default:
		set, listed := p.bufs.lookup(ent.RawName)
		if listed && setHas(set, ent.Digest.Value) {
			e.pendCounts.Buffers++
			return
		}
		if p.excluded(ent.RawName) {
			e.pendCounts.Excluded++
			return
		}
		e.notAllowed(ent, idx, set, listed, "ima-buf", nil)
	}
}

// bootAggregate accepts the policy's digests["boot_aggregate"] and the
// expected values from the measured-boot log or quoted PCRs (Keylime appends
// the former to the policy). Excludes never apply to it.
func (e *evaluator) bootAggregate(ent *imalog.Entry, idx uint64) {
	set, listed := e.p.files.get("boot_aggregate")
	d := ent.Digest.Value
	if listed && setHas(set, d) {
		e.pendCounts.BootAggregate++
		return
	}
	cands := e.in.BootAggregates
	source := "measured-boot log"
	if len(cands) == 0 {
		source = "quoted PCRs"
		if alg, err := ent.Digest.Alg(); err == nil {
			if v, ok := bootFromPCRs(e.in.BootPCRs[alg], alg); ok {
				cands = [][]byte{v}
			}
		}
	}
	for _, c := range cands {
		if bytes.Equal(c, d) {
			e.pendCounts.BootAggregate++
			return
		}
	}
	ctx := entryContext(ent, idx)
	if alg, err := ent.Digest.Alg(); len(e.in.BootAggregates) == 0 && (err != nil || !replayable(alg)) && !listed {
		ctx["reason"] = "zest cannot compute a boot_aggregate of algorithm " + ent.Digest.Algorithm
		e.fail(failure.Failure{ID: IDNotInAllowlist, Kind: failure.Error, Message: "boot_aggregate cannot be checked", Context: ctx})
		return
	}
	if !listed && len(cands) == 0 {
		ctx["reason"] = "the policy lists no boot_aggregate and no measured-boot log or quoted PCRs 0-9 of the " + ent.Digest.Algorithm + " bank were supplied"
		e.fail(failure.Failure{ID: IDNotInAllowlist, Kind: failure.Reject, Message: "File not found in allowlist: boot_aggregate", Context: ctx})
		return
	}
	exp := setHex(set)
	for _, c := range cands {
		exp = append(exp, hex.EncodeToString(c))
	}
	ctx["got"] = hex.EncodeToString(d)
	ctx["expected"] = exp
	ctx["algorithm"] = ent.Digest.Algorithm
	ctx["source"] = source
	e.fail(failure.Failure{ID: IDPolicyHash, Kind: failure.Reject, Message: "Hash not found in runtime policy", Context: ctx})
}

func bootFromPCRs(pcrs map[int][]byte, alg digests.Algorithm) ([]byte, bool) {
	last := 9
	if alg == digests.SHA1 {
		last = 7
	}
	for i := 0; i <= last; i++ {
		if _, ok := pcrs[i]; !ok {
			return nil, false
		}
	}
	v, err := eventlog.BootAggregate(pcrs, alg)
	return v, err == nil
}
