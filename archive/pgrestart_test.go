package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zest-attest/zest/fixtures/agent"
	"github.com/zest-attest/zest/verifier"
	"github.com/zest-attest/zest/verifier/failure"
	"github.com/zest-attest/zest/verifier/pull"
	"github.com/zest-attest/zest/verifier/server"
)

// committedStore passes everything to the real store and remembers the
// records of every Append that returned success: what the writer was told
// is committed.
type committedStore struct {
	Store
	mu  sync.Mutex
	ok  map[[32]byte]Record
	err atomic.Int64
}

func (c *committedStore) Append(ctx context.Context, log string, es []Entry) ([]int64, error) {
	ids, err := c.Store.Append(ctx, log, es)
	if err != nil {
		c.err.Add(1)
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range es {
		c.ok[e.Record.Digest()] = *e.Record
	}
	return ids, nil
}

// pgCluster runs pg_ctlcluster on the local Debian cluster (as root):
// the newest version's "main", as .ci/run starts it.
func pgCluster(action string) error {
	vers, err := os.ReadDir("/etc/postgresql")
	if err != nil || len(vers) == 0 {
		return fmt.Errorf("no cluster under /etc/postgresql (%v)", err)
	}
	newest, best := "", -1
	for _, v := range vers {
		if n, err := strconv.Atoi(v.Name()); err == nil && n > best {
			newest, best = v.Name(), n
		}
	}
	out, err := exec.Command("pg_ctlcluster", "--skip-systemctl-redirect", newest, "main", action).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctlcluster %s %s: %v: %s", newest, action, err, bytes.TrimSpace(out))
	}
	return nil
}

// needRestart skips (fails under CI=true) when this process cannot
// restart the local PostgreSQL server.
func needRestart(t *testing.T) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "restarting PostgreSQL needs root"
	} else if _, err := exec.LookPath("pg_ctlcluster"); err != nil {
		why = "pg_ctlcluster missing"
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(why + " under CI=true")
	}
	t.Skip(why)
}

// pgOutage stops the server, waits until hit reports that the writer ran
// into the outage (at most 10 s), and starts it again; the server comes
// back whatever happens.
func pgOutage(t *testing.T, hit func() bool) {
	t.Helper()
	if err := pgCluster("stop"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	up := false
	defer func() {
		if !up {
			if err := pgCluster("start"); err != nil {
				t.Errorf("bringing PostgreSQL back: %v", err)
			}
		}
	}()
	for deadline := time.Now().Add(10 * time.Second); !hit(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Error("the writer did not notice PostgreSQL was down")
			break
		}
	}
	if err := pgCluster("start"); err != nil {
		t.Fatal(err)
	}
	up = true
	needService(t, "127.0.0.1:5432")
}

// TestPostgresRestart stops and restarts the real PostgreSQL server while a
// Recorder commits push rounds and an Outbox drains into the embedded log.
// The writer sees errors during the outage and goes on afterwards over the
// same connection pool; every round it was told is committed is stored
// byte-identical with a valid signature, no sequence number is used twice,
// the outbox drains, and replay finds the agent continuously attested.
func TestPostgresRestart(t *testing.T) {
	dsn := pgDSN(t)
	needRestart(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	inner := openTestStore(t, dsn)
	st := &committedStore{Store: inner, ok: map[[32]byte]Record{}}
	signer := testSigner(t, "ecdsa-p256")
	keys := keyringOf(t, signer)
	llog, err := OpenLocalLog(t.TempDir(), "zest.test/log")
	if err != nil {
		t.Fatal(err)
	}
	defer llog.Close()

	// Rounds are timed after the registration (which the Recorder stamps
	// with the wall clock), one second apart.
	start := time.Now().UTC().Add(time.Second).Truncate(time.Second)
	rec := &Recorder{W: &Writer{Store: st, Signer: signer, Log: LogLocal}, Verifier: "test"}
	if err := rec.Register(ctx, "pg", AgentMeta{AK: testAK, Interval: time.Second}); err != nil {
		t.Fatal(err)
	}
	var outboxErrs atomic.Int64
	ob := &Outbox{Store: inner, Log: llog, Keys: keys, OnError: func(error) { outboxErrs.Add(1) }}
	obDone := make(chan error, 1)
	go func() { obDone <- ob.Run(ctx, 50*time.Millisecond) }()

	// The writer: one push round after another, advancing its IMA offset
	// and clock only when the round committed (as the push server does).
	var (
		wrote    atomic.Int64 // rounds committed
		failures atomic.Int64 // rounds refused
		stop     atomic.Bool
	)
	writerDone := make(chan error, 1)
	go func() {
		var imaNext uint64
		var lastErr error
		for k := 0; !stop.Load(); k++ {
			var lines strings.Builder
			for i := imaNext; i < imaNext+5; i++ {
				fmt.Fprintf(&lines, "10 %064x ima-ng sha256:%064x /usr/bin/f%d\n", i, i, i)
			}
			n := wrote.Load()
			at := start.Add(time.Duration(n) * time.Second)
			pr := &server.PushRound{Agent: "pg", Challenge: []byte(fmt.Sprintf("challenge %d", k)), Quote: fmt.Sprintf("rQUOTE%d", k),
				HashAlg: "sha256", IMAStart: imaNext, IMALines: lines.String(), Start: at, End: at,
				Result: &verifier.Result{Verdict: failure.VerdictTrusted}}
			if err := rec.CommitPush(ctx, "pg", []byte(fmt.Sprintf(`{"k":%d}`, k)), pr); err != nil {
				failures.Add(1)
				lastErr = err
				time.Sleep(20 * time.Millisecond)
				continue
			}
			imaNext += 5
			wrote.Add(1)
		}
		if wrote.Load() == 0 {
			writerDone <- lastErr
		}
		writerDone <- nil
	}()
	waitFor := func(what string, d time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(d)
		for !cond() {
			if time.Now().After(deadline) {
				stop.Store(true)
				t.Fatalf("timed out waiting for %s (%d committed, %d failed)", what, wrote.Load(), failures.Load())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor("rounds before the restart", 20*time.Second, func() bool { return wrote.Load() >= 30 })

	before := failures.Load()
	pgOutage(t, func() bool { return failures.Load() >= before+3 })
	atRestart := wrote.Load()
	waitFor("rounds after the restart", 30*time.Second, func() bool { return wrote.Load() >= atRestart+30 })
	stop.Store(true)
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}

	// The outbox drains (Run goes on through the outage; one more pass
	// here to be sure every row is due).
	waitFor("the outbox to drain", 30*time.Second, func() bool {
		s, err := inner.Status(ctx)
		return err == nil && s.Backlog[LogLocal] == 0
	})
	cancel()
	<-obDone

	// Every round reported committed is stored byte-identical and signed;
	// no sequence number twice.
	stored := map[[32]byte]bool{}
	seqs := map[uint64]int{}
	err = inner.Scan(context.Background(), Query{Kind: KindRound, AgentID: "pg"}, func(sr *Stored) error {
		d := sr.Record.Digest()
		if stored[d] {
			return fmt.Errorf("record %d stored twice", sr.ID)
		}
		stored[d] = true
		seqs[sr.Record.Seq]++
		if _, err := sr.Record.Open(keys); err != nil {
			return fmt.Errorf("record %d: %w", sr.ID, err)
		}
		if want, ok := st.ok[d]; ok && (!bytes.Equal(want.Body, sr.Record.Body) || !bytes.Equal(want.Sig, sr.Record.Sig) || want.KeyID != sr.Record.KeyID) {
			return fmt.Errorf("record %d differs from what was committed", sr.ID)
		}
		if len(sr.Proofs[LogLocal]) == 0 {
			return fmt.Errorf("record %d has no proof", sr.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for d, r := range st.ok {
		if r.Kind == KindRound && !stored[d] {
			t.Errorf("round %d was reported committed but is not stored", r.Seq)
		}
	}
	for seq, n := range seqs {
		if n > 1 {
			t.Errorf("sequence %d stored %d times", seq, n)
		}
	}
	rep, err := Replay(context.Background(), inner, "pg", start, start.Add(time.Duration(wrote.Load())*time.Second),
		ReplayOptions{Keys: keys, Logs: []LogKey{llog.Key()}})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Continuous || rep.Rounds != int(wrote.Load()) {
		t.Errorf("replay after the restart: %s; first failure %+v; problems %v", rep, rep.FirstFailure, rep.Problems)
	}
	if failures.Load() == 0 || st.err.Load() == 0 {
		t.Error("the writer never saw the outage")
	}
	t.Logf("%d rounds committed, %d refused during the outage, %d stored; outbox store errors %d",
		wrote.Load(), failures.Load(), len(stored), outboxErrs.Load())
}

// countingSink passes rounds to the Recorder and counts its answers.
type countingSink struct {
	rec      *Recorder
	ok, errs atomic.Int64
}

func (c *countingSink) Round(ctx context.Context, r *pull.Round, s *pull.Session) error {
	err := c.rec.Round(ctx, r, s)
	if err != nil {
		c.errs.Add(1)
	} else {
		c.ok.Add(1)
	}
	return err
}

// TestPostgresRestartPull: the pull runner attests the TPM-backed test
// agent (its IMA list growing) into PostgreSQL through the Recorder while
// the server restarts. Rounds the sink refuses are forgotten and their IMA
// entries fetched again; afterwards replay with the real verifier finds
// every stored round trusted, its IMA chain unbroken, no sequence twice.
func TestPostgresRestartPull(t *testing.T) {
	dsn := pgDSN(t)
	needRestart(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := agent.StartTest(t, agent.Options{BootAggregate: true})
	line, err := agent.IMALine(agent.TemplateIMANG, "sha256", sum256("bash"), "/usr/bin/bash", nil)
	if err != nil {
		t.Fatal(err)
	}
	target, policyJSON := pullTarget(t, a, map[string]string{"/usr/bin/bash": "bash"})
	st := openTestStore(t, dsn)
	signer := testSigner(t, "ecdsa-p256")
	llog, err := OpenLocalLog(t.TempDir(), "zest.test/log")
	if err != nil {
		t.Fatal(err)
	}
	defer llog.Close()
	rec := &Recorder{W: &Writer{Store: st, Signer: signer, Log: LogLocal}, Verifier: "test"}
	if err := rec.Register(ctx, a.UUID(), AgentMeta{AK: a.AKPublic(), RuntimePolicy: policyJSON, Interval: 20 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	from := time.Now().Add(-time.Second)
	sink := &countingSink{rec: rec}
	runner := &pull.Runner{Interval: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Sink: sink}
	runDone := make(chan struct{})
	imaDone := make(chan struct{})
	go func() {
		defer close(runDone)
		runner.Run(ctx, []*pull.Target{target}, map[string]*pull.Session{})
	}()
	go func() { // the node keeps measuring
		defer close(imaDone)
		for ctx.Err() == nil {
			if err := a.AppendIMA(line); err != nil {
				t.Error(err)
				return
			}
			time.Sleep(15 * time.Millisecond)
		}
	}()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s (%d recorded, %d refused)", what, sink.ok.Load(), sink.errs.Load())
			}
		}
	}
	waitFor("rounds before the restart", func() bool { return sink.ok.Load() >= 10 })
	pgOutage(t, func() bool { return sink.errs.Load() >= 2 })
	after := sink.ok.Load()
	waitFor("rounds after the restart", func() bool { return sink.ok.Load() >= after+10 })
	cancel()
	<-runDone
	<-imaDone
	if _, err := (&Outbox{Store: st, Log: llog}).Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	seqs := map[uint64]bool{}
	err = st.Scan(context.Background(), Query{Kind: KindRound, AgentID: a.UUID()}, func(sr *Stored) error {
		if seqs[sr.Record.Seq] {
			return fmt.Errorf("sequence %d stored twice", sr.Record.Seq)
		}
		seqs[sr.Record.Seq] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Replay(context.Background(), st, a.UUID(), from, time.Now().Add(time.Second),
		ReplayOptions{Keys: Keyring{signer.KeyID: signer.Public()}, Logs: []LogKey{llog.Key()}, Verifier: &Reverifier{}, GapFactor: 1e6})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Continuous || rep.Rounds != len(seqs) || int64(rep.Rounds) < sink.ok.Load() {
		t.Errorf("replay: %s (%d stored, %d recorded); first failure %+v; problems %v", rep, len(seqs), sink.ok.Load(), rep.FirstFailure, rep.Problems)
	}
	t.Logf("%d rounds recorded, %d refused during the outage; replay: %s", sink.ok.Load(), sink.errs.Load(), rep)
}

// lostAnswerStore commits through the real store but, when armed, reports
// the commit as failed (the connection broke after COMMIT) and can refuse
// the next Latest (the server still down).
type lostAnswerStore struct {
	Store
	loseAppend, failLatest bool
}

func (s *lostAnswerStore) Append(ctx context.Context, log string, es []Entry) ([]int64, error) {
	ids, err := s.Store.Append(ctx, log, es)
	if err == nil && s.loseAppend {
		s.loseAppend = false
		return nil, errors.New("connection reset after commit")
	}
	return ids, err
}

func (s *lostAnswerStore) Latest(ctx context.Context, kind Kind, agent string) (*Stored, error) {
	if s.failLatest {
		s.failLatest = false
		return nil, errors.New("connection refused")
	}
	return s.Store.Latest(ctx, kind, agent)
}

// TestRecorderLostCommitAnswer: a commit that reached the database but
// whose answer was lost is recognized (reported as committed) when the
// store can be asked at once, and otherwise never makes the Recorder
// reuse its sequence number.
func TestRecorderLostCommitAnswer(t *testing.T) {
	ctx := context.Background()
	for _, tt := range []struct {
		name       string
		failLatest bool
		wantErr    bool
	}{{"store answers", false, false}, {"store still down", true, true}} {
		t.Run(tt.name, func(t *testing.T) {
			st := &lostAnswerStore{Store: openTestStore(t, sqliteDSN(t))}
			rec := &Recorder{W: &Writer{Store: st, Signer: testSigner(t, "ecdsa-p256"), Log: LogLocal}, Verifier: "test"}
			if err := rec.Register(ctx, "a", AgentMeta{AK: testAK}); err != nil {
				t.Fatal(err)
			}
			push := func(k int) error {
				return rec.CommitPush(ctx, "a", []byte(`{}`), &server.PushRound{Agent: "a", Challenge: []byte{byte(k)}, Quote: fmt.Sprint(k),
					HashAlg: "sha256", End: time.Now(), Result: &verifier.Result{Verdict: failure.VerdictTrusted}})
			}
			if err := push(1); err != nil {
				t.Fatal(err)
			}
			st.loseAppend, st.failLatest = true, tt.failLatest
			if err := push(2); (err != nil) != tt.wantErr {
				t.Fatalf("lost answer: err %v, want error %v", err, tt.wantErr)
			}
			if err := push(3); err != nil {
				t.Fatal(err)
			}
			var seqs []uint64
			st.Scan(ctx, Query{Kind: KindRound, AgentID: "a"}, func(sr *Stored) error { seqs = append(seqs, sr.Record.Seq); return nil })
			if fmt.Sprint(seqs) != "[1 2 3]" {
				t.Errorf("stored sequence numbers %v, want [1 2 3]", seqs)
			}
		})
	}
}
