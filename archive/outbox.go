package archive

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"
)

// TransparencyLog enters records in a log. Submitting a record the log
// already holds must return its existing entry, never a second one: the
// outbox may submit again after a crash between the log's acknowledgement
// and the store's commit.
type TransparencyLog interface {
	// Name keys outbox rows and proofs (LogLocal, LogRekor).
	Name() string
	// Submit logs rec; signerPEM is the PEM public key of rec's signer.
	Submit(ctx context.Context, rec *Record, signerPEM []byte) (*Proof, error)
}

// Outbox moves records from the store's outbox into a transparency log.
// Each row is deleted only in the transaction that stores its proof, so
// killing the process at any point loses nothing; the log's own
// deduplication keeps a retried record from being logged twice.
type Outbox struct {
	Store Store
	Log   TransparencyLog
	// Keys holds the public keys of the record signers (Rekor needs the
	// signer's key in each entry).
	Keys Keyring
	// Batch is how many rows one pass takes (default 100).
	Batch int
	// MinBackoff and MaxBackoff bound the retry delay, which doubles per
	// failed attempt (defaults 1 s and 5 min).
	MinBackoff, MaxBackoff time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// OnError, if set, is told about store errors Run keeps going after.
	OnError func(error)
}

func (o *Outbox) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// backoff returns the delay after attempts failures, with ±25 % jitter.
func (o *Outbox) backoff(attempts int) time.Duration {
	lo, hi := o.MinBackoff, o.MaxBackoff
	if lo <= 0 {
		lo = time.Second
	}
	if hi <= 0 {
		hi = 5 * time.Minute
	}
	d := lo
	for i := 0; i < attempts && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d - d/4 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// batchLog is implemented by logs that can take several records under one
// checkpoint (LocalLog).
type batchLog interface {
	SubmitBatch(ctx context.Context, recs []*Record) ([]*Proof, error)
}

// Drain makes one pass over the due rows and returns how many were
// acknowledged. A log failure is recorded on the row (attempts, next try,
// last error) and is not returned; store errors are.
func (o *Outbox) Drain(ctx context.Context) (int, error) {
	batch := o.Batch
	if batch <= 0 {
		batch = 100
	}
	name := o.Log.Name()
	done := 0
	for {
		rows, err := o.Store.Pending(ctx, name, o.now(), batch)
		if err != nil || len(rows) == 0 {
			return done, err
		}
		proofs := make([]*Proof, len(rows))
		errs := make([]error, len(rows))
		if bl, ok := o.Log.(batchLog); ok {
			recs := make([]*Record, len(rows))
			for i, r := range rows {
				recs[i] = &r.Record
			}
			ps, err := bl.SubmitBatch(ctx, recs)
			for i := range rows {
				if err != nil {
					errs[i] = err
				} else {
					proofs[i] = ps[i]
				}
			}
		} else {
			for i, r := range rows {
				pem, err := o.Keys.PublicPEM(r.Record.KeyID)
				if err != nil {
					errs[i] = err
					continue
				}
				proofs[i], errs[i] = o.Log.Submit(ctx, &r.Record, pem)
			}
		}
		progress := 0
		for i, r := range rows {
			if ctx.Err() != nil {
				return done, ctx.Err()
			}
			if errs[i] != nil {
				next := o.now().Add(o.backoff(r.Attempts))
				if err := o.Store.Retry(ctx, r.ID, name, next, errs[i].Error()); err != nil {
					return done, err
				}
				continue
			}
			b, err := json.Marshal(proofs[i])
			if err != nil {
				return done, err
			}
			if err := o.Store.Ack(ctx, r.ID, name, b); err != nil {
				return done, fmt.Errorf("record %d: %w", r.ID, err)
			}
			done++
			progress++
		}
		if progress == 0 {
			return done, nil
		}
	}
}

// Run drains until ctx is done, polling every interval (default 1 s).
func (o *Outbox) Run(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := o.Drain(ctx); err != nil && ctx.Err() == nil && o.OnError != nil {
			// A store error: keep trying, the store may come back.
			o.OnError(err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
