package archive

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/go-openapi/strfmt"
	"github.com/sigstore/rekor/pkg/client"
	genclient "github.com/sigstore/rekor/pkg/generated/client"
	"github.com/sigstore/rekor/pkg/generated/client/entries"
	"github.com/sigstore/rekor/pkg/generated/client/pubkey"
	"github.com/sigstore/rekor/pkg/generated/client/tlog"
	"github.com/sigstore/rekor/pkg/generated/models"
)

// RekorLog enters records in a Rekor v1 log as hashedrekord entries: the
// SHA-256 of the record's canonical body, the verifier's signature and its
// public key. Rekor checks the signature before accepting, so the log
// vouches that the verifier signed exactly this record. Only ECDSA P-256
// signers can be used (Rekor verifies Ed25519 hashedrekords as Ed25519ph,
// which zest does not produce).
type RekorLog struct {
	rc *genclient.Rekor
}

// NewRekorLog returns a client for the Rekor at url (http or https). The
// outbox does the retrying, so the client does not.
func NewRekorLog(url string) (*RekorLog, error) {
	rc, err := client.GetRekorClient(url, client.WithRetryCount(0), client.WithUserAgent("zest-archive"))
	if err != nil {
		return nil, err
	}
	return &RekorLog{rc: rc}, nil
}

// Name implements TransparencyLog.
func (r *RekorLog) Name() string { return LogRekor }

// Key fetches the log's public key and origin, to be pinned by the
// operator for offline verification (trust on first use: compare the key
// with the one the Rekor operator publishes).
func (r *RekorLog) Key(ctx context.Context) (LogKey, error) {
	pk, err := r.rc.Pubkey.GetPublicKey(pubkey.NewGetPublicKeyParamsWithContext(ctx))
	if err != nil {
		return LogKey{}, fmt.Errorf("rekor public key: %w", err)
	}
	info, err := r.rc.Tlog.GetLogInfo(tlog.NewGetLogInfoParamsWithContext(ctx))
	if err != nil {
		return LogKey{}, fmt.Errorf("rekor log info: %w", err)
	}
	sth := ""
	if info.Payload.SignedTreeHead != nil {
		sth = *info.Payload.SignedTreeHead
	}
	origin, _, _ := strings.Cut(sth, "\n")
	return LogKey{Log: LogRekor, Origin: origin, PublicPEM: pk.Payload}, nil
}

// Submit implements TransparencyLog. A record Rekor already holds (409
// Conflict: same digest, signature and key) is fetched instead of logged
// again.
func (r *RekorLog) Submit(ctx context.Context, rec *Record, signerPEM []byte) (*Proof, error) {
	d := rec.Digest()
	entry := &models.Hashedrekord{
		APIVersion: ptr("0.0.1"),
		Spec: models.HashedrekordV001Schema{
			Data: &models.HashedrekordV001SchemaData{Hash: &models.HashedrekordV001SchemaDataHash{
				Algorithm: ptr(models.HashedrekordV001SchemaDataHashAlgorithmSha256), Value: ptr(hex.EncodeToString(d[:]))}},
			Signature: &models.HashedrekordV001SchemaSignature{
				Content:   strfmt.Base64(rec.Sig),
				PublicKey: &models.HashedrekordV001SchemaSignaturePublicKey{Content: strfmt.Base64(signerPEM)},
			},
		},
	}
	resp, err := r.rc.Entries.CreateLogEntry(entries.NewCreateLogEntryParamsWithContext(ctx).WithProposedEntry(entry))
	var payload models.LogEntry
	var conflict *entries.CreateLogEntryConflict
	switch {
	case errors.As(err, &conflict):
		uuid := path.Base(conflict.Location.String())
		got, err := r.rc.Entries.GetLogEntryByUUID(entries.NewGetLogEntryByUUIDParamsWithContext(ctx).WithEntryUUID(uuid))
		if err != nil {
			return nil, fmt.Errorf("rekor: fetching existing entry %s: %w", uuid, err)
		}
		payload = got.Payload
	case err != nil:
		return nil, fmt.Errorf("rekor: %w", err)
	default:
		payload = resp.Payload
	}
	p, err := proofFromEntry(payload)
	if err != nil {
		return nil, err
	}
	if p.Checkpoint == "" {
		// Not yet sequenced: ask again by UUID for the proof.
		got, err := r.rc.Entries.GetLogEntryByUUID(entries.NewGetLogEntryByUUIDParamsWithContext(ctx).WithEntryUUID(p.UUID))
		if err != nil {
			return nil, fmt.Errorf("rekor: entry %s: %w", p.UUID, err)
		}
		if p, err = proofFromEntry(got.Payload); err != nil {
			return nil, err
		}
		if p.Checkpoint == "" {
			return nil, fmt.Errorf("rekor: entry %s has no inclusion proof yet", p.UUID)
		}
	}
	return p, nil
}

func proofFromEntry(le models.LogEntry) (*Proof, error) {
	if len(le) != 1 {
		return nil, fmt.Errorf("rekor: response holds %d entries, want 1", len(le))
	}
	for uuid, e := range le {
		body, ok := e.Body.(string)
		if !ok {
			return nil, errors.New("rekor: entry body is not a string")
		}
		raw, err := base64.StdEncoding.DecodeString(body)
		if err != nil {
			return nil, fmt.Errorf("rekor: entry body: %w", err)
		}
		if e.IntegratedTime == nil || e.LogID == nil || e.LogIndex == nil {
			return nil, errors.New("rekor: entry lacks integratedTime, logID or logIndex")
		}
		p := &Proof{Log: LogRekor, Entry: raw, UUID: uuid, LogIndex: *e.LogIndex, IntegratedTime: *e.IntegratedTime, LogID: *e.LogID}
		if v := e.Verification; v != nil {
			p.SET = v.SignedEntryTimestamp
			if ip := v.InclusionProof; ip != nil && ip.Checkpoint != nil && ip.LogIndex != nil && ip.TreeSize != nil && ip.RootHash != nil {
				p.Checkpoint, p.TreeIndex, p.TreeSize = *ip.Checkpoint, *ip.LogIndex, *ip.TreeSize
				if p.RootHash, err = hex.DecodeString(*ip.RootHash); err != nil {
					return nil, fmt.Errorf("rekor: root hash: %w", err)
				}
				for _, h := range ip.Hashes {
					b, err := hex.DecodeString(h)
					if err != nil {
						return nil, fmt.Errorf("rekor: proof hash: %w", err)
					}
					p.Hashes = append(p.Hashes, b)
				}
			}
		}
		leaf := sha256.Sum256(append([]byte{0}, raw...))
		if !strings.HasSuffix(uuid, hex.EncodeToString(leaf[:])) {
			return nil, fmt.Errorf("rekor: entry id %s does not end in its leaf hash", uuid)
		}
		return p, nil
	}
	panic("unreachable")
}

func ptr[T any](v T) *T { return &v }
