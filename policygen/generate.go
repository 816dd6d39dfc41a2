package policygen

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/zest-attest/zest/digests"
	"github.com/zest-attest/zest/digests/allowlist"
	"github.com/zest-attest/zest/digests/imalog"
	"github.com/zest-attest/zest/digests/imasig"
	"github.com/zest-attest/zest/schema"
)

// HashSource is an input that hashes files itself (a filesystem tree, an
// initrd, ...) and therefore needs the policy's digest algorithm before it
// can start. Open is called once, after the algorithm is known.
type HashSource struct {
	Name string // for reports and errors, e.g. "rootfs /mnt/image"
	Open func(alg digests.Algorithm) (digests.Source, error)
}

// NamedSource is a source whose digests carry their own algorithm
// (package headers): they are added as they are, whatever algorithm the
// hashing sources use.
type NamedSource struct {
	Name   string
	Source digests.Source
}

// RuntimeOptions describes one `zest policy runtime` run. File inputs are
// paths; every error names the file and the line or offset.
type RuntimeOptions struct {
	// Algorithm for hashing sources; "" guesses from the inputs (see
	// resolveAlgorithm) and falls back to sha256.
	Algorithm digests.Algorithm

	BasePolicy  string   // merge into this policy (its release and settings are kept)
	Allowlists  []string // flat "<hex>  <path>" files
	IMALogs     []string // ASCII measurement lists from golden machines
	HashSources []HashSource
	// PackageSources yield digests in their own algorithms (RPM FILEDIGESTS,
	// ...). Their IMA signatures are not stored in the policy (Keylime has
	// no place for them): the verifier checks ima-sig records with
	// verification-keys, so the report lists signing keyids missing there.
	PackageSources []NamedSource
	ExcludeFiles   []string // one RE2 regex per line; '#' comments

	Keyrings         bool     // add keys measured into keyrings (ima-buf with a certificate) to keyrings
	IMABuf           bool     // add other ima-buf measurements (critical data, kexec cmdline) to ima-buf
	IgnoredKeyrings  []string // added to ima.ignored_keyrings; "*" ignores all
	VerificationKeys []string // key or certificate files for verification-keys
	LogHashAlg       string   // ima.log_hash_alg; "" keeps the base policy's or "sha1"

	// SkipTemplateHashCheck accepts IMA log lines whose template hash does
	// not match their content. Off by default: a golden log with garbled
	// lines would give a policy nobody can trust.
	SkipTemplateHashCheck bool

	Timestamp time.Time // zero: no meta.timestamp, so output is reproducible
}

// SourceReport says what one input contributed.
type SourceReport struct {
	Source  string `json:"source"`
	Entries int    `json:"entries"`
	Skipped int    `json:"skipped,omitempty"`
	Note    string `json:"note,omitempty"`
}

// Report describes a generation run.
type Report struct {
	Algorithm    digests.Algorithm `json:"algorithm"`
	AlgorithmWhy string            `json:"algorithm_from"`
	Sources      []SourceReport    `json:"sources"`
	Paths        int               `json:"paths"`
	Digests      int               `json:"digests"`
	// MissingSigningKeys lists keyids that sign package files but are not in
	// verification-keys: ima-sig records signed by them will only pass on
	// their digests.
	MissingSigningKeys []MissingKey `json:"missing_signing_keys,omitempty"`
}

// MissingKey is an IMA signing key the policy does not carry.
type MissingKey struct {
	KeyID string `json:"keyid"`
	Files int    `json:"files"`
}

// GenerateRuntime builds a runtime policy from the inputs in opts.
func GenerateRuntime(ctx context.Context, opts RuntimeOptions) (*RuntimePolicy, *Report, error) {
	rep := &Report{}
	p := NewRuntimePolicy()
	var hints []*algHint

	if opts.BasePolicy != "" {
		data, err := readFile(opts.BasePolicy)
		if err != nil {
			return nil, nil, err
		}
		base, err := ParseRuntimePolicy(data, opts.BasePolicy)
		if err != nil {
			return nil, nil, err
		}
		p.Release = base.Release
		p.IMA.LogHashAlg = base.IMA.LogHashAlg
		p.VerificationKeys = base.VerificationKeys
		mergeInto(p, base)
		h, err := hintFromMap("base policy "+opts.BasePolicy, base.Digests)
		if err != nil {
			return nil, nil, err
		}
		hints = append(hints, h)
		rep.Sources = append(rep.Sources, SourceReport{Source: "base policy " + opts.BasePolicy, Entries: len(base.Digests)})
	}

	// Small inputs first, so a bad regex or key fails before a long hash run.
	for _, f := range opts.ExcludeFiles {
		n, err := p.AddExcludeFile(f)
		if err != nil {
			return nil, nil, err
		}
		rep.Sources = append(rep.Sources, SourceReport{Source: "excludes " + f, Entries: n})
	}
	if err := p.AddVerificationKeyFiles(opts.VerificationKeys...); err != nil {
		return nil, nil, err
	}

	for _, f := range opts.Allowlists {
		m := map[string][]string{}
		n, err := readAllowlist(f, m, p.Keyrings)
		if err != nil {
			return nil, nil, err
		}
		h, err := hintFromMap("allowlist "+f, m)
		if err != nil {
			return nil, nil, err
		}
		hints = append(hints, h)
		addAll(p.Digests, m)
		rep.Sources = append(rep.Sources, SourceReport{Source: "allowlist " + f, Entries: n})
	}

	ignored := slices.Concat(p.IMA.IgnoredKeyrings, opts.IgnoredKeyrings)
	for _, f := range opts.IMALogs {
		h := &algHint{source: "IMA log " + f}
		sr, err := readIMALog(ctx, f, p, h, opts, ignored)
		if err != nil {
			return nil, nil, err
		}
		hints = append(hints, h)
		rep.Sources = append(rep.Sources, sr)
	}

	alg, why, err := resolveAlgorithm(opts.Algorithm, hints)
	if err != nil {
		return nil, nil, err
	}
	rep.Algorithm, rep.AlgorithmWhy = alg, why

	sigKeys := map[uint32]int{}
	add := func(name string, src digests.Source) error {
		n := 0
		err := src.Walk(ctx, func(d digests.Digest) error {
			n++
			addDigest(p.Digests, d.Path, hex.EncodeToString(d.Value))
			if len(d.Signature) > 0 {
				if s, err := imasig.ParseSignature(d.Signature); err == nil {
					sigKeys[s.KeyID]++
				}
			}
			return nil
		})
		rep.Sources = append(rep.Sources, SourceReport{Source: name, Entries: n})
		return err
	}
	for _, hs := range opts.HashSources {
		src, err := hs.Open(alg)
		if err != nil {
			return nil, nil, err
		}
		if err := add(hs.Name, src); err != nil {
			return nil, nil, err
		}
	}
	for _, ps := range opts.PackageSources {
		if err := add(ps.Name, ps.Source); err != nil {
			return nil, nil, err
		}
	}

	p.IMA.IgnoredKeyrings = ignored

	if len(sigKeys) > 0 {
		kr, err := imasig.ParseKeyring(p.VerificationKeys)
		if err != nil {
			return nil, nil, err
		}
		have := map[uint32]bool{}
		for _, id := range kr.KeyIDs() {
			have[id] = true
		}
		for id, n := range sigKeys {
			if !have[id] {
				rep.MissingSigningKeys = append(rep.MissingSigningKeys, MissingKey{KeyID: fmt.Sprintf("%08x", id), Files: n})
			}
		}
		slices.SortFunc(rep.MissingSigningKeys, func(a, b MissingKey) int { return strings.Compare(a.KeyID, b.KeyID) })
	}

	if opts.LogHashAlg != "" {
		a, err := digests.ParseAlgorithm(opts.LogHashAlg)
		if err != nil || a.Size() == 0 || a == digests.MD5 || a == digests.SM3 {
			return nil, nil, fmt.Errorf("log hash algorithm %q: want sha1, sha256, sha384 or sha512", opts.LogHashAlg)
		}
		p.IMA.LogHashAlg = string(a)
	}
	if !opts.Timestamp.IsZero() {
		p.Meta.Timestamp = FormatTimestamp(opts.Timestamp)
	}
	p.Meta.Generator = GeneratorLegacy
	p.Normalize()
	for _, l := range p.Digests {
		rep.Digests += len(l)
	}
	rep.Paths = len(p.Digests)

	if err := p.check("generated policy"); err != nil {
		return nil, nil, err
	}
	return p, rep, nil
}

// check runs the schema Keylime's verifier applies on upload, so a policy
// zest writes is never one Keylime refuses. The digest maps are built here
// from decoded bytes, so only their lengths can be wrong (an md5 digest from
// a legacy "ima" record has 32 hex digits, below Keylime's 40); they are
// checked in Go and the rest of the policy with the CUE schema, which would
// be slow on maps with 10^5 keys.
func (p *RuntimePolicy) check(name string) error {
	var errs []schema.Error
	for _, m := range []struct {
		key string
		m   map[string][]string
	}{{"digests", p.Digests}, {"keyrings", p.Keyrings}, {"ima-buf", p.IMABuf}} {
		for k, l := range m.m {
			for i, d := range l {
				if len(d) < 40 || len(d) > 128 {
					errs = append(errs, schema.Error{
						Path: jsonPath(m.key, k, i),
						Msg:  fmt.Sprintf("%d hex digits: Keylime accepts only 40 to 128 (md5 digests are not accepted)", len(d)),
					})
				}
			}
		}
	}
	slices.SortFunc(errs, func(a, b schema.Error) int { return strings.Compare(a.Path, b.Path) })
	skel := *p
	skel.Digests, skel.Keyrings, skel.IMABuf = nil, nil, nil
	out, err := skel.Marshal(FormatKeylime)
	if err != nil {
		return err
	}
	errs = append(errs, schema.Validate(schema.RuntimePolicy, out, schema.Options{})...)
	if len(errs) > 0 {
		return &ValidationError{File: name, Errors: errs}
	}
	return nil
}

// jsonPath formats a path to one digest the way schema errors do.
func jsonPath(mapKey, name string, i int) string {
	seg := func(s string) string {
		ident := s != ""
		for j, r := range s {
			if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || j > 0 && r >= '0' && r <= '9') {
				ident = false
			}
		}
		if ident {
			return "." + s
		}
		q, _ := json.Marshal(s)
		return "[" + string(q) + "]"
	}
	return fmt.Sprintf("$%s%s[%d]", seg(mapKey), seg(name), i)
}

// FormatTimestamp writes t the way Keylime's str(datetime.now()) does, in UTC.
func FormatTimestamp(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond()/1000 == 0 {
		return t.Format("2006-01-02 15:04:05")
	}
	return t.Format("2006-01-02 15:04:05.000000")
}

// MaxInputBytes bounds policy, key and other small JSON/PEM inputs read whole.
const MaxInputBytes = 1 << 30

func readFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxInputBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(data) > MaxInputBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, MaxInputBytes)
	}
	return data, nil
}

func addDigest(m map[string][]string, path, d string) {
	l := m[path]
	if slices.Contains(l, d) {
		return
	}
	m[path] = append(l, d)
}

func addAll(dst, src map[string][]string) {
	for k, l := range src {
		for _, d := range l {
			addDigest(dst, k, d)
		}
	}
}

// mergeInto adds src's digests, excludes, keyrings, ima-buf entries and
// ignored keyrings to dst (Keylime's update_base_policy).
func mergeInto(dst, src *RuntimePolicy) {
	addAll(dst.Digests, src.Digests)
	addAll(dst.Keyrings, src.Keyrings)
	addAll(dst.IMABuf, src.IMABuf)
	dst.Excludes = append(dst.Excludes, src.Excludes...)
	dst.IMA.IgnoredKeyrings = append(dst.IMA.IgnoredKeyrings, src.IMA.IgnoredKeyrings...)
}

func readAllowlist(name string, digestsMap, keyrings map[string][]string) (int, error) {
	f, err := os.Open(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := allowlist.NewReader(f, name)
	n := 0
	for {
		e, err := r.Next()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
		if e.Keyring != "" {
			addDigest(keyrings, e.Keyring, hex.EncodeToString(e.Value))
			continue
		}
		addDigest(digestsMap, e.Path, hex.EncodeToString(e.Value))
	}
}

// recBatch carries (name, hex digest) pairs between the IMA log stages in
// one byte arena: ends holds the end offset of each name and digest in turn.
type recBatch struct {
	arena []byte
	ends  []int
}

// digestSet collects name -> digests without allocating for names and
// digests already present: the hot path of policies from million-line IMA
// logs. It runs in its own goroutine, so its second map operation per
// record overlaps with parsing.
type digestSet struct {
	m map[string][]string
}

func newDigestSet(hint int) *digestSet { return &digestSet{m: make(map[string][]string, hint)} }

func (s *digestSet) add(name, d []byte) {
	l, ok := s.m[string(name)]
	if !ok {
		s.m[string(name)] = []string{string(d)}
		return
	}
	for _, x := range l {
		if x == string(d) {
			return
		}
	}
	s.m[string(name)] = append(l, string(d))
}

// mergeInto adds the set to m and returns the result; when m is empty the
// set's own map is returned as it is.
func (s *digestSet) mergeInto(m map[string][]string) map[string][]string {
	if len(m) == 0 {
		return s.m
	}
	addAll(m, s.m)
	return m
}

func keyringIgnored(ignored []string, name string) bool {
	return slices.Contains(ignored, "*") || slices.Contains(ignored, name)
}

func readIMALog(ctx context.Context, name string, p *RuntimePolicy, h *algHint, opts RuntimeOptions, ignored []string) (SourceReport, error) {
	sr := SourceReport{Source: "IMA log " + name}
	f, err := os.Open(name)
	if err != nil {
		return sr, err
	}
	defer f.Close()
	violations := 0
	hint := 0
	if st, err := f.Stat(); err == nil {
		hint = int(min(st.Size()/160, 1<<22)) // ~160 bytes per ima-ng line; paths are mostly distinct
	}
	files := newDigestSet(hint)

	// Two stages on two cores: this goroutine parses and checks records and
	// hands file digests over in batches; the consumer builds the map,
	// which is the larger half of the work on million-line logs.
	batches := make(chan *recBatch, 4)
	free := make(chan *recBatch, 6)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for b := range batches {
			for i := 0; i+1 < len(b.ends); i += 2 {
				start := 0
				if i > 0 {
					start = b.ends[i-1]
				}
				files.add(b.arena[start:b.ends[i]], b.arena[b.ends[i]:b.ends[i+1]])
			}
			b.arena, b.ends = b.arena[:0], b.ends[:0]
			free <- b
		}
	}()
	cur := &recBatch{}
	flush := func() {
		if len(cur.ends) > 0 {
			batches <- cur
			select {
			case cur = <-free:
			default:
				cur = &recBatch{}
			}
		}
	}
	err = func() error {
		r := imalog.NewReader(f, name)
		var checker imalog.Checker
		for {
			e, err := r.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if e.Line%65536 == 0 && ctx.Err() != nil {
				return ctx.Err()
			}
			alg, err := e.Digest.Alg()
			if err != nil {
				return fmt.Errorf("%s:%d: %w", name, e.Line, err)
			}
			bootAggregate := string(e.RawName) == "boot_aggregate"
			if e.IsViolation() && !bootAggregate {
				// ToMToU/open_writers records carry a zero digest, not a measurement.
				violations++
				continue
			}
			if !opts.SkipTemplateHashCheck {
				if err = checker.Check(e); err != nil && !errors.Is(err, imalog.ErrViolation) {
					return fmt.Errorf("%s:%d: %w", name, e.Line, err)
				}
			}
			sr.Entries++
			if e.HasBufField() {
				d := hex.EncodeToString(e.Digest.Value)
				if _, cerr := x509.ParseCertificate(e.Buf); cerr == nil {
					if opts.Keyrings && !keyringIgnored(ignored, e.Name()) {
						addDigest(p.Keyrings, e.Name(), d)
					} else {
						sr.Skipped++
					}
				} else if opts.IMABuf {
					addDigest(p.IMABuf, e.Name(), d)
				} else {
					sr.Skipped++
				}
				continue
			}
			if !bootAggregate {
				h.add(alg)
			}
			cur.arena = append(cur.arena, e.RawName...)
			cur.ends = append(cur.ends, len(cur.arena))
			cur.arena = hex.AppendEncode(cur.arena, e.Digest.Value)
			cur.ends = append(cur.ends, len(cur.arena))
			if len(cur.ends) >= 2*4096 {
				flush()
			}
		}
	}()
	flush()
	close(batches)
	<-done
	if err != nil {
		return sr, err
	}
	p.Digests = files.mergeInto(p.Digests)
	if violations > 0 {
		sr.Note = fmt.Sprintf("%d violation records (ToMToU/open_writers) carry no digest and were left out", violations)
	}
	if sr.Skipped > 0 {
		note := fmt.Sprintf("%d ima-buf records left out (use --keyrings / --ima-buf to include them)", sr.Skipped)
		if sr.Note != "" {
			note = sr.Note + "; " + note
		}
		sr.Note = note
	}
	return sr, nil
}

// AddExcludeFile appends the expressions of an exclude list (ReadExcludes)
// and returns how many there were.
func (p *RuntimePolicy) AddExcludeFile(name string) (int, error) {
	ex, err := ReadExcludes(name)
	if err != nil {
		return 0, err
	}
	p.Excludes = append(p.Excludes, ex...)
	return len(ex), nil
}

// AddVerificationKeyFiles adds IMA signature verification keys (PEM or DER
// certificates, public or private keys; RSA or ECDSA) to verification-keys.
func (p *RuntimePolicy) AddVerificationKeyFiles(files ...string) error {
	if len(files) == 0 {
		return nil
	}
	kr, err := imasig.ParseKeyring(p.VerificationKeys)
	if err != nil {
		return fmt.Errorf("existing verification-keys: %w", err)
	}
	for _, f := range files {
		data, err := readFile(f)
		if err != nil {
			return err
		}
		k, err := imasig.LoadKey(data)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if err := kr.Add(k); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
	}
	p.VerificationKeys = kr.String()
	return nil
}

// ReadExcludes reads an exclude list: one regular expression per line,
// blank lines and '#' comments skipped. Every expression must be one that
// zest (RE2) and Keylime (Python re, all joined into one alternation) both
// accept, or Keylime would silently disable all excludes (its defect D8).
func ReadExcludes(name string) ([]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 0, 4096), 64<<10)
	var out []string
	line := 0
	for s.Scan() {
		line++
		t := strings.TrimSpace(s.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		if err := schema.CheckExclude(t); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		out = append(out, t)
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", name, line+1, err)
	}
	return out, nil
}
