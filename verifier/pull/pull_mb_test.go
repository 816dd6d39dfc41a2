package pull

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/zest-attest/zest/digests/eventlog"
	"github.com/zest-attest/zest/fixtures/agent"
	"github.com/zest-attest/zest/policygen"
	"github.com/zest-attest/zest/verifier"
	"github.com/zest-attest/zest/verifier/failure"
	"github.com/zest-attest/zest/verifier/mb"
)

func refstateFor(t *testing.T, name string) verifier.MBEvaluator {
	t.Helper()
	raw, err := os.ReadFile("../../fixtures/eventlog/" + name)
	if err != nil {
		t.Fatal(err)
	}
	l, err := eventlog.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := policygen.GenerateMBRefstate(l, policygen.MBGenerateOptions{WithoutSecureBoot: true})
	if err != nil {
		t.Fatal(err)
	}
	return verifier.Refstate{Ref: ref, Options: mb.Options{}}
}

// TestPullMeasuredBoot attests a swtpm-backed agent whose PCRs 0-9 hold a
// real UEFI boot (Keylime's secure-boot fixture log, replayed at locality 3
// as the firmware started): the log replays against the quote and the
// refstate generated from the same log accepts it; a refstate of another
// machine rejects it with measured_boot ids.
func TestPullMeasuredBoot(t *testing.T) {
	if _, err := exec.LookPath("swtpm"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("swtpm is required in CI")
		}
		t.Skip("swtpm not installed")
	}
	raw, err := os.ReadFile("../../fixtures/eventlog/binary_bios_measurements-secureboot")
	if err != nil {
		t.Fatal(err)
	}
	a := agent.StartTest(t, agent.Options{TPM: agent.NewTestSwtpm(t), EventLog: raw, BootAggregate: true})
	good := verifier.Policies{Runtime: policy(t, nil), MB: refstateFor(t, "binary_bios_measurements-secureboot")}
	tg := target(t, a, good)
	r := Attest(context.Background(), tg, &Session{})
	if r.Verdict() != failure.VerdictTrusted || len(r.Result.MBPCRs) == 0 {
		t.Fatalf("golden refstate: %v %v (mb pcrs %v)", r.Verdict(), r.Result.Failures, r.Result.MBPCRs)
	}
	other := verifier.Policies{Runtime: policy(t, nil), MB: refstateFor(t, "binary_bios_measurements")}
	tg = target(t, a, other)
	r = Attest(context.Background(), tg, &Session{})
	if r.Verdict() != failure.VerdictRejected || r.Result.Failures[0].Component() != "measured_boot" {
		t.Fatalf("other machine's refstate: %v %v", r.Verdict(), r.Result.Failures)
	}
}
