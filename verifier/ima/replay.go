package ima

import (
	"bytes"
	"crypto/sha1" //nolint:gosec // IMA's template hashes and SHA-1 PCR banks.
	"crypto/sha256"
	"crypto/sha512"

	"github.com/zest-attest/zest/digests"
)

// bank is one quoted PCR bank being replayed.
type bank struct {
	alg     digests.Algorithm
	quoted  []byte
	running [64]byte
	ff      [64]byte // what a violation record extends
	scratch [128]byte
}

func newBank(alg digests.Algorithm, quoted []byte, padded bool) bank {
	b := bank{alg: alg, quoted: quoted}
	n := alg.Size()
	if padded {
		n = 20 // pre-5.8: 0xFF x 20, zero-padded (ima.md §6)
	}
	for i := 0; i < n; i++ {
		b.ff[i] = 0xff
	}
	return b
}

func (b *bank) value() []byte { return b.running[:b.alg.Size()] }

func (b *bank) matches() bool { return bytes.Equal(b.value(), b.quoted) }

// extend is the TPM's PCR_new = H(PCR_old || v), v of the bank's size.
func (b *bank) extend(v []byte) {
	n := b.alg.Size()
	copy(b.scratch[:n], b.running[:n])
	copy(b.scratch[n:2*n], v)
	sumInto(b.alg, b.running[:0], b.scratch[:2*n])
}

// sumInto writes H_alg(data) to dst[:size] (dst must have room for 64 bytes)
// without allocating.
func sumInto(alg digests.Algorithm, dst, data []byte) []byte {
	dst = dst[:64]
	switch alg {
	case digests.SHA1:
		s := sha1.Sum(data) //nolint:gosec
		return dst[:copy(dst, s[:])]
	case digests.SHA256:
		s := sha256.Sum256(data)
		return dst[:copy(dst, s[:])]
	case digests.SHA384:
		s := sha512.Sum384(data)
		return dst[:copy(dst, s[:])]
	case digests.SHA512:
		s := sha512.Sum512(data)
		return dst[:copy(dst, s[:])]
	}
	return nil
}

func replayable(a digests.Algorithm) bool {
	switch a {
	case digests.SHA1, digests.SHA256, digests.SHA384, digests.SHA512:
		return true
	}
	return false
}
