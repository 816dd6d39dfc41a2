package main

import (
	"context"
	"os"

	"github.com/spf13/pflag"

	"github.com/zest-attest/zest/digests"
	"github.com/zest-attest/zest/digests/deb"
)

// debRepoFlags are the flags that select packages of an APT repository.
type debRepoFlags struct {
	locations                []string
	suite, component, arch   string
	keyring                  string
	insecureSkipReleaseCheck bool
	packages                 []string
}

func (d *debRepoFlags) register(f *pflag.FlagSet) {
	f.StringArrayVar(&d.locations, "deb-repo", nil, "hash the packages of an APT repository `URL|DIR` (repeatable)")
	f.StringVar(&d.suite, "deb-suite", "stable", "with --deb-repo: the suite (dists/<suite>)")
	f.StringVar(&d.component, "deb-component", "main", "with --deb-repo: the component")
	f.StringVar(&d.arch, "deb-arch", "amd64", "with --deb-repo: the architecture")
	f.StringVar(&d.keyring, "deb-keyring", "", "with --deb-repo: OpenPGP keyring `FILE` that must have signed the Release")
	f.BoolVar(&d.insecureSkipReleaseCheck, "insecure-skip-release-signature", false, "with --deb-repo: trust the Release file without a signature check")
	f.StringArrayVar(&d.packages, "deb-package", nil, "with --deb-repo: only this package `NAME` (repeatable; default all)")
}

func (d *debRepoFlags) open(ctx context.Context, loc string, alg digests.Algorithm, noMergedUsr bool, prog digests.Progress) (*deb.Repo, error) {
	opts := deb.RepoOptions{
		Algorithm: alg, NoMergedUsr: noMergedUsr, Progress: prog,
		InsecureSkipReleaseSignature: d.insecureSkipReleaseCheck, Packages: d.packages,
	}
	if d.keyring != "" {
		kr, err := os.ReadFile(d.keyring)
		if err != nil {
			return nil, err
		}
		opts.Keyring = kr
	}
	return deb.OpenRepo(ctx, loc, d.suite, d.component, d.arch, opts)
}
