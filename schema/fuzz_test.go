package schema

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

// FuzzValidate runs both schemas in both modes over arbitrary bytes. Seeds
// are the Keylime fixtures and the refstates under testdata. Invariants: no
// panic, deterministic output, well-formed errors, one "$" error for bad
// JSON, and the Go digest-map fast path agreeing with the CUE-only walk.
func FuzzValidate(f *testing.F) {
	for _, s := range seedFiles(f) {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, data []byte, strict bool) {
		opts := Options{Strict: strict}
		_, syntaxErr := scan(data)
		for _, kind := range []Kind{RuntimePolicy, MBRefstate} {
			errs := Validate(kind, data, opts)
			if syntaxErr != nil && (len(errs) != 1 || errs[0].Path != "$") {
				t.Fatalf("%s: invalid JSON gave %v", kind, errs)
			}
			for _, e := range errs {
				if !strings.HasPrefix(e.Path, "$") || e.Msg == "" {
					t.Fatalf("%s: malformed error %#v", kind, e)
				}
				if strings.Contains(e.Msg, "internal error") {
					t.Fatalf("%s: %v", kind, e)
				}
			}
			if again := Validate(kind, data, opts); !slices.Equal(errs, again) {
				t.Fatalf("%s: not deterministic:\n%v\n%v", kind, errs, again)
			}
			if kind == RuntimePolicy {
				if slow := validate(kind, data, opts, true); !slices.Equal(errs, slow) {
					t.Fatalf("fast path %v\nCUE-only %v", errs, slow)
				}
			}
		}
		if k, err := Detect(data); (k == "") == (err == nil) {
			t.Fatalf("Detect = %q, %v", k, err)
		}
	})
}

// FuzzCheckExclude: whatever CheckExclude accepts must compile with RE2,
// also inside Keylime's join, and must not match every probe path.
func FuzzCheckExclude(f *testing.F) {
	for _, tt := range excludeCases {
		f.Add(tt.expr)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		if err := CheckExclude(expr); err != nil {
			if reasonOf(err) == "" {
				t.Fatalf("empty reason for %q", expr)
			}
			return
		}
		if _, err := regexp.Compile("(" + expr + ")|(/tmp/(?P<zestprobe>x))"); err != nil {
			t.Fatalf("accepted %q, but the join does not compile: %v", expr, err)
		}
	})
}
