package ima

import (
	"bytes"
	"crypto/sha1" //nolint:gosec
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/zest-attest/zest/digests"
	"github.com/zest-attest/zest/digests/imalog"
)

// batchConfigs force the batched path from the first lines, with batches
// smaller than the workers and batches cut by bytes.
var batchConfigs = []evalConfig{
	{workers: 1, seqLines: 0, batchLines: 2, batchBytes: 1 << 20},
	{workers: 3, seqLines: 0, batchLines: 1, batchBytes: 1 << 20},
	{workers: 2, seqLines: 1, batchLines: 3, batchBytes: 1 << 20},
	{workers: 4, seqLines: 2, batchLines: 64, batchBytes: 200},
	// The first chunk of every batch held by a helper that never runs.
	{workers: 2, seqLines: 0, batchLines: 40, batchBytes: 1 << 20, held: 1},
	{workers: 1, seqLines: 3, batchLines: 33, batchBytes: 1 << 20, held: 2},
}

// sameAsSequential evaluates log under every batch configuration, read
// through a buffer and in place, and fails unless each result equals the
// one-line-at-a-time evaluation's, which it returns.
func sameAsSequential(t testing.TB, p *Policy, state State, in Input, log []byte) *Result {
	t.Helper()
	run := func(cfg evalConfig, inPlace bool) *Result {
		in := in
		if log != nil {
			in.Log = bytes.NewReader(log)
			if inPlace {
				in.Log = imalog.InMemory(log)
			}
		}
		return p.evaluate(state, in, cfg)
	}
	want := run(evalConfig{workers: 1, seqLines: -1}, false)
	for _, cfg := range batchConfigs {
		for _, inPlace := range []bool{false, true} {
			if got := run(cfg, inPlace); !reflect.DeepEqual(got, want) {
				t.Fatalf("batched %+v, in place %v:\n%s\nsequential:\n%s", cfg, inPlace, dump(got), dump(want))
			}
		}
	}
	return want
}

// TestBatchedLongList: a list long enough for Evaluate's own batches, with
// failures of every kind spread over it and a quote that covers only part
// of a batch, gives the sequential result.
func TestBatchedLongList(t *testing.T) {
	fl := fixtureLines(t)
	base := []string{fl["/usr/bin/plain"], fl["/usr/bin/unknown"], fl["/usr/bin/wrongdigest"], fl["/var/log/tomtou"],
		strings.Replace(fl["/usr/bin/plain"], "/usr/bin/plain", "/usr/bin/plaiN", 1), fl["kernel_version"]}
	lines := []string{fl["boot_aggregate"]}
	var log strings.Builder
	log.WriteString(fl["boot_aggregate"] + "\n")
	for i := 0; len(lines) < 3000; i++ {
		l := base[i%len(base)]
		switch i % 97 {
		case 5:
			log.WriteString("10 zz ima-ng sha256:00 /unparsable\n")
			continue
		case 11:
			log.WriteString("\r\n\n")
			continue
		case 13:
			l = " 9" + l[2:] // another PCR: always reported
		}
		lines = append(lines, l)
		log.WriteString(l + "\n")
	}
	p := basePolicy()
	p.Digests["/usr/bin/wrongdigest"] = []string{helloSHA256}
	for _, opts := range []Options{{}, {MaxFailures: 7}, {AllowViolations: true, MaxFailures: 100000}} {
		pol, err := Compile(p, opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, quoted := range []int{len(lines), 1234, 0} {
			var pcr10 []string
			for _, l := range lines[:quoted] {
				if !strings.HasPrefix(l, " 9") {
					pcr10 = append(pcr10, l)
				}
			}
			in := Input{PCR10: map[digests.Algorithm][]byte{
				digests.SHA256: replayLines(t, digests.SHA256, pcr10),
				digests.SHA1:   replayLines(t, digests.SHA1, pcr10),
			}}
			r := sameAsSequential(t, pol, State{}, in, []byte(log.String()))
			if r.Read < 3000 || len(r.Failures) == 0 {
				t.Fatalf("quoted %d: %s", quoted, dump(r))
			}
			if quoted == 1234 && r.Consumed >= uint64(r.Read) {
				t.Fatalf("a quote of part of the list consumed all of it: %s", dump(r))
			}
		}
	}
}

// TestBatchedResume: a trusted long list under Evaluate's own batching,
// then a round resumed from its state.
func TestBatchedResume(t *testing.T) {
	g0 := runtime.NumGoroutine()
	defer func() {
		// Evaluate waits for its helpers; they may take a moment to exit
		// after signalling.
		for i := 0; runtime.NumGoroutine() > g0 && i < 100; i++ {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > g0 {
			t.Errorf("%d goroutines left running", n-g0)
		}
	}()
	bl := makeBenchLog(t, 5000)
	in := Input{PCR10: map[digests.Algorithm][]byte{digests.SHA256: bl.pcr10}}
	r := sameAsSequential(t, bl.policy, State{}, in, bl.log)
	if r.Verdict.String() != "trusted" || r.Consumed != 5000 {
		t.Fatalf("%s", dump(r))
	}
	// The same through Evaluate, whatever GOMAXPROCS is.
	in.Log = bytes.NewReader(bl.log)
	if got := bl.policy.Evaluate(State{}, in); !reflect.DeepEqual(got, r) {
		t.Fatalf("Evaluate with GOMAXPROCS=%d:\n%s", runtime.GOMAXPROCS(0), dump(got))
	}
	// Resume from line 2000 of the list.
	cut := bytes.Index(bl.log, []byte(" /usr/lib/x86_64-linux-gnu/pkg00285/lib2000.so.0\n"))
	start := bytes.LastIndexByte(bl.log[:cut], '\n') + 1
	first := sameAsSequential(t, bl.policy, State{}, Input{PCR10: map[digests.Algorithm][]byte{digests.SHA256: replayPrefix(t, bl.log[:start])}}, bl.log)
	if first.State.NextEntry != 2000 {
		t.Fatalf("first round: %s", dump(first))
	}
	r2 := sameAsSequential(t, bl.policy, first.State, Input{StartEntry: 2000, PCR10: in.PCR10}, bl.log[start:])
	if r2.Verdict.String() != "trusted" || r2.Consumed != 3000 || r2.State.NextEntry != 5000 {
		t.Fatalf("resumed: %s", dump(r2))
	}
}

// replayPrefix replays ima-ng lines into the SHA-256 bank.
func replayPrefix(t testing.TB, log []byte) []byte {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(strings.TrimSuffix(string(log), "\n"), "\n") {
		lines = append(lines, l)
	}
	return replayLines(t, digests.SHA256, lines)
}

// TestParserMatchesReader: imalog.Parser on NextLine's lines gives Next's
// entries (the batched path parses that way).
func TestParserMatchesReader(t *testing.T) {
	bl := makeBenchLog(t, 50)
	log := append([]byte("\n"), bl.log...)
	log = append(log, "10 zz ima-ng sha256:00 /x\n"...)
	a, b := imalog.NewReader(bytes.NewReader(log), "l"), imalog.NewReader(bytes.NewReader(log), "l")
	ps := imalog.NewParser("l")
	for i := 0; ; i++ {
		want, werr := a.Next()
		line, no, off, err := b.NextLine()
		var got imalog.Entry
		if err == nil {
			_, err = ps.Parse(&got, line, no, off, nil)
		}
		if fmt.Sprint(werr) != fmt.Sprint(err) {
			t.Fatalf("line %d: error %v, want %v", i, err, werr)
		}
		if werr != nil {
			break
		}
		td := sha1.Sum(got.AppendTemplateData(nil)) //nolint:gosec
		if got.Line != want.Line || got.Offset != want.Offset || got.Name() != want.Name() || !bytes.Equal(td[:], want.TemplateHash) {
			t.Fatalf("line %d: %+v, want %+v", i, got, *want)
		}
	}
}
