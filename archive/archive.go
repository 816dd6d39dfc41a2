package archive

import (
	"context"
	"fmt"
)

// Writer signs and stores what the verifier produces. Each call commits
// the record, its blobs and its outbox row in one transaction; the
// transparency log is fed afterwards by an Outbox.
type Writer struct {
	Store  Store
	Signer *Signer
	// Log names the transparency log records are queued for (LogLocal,
	// LogRekor); empty queues nothing.
	Log string
}

// RoundEntry builds the signed entry for a round and its blobs.
func (w *Writer) RoundEntry(r *Round, blobs ...Blob) (Entry, error) {
	rec, err := SignRound(w.Signer, r)
	if err != nil {
		return Entry{}, err
	}
	if err := haveRefs(r.Refs(), blobs); err != nil {
		return Entry{}, fmt.Errorf("round %s/%d: %w", r.AgentID, r.Seq, err)
	}
	return Entry{Record: rec, Blobs: blobs}, nil
}

// RecordRound signs and commits one round with its blobs (AK, IMA lines of
// the round, UEFI log, policies); blobs already stored may be omitted.
func (w *Writer) RecordRound(ctx context.Context, r *Round, blobs ...Blob) (int64, error) {
	e, err := w.RoundEntry(r, blobs...)
	if err != nil {
		return 0, err
	}
	ids, err := w.Store.Append(ctx, w.Log, []Entry{e})
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}

// RecordRegistration signs and commits a registration.
func (w *Writer) RecordRegistration(ctx context.Context, r *Registration, blobs ...Blob) (int64, error) {
	rec, err := SignRegistration(w.Signer, r)
	if err != nil {
		return 0, err
	}
	if err := haveRefs(r.Refs(), blobs); err != nil {
		return 0, fmt.Errorf("registration %s: %w", r.AgentID, err)
	}
	ids, err := w.Store.Append(ctx, w.Log, []Entry{{Record: rec, Blobs: blobs}})
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}

// haveRefs only checks blobs passed in hash to their references; a
// reference without a blob here must already be stored (replay reports it
// otherwise).
func haveRefs(refs []Ref, blobs []Blob) error {
	for _, b := range blobs {
		if RefOf(b.Data) != b.Ref {
			return fmt.Errorf("blob %s: data does not hash to its reference", b.Ref)
		}
	}
	return nil
}
