package archive

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/zest-attest/zest/verifier/failure"
)

func TestLocalLogProofs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l, err := OpenLocalLog(dir, "zest.test/log")
	if err != nil {
		t.Fatal(err)
	}
	s := testSigner(t, "ecdsa-p256")
	var recs []*Record
	for i := uint64(1); i <= 13; i++ {
		recs = append(recs, round(t, s, "a1", i, t0.Add(time.Duration(i)*time.Second), 0, 1, failure.VerdictTrusted).Record)
	}
	var proofs []*Proof
	for _, r := range recs[:5] {
		p, err := l.Submit(ctx, r, nil)
		if err != nil {
			t.Fatal(err)
		}
		proofs = append(proofs, p)
	}
	ps, err := l.SubmitBatch(ctx, recs[5:])
	if err != nil {
		t.Fatal(err)
	}
	proofs = append(proofs, ps...)
	keys := []LogKey{l.Key()}
	for i, p := range proofs {
		if p.TreeIndex != int64(i) {
			t.Fatalf("record %d logged at %d", i, p.TreeIndex)
		}
		if err := VerifyProof(p, recs[i], keys); err != nil {
			t.Fatalf("proof %d (tree size %d): %v", i, p.TreeSize, err)
		}
	}
	// Submitting again returns the same index and does not grow the log.
	again, err := l.Submit(ctx, recs[3], nil)
	if err != nil || again.TreeIndex != 3 || l.Size() != 13 {
		t.Fatalf("resubmit: index %d size %d %v", again.TreeIndex, l.Size(), err)
	}
	// A second process cannot open the log.
	if _, err := OpenLocalLog(dir, "zest.test/log"); err == nil {
		t.Fatal("log opened twice")
	}
	l.Close()
	// Reopen: state comes back from disk; trailing garbage (a crash
	// mid-append) is dropped.
	f, _ := os.OpenFile(filepath.Join(dir, "entries"), os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte{0, 0, 0, 9, 'g', 'a'})
	f.Close()
	l, err = OpenLocalLog(dir, "ignored once created")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.Size() != 13 {
		t.Fatalf("size after reopen %d", l.Size())
	}
	p, err := l.Submit(ctx, recs[0], nil)
	if err != nil || p.TreeIndex != 0 || VerifyProof(p, recs[0], keys) != nil {
		t.Fatalf("after reopen: %+v %v", p, err)
	}

	// Tampering with anything the proof covers is caught.
	tamper := []struct {
		name string
		mod  func(p *Proof, r *Record) (*Proof, *Record)
	}{
		{"record body", func(p *Proof, r *Record) (*Proof, *Record) {
			c := *r
			c.Body = append([]byte(nil), r.Body...)
			c.Body[10] ^= 1
			return p, &c
		}},
		{"proof hash", func(p *Proof, r *Record) (*Proof, *Record) {
			c := *p
			c.Hashes = append([][]byte(nil), p.Hashes...)
			c.Hashes[0] = make([]byte, 32)
			return &c, r
		}},
		{"checkpoint", func(p *Proof, r *Record) (*Proof, *Record) {
			c := *p
			c.Checkpoint = "x" + p.Checkpoint
			return &c, r
		}},
		{"tree size", func(p *Proof, r *Record) (*Proof, *Record) {
			c := *p
			c.TreeSize--
			return &c, r
		}},
		{"other record", func(p *Proof, r *Record) (*Proof, *Record) { return p, recs[1] }},
	}
	for _, tt := range tamper {
		p2, r2 := tt.mod(proofs[4], recs[4])
		if err := VerifyProof(p2, r2, keys); !errors.Is(err, ErrProof) {
			t.Errorf("%s: tampered proof accepted: %v", tt.name, err)
		}
	}
	other, _ := OpenLocalLog(t.TempDir(), "zest.test/log")
	defer other.Close()
	if err := VerifyProof(proofs[4], recs[4], []LogKey{other.Key()}); err == nil {
		t.Error("proof verified with another log's key")
	}
}

// TestOutboxKill kills a draining process with SIGKILL at random points,
// then drains the rest: every record ends with one verified proof, the log
// holds each record exactly once.
func TestOutboxKill(t *testing.T) {
	if os.Getenv("ZEST_OUTBOX_CHILD") != "" {
		return
	}
	ctx := context.Background()
	dir := t.TempDir()
	dsn := filepath.Join(dir, "archive.db")
	logDir := filepath.Join(dir, "log")
	st := openTestStore(t, dsn)
	s := testSigner(t, "ecdsa-p256")
	var es []Entry
	const n = 400
	for i := uint64(1); i <= n; i++ {
		es = append(es, round(t, s, "a1", i, t0.Add(time.Duration(i)*time.Second), 0, 1, failure.VerdictTrusted))
	}
	if _, err := st.Append(ctx, LogLocal, es); err != nil {
		t.Fatal(err)
	}
	st.Close()
	for i := 0; i < 6; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestOutboxChild$")
		cmd.Env = append(os.Environ(), "ZEST_OUTBOX_CHILD="+dsn, "ZEST_OUTBOX_LOG="+logDir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(60+i*25) * time.Millisecond)
		cmd.Process.Kill()
		cmd.Wait()
	}
	st = openTestStore(t, dsn)
	l, err := OpenLocalLog(logDir, "zest.test/log")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	before, _ := st.Status(ctx)
	t.Logf("after kills: %d proved, backlog %d, log size %d", before.Proved, before.Backlog[LogLocal], l.Size())
	ob := &Outbox{Store: st, Log: l, Keys: keyringOf(t, s), Batch: 7}
	if _, err := ob.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	status, _ := st.Status(ctx)
	if status.Backlog[LogLocal] != 0 || status.Proved != n {
		t.Fatalf("after drain: %+v", status)
	}
	if l.Size() != n {
		t.Fatalf("log holds %d entries for %d records", l.Size(), n)
	}
	seen := map[int64]bool{}
	st.Scan(ctx, Query{}, func(sr *Stored) error {
		var p Proof
		if err := json.Unmarshal(sr.Proofs[LogLocal], &p); err != nil {
			t.Fatal(err)
		}
		if seen[p.TreeIndex] {
			t.Fatalf("index %d used twice", p.TreeIndex)
		}
		seen[p.TreeIndex] = true
		if err := VerifyProof(&p, &sr.Record, []LogKey{l.Key()}); err != nil {
			t.Fatal(err)
		}
		return nil
	})
}

// TestOutboxChild is the process TestOutboxKill kills.
func TestOutboxChild(t *testing.T) {
	dsn := os.Getenv("ZEST_OUTBOX_CHILD")
	if dsn == "" {
		t.Skip("run by TestOutboxKill")
	}
	st, err := OpenStore(context.Background(), dsn, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := OpenLocalLog(os.Getenv("ZEST_OUTBOX_LOG"), "zest.test/log")
	if err != nil {
		t.Fatal(err)
	}
	ob := &Outbox{Store: st, Log: l, Batch: 1}
	ob.Drain(context.Background())
	time.Sleep(time.Hour) // wait to be killed
}

func TestBackoff(t *testing.T) {
	o := &Outbox{MinBackoff: time.Second, MaxBackoff: time.Minute}
	for _, tt := range []struct {
		attempts int
		lo, hi   time.Duration
	}{{0, 750 * time.Millisecond, 1250 * time.Millisecond}, {3, 6 * time.Second, 10 * time.Second}, {50, 45 * time.Second, 75 * time.Second}} {
		for i := 0; i < 20; i++ {
			if d := o.backoff(tt.attempts); d < tt.lo || d > tt.hi {
				t.Fatalf("backoff(%d) = %v, want in [%v,%v]", tt.attempts, d, tt.lo, tt.hi)
			}
		}
	}
}
