package dsse

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const fixtures = "../../fixtures/"

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Each fixtures/dsse/pyjson/X.json has X.json.out written by CPython's
// json.dumps(json.load(f)) (fixtures/dsse/gen.sh).
func TestPythonJSONMatchesCPython(t *testing.T) {
	files, _ := filepath.Glob(fixtures + "dsse/pyjson/*.json")
	if len(files) < 10 {
		t.Fatalf("only %d fixtures", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			got, err := PythonJSON(readFile(t, f))
			if err != nil {
				t.Fatal(err)
			}
			want := readFile(t, f+".out")
			if string(got) != string(want) {
				i := 0
				for i < len(got) && i < len(want) && got[i] == want[i] {
					i++
				}
				t.Errorf("differs from CPython at byte %d:\n got %.80q\nwant %.80q", i, got[i:], want[min(i, len(want)):])
			}
		})
	}
}

func TestPythonJSONRefuses(t *testing.T) {
	tests := []struct {
		name, in string
		offset   int
	}{
		// CPython accepts these; zest does not write non-JSON output.
		{"NaN", `[NaN]`, 1},
		{"Infinity", `{"a": Infinity}`, 6},
		{"-Infinity", `[1, -Infinity]`, 4},
		{"overflow", `[1e400]`, 1},
		// CPython refuses these too.
		{"empty", ``, 0},
		{"blank", " \n ", 3},
		{"trailing comma array", `[1,]`, 3},
		{"trailing comma object", `{"a": 1,}`, 8},
		{"single quotes", `{'a': 1}`, 1},
		{"missing colon", `{"a" 1}`, 5},
		{"missing comma", `[1 2]`, 3},
		{"extra data", `1 2`, 2},
		{"leading zero", `01`, 1},
		{"bare dot", `1.`, 1},
		{"bare minus", `-`, 0},
		{"plus", `+1`, 0},
		{"unterminated", `"abc`, 0},
		{"raw control char", "\"a\tb\"", 2},
		{"raw newline", "[\"a\nb\"]", 3},
		{"bad escape", `"\x"`, 1},
		{"short unicode escape", `"\u12"`, 1},
		{"bad unicode escape", `"\u12g4"`, 1},
		{"BOM", "\ufeff{}", 0},
		{"invalid UTF-8", "[\"\xff\"]", 2},
		{"true prefix", `tru`, 0},
		{"unclosed", `{"a": [1, 2`, 11},
		{"huge int", "[" + strings.Repeat("9", 4301) + "]", 1},
		{"deep", strings.Repeat("[", MaxJSONDepth+1) + strings.Repeat("]", MaxJSONDepth+1), MaxJSONDepth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := PythonJSON([]byte(tt.in))
			var je *JSONError
			if !errors.As(err, &je) {
				t.Fatalf("PythonJSON = %q, %v; want a *JSONError", out, err)
			}
			if je.Offset != tt.offset {
				t.Errorf("offset %d, want %d (%v)", je.Offset, tt.offset, err)
			}
		})
	}
	// CPython 3.11's limit is 4300 digits: exactly that many still parse.
	if _, err := PythonJSON([]byte(strings.Repeat("9", 4300))); err != nil {
		t.Error(err)
	}
}

func TestPythonJSONErrorPosition(t *testing.T) {
	_, err := PythonJSON([]byte("{\n  \"a\": 1,\n  \"b\" 2\n}"))
	if err == nil || err.Error() != "json: line 3 column 7 (byte 18): expecting ':' delimiter" {
		t.Errorf("err = %v", err)
	}
}

// The output of PythonJSON is JSON with the same value as its input.
func TestPythonJSONSameValue(t *testing.T) {
	files, _ := filepath.Glob(fixtures + "dsse/pyjson/*.json")
	for _, f := range files {
		in := readFile(t, f)
		out, err := PythonJSON(in)
		if err != nil {
			t.Fatal(err)
		}
		if !sameJSON(t, in, out) {
			t.Errorf("%s: value changed", f)
		}
	}
}

// sameJSON compares two documents through encoding/json. Numbers compare as
// float64, which is what PythonJSON promises for non-integers.
func sameJSON(t testing.TB, a, b []byte) bool {
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("input: %v", err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("output is not JSON: %v\n%q", err, b)
	}
	return reflect.DeepEqual(va, vb)
}
