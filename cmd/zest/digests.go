package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/zest-attest/zest/digests"
	"github.com/zest-attest/zest/digests/deb"
	"github.com/zest-attest/zest/digests/fstree"
	"github.com/zest-attest/zest/digests/imasig"
	"github.com/zest-attest/zest/digests/initrd"
	"github.com/zest-attest/zest/digests/pe"
	"github.com/zest-attest/zest/digests/rpm"
	"github.com/zest-attest/zest/digests/rpmrepo"
	"github.com/zest-attest/zest/policygen/dsse"
)

// digestRecord is the stable JSON shape of `zest digests --json` (one JSON
// object per line).
type digestRecord struct {
	Path      string `json:"path"`
	Algorithm string `json:"algorithm"`
	Digest    string `json:"digest"`
	Signature string `json:"signature,omitempty"`
}

func (a *app) digestsCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "digests",
		Short: "Print the reference digests a source yields (path, algorithm, digest, signature)",
		Long: `Print what one digest source yields, without making a policy: one line per file,
"<algorithm>:<hex>  <path>" (and the IMA signature with --signatures), or
one JSON object per line with --json.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return usageErrorf("missing source: rpm, rootfs or initrd")
		},
	}
	var asJSON, sigs bool
	c.PersistentFlags().BoolVar(&asJSON, "json", false, "one JSON object per line: {path, algorithm, digest, signature}")
	c.PersistentFlags().BoolVar(&sigs, "signatures", false, "also print IMA signatures (hex) and list the signing keyids")
	run := func(cmd *cobra.Command, src digests.Source) error {
		w := bufio.NewWriterSize(a.stdout, 64<<10)
		keyids := map[uint32]int{}
		var recs []digestRecord
		err := src.Walk(cmd.Context(), func(d digests.Digest) error {
			r := digestRecord{Path: d.Path, Algorithm: string(d.Algorithm), Digest: hex.EncodeToString(d.Value)}
			if len(d.Signature) > 0 {
				if s, err := imasig.ParseSignature(d.Signature); err == nil {
					keyids[s.KeyID]++
				}
				if sigs || asJSON {
					r.Signature = hex.EncodeToString(d.Signature)
				}
			}
			recs = append(recs, r)
			return nil
		})
		if err != nil {
			return err
		}
		// Sources that yield in completion order (rootfs) are sorted here so
		// the output is reproducible.
		sort.SliceStable(recs, func(i, j int) bool { return recs[i].Path < recs[j].Path })
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		for _, r := range recs {
			if asJSON {
				if err := enc.Encode(r); err != nil {
					return err
				}
				continue
			}
			line := r.Algorithm + ":" + r.Digest + "  " + r.Path
			if sigs && r.Signature != "" {
				line += "  " + r.Signature
			}
			fmt.Fprintln(w, line)
		}
		if err := w.Flush(); err != nil {
			return err
		}
		if sigs && len(keyids) > 0 {
			ids := make([]uint32, 0, len(keyids))
			for id := range keyids {
				ids = append(ids, id)
			}
			sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
			for _, id := range ids {
				fmt.Fprintf(a.stderr, "IMA signing key %08x signs %d files: give its certificate to --verification-key\n", id, keyids[id])
			}
		}
		return nil
	}

	var allowMD5, hashPayload bool
	rpmCmd := &cobra.Command{
		Use:   "rpm FILE|GLOB...",
		Short: "Digests from RPM package headers (FILEDIGESTS, IMA signatures)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			set, err := rpmSet(args, rpm.Options{AllowMD5: allowMD5, HashPayload: hashPayload})
			if err != nil {
				return err
			}
			return run(cmd, set)
		},
	}
	rpmCmd.Flags().BoolVar(&allowMD5, "allow-md5", false, "accept packages whose file digests are MD5")
	rpmCmd.Flags().BoolVar(&hashPayload, "hash-payload", false, "also decompress the payload and check every file against the header")

	var repoKey, cacheDir string
	repoCmd := &cobra.Command{
		Use:   "rpm-repo DIR|URL",
		Short: "Digests of every binary package in an RPM repository (local directory or http(s) URL)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			prog := a.startProgressUnit("RPM repository", "packages")
			defer prog.Stop()
			repo, err := openRPMRepo(cmd.Context(), args[0], repoKey, cacheDir, prog)
			if err != nil {
				return err
			}
			err = run(cmd, repo)
			prog.Stop()
			if err == nil {
				st := repo.Stats()
				a.note("%d packages: %d fetched, %d from cache", st.Packages, st.Fetched, st.Cached)
			}
			return err
		},
	}
	repoCmd.Flags().StringVar(&repoKey, "repo-key", "", "EC public key PEM or OpenPGP keyring `FILE` that must have signed repodata/repomd.xml")
	repoCmd.Flags().StringVar(&cacheDir, "cache-dir", "", "keep per-package results in `DIR` so a re-run fetches only new packages")

	var algo string
	rootfsCmd := &cobra.Command{
		Use:   "rootfs DIR",
		Short: "Digests of the files under a directory tree",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			alg, err := parseAlgo(algo)
			if err != nil {
				return err
			}
			t, err := fstree.New(fstree.Options{Root: args[0], Algorithm: alg})
			if err != nil {
				return err
			}
			return run(cmd, t)
		},
	}
	initrdCmd := &cobra.Command{
		Use:   "initrd FILE|DIR",
		Short: "Digests of the files inside an initrd/initramfs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			alg, err := parseAlgo(algo)
			if err != nil {
				return err
			}
			src, err := initrd.New(args[0], initrd.Options{Algorithm: alg})
			if err != nil {
				return err
			}
			return run(cmd, src)
		},
	}
	var noMergedUsr bool
	debCmd := &cobra.Command{
		Use:   "deb FILE",
		Short: "Digests of the files inside a Debian package",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			alg, err := parseAlgo(algo)
			if err != nil {
				return err
			}
			src, err := deb.New(args[0], deb.Options{Algorithm: alg, NoMergedUsr: noMergedUsr})
			if err != nil {
				return err
			}
			return run(cmd, src)
		},
	}
	debCmd.Flags().BoolVar(&noMergedUsr, "no-merged-usr", false, "keep /bin, /sbin, /lib paths instead of mapping them under /usr")
	var padded bool
	peCmd := &cobra.Command{
		Use:   "authenticode FILE...",
		Short: "Authenticode digests of PE/EFI images (shim, grub, vmlinuz, UKI) as EDK2 measures them into PCR 4",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			alg, err := parseAlgo(algo)
			if err != nil {
				return err
			}
			for _, name := range args {
				f, err := os.Open(name)
				if err != nil {
					return err
				}
				st, err := f.Stat()
				if err == nil {
					var img *pe.File
					if img, err = pe.Open(f, st.Size(), name); err == nil {
						var d []byte
						if padded {
							d, err = img.AuthenticodePadded(alg)
						} else {
							d, err = img.Authenticode(alg)
						}
						if err == nil {
							fmt.Fprintf(a.stdout, "%s:%x  %s\n", alg, d, name)
						}
					}
				}
				f.Close()
				if err != nil {
					return err
				}
			}
			return nil
		},
	}
	peCmd.Flags().BoolVar(&padded, "padded", false, "pad unsigned odd-size images to 8 bytes, as signing tools (not EDK2) do")
	for _, sc := range []*cobra.Command{rootfsCmd, initrdCmd, debCmd, peCmd} {
		sc.Flags().StringVar(&algo, "algo", "sha256", "digest algorithm: sha1, sha256, sha384, sha512")
	}
	c.AddCommand(rpmCmd, repoCmd, debCmd, rootfsCmd, initrdCmd, peCmd, a.digestsFirmwareCmd())
	return c
}

// openRPMRepo opens a repository with the CLI's options.
func openRPMRepo(ctx context.Context, loc, keyFile, cacheDir string, prog digests.Progress) (*rpmrepo.Repo, error) {
	opts := rpmrepo.Options{CacheDir: cacheDir, Progress: prog, HeadersOnly: false}
	if keyFile != "" {
		kb, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, err
		}
		// An EC public key (Keylime's non-GPG form) or an OpenPGP keyring.
		if k, err := dsse.LoadPublicKey(kb); err == nil {
			opts.VerifyKey = k
		} else {
			opts.OpenPGPKeys = kb
		}
		// With a signed repomd.xml, also tie every package to primary's
		// checksum: a header alone is covered by no signature.
		opts.VerifyPackages = true
	}
	return rpmrepo.Open(ctx, loc, opts)
}

func parseAlgo(s string) (digests.Algorithm, error) {
	a, err := digests.ParseAlgorithm(s)
	if err != nil || a == digests.MD5 || a == digests.SM3 {
		return "", usageErrorf("--algo %q: want sha1, sha256, sha384 or sha512", s)
	}
	return a, nil
}

// rpmSet expands arguments that are files or globs into one sorted set.
func rpmSet(args []string, opts rpm.Options) (*rpm.Set, error) {
	var paths []string
	for _, arg := range args {
		if strings.ContainsAny(arg, "*?[") {
			g, err := rpm.Glob(arg, opts)
			if err != nil {
				return nil, err
			}
			paths = append(paths, g.Paths()...)
			continue
		}
		if _, err := os.Stat(arg); err != nil {
			return nil, err
		}
		paths = append(paths, arg)
	}
	return rpm.NewSet(paths, opts), nil
}
