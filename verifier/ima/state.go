package ima

import (
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"

	"github.com/zest-attest/zest/digests"
	"github.com/zest-attest/zest/digests/imasig"
)

// MaxLearnedKeys bounds the keys one attestation learns from ima-buf records,
// so State stays small whatever the list holds.
const MaxLearnedKeys = 256

// State is what one round hands to the next: where the list continues and
// what was verified before it. The zero value starts a full evaluation from
// the first entry (boot_aggregate). It is small and JSON-encodable; a
// restarted service resumes from it.
type State struct {
	// NextEntry is the number of list lines consumed so far: the
	// ima_ml_entry to ask the agent for next.
	NextEntry uint64 `json:"next_entry"`
	// PCR10 is the replayed PCR 10 after those lines, hex, per quoted bank.
	PCR10 map[digests.Algorithm]string `json:"pcr10,omitempty"`
	// BootAggregateChecked: entry 0 (boot_aggregate) has been evaluated.
	BootAggregateChecked bool `json:"boot_aggregate_checked"`
	// LearnedKeys are the keys learned from ima-buf records so far, in the
	// order they were learned.
	LearnedKeys []LearnedKey `json:"learned_keys,omitempty"`
}

// LearnedKey is a public key an ima-buf record measured into a keyring and
// the policy's keyrings list allowed.
type LearnedKey struct {
	Keyring string `json:"keyring"`
	KeyID   string `json:"keyid"` // keyidv2, 8 hex digits
	SPKI    []byte `json:"spki"`  // DER SubjectPublicKeyInfo (base64 in JSON)
	Entry   uint64 `json:"entry"` // the ima-buf record it came from
}

type learned struct {
	LearnedKey
	key *imasig.Key
}

// resume checks a stored state against the banks of this round's quote and
// loads its keys. A state is input too (it comes back from storage).
func resume(s State, banks []bank) ([]learned, error) {
	if s.NextEntry > 0 && !s.BootAggregateChecked {
		return nil, fmt.Errorf("state: next_entry %d but boot_aggregate never checked", s.NextEntry)
	}
	if len(s.PCR10) != len(banks) {
		return nil, fmt.Errorf("state: replayed banks %v, this quote has %v (start over from entry 0)", stateBanks(s), bankNames(banks))
	}
	for i := range banks {
		h, ok := s.PCR10[banks[i].alg]
		if !ok {
			return nil, fmt.Errorf("state: no replayed value for bank %s, this quote has %v (start over from entry 0)", banks[i].alg, bankNames(banks))
		}
		v, err := hex.DecodeString(h)
		if err != nil || len(v) != banks[i].alg.Size() {
			return nil, fmt.Errorf("state: pcr10[%s] %q is not a %d-byte hex value", banks[i].alg, clip(h), banks[i].alg.Size())
		}
		copy(banks[i].running[:], v)
	}
	if len(s.LearnedKeys) > MaxLearnedKeys {
		return nil, fmt.Errorf("state: %d learned keys, more than %d", len(s.LearnedKeys), MaxLearnedKeys)
	}
	out := make([]learned, 0, len(s.LearnedKeys))
	for i, lk := range s.LearnedKeys {
		k, err := imasig.LoadKey(lk.SPKI)
		if err != nil {
			return nil, fmt.Errorf("state: learned_keys[%d]: %v", i, err)
		}
		id, err := strconv.ParseUint(lk.KeyID, 16, 32)
		if err != nil || len(lk.KeyID) != 8 {
			return nil, fmt.Errorf("state: learned_keys[%d]: keyid %q is not 8 hex digits", i, clip(lk.KeyID))
		}
		if lk.Entry >= s.NextEntry {
			return nil, fmt.Errorf("state: learned_keys[%d] comes from entry %d, not before next_entry %d", i, lk.Entry, s.NextEntry)
		}
		k.KeyID = uint32(id)
		out = append(out, learned{LearnedKey: lk, key: k})
	}
	return out, nil
}

func newLearned(keyring string, k *imasig.Key, entry uint64) (learned, error) {
	spki, err := x509.MarshalPKIXPublicKey(k.Public)
	if err != nil {
		return learned{}, err
	}
	return learned{
		LearnedKey: LearnedKey{Keyring: keyring, KeyID: fmt.Sprintf("%08x", k.KeyID), SPKI: spki, Entry: entry},
		key:        k,
	}, nil
}

func stateBanks(s State) []string {
	var out []string
	for a := range s.PCR10 {
		out = append(out, string(a))
	}
	sort.Strings(out)
	return out
}

func bankNames(b []bank) []string {
	out := make([]string, len(b))
	for i := range b {
		out[i] = string(b[i].alg)
	}
	return out
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}
