package keylime_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/zest-attest/zest/fixtures/agent"
	"github.com/zest-attest/zest/verifier/keylime"
)

// BenchmarkIntegrityQuote is one pull round against the simulator-backed
// agent over mTLS on loopback: quote over PCRs 10 and 16 plus a 1000-line
// IMA list. In the same run it times two baselines and reports ratios:
// x-http, a bare GET /version on the same connection (transport cost), and
// x-tpm, the agent's TPM work alone (PCR 16 reset/extend, PCR read,
// TPM2_Quote) without HTTP.
func BenchmarkIntegrityQuote(b *testing.B) {
	lines := make([]string, 1000)
	for i := range lines {
		l, err := agent.IMALine(agent.TemplateIMANG, "sha256", make([]byte, 32), fmt.Sprintf("/usr/bin/f%d", i), nil)
		if err != nil {
			b.Fatal(err)
		}
		lines[i] = l
	}
	r := agent.StartTest(b, agent.Options{IMA: lines})
	tc, _ := keylime.AgentTLSConfig(r.ClientCert, r.Certificate())
	c, _ := keylime.NewAgentClient(r.URL, tc, keylime.Options{})
	ctx := context.Background()
	if _, err := c.Negotiate(ctx); err != nil {
		b.Fatal(err)
	}
	timeIt := func(n int, f func() error) time.Duration {
		best := time.Duration(1<<63 - 1)
		for range 3 {
			start := time.Now()
			for range n {
				if err := f(); err != nil {
					b.Fatal(err)
				}
			}
			best = min(best, time.Since(start)/time.Duration(n))
		}
		return best
	}
	httpBase := timeIt(50, func() error { _, err := c.Version(ctx); return err })
	tpmBase := timeIt(50, func() error { _, err := r.MakeQuote([]byte("bench"), 1<<10); return err })
	b.ResetTimer()
	for b.Loop() {
		q, err := c.IntegrityQuote(ctx, keylime.IntegrityRequest{Nonce: "bench", Mask: 1 << 10, Partial: true})
		if err != nil || q.IMAMeasurementList == nil {
			b.Fatal(err)
		}
	}
	per := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(per.Microseconds())/1000, "ms/round")
	b.ReportMetric(per.Seconds()/httpBase.Seconds(), "x-http")
	b.ReportMetric(per.Seconds()/tpmBase.Seconds(), "x-tpm")
}
