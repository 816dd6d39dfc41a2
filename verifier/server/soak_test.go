package server

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/zest-attest/zest/fixtures/agent"
	"github.com/zest-attest/zest/policygen"
	"github.com/zest-attest/zest/verifier"
	"github.com/zest-attest/zest/verifier/ima"
	"github.com/zest-attest/zest/verifier/quote"
)

// soakEnv reads a positive integer soak parameter.
func soakEnv(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// soakTPMs opens the in-process simulator plus extra swtpm, each shared by
// many agents.
func soakTPMs(t *testing.T, swtpms int) []agent.TPM {
	t.Helper()
	sim, err := agent.OpenSimulator()
	if err != nil {
		t.Fatal(err)
	}
	tpms := []agent.TPM{sim}
	t.Cleanup(func() { _ = sim.Close() })
	for range swtpms {
		tpms = append(tpms, agent.NewTestSwtpm(t))
	}
	return tpms
}

// TestPushSoak runs ZEST_SOAK_AGENTS push agents (default 100, several per
// TPM: the simulator plus ZEST_SOAK_SWTPM swtpm) against one push server
// on 127.0.0.1 at a 2 s interval for ZEST_SOAK_SECONDS (default 20). Each
// agent pushes again seconds_to_next_attestation after each answer, as
// rust-keylime's push agent does. It fails on any error, 429 or rejected
// round, on a skipped slot (two round starts more than 1.5 intervals plus
// the previous round's latency apart: a missed round), and on heap or
// goroutine growth; it logs rounds vs the ideal count at the median
// latency, p50/p99 round latency (agent-observed, and the verifier's
// share) and the heap. Run by
// `make soak`; skipped unless ZEST_SOAK is set.
func TestPushSoak(t *testing.T) {
	if testing.Short() || os.Getenv("ZEST_SOAK") == "" {
		t.Skip("soak test: run with ZEST_SOAK=1 (make soak)")
	}
	n := soakEnv(t, "ZEST_SOAK_AGENTS", 100)
	secs := soakEnv(t, "ZEST_SOAK_SECONDS", 20)
	swtpms, _ := strconv.Atoi(os.Getenv("ZEST_SOAK_SWTPM"))
	const interval = 2 * time.Second
	tpms := soakTPMs(t, swtpms)

	payload, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pol := policygen.NewRuntimePolicy()
	pol.Digests["/usr/bin/bash"] = []string{hex.EncodeToString(digest("bash"))}
	rt, err := ima.Compile(pol, ima.Options{})
	if err != nil {
		t.Fatal(err)
	}
	setup := time.Now()
	agents := make([]*agent.Agent, n)
	pushAgents := map[string]*PushAgent{}
	for i := range agents {
		a, err := agent.New(agent.Options{TPM: tpms[i%len(tpms)], KeyAlg: agent.ECC, PayloadKey: payload})
		if err != nil {
			t.Fatalf("agent %d: %v", i, err)
		}
		t.Cleanup(func() { _ = a.Close() })
		ak, err := quote.ParseAK(a.AKPublic())
		if err != nil {
			t.Fatal(err)
		}
		agents[i] = a
		pushAgents[a.UUID()] = &PushAgent{ID: a.UUID(), AK: ak, Policies: verifier.Policies{Runtime: rt}}
	}
	t.Logf("%d agents on %d TPMs created in %v", n, len(tpms), time.Since(setup).Round(time.Millisecond))
	// The verifier's own share of a round: the PATCH from receipt to
	// verdict (the rest of a round's latency is the agent's TPM, here
	// one emulator serving many agents).
	var vmu sync.Mutex
	var verify []time.Duration
	onRound := func(r *PushRound) {
		vmu.Lock()
		verify = append(verify, r.End.Sub(r.Start))
		vmu.Unlock()
	}
	push, err := NewPush(PushOptions{Agents: pushAgents, Interval: interval, OnRound: onRound})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(Options{Push: push}))
	defer srv.Close()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()

	type agentStats struct {
		rounds, errs, rejected, tooEarly, skipped int
		lat                                       []time.Duration
		firstErr                                  error
	}
	stats := make([]agentStats, n)
	for i := range stats { // room up front: the heap measured is the server's
		stats[i].lat = make([]time.Duration, 0, secs/int(interval/time.Second)+4)
	}
	verify = make([]time.Duration, 0, n*(secs/int(interval/time.Second)+4))
	heap0, gr0 := heapAndGoroutines()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs)*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := &stats[i]
			c := &agent.PushClient{Agent: a, Verifier: srv.URL, HTTP: hc, BindPEM: a.AKPublicPEM()}
			// Spread the first rounds over one interval.
			next := time.Now().Add(time.Duration(i) * interval / time.Duration(n))
			var prevStart time.Time
			var prevLat time.Duration
			for {
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Until(next)):
				}
				start := time.Now()
				res, err := c.Attest(ctx)
				lat := time.Since(start)
				if ctx.Err() != nil {
					return // cut off by the end of the run: not a result
				}
				if !prevStart.IsZero() && start.Sub(prevStart) > interval*3/2+prevLat {
					st.skipped++
				}
				prevStart, prevLat = start, lat
				next = time.Now().Add(interval)
				var pe *agent.PushError
				switch {
				case errors.As(err, &pe) && pe.Status == http.StatusTooManyRequests:
					st.tooEarly++
					next = time.Now().Add(pe.RetryAfter)
				case err != nil:
					st.errs++
				case res.Evaluation != "pass":
					st.rejected++
					err = fmt.Errorf("evaluation %q: %s", res.Evaluation, res.Failures)
				default:
					st.rounds++
					st.lat = append(st.lat, lat)
					if res.NextIn > 0 {
						next = time.Now().Add(res.NextIn)
					}
				}
				if err != nil && st.firstErr == nil {
					st.firstErr = err
				}
			}
		}()
	}
	wg.Wait()
	srv.CloseClientConnections()
	hc.CloseIdleConnections()
	heap1, gr1 := heapAndGoroutines()

	var all []time.Duration
	var tot agentStats
	for i := range stats {
		s := &stats[i]
		tot.rounds += s.rounds
		tot.errs += s.errs
		tot.rejected += s.rejected
		tot.tooEarly += s.tooEarly
		tot.skipped += s.skipped
		all = append(all, s.lat...)
		if s.firstErr != nil && tot.firstErr == nil {
			tot.firstErr = s.firstErr
		}
	}
	pctOf := func(l []time.Duration) func(float64) time.Duration {
		slices.Sort(l)
		return func(p float64) time.Duration {
			if len(l) == 0 {
				return 0
			}
			return l[min(len(l)-1, int(p*float64(len(l))))]
		}
	}
	pct := pctOf(all)
	vpct := pctOf(verify)
	// Each agent's period is the interval plus its round's latency
	// (Keylime counts the interval from the evidence); agent i starts at
	// i/n of an interval, and a round cut off by the end does not count.
	ideal := 0
	for i := range n {
		left := time.Duration(secs)*time.Second - time.Duration(i)*interval/time.Duration(n) - pct(0.5)
		ideal += 1 + int(left/(interval+pct(0.5)))
	}
	t.Logf("push soak: %d agents × %ds at %v: %d rounds (%.1f%% of %d at the median latency), %d missed (skipped slots), %d errors, %d rejected, %d premature (429); round latency p50 %v p99 %v max %v",
		n, secs, interval, tot.rounds, 100*float64(tot.rounds)/float64(max(ideal, 1)), ideal, tot.skipped, tot.errs, tot.rejected, tot.tooEarly,
		pct(0.5).Round(time.Microsecond), pct(0.99).Round(time.Microsecond), pct(1).Round(time.Microsecond))
	t.Logf("verifier share (PATCH receipt to verdict): p50 %v p99 %v max %v over %d rounds",
		vpct(0.5).Round(time.Microsecond), vpct(0.99).Round(time.Microsecond), vpct(1).Round(time.Microsecond), len(verify))
	t.Logf("heap %.1f MiB → %.1f MiB, goroutines %d → %d", float64(heap0)/(1<<20), float64(heap1)/(1<<20), gr0, gr1)
	if tot.errs+tot.rejected+tot.tooEarly > 0 {
		t.Errorf("failed rounds; first: %v", tot.firstErr)
	}
	if tot.skipped > 0 {
		t.Errorf("%d missed rounds (skipped slots)", tot.skipped)
	}
	// Per-agent state is fixed-size: the heap may not grow with rounds
	// (slack for allocator noise).
	if heap1 > heap0+16<<20 {
		t.Errorf("heap grew from %d to %d bytes", heap0, heap1)
	}
	if gr1 > gr0+2 {
		t.Errorf("goroutines %d → %d", gr0, gr1)
	}
}

func heapAndGoroutines() (uint64, int) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc, runtime.NumGoroutine()
}
