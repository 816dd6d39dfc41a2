package eventlog

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParse feeds every fixture, then mutations, through Parse, Replay,
// Verify and each typed decoder: none may panic, and Parse errors are
// always *ParseError within the input's bounds.
func FuzzParse(f *testing.F) {
	for _, fx := range allFixtures {
		f.Add(readFixture(f, fx.name))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := Parse(data)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Offset < 0 || pe.Offset > len(data) {
				t.Fatalf("bad error %v", err)
			}
			return
		}
		if len(l.Events) == 0 && l.Format != FormatCryptoAgile {
			t.Fatal("SHA-1 log without events")
		}
		for _, b := range l.Banks {
			if b.Algorithm == "" {
				continue
			}
			p, err := l.Replay(b.Algorithm)
			if err == nil && len(p) > 0 {
				if v, err := Verify(l, b.Algorithm, p); err == nil && len(v.PCRs()) != len(p) {
					t.Fatal("self-verify lost PCRs")
				}
				_, _ = BootAggregate(p, b.Algorithm)
			}
		}
		for i := range l.Events {
			e := &l.Events[i]
			if !bytes.Equal(data[e.Offset:e.Offset+4], le(uint32(e.PCR))) && e.PCR != NoPCR {
				t.Fatalf("event %d offset %d does not hold its PCR index", e.Index, e.Offset)
			}
			_, _ = CRTMVersion(e)
			_, _ = ParseFirmwareBlob(e)
			if v, err := ParseVariable(e); err == nil {
				_, _ = ParseSignatureLists(v.Data)
				_, _, _ = ParseSignatureData(v.Data)
			}
			if im, err := ParseImageLoad(e); err == nil {
				_ = im.Text()
				_ = im.FilePath()
			}
			_, _ = IPLString(e)
			_, _ = ActionString(e)
			_, _ = ParseNoAction(e)
			for _, b := range l.Banks {
				if b.Algorithm != "" {
					_, _ = Separator(e, b.Algorithm)
					_ = DigestMatchesData(e, b.Algorithm)
				}
			}
		}
	})
}
