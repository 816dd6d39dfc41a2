package policygen

import (
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/zest-attest/zest/digests/imasig"
)

// Merge combines policies into one that accepts everything any of them
// accepts: digests, keyrings, ima-buf entries, excludes, ignored keyrings
// and verification keys are united. Release is the highest; log_hash_alg
// must agree, because a policy has only one.
func Merge(policies ...*RuntimePolicy) (*RuntimePolicy, error) {
	out := NewRuntimePolicy()
	if len(policies) == 0 {
		return out, nil
	}
	out.IMA.LogHashAlg = policies[0].IMA.LogHashAlg
	var keyrings []string
	for i, p := range policies {
		if p.IMA.LogHashAlg != out.IMA.LogHashAlg {
			return nil, fmt.Errorf("policy %d has log_hash_alg %q but policy 1 has %q; a merged policy can only have one", i+1, p.IMA.LogHashAlg, out.IMA.LogHashAlg)
		}
		if p.Release > out.Release {
			out.Release = p.Release
		}
		mergeInto(out, p)
		keyrings = append(keyrings, p.VerificationKeys)
	}
	vk, err := mergeKeyrings(keyrings...)
	if err != nil {
		return nil, err
	}
	out.VerificationKeys = vk
	out.Normalize()
	return out, nil
}

// mergeKeyrings unites verification-keys documents, keeping keys zest
// cannot use itself (they still matter to Keylime).
func mergeKeyrings(docs ...string) (string, error) {
	var all struct {
		Pubkeys []string `json:"pubkeys"`
		Keyids  []uint32 `json:"keyids"`
	}
	all.Pubkeys, all.Keyids = []string{}, []uint32{}
	for i, d := range docs {
		kr, err := imasig.ParseKeyring(d)
		if err != nil {
			return "", fmt.Errorf("policy %d verification-keys: %w", i+1, err)
		}
		for _, e := range kr.Entries() {
			all.Pubkeys = append(all.Pubkeys, base64.StdEncoding.EncodeToString(e.SPKI))
			all.Keyids = append(all.Keyids, e.KeyID)
		}
	}
	if len(all.Pubkeys) == 0 {
		return "", nil
	}
	b, err := json.Marshal(all)
	if err != nil {
		return "", err
	}
	kr, err := imasig.ParseKeyring(string(b))
	if err != nil {
		return "", err
	}
	return kr.String(), nil
}
