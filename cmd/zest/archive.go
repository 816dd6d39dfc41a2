package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/zest-attest/zest/archive"
	"github.com/zest-attest/zest/verifier/failure"
)

// roundVerifier is the verifier replay re-evaluates rounds with. Until the
// verifier library is wired here it is nil, and replay reports verdicts as
// recorded (signatures, proofs and blob hashes still checked).
// roundVerifier re-evaluates archived evidence with the verifier library,
// unless recorded is set (integrity and continuity checks only).
func (a *app) roundVerifier(recorded bool) archive.RoundVerifier {
	if recorded {
		return nil
	}
	return &archive.Reverifier{}
}

// archiveFlags are shared by the archive subcommands.
type archiveFlags struct {
	dir string
	db  string
}

func (f *archiveFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&f.dir, "dir", "zest-archive", "archive directory: SQLite store, embedded transparency log, trusted keys")
	c.Flags().StringVar(&f.db, "db", "", "store: postgres://… URL or SQLite path (default DIR/archive.db)")
}

func (f *archiveFlags) dsn() string {
	if f.db != "" {
		return f.db
	}
	return filepath.Join(f.dir, "archive.db")
}

func (f *archiveFlags) open(ctx context.Context) (archive.Store, error) {
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		return nil, err
	}
	// The embedded SQLite default migrates itself; PostgreSQL is
	// migrated explicitly (zest archive migrate).
	return archive.OpenStore(ctx, f.dsn(), archive.OpenOptions{Migrate: !archive.IsPostgres(f.dsn())})
}

func (f *archiveFlags) verifiersPath() string { return filepath.Join(f.dir, "verifiers.pem") }
func (f *archiveFlags) rekorKeyPath() string  { return filepath.Join(f.dir, "rekor.json") }
func (f *archiveFlags) logDir() string        { return filepath.Join(f.dir, "log") }

// trust returns the keys the archive directory trusts, overridden by
// --key / --log-key files when given.
func (f *archiveFlags) trust(keyFiles []string, logKeyFile string) (archive.Keyring, []archive.LogKey, error) {
	keys := archive.Keyring{}
	if len(keyFiles) == 0 {
		keyFiles = []string{f.verifiersPath()}
	}
	for _, p := range keyFiles {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, nil, err
		}
		if _, err := keys.Add(b); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	var logs []archive.LogKey
	if logKeyFile != "" {
		b, err := os.ReadFile(logKeyFile)
		if err != nil {
			return nil, nil, err
		}
		if err := json.Unmarshal(b, &logs); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", logKeyFile, err)
		}
		return keys, logs, nil
	}
	if vkey, err := os.ReadFile(filepath.Join(f.logDir(), "log.vkey")); err == nil {
		origin, _ := os.ReadFile(filepath.Join(f.logDir(), "origin"))
		logs = append(logs, archive.LogKey{Log: archive.LogLocal, Origin: strings.TrimSpace(string(origin)), VKey: strings.TrimSpace(string(vkey))})
	}
	if b, err := os.ReadFile(f.rekorKeyPath()); err == nil {
		var k archive.LogKey
		if err := json.Unmarshal(b, &k); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", f.rekorKeyPath(), err)
		}
		logs = append(logs, k)
	}
	return keys, logs, nil
}

func (a *app) archiveCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "archive",
		Short: "Durable attestation records: store, transparency log, replay, audit bundles",
		Long: `The archive keeps every registration and attestation round signed by the
verifier, with its raw evidence and policies, entered in a transparency log
(an embedded Merkle log, or Rekor with --rekor), and replays any window
offline, even after the agent is gone.`,
	}
	c.AddCommand(a.archiveKeygenCmd(), a.archiveMigrateCmd(), a.archiveIngestCmd(), a.archiveDrainCmd(),
		a.archiveStatusCmd(), a.archiveReplayCmd(), a.archiveExportCmd(), a.archiveAuditCmd(), a.archiveReportCmd())
	return c
}

func (a *app) archiveKeygenCmd() *cobra.Command {
	var out, alg string
	c := &cobra.Command{
		Use:   "keygen -o KEY.pem",
		Short: "Create a verifier signing key (ECDSA P-256 by default; Rekor needs ECDSA)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usageErrorf("keygen needs -o")
			}
			p, err := archive.GenerateKeyPEM(alg)
			if err != nil {
				return usageErrorf("%v", err)
			}
			s, err := archive.ParseSigner(p)
			if err != nil {
				return err
			}
			if err := writeFileAtomic(out, p, 0o600); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s\n", s.KeyID)
			return nil
		},
	}
	c.Flags().StringVarP(&out, "output", "o", "", "private key file to write (PEM, mode 0600)")
	c.Flags().StringVar(&alg, "alg", "ecdsa-p256", "ecdsa-p256 or ed25519")
	return c
}

func (a *app) archiveMigrateCmd() *cobra.Command {
	var f archiveFlags
	c := &cobra.Command{
		Use:   "migrate",
		Short: "Apply pending schema migrations to the store",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.db == "" {
				if err := os.MkdirAll(f.dir, 0o755); err != nil {
					return err
				}
			}
			from, to, err := archive.Migrate(cmd.Context(), f.dsn())
			if err != nil {
				return err
			}
			if from == to {
				a.note("schema at version %d, nothing to do", to)
			} else {
				a.note("schema migrated from version %d to %d", from, to)
			}
			return nil
		},
	}
	f.register(c)
	return c
}

// ingestLine is one line of `zest archive ingest` input: a registration or
// a round, with blobs given inline.
type ingestLine struct {
	Kind    string    `json:"kind"` // "registration" | "round"
	AgentID string    `json:"agent_id"`
	Seq     uint64    `json:"seq"`
	Time    time.Time `json:"time"`
	// Registration.
	AK string `json:"ak"` // PEM or base64 TPM2B_PUBLIC
	// Round.
	IntervalMS    int64           `json:"interval_ms"`
	Quote         string          `json:"quote"`
	Nonce         string          `json:"nonce"`
	HashAlg       string          `json:"hash_alg"`
	SignAlg       string          `json:"sign_alg"`
	EncAlg        string          `json:"enc_alg"`
	BootTime      int64           `json:"boot_time"`
	IMAStart      uint64          `json:"ima_start"`
	IMALines      string          `json:"ima_lines"`
	UEFILog       []byte          `json:"uefi_log"` // base64
	RuntimePolicy json.RawMessage `json:"runtime_policy"`
	MBPolicy      json.RawMessage `json:"mb_policy"`
	Verdict       failure.Verdict `json:"verdict"`
	Failures      failure.List    `json:"failures"`
	Options       []string        `json:"options"`
	Verifier      string          `json:"verifier"`
}

func (a *app) archiveIngestCmd() *cobra.Command {
	var f archiveFlags
	var keyPath, log string
	c := &cobra.Command{
		Use:   "ingest --key KEY.pem FILE.jsonl",
		Short: "Sign and store registrations and rounds given as JSON lines (import, tests)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyPath == "" {
				return usageErrorf("ingest needs --key")
			}
			signer, err := archive.LoadSigner(keyPath)
			if err != nil {
				return err
			}
			in, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			st, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			if err := trustSigner(f.verifiersPath(), signer); err != nil {
				return err
			}
			w := &archive.Writer{Store: st, Signer: signer, Log: log}
			aks := map[string]archive.Ref{}
			var entries []archive.Entry
			n := 0
			for i, line := range bytes.Split(in, []byte("\n")) {
				if len(bytes.TrimSpace(line)) == 0 {
					continue
				}
				var l ingestLine
				dec := json.NewDecoder(bytes.NewReader(line))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&l); err != nil {
					return fmt.Errorf("%s line %d: %w", args[0], i+1, err)
				}
				switch l.Kind {
				case "registration":
					ak := archive.NewBlob([]byte(l.AK))
					aks[l.AgentID] = ak.Ref
					rec, err := archive.SignRegistration(signer, &archive.Registration{AgentID: l.AgentID, Time: l.Time, AK: ak.Ref, Verifier: l.Verifier})
					if err != nil {
						return fmt.Errorf("%s line %d: %w", args[0], i+1, err)
					}
					entries = append(entries, archive.Entry{Record: rec, Blobs: []archive.Blob{ak}})
				case "round":
					r := &archive.Round{AgentID: l.AgentID, Seq: l.Seq, Time: l.Time, IntervalMS: l.IntervalMS,
						Evidence: archive.Evidence{Quote: l.Quote, Nonce: l.Nonce, HashAlg: l.HashAlg, SignAlg: l.SignAlg, EncAlg: l.EncAlg,
							AK: aks[l.AgentID], BootTime: l.BootTime, IMAStart: l.IMAStart},
						Verdict: l.Verdict, Failures: l.Failures, Options: l.Options, Verifier: l.Verifier}
					var blobs []archive.Blob
					if l.IMALines != "" {
						b := archive.NewBlob([]byte(l.IMALines))
						r.Evidence.IMALines, r.Evidence.IMACount = b.Ref, uint64(strings.Count(l.IMALines, "\n"))
						blobs = append(blobs, b)
					}
					for _, x := range []struct {
						data []byte
						ref  *archive.Ref
					}{{l.UEFILog, &r.Evidence.UEFILog}, {l.RuntimePolicy, &r.RuntimePolicy}, {l.MBPolicy, &r.MBPolicy}} {
						if len(x.data) > 0 {
							b := archive.NewBlob(x.data)
							*x.ref = b.Ref
							blobs = append(blobs, b)
						}
					}
					e, err := w.RoundEntry(r, blobs...)
					if err != nil {
						return fmt.Errorf("%s line %d: %w", args[0], i+1, err)
					}
					entries = append(entries, e)
				default:
					return fmt.Errorf("%s line %d: kind %q is neither registration nor round", args[0], i+1, l.Kind)
				}
				n++
			}
			if _, err := st.Append(cmd.Context(), log, entries); err != nil {
				return err
			}
			a.note("stored %d records (signed by %s)", n, signer.KeyID[:16])
			return nil
		},
	}
	f.register(c)
	c.Flags().StringVar(&keyPath, "key", "", "verifier private key (PEM) that signs the records")
	c.Flags().StringVar(&log, "log", archive.LogLocal, "transparency log to queue records for: local or rekor")
	return c
}

// trustSigner adds the signer's public key to the archive's trusted keys.
func trustSigner(path string, s *archive.Signer) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if bytes.Contains(old, s.PublicPEM) {
		return nil
	}
	return writeFileAtomic(path, append(old, s.PublicPEM...), 0o644)
}

func (a *app) archiveDrainCmd() *cobra.Command {
	var f archiveFlags
	var rekorURL string
	var watch bool
	c := &cobra.Command{
		Use:   "drain",
		Short: "Enter queued records in the transparency log (embedded, or Rekor with --rekor)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			st, err := f.open(ctx)
			if err != nil {
				return err
			}
			defer st.Close()
			keys, _, err := f.trust(nil, "")
			if err != nil {
				return err
			}
			var tl archive.TransparencyLog
			if rekorURL != "" {
				rl, err := archive.NewRekorLog(rekorURL)
				if err != nil {
					return err
				}
				if _, err := os.Stat(f.rekorKeyPath()); errors.Is(err, os.ErrNotExist) {
					// Trust on first use: pin the log's key and origin.
					k, err := rl.Key(ctx)
					if err != nil {
						return err
					}
					b, _ := json.MarshalIndent(k, "", "  ")
					if err := writeFileAtomic(f.rekorKeyPath(), append(b, '\n'), 0o644); err != nil {
						return err
					}
					a.note("pinned Rekor key for %q in %s", k.Origin, f.rekorKeyPath())
				}
				tl = rl
			} else {
				ll, err := archive.OpenLocalLog(f.logDir(), "zest-archive/"+hostname())
				if err != nil {
					return err
				}
				defer ll.Close()
				tl = ll
			}
			ob := &archive.Outbox{Store: st, Log: tl, Keys: keys}
			if watch {
				ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
				defer stop()
				ob.OnError = func(err error) { a.note("archive: %v", err) }
				if err := ob.Run(ctx, time.Second); err != nil && !errors.Is(err, context.Canceled) {
					return err
				}
				return nil
			}
			n, err := ob.Drain(ctx)
			if err != nil {
				return err
			}
			s, err := st.Status(ctx)
			if err != nil {
				return err
			}
			a.note("logged %d records in %s; backlog %d", n, tl.Name(), s.Backlog[tl.Name()])
			if s.Backlog[tl.Name()] > 0 {
				return &exitError{code: exitFailure, err: fmt.Errorf("%d records still queued: %s", s.Backlog[tl.Name()], s.LastError)}
			}
			return nil
		},
	}
	f.register(c)
	c.Flags().StringVar(&rekorURL, "rekor", "", "Rekor URL (default: the embedded log in DIR/log)")
	c.Flags().BoolVar(&watch, "watch", false, "keep draining until interrupted")
	return c
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}

func (a *app) archiveStatusCmd() *cobra.Command {
	var f archiveFlags
	var asJSON bool
	c := &cobra.Command{
		Use:   "status",
		Short: "Show what the archive holds and the transparency-log backlog",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			s, err := st.Status(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(a, s)
			}
			var backlog int64
			for _, n := range s.Backlog {
				backlog += n
			}
			fmt.Fprintf(a.stdout, "registrations %d, rounds %d, blobs %d, proved %d\n", s.Registrations, s.Rounds, s.Blobs, s.Proved)
			fmt.Fprintf(a.stdout, "backlog %d", backlog)
			for l, n := range s.Backlog {
				fmt.Fprintf(a.stdout, " (%s %d)", l, n)
			}
			if s.OldestPending != nil {
				fmt.Fprintf(a.stdout, ", oldest %s", s.OldestPending.Format(time.RFC3339))
			}
			fmt.Fprintln(a.stdout)
			if s.LastError != "" {
				fmt.Fprintf(a.stdout, "last error (%d attempts): %s\n", s.MaxAttempts, s.LastError)
			}
			return nil
		},
	}
	f.register(c)
	c.Flags().BoolVar(&asJSON, "json", false, "machine-readable output")
	return c
}

// windowFlags select an agent and a time window.
type windowFlags struct {
	agent, from, to string
	keys            []string
	logKey          string
	gapFactor       float64
	allowUnproven   bool
	recorded        bool
}

func (w *windowFlags) register(c *cobra.Command) {
	c.Flags().StringVar(&w.agent, "agent", "", "agent id")
	c.Flags().StringVar(&w.from, "from", "", "window start (RFC 3339 or YYYY-MM-DD, UTC)")
	c.Flags().StringVar(&w.to, "to", "", "window end, exclusive (RFC 3339 or YYYY-MM-DD, UTC; default now)")
	c.Flags().StringSliceVar(&w.keys, "key", nil, "trusted verifier public key (PEM; default: the archive's verifiers.pem)")
	c.Flags().StringVar(&w.logKey, "log-key", "", "trusted transparency log keys (JSON list; default: the archive's logs)")
	c.Flags().Float64Var(&w.gapFactor, "gap-factor", 3, "a pause longer than this many polling intervals is a gap")
	c.Flags().BoolVar(&w.allowUnproven, "allow-unproven", false, "accept records that have no transparency proof yet")
	c.Flags().BoolVar(&w.recorded, "recorded", false, "do not re-evaluate the evidence: check integrity and continuity, report verdicts as recorded")
}

func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	return time.Parse("2006-01-02", s)
}

func (w *windowFlags) window() (from, to time.Time, err error) {
	if w.agent == "" || w.from == "" {
		return from, to, usageErrorf("give --agent and --from")
	}
	if from, err = parseTime(w.from); err != nil {
		return from, to, usageErrorf("--from: %v", err)
	}
	to = time.Now().UTC()
	if w.to != "" {
		if to, err = parseTime(w.to); err != nil {
			return from, to, usageErrorf("--to: %v", err)
		}
	}
	if !to.After(from) {
		return from, to, usageErrorf("--to must be after --from")
	}
	return from, to, nil
}

func (a *app) replayWindow(ctx context.Context, f *archiveFlags, w *windowFlags) (*archive.Report, error) {
	from, to, err := w.window()
	if err != nil {
		return nil, err
	}
	keys, logs, err := f.trust(w.keys, w.logKey)
	if err != nil {
		return nil, err
	}
	st, err := f.open(ctx)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return archive.Replay(ctx, st, w.agent, from, to, archive.ReplayOptions{
		Keys: keys, Logs: logs, AllowUnproven: w.allowUnproven, GapFactor: w.gapFactor, Verifier: a.roundVerifier(w.recorded)})
}

// printReport writes the human summary and returns exit 1 unless the
// agent was continuously attested.
func (a *app) printReport(rep *archive.Report, asJSON bool) error {
	if asJSON {
		if err := writeJSON(a, rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(a.stdout, rep.String())
		for _, g := range rep.Gaps {
			fmt.Fprintf(a.stdout, "gap: %s – %s (%s)\n", g.From.Format(time.RFC3339), g.To.Format(time.RFC3339), g.Duration)
		}
		if ff := rep.FirstFailure; ff != nil {
			fmt.Fprintf(a.stdout, "first failure: round %d at %s (%s)\n", ff.Seq, ff.Time.Format(time.RFC3339), ff.Verdict)
			for _, fl := range ff.Failures {
				fmt.Fprintf(a.stdout, "  %s: %s\n", fl.ID, fl.Message)
			}
		}
		for _, p := range rep.Problems {
			fmt.Fprintf(a.stdout, "problem: %s: %s\n", p.ID, p.Message)
		}
		if !rep.Reverified {
			a.note("verdicts as recorded: signatures, proofs and evidence hashes checked; evidence not re-evaluated")
		}
	}
	if !rep.Continuous {
		return &exitError{code: exitFailure}
	}
	return nil
}

func (a *app) archiveReplayCmd() *cobra.Command {
	var f archiveFlags
	var w windowFlags
	var asJSON bool
	c := &cobra.Command{
		Use:   "replay --agent ID --from T1 [--to T2]",
		Short: "Re-verify an agent's rounds in a window; exit 0 only if continuously attested",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := a.replayWindow(cmd.Context(), &f, &w)
			if err != nil {
				return err
			}
			return a.printReport(rep, asJSON)
		},
	}
	f.register(c)
	w.register(c)
	c.Flags().BoolVar(&asJSON, "json", false, "machine-readable output")
	return c
}

func (a *app) archiveExportCmd() *cobra.Command {
	var f archiveFlags
	var w windowFlags
	var out string
	c := &cobra.Command{
		Use:   "export --agent ID --from T1 [--to T2] -o bundle.tar.zst",
		Short: "Write an offline audit bundle: records, blobs, policies, keys, proofs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usageErrorf("export needs -o")
			}
			from, to, err := w.window()
			if err != nil {
				return err
			}
			keys, logs, err := f.trust(w.keys, w.logKey)
			if err != nil {
				return err
			}
			st, err := f.open(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			var buf bytes.Buffer
			m, err := archive.Export(cmd.Context(), st, w.agent, from, to, keys, logs, &buf)
			if err != nil {
				return err
			}
			if err := a.writeOutput(out, buf.Bytes()); err != nil {
				return err
			}
			a.note("wrote %s: %d records, %d blobs", out, m.Records, m.Blobs)
			return nil
		},
	}
	f.register(c)
	w.register(c)
	c.Flags().StringVarP(&out, "output", "o", "", "bundle file to write")
	return c
}

func (a *app) archiveAuditCmd() *cobra.Command {
	var keyFiles []string
	var logKey string
	var asJSON, recorded bool
	var gapFactor float64
	c := &cobra.Command{
		Use:   "audit BUNDLE.tar.zst",
		Short: "Verify an audit bundle offline (no database); exit 0 only if continuously attested",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			fh, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer fh.Close()
			b, err := archive.ReadBundle(fh)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			keys, logs := b.Keys, b.Logs
			if len(keyFiles) > 0 {
				keys = archive.Keyring{}
				for _, p := range keyFiles {
					kb, err := os.ReadFile(p)
					if err != nil {
						return err
					}
					if _, err := keys.Add(kb); err != nil {
						return fmt.Errorf("%s: %w", p, err)
					}
				}
			} else {
				for id := range keys {
					a.note("trusting verifier key %s from the bundle (pin it with --key)", id)
				}
			}
			if logKey != "" {
				lb, err := os.ReadFile(logKey)
				if err != nil {
					return err
				}
				if err := json.Unmarshal(lb, &logs); err != nil {
					return fmt.Errorf("%s: %w", logKey, err)
				}
			} else {
				for _, l := range logs {
					a.note("trusting %s log %q from the bundle (pin it with --log-key)", l.Log, l.Origin)
				}
			}
			m := b.Manifest
			rep, err := archive.Replay(cmd.Context(), b, m.AgentID, m.From, m.To, archive.ReplayOptions{Keys: keys, Logs: logs, GapFactor: gapFactor, Verifier: a.roundVerifier(recorded)})
			if err != nil {
				return err
			}
			return a.printReport(rep, asJSON)
		},
	}
	c.Flags().StringSliceVar(&keyFiles, "key", nil, "trusted verifier public key (PEM); default: the bundle's")
	c.Flags().StringVar(&logKey, "log-key", "", "trusted transparency log keys (JSON list); default: the bundle's")
	c.Flags().BoolVar(&asJSON, "json", false, "machine-readable output")
	c.Flags().Float64Var(&gapFactor, "gap-factor", 3, "a pause longer than this many polling intervals is a gap")
	c.Flags().BoolVar(&recorded, "recorded", false, "do not re-evaluate the evidence: check integrity and continuity, report verdicts as recorded")
	return c
}

func (a *app) archiveReportCmd() *cobra.Command {
	var f archiveFlags
	var w windowFlags
	var out string
	c := &cobra.Command{
		Use:   "report --agent ID --from T1 [--to T2] -o report.html",
		Short: "Write a self-contained HTML timeline of an agent's attestation",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return usageErrorf("report needs -o")
			}
			rep, err := a.replayWindow(cmd.Context(), &f, &w)
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			if err := archive.WriteHTML(&buf, rep); err != nil {
				return err
			}
			if err := a.writeOutput(out, buf.Bytes()); err != nil {
				return err
			}
			a.note("%s", rep.String())
			return nil
		},
	}
	f.register(c)
	w.register(c)
	c.Flags().StringVarP(&out, "output", "o", "", "HTML file to write")
	return c
}

// writeFileAtomic writes data to path via a temporary file with perm.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
