package mb

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/zest-attest/zest/digests"
	"github.com/zest-attest/zest/digests/eventlog"
	"github.com/zest-attest/zest/policygen"
)

// bigLog is the Lenovo laptop log (sha1 + sha256, real-hardware events)
// grown to about 100 KB with GRUB "grub_cmd: " events in PCR 8, as a GRUB
// with a long grub.cfg writes them; the evaluator checks each one's digest
// binding, so the whole log is evaluated and accepted.
func bigLog(tb testing.TB) []byte {
	data := readLog(tb, "binary_bios_measurements")
	for i := 0; len(data) < 100_000; i++ {
		text := fmt.Sprintf("set menu_color_normal=cyan/blue menu_color_highlight=white/blue timeout=%d", i)
		s1, s256 := sha1.Sum([]byte(text)), sha256.Sum256([]byte(text))
		ev := binary.LittleEndian.AppendUint32(nil, 8)
		ev = binary.LittleEndian.AppendUint32(ev, uint32(eventlog.EV_IPL))
		ev = binary.LittleEndian.AppendUint32(ev, 2)
		ev = binary.LittleEndian.AppendUint16(ev, uint16(eventlog.AlgSHA1))
		ev = append(ev, s1[:]...)
		ev = binary.LittleEndian.AppendUint16(ev, uint16(eventlog.AlgSHA256))
		ev = append(ev, s256[:]...)
		payload := append([]byte("grub_cmd: "+text), 0)
		ev = binary.LittleEndian.AppendUint32(ev, uint32(len(payload)))
		data = append(data, append(ev, payload...)...)
	}
	return data
}

func TestBigLogAccepted(t *testing.T) {
	data := bigLog(t)
	l, err := eventlog.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	ref := refstate(t, "binary_bios_measurements", true)
	if fails := Evaluate(verifyAll(t, l, digests.SHA256), ref, Options{}); len(fails) != 0 {
		t.Fatal(fails)
	}
}

// BenchmarkParseVerifyEvaluate: parse + replay against the quote + evaluate
// a ~100 KB log (target <= 2 ms). x_sha256 compares with only hashing the
// same bytes once, measured in the same run.
func BenchmarkParseVerifyEvaluate(b *testing.B) {
	data := bigLog(b)
	l, err := eventlog.Parse(data)
	if err != nil {
		b.Fatal(err)
	}
	rep, _ := l.Replay(digests.SHA256)
	quoted := map[int][]byte{}
	for _, p := range RelevantPCRs {
		quoted[p] = rep[p]
	}
	ref := refstate(b, "binary_bios_measurements", true)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	// The baseline runs inside the loop, timed apart, so that load from
	// other processes affects both alike.
	var base, work time.Duration
	for b.Loop() {
		t0 := time.Now()
		sha256.Sum256(data)
		t1 := time.Now()
		l, err := eventlog.Parse(data)
		if err != nil {
			b.Fatal(err)
		}
		v, err := eventlog.Verify(l, digests.SHA256, quoted)
		if err != nil {
			b.Fatal(err)
		}
		if fails := Evaluate(v, ref, Options{}); len(fails) != 0 {
			b.Fatal(fails)
		}
		base += t1.Sub(t0)
		work += time.Since(t1)
	}
	per := float64(work.Nanoseconds()) / float64(b.N)
	baseline := float64(base.Nanoseconds()) / float64(b.N)
	b.ReportMetric(per/1e6, "ms/log")
	b.ReportMetric(per/baseline, "x_sha256")
}

// BenchmarkGenerateRefstate: a refstate from the same log.
func BenchmarkGenerateRefstate(b *testing.B) {
	data := bigLog(b)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		l, err := eventlog.Parse(data)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := policygen.GenerateMBRefstate(l, policygen.MBGenerateOptions{WithoutSecureBoot: true}); err != nil {
			b.Fatal(err)
		}
	}
}
