package verifier

import (
	"bytes"
	"hash/maphash"
	"sync"

	"github.com/zest-attest/zest/verifier/ima"
)

// PolicyCache keeps compiled runtime policies by the bytes of the request
// field that carried them, so a fleet sending the same policy with every
// /verify/evidence request parses and compiles it once. Lookups hash the
// field with hash/maphash (a SHA-256 of a megabyte policy cost ~5% of a
// request) and compare the stored bytes, so a hit is always the same
// policy. A cache belongs to one EvidenceOptions (the IMA options are not
// part of the key). Only policies that compiled are kept. Safe for
// concurrent use.
type PolicyCache struct {
	max   int
	seed  maphash.Seed
	mu    sync.Mutex
	m     map[uint64]cachedPolicy
	order []uint64 // insertion order, oldest first
}

type cachedPolicy struct {
	raw []byte // the field's bytes (a copy)
	pol *ima.Policy
}

// NewPolicyCache keeps up to size policies (oldest evicted first); size < 1
// means 1.
func NewPolicyCache(size int) *PolicyCache {
	return &PolicyCache{max: max(size, 1), seed: maphash.MakeSeed(), m: map[uint64]cachedPolicy{}}
}

func (c *PolicyCache) get(raw []byte) *ima.Policy {
	k := maphash.Bytes(c.seed, raw)
	c.mu.Lock()
	e, ok := c.m[k]
	c.mu.Unlock()
	if !ok || !bytes.Equal(e.raw, raw) {
		return nil
	}
	return e.pol
}

func (c *PolicyCache) put(raw []byte, p *ima.Policy) {
	k := maphash.Bytes(c.seed, raw)
	e := cachedPolicy{raw: bytes.Clone(raw), pol: p}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; ok {
		c.m[k] = e // same bytes, or (rarely) bytes with the same hash: the newer wins
		return
	}
	if len(c.order) >= c.max {
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
	c.m[k] = e
	c.order = append(c.order, k)
}
