package eventlog

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/zest-attest/zest/digests"
)

var startupLocalitySig = []byte("StartupLocality\x00")

// StartupLocality returns the locality from the log's "StartupLocality"
// EV_NO_ACTION event in PCR 0 (17 bytes: signature + one byte), and whether
// there was one. An error means the log holds more than one such event or
// one after PCR 0 was first extended.
func (l *Log) StartupLocality() (loc uint8, ok bool, err error) {
	extended := false
	for i := range l.Events {
		e := &l.Events[i]
		if e.PCR != 0 {
			continue
		}
		if e.Type != EV_NO_ACTION {
			extended = true
			continue
		}
		if len(e.Data) != len(startupLocalitySig)+1 || !bytes.HasPrefix(e.Data, startupLocalitySig) {
			continue
		}
		if ok {
			return 0, false, fmt.Errorf("eventlog: event %d at offset %d: second StartupLocality event", e.Index, e.Offset)
		}
		if extended {
			return 0, false, fmt.Errorf("eventlog: event %d at offset %d: StartupLocality event after PCR 0 was extended", e.Index, e.Offset)
		}
		loc, ok = e.Data[len(startupLocalitySig)], true
	}
	return loc, ok, nil
}

// initialPCR0Locality is the last byte of PCR 0's value before the first
// extend: the StartupLocality (0 or 3), or 4 when an H-CRTM event is logged
// in PCR 0 (TPM 2.0 Library Part 1 H-CRTM sequence; tpm2-tools does the same).
func (l *Log) initialPCR0Locality() (uint8, error) {
	for i := range l.Events {
		if l.Events[i].PCR == 0 && l.Events[i].Type == EV_EFI_HCRTM_EVENT {
			return 4, nil
		}
	}
	loc, _, err := l.StartupLocality()
	return loc, err
}

// Replay computes, for bank alg, the value of every PCR the log extends:
// each starts at zero (PCR 0 at 00..0L for startup locality L) and is
// extended with each event's digest in log order; EV_NO_ACTION entries are
// not extended. Only PCRs with at least one extended event are returned.
func (l *Log) Replay(alg digests.Algorithm) (map[int][]byte, error) {
	return l.replay(alg, nil)
}

func (l *Log) replay(alg digests.Algorithm, extra []Event) (map[int][]byte, error) {
	if !l.HasBank(alg) {
		return nil, fmt.Errorf("eventlog: the log has no %s bank (banks: %s)", alg, l.bankNames())
	}
	h, err := alg.New()
	if err != nil {
		return nil, fmt.Errorf("eventlog: replay: %w", err)
	}
	loc, err := l.initialPCR0Locality()
	if err != nil {
		return nil, err
	}
	size := alg.Size()
	pcrs := make(map[int][]byte)
	sum := make([]byte, 0, size)
	extend := func(e *Event) error {
		if e.Type == EV_NO_ACTION {
			return nil
		}
		d := e.Digest(alg)
		if len(d) != size {
			return fmt.Errorf("eventlog: event %d at offset %d: no %d-byte %s digest", e.Index, e.Offset, size, alg)
		}
		v, ok := pcrs[e.PCR]
		if !ok {
			v = make([]byte, size)
			if e.PCR == 0 {
				v[size-1] = loc
			}
			pcrs[e.PCR] = v
		}
		h.Reset()
		h.Write(v)
		h.Write(d)
		copy(v, h.Sum(sum[:0]))
		return nil
	}
	for i := range l.Events {
		if err := extend(&l.Events[i]); err != nil {
			return nil, err
		}
	}
	for i := range extra {
		if err := extend(&extra[i]); err != nil {
			return nil, err
		}
	}
	return pcrs, nil
}

func (l *Log) bankNames() string {
	var s []string
	for _, b := range l.Banks {
		if b.Algorithm != "" {
			s = append(s, string(b.Algorithm))
		} else {
			s = append(s, fmt.Sprintf("0x%04x", uint16(b.ID)))
		}
	}
	return strings.Join(s, ", ")
}

// Quirk is a named, known firmware or kernel defect that makes a genuine
// log fail to replay. A quirk only adds synthetic events for one PCR; it is
// tried only after a clean replay of that PCR failed, and Verified records
// which quirk made the PCR match.
type Quirk struct {
	ID          string
	PCR         int
	Description string
	// events returns the synthetic events to append for bank alg.
	events func(l *Log, alg digests.Algorithm) ([]Event, error)
}

// Quirks is the table of workarounds VerifyOptions.AllowQuirks enables, in
// the order they are tried. At most one quirk is applied per PCR.
var Quirks = []Quirk{
	{
		ID:  "ebs-missing-success",
		PCR: 5,
		Description: "the log lacks the PCR 5 'Exit Boot Services Invocation' and " +
			"'Exit Boot Services Returned with Success' EV_EFI_ACTION events that the firmware " +
			"extended after the OS copied the log (no Final Events Table support)",
		events: efiActions(5, "Exit Boot Services Invocation", "Exit Boot Services Returned with Success"),
	},
	{
		ID:          "ebs-missing-failure",
		PCR:         5,
		Description: "as ebs-missing-success, but ExitBootServices returned with failure",
		events:      efiActions(5, "Exit Boot Services Invocation", "Exit Boot Services Returned with Failure"),
	},
	{
		ID:          "ebs-missing-failure-success",
		PCR:         5,
		Description: "as ebs-missing-success, after one failed ExitBootServices call",
		events: efiActions(5, "Exit Boot Services Invocation", "Exit Boot Services Returned with Failure",
			"Exit Boot Services Returned with Success"),
	},
}

func efiActions(pcr int, actions ...string) func(*Log, digests.Algorithm) ([]Event, error) {
	return func(l *Log, alg digests.Algorithm) ([]Event, error) {
		h, err := alg.New()
		if err != nil {
			return nil, err
		}
		evs := make([]Event, 0, len(actions))
		for _, a := range actions {
			h.Reset()
			h.Write([]byte(a))
			evs = append(evs, Event{Index: -1, Offset: -1, PCR: pcr, Type: EV_EFI_ACTION,
				Digests: []Digest{{Algorithm: alg, Value: h.Sum(nil)}}, Data: []byte(a)})
		}
		return evs, nil
	}
}

// Verified is an event log replayed against quoted PCR values. It can only
// be built by Verify and holds only events of PCRs whose replay matched the
// quote. Even so, only (PCR, digest) of an event is authenticated, never its
// type or data: decoders must check digest = H(data) where the spec says so.
type Verified struct {
	alg             digests.Algorithm
	pcrs            map[int][]byte
	events          []Event
	quirks          map[int]string
	startupLocality int // -1 when none
}

// Algorithm is the bank that was replayed.
func (v *Verified) Algorithm() digests.Algorithm { return v.alg }

// PCRs returns a copy of the verified PCR values (quoted PCRs that matched).
func (v *Verified) PCRs() map[int][]byte {
	out := make(map[int][]byte, len(v.pcrs))
	for k, b := range v.pcrs {
		out[k] = bytes.Clone(b)
	}
	return out
}

// Events returns the events of verified PCRs in log order (quirk events
// last, marked by Synthetic). The slice is a copy; Data aliases the log.
func (v *Verified) Events() []Event { return slices.Clone(v.events) }

// Quirks maps each PCR that only matched thanks to a quirk to the quirk id.
func (v *Verified) Quirks() map[int]string { return maps.Clone(v.quirks) }

// StartupLocality returns the locality PCR 0 started from, when the log
// recorded one and PCR 0 was verified.
func (v *Verified) StartupLocality() (uint8, bool) {
	if v.startupLocality < 0 {
		return 0, false
	}
	return uint8(v.startupLocality), true
}

// VerifyOptions weakens Verify. The zero value is strict.
type VerifyOptions struct {
	// AllowQuirks lets Verify try the Quirks table for PCRs whose clean
	// replay does not match.
	AllowQuirks bool
}

// MismatchError lists every quoted PCR whose replay differs from the quote.
type MismatchError struct {
	Algorithm  digests.Algorithm
	Mismatches []Mismatch
}

// Mismatch is one PCR whose replayed value (Got) is not the quoted one.
type Mismatch struct {
	PCR      int
	Expected []byte // quoted
	Got      []byte // replayed from the log
}

func (e *MismatchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "eventlog: %d %s PCR(s) do not match the quote:", len(e.Mismatches), e.Algorithm)
	for _, m := range e.Mismatches {
		fmt.Fprintf(&b, " PCR %d expected %x got %x;", m.PCR, m.Expected, m.Got)
	}
	return strings.TrimSuffix(b.String(), ";")
}

// Verify replays log in bank alg and compares every PCR in quoted (values
// taken from a signature-verified quote) with the replay. A quoted PCR the
// log never extends must hold its initial value. PCRs the log extends but
// the quote does not cover are left out of the result. Any mismatch fails
// the whole verification with a *MismatchError listing each one.
func Verify(log *Log, alg digests.Algorithm, quoted map[int][]byte) (*Verified, error) {
	return VerifyWithOptions(log, alg, quoted, VerifyOptions{})
}

// VerifyWithOptions is Verify with explicit weakening options.
func VerifyWithOptions(log *Log, alg digests.Algorithm, quoted map[int][]byte, opts VerifyOptions) (*Verified, error) {
	if log == nil {
		return nil, errors.New("eventlog: verify: nil log")
	}
	if len(quoted) == 0 {
		return nil, errors.New("eventlog: verify: no quoted PCR values")
	}
	replayed, err := log.Replay(alg)
	if err != nil {
		return nil, err
	}
	loc, err := log.initialPCR0Locality()
	if err != nil {
		return nil, err
	}
	size := alg.Size()
	initial := func(pcr int) []byte {
		v := make([]byte, size)
		if pcr == 0 {
			v[size-1] = loc
		}
		return v
	}
	v := &Verified{alg: alg, pcrs: map[int][]byte{}, quirks: map[int]string{}, startupLocality: -1}
	var mism []Mismatch
	var synthetic []Event
	for _, pcr := range slices.Sorted(maps.Keys(quoted)) {
		want := quoted[pcr]
		if pcr < 0 || pcr > maxPCR {
			return nil, fmt.Errorf("eventlog: verify: quoted PCR %d out of range", pcr)
		}
		if len(want) != size {
			return nil, fmt.Errorf("eventlog: verify: quoted %s PCR %d has %d bytes, want %d", alg, pcr, len(want), size)
		}
		got, ok := replayed[pcr]
		if !ok {
			got = initial(pcr)
		}
		if bytes.Equal(got, want) {
			v.pcrs[pcr] = bytes.Clone(want)
			continue
		}
		if opts.AllowQuirks {
			if q, evs := tryQuirks(log, alg, pcr, want); q != "" {
				v.pcrs[pcr] = bytes.Clone(want)
				v.quirks[pcr] = q
				synthetic = append(synthetic, evs...)
				continue
			}
		}
		mism = append(mism, Mismatch{PCR: pcr, Expected: bytes.Clone(want), Got: got})
	}
	if len(mism) > 0 {
		return nil, &MismatchError{Algorithm: alg, Mismatches: mism}
	}
	for i := range log.Events {
		e := &log.Events[i]
		if _, ok := v.pcrs[e.PCR]; ok && e.Type != EV_NO_ACTION {
			v.events = append(v.events, *e)
		}
	}
	v.events = append(v.events, synthetic...)
	if _, ok := v.pcrs[0]; ok {
		if l, ok, _ := log.StartupLocality(); ok {
			v.startupLocality = int(l)
		}
	}
	return v, nil
}

// tryQuirks returns the id and events of the first quirk for pcr that
// makes the replay equal want.
func tryQuirks(log *Log, alg digests.Algorithm, pcr int, want []byte) (string, []Event) {
	for _, q := range Quirks {
		if q.PCR != pcr {
			continue
		}
		evs, err := q.events(log, alg)
		if err != nil {
			continue
		}
		for i := range evs {
			evs[i].synthetic = q.ID
		}
		got, err := log.replay(alg, evs)
		if err == nil && bytes.Equal(got[pcr], want) {
			return q.ID, evs
		}
	}
	return "", nil
}

// BootAggregate computes IMA's boot_aggregate from PCR values of bank alg:
// H(PCR0 || ... || PCR7) for sha1, H(PCR0 || ... || PCR9) for any other bank
// (Linux >= 5.8). A PCR absent from pcrs is taken as all zero, which is what
// a replayed map means for a PCR the log never extends.
func BootAggregate(pcrs map[int][]byte, alg digests.Algorithm) ([]byte, error) {
	h, err := alg.New()
	if err != nil {
		return nil, fmt.Errorf("eventlog: boot_aggregate: %w", err)
	}
	last := 9
	if alg == digests.SHA1 {
		last = 7
	}
	zero := make([]byte, alg.Size())
	for i := 0; i <= last; i++ {
		v, ok := pcrs[i]
		if !ok {
			v = zero
		}
		if len(v) != alg.Size() {
			return nil, fmt.Errorf("eventlog: boot_aggregate: %s PCR %d has %d bytes, want %d", alg, i, len(v), alg.Size())
		}
		h.Write(v)
	}
	return h.Sum(nil), nil
}
