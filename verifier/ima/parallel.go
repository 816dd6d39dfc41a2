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

// batch is a run of lines read in order, parsed and hashed by helper
// goroutines, judged in order by the evaluating goroutine.
//
// The evaluating goroutine never waits for a helper: a chunk of lines a
// helper has finished is judged from its results, a chunk nobody claimed
// yet it claims, and a chunk a helper is still at (its thread may not even
// be running on a busy machine) it parses and hashes again itself, into
// its own scratch. So a round is never slower than the one-line-at-a-time
// evaluation by more than the batching itself. A batch goes back to the
// pool when its last user lets go of it.
//
// From a reader that reads in place (imalog.InMemory) lines are not
// copied: items point into the list, and a pooled batch's entries may
// keep pointing into it until they are reused or the pool is emptied.
type batch struct {
	buf   []byte // the lines' bytes copied out of the reader, unless it reads in place
	ends  []int  // where each item's line ends in buf, while filling
	items []batchItem
	// last: reading stopped for good (end of input or a read error,
	// which is then the last item).
	last    bool
	arenas  [][]byte      // hex arena per helper, the last the evaluating goroutine's
	claimed atomic.Int32  // chunks claimed
	done    []atomic.Bool // per chunk: a helper filled its items' ent, h and perr
	refs    atomic.Int32  // users: the evaluating goroutine and running helpers
}

type batchItem struct {
	// Set by fill, read-only afterwards.
	line []byte // in buf, or in the list when the reader reads in place
	no   int    // line number
	off  int64  // byte offset
	err  error  // read error
	// Set by the helper that claimed the chunk.
	perr error // parse error
	ent  imalog.Entry
	h    lineHashes
}

// batches keeps batch buffers between rounds.
var batches = sync.Pool{New: func() any { return &batch{} }}

// getBatch returns an empty batch held by the caller.
func getBatch() *batch {
	b := batches.Get().(*batch)
	b.refs.Store(1)
	return b
}

// drop lets go of b; the last user returns it to the pool.
func (b *batch) drop() {
	if b.refs.Add(-1) == 0 {
		for i := range b.items { // errors and lines of the round; the rest is b's own memory
			b.items[i].err, b.items[i].perr, b.items[i].line = nil, nil, nil
		}
		b.items, b.buf = b.items[:0], b.buf[:0]
		batches.Put(b)
	}
}

// fill reads up to cfg.batchLines lines (or cfg.batchBytes bytes) into b.
func (b *batch) fill(rd *imalog.Reader, cfg evalConfig) {
	b.buf, b.items, b.last = b.buf[:0], b.items[:0], false
	for len(b.arenas) < cfg.workers {
		b.arenas = append(b.arenas, nil)
	}
	b.arenas = b.arenas[:cfg.workers] // helpers', then the evaluating goroutine's
	for i := range b.arenas {
		b.arenas[i] = b.arenas[i][:0]
	}
	// Copied lines are sliced out of buf once it stops growing.
	inPlace := rd.InPlace()
	b.ends = b.ends[:0]
	defer func() {
		if !inPlace {
			start := 0
			for i, end := range b.ends {
				b.items[i].line, start = b.buf[start:end], end
			}
		}
		chunks := (len(b.items) + chunkLines - 1) / chunkLines
		if cap(b.done) < chunks {
			b.done = make([]atomic.Bool, chunks)
		}
		b.done = b.done[:chunks]
		for i := range b.done {
			b.done[i].Store(false)
		}
		b.claimed.Store(0)
	}()
	for size := 0; len(b.items) < cfg.batchLines && size < cfg.batchBytes; {
		line, no, off, err := rd.NextLine()
		if err == io.EOF {
			b.last = true
			return
		}
		it := b.add()
		if err != nil {
			var pe *imalog.ParseError
			it.no, it.err = -1, err
			b.ends = append(b.ends, len(b.buf))
			if !errors.As(err, &pe) {
				b.last = true
				return
			}
			continue
		}
		it.no, it.off = no, off
		size += len(line)
		if inPlace {
			it.line = line
		} else {
			b.buf = append(b.buf, line...)
			b.ends = append(b.ends, len(b.buf))
		}
	}
}

// add appends an item with its fill fields zero. Its ent and h keep what
// an earlier use left (Parse and prepare set every field judging reads),
// which saves zeroing and copying 700 bytes per line.
func (b *batch) add() *batchItem {
	if len(b.items) < cap(b.items) {
		b.items = b.items[:len(b.items)+1]
	} else {
		b.items = append(b.items, batchItem{})
	}
	it := &b.items[len(b.items)-1]
	it.line, it.no, it.off, it.err, it.perr = nil, 0, 0, nil, nil
	return it
}

// chunkLines is how many lines a goroutine claims at a time.
const chunkLines = 16

// help starts n helper goroutines on b, counted in wg and live. Helpers
// that have not run yet keep their batch, so while 2n are still live no
// more start (the evaluating goroutine does their work): the batches
// alive stay bounded however starved the helpers are.
func (b *batch) help(n int, hs *hasher, wg *sync.WaitGroup, live *atomic.Int32) {
	if int(live.Load()) >= 2*n {
		return
	}
	for i := 0; i < n; i++ {
		b.refs.Add(1)
		live.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer live.Add(-1)
			defer b.drop()
			b.work(i, hs)
		}()
	}
}

// work parses and hashes chunks of b's items until none is left
// unclaimed.
func (b *batch) work(i int, hs *hasher) {
	ps := imalog.NewParser(logName)
	var td []byte
	for b.claimOne(i, hs, ps, &td) {
	}
}

// claimOne claims the next unclaimed chunk and fills its items' ent, h
// and perr, using arena i; false when none is left.
func (b *batch) claimOne(i int, hs *hasher, ps *imalog.Parser, td *[]byte) bool {
	c := int(b.claimed.Add(1) - 1)
	lo := c * chunkLines
	if lo >= len(b.items) {
		return false
	}
	arena := b.arenas[i]
	for k := lo; k < min(lo+chunkLines, len(b.items)); k++ {
		it := &b.items[k]
		if it.err != nil {
			continue
		}
		arena, it.perr = ps.Parse(&it.ent, it.line, it.no, it.off, arena)
		if it.perr == nil {
			*td = hs.prepare(&it.ent, *td, &it.h)
		}
	}
	b.arenas[i] = arena
	b.done[c].Store(true)
	return true
}

// lineScratch is the evaluating goroutine's own parse and hash state.
type lineScratch struct {
	ps    *imalog.Parser
	ent   imalog.Entry
	h     lineHashes
	arena []byte
	td    []byte
}

// line parses, hashes and judges one line itself; false stops reading.
func (e *evaluator) line(sc *lineScratch, line []byte, no int, off int64, err error) bool {
	if err == nil {
		sc.arena, err = sc.ps.Parse(&sc.ent, line, no, off, sc.arena[:0])
	}
	if err == nil {
		sc.td = e.hasher.prepare(&sc.ent, sc.td, &sc.h)
	}
	return e.take(&sc.ent, err, &sc.h)
}

// judge judges b's items in order (see batch); false stops reading.
func (e *evaluator) judge(b *batch, sc *lineScratch) bool {
	for c := range b.done {
		lo, hi := c*chunkLines, min(len(b.items), (c+1)*chunkLines)
		// Rather than wait for chunk c, work on the next unclaimed one
		// (c itself if nobody has it).
		for !b.done[c].Load() && b.claimOne(len(b.arenas)-1, &e.hasher, sc.ps, &sc.td) {
		}
		if b.done[c].Load() {
			for k := lo; k < hi; k++ {
				it := &b.items[k]
				err := it.err
				if err == nil {
					err = it.perr
				}
				if !e.take(&it.ent, err, &it.h) {
					return false
				}
			}
			continue
		}
		// Every chunk is claimed and a helper is still at this one (its
		// thread may not even be running): done again here.
		for k := lo; k < hi; k++ {
			it := &b.items[k]
			if !e.line(sc, it.line, it.no, it.off, it.err) {
				return false
			}
		}
	}
	return true
}

// runBatches evaluates the rest of the list: while helpers parse and hash
// the next batch, this goroutine judges the current one in list order, so
// failures, counts and the replay are those of a sequential run.
func (e *evaluator) runBatches(rd *imalog.Reader, sc *lineScratch) {
	helpers := e.cfg.workers - 1
	var (
		wg   sync.WaitGroup
		live atomic.Int32
	)
	defer wg.Wait() // no helper outlives the round
	var cur *batch
	defer func() {
		if cur != nil {
			cur.drop()
		}
	}()
	next := func() *batch {
		b := getBatch()
		b.fill(rd, e.cfg)
		b.claimed.Add(int32(e.cfg.held))
		b.help(helpers, &e.hasher, &wg, &live)
		return b
	}
	cur = next()
	for {
		var upcoming *batch
		if !cur.last {
			upcoming = next()
		}
		ok := e.judge(cur, sc)
		cur.drop()
		cur = upcoming
		if !ok || cur == nil {
			return
		}
	}
}
