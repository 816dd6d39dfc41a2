package archive

import (
	"context"
	"testing"
	"time"

	"github.com/zest-attest/zest/fixtures/agent"
	"github.com/zest-attest/zest/verifier/failure"
	"github.com/zest-attest/zest/verifier/pull"
)

// TestRecordAndReplay attests the TPM-backed test agent in pull mode,
// archives every round through the Recorder (SQLite and PostgreSQL), logs
// them in the embedded transparency log, and replays the window with the
// real verifier: continuous while trusted, then the first failure named;
// a restarted recorder resumes the agent's sequence and IMA offset.
func TestRecordAndReplay(t *testing.T) {
	for _, b := range []struct {
		name string
		dsn  func(testing.TB) string
	}{{"sqlite", sqliteDSN}, {"postgres", pgDSN}} {
		t.Run(b.name, func(t *testing.T) { testRecordAndReplay(t, b.dsn(t)) })
	}
}

func testRecordAndReplay(t *testing.T, dsn string) {
	ctx := context.Background()
	a := agent.StartTest(t, agent.Options{BootAggregate: true})
	line := func(path, content string) string {
		l, err := agent.IMALine(agent.TemplateIMANG, "sha256", sum256(content), path, nil)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	target, policyJSON := pullTarget(t, a, map[string]string{"/usr/bin/bash": "bash"})

	st := openTestStore(t, dsn)
	signer := testSigner(t, "ecdsa-p256")
	llog, err := OpenLocalLog(t.TempDir(), "zest.test/log")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { llog.Close() })
	newRecorder := func() *Recorder {
		rec := &Recorder{W: &Writer{Store: st, Signer: signer, Log: LogLocal}, Verifier: "test"}
		if err := rec.Register(ctx, a.UUID(), AgentMeta{AK: a.AKPublic(), RuntimePolicy: policyJSON, Interval: 2 * time.Second}); err != nil {
			t.Fatal(err)
		}
		return rec
	}
	rec := newRecorder()
	from := time.Now().Add(-time.Second)
	attest := func(rec *Recorder, s *pull.Session, want failure.Verdict) {
		t.Helper()
		time.Sleep(2 * time.Millisecond)
		r := pull.Attest(ctx, target, s)
		if r.Verdict() != want {
			t.Fatalf("round: %v %v, want %v", r.Verdict(), r.Result.Failures, want)
		}
		if err := rec.Round(ctx, r, s); err != nil {
			t.Fatal(err)
		}
	}
	s := &pull.Session{}
	if err := a.AppendIMA(line("/usr/bin/bash", "bash")); err != nil {
		t.Fatal(err)
	}
	attest(rec, s, failure.VerdictTrusted)
	if err := a.AppendIMA(line("/usr/bin/bash", "bash")); err != nil {
		t.Fatal(err)
	}
	attest(rec, s, failure.VerdictTrusted)

	// Restart: a new recorder resumes the sequence and the session.
	rec = newRecorder()
	s2, err := rec.Session(ctx, a.UUID())
	if err != nil || s2.State.IMA.NextEntry != s.State.IMA.NextEntry || s2.PubKey == "" {
		t.Fatalf("resumed session %+v (err %v), want next entry %d", s2, err, s.State.IMA.NextEntry)
	}
	attest(rec, s2, failure.VerdictTrusted)
	mid := time.Now()
	if err := a.AppendIMA(line("/tmp/evil", "evil")); err != nil {
		t.Fatal(err)
	}
	attest(rec, s2, failure.VerdictRejected)
	if _, err := (&Outbox{Store: st, Log: llog}).Drain(ctx); err != nil {
		t.Fatal(err)
	}
	opts := ReplayOptions{Keys: Keyring{signer.KeyID: signer.Public()}, Logs: []LogKey{llog.Key()}, Verifier: &Reverifier{}, GapFactor: 1000}
	rep, err := Replay(ctx, st, a.UUID(), from, mid, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Continuous || rep.Rounds != 3 || rep.Trusted != 3 || !rep.Reverified {
		t.Fatalf("trusted window: %s %+v", rep, rep.Problems)
	}
	rep, err = Replay(ctx, st, a.UUID(), from, time.Now().Add(time.Second), opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Continuous || rep.FirstFailure == nil || rep.FirstFailure.Failures[0].ID != "ima.validation.ima-ng.not_in_allowlist" {
		t.Fatalf("whole window: %s %+v", rep, rep.FirstFailure)
	}
}
