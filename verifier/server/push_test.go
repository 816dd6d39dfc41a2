package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/zest-attest/zest/fixtures/agent"
	"github.com/zest-attest/zest/policygen"
	"github.com/zest-attest/zest/verifier"
	"github.com/zest-attest/zest/verifier/ima"
	"github.com/zest-attest/zest/verifier/quote"
)

// memStore is a Store in memory that counts rounds, standing in for the
// archive only where persistence itself is not under test.
type memStore struct {
	mu     sync.Mutex
	state  map[string][]byte
	rounds []*PushRound
}

func (m *memStore) LoadPush(_ context.Context, id string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state[id], nil
}

func (m *memStore) CommitPush(_ context.Context, id string, st []byte, r *PushRound) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.state[id] = st
	if r != nil {
		m.rounds = append(m.rounds, r)
	}
	return nil
}

func digest(s string) []byte { d := sha256.Sum256([]byte(s)); return d[:] }

func imaLine(t *testing.T, path, content string) string {
	t.Helper()
	l, err := agent.IMALine(agent.TemplateIMANG, "sha256", digest(content), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

type pushEnv struct {
	t     *testing.T
	a     *agent.Running
	srv   *httptest.Server
	store *memStore
	now   time.Time
	mu    sync.Mutex
	push  *Push
}

func (e *pushEnv) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *pushEnv) advance(d time.Duration) {
	e.mu.Lock()
	e.now = e.now.Add(d)
	e.mu.Unlock()
}

func newPushEnv(t *testing.T, store *memStore) *pushEnv {
	t.Helper()
	a := agent.StartTest(t, agent.Options{BootAggregate: true})
	p := policygen.NewRuntimePolicy()
	p.Digests["/usr/bin/bash"] = []string{hex.EncodeToString(digest("bash"))}
	rt, err := ima.Compile(p, ima.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ak, err := quote.ParseAK(a.AKPublic())
	if err != nil {
		t.Fatal(err)
	}
	e := &pushEnv{t: t, a: a, store: store, now: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}
	push, err := NewPush(PushOptions{
		Agents:   map[string]*PushAgent{a.UUID(): {ID: a.UUID(), AK: ak, Policies: verifier.Policies{Runtime: rt}}},
		Store:    store,
		Interval: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.push = push
	e.srv = httptest.NewServer(New(Options{Push: push, Now: e.clock}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *pushEnv) client() *agent.PushClient {
	time.Sleep(2 * time.Millisecond) // the TPM clock must advance between rounds
	return &agent.PushClient{Agent: e.a.Agent, Verifier: e.srv.URL}
}

func TestPushRounds(t *testing.T) {
	store := &memStore{state: map[string][]byte{}}
	e := newPushEnv(t, store)
	ctx := context.Background()
	if err := e.a.AppendIMA(imaLine(t, "/usr/bin/bash", "bash")); err != nil {
		t.Fatal(err)
	}
	res, err := e.client().Attest(ctx)
	if err != nil || res.Evaluation != "pass" || res.NextIn != 10*time.Second {
		t.Fatalf("first push: %+v %v", res, err)
	}
	// Too early for the next one: 429 with Retry-After.
	_, err = e.client().Attest(ctx)
	var pe *agent.PushError
	if !errors.As(err, &pe) || pe.Status != http.StatusTooManyRequests || pe.RetryAfter != 10*time.Second {
		t.Fatalf("premature: %v", err)
	}
	// Incremental: only the new line travels, the state carries PCR 10.
	e.advance(11 * time.Second)
	if err := e.a.AppendIMA(imaLine(t, "/usr/bin/bash", "bash")); err != nil {
		t.Fatal(err)
	}
	res, err = e.client().Attest(ctx)
	if err != nil || res.Evaluation != "pass" {
		t.Fatalf("second push: %+v %v", res, err)
	}
	if last := store.rounds[len(store.rounds)-1]; last.IMAStart != 2 || strings.Count(last.IMALines, "\n") != 1 {
		t.Fatalf("second round sent from %d: %q", last.IMAStart, last.IMALines)
	}
	// A new server on the same store (a restart) resumes at the stored
	// offset rather than re-attesting from entry 0.
	n := len(store.rounds)
	e2 := &pushEnv{t: t, a: e.a, store: store, now: e.clock().Add(11 * time.Second)}
	push2, err := NewPush(e.push.opts)
	if err != nil {
		t.Fatal(err)
	}
	e2.srv = httptest.NewServer(New(Options{Push: push2, Now: e2.clock}))
	defer e2.srv.Close()
	if _, err := e2.client().Attest(ctx); err != nil {
		t.Fatal(err)
	}
	if len(store.rounds) != n+1 || store.rounds[n].IMAStart == 0 {
		t.Fatalf("after restart: %d rounds, start %d", len(store.rounds), store.rounds[n].IMAStart)
	}
	// A tampered list fails with the IMA event id.
	e2.advance(11 * time.Second)
	if err := e.a.AppendIMA(imaLine(t, "/usr/bin/evil", "evil")); err != nil {
		t.Fatal(err)
	}
	res, err = e2.client().Attest(ctx)
	if err != nil || res.Evaluation != "fail" || !strings.Contains(string(res.Failures), "ima.validation.ima-ng.not_in_allowlist") {
		t.Fatalf("bad file: %+v %v", res, err)
	}
}

func TestPushRefusals(t *testing.T) {
	e := newPushEnv(t, &memStore{state: map[string][]byte{}})
	ctx := context.Background()
	base := e.srv.URL + "/v3.0/agents/" + e.a.UUID() + "/attestations"
	patch := func(path, body string) int {
		req, _ := http.NewRequest(http.MethodPatch, base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/vnd.api+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// Evidence before any challenge.
	if code := patch("/latest", `{"data":{"type":"attestation","attributes":{"evidence_collected":[]}}}`); code != 404 {
		t.Fatalf("patch without attestation: %d", code)
	}
	// Unknown agent.
	resp, err := http.Post(e.srv.URL+"/v3.0/agents/nobody/attestations", "application/vnd.api+json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("unknown agent: %d", resp.StatusCode)
	}
	// A completed attestation cannot take evidence again (replay).
	if _, err := e.client().Attest(ctx); err != nil {
		t.Fatal(err)
	}
	if code := patch("/latest", `{"data":{"type":"attestation","attributes":{"evidence_collected":[]}}}`); code != 403 {
		t.Fatalf("replayed evidence: %d", code)
	}
	if code := patch("/7", `{}`); code != 403 {
		t.Fatalf("old index: %d", code)
	}
	// Malformed capabilities.
	e.advance(time.Minute)
	resp, err = http.Post(base, "application/vnd.api+json", strings.NewReader(`{"data":{"type":"attestation","attributes":{"evidence_supported":[]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 422 {
		t.Fatalf("no tpm_quote capability: %d", resp.StatusCode)
	}
}

func TestPushAttacks(t *testing.T) {
	e := newPushEnv(t, &memStore{state: map[string][]byte{}})
	ctx := context.Background()
	c := e.client()
	if _, err := c.Attest(ctx); err != nil {
		t.Fatal(err)
	}
	old := c.LastEvidence

	// Replayed evidence against a fresh challenge: the quote's nonce is
	// the old challenge, so verification fails.
	e.advance(11 * time.Second)
	c.BeforeEvidence = func([]byte) []byte { return old }
	res, err := c.Attest(ctx)
	if err != nil || res.Evaluation != "fail" || !strings.Contains(string(res.Failures), "qoute_validation.quote_validation") {
		t.Fatalf("replayed evidence: %+v %v", res, err)
	}

	// An expired challenge is refused before any verification.
	e.advance(11 * time.Second)
	c.BeforeEvidence = func(b []byte) []byte { e.advance(31 * time.Second); return b }
	_, err = c.Attest(ctx)
	var pe *agent.PushError
	if !errors.As(err, &pe) || pe.Status != 403 || pe.Code != "challenges_expired" {
		t.Fatalf("expired challenge: %v", err)
	}
	c.BeforeEvidence = nil

	// Reboot: a new boot_time restarts the IMA list at entry 0.
	e.advance(11 * time.Second)
	if err := e.a.Reboot(); err != nil {
		t.Fatal(err)
	}
	res, err = c.Attest(ctx)
	if err != nil || res.Evaluation != "pass" {
		t.Fatalf("after reboot: %+v %v", res, err)
	}

	// Wrong AK registered for the agent.
	wrong, err := quote.ParseAK(e.a.EKPublic())
	if err != nil {
		t.Fatal(err)
	}
	e.push.opts.Agents[e.a.UUID()].AK = wrong
	e.advance(11 * time.Second)
	res, err = c.Attest(ctx)
	if err != nil || res.Evaluation != "fail" {
		t.Fatalf("wrong AK: %+v %v", res, err)
	}
}
