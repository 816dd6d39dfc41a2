package verifier

import (
	"crypto/sha256"
	"sync"

	"github.com/zest-attest/zest/verifier/ima"
)

// PolicyCache keeps compiled runtime policies by the SHA-256 of the
// request field that carried them, so a fleet sending the same policy with
// every /verify/evidence request parses and compiles it once. A cache
// belongs to one EvidenceOptions (the IMA options are not part of the
// key). Only policies that compiled are kept. Safe for concurrent use.
type PolicyCache struct {
	max   int
	mu    sync.Mutex
	m     map[[32]byte]*ima.Policy
	order [][32]byte // insertion order, oldest first
}

// NewPolicyCache keeps up to size policies (oldest evicted first); size < 1
// means 1.
func NewPolicyCache(size int) *PolicyCache {
	return &PolicyCache{max: max(size, 1), m: map[[32]byte]*ima.Policy{}}
}

func (c *PolicyCache) get(k [32]byte) *ima.Policy {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[k]
}

func (c *PolicyCache) put(k [32]byte, p *ima.Policy) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; ok {
		return
	}
	if len(c.order) >= c.max {
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
	c.m[k] = p
	c.order = append(c.order, k)
}

func policyKey(raw []byte) [32]byte { return sha256.Sum256(raw) }
