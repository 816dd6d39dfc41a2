package ima

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/maphash"
	"math/bits"
	"sort"
)

// table maps a path to its digest set. It is an open-addressing hash table
// over one byte arena where each key is followed by its digest set, so a
// lookup in a 10^5-path policy costs one probe of a compact slot array and
// one read of adjacent key and digest bytes; a Go map of strings touches
// about twice as many cache lines, which dominated evaluation time.
//
// A digest set is the raw digests of one path concatenated, each behind a
// length byte. The hash seed is random per table, so lists cannot be crafted
// to collide; a probe compares the full key anyway.
type table struct {
	seed  maphash.Seed
	slots []slot
	mask  uint64
	arena []byte // per entry: uvarint key length, uvarint set length, key, set
	n     int
}

// slot is 8 bytes so the slot array of a 10^5-path policy stays in cache.
type slot struct {
	tag uint32 // high hash bits, never 0 for a used slot
	off uint32 // entry start in arena
}

func newTable(n int) *table {
	size := uint64(8)
	if n > 2 {
		size = uint64(1) << bits.Len64(uint64(n)*2) // load factor <= 1/2
	}
	return &table{seed: maphash.MakeSeed(), slots: make([]slot, size), mask: size - 1}
}

func (t *table) hash(key []byte) (idx uint64, tag uint32) {
	h := maphash.Bytes(t.seed, key)
	return h & t.mask, uint32(h>>32) | 1
}

// add inserts a key once (callers pass map keys, which are unique).
func (t *table) add(key string, set []byte) error {
	if uint64(len(t.arena))+uint64(len(key))+uint64(len(set))+20 > 1<<32-1 {
		return fmt.Errorf("policy too large: more than 4 GiB of paths and digests")
	}
	i, tag := t.hash([]byte(key))
	for t.slots[i].tag != 0 {
		i = (i + 1) & t.mask
	}
	t.slots[i] = slot{tag: tag, off: uint32(len(t.arena))}
	t.arena = binary.AppendUvarint(t.arena, uint64(len(key)))
	t.arena = binary.AppendUvarint(t.arena, uint64(len(set)))
	t.arena = append(t.arena, key...)
	t.arena = append(t.arena, set...)
	t.n++
	return nil
}

// lookup returns the digest set of key; ok is false when key is absent.
func (t *table) lookup(key []byte) (set []byte, ok bool) {
	if t == nil || t.n == 0 {
		return nil, false
	}
	i, tag := t.hash(key)
	for ; ; i = (i + 1) & t.mask {
		s := t.slots[i]
		if s.tag == 0 {
			return nil, false
		}
		if s.tag != tag {
			continue
		}
		e := t.arena[s.off:]
		klen, n1 := binary.Uvarint(e)
		slen, n2 := binary.Uvarint(e[n1:])
		e = e[n1+n2:]
		if klen == uint64(len(key)) && bytes.Equal(e[:klen], key) {
			return e[klen : klen+slen : klen+slen], true
		}
	}
}

func (t *table) get(key string) ([]byte, bool) { return t.lookup([]byte(key)) }

func setHas(set, d []byte) bool {
	for len(set) > 0 {
		n := int(set[0])
		if n+1 > len(set) {
			return false
		}
		if n == len(d) && bytes.Equal(set[1:1+n], d) {
			return true
		}
		set = set[1+n:]
	}
	return false
}

func setHex(set []byte) []string {
	out := []string{}
	for len(set) > 0 {
		n := int(set[0])
		if n+1 > len(set) {
			break
		}
		out = append(out, hex.EncodeToString(set[1:1+n]))
		set = set[1+n:]
	}
	sort.Strings(out)
	return out
}
