package ima

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"

	"github.com/zest-attest/zest/digests"
	"github.com/zest-attest/zest/digests/imalog"
)

// maxBanks is the number of replayable banks (see replayable).
const maxBanks = 4

// lineHashes is what can be computed for one entry without the
// evaluator's state: the template hash, the value each quoted bank extends,
// and the policy's digests for its path.
type lineHashes struct {
	sizeOK    bool   // the listed template hash has log_hash_alg's size
	violation bool   // a violation record (not hashed)
	th        []byte // the computed template hash, when sizeOK && !violation
	thBuf     [64]byte
	ext       [maxBanks][64]byte // per bank, in evaluator.banks order
	// The policy's digests for the path (of a PCR 10 entry), and whether
	// they list the entry's digest.
	set                 []byte
	listed, allowlisted bool
}

// hasher computes lineHashes, including the policy lookup of the path; it
// only reads its fields, so goroutines can share one.
type hasher struct {
	logAlg digests.Algorithm
	padded bool                // AllowPaddedSHA1Extend
	algs   []digests.Algorithm // the quoted banks, in evaluator.banks order
	ff     [][64]byte          // what a violation record extends, per bank
	files  *table              // the policy's digests
}

// prepare hashes ent into h, using td as template data scratch (returned
// for reuse).
func (hs *hasher) prepare(ent *imalog.Entry, td []byte, h *lineHashes) []byte {
	td = ent.AppendTemplateData(td[:0])
	h.sizeOK = len(ent.TemplateHash) == hs.logAlg.Size()
	h.violation = h.sizeOK && ent.IsViolation()
	h.th = nil
	if h.sizeOK && !h.violation {
		h.th = sumInto(hs.logAlg, h.thBuf[:0], td)
	}
	if ent.PCR != pcrIMA {
		return td // not replayed, not judged
	}
	h.set, h.listed = hs.files.lookup(ent.RawName)
	h.allowlisted = h.listed && setHas(h.set, ent.Digest.Value)
	for i, alg := range hs.algs {
		v := h.ext[i][:alg.Size()]
		switch {
		case h.violation:
			copy(v, hs.ff[i][:])
		case hs.padded:
			clear(v)
			var s1 [64]byte
			copy(v, sumInto(digests.SHA1, s1[:0], td))
		case alg == hs.logAlg && h.th != nil:
			copy(v, h.th)
		default:
			sumInto(alg, v[:0], td)
		}
	}
	return td
}

// batch is a run of lines read in order, parsed and hashed by workers,
// then judged in order.
type batch struct {
	buf   []byte // the lines' bytes, copied out of the reader
	items []batchItem
	// last: reading stopped for good (end of input or a read error,
	// which is then the last item).
	last bool
	// Per claimer scratch, kept across batches.
	arenas  [][]byte
	tds     [][]byte
	claimed atomic.Int32 // chunks claimed
}

type batchItem struct {
	start, end int   // the line in buf
	no         int   // line number
	off        int64 // byte offset
	err        error // read or parse error
	ent        imalog.Entry
	h          lineHashes
}

// batches keeps batch buffers between rounds: a round of a long list
// needs two, of some hundred kilobytes each.
var batches = sync.Pool{New: func() any { return &batch{} }}

// release returns b to the pool, without references into the round's
// input or entries.
func (b *batch) release() {
	clear(b.items) // errors of the round
	b.items, b.buf = b.items[:0], b.buf[:0]
	batches.Put(b)
}

// fill reads up to cfg.batchLines lines (or cfg.batchBytes bytes) into b.
func (b *batch) fill(rd *imalog.Reader, cfg evalConfig) {
	b.buf, b.items, b.last = b.buf[:0], b.items[:0], false
	for len(b.items) < cfg.batchLines && len(b.buf) < cfg.batchBytes {
		line, no, off, err := rd.NextLine()
		if err == io.EOF {
			b.last = true
			return
		}
		if err != nil {
			var pe *imalog.ParseError
			b.items = append(b.items, batchItem{err: err})
			if !errors.As(err, &pe) {
				b.last = true
				return
			}
			continue
		}
		start := len(b.buf)
		b.buf = append(b.buf, line...)
		b.items = append(b.items, batchItem{start: start, end: len(b.buf), no: no, off: off})
	}
}

// chunkLines is how many lines a goroutine claims at a time.
const chunkLines = 32

// start empties b's scratch and starts len(parsers)-1 goroutines parsing
// and hashing b's items; the caller works along as claimer 0 (work), then
// waits on wg.
func (b *batch) start(hs *hasher, parsers []*imalog.Parser, wg *sync.WaitGroup) {
	for len(b.arenas) < len(parsers) {
		b.arenas = append(b.arenas, nil)
		b.tds = append(b.tds, nil)
	}
	for i := range b.arenas {
		b.arenas[i] = b.arenas[i][:0]
	}
	b.claimed.Store(0)
	for i := 1; i < len(parsers); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.work(i, hs, parsers[i])
		}()
	}
}

// work parses and hashes chunks of b's items until none is left
// unclaimed; i names the claimer's scratch.
func (b *batch) work(i int, hs *hasher, ps *imalog.Parser) {
	arena, td := b.arenas[i], b.tds[i]
	for {
		lo := int(b.claimed.Add(1)-1) * chunkLines
		if lo >= len(b.items) {
			break
		}
		for k := lo; k < min(lo+chunkLines, len(b.items)); k++ {
			it := &b.items[k]
			if it.err != nil {
				continue
			}
			arena, it.err = ps.Parse(&it.ent, b.buf[it.start:it.end], it.no, it.off, arena)
			if it.err == nil {
				td = hs.prepare(&it.ent, td, &it.h)
			}
		}
	}
	b.arenas[i], b.tds[i] = arena, td
}

// runBatches evaluates the rest of the list: while other goroutines parse
// and hash one batch, this one judges the previous batch in list order
// (so failures, counts and the replay are those of a sequential run), then
// helps with the rest of the batch.
func (e *evaluator) runBatches(rd *imalog.Reader) {
	parsers := make([]*imalog.Parser, e.cfg.workers)
	for i := range parsers {
		parsers[i] = imalog.NewParser(logName)
	}
	var wg sync.WaitGroup
	cur, spare := batches.Get().(*batch), batches.Get().(*batch)
	defer func() {
		wg.Wait() // no goroutine outlives the round, whatever stops it
		cur.release()
		spare.release()
	}()
	cur.fill(rd, e.cfg)
	cur.start(&e.hasher, parsers, &wg)
	cur.work(0, &e.hasher, parsers[0])
	wg.Wait()
	for {
		var next *batch
		if !cur.last {
			next = spare
			next.fill(rd, e.cfg)
			next.start(&e.hasher, parsers, &wg)
		}
		for k := range cur.items {
			it := &cur.items[k]
			if !e.take(&it.ent, it.err, &it.h) {
				return
			}
		}
		if next == nil {
			return
		}
		next.work(0, &e.hasher, parsers[0])
		wg.Wait()
		cur, spare = next, cur
	}
}
