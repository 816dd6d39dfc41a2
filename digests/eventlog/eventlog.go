// Package eventlog parses, replays and verifies the TCG PC Client UEFI
// measured-boot event log (Linux's binary_bios_measurements), in both the
// crypto-agile (TCG_PCR_EVENT2) and the legacy SHA-1 (TCG_PCR_EVENT) format.
//
// Parse returns an untrusted *Log. Only Verify, which replays the log against
// PCR values from a signature-checked quote, hands back events a policy may
// use, as a distinct *Verified type holding only events of PCRs that matched.
// Typed decoders (CRTMVersion, ParseVariable, ParseImageLoad, ...) decode one
// event's data each and fail per event, never for the whole log.
//
// The package never prints, logs or exits.
package eventlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/zest-attest/zest/digests"
)

// MaxEventSize caps EventSize of a single entry (16 MiB).
const MaxEventSize = 16 << 20

// NoPCR is Event.PCR for an EV_NO_ACTION entry logged against PCRIndex
// 0xFFFFFFFF (Windows does this for informational entries).
const NoPCR = -1

// maxPCR is the highest PCR index a log entry may name (TPM 2.0 PC Client
// platforms have 24 PCRs).
const maxPCR = 23

// Sentinel errors wrapped by *ParseError, for errors.Is.
var (
	// ErrEmpty means the input holds no bytes at all.
	ErrEmpty = errors.New("empty event log")
	// ErrTruncated means a length field points past the end of the input.
	ErrTruncated = errors.New("truncated")
	// ErrMalformed means a field holds a value the format does not allow.
	ErrMalformed = errors.New("malformed")
)

// ParseError names the entry (0-based position in the log, the Spec ID
// entry being 0) and the byte offset of the field that was wrong.
type ParseError struct {
	Index  int    // entry index, 0-based
	Offset int    // byte offset of the offending field in the input
	Field  string // e.g. "EventSize", "digest count"
	Msg    string
	Err    error // ErrTruncated, ErrMalformed or ErrEmpty
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("eventlog: event %d at offset %d: %s: %s", e.Index, e.Offset, e.Field, e.Msg)
}

func (e *ParseError) Unwrap() error { return e.Err }

// Format says how the entries after the first one are encoded.
type Format int

const (
	// FormatSHA1 is a log of TCG_PCR_EVENT entries (TPM 1.2 style, SHA-1 only).
	FormatSHA1 Format = iota + 1
	// FormatCryptoAgile is a log whose first entry is a "Spec ID Event03" and
	// whose other entries are TCG_PCR_EVENT2.
	FormatCryptoAgile
)

func (f Format) String() string {
	switch f {
	case FormatSHA1:
		return "sha1"
	case FormatCryptoAgile:
		return "crypto-agile"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// AlgID is a TPM_ALG_ID.
type AlgID uint16

// TPM_ALG_IDs of the hash algorithms the log may carry.
const (
	AlgSHA1   AlgID = 0x0004
	AlgSHA256 AlgID = 0x000B
	AlgSHA384 AlgID = 0x000C
	AlgSHA512 AlgID = 0x000D
	AlgSM3    AlgID = 0x0012
)

// Algorithm maps the id to zest's name, or "" when zest does not know it.
func (a AlgID) Algorithm() digests.Algorithm {
	switch a {
	case AlgSHA1:
		return digests.SHA1
	case AlgSHA256:
		return digests.SHA256
	case AlgSHA384:
		return digests.SHA384
	case AlgSHA512:
		return digests.SHA512
	case AlgSM3:
		return digests.SM3
	}
	return ""
}

// Bank is one row of the Spec ID event's digestSizes table.
type Bank struct {
	ID        AlgID
	Algorithm digests.Algorithm // "" for an algorithm zest does not know
	Size      int
}

// SpecID is the decoded TCG_EfiSpecIDEvent.
type SpecID struct {
	Signature     string // "Spec ID Event03"
	PlatformClass uint32
	VersionMinor  uint8
	VersionMajor  uint8
	Errata        uint8
	UintnSize     uint8
	Banks         []Bank
	VendorInfo    []byte
}

// Digest is one bank's digest of an event.
type Digest struct {
	ID        AlgID
	Algorithm digests.Algorithm // "" when unknown; such digests are kept but never replayed
	Value     []byte
}

// Event is one log entry. All fields are untrusted until Verify has
// replayed them against a quote; even then only PCR and Digests are
// authenticated, never Type or Data.
type Event struct {
	Index   int // position in the log (the Spec ID entry of a crypto-agile log is 0)
	Offset  int // byte offset of the entry's first byte
	PCR     int // PCRIndex; NoPCR for 0xFFFFFFFF (EV_NO_ACTION only)
	Type    EventType
	Digests []Digest
	Data    []byte // the raw Event[] bytes

	synthetic string // quirk id when the event was added by a quirk, not read from the log
}

// Digest returns the event's digest in alg, or nil.
func (e *Event) Digest(alg digests.Algorithm) []byte {
	for i := range e.Digests {
		if e.Digests[i].Algorithm == alg && alg != "" {
			return e.Digests[i].Value
		}
	}
	return nil
}

// Synthetic returns the id of the quirk that added this event, or "" for an
// event read from the log.
func (e *Event) Synthetic() string { return e.synthetic }

// Log is a parsed, unverified event log.
type Log struct {
	Format Format
	// SpecID is the decoded first entry of a crypto-agile log; nil for a
	// SHA-1 log.
	SpecID *SpecID
	// Banks lists the digest banks each event carries: the Spec ID table,
	// or sha1 alone for a SHA-1 log.
	Banks []Bank
	// Events holds every entry except the Spec ID entry of a crypto-agile
	// log (a SHA-1 log keeps its first entry as an event).
	Events []Event
}

// HasBank reports whether every event carries a digest in alg.
func (l *Log) HasBank(alg digests.Algorithm) bool {
	for _, b := range l.Banks {
		if b.Algorithm == alg && alg != "" {
			return true
		}
	}
	return false
}

var (
	specIDEvent03 = []byte("Spec ID Event03\x00")
	specIDPrefix  = []byte("Spec ID Event")
)

const (
	sha1HeaderSize = 32 // PCRIndex, EventType, SHA-1 digest, EventSize
	specIDFixed    = 28 // signature .. numberOfAlgorithms
)

// reader walks the input with explicit bounds checks.
type reader struct {
	buf   []byte
	off   int
	index int
}

func (r *reader) remaining() int { return len(r.buf) - r.off }

func (r *reader) fail(field string, off int, base error, format string, args ...any) error {
	return &ParseError{Index: r.index, Offset: off, Field: field, Msg: fmt.Sprintf(format, args...), Err: base}
}

func (r *reader) u32(field string) (uint32, error) {
	if r.remaining() < 4 {
		return 0, r.fail(field, r.off, ErrTruncated, "need 4 bytes, %d remain", r.remaining())
	}
	v := binary.LittleEndian.Uint32(r.buf[r.off:])
	r.off += 4
	return v, nil
}

func (r *reader) u16(field string) (uint16, error) {
	if r.remaining() < 2 {
		return 0, r.fail(field, r.off, ErrTruncated, "need 2 bytes, %d remain", r.remaining())
	}
	v := binary.LittleEndian.Uint16(r.buf[r.off:])
	r.off += 2
	return v, nil
}

func (r *reader) bytes(field string, n int) ([]byte, error) {
	if n < 0 || n > r.remaining() {
		return nil, r.fail(field, r.off, ErrTruncated, "need %d bytes, %d remain", n, r.remaining())
	}
	b := r.buf[r.off : r.off+n : r.off+n]
	r.off += n
	return b, nil
}

// Parse decodes a whole event log. The returned Log keeps one private copy
// of data; the caller may reuse data afterwards. Parse never panics; every
// error is a *ParseError naming the entry index and byte offset.
func Parse(data []byte) (*Log, error) {
	if len(data) == 0 {
		return nil, &ParseError{Field: "log", Msg: "no bytes", Err: ErrEmpty}
	}
	buf := bytes.Clone(data)
	r := &reader{buf: buf}

	first, err := r.sha1Entry()
	if err != nil {
		return nil, err
	}
	log := &Log{Format: FormatSHA1, Banks: []Bank{{ID: AlgSHA1, Algorithm: digests.SHA1, Size: 20}}}
	if first.Type == EV_NO_ACTION && bytes.HasPrefix(first.Data, specIDEvent03) {
		spec, err := parseSpecID(first)
		if err != nil {
			return nil, err
		}
		log.Format, log.SpecID, log.Banks = FormatCryptoAgile, spec, spec.Banks
	} else {
		log.Events = append(log.Events, *first)
	}

	// Estimate capacity from a typical entry size to avoid regrowth.
	log.Events = append(make([]Event, 0, len(log.Events)+r.remaining()/200+1), log.Events...)
	for r.remaining() > 0 {
		r.index++
		var ev *Event
		if log.Format == FormatCryptoAgile {
			ev, err = r.agileEntry(log.Banks)
		} else {
			ev, err = r.sha1Entry()
		}
		if err != nil {
			return nil, err
		}
		if ev.Type == EV_NO_ACTION && bytes.HasPrefix(ev.Data, specIDPrefix) {
			return nil, r.fail("Event", ev.Offset, ErrMalformed, "a Spec ID event is only allowed as the first entry")
		}
		log.Events = append(log.Events, *ev)
	}
	return log, nil
}

func (r *reader) header(start int) (pcr int, typ EventType, err error) {
	p, err := r.u32("PCRIndex")
	if err != nil {
		return 0, 0, err
	}
	t, err := r.u32("EventType")
	if err != nil {
		return 0, 0, err
	}
	if !EventType(t).valid() {
		return 0, 0, r.fail("EventType", start+4, ErrMalformed, "event type 0x%08x is reserved or unused", t)
	}
	switch {
	case p == 0xFFFFFFFF && EventType(t) == EV_NO_ACTION:
		// Windows logs informational EV_NO_ACTION entries against PCR -1.
		return NoPCR, EventType(t), nil
	case p > maxPCR:
		return 0, 0, r.fail("PCRIndex", start, ErrMalformed, "PCR %d out of range 0-%d", p, maxPCR)
	}
	return int(p), EventType(t), nil
}

func (r *reader) eventData() ([]byte, error) {
	at := r.off
	n, err := r.u32("EventSize")
	if err != nil {
		return nil, err
	}
	if n > MaxEventSize {
		return nil, r.fail("EventSize", at, ErrMalformed, "%d bytes exceeds the %d-byte cap", n, MaxEventSize)
	}
	if int(n) > r.remaining() {
		return nil, r.fail("EventSize", at, ErrTruncated, "%d bytes declared, %d remain", n, r.remaining())
	}
	return r.bytes("Event", int(n))
}

func (r *reader) sha1Entry() (*Event, error) {
	start := r.off
	if r.remaining() < sha1HeaderSize {
		return nil, r.fail("header", start, ErrTruncated, "need %d bytes, %d remain", sha1HeaderSize, r.remaining())
	}
	pcr, typ, err := r.header(start)
	if err != nil {
		return nil, err
	}
	d, err := r.bytes("Digest", 20)
	if err != nil {
		return nil, err
	}
	data, err := r.eventData()
	if err != nil {
		return nil, err
	}
	return &Event{Index: r.index, Offset: start, PCR: pcr, Type: typ,
		Digests: []Digest{{ID: AlgSHA1, Algorithm: digests.SHA1, Value: d}}, Data: data}, nil
}

func (r *reader) agileEntry(banks []Bank) (*Event, error) {
	start := r.off
	pcr, typ, err := r.header(start)
	if err != nil {
		return nil, err
	}
	at := r.off
	count, err := r.u32("digest count")
	if err != nil {
		return nil, err
	}
	if int64(count) != int64(len(banks)) {
		return nil, r.fail("digest count", at, ErrMalformed, "%d digests, the Spec ID event declares %d banks", count, len(banks))
	}
	ds := make([]Digest, 0, count)
	for range count {
		at := r.off
		id, err := r.u16("hashAlg")
		if err != nil {
			return nil, err
		}
		bank := -1
		for i := range banks {
			if banks[i].ID == AlgID(id) {
				bank = i
				break
			}
		}
		if bank < 0 {
			return nil, r.fail("hashAlg", at, ErrMalformed, "algorithm 0x%04x is not in the Spec ID table", id)
		}
		for _, d := range ds {
			if d.ID == AlgID(id) {
				return nil, r.fail("hashAlg", at, ErrMalformed, "algorithm 0x%04x appears twice", id)
			}
		}
		v, err := r.bytes("digest", banks[bank].Size)
		if err != nil {
			return nil, err
		}
		ds = append(ds, Digest{ID: AlgID(id), Algorithm: banks[bank].Algorithm, Value: v})
	}
	data, err := r.eventData()
	if err != nil {
		return nil, err
	}
	return &Event{Index: r.index, Offset: start, PCR: pcr, Type: typ, Digests: ds, Data: data}, nil
}

// parseSpecID decodes the first entry's data as TCG_EfiSpecIDEvent.
func parseSpecID(first *Event) (*SpecID, error) {
	dataOff := first.Offset + sha1HeaderSize
	fail := func(field string, rel int, base error, format string, args ...any) error {
		return &ParseError{Index: 0, Offset: dataOff + rel, Field: "Spec ID " + field, Msg: fmt.Sprintf(format, args...), Err: base}
	}
	if first.PCR != 0 {
		return nil, fail("PCRIndex", -sha1HeaderSize, ErrMalformed, "PCR %d, want 0", first.PCR)
	}
	if !allZero(first.Digests[0].Value) {
		return nil, fail("Digest", -sha1HeaderSize+8, ErrMalformed, "digest is not all zero")
	}
	d := first.Data
	if len(d) < specIDFixed+1 {
		return nil, fail("header", 0, ErrTruncated, "%d bytes, need at least %d", len(d), specIDFixed+1)
	}
	s := &SpecID{
		Signature:     string(bytes.TrimRight(d[:16], "\x00")),
		PlatformClass: binary.LittleEndian.Uint32(d[16:]),
		VersionMinor:  d[20],
		VersionMajor:  d[21],
		Errata:        d[22],
		UintnSize:     d[23],
	}
	if s.VersionMajor != 2 || s.VersionMinor != 0 {
		return nil, fail("specVersion", 20, ErrMalformed, "version %d.%d, want 2.0", s.VersionMajor, s.VersionMinor)
	}
	n := binary.LittleEndian.Uint32(d[24:])
	if n == 0 {
		return nil, fail("numberOfAlgorithms", 24, ErrMalformed, "no algorithms")
	}
	if int64(n)*4 > int64(len(d)-specIDFixed-1) {
		return nil, fail("numberOfAlgorithms", 24, ErrTruncated, "%d algorithms do not fit in %d bytes", n, len(d))
	}
	off := specIDFixed
	for range n {
		id := AlgID(binary.LittleEndian.Uint16(d[off:]))
		size := int(binary.LittleEndian.Uint16(d[off+2:]))
		alg := id.Algorithm()
		switch {
		case size == 0:
			return nil, fail("digestSizes", off, ErrMalformed, "algorithm 0x%04x has digest size 0", uint16(id))
		case alg != "" && alg.Size() != size:
			return nil, fail("digestSizes", off, ErrMalformed, "%s declared with %d-byte digests, want %d", alg, size, alg.Size())
		}
		for _, b := range s.Banks {
			if b.ID == id {
				return nil, fail("digestSizes", off, ErrMalformed, "algorithm 0x%04x listed twice", uint16(id))
			}
		}
		s.Banks = append(s.Banks, Bank{ID: id, Algorithm: alg, Size: size})
		off += 4
	}
	vlen := int(d[off])
	if off+1+vlen != len(d) {
		return nil, fail("vendorInfoSize", off, ErrMalformed, "%d vendor bytes declared, %d follow", vlen, len(d)-off-1)
	}
	s.VendorInfo = d[off+1:]
	return s, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
