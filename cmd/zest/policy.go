package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/zest-attest/zest/digests"
	"github.com/zest-attest/zest/digests/deb"
	"github.com/zest-attest/zest/digests/fstree"
	"github.com/zest-attest/zest/digests/initrd"
	"github.com/zest-attest/zest/digests/rpm"
	"github.com/zest-attest/zest/policygen"
)

func (a *app) policyCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "policy",
		Short: "Generate, validate, diff, merge, convert, sign and verify policies",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return usageErrorf("missing subcommand")
		},
	}
	c.AddCommand(a.policyRuntimeCmd(), a.policyValidateCmd(), a.policyDiffCmd(), a.policyMergeCmd(),
		a.policyConvertCmd(), a.policySignCmd(), a.policyVerifyCmd(), a.policyMeasuredBootCmd())
	return c
}

type outputFlags struct {
	out    string
	format string
}

func (o *outputFlags) register(c *cobra.Command) {
	c.Flags().StringVarP(&o.out, "output", "o", "", "write the policy to `FILE` atomically (default: stdout)")
	c.Flags().StringVar(&o.format, "format", "pretty", "JSON layout: pretty (one entry per line, for git) or keylime (json.dumps layout, one line)")
}

func (o *outputFlags) encode(p *policygen.RuntimePolicy) ([]byte, error) {
	switch o.format {
	case "pretty":
		return p.Marshal(policygen.FormatPretty)
	case "keylime":
		return p.Marshal(policygen.FormatKeylime)
	}
	return nil, usageErrorf("--format %q: want pretty or keylime", o.format)
}

func (a *app) policyRuntimeCmd() *cobra.Command {
	var (
		opts                        policygen.RuntimeOptions
		rootfs, skips, initrds      []string
		algo, base                  string
		noDefaultSkips, crossMounts bool
		rootOwnedOnly, includeEarly bool
		rpms, rpmRepos              []string
		repoKey, cacheDir           string
		debs                        []string
		debRepo                     debRepoFlags
		noMergedUsr                 bool
		hashPayload                 bool
		workers                     int
		legacy, timestamp           bool
		out                         outputFlags
	)
	c := &cobra.Command{
		Use:   "runtime",
		Short: "Generate a Keylime runtime (IMA) policy",
		Long: `Generate a Keylime runtime policy from filesystem trees, initrds, RPM and
Debian packages and repositories, golden-machine IMA logs, flat allowlists and
an optional base policy. The output is
deterministic: keys and digests sorted, no timestamp unless --timestamp or
SOURCE_DATE_EPOCH is set, so regenerating from unchanged inputs gives
identical bytes.`,
		Example: `  zest policy runtime --rootfs /mnt/image --exclude excludes.txt -o policy.json
  zest policy runtime --ima-log ascii_runtime_measurements --keyrings -o policy.json
  zest policy runtime --base-policy policy.json --initrd /boot -o policy.json
  zest policy runtime --rpm-repo https://mirror.example/os/ --repo-key RPM-GPG-KEY --cache-dir ~/.cache/zest -o policy.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(rootfs)+len(initrds)+len(rpms)+len(rpmRepos)+len(debs)+len(debRepo.locations)+len(opts.IMALogs)+len(opts.Allowlists) == 0 && base == "" {
				return usageErrorf("no inputs: give at least one of --rootfs, --initrd, --rpm, --rpm-repo, --deb, --deb-repo, --ima-log, --allowlist, --base-policy")
			}
			if algo != "" {
				a, err := digests.ParseAlgorithm(algo)
				if err != nil || a == digests.MD5 {
					return usageErrorf("--algo %q: want sha1, sha256, sha384 or sha512", algo)
				}
				opts.Algorithm = a
			}
			if (opts.Keyrings || opts.IMABuf) && len(opts.IMALogs) == 0 {
				return usageErrorf("--keyrings and --ima-buf read ima-buf records from --ima-log; give one")
			}
			opts.BasePolicy = base
			ts, err := timestampFrom(timestamp)
			if err != nil {
				return err
			}
			opts.Timestamp = ts
			prog := a.startProgress("hashing")
			defer prog.Stop()
			var trees []*fstree.Tree
			for _, dir := range rootfs {
				dir := dir
				opts.HashSources = append(opts.HashSources, policygen.HashSource{
					Name: "rootfs " + dir,
					Open: func(alg digests.Algorithm) (digests.Source, error) {
						t, err := fstree.New(fstree.Options{
							Root: dir, Algorithm: alg, Workers: workers, Skip: skips,
							NoDefaultSkips: noDefaultSkips, CrossMounts: crossMounts,
							RootOwnedOnly: rootOwnedOnly, Progress: prog,
						})
						if err == nil {
							trees = append(trees, t)
						}
						return t, err
					},
				})
			}
			for _, f := range debs {
				f := f
				opts.HashSources = append(opts.HashSources, policygen.HashSource{
					Name: "deb " + f,
					Open: func(alg digests.Algorithm) (digests.Source, error) {
						return deb.New(f, deb.Options{Algorithm: alg, NoMergedUsr: noMergedUsr, Progress: prog})
					},
				})
			}
			for _, loc := range debRepo.locations {
				loc := loc
				opts.HashSources = append(opts.HashSources, policygen.HashSource{
					Name: "APT repository " + loc,
					Open: func(alg digests.Algorithm) (digests.Source, error) {
						return debRepo.open(cmd.Context(), loc, alg, noMergedUsr, prog)
					},
				})
			}
			for _, f := range initrds {
				f := f
				opts.HashSources = append(opts.HashSources, policygen.HashSource{
					Name: "initrd " + f,
					Open: func(alg digests.Algorithm) (digests.Source, error) {
						return initrd.New(f, initrd.Options{Algorithm: alg, IncludeEarly: includeEarly, Progress: prog})
					},
				})
			}
			if len(rpms) > 0 {
				set, err := rpmSet(rpms, rpm.Options{HashPayload: hashPayload, Progress: prog})
				if err != nil {
					return err
				}
				// Package digests carry their own algorithm (the header's), as in Keylime.
				opts.PackageSources = append(opts.PackageSources, policygen.NamedSource{Name: fmt.Sprintf("%d RPM files", len(set.Paths())), Source: set})
			}
			for _, loc := range rpmRepos {
				repo, err := openRPMRepo(cmd.Context(), loc, repoKey, cacheDir, prog)
				if err != nil {
					return err
				}
				opts.PackageSources = append(opts.PackageSources, policygen.NamedSource{Name: "RPM repository " + loc, Source: repo})
			}
			p, rep, err := policygen.GenerateRuntime(cmd.Context(), opts)
			prog.Stop()
			if err != nil {
				return err
			}
			var data []byte
			if legacy {
				data = p.LegacyAllowlist()
			} else if data, err = out.encode(p); err != nil {
				return err
			}
			if err := a.writeOutput(out.out, data); err != nil {
				return err
			}
			for _, t := range trees {
				if st := t.Stats(); st.NonUTF8 > 0 {
					a.note("warning: %d paths under a rootfs are not valid UTF-8 and cannot be written in a JSON policy; they were left out", st.NonUTF8)
				}
			}
			for _, s := range rep.Sources {
				if s.Note != "" {
					a.note("note: %s: %s", s.Source, s.Note)
				}
			}
			for _, k := range rep.MissingSigningKeys {
				a.note("note: IMA signing key %s signs %d package files but is not in verification-keys (add it with --verification-key)", k.KeyID, k.Files)
			}
			dest := out.out
			if dest == "" || dest == "-" {
				dest = "stdout"
			}
			a.note("wrote %s: %d paths, %d digests (%s, from %s)", dest, rep.Paths, rep.Digests, rep.Algorithm, rep.AlgorithmWhy)
			return nil
		},
	}
	f := c.Flags()
	f.StringArrayVar(&rootfs, "rootfs", nil, "hash the files under `DIR` (repeatable)")
	f.StringArrayVar(&skips, "skip", nil, "with --rootfs: do not enter this rootfs-relative `DIR` (repeatable)")
	f.BoolVar(&noDefaultSkips, "no-default-skips", false, "with --rootfs: also enter "+fmt.Sprint(fstree.DefaultSkips))
	f.BoolVar(&crossMounts, "cross-mounts", false, "with --rootfs: enter other mounted filesystems")
	f.BoolVar(&rootOwnedOnly, "root-owned-only", false, "with --rootfs: hash only files owned by uid 0, as Keylime does")
	f.IntVar(&workers, "workers", 0, "hashing workers (default: number of CPUs)")
	f.StringArrayVar(&initrds, "initrd", nil, "hash the files inside an initrd `FILE`, or every initr* file in a DIR (repeatable)")
	f.BoolVar(&includeEarly, "include-early-cpio", false, "with --initrd: also hash the early uncompressed cpio (microcode), which Keylime skips")
	f.StringArrayVar(&rpms, "rpm", nil, "add the file digests in RPM package headers; `FILE` or GLOB (repeatable)")
	f.StringArrayVar(&rpmRepos, "rpm-repo", nil, "add every binary package of an RPM repository `DIR|URL` (repodata/repomd.xml; repeatable)")
	f.StringVar(&repoKey, "repo-key", "", "with --rpm-repo: EC public key PEM or OpenPGP keyring `FILE` that must have signed repodata/repomd.xml (repomd.xml.asc); packages are then checked whole against primary")
	f.StringVar(&cacheDir, "cache-dir", "", "with --rpm-repo: keep per-package results in `DIR`, so a re-run fetches only new packages")
	f.BoolVar(&hashPayload, "hash-payload", false, "with --rpm: decompress payloads and check every file against its header digest")
	f.StringArrayVar(&debs, "deb", nil, "hash the files inside a Debian package `FILE` (repeatable)")
	debRepo.register(f)
	f.BoolVar(&noMergedUsr, "no-merged-usr", false, "with --deb/--deb-repo: keep /bin, /sbin, /lib paths instead of mapping them under /usr")
	f.StringArrayVar(&opts.IMALogs, "ima-log", nil, "add the measurements of a golden machine's IMA ASCII log `FILE` (repeatable)")
	f.StringArrayVar(&opts.Allowlists, "allowlist", nil, "add a flat allowlist `FILE` (<hex>  <path> per line; repeatable)")
	f.StringArrayVar(&opts.ExcludeFiles, "exclude", nil, "add the RE2 regexes in `FILE` (one per line) to excludes (repeatable)")
	f.BoolVar(&opts.Keyrings, "keyrings", false, "add keys measured into keyrings (ima-buf records) from --ima-log")
	f.BoolVar(&opts.IMABuf, "ima-buf", false, "add other ima-buf records (e.g. kernel_version) from --ima-log")
	f.StringArrayVar(&opts.IgnoredKeyrings, "ignored-keyring", nil, "keyring `NAME` whose key measurements are ignored (repeatable; * for all)")
	f.StringArrayVar(&opts.VerificationKeys, "verification-key", nil, "IMA signature verification key or certificate `FILE`, PEM or DER (repeatable)")
	f.StringVar(&base, "base-policy", "", "merge into this runtime policy `FILE`")
	f.StringVar(&algo, "algo", "", "digest algorithm for files zest hashes (--rootfs, --initrd, --deb, --deb-repo): sha1, sha256, sha384, sha512 (default: from the inputs, else sha256); package headers (--rpm, --rpm-repo) keep their own")
	f.StringVar(&opts.LogHashAlg, "log-hash-alg", "", "ima.log_hash_alg: algorithm of the template hashes agents send (default: base policy's, else sha1)")
	f.BoolVar(&opts.SkipTemplateHashCheck, "skip-template-hash-check", false, "accept IMA log lines whose template hash does not match (not recommended)")
	f.BoolVar(&legacy, "legacy-allowlist", false, "write the digests as a flat allowlist instead of a policy")
	f.BoolVar(&timestamp, "timestamp", false, "record the current time in meta.timestamp (SOURCE_DATE_EPOCH overrides)")
	out.register(c)
	return c
}

// timestampFrom honours SOURCE_DATE_EPOCH (reproducible builds) first.
func timestampFrom(now bool) (time.Time, error) {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return time.Time{}, usageErrorf("SOURCE_DATE_EPOCH=%q is not a number of seconds", s)
		}
		return time.Unix(n, 0), nil
	}
	if now {
		return time.Now(), nil
	}
	return time.Time{}, nil
}

func writeJSON(a *app, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := a.stdout.Write(b.Bytes())
	return err
}

func (a *app) policyDiffCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "diff OLD NEW",
		Short: "Show what changed between two runtime policies (exit 1 when they differ)",
		Long: `Compare two runtime policies (plain or DSSE-signed; signatures are not checked
here) by what they accept: paths added, removed or with changed digests,
excludes, keyrings, ima-buf entries, ignored keyrings, verification keys and
IMA settings. meta is ignored. Exit status 0: same, 1: different, 2: error.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			old, err := loadPolicy(args[0])
			if err != nil {
				return err
			}
			nw, err := loadPolicy(args[1])
			if err != nil {
				return err
			}
			d, err := policygen.Compare(old, nw)
			if err != nil {
				return err
			}
			if asJSON {
				if err := writeJSON(a, d); err != nil {
					return err
				}
			} else {
				a.printDiff(d)
			}
			if !d.Equal {
				return &exitError{code: exitFailure}
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "machine-readable output")
	return c
}

func (a *app) printDiff(d *policygen.Diff) {
	w := a.stdout
	if d.Equal {
		fmt.Fprintln(w, "policies accept the same measurements")
		return
	}
	section := func(title string, m policygen.MapDiff) {
		for _, e := range m.Added {
			fmt.Fprintf(w, "+ %s %s %v\n", title, e.Name, e.New)
		}
		for _, e := range m.Removed {
			fmt.Fprintf(w, "- %s %s %v\n", title, e.Name, e.Old)
		}
		for _, e := range m.Changed {
			fmt.Fprintf(w, "~ %s %s %v -> %v\n", title, e.Name, e.Old, e.New)
		}
	}
	list := func(title string, l policygen.ListDiff) {
		for _, s := range l.Added {
			fmt.Fprintf(w, "+ %s %s\n", title, s)
		}
		for _, s := range l.Removed {
			fmt.Fprintf(w, "- %s %s\n", title, s)
		}
	}
	section("digest", d.Digests)
	list("exclude", d.Excludes)
	section("keyring", d.Keyrings)
	section("ima-buf", d.IMABuf)
	list("ignored-keyring", d.IgnoredKeyrings)
	list("verification-key", d.VerificationKeys)
	for _, s := range []struct {
		name string
		v    *policygen.ValueChange
	}{{"log_hash_alg", d.LogHashAlg}, {"dm_policy", d.DMPolicy}, {"release", d.Release}} {
		if s.v != nil {
			fmt.Fprintf(w, "~ %s %s -> %s\n", s.name, s.v.Old, s.v.New)
		}
	}
	fmt.Fprintf(w, "%d paths added, %d removed, %d changed\n", len(d.Digests.Added), len(d.Digests.Removed), len(d.Digests.Changed))
}

func (a *app) policyMergeCmd() *cobra.Command {
	var out outputFlags
	c := &cobra.Command{
		Use:   "merge POLICY...",
		Short: "Combine runtime policies into one that accepts what any of them accepts",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ps []*policygen.RuntimePolicy
			for _, f := range args {
				p, err := loadPolicy(f)
				if err != nil {
					return err
				}
				ps = append(ps, p)
			}
			m, err := policygen.Merge(ps...)
			if err != nil {
				return err
			}
			data, err := out.encode(m)
			if err != nil {
				return err
			}
			return a.writeOutput(out.out, data)
		},
	}
	out.register(c)
	return c
}

func (a *app) policyConvertCmd() *cobra.Command {
	var (
		out      outputFlags
		excludes []string
		keys     []string
	)
	c := &cobra.Command{
		Use:   "convert INPUT",
		Short: "Convert a legacy Keylime allowlist or old policy to a current runtime policy",
		Long: `Convert Keylime's older formats into a current (version 1) runtime policy:
a flat allowlist ("<hex>  <path>" lines, "%keyring:<name>" lines become
keyrings), a JSON allowlist ({"hashes": ...}), an old verifier record
({"allowlist": ..., "exclude": [...]}) or a policy older than version 1.
--exclude adds an exclude list, --verification-key adds IMA keys. The result
is validated before it is written.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			p, kind, err := policygen.Convert(data, args[0])
			if err != nil {
				return err
			}
			for _, f := range excludes {
				if _, err := p.AddExcludeFile(f); err != nil {
					return err
				}
			}
			if err := p.AddVerificationKeyFiles(keys...); err != nil {
				return err
			}
			p.Normalize()
			data, err = out.encode(p)
			if err != nil {
				return err
			}
			if err := a.writeOutput(out.out, data); err != nil {
				return err
			}
			a.note("converted %s (%s): %d paths", args[0], kind, len(p.Digests))
			return nil
		},
	}
	c.Flags().StringArrayVar(&excludes, "exclude", nil, "add the regexes in `FILE` to excludes (repeatable)")
	c.Flags().StringArrayVar(&keys, "verification-key", nil, "add an IMA verification key `FILE` (repeatable)")
	out.register(c)
	return c
}
