package archive

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
	"golang.org/x/sys/unix"
)

// LocalLog is the embedded transparency log: an append-only RFC 6962
// Merkle tree in a directory, with a checkpoint signed by the log's own
// Ed25519 note key after every append. Its proofs have the same shape as
// Rekor's, so one offline verifier (VerifyProof) checks both.
//
// Files: entries (4-byte big-endian length + entry, appended), hashes
// (golang.org/x/mod/sumdb/tlog stored hashes, 32 bytes each), checkpoint
// (the signed tree head, replaced atomically), log.key and log.vkey. The
// checkpoint is the commit point: on open, bytes beyond the tree it signs
// (a crash mid-append) are truncated. One process at a time (flock).
type LocalLog struct {
	mu      sync.Mutex
	dir     string
	lock    *os.File
	entries *os.File
	hashes  *os.File
	signer  note.Signer
	key     LogKey
	size    int64
	end     int64   // byte length of the committed entries
	offsets []int64 // byte offset of each entry in entries
	index   map[tlog.Hash]int64
}

// OpenLocalLog opens (creating if needed) the log in dir. origin names the
// log in its checkpoints; it is fixed when the log is created.
func OpenLocalLog(dir, origin string) (*LocalLog, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	l := &LocalLog{dir: dir, index: map[tlog.Hash]int64{}}
	var err error
	if l.lock, err = os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644); err != nil {
		return nil, err
	}
	if err := unix.Flock(int(l.lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		l.lock.Close()
		return nil, fmt.Errorf("transparency log %s is in use by another process: %w", dir, err)
	}
	if err := l.open(origin); err != nil {
		l.Close()
		return nil, fmt.Errorf("transparency log %s: %w", dir, err)
	}
	return l, nil
}

func (l *LocalLog) open(origin string) error {
	skeyPath, vkeyPath := filepath.Join(l.dir, "log.key"), filepath.Join(l.dir, "log.vkey")
	skey, err := os.ReadFile(skeyPath)
	if errors.Is(err, os.ErrNotExist) {
		s, v, err := note.GenerateKey(rand.Reader, strings.ReplaceAll(origin, " ", "_"))
		if err != nil {
			return err
		}
		if err := writeFileAtomic(vkeyPath, []byte(v+"\n"), 0o644); err != nil {
			return err
		}
		if err := writeFileAtomic(skeyPath, []byte(s+"\n"), 0o600); err != nil {
			return err
		}
		if err := writeFileAtomic(filepath.Join(l.dir, "origin"), []byte(origin+"\n"), 0o644); err != nil {
			return err
		}
		skey = []byte(s)
	} else if err != nil {
		return err
	}
	if l.signer, err = note.NewSigner(strings.TrimSpace(string(skey))); err != nil {
		return fmt.Errorf("log.key: %v", err)
	}
	vkey, err := os.ReadFile(vkeyPath)
	if err != nil {
		return err
	}
	ob, err := os.ReadFile(filepath.Join(l.dir, "origin"))
	if err != nil {
		return err
	}
	l.key = LogKey{Log: LogLocal, Origin: strings.TrimSpace(string(ob)), VKey: strings.TrimSpace(string(vkey))}
	verifier, err := note.NewVerifier(l.key.VKey)
	if err != nil {
		return fmt.Errorf("log.vkey: %v", err)
	}
	if cpb, err := os.ReadFile(filepath.Join(l.dir, "checkpoint")); err == nil {
		cp, err := OpenCheckpoint(cpb, l.key.Origin, verifier)
		if err != nil {
			return err
		}
		l.size = cp.Size
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if l.entries, err = os.OpenFile(filepath.Join(l.dir, "entries"), os.O_CREATE|os.O_RDWR, 0o644); err != nil {
		return err
	}
	if l.hashes, err = os.OpenFile(filepath.Join(l.dir, "hashes"), os.O_CREATE|os.O_RDWR, 0o644); err != nil {
		return err
	}
	// Index the committed entries and drop anything after them.
	var off int64
	var hdr [4]byte
	for i := int64(0); i < l.size; i++ {
		if _, err := l.entries.ReadAt(hdr[:], off); err != nil {
			return fmt.Errorf("entries: entry %d at offset %d: %v", i, off, err)
		}
		n := int64(binary.BigEndian.Uint32(hdr[:]))
		data := make([]byte, n)
		if _, err := l.entries.ReadAt(data, off+4); err != nil {
			return fmt.Errorf("entries: entry %d at offset %d: %v", i, off, err)
		}
		l.offsets = append(l.offsets, off)
		l.index[tlog.RecordHash(data)] = i
		off += 4 + n
	}
	l.end = off
	if err := l.entries.Truncate(off); err != nil {
		return err
	}
	if err := l.hashes.Truncate(tlog.StoredHashCount(l.size) * tlog.HashSize); err != nil {
		return err
	}
	if l.size > 0 {
		// The stored hashes must reproduce the signed root.
		root, err := tlog.TreeHash(l.size, l.hashReader())
		if err != nil {
			return err
		}
		cpb, _ := os.ReadFile(filepath.Join(l.dir, "checkpoint"))
		cp, _ := OpenCheckpoint(cpb, l.key.Origin, verifier)
		if string(root[:]) != string(cp.Root) {
			return errors.New("stored hashes do not reproduce the checkpoint root")
		}
	}
	return nil
}

// Key returns the log's verification key for offline checks.
func (l *LocalLog) Key() LogKey { return l.key }

// Name implements TransparencyLog.
func (l *LocalLog) Name() string { return LogLocal }

// Size is the number of committed entries.
func (l *LocalLog) Size() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.size
}

// Checkpoint returns the current signed checkpoint.
func (l *LocalLog) Checkpoint() ([]byte, error) {
	return os.ReadFile(filepath.Join(l.dir, "checkpoint"))
}

func (l *LocalLog) hashReader() tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			if _, err := l.hashes.ReadAt(out[i][:], x*tlog.HashSize); err != nil {
				return nil, fmt.Errorf("hashes: index %d: %v", x, err)
			}
		}
		return out, nil
	})
}

// Submit implements TransparencyLog: it appends rec's entry unless the log
// already holds it, and returns the inclusion proof against the current
// checkpoint.
func (l *LocalLog) Submit(ctx context.Context, rec *Record, _ []byte) (*Proof, error) {
	ps, err := l.SubmitBatch(ctx, []*Record{rec})
	if err != nil {
		return nil, err
	}
	return ps[0], nil
}

// SubmitBatch appends several records under one checkpoint.
func (l *LocalLog) SubmitBatch(ctx context.Context, recs []*Record) ([]*Proof, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	idx := make([]int64, len(recs))
	datas := make([][]byte, len(recs))
	added := false
	size, hashEnd := l.size, tlog.StoredHashCount(l.size)*tlog.HashSize
	// Writes go after the committed bytes, over whatever a failed append
	// left behind.
	end := l.end
	var newOffsets []int64
	newIndex := map[tlog.Hash]int64{}
	for i, rec := range recs {
		data := LocalEntry(rec)
		datas[i] = data
		h := tlog.RecordHash(data)
		if j, ok := l.index[h]; ok {
			idx[i] = j
			continue
		}
		if j, ok := newIndex[h]; ok {
			idx[i] = j
			continue
		}
		hs, err := tlog.StoredHashes(size, data, l.hashReader())
		if err != nil {
			return nil, err
		}
		buf := make([]byte, 0, len(hs)*tlog.HashSize)
		for _, h := range hs {
			buf = append(buf, h[:]...)
		}
		if _, err := l.hashes.WriteAt(buf, hashEnd); err != nil {
			return nil, err
		}
		hashEnd += int64(len(buf))
		rec := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
		if _, err := l.entries.WriteAt(append(rec, data...), end); err != nil {
			return nil, err
		}
		newOffsets = append(newOffsets, end)
		end += 4 + int64(len(data))
		newIndex[h] = size
		idx[i] = size
		size++
		added = true
	}
	if added {
		if err := l.entries.Sync(); err != nil {
			return nil, err
		}
		if err := l.hashes.Sync(); err != nil {
			return nil, err
		}
		root, err := tlog.TreeHash(size, l.hashReader())
		if err != nil {
			return nil, err
		}
		text := l.key.Origin + "\n" + strconv.FormatInt(size, 10) + "\n" + base64.StdEncoding.EncodeToString(root[:]) + "\n"
		signed, err := note.Sign(&note.Note{Text: text}, l.signer)
		if err != nil {
			return nil, err
		}
		// The checkpoint rename is the commit point.
		if err := writeFileAtomic(filepath.Join(l.dir, "checkpoint"), signed, 0o644); err != nil {
			return nil, err
		}
		l.size, l.end = size, end
		l.offsets = append(l.offsets, newOffsets...)
		for h, j := range newIndex {
			l.index[h] = j
		}
	}
	cp, err := os.ReadFile(filepath.Join(l.dir, "checkpoint"))
	if err != nil {
		return nil, err
	}
	root, err := tlog.TreeHash(l.size, l.hashReader())
	if err != nil {
		return nil, err
	}
	out := make([]*Proof, len(recs))
	for i := range recs {
		rp, err := tlog.ProveRecord(l.size, idx[i], l.hashReader())
		if err != nil {
			return nil, err
		}
		hs := make([][]byte, len(rp))
		for k := range rp {
			hs[k] = append([]byte(nil), rp[k][:]...)
		}
		out[i] = &Proof{Log: LogLocal, Entry: datas[i], LogIndex: idx[i], TreeIndex: idx[i], TreeSize: l.size,
			RootHash: append([]byte(nil), root[:]...), Hashes: hs, Checkpoint: string(cp)}
	}
	return out, nil
}

// Close releases the log.
func (l *LocalLog) Close() error {
	for _, f := range []*os.File{l.entries, l.hashes} {
		if f != nil {
			f.Close()
		}
	}
	if l.lock != nil {
		unix.Flock(int(l.lock.Fd()), unix.LOCK_UN)
		return l.lock.Close()
	}
	return nil
}

// writeFileAtomic writes via a temporary file, fsync and rename.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
