package archive

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/zest-attest/zest/verifier/failure"
)

// rekorServer is a real rekor-server v1.5.4 + Trillian v1.7.3 on MariaDB,
// started by fixtures/rekor/run.sh.
type rekorServer struct {
	t     testing.TB
	state string
	URL   string
}

func startRekor(t testing.TB) *rekorServer {
	t.Helper()
	needService(t, "127.0.0.1:3306")
	script, _ := filepath.Abs("../fixtures/rekor/run.sh")
	tools := os.Getenv("ZEST_TOOLS")
	if tools == "" {
		home, _ := os.UserHomeDir()
		tools = filepath.Join(home, ".cache/zest/tools")
	}
	if _, err := os.Stat(filepath.Join(tools, "rekor-v1.5.4-trillian-v1.7.3", "rekor-server")); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("rekor-server not built (fixtures/rekor/run.sh build): %v", err)
		}
		t.Skipf("rekor-server not built; run fixtures/rekor/run.sh build")
	}
	r := &rekorServer{t: t, state: t.TempDir()}
	out, err := exec.Command(script, "start", r.state).CombinedOutput()
	if err != nil {
		t.Fatalf("starting rekor: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command(script, "stop", r.state).Run() })
	b, _ := os.ReadFile(filepath.Join(r.state, "rekor.url"))
	r.URL = strings.TrimSpace(string(b))
	return r
}

func (r *rekorServer) run(cmd string) {
	script, _ := filepath.Abs("../fixtures/rekor/run.sh")
	if out, err := exec.Command(script, cmd, r.state).CombinedOutput(); err != nil {
		r.t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
}

// TestRekor: records go through the outbox into a real Rekor; Rekor
// stopped for a while leaves them queued; after restart the outbox drains;
// every record ends with an offline-verified proof; nothing is logged twice.
func TestRekor(t *testing.T) {
	ctx := context.Background()
	rk := startRekor(t)
	rl, err := NewRekorLog(rk.URL)
	if err != nil {
		t.Fatal(err)
	}
	key, err := rl.Key(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(key.Origin, "rekor.zest.test - ") {
		t.Fatalf("origin %q", key.Origin)
	}
	st := openTestStore(t, sqliteDSN(t))
	s := testSigner(t, "ecdsa-p256")
	ob := &Outbox{Store: st, Log: rl, Keys: keyringOf(t, s), MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}
	add := func(from, to uint64) {
		var es []Entry
		for i := from; i <= to; i++ {
			es = append(es, round(t, s, "a1", i, t0.Add(time.Duration(i)*time.Second), 0, 1, failure.VerdictTrusted))
		}
		if _, err := st.Append(ctx, LogRekor, es); err != nil {
			t.Fatal(err)
		}
	}
	add(1, 3)
	if n, err := ob.Drain(ctx); err != nil || n != 3 {
		t.Fatalf("drain: %d %v", n, err)
	}

	rk.run("stop-rekor")
	add(4, 6)
	if n, err := ob.Drain(ctx); err != nil || n != 0 {
		t.Fatalf("drain with rekor down: %d %v", n, err)
	}
	status, _ := st.Status(ctx)
	if status.Backlog[LogRekor] != 3 || status.LastError == "" {
		t.Fatalf("status with rekor down: %+v", status)
	}
	t.Logf("rekor down: backlog %d, last error %q", status.Backlog[LogRekor], status.LastError)
	rk.run("start-rekor")
	time.Sleep(20 * time.Millisecond) // let the backoff pass
	if n, err := ob.Drain(ctx); err != nil || n != 3 {
		t.Fatalf("drain after restart: %d %v", n, err)
	}

	keys := []LogKey{key}
	var proofs []*Proof
	var recs []*Record
	st.Scan(ctx, Query{}, func(sr *Stored) error {
		var p Proof
		if err := json.Unmarshal(sr.Proofs[LogRekor], &p); err != nil {
			t.Fatalf("record %d: %v", sr.ID, err)
		}
		if err := VerifyProof(&p, &sr.Record, keys); err != nil {
			t.Fatalf("record %d: %v", sr.ID, err)
		}
		r := sr.Record
		proofs, recs = append(proofs, &p), append(recs, &r)
		return nil
	})
	if len(proofs) != 6 {
		t.Fatalf("%d proofs", len(proofs))
	}
	// Submitting a logged record again (a crash before the ack) returns
	// the same entry: Rekor answers 409 and the client fetches it.
	pem, _ := ob.Keys.PublicPEM(recs[1].KeyID)
	again, err := rl.Submit(ctx, recs[1], pem)
	if err != nil || again.UUID != proofs[1].UUID || again.LogIndex != proofs[1].LogIndex {
		t.Fatalf("resubmit: %+v %v", again, err)
	}
	if err := VerifyProof(again, recs[1], keys); err != nil {
		t.Fatal(err)
	}
	k2, _ := rl.Key(ctx)
	cp, err := OpenCheckpoint([]byte(again.Checkpoint), key.Origin, mustRekorVerifier(t, k2))
	if err != nil || cp.Size != 6 {
		t.Fatalf("log size %v %v: a record was logged twice", cp, err)
	}
	// Tampered SET, tampered entry, wrong key.
	bad := *proofs[2]
	bad.SET = append([]byte(nil), bad.SET...)
	bad.SET[len(bad.SET)-1] ^= 1
	if err := VerifyProof(&bad, recs[2], keys); !errors.Is(err, ErrProof) {
		t.Errorf("tampered SET accepted: %v", err)
	}
	bad = *proofs[2]
	bad.IntegratedTime++
	if err := VerifyProof(&bad, recs[2], keys); !errors.Is(err, ErrProof) {
		t.Errorf("tampered integrated time accepted: %v", err)
	}
	if err := VerifyProof(proofs[2], recs[3], keys); !errors.Is(err, ErrProof) {
		t.Errorf("proof of another record accepted: %v", err)
	}
	wrong := key
	wrong.PublicPEM = string(s.PublicPEM)
	if err := VerifyProof(proofs[2], recs[2], []LogKey{wrong}); !errors.Is(err, ErrProof) {
		t.Errorf("wrong log key accepted: %v", err)
	}
}

func mustRekorVerifier(t *testing.T, k LogKey) interface {
	Name() string
	KeyHash() uint32
	Verify(msg, sig []byte) bool
} {
	_, v, err := rekorVerifier(&k)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
