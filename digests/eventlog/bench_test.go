package eventlog

import (
	"testing"

	"github.com/zest-attest/zest/digests"
)

// bigLog returns binary_bios_measurements with its entries after the Spec
// ID and StartupLocality events repeated to about 100 KB.
func bigLog(tb testing.TB) []byte {
	data := readFixture(tb, "binary_bios_measurements")
	l, err := Parse(data)
	if err != nil {
		tb.Fatal(err)
	}
	body := data[l.Events[1].Offset:]
	out := append([]byte{}, data...)
	for len(out) < 100_000 {
		out = append(out, body...)
	}
	return out
}

func BenchmarkParseReplay(b *testing.B) {
	data := bigLog(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		l, err := Parse(data)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := l.Replay(digests.SHA256); err != nil {
			b.Fatal(err)
		}
	}
}

func TestBigLog(t *testing.T) {
	data := bigLog(t)
	l, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 100_000 || len(l.Events) < 240 {
		t.Fatalf("%d bytes, %d events", len(data), len(l.Events))
	}
	if _, err := l.Replay(digests.SHA256); err != nil {
		t.Fatal(err)
	}
}
