package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
)

// An audit bundle is a zstd-compressed tar holding everything needed to
// replay a window offline:
//
//	manifest.json      format, agent, window, counts
//	records.jsonl      one stored record per line with its proofs
//	blobs/sha256-<hex> AKs, IMA lines, UEFI logs, policies
//	keys/verifiers.pem verifier public keys (record signers)
//	keys/logs.json     transparency log keys ([]LogKey)
//
// The keys inside a bundle are a convenience: an auditor pins the keys
// they trust and passes those to Audit.
const BundleFormat = "zest.archive.bundle/v1"

// Limits on what a bundle may hold, checked before allocating.
const (
	maxBundleFile  = 256 << 20
	maxBundleTotal = 8 << 30
)

// Manifest describes a bundle.
type Manifest struct {
	Format  string    `json:"format"`
	AgentID string    `json:"agent_id"`
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	Created time.Time `json:"created"`
	Records int       `json:"records"`
	Blobs   int       `json:"blobs"`
}

type bundleRecord struct {
	ID     int64                      `json:"id"`
	Record Record                     `json:"record"`
	Proofs map[string]json.RawMessage `json:"proofs,omitempty"`
}

// Export writes a bundle of agent's window [from, to): the rounds, the
// rounds of the boot in progress at from (replay needs them for the IMA
// state), the registrations, every blob they reference, their proofs, and
// keys and logs.
func Export(ctx context.Context, src Source, agent string, from, to time.Time, keys Keyring, logs []LogKey, w io.Writer) (*Manifest, error) {
	var recs []bundleRecord
	seen := map[int64]bool{}
	blobs := map[Ref][]byte{}
	opts := ReplayOptions{
		Keys: keys, Logs: logs, AllowUnproven: true,
		OnRecord: func(st *Stored) {
			if seen[st.ID] {
				return
			}
			seen[st.ID] = true
			br := bundleRecord{ID: st.ID, Record: st.Record, Proofs: map[string]json.RawMessage{}}
			for k, v := range st.Proofs {
				br.Proofs[k] = json.RawMessage(v)
			}
			recs = append(recs, br)
		},
		OnBlob: func(r Ref, b []byte) { blobs[r] = b },
	}
	if len(keys) == 0 {
		return nil, errors.New("export: no verifier keys")
	}
	if _, err := Replay(ctx, src, agent, from, to, opts); err != nil {
		return nil, err
	}
	m := &Manifest{Format: BundleFormat, AgentID: agent, From: from.UTC(), To: to.UTC(), Created: time.Now().UTC(), Records: len(recs), Blobs: len(blobs)}
	zw, err := zstd.NewWriter(w)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(zw)
	add := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: m.Created, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	mb, _ := json.MarshalIndent(m, "", "  ")
	if err := add("manifest.json", append(mb, '\n')); err != nil {
		return nil, err
	}
	var lines bytes.Buffer
	enc := json.NewEncoder(&lines)
	for _, r := range recs {
		if err := enc.Encode(r); err != nil {
			return nil, err
		}
	}
	if err := add("records.jsonl", lines.Bytes()); err != nil {
		return nil, err
	}
	refs := make([]Ref, 0, len(blobs))
	for r := range blobs {
		refs = append(refs, r)
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i] < refs[j] })
	for _, r := range refs {
		if err := add("blobs/"+strings.Replace(string(r), ":", "-", 1), blobs[r]); err != nil {
			return nil, err
		}
	}
	var pems bytes.Buffer
	ids := make([]string, 0, len(keys))
	for id := range keys {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		p, err := keys.PublicPEM(id)
		if err != nil {
			return nil, err
		}
		pems.Write(p)
	}
	if err := add("keys/verifiers.pem", pems.Bytes()); err != nil {
		return nil, err
	}
	lb, _ := json.MarshalIndent(logs, "", "  ")
	if err := add("keys/logs.json", append(lb, '\n')); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return m, zw.Close()
}

// Bundle is an audit bundle read into memory; it is a Source.
type Bundle struct {
	Manifest Manifest
	// Keys and Logs are the keys the bundle carries (not trusted by
	// themselves).
	Keys    Keyring
	Logs    []LogKey
	records []*Stored
	blobs   map[Ref][]byte
}

// ReadBundle reads and checks the structure of a bundle.
func ReadBundle(r io.Reader) (*Bundle, error) {
	zr, err := zstd.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	b := &Bundle{Keys: Keyring{}, blobs: map[Ref][]byte{}}
	var total int64
	var haveManifest bool
	for {
		h, err := tr.Next()
		if err == io.EOF {
			// Read to the end of the zstd frame so its checksum is checked.
			if _, err := io.Copy(io.Discard, zr); err != nil {
				return nil, fmt.Errorf("bundle: %w", err)
			}
			break
		}
		if err != nil {
			return nil, fmt.Errorf("bundle: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("bundle: %s: not a regular file", h.Name)
		}
		if h.Size < 0 || h.Size > maxBundleFile || total+h.Size > maxBundleTotal {
			return nil, fmt.Errorf("bundle: %s: size %d over the limit", h.Name, h.Size)
		}
		total += h.Size
		data := make([]byte, h.Size)
		if _, err := io.ReadFull(tr, data); err != nil {
			return nil, fmt.Errorf("bundle: %s: %w", h.Name, err)
		}
		switch {
		case h.Name == "manifest.json":
			if err := json.Unmarshal(data, &b.Manifest); err != nil {
				return nil, fmt.Errorf("bundle: manifest.json: %w", err)
			}
			if b.Manifest.Format != BundleFormat {
				return nil, fmt.Errorf("bundle: format %q, want %q", b.Manifest.Format, BundleFormat)
			}
			haveManifest = true
		case h.Name == "records.jsonl":
			for i, line := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
				if len(line) == 0 {
					continue
				}
				var br bundleRecord
				if err := json.Unmarshal(line, &br); err != nil {
					return nil, fmt.Errorf("bundle: records.jsonl line %d: %w", i+1, err)
				}
				st := &Stored{ID: br.ID, Record: br.Record, Proofs: map[string][]byte{}}
				st.Record.Time = st.Record.Time.UTC()
				for k, v := range br.Proofs {
					st.Proofs[k] = v
				}
				b.records = append(b.records, st)
			}
		case strings.HasPrefix(h.Name, "blobs/"):
			ref := Ref(strings.Replace(strings.TrimPrefix(h.Name, "blobs/"), "-", ":", 1))
			if ref == "" || !ref.Valid() {
				return nil, fmt.Errorf("bundle: %s: not a blob name", h.Name)
			}
			b.blobs[ref] = data // hash checked when replay reads it
		case h.Name == "keys/verifiers.pem":
			if len(bytes.TrimSpace(data)) > 0 {
				if _, err := b.Keys.Add(data); err != nil {
					return nil, fmt.Errorf("bundle: %s: %w", h.Name, err)
				}
			}
		case h.Name == "keys/logs.json":
			if err := json.Unmarshal(data, &b.Logs); err != nil {
				return nil, fmt.Errorf("bundle: %s: %w", h.Name, err)
			}
		default:
			return nil, fmt.Errorf("bundle: unexpected file %s", h.Name)
		}
	}
	if !haveManifest {
		return nil, errors.New("bundle: manifest.json missing")
	}
	sort.SliceStable(b.records, func(i, j int) bool {
		ri, rj := b.records[i], b.records[j]
		if !ri.Record.Time.Equal(rj.Record.Time) {
			return ri.Record.Time.Before(rj.Record.Time)
		}
		if ri.Record.Seq != rj.Record.Seq {
			return ri.Record.Seq < rj.Record.Seq
		}
		return ri.ID < rj.ID
	})
	return b, nil
}

// Scan implements Source.
func (b *Bundle) Scan(ctx context.Context, q Query, fn func(*Stored) error) error {
	for _, st := range b.records {
		r := &st.Record
		if (q.Kind != "" && r.Kind != q.Kind) || (q.AgentID != "" && r.AgentID != q.AgentID) ||
			(!q.From.IsZero() && r.Time.Before(q.From)) || (!q.To.IsZero() && !r.Time.Before(q.To)) {
			continue
		}
		if err := fn(st); err != nil {
			return err
		}
	}
	return nil
}

// Blob implements Source.
func (b *Bundle) Blob(_ context.Context, ref Ref) ([]byte, error) {
	d, ok := b.blobs[ref]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", ref, ErrNotFound)
	}
	return d, nil
}
