package archive

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/zest-attest/zest/verifier/failure"
)

// lineVerifier is the test RoundVerifier: it checks the AK is the test AK,
// that the round's IMA lines are numbered consecutively from the previous
// round's state (the incremental chain), and rejects files under
// /usr/bin/evil. The real verifier is wired by the lead.
type lineVerifier struct{}

func (lineVerifier) VerifyRound(_ context.Context, prev *ReplayState, in *RoundInput) (*RoundResult, error) {
	if !bytes.Equal(in.AK, testAK) {
		return nil, fmt.Errorf("unknown AK")
	}
	next := uint64(0)
	if prev != nil {
		n, ok := prev.Verifier.(uint64)
		if !ok {
			return nil, fmt.Errorf("previous round left no IMA state")
		}
		next = n
	}
	var fs failure.List
	lines := strings.Split(strings.TrimSuffix(string(in.IMALines), "\n"), "\n")
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 5 {
			return nil, fmt.Errorf("IMA line %q: want 5 fields", l)
		}
		idx, err := strconv.ParseUint(f[1], 16, 64)
		if err != nil {
			return nil, fmt.Errorf("IMA line %q: %v", l, err)
		}
		path := f[4]
		if idx != next {
			fs.Rejectf("ima.validation.ima-ng.entry_mismatch", map[string]any{"want": next, "got": idx}, "IMA entry %d where %d was expected", idx, next)
		}
		if strings.HasPrefix(path, "/usr/bin/evil") {
			fs.Rejectf("ima.validation.ima-ng.not_in_allowlist", map[string]any{"path": path}, "file not in allowlist")
		}
		next = idx + 1
	}
	return &RoundResult{Verdict: fs.Verdict(), Failures: fs, Verifier: next}, nil
}

type fixture struct {
	st   Store
	s    *Signer
	log  *LocalLog
	keys Keyring
}

// newFixture archives n rounds of agent a1 (2 s apart, 3 IMA lines each)
// after a registration, skipping the seqs in skip, and logs them locally.
func newFixture(t *testing.T, dsn string, n uint64, skip map[uint64]bool, evil uint64) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{st: openTestStore(t, dsn), s: testSigner(t, "ecdsa-p256")}
	f.keys = keyringOf(t, f.s)
	var err error
	if f.log, err = OpenLocalLog(t.TempDir(), "zest.test/log"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.log.Close() })
	es := []Entry{registration(t, f.s, "a1", t0.Add(-time.Minute))}
	for i := uint64(1); i <= n; i++ {
		if skip[i] {
			continue
		}
		e := round(t, f.s, "a1", i, t0.Add(time.Duration(i)*2*time.Second), (i-1)*3, 3, failure.VerdictTrusted)
		if i == evil {
			e = evilRound(t, f.s, i)
		}
		es = append(es, e)
	}
	if _, err := f.st.Append(ctx, LogLocal, es); err != nil {
		t.Fatal(err)
	}
	if _, err := (&Outbox{Store: f.st, Log: f.log}).Drain(ctx); err != nil {
		t.Fatal(err)
	}
	return f
}

func evilRound(t *testing.T, s *Signer, seq uint64) Entry {
	e := round(t, s, "a1", seq, t0.Add(time.Duration(seq)*2*time.Second), (seq-1)*3, 3, failure.VerdictRejected)
	rd, _ := e.Record.decode()
	r := rd.(*Round)
	lines := fmt.Sprintf("10 %064x ima-ng sha256:%064x /usr/bin/f\n10 %064x ima-ng sha256:%064x /usr/bin/evil\n10 %064x ima-ng sha256:%064x /usr/bin/g\n",
		(seq-1)*3, 0, (seq-1)*3+1, 0, (seq-1)*3+2, 0)
	ima := NewBlob([]byte(lines))
	r.Evidence.IMALines = ima.Ref
	r.Failures = failure.List{failure.Rejectf("ima.validation.ima-ng.not_in_allowlist", map[string]any{"path": "/usr/bin/evil"}, "file not in allowlist")}
	rec, err := SignRound(s, r)
	if err != nil {
		t.Fatal(err)
	}
	return Entry{Record: rec, Blobs: append(e.Blobs, ima)}
}

func (f *fixture) opts() ReplayOptions {
	return ReplayOptions{Keys: f.keys, Logs: []LogKey{f.log.Key()}, Verifier: lineVerifier{}}
}

func TestReplay(t *testing.T) {
	ctx := context.Background()
	at := func(seq int) time.Time { return t0.Add(time.Duration(seq) * 2 * time.Second) }
	tests := []struct {
		name       string
		n          uint64
		skip       map[uint64]bool
		evil       uint64
		from, to   time.Time
		continuous bool
		rounds     int
		warmup     int
		gaps       []string // "seqA-seqB"
		first      uint64
		firstID    string
	}{
		{name: "continuous", n: 10, from: at(1), to: at(11), continuous: true, rounds: 10},
		{name: "gap named", n: 10, skip: map[uint64]bool{5: true, 6: true, 7: true}, from: at(1), to: at(11), rounds: 7,
			gaps: []string{"4-8"}, first: 8, firstID: "archive.ima.discontinuity"},
		{name: "first failure", n: 10, evil: 6, from: at(1), to: at(11), rounds: 10, first: 6, firstID: "ima.validation.ima-ng.not_in_allowlist"},
		{name: "window starts mid-boot", n: 10, from: at(5), to: at(11), continuous: true, rounds: 6, warmup: 4},
		{name: "window ends after the last round", n: 10, from: at(1), to: at(20), rounds: 10, gaps: []string{"10-end"}},
		{name: "empty window", n: 3, from: at(50), to: at(60), rounds: 0, warmup: 3, gaps: []string{"start-end"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, sqliteDSN(t), tt.n, tt.skip, tt.evil)
			rep, err := Replay(ctx, f.st, "a1", tt.from, tt.to, f.opts())
			if err != nil {
				t.Fatal(err)
			}
			if rep.Continuous != tt.continuous || rep.Rounds != tt.rounds || rep.Warmup != tt.warmup {
				t.Fatalf("%s\nwarmup %d, problems %v, first %+v", rep, rep.Warmup, rep.Problems, rep.FirstFailure)
			}
			var gaps []string
			for _, g := range rep.Gaps {
				gaps = append(gaps, fmt.Sprintf("%s-%s", seqAt(g.From, tt.from, "start"), seqAt(g.To, tt.to, "end")))
			}
			if fmt.Sprint(gaps) != fmt.Sprint(tt.gaps) && !(len(gaps) == 0 && len(tt.gaps) == 0) {
				t.Fatalf("gaps %v, want %v", gaps, tt.gaps)
			}
			if tt.first != 0 {
				if rep.FirstFailure == nil || rep.FirstFailure.Seq != tt.first || rep.FirstFailure.Failures[0].ID != tt.firstID {
					t.Fatalf("first failure %+v, want seq %d %s", rep.FirstFailure, tt.first, tt.firstID)
				}
			} else if rep.FirstFailure != nil {
				t.Fatalf("unexpected failure %+v", rep.FirstFailure)
			}
		})
	}
}

func seqAt(t, edge time.Time, name string) string {
	if t.Equal(edge) {
		return name
	}
	return fmt.Sprint(int64(t.Sub(t0) / (2 * time.Second)))
}

// TestReplayTamper changes one stored byte at a time, directly in the
// database, and expects replay to name what was changed.
func TestReplayTamper(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		sql    string
		wantID string
	}{
		{"evidence in body", `UPDATE records SET body = REPLACE(body, 'rQUOTE4', 'rQUOTE5') WHERE seq = 4 AND kind = 'round'`, IDSignature},
		{"verdict in body", `UPDATE records SET body = REPLACE(body, '"verdict":"trusted"', '"verdict":"rejected"') WHERE seq = 4`, IDSignature},
		{"signature", `UPDATE records SET sig = X'00' WHERE seq = 4 AND kind = 'round'`, IDSignature},
		{"IMA lines blob", `UPDATE blobs SET data = REPLACE(data, '/usr/bin/f10', '/usr/bin/fX0') WHERE CAST(data AS TEXT) LIKE '%/usr/bin/f10%'`, IDBlobCorrupt},
		{"policy blob", `UPDATE blobs SET data = '{}' WHERE CAST(data AS TEXT) LIKE '%digests%'`, IDBlobCorrupt},
		{"proof", `UPDATE proofs SET proof = REPLACE(proof, '"tree_size":', '"tree_size":1') WHERE record_id = (SELECT id FROM records WHERE seq = 4 AND kind = 'round')`, IDProofInvalid},
		{"proof deleted", `DELETE FROM proofs WHERE record_id = (SELECT id FROM records WHERE seq = 4 AND kind = 'round')`, IDProofMissing},
		{"AK blob deleted", `DELETE FROM blobs WHERE CAST(data AS TEXT) LIKE '%test ak%'`, IDBlobMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, sqliteDSN(t), 6, nil, 0)
			if _, err := f.st.(*sqlStore).db.ExecContext(ctx, tt.sql); err != nil {
				t.Fatal(err)
			}
			rep, err := Replay(ctx, f.st, "a1", t0, t0.Add(time.Minute), f.opts())
			if err != nil {
				t.Fatal(err)
			}
			if rep.Continuous || rep.FirstFailure == nil || !hasID(rep.FirstFailure.Failures, tt.wantID) {
				t.Fatalf("%s: first failure %+v, want %s", rep, rep.FirstFailure, tt.wantID)
			}
		})
	}
}

func TestReplayNeedsKeys(t *testing.T) {
	f := newFixture(t, sqliteDSN(t), 2, nil, 0)
	if _, err := Replay(context.Background(), f.st, "a1", t0, t0.Add(time.Minute), ReplayOptions{Logs: []LogKey{f.log.Key()}}); err == nil {
		t.Fatal("replay without verifier keys")
	}
	other := testSigner(t, "ed25519")
	rep, err := Replay(context.Background(), f.st, "a1", t0, t0.Add(time.Minute), ReplayOptions{Keys: keyringOf(t, other), Logs: []LogKey{f.log.Key()}})
	if err != nil || rep.Continuous || rep.FirstFailure == nil || rep.FirstFailure.Failures[0].ID != IDSignature {
		t.Fatalf("records signed by an untrusted key: %v %s %+v", err, rep, rep.FirstFailure)
	}
}

func TestBundle(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, sqliteDSN(t), 10, nil, 0)
	var buf bytes.Buffer
	from, to := t0.Add(9*time.Second), t0.Add(21*time.Second)
	m, err := Export(ctx, f.st, "a1", from, to, f.keys, []LogKey{f.log.Key()}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	// registration + 4 warm-up rounds + 6 rounds in the window.
	if m.Records != 11 {
		t.Fatalf("manifest %+v", m)
	}
	b, err := ReadBundle(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Replay(ctx, f.st, "a1", from, to, f.opts())
	got, err := Replay(ctx, b, "a1", from, to, f.opts())
	if err != nil {
		t.Fatal(err)
	}
	if !got.Continuous || got.String() != want.String() || got.Warmup != 4 {
		t.Fatalf("bundle replay %s, store replay %s", got, want)
	}
	// The bundle's own keys are the archive's.
	if len(b.Keys) != 1 || b.Logs[0].VKey != f.log.Key().VKey {
		t.Fatalf("bundle keys %v %v", b.Keys, b.Logs)
	}
	// A flipped byte anywhere in the compressed stream is caught (zstd
	// checksum, tar structure, or replay).
	for _, off := range []int{len(buf.Bytes()) / 3, len(buf.Bytes()) / 2, len(buf.Bytes()) - 12} {
		bad := bytes.Clone(buf.Bytes())
		bad[off] ^= 0x40
		b2, err := ReadBundle(bytes.NewReader(bad))
		if err != nil {
			continue
		}
		if rep, err := Replay(ctx, b2, "a1", from, to, f.opts()); err == nil && rep.Continuous {
			t.Errorf("flipped byte at %d not noticed", off)
		}
	}
}

func FuzzReadBundle(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("(\xb5/\xfd"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ReadBundle(bytes.NewReader(b))
	})
}

// TestReplayPostgres: the same replay over the real PostgreSQL store.
func TestReplayPostgres(t *testing.T) {
	f := newFixture(t, pgDSN(t), 10, map[uint64]bool{5: true, 6: true, 7: true}, 0)
	rep, err := Replay(context.Background(), f.st, "a1", t0.Add(2*time.Second), t0.Add(22*time.Second), f.opts())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Continuous || rep.Rounds != 7 || len(rep.Gaps) != 1 || rep.FirstFailure == nil || rep.FirstFailure.Seq != 8 {
		t.Fatalf("%s first %+v gaps %v", rep, rep.FirstFailure, rep.Gaps)
	}
}
