// Package ima evaluates a Linux IMA measurement list against a Keylime
// runtime policy and a quoted PCR 10, one attestation round at a time.
//
// A round streams the ASCII list the agent sent (starting at the entry the
// previous round stopped at), checks every template hash with the policy's
// log_hash_alg, replays the entries into every quoted bank (per-bank template
// digests, Linux >= 5.8) and accepts the longest prefix whose replay equals the
// quoted PCR 10: the quote may predate the newest lines, which are left for
// the next round. Only entries inside that prefix are judged against the
// policy (digests, excludes, ima-sig signatures, ima-buf keys and buffers,
// boot_aggregate); their failures carry Keylime's event ids. Memory does not
// grow with the length of the list.
//
// Compile turns a policygen.RuntimePolicy into a Policy once; Evaluate runs
// one round from a State and returns the next State, which is small and JSON
// so the archive can keep it between rounds.
//
// Where Keylime is weaker, zest is strict by default and an Allow… option
// restores Keylime's behaviour: violation (ToMToU/open_writers) records fail
// unless AllowViolations; keys learned from ima-buf records verify file
// signatures only when learned into the ".ima" keyring (the only keyring the
// kernel appraises with) unless AllowAnyLearnedKeyring. Other fixed gaps:
// excludes never skip boot_aggregate, an excluded key is not learned, a buffer
// whose digest is not the hash of its content is rejected, records of other
// PCRs are not folded into PCR 10, a bad exclude regex is an error instead of
// silently disabling all excludes, and input that cannot be evaluated is an
// error, never a pass.
//
// This package must not import archive; it never prints and never exits.
package ima

import (
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/zest-attest/zest/digests"
	"github.com/zest-attest/zest/digests/imasig"
	"github.com/zest-attest/zest/policygen"
)

// Options tune Compile. The zero value is the strict choice; every Allow…
// field weakens a check and is listed in Result.Allowed.
type Options struct {
	// LogHashAlg is the algorithm of the template-hash column of the list the
	// agent sends; empty means the policy's ima.log_hash_alg (sha1 when unset).
	LogHashAlg digests.Algorithm
	// AllowViolations accepts violation records (ToMToU, open_writers: an
	// all-zero template hash, content never measured), as Keylime does with
	// ignore_tomtou_errors = False. By default each one fails with
	// ima.validation.tomtou.
	AllowViolations bool
	// AllowAnyLearnedKeyring lets a key learned from an ima-buf record of any
	// keyring (e.g. .builtin_trusted_keys) verify ima-sig signatures, as
	// Keylime does. By default only keys learned into ".ima" do, which is the
	// keyring the kernel appraises file signatures with.
	AllowAnyLearnedKeyring bool
	// AllowPaddedSHA1Extend replays banks the way kernels before 5.8 extended
	// them: the SHA-1 template hash zero-padded into every bank. Such a bank
	// is only as strong as SHA-1.
	AllowPaddedSHA1Extend bool
	// MaxFailures bounds the failures one round records (0: 1000). Further
	// failures are counted in one summary failure, so memory stays bounded
	// however bad the list is.
	MaxFailures int
}

// Policy is a compiled runtime policy, safe for concurrent use by many
// rounds.
type Policy struct {
	opts      Options
	logAlg    digests.Algorithm
	files     *table          // path -> digest set
	keyrings  *table          // keyring name -> digest set of key buffers
	bufs      *table          // ima-buf name -> digest set
	excludes  *regexp.Regexp  // nil: none
	ignored   map[string]bool // ima.ignored_keyrings
	ignoreAll bool            // "*" in ima.ignored_keyrings
	keys      *imasig.Keyring // verification-keys
	allowed   []string
}

// Compile checks and precompiles a runtime policy. It refuses what it cannot
// evaluate faithfully: malformed digests, an exclude that is not a valid RE2
// expression, unreadable verification keys, an unknown log_hash_alg and a
// device-mapper policy (ima.dm_policy), which zest does not evaluate.
func Compile(p *policygen.RuntimePolicy, opts Options) (*Policy, error) {
	if p == nil {
		return nil, errors.New("ima: no runtime policy")
	}
	c := &Policy{opts: opts}
	if c.opts.MaxFailures <= 0 {
		c.opts.MaxFailures = 1000
	}
	alg := opts.LogHashAlg
	if alg == "" {
		alg = digests.Algorithm(p.IMA.LogHashAlg)
		if alg == "" {
			alg = digests.SHA1
		}
	}
	a, err := digests.ParseAlgorithm(string(alg))
	if err != nil || a == digests.MD5 || a == digests.SM3 {
		return nil, fmt.Errorf("ima: log_hash_alg %q: want sha1, sha256, sha384 or sha512", alg)
	}
	c.logAlg = a
	if dm := strings.TrimSpace(string(p.IMA.DMPolicy)); dm != "" && dm != "null" {
		return nil, errors.New("ima: ima.dm_policy: device-mapper policies are not supported (Keylime's schema allows only null)")
	}
	if c.files, err = compileDigests(p.Digests, "digests"); err != nil {
		return nil, err
	}
	if c.keyrings, err = compileDigests(p.Keyrings, "keyrings"); err != nil {
		return nil, err
	}
	if c.bufs, err = compileDigests(p.IMABuf, "ima-buf"); err != nil {
		return nil, err
	}
	if c.excludes, err = compileExcludes(p.Excludes); err != nil {
		return nil, err
	}
	c.ignored = map[string]bool{}
	for _, k := range p.IMA.IgnoredKeyrings {
		if k == "*" {
			c.ignoreAll = true
		}
		c.ignored[k] = true
	}
	if c.keys, err = imasig.ParseKeyring(p.VerificationKeys); err != nil {
		return nil, fmt.Errorf("ima: %w", err)
	}
	if opts.AllowViolations {
		c.allowed = append(c.allowed, "AllowViolations")
	}
	if opts.AllowAnyLearnedKeyring {
		c.allowed = append(c.allowed, "AllowAnyLearnedKeyring")
	}
	if opts.AllowPaddedSHA1Extend {
		c.allowed = append(c.allowed, "AllowPaddedSHA1Extend")
	}
	return c, nil
}

// Allowed lists the Allow… options the policy was compiled with, for the
// round's record.
func (p *Policy) Allowed() []string { return append([]string(nil), p.allowed...) }

// LogHashAlg is the template-hash algorithm rounds check against.
func (p *Policy) LogHashAlg() digests.Algorithm { return p.logAlg }

func compileDigests(m map[string][]string, field string) (*table, error) {
	t := newTable(len(m))
	var b []byte
	for path, list := range m {
		b = b[:0]
		for i, h := range list {
			if len(h) < 2 || len(h) > 128 || len(h)%2 != 0 {
				return nil, fmt.Errorf("ima: %s[%q][%d]: %d hex digits (want an even number from 2 to 128)", field, path, i, len(h))
			}
			n := len(h) / 2
			b = append(b, byte(n))
			b = append(b, make([]byte, n)...)
			if _, err := hex.Decode(b[len(b)-n:], []byte(h)); err != nil {
				return nil, fmt.Errorf("ima: %s[%q][%d]: %v", field, path, i, err)
			}
		}
		if err := t.add(path, b); err != nil {
			return nil, fmt.Errorf("ima: %s: %v", field, err)
		}
	}
	return t, nil
}

// compileExcludes builds one RE2 that matches where Keylime's
// re.compile("(e1)|(e2)|...").match(path) matches: anchored at the start of
// the path only. Each exclude is checked alone first so an error names it.
// Keylime ignores the whole list when the combined regex fails to compile;
// zest refuses the policy instead.
func compileExcludes(ex []string) (*regexp.Regexp, error) {
	if len(ex) == 0 {
		return nil, nil
	}
	var b strings.Builder
	b.WriteString(`^(?:`)
	for i, e := range ex {
		if _, err := regexp.Compile(e); err != nil {
			return nil, fmt.Errorf("ima: excludes[%d] %q is not a valid RE2 regular expression: %v", i, e, err)
		}
		if i > 0 {
			b.WriteByte('|')
		}
		b.WriteString(`(?:`)
		b.WriteString(e)
		b.WriteByte(')')
	}
	b.WriteByte(')')
	re, err := regexp.Compile(b.String())
	if err != nil {
		return nil, fmt.Errorf("ima: excludes: %v", err)
	}
	return re, nil
}

func (p *Policy) excluded(name []byte) bool {
	return p.excludes != nil && p.excludes.Match(name)
}
