package pull

import (
	"context"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/zest-attest/zest/fixtures/agent"
	"github.com/zest-attest/zest/verifier"
	"github.com/zest-attest/zest/verifier/failure"
)

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

func heapAndGoroutines() (uint64, int) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc, runtime.NumGoroutine()
}

// TestPullSoak runs a Runner over ZEST_SOAK_AGENTS agents (default 200,
// all on one shared simulator, each serving mTLS on 127.0.0.1) at a 2 s
// interval for ZEST_SOAK_SECONDS (default and minimum 30). One agent stops
// serving from 1/5 to 1/2 of the run: its rounds must be errors with
// growing backoff (4 s, then 8 s), and it must be trusted again after it
// comes back. Every other
// agent must be trusted in every round without a skipped slot; heap and
// goroutines must not grow. Run by `make soak`; skipped unless ZEST_SOAK
// is set.
func TestPullSoak(t *testing.T) {
	if testing.Short() || os.Getenv("ZEST_SOAK") == "" {
		t.Skip("soak test: run with ZEST_SOAK=1 (make soak)")
	}
	n := soakEnv(t, "ZEST_SOAK_AGENTS", 200)
	secs := soakEnv(t, "ZEST_SOAK_SECONDS", 30)
	if secs < 30 {
		t.Fatalf("ZEST_SOAK_SECONDS=%d: the outage, backoff and recovery of one agent need at least 30 s", secs)
	}
	const interval = 2 * time.Second
	sim, err := agent.OpenSimulator()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	tpm := sim
	pol := verifier.Policies{Runtime: policy(t, map[string]string{"/usr/bin/bash": "bash"})}
	setup := time.Now()
	agents := make([]*agent.Running, n)
	targets := make([]*Target, n)
	for i := range agents {
		agents[i] = agent.StartTest(t, agent.Options{TPM: tpm, KeyAlg: agent.ECC})
		targets[i] = target(t, agents[i], pol)
	}
	t.Logf("%d agents on one simulator started in %v", n, time.Since(setup).Round(time.Millisecond))
	victim := agents[0].UUID()

	type agentLog struct {
		starts   []time.Time
		lat      []time.Duration
		verdicts []failure.Verdict
		errs     []int
		next     []float64
	}
	var mu sync.Mutex
	logs := map[string]*agentLog{}
	// Room for every round up front, so the heap measured below is the
	// runner's and the agents', not this log's.
	perAgent := secs/int(interval/time.Second) + 4
	for _, a := range agents {
		logs[a.UUID()] = &agentLog{
			starts: make([]time.Time, 0, perAgent), lat: make([]time.Duration, 0, perAgent),
			verdicts: make([]failure.Verdict, 0, perAgent), errs: make([]int, 0, perAgent), next: make([]float64, 0, perAgent),
		}
	}
	r := &Runner{Interval: interval, Concurrency: 16, MaxBackoff: 4 * interval}
	r.OnRound = func(round *Round) {
		mu.Lock()
		defer mu.Unlock()
		l := logs[round.Agent]
		l.starts = append(l.starts, round.Start)
		l.lat = append(l.lat, round.End.Sub(round.Start))
		l.verdicts = append(l.verdicts, round.Verdict())
		for _, s := range r.Statuses() {
			if s.Agent == round.Agent {
				l.errs = append(l.errs, s.Errors)
				l.next = append(l.next, s.NextRoundS)
			}
		}
	}
	heap0, gr0 := heapAndGoroutines()
	d := time.Duration(secs) * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var stopAt, backAt time.Time
	outage := make(chan struct{})
	go func() {
		defer close(outage)
		time.Sleep(d / 5)
		stopAt = time.Now()
		agents[0].Stop()
		time.Sleep(d/2 - d/5)
		if err := agents[0].Restart(); err != nil {
			t.Errorf("restart: %v", err)
		}
		backAt = time.Now()
	}()
	sessions := map[string]*Session{}
	start := time.Now()
	_ = r.Run(ctx, targets, sessions)
	<-outage
	for _, tg := range targets {
		tg.Client.CloseIdleConnections()
	}
	time.Sleep(100 * time.Millisecond) // let agent servers see the connections close
	heap1, gr1 := heapAndGoroutines()

	var rounds, ideal, skipped, bad int
	var lat []time.Duration
	for _, tg := range targets {
		if tg.ID == victim {
			continue
		}
		l := logs[tg.ID]
		rounds += len(l.starts)
		lat = append(lat, l.lat...)
		if len(l.starts) > 0 {
			ideal += 1 + int(start.Add(d).Sub(l.starts[0])/interval)
		}
		for i, v := range l.verdicts {
			if v != failure.VerdictTrusted {
				bad++
			}
			if i > 0 && l.starts[i].Sub(l.starts[i-1]) > interval*3/2 {
				skipped++
			}
		}
	}
	// A round of an agent may straddle the end of the run.
	missed := max(0, ideal-rounds-(n-1))
	t.Logf("pull soak: %d agents × %ds at %v: %d rounds of healthy agents (ideal %d, at most %d cut off by the end), %d missed, %d skipped slots, %d not trusted",
		n, secs, interval, rounds, ideal, n-1, missed, skipped, bad)
	slices.Sort(lat)
	if len(lat) > 0 {
		t.Logf("round latency (request to verdict) p50 %v p99 %v max %v", lat[len(lat)/2].Round(time.Microsecond),
			lat[len(lat)*99/100].Round(time.Microsecond), lat[len(lat)-1].Round(time.Microsecond))
	}
	t.Logf("heap %.1f MiB → %.1f MiB, goroutines %d → %d", float64(heap0)/(1<<20), float64(heap1)/(1<<20), gr0, gr1)
	if missed > 0 || skipped > 0 || bad > 0 {
		t.Errorf("healthy agents: %d missed rounds, %d skipped slots, %d rounds not trusted", missed, skipped, bad)
	}

	// The stopped agent: trusted, then errors with growing backoff, then
	// trusted again after it came back.
	l := logs[victim]
	var phases []string
	maxErrs, maxNext := 0, 0.0
	recovered := false
	for i, v := range l.verdicts {
		switch {
		case l.starts[i].Before(stopAt) && v != failure.VerdictTrusted:
			t.Errorf("stopped agent round %d before the stop: %v", i, v)
		case v == failure.VerdictError:
			maxErrs, maxNext = max(maxErrs, l.errs[i]), max(maxNext, l.next[i])
		case v == failure.VerdictTrusted && l.starts[i].After(backAt):
			recovered = true
		}
		if len(phases) == 0 || phases[len(phases)-1] != v.String() {
			phases = append(phases, v.String())
		}
	}
	t.Logf("stopped agent: verdicts %v, up to %d consecutive errors, backoff up to %.0fs, recovered: %v", phases, maxErrs, maxNext, recovered)
	if maxErrs < 2 || maxNext <= interval.Seconds() || !recovered {
		t.Errorf("stopped agent did not fail with backoff and recover: %d errors, backoff %.1fs, recovered %v", maxErrs, maxNext, recovered)
	}
	if heap1 > heap0+16<<20 {
		t.Errorf("heap grew from %d to %d bytes", heap0, heap1)
	}
	if gr1 > gr0+2 {
		t.Errorf("goroutines %d → %d", gr0, gr1)
	}
}
