package archive

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/zest-attest/zest/verifier/failure"
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
	b.Run("baseline-scan", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			k := 0
			f.st.Scan(ctx, Query{Kind: KindRound, AgentID: "a1"}, func(*Stored) error { k++; return nil })
		}
		b.ReportMetric(float64(b.N*int(n))/b.Elapsed().Seconds(), "rounds/s")
	})
}

var _ = sql.ErrNoRows
