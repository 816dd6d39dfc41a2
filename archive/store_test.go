package archive

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/zest-attest/zest/verifier/failure"
)

// TestStoreConformance runs one suite against every store (SPIRE's
// sqltest pattern): SQLite file and the real PostgreSQL.
func TestStoreConformance(t *testing.T) {
	backends := []struct {
		name string
		dsn  func(testing.TB) string
	}{
		{"sqlite", sqliteDSN},
		{"postgres", pgDSN},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Run("AppendScan", func(t *testing.T) { testAppendScan(t, b.dsn(t)) })
			t.Run("Dedup", func(t *testing.T) { testDedup(t, b.dsn(t)) })
			t.Run("Outbox", func(t *testing.T) { testOutbox(t, b.dsn(t)) })
			t.Run("Migrate", func(t *testing.T) { testMigrate(t, b.dsn(t)) })
			t.Run("BadBlob", func(t *testing.T) { testBadBlob(t, b.dsn(t)) })
		})
	}
}

func testAppendScan(t *testing.T, dsn string) {
	ctx := context.Background()
	st := openTestStore(t, dsn)
	s := testSigner(t, "ecdsa-p256")
	entries := []Entry{registration(t, s, "a1", t0)}
	for i := uint64(1); i <= 5; i++ {
		entries = append(entries, round(t, s, "a1", i, t0.Add(time.Duration(i)*2*time.Second), (i-1)*3, 3, failure.VerdictTrusted))
	}
	entries = append(entries, round(t, s, "a2", 1, t0.Add(time.Second), 0, 1, failure.VerdictRejected))
	ids, err := st.Append(ctx, "local", entries)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != len(entries) {
		t.Fatalf("ids %v", ids)
	}
	tests := []struct {
		name string
		q    Query
		want []uint64 // seqs
	}{
		{"all rounds of a1", Query{Kind: KindRound, AgentID: "a1"}, []uint64{1, 2, 3, 4, 5}},
		{"window [4s,8s)", Query{Kind: KindRound, AgentID: "a1", From: t0.Add(4 * time.Second), To: t0.Add(8 * time.Second)}, []uint64{2, 3}},
		{"registrations", Query{Kind: KindRegistration, AgentID: "a1"}, []uint64{0}},
		{"other agent", Query{Kind: KindRound, AgentID: "a2"}, []uint64{1}},
		{"unknown agent", Query{AgentID: "nobody"}, nil},
	}
	for _, tt := range tests {
		var got []uint64
		err := st.Scan(ctx, tt.q, func(s *Stored) error {
			got = append(got, s.Record.Seq)
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if len(got) != len(tt.want) {
			t.Fatalf("%s: got seqs %v, want %v", tt.name, got, tt.want)
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Fatalf("%s: got seqs %v, want %v", tt.name, got, tt.want)
			}
		}
	}
	// Latest: the newest round of each agent, ErrNotFound for none.
	for agent, want := range map[string]uint64{"a1": 5, "a2": 1} {
		l, err := st.Latest(ctx, KindRound, agent)
		if err != nil || l.Record.Seq != want {
			t.Fatalf("Latest(%s): %v, %v; want seq %d", agent, l, err, want)
		}
	}
	if _, err := st.Latest(ctx, KindRound, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Latest(nobody): %v", err)
	}
	// What comes back opens with the signer's key and is byte-identical.
	keys := keyringOf(t, s)
	err = st.Scan(ctx, Query{AgentID: "a1", Kind: KindRound}, func(sr *Stored) error {
		v, err := sr.Record.Open(keys)
		if err != nil {
			return err
		}
		rd := v.(*Round)
		for _, ref := range rd.Refs() {
			b, err := st.Blob(ctx, ref)
			if err != nil {
				return err
			}
			if RefOf(b) != ref {
				t.Errorf("blob %s changed", ref)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Blob(ctx, RefOf([]byte("absent"))); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing blob: %v", err)
	}
	status, err := st.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Policy and AK blobs are shared by every round: stored once.
	if status.Rounds != 6 || status.Registrations != 1 || status.Backlog["local"] != 7 || status.Blobs != 2+6 {
		t.Fatalf("status %+v", status)
	}
}

func testDedup(t *testing.T, dsn string) {
	ctx := context.Background()
	st := openTestStore(t, dsn)
	s := testSigner(t, "ed25519")
	e := round(t, s, "a1", 1, t0, 0, 2, failure.VerdictTrusted)
	id1, err := st.Append(ctx, "local", []Entry{e})
	if err != nil {
		t.Fatal(err)
	}
	id2, err := st.Append(ctx, "local", []Entry{e, e})
	if err != nil {
		t.Fatal(err)
	}
	if id1[0] != id2[0] || id2[0] != id2[1] {
		t.Fatalf("same record stored twice: %v %v", id1, id2)
	}
	status, _ := st.Status(ctx)
	if status.Rounds != 1 || status.Backlog["local"] != 1 {
		t.Fatalf("status %+v", status)
	}
}

func testOutbox(t *testing.T, dsn string) {
	ctx := context.Background()
	st := openTestStore(t, dsn)
	s := testSigner(t, "ecdsa-p256")
	var es []Entry
	for i := uint64(1); i <= 3; i++ {
		es = append(es, round(t, s, "a1", i, t0.Add(time.Duration(i)*time.Second), 0, 1, failure.VerdictTrusted))
	}
	ids, err := st.Append(ctx, "local", es)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	p, err := st.Pending(ctx, "local", now, 10)
	if err != nil || len(p) != 3 {
		t.Fatalf("pending %d %v", len(p), err)
	}
	if other, _ := st.Pending(ctx, "rekor", now, 10); len(other) != 0 {
		t.Fatal("rows of another log returned")
	}
	if err := st.Retry(ctx, ids[0], "local", now.Add(time.Hour), "connection refused"); err != nil {
		t.Fatal(err)
	}
	if err := st.Ack(ctx, ids[1], "local", []byte(`{"proof":1}`)); err != nil {
		t.Fatal(err)
	}
	// Ack twice (a crash after Ack before the worker noticed) is harmless.
	if err := st.Ack(ctx, ids[1], "local", []byte(`{"proof":2}`)); err != nil {
		t.Fatal(err)
	}
	p, _ = st.Pending(ctx, "local", now, 10)
	if len(p) != 1 || p[0].ID != ids[2] {
		t.Fatalf("pending after ack/retry: %v", p)
	}
	p, _ = st.Pending(ctx, "local", now.Add(2*time.Hour), 10)
	if len(p) != 2 || p[0].Attempts != 1 || p[0].LastError != "connection refused" {
		t.Fatalf("retry row: %+v", p[0])
	}
	status, _ := st.Status(ctx)
	if status.Backlog["local"] != 2 || status.Proved != 1 || status.LastError != "connection refused" || status.OldestPending == nil || !status.OldestPending.Equal(t0.Add(time.Second)) {
		t.Fatalf("status %+v", status)
	}
	var proofs []string
	st.Scan(ctx, Query{}, func(s *Stored) error {
		proofs = append(proofs, string(s.Proofs["local"]))
		return nil
	})
	if proofs[1] != `{"proof":1}` || proofs[0] != "" {
		t.Fatalf("proofs %q", proofs)
	}
}

func testMigrate(t *testing.T, dsn string) {
	ctx := context.Background()
	if _, err := OpenStore(ctx, dsn, OpenOptions{}); err == nil {
		t.Fatal("unmigrated store opened without Migrate")
	}
	from, to, err := Migrate(ctx, dsn)
	if err != nil || from != 0 || to != 1 {
		t.Fatalf("migrate: %d→%d %v", from, to, err)
	}
	from, to, err = Migrate(ctx, dsn)
	if err != nil || from != 1 || to != 1 {
		t.Fatalf("second migrate: %d→%d %v", from, to, err)
	}
	st, err := OpenStore(ctx, dsn, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
}

func testBadBlob(t *testing.T, dsn string) {
	ctx := context.Background()
	st := openTestStore(t, dsn)
	s := testSigner(t, "ecdsa-p256")
	e := round(t, s, "a1", 1, t0, 0, 1, failure.VerdictTrusted)
	e.Blobs[0].Data = []byte("not what the ref says")
	if _, err := st.Append(ctx, "local", []Entry{e}); err == nil {
		t.Fatal("blob with wrong data accepted")
	}
	status, _ := st.Status(ctx)
	if status.Rounds != 0 || status.Blobs != 0 {
		t.Fatalf("failed append left rows: %+v", status)
	}
}
