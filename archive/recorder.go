package archive

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/zest-attest/zest/verifier/pull"
	"github.com/zest-attest/zest/verifier/server"
)

// AgentMeta is what the archive needs about an agent besides its rounds:
// the key material to register and the policies its rounds are judged
// against (stored once, by content hash).
type AgentMeta struct {
	AK, EK, EKCert, MTLSCert           []byte
	RuntimePolicy, MBPolicy, TPMPolicy []byte
	Interval                           time.Duration
	// Options names the weakening options in force (Allow…).
	Options []string
}

type agentRec struct {
	meta                          AgentMeta
	ak, runtime, mbPolicy, tpmPol Ref
	seq                           uint64
	blobsStored                   bool
	// resync: a commit failed without it being known whether it reached
	// the database; the next commit first reads the agent's sequence back.
	resync bool
}

// Recorder archives every round the verifier service produces: it is the
// pull.Sink of the polling loop and the server.Store of push mode. Each
// round is signed and committed with its blobs and outbox row in one
// transaction, with the verifier's per-agent state inside the record, so a
// restart resumes every agent from its last committed round.
type Recorder struct {
	W *Writer
	// Verifier names this verifier instance in every record.
	Verifier string

	mu      sync.Mutex
	agents  map[string]*agentRec
	pending map[string][]byte // push states without a round (open challenges)
}

// Register records an agent's registration (AK and certificates) and
// remembers its policies. It resumes the agent's round sequence from the
// store.
func (r *Recorder) Register(ctx context.Context, id string, m AgentMeta) error {
	if len(m.AK) == 0 {
		return fmt.Errorf("archive: agent %s: no AK to register", id)
	}
	ar := &agentRec{meta: m, ak: RefOf(m.AK)}
	blobs := []Blob{NewBlob(m.AK)}
	reg := &Registration{Type: TypeRegistration, AgentID: id, Time: time.Now().UTC(), AK: ar.ak, Verifier: r.Verifier}
	for _, b := range []struct {
		data []byte
		ref  *Ref
	}{{m.EK, &reg.EK}, {m.EKCert, &reg.EKCert}, {m.MTLSCert, &reg.MTLSCert}} {
		if len(b.data) > 0 {
			*b.ref = RefOf(b.data)
			blobs = append(blobs, NewBlob(b.data))
		}
	}
	if len(m.RuntimePolicy) > 0 {
		ar.runtime = RefOf(m.RuntimePolicy)
	}
	if len(m.MBPolicy) > 0 {
		ar.mbPolicy = RefOf(m.MBPolicy)
	}
	if len(m.TPMPolicy) > 0 {
		ar.tpmPol = RefOf(m.TPMPolicy)
	}
	latest, err := r.W.Store.Latest(ctx, KindRound, id)
	switch {
	case err == nil:
		ar.seq = latest.Record.Seq
	case !errors.Is(err, ErrNotFound):
		return err
	}
	if _, err := r.W.RecordRegistration(ctx, reg, blobs...); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.agents == nil {
		r.agents = map[string]*agentRec{}
		r.pending = map[string][]byte{}
	}
	r.agents[id] = ar
	return nil
}

// LatestState returns the state recorded with the agent's newest round
// (nil when it has none).
func (r *Recorder) LatestState(ctx context.Context, id string) (json.RawMessage, error) {
	latest, err := r.W.Store.Latest(ctx, KindRound, id)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	v, err := latest.Record.Open(Keyring{r.W.Signer.KeyID: r.W.Signer.Public()})
	if err != nil {
		return nil, err
	}
	return v.(*Round).State, nil
}

// Session returns a pull agent's session as of its newest round.
func (r *Recorder) Session(ctx context.Context, id string) (*pull.Session, error) {
	raw, err := r.LatestState(ctx, id)
	if err != nil || raw == nil {
		return &pull.Session{}, err
	}
	s := &pull.Session{}
	if err := json.Unmarshal(raw, s); err != nil {
		return nil, fmt.Errorf("archive: state of %s: %w", id, err)
	}
	return s, nil
}

func (r *Recorder) agent(id string) (*agentRec, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ar := r.agents[id]
	if ar == nil {
		return nil, fmt.Errorf("archive: agent %s is not registered", id)
	}
	return ar, nil
}

// commit signs and stores one round; seq is assigned here.
//
// A failed commit is ambiguous when the connection broke after the
// database committed (a PostgreSQL restart, a network cut): the round may
// be stored although Append returned an error. commit asks the store right
// away whether the round is there and reports success if it is; when the
// store cannot answer yet, the next commit reads the agent's newest round
// first, so a sequence number is never used twice.
func (r *Recorder) commit(ctx context.Context, ar *agentRec, rd *Round, blobs []Blob) error {
	rd.Type, rd.Verifier = TypeRound, r.Verifier
	rd.Evidence.AK, rd.RuntimePolicy, rd.MBPolicy, rd.TPMPolicy = ar.ak, ar.runtime, ar.mbPolicy, ar.tpmPol
	rd.IntervalMS = ar.meta.Interval.Milliseconds()
	rd.Options = ar.meta.Options
	r.mu.Lock()
	resync, seq, stored := ar.resync, ar.seq, ar.blobsStored
	r.mu.Unlock()
	if !stored {
		blobs = append(blobs, NewBlob(ar.meta.AK))
		for _, p := range [][]byte{ar.meta.RuntimePolicy, ar.meta.MBPolicy, ar.meta.TPMPolicy} {
			if len(p) > 0 {
				blobs = append(blobs, NewBlob(p))
			}
		}
	}
	if resync {
		latest, err := r.W.Store.Latest(ctx, KindRound, rd.AgentID)
		switch {
		case err == nil:
			seq = max(seq, latest.Record.Seq)
		case !errors.Is(err, ErrNotFound):
			return fmt.Errorf("archive: agent %s: reading back the last round: %w", rd.AgentID, err)
		}
	}
	rd.Seq = seq + 1
	e, err := r.W.RoundEntry(rd, blobs...)
	if err != nil {
		return err
	}
	if _, err := r.W.Store.Append(ctx, r.W.Log, []Entry{e}); err != nil {
		latest, lerr := r.W.Store.Latest(ctx, KindRound, rd.AgentID)
		if lerr != nil || latest.Record.Digest() != e.Record.Digest() {
			r.mu.Lock()
			ar.seq, ar.resync = seq, true
			r.mu.Unlock()
			return err
		}
		// Committed after all: the error came after the commit.
	}
	r.mu.Lock()
	ar.seq, ar.resync, ar.blobsStored = rd.Seq, false, true
	r.mu.Unlock()
	return nil
}

// Round implements pull.Sink.
func (r *Recorder) Round(ctx context.Context, pr *pull.Round, s *pull.Session) error {
	ar, err := r.agent(pr.Agent)
	if err != nil {
		return err
	}
	state, err := json.Marshal(s)
	if err != nil {
		return err
	}
	rd := &Round{AgentID: pr.Agent, Time: pr.End.UTC(), Verdict: pr.Result.Verdict, Failures: pr.Result.Failures, State: state}
	rd.Evidence = Evidence{Mode: "pull", Nonce: pr.Nonce, Mask: pr.Mask}
	var blobs []Blob
	if resp := pr.Response; resp != nil {
		rd.Evidence.Quote, rd.Evidence.HashAlg, rd.Evidence.SignAlg, rd.Evidence.EncAlg = resp.Quote, resp.HashAlg, resp.SignAlg, resp.EncAlg
		if resp.IMAMeasurementList != nil {
			lines := []byte(*resp.IMAMeasurementList)
			if resp.IMAMeasurementListEntry != nil {
				rd.Evidence.IMAStart = *resp.IMAMeasurementListEntry
			}
			rd.Evidence.IMACount = countLines(lines)
			if len(lines) > 0 {
				rd.Evidence.IMALines = RefOf(lines)
				blobs = append(blobs, NewBlob(lines))
			}
		}
		if resp.MBMeasurementList != nil && *resp.MBMeasurementList != "" {
			if b, err := base64.StdEncoding.DecodeString(*resp.MBMeasurementList); err == nil {
				rd.Evidence.UEFILog = RefOf(b)
				blobs = append(blobs, NewBlob(b))
			}
		}
		if resp.BootTime != nil {
			rd.Evidence.BootTime = *resp.BootTime
		}
	}
	if s.PubKey != "" && pr.Result.Quote != nil {
		d := []byte(s.PubKey)
		rd.Evidence.Data = RefOf(d)
		blobs = append(blobs, NewBlob(d))
	}
	return r.commit(ctx, ar, rd, blobs)
}

// LoadPush implements server.Store: an open challenge if one is pending,
// else the state of the newest round.
func (r *Recorder) LoadPush(ctx context.Context, id string) ([]byte, error) {
	r.mu.Lock()
	p, ok := r.pending[id]
	r.mu.Unlock()
	if ok {
		return p, nil
	}
	return r.LatestState(ctx, id)
}

// CommitPush implements server.Store. A state without a round (a new
// challenge) is kept in memory: losing it in a crash only makes the agent
// ask again.
func (r *Recorder) CommitPush(ctx context.Context, id string, state []byte, pr *server.PushRound) error {
	if pr == nil {
		r.mu.Lock()
		r.pending[id] = append([]byte(nil), state...)
		r.mu.Unlock()
		return nil
	}
	ar, err := r.agent(id)
	if err != nil {
		return err
	}
	rd := &Round{AgentID: id, Time: pr.End.UTC(), Verdict: pr.Result.Verdict, Failures: pr.Result.Failures, State: state}
	rd.Evidence = Evidence{Mode: "push", Quote: pr.Quote, Nonce: base64.StdEncoding.EncodeToString(pr.Challenge),
		HashAlg: pr.HashAlg, Mask: pr.Mask, IMAStart: pr.IMAStart}
	var blobs []Blob
	if pr.IMALines != "" {
		lines := []byte(pr.IMALines)
		rd.Evidence.IMACount = countLines(lines)
		rd.Evidence.IMALines = RefOf(lines)
		blobs = append(blobs, NewBlob(lines))
	}
	if len(pr.MBLog) > 0 {
		rd.Evidence.UEFILog = RefOf(pr.MBLog)
		blobs = append(blobs, NewBlob(pr.MBLog))
	}
	if err := r.commit(ctx, ar, rd, blobs); err != nil {
		return err
	}
	r.mu.Lock()
	delete(r.pending, id)
	r.mu.Unlock()
	return nil
}

func countLines(b []byte) uint64 {
	var n uint64
	for i, c := range b {
		if c == '\n' || (i == len(b)-1) {
			n++
		}
	}
	return n
}

var (
	_ pull.Sink    = (*Recorder)(nil)
	_ server.Store = (*Recorder)(nil)
)
