package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/zest-attest/zest/verifier/failure"
)

// Source is what replay reads: a Store, or an audit bundle.
type Source interface {
	Scan(ctx context.Context, q Query, fn func(*Stored) error) error
	Blob(ctx context.Context, ref Ref) ([]byte, error)
}

// RoundVerifier re-evaluates one stored round with the verifier library.
// The lead wires zest's verifier here (quote signature and nonce with the
// AK, PCR selection, clock progression against prev, IMA incremental chain
// from prev's state, measured boot against the MB policy). It must return
// the verdict and every failure; an error means "could not evaluate" and
// is reported as a verdict of error.
type RoundVerifier interface {
	VerifyRound(ctx context.Context, prev *ReplayState, in *RoundInput) (*RoundResult, error)
}

// RoundInput is everything stored for one round, integrity-checked: each
// byte slice hashes to the reference in the signed round.
type RoundInput struct {
	Round *Round
	// AK is the registered attestation key the round names.
	AK []byte
	// IMALines are this round's IMA lines (entries IMAStart..IMAStart+IMACount-1).
	IMALines []byte
	// UEFILog is the binary measured-boot log, nil if none.
	UEFILog []byte
	// RuntimePolicy and MBPolicy are the policies the round was judged
	// against, nil if none.
	RuntimePolicy []byte
	MBPolicy      []byte
	TPMPolicy     []byte
	// Data are the bytes bound into PCR 16, nil if none.
	Data []byte
}

// ReplayState is carried from one round to the next within a boot. prev is
// nil for the first round a replay sees.
type ReplayState struct {
	Seq      uint64
	Time     time.Time
	BootTime int64
	// IMANext is the index of the next IMA entry expected.
	IMANext uint64
	// Verifier is the RoundVerifier's own state (TPM clock info, PCR 10
	// running value, IMA template-hash chain, ...); archive only carries it.
	Verifier any
}

// RoundResult is a RoundVerifier's outcome. Verifier is the state to hand
// to the next round.
type RoundResult struct {
	Verdict  failure.Verdict
	Failures failure.List
	Verifier any
	// IMANext, when set, is where the verifier will continue the IMA list
	// (it may consume fewer lines than the round carried: a quote can
	// predate the newest lines, which the agent sends again next round).
	IMANext *uint64
}

// RecordedVerdicts is the RoundVerifier used when none is wired: it
// returns each round's recorded verdict and failures, whose integrity
// replay has checked (signature, transparency proof, blob hashes), without
// re-evaluating the evidence. Reports say so (Reverified false).
type RecordedVerdicts struct{}

// VerifyRound implements RoundVerifier.
func (RecordedVerdicts) VerifyRound(_ context.Context, _ *ReplayState, in *RoundInput) (*RoundResult, error) {
	return &RoundResult{Verdict: in.Round.Verdict, Failures: in.Round.Failures}, nil
}

var errSkipped = errors.New("evidence incomplete")

// Failure ids replay adds to the verifier's own (Keylime-style, under
// "archive.").
const (
	IDSignature       = "archive.record.signature"
	IDMalformed       = "archive.record.malformed"
	IDProofMissing    = "archive.proof.missing"
	IDProofInvalid    = "archive.proof.invalid"
	IDBlobMissing     = "archive.blob.missing"
	IDBlobCorrupt     = "archive.blob.corrupt"
	IDUnregisteredAK  = "archive.ak.unregistered"
	IDSequence        = "archive.sequence"
	IDIMADiscontinued = "archive.ima.discontinuity"
	IDVerdictMismatch = "archive.verdict.mismatch"
	IDVerifier        = "archive.verifier.error"
)

// ReplayOptions configures Replay. The zero value is strict but needs
// Keys, and Logs unless AllowUnproven.
type ReplayOptions struct {
	// Keys are the verifier keys records must be signed with.
	Keys Keyring
	// Logs are the transparency logs trusted for proofs; every record must
	// carry a valid proof from at least one of them.
	Logs []LogKey
	// AllowUnproven accepts records without a transparency proof (still
	// in the outbox). Proofs present are still checked.
	AllowUnproven bool
	// Verifier re-evaluates rounds; nil means RecordedVerdicts.
	Verifier RoundVerifier
	// GapFactor: a pause longer than GapFactor × the round's interval is
	// a gap (default 3). Interval is used when a round records none
	// (default 2 s, Keylime's quote_interval).
	GapFactor float64
	Interval  time.Duration
	// OnRecord, if set, sees every record and blob reference replay reads
	// (export uses it to collect a bundle).
	OnRecord func(*Stored)
	OnBlob   func(Ref, []byte)
}

// Gap is a stretch of the window without rounds.
type Gap struct {
	From     time.Time     `json:"from"`
	To       time.Time     `json:"to"`
	Duration time.Duration `json:"duration_ns"`
}

// Outcome is one replayed round.
type Outcome struct {
	Seq      uint64          `json:"seq"`
	Time     time.Time       `json:"time"`
	Recorded failure.Verdict `json:"recorded"`
	Verdict  failure.Verdict `json:"verdict"`
	Failures failure.List    `json:"failures,omitempty"`
	// Proofs names the logs whose proof verified.
	Proofs        []string `json:"proofs,omitempty"`
	RuntimePolicy Ref      `json:"runtime_policy,omitempty"`
	MBPolicy      Ref      `json:"mb_policy,omitempty"`
}

// Report is the result of a replay.
type Report struct {
	AgentID       string    `json:"agent_id"`
	From          time.Time `json:"from"`
	To            time.Time `json:"to"`
	Registrations int       `json:"registrations"`
	Rounds        int       `json:"rounds"`
	Trusted       int       `json:"trusted"`
	Rejected      int       `json:"rejected"`
	Errors        int       `json:"errors"`
	// Warmup counts rounds before From replayed only to rebuild the IMA
	// state of a boot that began before the window.
	Warmup int `json:"warmup"`
	// Continuous: every round in the window trusted, with valid
	// signatures and proofs, and no gap (including at either end).
	Continuous   bool      `json:"continuous"`
	Reverified   bool      `json:"reverified"`
	Gaps         []Gap     `json:"gaps"`
	FirstFailure *Outcome  `json:"first_failure,omitempty"`
	Outcomes     []Outcome `json:"rounds_detail"`
	// Integrity failures of records that could not be read as rounds.
	Problems failure.List `json:"problems,omitempty"`
}

// Replay re-verifies the rounds of agent in [from, to): record
// signatures, transparency proofs, blob hashes, AK registration, sequence
// and IMA continuity, and the evidence through opts.Verifier; it names the
// gaps and the first failure. It needs only the archive, not the agent.
func Replay(ctx context.Context, src Source, agent string, from, to time.Time, opts ReplayOptions) (*Report, error) {
	if len(opts.Keys) == 0 {
		return nil, errors.New("replay: no trusted verifier keys")
	}
	if len(opts.Logs) == 0 && !opts.AllowUnproven {
		return nil, errors.New("replay: no trusted transparency log keys")
	}
	if opts.GapFactor <= 0 {
		opts.GapFactor = 3
	}
	if opts.Interval <= 0 {
		opts.Interval = 2 * time.Second
	}
	v := opts.Verifier
	rep := &Report{AgentID: agent, From: from.UTC(), To: to.UTC(), Gaps: []Gap{}, Reverified: v != nil}
	if v == nil {
		v = RecordedVerdicts{}
	}
	r := &replayer{ctx: ctx, src: src, opts: opts, v: v, rep: rep, aks: map[Ref]bool{}, blobCache: map[Ref][]byte{}}

	// Registrations of all time: the AKs the registrar vouched for.
	err := src.Scan(ctx, Query{Kind: KindRegistration, AgentID: agent, To: to}, func(st *Stored) error {
		r.seen(st)
		reg, fs := r.open(st)
		if reg == nil {
			rep.Problems.Add(fs...)
			return nil
		}
		rep.Registrations++
		rep.Problems.Add(fs...)
		r.aks[reg.(*Registration).AK] = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Rounds before the window since the last boot start rebuild the IMA
	// state (stored incrementally).
	var warm []*Stored
	err = src.Scan(ctx, Query{Kind: KindRound, AgentID: agent, To: from}, func(st *Stored) error {
		rd, err := st.Record.decode()
		if err == nil && rd.(*Round).Evidence.IMAStart == 0 {
			warm = warm[:0]
		}
		warm = append(warm, st)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, o := range r.openBatch(warm) {
		r.round(o, true)
		rep.Warmup++
	}
	r.lastTime = from
	if err := r.pipeline(Query{Kind: KindRound, AgentID: agent, From: from, To: to}); err != nil {
		return nil, err
	}
	r.gap(to, opts.Interval)
	rep.Continuous = rep.Rounds > 0 && rep.Trusted == rep.Rounds && len(rep.Gaps) == 0 && len(rep.Problems) == 0
	return rep, nil
}

type replayer struct {
	ctx      context.Context
	src      Source
	opts     ReplayOptions
	v        RoundVerifier
	rep      *Report
	aks      map[Ref]bool
	prev     *ReplayState
	lastTime time.Time
	cpCache  sync.Map
	// blobCache keeps blobs rounds share (AK, policies, UEFI log of a
	// boot); IMA lines are per round and never cached.
	blobCache map[Ref][]byte
	// batchBlobs are the current batch's IMA lines, read ahead.
	batchBlobs map[Ref][]byte
}

// opened is a record after the parallel stage: signature and proofs
// checked, body decoded.
type opened struct {
	st   *Stored
	body any
	fs   failure.List
}

// openedBatch is a batch after the parallel stage, with the per-round
// blobs (IMA lines) of its rounds read ahead.
type openedBatch struct {
	recs  []opened
	blobs map[Ref][]byte
}

// BlobBatcher is implemented by sources that read many blobs in one
// query; replay reads each batch's IMA lines with it. Missing refs are
// absent from the map.
type BlobBatcher interface {
	Blobs(ctx context.Context, refs []Ref) (map[Ref][]byte, error)
}

// replayBatch is how many rounds go through the parallel stage at once.
const replayBatch = 512

// pipeline replays the rounds q selects in three overlapping stages: the
// scan, the order-independent checks of a batch (signatures, proofs,
// decoding, reading its IMA lines) on all cores, and the sequential rest
// (continuity, the RoundVerifier) for the batch before it.
func (r *replayer) pipeline(q Query) error {
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	scanned := make(chan []*Stored, 2)
	openedCh := make(chan openedBatch, 2)
	scanErr := make(chan error, 1)
	go func() {
		defer close(scanned)
		var batch []*Stored
		send := func() error {
			select {
			case scanned <- batch:
				batch = nil
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		err := r.src.Scan(ctx, q, func(st *Stored) error {
			if batch = append(batch, st); len(batch) == replayBatch {
				return send()
			}
			return ctx.Err()
		})
		if err == nil && len(batch) > 0 {
			err = send()
		}
		scanErr <- err
	}()
	go func() {
		defer close(openedCh)
		for b := range scanned {
			ob := openedBatch{recs: r.openBatch(b)}
			ob.blobs = r.prefetch(ctx, ob.recs)
			select {
			case openedCh <- ob:
			case <-ctx.Done():
				return
			}
		}
	}()
	for ob := range openedCh {
		r.batchBlobs = ob.blobs
		for _, o := range ob.recs {
			r.round(o, false)
		}
	}
	r.batchBlobs = nil
	if err := <-scanErr; err != nil {
		return err
	}
	return r.ctx.Err()
}

// prefetch reads the IMA lines of a batch's rounds in one query when the
// source can; anything it misses is read (or reported missing) one by one.
func (r *replayer) prefetch(ctx context.Context, recs []opened) map[Ref][]byte {
	bb, ok := r.src.(BlobBatcher)
	if !ok {
		return nil
	}
	var refs []Ref
	for _, o := range recs {
		if rd, ok := o.body.(*Round); ok && rd.Evidence.IMALines != "" {
			refs = append(refs, rd.Evidence.IMALines)
		}
	}
	if len(refs) == 0 {
		return nil
	}
	m, err := bb.Blobs(ctx, refs)
	if err != nil {
		return nil
	}
	return m
}

// openBatch checks signatures and proofs of a batch on all cores; the
// order-dependent rest of replay runs sequentially after it.
func (r *replayer) openBatch(batch []*Stored) []opened {
	out := make([]opened, len(batch))
	workers := min(runtime.GOMAXPROCS(0), len(batch))
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(batch); i += workers {
				body, fs := r.open(batch[i])
				out[i] = opened{batch[i], body, fs}
			}
		}(w)
	}
	wg.Wait()
	return out
}

func (r *replayer) seen(st *Stored) {
	if r.opts.OnRecord != nil {
		r.opts.OnRecord(st)
	}
}

// open checks signature and proofs and decodes the body. A nil result
// means the record cannot be used at all.
func (r *replayer) open(st *Stored) (any, failure.List) {
	var fs failure.List
	ctx := map[string]any{"record_id": st.ID, "agent_id": st.Record.AgentID, "seq": st.Record.Seq}
	body, err := st.Record.Open(r.opts.Keys)
	if err != nil {
		id := IDMalformed
		if errors.Is(err, ErrSignature) {
			id = IDSignature
		}
		fs.Rejectf(id, ctx, "%v", err)
		return nil, fs
	}
	proved := 0
	for _, lk := range r.opts.Logs {
		raw, ok := st.Proofs[lk.Log]
		if !ok {
			continue
		}
		var p Proof
		if err := json.Unmarshal(raw, &p); err != nil {
			fs.Rejectf(IDProofInvalid, ctx, "%s proof of record %d is malformed: %v", lk.Log, st.ID, err)
			continue
		}
		if err := verifyProofCached(&p, &st.Record, r.opts.Logs, &r.cpCache); err != nil {
			fs.Rejectf(IDProofInvalid, ctx, "record %d: %v", st.ID, err)
			continue
		}
		proved++
	}
	if proved == 0 && len(fs) == 0 && !r.opts.AllowUnproven {
		fs.Rejectf(IDProofMissing, ctx, "record %d (%s %s/%d) has no transparency proof", st.ID, st.Record.Kind, st.Record.AgentID, st.Record.Seq)
	}
	return body, fs
}

func (r *replayer) blob(ref Ref, what string, fs *failure.List, ctx map[string]any, shared bool) []byte {
	if ref == "" {
		return nil
	}
	if b, ok := r.blobCache[ref]; ok && shared {
		if r.opts.OnBlob != nil {
			r.opts.OnBlob(ref, b)
		}
		return b
	}
	b, ok := r.batchBlobs[ref]
	var err error
	if !ok {
		b, err = r.src.Blob(r.ctx, ref)
	}
	if err != nil {
		fs.Rejectf(IDBlobMissing, ctx, "%s %s is missing: %v", what, ref, err)
		return nil
	}
	if RefOf(b) != ref {
		fs.Rejectf(IDBlobCorrupt, ctx, "%s %s does not match its hash", what, ref)
		return nil
	}
	if shared {
		if len(r.blobCache) >= 256 {
			clear(r.blobCache)
		}
		r.blobCache[ref] = b
	}
	if r.opts.OnBlob != nil {
		r.opts.OnBlob(ref, b)
	}
	return b
}

func (r *replayer) gap(t time.Time, ivl time.Duration) {
	limit := time.Duration(float64(ivl) * r.opts.GapFactor)
	if d := t.Sub(r.lastTime); d > limit {
		r.rep.Gaps = append(r.rep.Gaps, Gap{From: r.lastTime, To: t, Duration: d})
	}
}

func (r *replayer) round(o opened, warmup bool) {
	st, body, fs := o.st, o.body, o.fs
	r.seen(st)
	ctx := map[string]any{"record_id": st.ID, "agent_id": st.Record.AgentID, "seq": st.Record.Seq}
	out := Outcome{Seq: st.Record.Seq, Time: st.Record.Time}
	for _, lk := range r.opts.Logs {
		if _, ok := st.Proofs[lk.Log]; ok && !hasID(fs, IDProofInvalid) {
			out.Proofs = append(out.Proofs, lk.Log)
		}
	}
	if body == nil {
		out.Verdict, out.Failures = fs.Verdict(), fs
		r.finish(out, warmup, r.opts.Interval, nil)
		return
	}
	rd := body.(*Round)
	out.Recorded, out.RuntimePolicy, out.MBPolicy = rd.Verdict, rd.RuntimePolicy, rd.MBPolicy
	ivl := r.opts.Interval
	if rd.IntervalMS > 0 {
		ivl = time.Duration(rd.IntervalMS) * time.Millisecond
	}
	in := &RoundInput{Round: rd}
	in.AK = r.blob(rd.Evidence.AK, "attestation key", &fs, ctx, true)
	in.IMALines = r.blob(rd.Evidence.IMALines, "IMA lines", &fs, ctx, false)
	in.UEFILog = r.blob(rd.Evidence.UEFILog, "UEFI event log", &fs, ctx, true)
	in.RuntimePolicy = r.blob(rd.RuntimePolicy, "runtime policy", &fs, ctx, true)
	in.MBPolicy = r.blob(rd.MBPolicy, "measured-boot policy", &fs, ctx, true)
	in.TPMPolicy = r.blob(rd.TPMPolicy, "TPM policy", &fs, ctx, true)
	in.Data = r.blob(rd.Evidence.Data, "PCR 16 data", &fs, ctx, true)
	if rd.Evidence.AK == "" || !r.aks[rd.Evidence.AK] {
		fs.Rejectf(IDUnregisteredAK, ctx, "round %d was checked with AK %s, which no registration of %s names", rd.Seq, rd.Evidence.AK, rd.AgentID)
	}
	prev := r.prev
	if prev != nil {
		if rd.Seq <= prev.Seq {
			fs.Rejectf(IDSequence, ctx, "round %d follows round %d: sequence must increase", rd.Seq, prev.Seq)
		}
		if rd.Evidence.BootTime != prev.BootTime && rd.Evidence.IMAStart != 0 {
			fs.Rejectf(IDIMADiscontinued, ctx, "round %d starts a new boot at IMA entry %d, want 0", rd.Seq, rd.Evidence.IMAStart)
		}
		if rd.Evidence.BootTime == prev.BootTime && rd.Evidence.IMAStart != 0 && rd.Evidence.IMAStart != prev.IMANext {
			fs.Rejectf(IDIMADiscontinued, ctx, "round %d sends IMA entries from %d, the previous round ended at %d", rd.Seq, rd.Evidence.IMAStart, prev.IMANext)
		}
	} else if rd.Evidence.IMAStart != 0 {
		fs.Rejectf(IDIMADiscontinued, ctx, "round %d sends IMA entries from %d but no earlier round of this boot is archived", rd.Seq, rd.Evidence.IMAStart)
	}
	if prev != nil && rd.Evidence.BootTime != prev.BootTime {
		prev = nil // a new boot: the verifier starts over
	}
	next := &ReplayState{Seq: rd.Seq, Time: rd.Time, BootTime: rd.Evidence.BootTime, IMANext: rd.Evidence.IMAStart + rd.Evidence.IMACount}
	var res *RoundResult
	var err error
	if hasID(fs, IDBlobMissing) || hasID(fs, IDBlobCorrupt) {
		// Evidence incomplete: not evaluated; the next round gets no
		// verifier state (prev.Verifier nil) and must say so.
		err = errSkipped
	} else {
		res, err = r.v.VerifyRound(r.ctx, prev, in)
	}
	switch {
	case err == errSkipped:
	case err != nil:
		fs.Errorf(IDVerifier, ctx, "round %d could not be evaluated: %v", rd.Seq, err)
	case res == nil:
		fs.Errorf(IDVerifier, ctx, "round %d: verifier returned no result", rd.Seq)
	case res.Verdict != failure.VerdictTrusted && len(res.Failures) == 0:
		fs.Errorf(IDVerifier, ctx, "round %d: verifier said %s without naming a failure", rd.Seq, res.Verdict)
	default:
		next.Verifier = res.Verifier
		if res.IMANext != nil {
			next.IMANext = *res.IMANext
		}
		fs.Add(res.Failures...)
		if res.Verdict != rd.Verdict {
			fs.Rejectf(IDVerdictMismatch, ctx, "round %d was recorded %s, replay says %s", rd.Seq, rd.Verdict, res.Verdict)
		}
	}
	out.Failures = fs
	out.Verdict = fs.Verdict()
	r.prev = next
	r.finish(out, warmup, ivl, rd)
}

func (r *replayer) finish(out Outcome, warmup bool, ivl time.Duration, rd *Round) {
	if warmup {
		return
	}
	r.gap(out.Time, ivl)
	r.lastTime = out.Time
	rep := r.rep
	rep.Rounds++
	switch out.Verdict {
	case failure.VerdictTrusted:
		rep.Trusted++
	case failure.VerdictRejected:
		rep.Rejected++
	default:
		rep.Errors++
	}
	if out.Verdict != failure.VerdictTrusted && rep.FirstFailure == nil {
		o := out
		rep.FirstFailure = &o
	}
	rep.Outcomes = append(rep.Outcomes, out)
}

func hasID(l failure.List, id string) bool {
	for _, f := range l {
		if f.ID == id {
			return true
		}
	}
	return false
}

// String is a one-line human summary.
func (rep *Report) String() string {
	state := "NOT continuously attested"
	if rep.Continuous {
		state = "continuously attested"
	}
	return fmt.Sprintf("%s %s–%s: %s (%d rounds: %d trusted, %d rejected, %d errors; %d gaps)",
		rep.AgentID, rep.From.Format(time.RFC3339), rep.To.Format(time.RFC3339), state,
		rep.Rounds, rep.Trusted, rep.Rejected, rep.Errors, len(rep.Gaps))
}
