package server

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/zest-attest/zest/fixtures/agent"
	"github.com/zest-attest/zest/policygen"
	"github.com/zest-attest/zest/verifier"
)

// benchIMALines is the IMA log length of the speed target.
const benchIMALines = 10_000

// evidenceBodies builds /verify/evidence bodies from a real quote: an agent
// on the simulator extends its boot_aggregate and n IMA lines into PCR 10 and quotes PCRs 10 and
// 16; the runtime policy allows every measured file. Each body has its own
// nonce.
func evidenceBodies(tb testing.TB, n, count int) [][]byte {
	tb.Helper()
	a := agent.StartTest(tb, agent.Options{BootAggregate: true})
	pol := policygen.NewRuntimePolicy()
	// The boot_aggregate line: "10 <template hash> ima-ng sha256:<hex> boot_aggregate".
	ba := strings.Fields(a.IMALog())
	if len(ba) != 5 || ba[4] != "boot_aggregate" {
		tb.Fatalf("no boot_aggregate line: %q", ba)
	}
	pol.Digests["boot_aggregate"] = []string{strings.TrimPrefix(ba[3], "sha256:")}
	lines := make([]string, n)
	for i := range lines {
		path := fmt.Sprintf("/usr/lib/zest-bench/%05d/lib%d.so", i/100, i)
		d := digest(path)
		l, err := agent.IMALine(agent.TemplateIMANG, "sha256", d, path, nil)
		if err != nil {
			tb.Fatal(err)
		}
		lines[i] = l
		pol.Digests[path] = []string{hex.EncodeToString(d)}
	}
	if err := a.AppendIMA(lines...); err != nil {
		tb.Fatal(err)
	}
	rp, err := pol.Marshal(policygen.FormatKeylime)
	if err != nil {
		tb.Fatal(err)
	}
	out := make([][]byte, count)
	for i := range out {
		nonce := fmt.Sprintf("zestbench%011d", i)
		q, err := a.MakeQuote([]byte(nonce), 1<<11-1) // PCRs 0-10: the boot_aggregate covers 0-9
		if err != nil {
			tb.Fatal(err)
		}
		out[i], err = json.Marshal(map[string]any{"type": "tpm", "data": map[string]any{
			"quote":                q.String(),
			"nonce":                nonce,
			"hash_alg":             "sha256",
			"tpm_ak":               base64.StdEncoding.EncodeToString(a.AKPublic()), // TPM2B_PUBLIC, as Keylime's registrar holds it
			"tpm_ek":               base64.StdEncoding.EncodeToString(a.EKPublic()),
			"tpm_policy":           `{"mask": "0x400"}`,
			"runtime_policy":       string(rp),
			"ima_measurement_list": a.IMALog(),
		}})
		if err != nil {
			tb.Fatal(err)
		}
	}
	return out
}

// BenchmarkEvidence posts /v2.3/verify/evidence bodies carrying a real
// quote and a 10k-line IMA log (with a policy covering it) to zest's HTTP
// server on 127.0.0.1, and, as the baseline in the same run, times
// Keylime's own evidence processing (fixtures/bench/keylime_evidence.py)
// on the same bodies when ZEST_KEYLIME_SRC names a keylime/keylime
// checkout. Metrics: zest req/s and ms/req, Keylime's, and the speedup.
func BenchmarkEvidence(b *testing.B) {
	bodies := evidenceBodies(b, benchIMALines, 4)
	if d := os.Getenv("ZEST_BENCH_DUMP"); d != "" {
		_ = os.WriteFile(d, bodies[0], 0o600)
	}
	// Keylime first, once: its seconds per request are the baseline of
	// both zest runs.
	kl, klCPU, klErr := keylimeEvidence(b, bodies, 8)
	for _, bc := range []struct {
		name  string
		cache *verifier.PolicyCache
	}{
		// Every request parses and compiles its policy, as Keylime does.
		{"compile-each", nil},
		// zest serve's configuration: a fleet's policy is compiled once.
		{"policy-cache", verifier.NewPolicyCache(16)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			zest, zestCPU := benchEvidenceHTTP(b, Library{Options: verifier.EvidenceOptions{Cache: bc.cache}}, bodies)
			b.ReportMetric(1/zest, "req/s")
			b.ReportMetric(zest*1e3, "ms/req")
			b.ReportMetric(zestCPU*1e3, "cpu-ms/req")
			if klErr != nil {
				b.Logf("Keylime baseline not run: %v", klErr)
				return
			}
			b.ReportMetric(kl*1e3, "keylime-ms/req")
			b.ReportMetric(klCPU*1e3, "keylime-cpu-ms/req")
			// Wall-clock ratio, and the CPU-time ratio, which other load
			// on a shared machine does not skew (zest's includes its HTTP
			// client and GC; Keylime's has no HTTP at all).
			b.ReportMetric(kl/zest, "speedup-vs-keylime")
			b.ReportMetric(klCPU/zestCPU, "cpu-speedup-vs-keylime")
		})
	}
}

// benchEvidenceHTTP posts the bodies b.N times to a server on 127.0.0.1
// and returns wall and process CPU seconds per request.
func benchEvidenceHTTP(b *testing.B, ev EvidenceVerifier, bodies [][]byte) (wall, cpu float64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: New(Options{Evidence: ev}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/v2.3/verify/evidence"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	defer client.CloseIdleConnections()
	var answer bytes.Buffer // reused: the answer echoes the megabytes sent
	post := func(body []byte) error {
		resp, err := client.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		answer.Reset()
		if _, err := answer.ReadFrom(resp.Body); err != nil {
			return err
		}
		raw := answer.Bytes()
		if resp.StatusCode != 200 || !bytes.Contains(raw, []byte(`"valid":true`)) {
			return fmt.Errorf("HTTP %d: %.400s", resp.StatusCode, raw)
		}
		return nil
	}
	if err := post(bodies[0]); err != nil { // the bodies must verify: timing rejections proves nothing
		b.Fatal(err)
	}
	b.SetBytes(int64(len(bodies[0])))
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU()
	for i := 0; b.Loop(); i++ {
		if err := post(bodies[i%len(bodies)]); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start).Seconds() / float64(b.N), (processCPU() - cpu0) / float64(b.N)
}

// processCPU is this process's user+system CPU time in seconds.
func processCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// keylimeEvidence runs Keylime's handler on the bodies iterations times
// and returns wall and CPU seconds per request.
func keylimeEvidence(b testing.TB, bodies [][]byte, iterations int) (wall, cpu float64, err error) {
	src := os.Getenv("ZEST_KEYLIME_SRC")
	if src == "" {
		return 0, 0, fmt.Errorf("set ZEST_KEYLIME_SRC to a keylime/keylime checkout")
	}
	dir := b.TempDir()
	args := []string{"../../fixtures/bench/keylime_evidence.py", "--iterations", fmt.Sprint(iterations)}
	for i, body := range bodies {
		p := filepath.Join(dir, fmt.Sprintf("body%d.json", i))
		if err := os.WriteFile(p, body, 0o600); err != nil {
			return 0, 0, err
		}
		args = append(args, p)
	}
	cmd := exec.Command("/usr/bin/python3", args...)
	cmd.Env = append(os.Environ(), "ZEST_KEYLIME_SRC="+src)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, 0, fmt.Errorf("%v: %s", err, lastLines(stderr.String(), 5))
	}
	var res struct {
		Requests int     `json:"requests"`
		Seconds  float64 `json:"seconds"`
		CPU      float64 `json:"cpu_seconds"`
		Valid    int     `json:"valid"`
		Failures []any   `json:"failures"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return 0, 0, fmt.Errorf("driver output %q: %v", out, err)
	}
	if res.Valid != res.Requests {
		// Keylime must accept the same evidence, or it timed a shortcut.
		return 0, 0, fmt.Errorf("Keylime accepted %d of %d bodies: %v", res.Valid, res.Requests, res.Failures)
	}
	return res.Seconds / float64(res.Requests), res.CPU / float64(res.Requests), nil
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}
