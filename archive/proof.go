package archive

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// Log names: the outbox and proofs tables key rows by them.
const (
	LogLocal = "local"
	LogRekor = "rekor"
)

// Proof is what a transparency log returned for a record, kept beside it so
// inclusion can be checked offline: the logged entry bytes, the RFC 6962
// inclusion proof, and the signed checkpoint the proof leads to. Rekor
// entries also carry the UUID, integrated time and signed entry timestamp.
type Proof struct {
	Log string `json:"log"`
	// Entry is the exact leaf data (local: a zest entry; Rekor: the
	// canonical hashedrekord body).
	Entry []byte `json:"entry"`
	// LogIndex is the entry's index as the log reports it (Rekor: virtual
	// across shards); TreeIndex is its index in the tree the proof is for.
	LogIndex   int64    `json:"log_index"`
	TreeIndex  int64    `json:"tree_index"`
	TreeSize   int64    `json:"tree_size"`
	RootHash   []byte   `json:"root_hash"`
	Hashes     [][]byte `json:"hashes"`
	Checkpoint string   `json:"checkpoint"`

	UUID           string `json:"uuid,omitempty"`
	IntegratedTime int64  `json:"integrated_time,omitempty"`
	LogID          string `json:"log_id,omitempty"`
	SET            []byte `json:"set,omitempty"`
}

// LogKey is a transparency log trusted for offline verification.
type LogKey struct {
	// Log is LogLocal or LogRekor.
	Log string `json:"log"`
	// Origin is the first checkpoint line the log must use.
	Origin string `json:"origin"`
	// VKey is a sumdb note verifier key (local log).
	VKey string `json:"vkey,omitempty"`
	// PublicPEM is the log's PEM public key (Rekor).
	PublicPEM string `json:"public_pem,omitempty"`
}

// ErrProof is wrapped by every proof verification failure.
var ErrProof = errors.New("transparency proof does not verify")

// localEntry is what the embedded log stores per record: the record's
// digest and signature, so the log commits to exactly what was signed.
type localEntry struct {
	Type   string `json:"type"`
	Digest string `json:"digest"`
	KeyID  string `json:"key_id"`
	Sig    []byte `json:"sig"`
}

const typeLocalEntry = "zest.archive.log-entry/v1"

// LocalEntry returns the bytes the embedded log stores for rec: the
// canonical JSON of a localEntry, written directly (its members in
// canonical order; replay builds it for every record).
func LocalEntry(rec *Record) []byte {
	if !utf8.ValidString(rec.KeyID) {
		b, err := localEntrySlow(rec)
		if err != nil {
			panic(err) // fixed shape, cannot fail
		}
		return b
	}
	d := rec.Digest()
	var b bytes.Buffer
	b.Grow(160 + len(rec.KeyID) + base64.StdEncoding.EncodedLen(len(rec.Sig)))
	b.WriteString(`{"digest":"sha256:`)
	b.WriteString(hex.EncodeToString(d[:]))
	b.WriteString(`","key_id":`)
	_ = canonString(&b, rec.KeyID, 0) // valid UTF-8: cannot fail
	b.WriteString(`,"sig":"`)
	b.WriteString(base64.StdEncoding.EncodeToString(rec.Sig))
	b.WriteString(`","type":"` + typeLocalEntry + `"}`)
	return b.Bytes()
}

// localEntrySlow is LocalEntry through encoding/json (tests compare).
func localEntrySlow(rec *Record) ([]byte, error) {
	d := rec.Digest()
	return MarshalCanonical(localEntry{Type: typeLocalEntry, Digest: "sha256:" + hex.EncodeToString(d[:]), KeyID: rec.KeyID, Sig: rec.Sig})
}

// VerifyProof checks offline that p proves rec was entered in a log of
// keys: the entry commits to rec's digest and signature, the inclusion
// proof leads from the entry's leaf hash to the checkpoint root, the
// checkpoint is signed by the log with the expected origin and size, and
// for Rekor the signed entry timestamp verifies.
func VerifyProof(p *Proof, rec *Record, keys []LogKey) error {
	return verifyProofCached(p, rec, keys, nil)
}

// verifyProofCached remembers verified checkpoints in cache (shared by the
// many records a replay checks against the same tree head).
func verifyProofCached(p *Proof, rec *Record, keys []LogKey, cache *sync.Map) error {
	if err := verifyProof(p, rec, keys, cache); err != nil {
		return fmt.Errorf("%w: %s log: %v", ErrProof, p.Log, err)
	}
	return nil
}

func verifyProof(p *Proof, rec *Record, keys []LogKey, cache *sync.Map) error {
	var key *LogKey
	for i := range keys {
		if keys[i].Log == p.Log {
			key = &keys[i]
			break
		}
	}
	if key == nil {
		return fmt.Errorf("no trusted key for log %q", p.Log)
	}
	d := rec.Digest()
	var v note.Verifier
	var err error
	switch p.Log {
	case LogLocal:
		if string(p.Entry) != string(LocalEntry(rec)) {
			return errors.New("logged entry does not match the record's digest and signature")
		}
		var lv *logVerifier
		if lv, err = cachedLogVerifier(key, cache); err == nil {
			v = lv.v
		}
	case LogRekor:
		if err := checkHashedRekord(p.Entry, d[:], rec.Sig); err != nil {
			return err
		}
		var lv *logVerifier
		if lv, err = cachedLogVerifier(key, cache); err == nil {
			v = lv.v
			err = verifySET(p, lv.pub)
		}
	default:
		return fmt.Errorf("unknown log %q", p.Log)
	}
	if err != nil {
		return err
	}
	leaf := rfc6962.DefaultHasher.HashLeaf(p.Entry)
	if p.UUID != "" && !strings.HasSuffix(p.UUID, hex.EncodeToString(leaf)) {
		return fmt.Errorf("entry UUID %s is not its leaf hash", p.UUID)
	}
	if p.TreeIndex < 0 || p.TreeSize <= 0 {
		return fmt.Errorf("index %d / size %d out of range", p.TreeIndex, p.TreeSize)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(p.TreeIndex), uint64(p.TreeSize), leaf, p.Hashes, p.RootHash); err != nil {
		return fmt.Errorf("inclusion of leaf %d in tree of size %d: %v", p.TreeIndex, p.TreeSize, err)
	}
	ck := key.Log + "\x00" + key.Origin + "\x00" + key.VKey + key.PublicPEM + "\x00" + p.Checkpoint
	var cp *Checkpoint
	if cache != nil {
		if c, ok := cache.Load(ck); ok {
			cp = c.(*Checkpoint)
		}
	}
	if cp == nil {
		if cp, err = OpenCheckpoint([]byte(p.Checkpoint), key.Origin, v); err != nil {
			return err
		}
		if cache != nil {
			cache.Store(ck, cp)
		}
	}
	if cp.Size != p.TreeSize || !bytes.Equal(cp.Root, p.RootHash) {
		return fmt.Errorf("checkpoint (size %d) does not match the proof's tree (size %d)", cp.Size, p.TreeSize)
	}
	return nil
}

// logVerifier is a log key parsed once per replay.
type logVerifier struct {
	pub *ecdsa.PublicKey // Rekor
	v   note.Verifier
}

func cachedLogVerifier(key *LogKey, cache *sync.Map) (*logVerifier, error) {
	ck := "key\x00" + key.Log + "\x00" + key.VKey + "\x00" + key.PublicPEM
	if cache != nil {
		if c, ok := cache.Load(ck); ok {
			return c.(*logVerifier), nil
		}
	}
	lv := &logVerifier{}
	var err error
	switch key.Log {
	case LogLocal:
		lv.v, err = note.NewVerifier(key.VKey)
	case LogRekor:
		lv.pub, lv.v, err = rekorVerifier(key)
	default:
		err = fmt.Errorf("unknown log %q", key.Log)
	}
	if err != nil {
		return nil, err
	}
	if cache != nil {
		cache.Store(ck, lv)
	}
	return lv, nil
}

// Checkpoint is a verified tree head.
type Checkpoint struct {
	Origin string
	Size   int64
	Root   []byte
}

// OpenCheckpoint verifies a signed checkpoint note with v and parses it
// (C2SP tlog-checkpoint; extension lines are tolerated).
func OpenCheckpoint(msg []byte, origin string, v note.Verifier) (*Checkpoint, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %v", err)
	}
	lines := strings.SplitN(n.Text, "\n", 4)
	if len(lines) < 4 {
		return nil, errors.New("checkpoint: fewer than three lines")
	}
	if lines[0] != origin {
		return nil, fmt.Errorf("checkpoint origin %q, want %q", lines[0], origin)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 {
		return nil, fmt.Errorf("checkpoint size %q", lines[1])
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != 32 {
		return nil, fmt.Errorf("checkpoint root %q", lines[2])
	}
	return &Checkpoint{Origin: origin, Size: size, Root: root}, nil
}

// ecdsaNoteVerifier verifies Rekor's checkpoint signatures: key hint
// SHA-256(PKIX DER)[:4], ASN.1 ECDSA over SHA-256 of the note text.
type ecdsaNoteVerifier struct {
	name string
	hash uint32
	pub  *ecdsa.PublicKey
}

func (v *ecdsaNoteVerifier) Name() string    { return v.name }
func (v *ecdsaNoteVerifier) KeyHash() uint32 { return v.hash }
func (v *ecdsaNoteVerifier) Verify(msg, sig []byte) bool {
	d := sha256.Sum256(msg)
	return ecdsa.VerifyASN1(v.pub, d[:], sig)
}

func rekorVerifier(key *LogKey) (*ecdsa.PublicKey, note.Verifier, error) {
	blk, _ := pem.Decode([]byte(key.PublicPEM))
	if blk == nil {
		return nil, nil, errors.New("rekor public key: no PEM block")
	}
	pk, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("rekor public key: %v", err)
	}
	pub, ok := pk.(*ecdsa.PublicKey)
	if !ok {
		return nil, nil, fmt.Errorf("rekor public key is %T, only ECDSA is supported", pk)
	}
	sum := sha256.Sum256(blk.Bytes)
	// The signature line names the host: the origin up to " - <tree id>".
	name, _, _ := strings.Cut(key.Origin, " - ")
	return pub, &ecdsaNoteVerifier{name: name, hash: binary.BigEndian.Uint32(sum[:4]), pub: pub}, nil
}

// verifySET checks Rekor's signed entry timestamp over the RFC 8785 form
// of {body, integratedTime, logID, logIndex} and that logID names the key.
func verifySET(p *Proof, pub *ecdsa.PublicKey) error {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return err
	}
	id := sha256.Sum256(der)
	if p.LogID != hex.EncodeToString(id[:]) {
		return fmt.Errorf("log id %s is not the trusted key's", p.LogID)
	}
	payload, err := MarshalCanonical(map[string]any{
		"body":           base64.StdEncoding.EncodeToString(p.Entry),
		"integratedTime": p.IntegratedTime,
		"logID":          p.LogID,
		"logIndex":       p.LogIndex,
	})
	if err != nil {
		return err
	}
	d := sha256.Sum256(payload)
	if !ecdsa.VerifyASN1(pub, d[:], p.SET) {
		return errors.New("signed entry timestamp does not verify")
	}
	return nil
}

// hashedRekordBody is the canonical hashedrekord v0.0.1 body.
type hashedRekordBody struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Spec       struct {
		Data struct {
			Hash struct {
				Algorithm string `json:"algorithm"`
				Value     string `json:"value"`
			} `json:"hash"`
		} `json:"data"`
		Signature struct {
			Content   []byte `json:"content"`
			PublicKey struct {
				Content []byte `json:"content"`
			} `json:"publicKey"`
		} `json:"signature"`
	} `json:"spec"`
}

func checkHashedRekord(body, digest, sig []byte) error {
	var b hashedRekordBody
	if err := json.Unmarshal(body, &b); err != nil {
		return fmt.Errorf("rekor entry body: %v", err)
	}
	if b.Kind != "hashedrekord" || b.Spec.Data.Hash.Algorithm != "sha256" {
		return fmt.Errorf("rekor entry is %s/%s, want hashedrekord/sha256", b.Kind, b.Spec.Data.Hash.Algorithm)
	}
	if b.Spec.Data.Hash.Value != hex.EncodeToString(digest) {
		return errors.New("rekor entry's digest is not the record's")
	}
	if !bytes.Equal(b.Spec.Signature.Content, sig) {
		return errors.New("rekor entry's signature is not the record's")
	}
	return nil
}
