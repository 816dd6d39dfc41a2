package rpm

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
)

// seedFixtures adds every fixture package, cut after its main header when
// headerOnly is set (ReadHeader reads no further, and small inputs fuzz
// faster).
func seedFixtures(f *testing.F, headerOnly bool) {
	names, err := filepath.Glob(filepath.Join(fixtures, "*.rpm"))
	if err != nil || len(names) == 0 {
		f.Fatalf("no fixtures: %v", err)
	}
	for _, n := range names {
		raw := readFixture(f, filepath.Base(n))
		if h, err := ReadHeader(bytes.NewReader(raw), n); err == nil && headerOnly {
			_, end := h.Range()
			raw = raw[:end]
		}
		f.Add(raw)
	}
}

// FuzzReadHeader: any input gives a header or a *FormatError, never a
// panic, and everything reachable from a header behaves the same way. The
// digest check is also switched off so that mutations reach Files.
func FuzzReadHeader(f *testing.F) {
	seedFixtures(f, true)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, check := range []bool{true, false} {
			h, err := readHeader(bytes.NewReader(data), "fuzz", check)
			var fe *FormatError
			if err != nil {
				if !errors.As(err, &fe) {
					t.Fatalf("not a FormatError: %v", err)
				}
				continue
			}
			if _, end := h.Range(); end > int64(len(data)) {
				t.Fatalf("header ends at %d of %d bytes", end, len(data))
			}
			_ = h.NEVRA()
			_ = h.IsSource()
			if _, err := h.KeyIDs(); err != nil && !errors.As(err, &fe) {
				t.Fatalf("KeyIDs: not a FormatError: %v", err)
			}
			files, err := h.Files()
			if err != nil && !errors.As(err, &fe) {
				t.Fatalf("Files: not a FormatError: %v", err)
			}
			for i := range files {
				_ = files[i].HasContentDigest()
			}
		}
	})
}

// FuzzVerifyPayload: a damaged payload behind an intact header is an error,
// never a panic or a hang.
func FuzzVerifyPayload(f *testing.F) {
	seedFixtures(f, false)
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		h, err := ReadHeader(r, "fuzz")
		if err != nil {
			return
		}
		_ = h.VerifyPayload(context.Background(), r, nil)
	})
}
