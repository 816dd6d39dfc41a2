package archive

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/zest-attest/zest/fixtures/agent"
	"github.com/zest-attest/zest/verifier/failure"
	"github.com/zest-attest/zest/verifier/pull"
)

// benchSize reads a benchmark size from the environment (make bench keeps
// the defaults small; the sizes are 1,000,000 records and 100,000
// rounds).
func benchSize(b *testing.B, env string, def int) int {
	if v := os.Getenv(env); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("%s=%q: want a positive number", env, v)
		}
		return n
	}
	return def
}

// BenchmarkAppend measures round ingest with batching: each iteration
// appends ZEST_BENCH_ARCHIVE_RECORDS rounds (default 20,000) in
// transactions of 500 (record, IMA-lines blob, shared policy/AK blobs,
// outbox row); the baseline is a bare INSERT of the same record bytes in
// the same batches into a one-column table. Compare rounds/s of the two.
func BenchmarkAppend(b *testing.B) {
	const batch = 500
	records := benchSize(b, "ZEST_BENCH_ARCHIVE_RECORDS", 20000)
	batches := (records + batch - 1) / batch
	for _, be := range []struct {
		name string
		dsn  func(testing.TB) string
	}{{"sqlite", sqliteDSN}, {"postgres", pgDSN}} {
		b.Run(be.name, func(b *testing.B) {
			dsn := be.dsn(b)
			st := openTestStore(b, dsn)
			s := testSigner(b, "ecdsa-p256")
			// Pre-sign: signing is the verifier's cost, not the store's.
			entries := make([]Entry, batch)
			for i := range entries {
				entries[i] = round(b, s, "bench", uint64(i), t0.Add(time.Duration(i)*time.Second), uint64(i)*20, 20, failure.VerdictTrusted)
			}
			ctx := context.Background()
			b.Run("archive", func(b *testing.B) {
				b.ReportAllocs()
				n := 0
				es := make([]Entry, batch)
				for i := 0; i < b.N*batches; i++ {
					// Distinct records each batch (digest is unique).
					for j := range es {
						r := *entries[j].Record
						r.Body = append([]byte(fmt.Sprintf(`{"b":%d,`, n)), r.Body[1:]...)
						es[j] = Entry{Record: &r, Blobs: entries[j].Blobs}
						n++
					}
					if _, err := st.Append(ctx, LogLocal, es); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*batches*batch)/b.Elapsed().Seconds(), "rounds/s")
			})
			b.Run("baseline-bare-insert", func(b *testing.B) {
				db := st.(*sqlStore).db
				if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS bare (body BYTEA NOT NULL)`); err != nil {
					b.Fatal(err)
				}
				for i := 0; i < b.N*batches; i++ {
					tx, err := db.Begin()
					if err != nil {
						b.Fatal(err)
					}
					stmt, err := tx.Prepare(st.(*sqlStore).q(`INSERT INTO bare (body) VALUES (?)`))
					if err != nil {
						b.Fatal(err)
					}
					for j := 0; j < batch; j++ {
						if _, err := stmt.Exec(entries[j].Record.Body); err != nil {
							b.Fatal(err)
						}
					}
					if err := tx.Commit(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*batches*batch)/b.Elapsed().Seconds(), "rounds/s")
			})
		})
	}
}

// BenchmarkReplay replays one agent's ZEST_BENCH_ARCHIVE_ROUNDS rounds
// (default 20,000; 20 IMA lines each, proofs in the embedded log) from
// SQLite with the test verifier; the baseline is a Scan of the same rows
// that only reads them.
func BenchmarkReplay(b *testing.B) {
	n := uint64(benchSize(b, "ZEST_BENCH_ARCHIVE_ROUNDS", 20000))
	ctx := context.Background()
	f := &fixture{st: openTestStore(b, sqliteDSN(b)), s: testSigner(b, "ecdsa-p256")}
	f.keys = keyringOf(b, f.s)
	var err error
	if f.log, err = OpenLocalLog(b.TempDir(), "zest.bench/log"); err != nil {
		b.Fatal(err)
	}
	defer f.log.Close()
	es := []Entry{registration(b, f.s, "a1", t0.Add(-time.Minute))}
	for i := uint64(1); i <= n; i++ {
		es = append(es, round(b, f.s, "a1", i, t0.Add(time.Duration(i)*2*time.Second), (i-1)*20, 20, failure.VerdictTrusted))
	}
	if _, err := f.st.Append(ctx, LogLocal, es); err != nil {
		b.Fatal(err)
	}
	if _, err := (&Outbox{Store: f.st, Log: f.log, Batch: 1000}).Drain(ctx); err != nil {
		b.Fatal(err)
	}
	from, to := t0, t0.Add(time.Duration(n+1)*2*time.Second)
	b.Run("replay", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			rep, err := Replay(ctx, f.st, "a1", from, to, ReplayOptions{Keys: f.keys, Logs: []LogKey{f.log.Key()}, Verifier: lineVerifier{}})
			if err != nil || !rep.Continuous || rep.Rounds != int(n) {
				b.Fatalf("%v %v", rep, err)
			}
		}
		b.ReportMetric(float64(b.N*int(n))/b.Elapsed().Seconds(), "rounds/s")
	})
	// The signature check replay cannot skip, alone on all cores: the
	// ceiling for replay on this machine.
	var recs []Record
	f.st.Scan(ctx, Query{Kind: KindRound, AgentID: "a1"}, func(st *Stored) error { recs = append(recs, st.Record); return nil })
	b.Run("baseline-parallel-ecdsa-verify", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			var wg sync.WaitGroup
			workers := runtime.GOMAXPROCS(0)
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for j := w; j < len(recs); j += workers {
						if err := f.keys.Verify(recs[j].KeyID, recs[j].Body, recs[j].Sig); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
		}
		b.ReportMetric(float64(b.N*len(recs))/b.Elapsed().Seconds(), "rounds/s")
	})
	b.Run("baseline-scan", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			k := 0
			f.st.Scan(ctx, Query{Kind: KindRound, AgentID: "a1"}, func(*Stored) error { k++; return nil })
		}
		b.ReportMetric(float64(b.N*int(n))/b.Elapsed().Seconds(), "rounds/s")
	})
}

var _ = sql.ErrNoRows

// BenchmarkReplayReverify replays ZEST_BENCH_ARCHIVE_REAL_ROUNDS rounds
// (default 200) of the TPM-backed test agent, recorded through the
// Recorder with 10 new IMA lines each, with the real verifier library
// (Reverifier: quote signature and nonce, clocks, IMA chain against the
// policy); baselines: the same replay with recorded verdicts, and a scan.
func BenchmarkReplayReverify(b *testing.B) {
	n := benchSize(b, "ZEST_BENCH_ARCHIVE_REAL_ROUNDS", 200)
	ctx := context.Background()
	a := agent.StartTest(b, agent.Options{BootAggregate: true})
	files := map[string]string{}
	for i := 0; i < 10; i++ {
		files[fmt.Sprintf("/usr/bin/f%d", i)] = fmt.Sprint(i)
	}
	target, policyJSON := pullTarget(b, a, files)
	st := openTestStore(b, sqliteDSN(b))
	signer := testSigner(b, "ecdsa-p256")
	llog, err := OpenLocalLog(b.TempDir(), "zest.bench/log")
	if err != nil {
		b.Fatal(err)
	}
	defer llog.Close()
	rec := &Recorder{W: &Writer{Store: st, Signer: signer, Log: LogLocal}, Verifier: "bench"}
	if err := rec.Register(ctx, a.UUID(), AgentMeta{AK: a.AKPublic(), RuntimePolicy: policyJSON, Interval: 2 * time.Second}); err != nil {
		b.Fatal(err)
	}
	from := time.Now().Add(-time.Second)
	s := &pull.Session{}
	for i := 0; i < n; i++ {
		var lines []string
		for j := 0; j < 10; j++ {
			l, err := agent.IMALine(agent.TemplateIMANG, "sha256", sum256(fmt.Sprint(j)), fmt.Sprintf("/usr/bin/f%d", j), nil)
			if err != nil {
				b.Fatal(err)
			}
			lines = append(lines, l)
		}
		if err := a.AppendIMA(lines...); err != nil {
			b.Fatal(err)
		}
		r := pull.Attest(ctx, target, s)
		if r.Verdict() != failure.VerdictTrusted {
			b.Fatalf("round %d: %v", i, r.Result.Failures)
		}
		if err := rec.Round(ctx, r, s); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := (&Outbox{Store: st, Log: llog, Batch: 1000}).Drain(ctx); err != nil {
		b.Fatal(err)
	}
	to := time.Now().Add(time.Second)
	keys := Keyring{signer.KeyID: signer.Public()}
	for _, c := range []struct {
		name string
		v    func() RoundVerifier
	}{{"reverify", func() RoundVerifier { return &Reverifier{} }}, {"baseline-recorded-verdicts", func() RoundVerifier { return nil }}} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				rep, err := Replay(ctx, st, a.UUID(), from, to, ReplayOptions{Keys: keys, Logs: []LogKey{llog.Key()}, Verifier: c.v(), GapFactor: 1e6})
				if err != nil || rep.Rounds != n || rep.Trusted != n {
					b.Fatalf("%v %v %v", rep, err, rep.FirstFailure)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "rounds/s")
		})
	}
	b.Run("baseline-scan", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			st.Scan(ctx, Query{Kind: KindRound, AgentID: a.UUID()}, func(*Stored) error { return nil })
		}
		b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "rounds/s")
	})
}
