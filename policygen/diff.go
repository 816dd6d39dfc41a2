package policygen

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"sort"

	"github.com/zest-attest/zest/digests/imasig"
)

// EntryChange is a map entry (path, keyring or buffer name) whose digest
// list differs.
type EntryChange struct {
	Name string   `json:"name"`
	Old  []string `json:"old"`
	New  []string `json:"new"`
}

// MapDiff compares one name -> digests map.
type MapDiff struct {
	Added   []EntryChange `json:"added"`
	Removed []EntryChange `json:"removed"`
	Changed []EntryChange `json:"changed"`
}

// ListDiff compares a set of strings.
type ListDiff struct {
	Added   []string `json:"added"`
	Removed []string `json:"removed"`
}

// ValueChange is a scalar that differs.
type ValueChange struct {
	Old string `json:"old"`
	New string `json:"new"`
}

// Diff is the difference between two runtime policies. Its JSON shape is
// stable: every list is present, empty lists are [], unchanged scalars null.
type Diff struct {
	Equal            bool         `json:"equal"`
	Digests          MapDiff      `json:"digests"`
	Excludes         ListDiff     `json:"excludes"`
	Keyrings         MapDiff      `json:"keyrings"`
	IMABuf           MapDiff      `json:"ima_buf"`
	IgnoredKeyrings  ListDiff     `json:"ignored_keyrings"`
	VerificationKeys ListDiff     `json:"verification_keys"` // keyids as 8 hex digits
	LogHashAlg       *ValueChange `json:"log_hash_alg"`
	DMPolicy         *ValueChange `json:"dm_policy"`
	Release          *ValueChange `json:"release"`
}

// Compare returns what changed from old to new. meta (generator, timestamp)
// is ignored: it says how a policy was made, not what it accepts.
func Compare(old, new *RuntimePolicy) (*Diff, error) {
	d := &Diff{
		Digests:          diffMap(old.Digests, new.Digests),
		Excludes:         diffList(old.Excludes, new.Excludes),
		Keyrings:         diffMap(old.Keyrings, new.Keyrings),
		IMABuf:           diffMap(old.IMABuf, new.IMABuf),
		IgnoredKeyrings:  diffList(old.IMA.IgnoredKeyrings, new.IMA.IgnoredKeyrings),
		VerificationKeys: ListDiff{Added: []string{}, Removed: []string{}},
	}
	ok, err := keyIDs(old.VerificationKeys)
	if err != nil {
		return nil, fmt.Errorf("old policy verification-keys: %w", err)
	}
	nk, err := keyIDs(new.VerificationKeys)
	if err != nil {
		return nil, fmt.Errorf("new policy verification-keys: %w", err)
	}
	d.VerificationKeys = diffList(ok, nk)
	if old.IMA.LogHashAlg != new.IMA.LogHashAlg {
		d.LogHashAlg = &ValueChange{old.IMA.LogHashAlg, new.IMA.LogHashAlg}
	}
	if o, n := dmString(old), dmString(new); o != n {
		d.DMPolicy = &ValueChange{o, n}
	}
	if old.Release != new.Release {
		d.Release = &ValueChange{fmt.Sprint(old.Release), fmt.Sprint(new.Release)}
	}
	d.Equal = d.count() == 0
	return d, nil
}

func dmString(p *RuntimePolicy) string {
	if len(p.IMA.DMPolicy) == 0 {
		return "null"
	}
	return string(p.IMA.DMPolicy)
}

// keyIDs lists a keyring's keys as "keyid:fingerprint" (first 8 bytes of
// SHA-256 over the SPKI), so a replaced key with the same keyid still shows.
func keyIDs(s string) ([]string, error) {
	kr, err := imasig.ParseKeyring(s)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range kr.Entries() {
		fp := sha256.Sum256(e.SPKI)
		out = append(out, fmt.Sprintf("%08x:%x", e.KeyID, fp[:8]))
	}
	return out, nil
}

func (d *Diff) count() int {
	n := 0
	for _, m := range []MapDiff{d.Digests, d.Keyrings, d.IMABuf} {
		n += len(m.Added) + len(m.Removed) + len(m.Changed)
	}
	for _, l := range []ListDiff{d.Excludes, d.IgnoredKeyrings, d.VerificationKeys} {
		n += len(l.Added) + len(l.Removed)
	}
	for _, v := range []*ValueChange{d.LogHashAlg, d.DMPolicy, d.Release} {
		if v != nil {
			n++
		}
	}
	return n
}

func diffMap(old, new map[string][]string) MapDiff {
	md := MapDiff{Added: []EntryChange{}, Removed: []EntryChange{}, Changed: []EntryChange{}}
	for k, nv := range new {
		ov, ok := old[k]
		switch {
		case !ok:
			md.Added = append(md.Added, EntryChange{Name: k, Old: []string{}, New: sorted(nv)})
		case !slices.Equal(sorted(ov), sorted(nv)):
			md.Changed = append(md.Changed, EntryChange{Name: k, Old: sorted(ov), New: sorted(nv)})
		}
	}
	for k, ov := range old {
		if _, ok := new[k]; !ok {
			md.Removed = append(md.Removed, EntryChange{Name: k, Old: sorted(ov), New: []string{}})
		}
	}
	for _, l := range [][]EntryChange{md.Added, md.Removed, md.Changed} {
		sort.Slice(l, func(i, j int) bool { return l[i].Name < l[j].Name })
	}
	return md
}

func sorted(v []string) []string {
	c := slices.Clone(v)
	slices.Sort(c)
	return slices.Compact(c)
}

func diffList(old, new []string) ListDiff {
	ld := ListDiff{Added: []string{}, Removed: []string{}}
	o, n := sorted(old), sorted(new)
	for _, s := range n {
		if _, found := slices.BinarySearch(o, s); !found {
			ld.Added = append(ld.Added, s)
		}
	}
	for _, s := range o {
		if _, found := slices.BinarySearch(n, s); !found {
			ld.Removed = append(ld.Removed, s)
		}
	}
	return ld
}
