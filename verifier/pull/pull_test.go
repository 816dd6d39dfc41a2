package pull

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/zest-attest/zest/fixtures/agent"
	"github.com/zest-attest/zest/policygen"
	"github.com/zest-attest/zest/verifier"
	"github.com/zest-attest/zest/verifier/failure"
	"github.com/zest-attest/zest/verifier/ima"
	"github.com/zest-attest/zest/verifier/keylime"
	"github.com/zest-attest/zest/verifier/quote"
)

func sum(s string) []byte { d := sha256.Sum256([]byte(s)); return d[:] }

func line(t *testing.T, path, content string) string {
	t.Helper()
	l, err := agent.IMALine(agent.TemplateIMANG, "sha256", sum(content), path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// policy allows files by content and excludes /tmp.
func policy(t *testing.T, files map[string]string) *ima.Policy {
	t.Helper()
	p := policygen.NewRuntimePolicy()
	for path, c := range files {
		p.Digests[path] = []string{hex.EncodeToString(sum(c))}
	}
	p.Excludes = []string{"/tmp/.*"}
	c, err := ima.Compile(p, ima.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func target(t *testing.T, a *agent.Running, pol verifier.Policies, pin ...[]byte) *Target {
	t.Helper()
	cert := a.Certificate()
	tlsConf, err := keylime.AgentTLSConfig(a.ClientCert, cert)
	if err != nil {
		t.Fatal(err)
	}
	c, err := keylime.NewAgentClient(a.URL, tlsConf, keylime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ak, err := quote.ParseAK(a.AKPublic())
	if err != nil {
		t.Fatal(err)
	}
	return &Target{ID: a.UUID(), Client: c, AK: ak, Policies: pol}
}

func TestPullRounds(t *testing.T) {
	a := agent.StartTest(t, agent.Options{BootAggregate: true})
	files := map[string]string{"/usr/bin/bash": "bash", "/usr/bin/ls": "ls"}
	if err := a.AppendIMA(line(t, "/usr/bin/bash", "bash")); err != nil {
		t.Fatal(err)
	}
	tg := target(t, a, verifier.Policies{Runtime: policy(t, files)})
	s := &Session{}
	ctx := context.Background()

	expect := func(name string, verdict failure.Verdict, id string) *Round {
		t.Helper()
		time.Sleep(2 * time.Millisecond) // the TPM clock must advance between rounds
		r := Attest(ctx, tg, s)
		if r.Verdict() != verdict || (id != "" && !hasID(r.Result.Failures, id)) {
			t.Fatalf("%s: verdict %v failures %v; want %v %s", name, r.Verdict(), r.Result.Failures, verdict, id)
		}
		return r
	}
	r1 := expect("first round", failure.VerdictTrusted, "")
	if r1.IMAEntry != 0 || s.State.IMA.NextEntry != 2 || s.PubKey == "" {
		t.Fatalf("after round 1: entry %d state %+v", r1.IMAEntry, s.State.IMA)
	}

	// Incremental: only the new lines travel.
	if err := a.AppendIMA(line(t, "/usr/bin/ls", "ls"), line(t, "/tmp/build.sh", "anything")); err != nil {
		t.Fatal(err)
	}
	r2 := expect("incremental with excluded path", failure.VerdictTrusted, "")
	if r2.IMAEntry != 2 || r2.Result.IMA.Read != 2 || s.State.IMA.NextEntry != 4 {
		t.Fatalf("round 2 read %d from %d, state %+v", r2.Result.IMA.Read, r2.IMAEntry, s.State.IMA)
	}

	// A file not in the policy, and a known file with the wrong content.
	if err := a.AppendIMA(line(t, "/usr/local/bin/evil", "evil")); err != nil {
		t.Fatal(err)
	}
	expect("file not in policy", failure.VerdictRejected, "ima.validation.ima-ng.not_in_allowlist")
	if err := a.AppendIMA(line(t, "/usr/bin/ls", "trojan")); err != nil {
		t.Fatal(err)
	}
	expect("wrong digest", failure.VerdictRejected, "ima.validation.ima-ng.runtime_policy_hash")

	// Reboot: counters reset, the list starts over with a fresh
	// boot_aggregate; full re-attestation from entry 0 passes.
	if err := a.Reboot(); err != nil {
		t.Fatal(err)
	}
	if err := a.AppendIMA(line(t, "/usr/bin/bash", "bash")); err != nil {
		t.Fatal(err)
	}
	r := expect("after reboot", failure.VerdictTrusted, "")
	if !r.Result.Rebooted || s.State.IMA.NextEntry != 2 {
		t.Fatalf("reboot not detected: rebooted=%v state %+v", r.Result.Rebooted, s.State.IMA)
	}
}

func TestPullWrongAKAndUntrustedAgent(t *testing.T) {
	a := agent.StartTest(t, agent.Options{BootAggregate: true})
	pol := verifier.Policies{Runtime: policy(t, nil)}

	// The quote is signed by the agent's AK; verify with another key.
	tg := target(t, a, pol)
	other, err := quote.ParseAK(a.EKPublic())
	if err != nil {
		t.Fatal(err)
	}
	tg.AK = other
	r := Attest(context.Background(), tg, &Session{})
	if r.Verdict() == failure.VerdictTrusted || r.Result.Quote != nil {
		t.Fatalf("wrong AK: %v %v", r.Verdict(), r.Result.Failures)
	}

	// Pinning a different certificate: the TLS handshake fails, the round
	// is an error, never a verdict on unauthenticated data.
	ca, _, err := agent.NewTestCA("not the agent")
	if err != nil {
		t.Fatal(err)
	}
	tlsConf, err := keylime.AgentTLSConfig(a.ClientCert, ca)
	if err != nil {
		t.Fatal(err)
	}
	c, err := keylime.NewAgentClient(a.URL, tlsConf, keylime.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tg = target(t, a, pol)
	tg.Client = c
	r = Attest(context.Background(), tg, &Session{})
	if r.Verdict() != failure.VerdictError || !hasID(r.Result.Failures, IDNoQuote) {
		t.Fatalf("untrusted agent: %v %v", r.Verdict(), r.Result.Failures)
	}
}

func hasID(l failure.List, id string) bool {
	for _, f := range l {
		if f.ID == id {
			return true
		}
	}
	return false
}

func TestEncAlgAccepted(t *testing.T) {
	for _, tt := range []struct {
		got      string
		accepted []string
		want     bool
	}{
		{"rsa", nil, true}, {"rsa2048", nil, true}, {"ecc256", nil, true},
		{"rsassa", nil, false}, {"", nil, false}, {"ecc", []string{"rsa"}, false}, {"rsa3072", []string{"rsa3072"}, true},
	} {
		if got := encAlgAccepted(tt.got, tt.accepted); got != tt.want {
			t.Errorf("encAlgAccepted(%q, %v) = %v", tt.got, tt.accepted, got)
		}
	}
}
