package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/zest-attest/zest/verifier"
	"github.com/zest-attest/zest/verifier/failure"
	"github.com/zest-attest/zest/verifier/mb"
)

// verdictExit maps a verdict to zest verify's exit code: 0 trusted,
// 1 rejected, 2 could not evaluate.
func verdictExit(v failure.Verdict) error {
	switch v {
	case failure.VerdictTrusted:
		return nil
	case failure.VerdictRejected:
		return &exitError{code: exitFailure}
	default:
		return &exitError{code: exitUsage}
	}
}

// roundReport is the stable JSON shape of one verification.
type roundReport struct {
	Agent    string          `json:"agent,omitempty"`
	Verdict  failure.Verdict `json:"verdict"`
	Failures failure.List    `json:"failures"`
	Result   any             `json:"result,omitempty"`
}

func (a *app) printRound(r roundReport) {
	who := ""
	if r.Agent != "" {
		who = r.Agent + ": "
	}
	switch {
	case r.Verdict == failure.VerdictTrusted:
		fmt.Fprintf(a.stdout, "%strusted\n", who)
	default:
		fmt.Fprintf(a.stdout, "%s%s (%d %s)\n", who, r.Verdict, len(r.Failures), plural(len(r.Failures), "failure", "failures"))
		for _, f := range r.Failures {
			fmt.Fprintf(a.stdout, "  %s: %s\n", f.ID, f.Message)
		}
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func (a *app) verifyCmd() *cobra.Command {
	var (
		af       agentFlags
		pf       policyFlags
		watch    bool
		interval time.Duration
		count    int
		asJSON   bool
		arch     archiveOpts
	)
	cmd := &cobra.Command{
		Use:   "verify --agent URL (--ak FILE | --registrar URL --agent-id ID) --cert F --key F [policies]",
		Short: "Attest a live Keylime agent (or stateless evidence) against runtime, measured-boot and TPM policies",
		Long: `Attest a live Keylime agent: ask it for an integrity quote (REST API v2.1-2.6,
mTLS with a pinned agent certificate), verify the quote with the AK (from a
file or a Keylime registrar), replay the UEFI and IMA logs against the quoted
PCRs and evaluate the policies. --watch keeps attesting every --interval and
sends only new IMA lines each round.

Exit status: 0 trusted, 1 rejected, 2 could not evaluate (or bad usage); with
--watch the worst verdict seen.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if af.Agent == "" && af.Registrar == "" {
				return usageErrorf("give --agent URL (or --registrar URL --agent-id ID), or use 'zest verify evidence FILE'")
			}
			if interval <= 0 {
				return usageErrorf("--interval must be positive")
			}
			ctx, stop := signalContext()
			defer stop()
			return a.runVerifyAgent(ctx, &af, &pf, watch, interval, count, asJSON, &arch)
		},
	}
	af.register(cmd)
	pf.register(cmd)
	arch.register(cmd)
	cmd.Flags().BoolVar(&watch, "watch", false, "keep attesting every --interval until interrupted")
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "time between rounds with --watch")
	cmd.Flags().IntVar(&count, "count", 0, "with --watch, stop after `N` rounds (0: until interrupted)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per round")
	cmd.AddCommand(a.verifyEvidenceCmd())
	return cmd
}

func (a *app) verifyEvidenceCmd() *cobra.Command {
	var asJSON, allowQuirks bool
	cmd := &cobra.Command{
		Use:   "evidence FILE",
		Short: "Verify a Keylime /verify/evidence request body (stateless; FILE may be -)",
		Long: `Verify one piece of stateless evidence: a JSON file shaped like the body of
Keylime's POST /v2.x/verify/evidence ({"type":"tpm","data":{quote, nonce,
hash_alg, tpm_ak, tpm_ek, tpm_policy, runtime_policy, mb_policy,
ima_measurement_list, mb_log}}).

Exit status: 0 trusted, 1 rejected, 2 could not evaluate (or bad usage).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var body []byte
			var err error
			if args[0] == "-" {
				body, err = io.ReadAll(io.LimitReader(a.stdin, verifier.MaxEvidenceBody+1))
			} else {
				body, err = readFileLimited(args[0], verifier.MaxEvidenceBody)
			}
			if err != nil {
				return &exitError{code: exitUsage, err: err}
			}
			req, inputErrs, err := verifier.ParseEvidenceRequest(body)
			if err != nil {
				return &exitError{code: exitUsage, err: fmt.Errorf("%s: %w", args[0], err)}
			}
			rep := roundReport{Verdict: failure.VerdictError, Failures: inputErrs}
			if len(inputErrs) == 0 {
				opts := verifier.EvidenceOptions{MB: mbEvaluatorFromRefstate}
				opts.AllowEventLogQuirks = allowQuirks
				r := verifier.VerifyEvidence(req, opts)
				rep = roundReport{Verdict: r.Verdict, Failures: r.Failures, Result: r}
			}
			if asJSON {
				if err := writeJSON(a, rep); err != nil {
					return err
				}
			} else {
				a.printRound(rep)
			}
			return verdictExit(rep.Verdict)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.Flags().BoolVar(&allowQuirks, "allow-eventlog-quirks", false, "let the UEFI log replay try zest's named firmware quirks")
	return cmd
}

// readFileLimited reads a file of at most limit bytes.
func readFileLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return b, nil
}

// mbEvaluatorFromRefstate builds the measured-boot evaluator for a Keylime
// refstate.
func mbEvaluatorFromRefstate(refstate []byte) (verifier.MBEvaluator, error) {
	return verifier.ParseRefstate(refstate, "mb_policy", mb.Options{})
}
