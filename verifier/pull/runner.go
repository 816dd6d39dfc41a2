package pull

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/zest-attest/zest/verifier/failure"
)

// Sink receives every round, with the session state to resume from. It is
// called from several goroutines (never twice at once for one agent). When
// it fails, the error is reported through Status and the session goes back
// to where it was before the round, so the next round re-fetches what was
// not recorded.
type Sink interface {
	Round(ctx context.Context, r *Round, s *Session) error
}

// Status is the latest known condition of one agent.
type Status struct {
	Agent      string          `json:"agent"`
	Verdict    failure.Verdict `json:"verdict"`
	LastRound  time.Time       `json:"last_round"`
	LastTrust  time.Time       `json:"last_trusted,omitempty"`
	Rounds     uint64          `json:"rounds"`
	Errors     int             `json:"consecutive_errors"`
	FirstFail  []string        `json:"failures,omitempty"`
	SinkErr    string          `json:"sink_error,omitempty"`
	NextRoundS float64         `json:"next_round_seconds"`
}

// Runner attests many agents on an interval.
type Runner struct {
	// Interval between the start of two rounds of one agent.
	Interval time.Duration
	// Concurrency bounds rounds in flight (0: 8).
	Concurrency int
	// MaxBackoff caps the wait after transport errors (0: 10×Interval).
	MaxBackoff time.Duration
	// Sink receives every round; nil discards.
	Sink Sink
	// OnRound, if set, is called after each round (metrics, logs).
	OnRound func(*Round)

	mu     sync.Mutex
	status map[string]*Status
}

// Statuses returns a snapshot of every agent's status.
func (r *Runner) Statuses() []Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Status, 0, len(r.status))
	for _, s := range r.status {
		out = append(out, *s)
	}
	return out
}

// Run attests every target until ctx ends. sessions holds each agent's
// resumed session (missing ones start fresh); Run updates them in place.
func (r *Runner) Run(ctx context.Context, targets []*Target, sessions map[string]*Session) error {
	if r.Interval <= 0 {
		r.Interval = 2 * time.Second
	}
	if r.Concurrency <= 0 {
		r.Concurrency = 8
	}
	if r.MaxBackoff <= 0 {
		r.MaxBackoff = 10 * r.Interval
	}
	r.mu.Lock()
	r.status = map[string]*Status{}
	for _, t := range targets {
		r.status[t.ID] = &Status{Agent: t.ID}
		if sessions[t.ID] == nil {
			sessions[t.ID] = &Session{}
		}
	}
	r.mu.Unlock()
	sem := make(chan struct{}, r.Concurrency)
	var wg sync.WaitGroup
	for _, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.loop(ctx, t, sessions[t.ID], sem)
		}()
	}
	wg.Wait()
	return ErrStopped
}

func (r *Runner) loop(ctx context.Context, t *Target, s *Session, sem chan struct{}) {
	// Spread the first rounds over one interval so agents do not all
	// start at once.
	wait := time.Duration(rand.Int64N(int64(r.Interval)))
	errors := 0
	for {
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		select {
		case <-ctx.Done():
			return
		case sem <- struct{}{}:
		}
		start := time.Now()
		before := *s
		round := Attest(ctx, t, s)
		<-sem
		if ctx.Err() != nil && round.Response == nil {
			return // shutting down: an interrupted round is not a result
		}
		var sinkErr error
		if r.Sink != nil {
			if sinkErr = r.Sink.Round(ctx, round, s); sinkErr != nil {
				// Not recorded: forget the round, so the next one asks
				// the agent for the same IMA entries again and the
				// archive has no hole.
				*s = before
			}
		}
		transport := round.Response == nil
		if transport {
			errors++
		} else {
			errors = 0
		}
		wait = r.Interval - time.Since(start)
		if errors > 0 {
			backoff := r.Interval << min(errors, 16)
			wait = min(backoff, r.MaxBackoff)
		}
		wait = max(wait, 0)
		r.update(t.ID, round, errors, sinkErr, wait)
		if r.OnRound != nil {
			r.OnRound(round)
		}
	}
}

func (r *Runner) update(id string, round *Round, errors int, sinkErr error, next time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.status[id]
	st.Verdict = round.Verdict()
	st.LastRound = round.End
	st.Rounds++
	st.Errors = errors
	st.NextRoundS = next.Seconds()
	st.FirstFail = round.Result.Failures.IDs()
	if st.Verdict == failure.VerdictTrusted {
		st.LastTrust = round.End
	}
	st.SinkErr = ""
	if sinkErr != nil {
		st.SinkErr = sinkErr.Error()
	}
}
