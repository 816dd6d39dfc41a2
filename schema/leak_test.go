package schema

import (
	"runtime"
	"testing"
	"time"
)

func TestLeakProbe(t *testing.T) {
	data := readFile(t, "testdata/refstate-secureboot.json")
	for round := 0; round < 6; round++ {
		start := time.Now()
		for range 20 {
			Validate(MBRefstate, data, Options{})
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		t.Logf("round %d: %v per call, heap %d MB", round, time.Since(start)/20, ms.HeapAlloc>>20)
	}
}
