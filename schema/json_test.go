package schema

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestScan(t *testing.T) {
	tests := []struct {
		in      string
		wantOff int // -1: valid
		wantMsg string
	}{
		{`{}`, -1, ""},
		{` {"a": [1, -2.5e+3, true, false, null, "x\u00e9\n"]} `, -1, ""},
		{`"\ud800"`, -1, ""},
		{`0`, -1, ""},
		{`-0.0E-0`, -1, ""},
		{"", 0, "unexpected end of input, expected a value"},
		{"{\n];\n", 2, "expected a string key"}, // sign-runtime-policy/runtime-policy-bogus.json; Python: char 2
		{`{"a" 1}`, 5, "expected ':'"},
		{`{"a": 1,}`, 8, "expected a string key"},
		{`[1 2]`, 3, "expected ',' or ']'"},
		{`[1,]`, 3, "expected a value"},
		{`01`, 1, "after the top-level value"},
		{`1.`, 2, "expected a digit after '.'"},
		{`1e`, 2, "expected a digit in the exponent"},
		{`-`, 1, "expected a digit"},
		{`+1`, 0, "expected a value"},
		{`NaN`, 0, "expected a value"},
		{`tru`, 3, "in literal true"},
		{`"a` + "\x01" + `"`, 2, "control byte 0x01"},
		{`"\x"`, 2, `invalid escape \x in string`},
		{`"\u12G4"`, 1, `invalid \u escape`},
		{"\"\xff\"", 1, "invalid UTF-8"},
		{`"abc`, 4, "unexpected end of input in string"},
		{`{} {}`, 3, "after the top-level value"},
		{strings.Repeat("[", maxDepth+1), maxDepth, "nesting deeper than 512"},
		{"1" + strings.Repeat("0", maxIntDigits), 0, "more than 4300 digits"},
	}
	for _, tt := range tests {
		_, err := scan([]byte(tt.in))
		if tt.wantOff < 0 {
			if err != nil {
				t.Errorf("scan(%q) = %v, want valid", tt.in, err)
			}
			if !json.Valid([]byte(tt.in)) {
				t.Errorf("encoding/json disagrees: %q is invalid", tt.in)
			}
			continue
		}
		se, ok := err.(*syntaxError)
		if !ok {
			t.Errorf("scan(%q) = %v, want syntax error at %d", tt.in, err, tt.wantOff)
			continue
		}
		if se.off != tt.wantOff || !strings.Contains(se.msg, tt.wantMsg) {
			t.Errorf("scan(%q) = byte %d %q, want byte %d containing %q", tt.in, se.off, se.msg, tt.wantOff, tt.wantMsg)
		}
	}
	// The deepest accepted nesting.
	deep := strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth)
	if _, err := scan([]byte(deep)); err != nil {
		t.Errorf("depth %d: %v", maxDepth, err)
	}
}

func TestLazyIteration(t *testing.T) {
	data := []byte(` { "a" : [ 1 , "x]\"" , {"b":[]} ] , "c\u0041" :null } `)
	top, err := scan(data)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for k, v := range members(data, top) {
		got = append(got, str(data, k)+"="+string(data[v.off:v.end]))
		if v.kind == jArray {
			for i, el := range elements(data, v) {
				got = append(got, string(rune('0'+i))+":"+string(data[el.off:el.end]))
			}
		}
	}
	want := []string{`a=[ 1 , "x]\"" , {"b":[]} ]`, `0:1`, `1:"x]\""`, `2:{"b":[]}`, `cA=null`}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestNumber(t *testing.T) {
	// Expected values: Python 3.11 json.loads + jsonschema 4.26
	// Draft202012Validator({"type": "integer"}).is_valid(x).
	tests := []struct {
		raw     string
		strict  bool
		wantLit string
		wantInt bool
	}{
		{"1", false, "1", true},
		{"-7", false, "-7", true},
		{"1.0", false, "1", true},
		{"1e0", false, "1", true},
		{"-0.0", false, "-0", true},
		{"1.5", false, "1.5", false},
		{"1e400", false, "1e400", false}, // inf in Python: not an integer
		{"1e-400", false, "0", true},     // 0.0 in Python
		{"1e20", false, "100000000000000000000", true},
		{"1.0", true, "1.0", false},
		{"123456789012345678901234567890", true, "123456789012345678901234567890", true},
	}
	for _, tt := range tests {
		lit, isInt := number([]byte(tt.raw), tt.strict)
		if lit != tt.wantLit || isInt != tt.wantInt {
			t.Errorf("number(%s, strict=%v) = %q, %v; want %q, %v", tt.raw, tt.strict, lit, isInt, tt.wantLit, tt.wantInt)
		}
	}
}

// FuzzScan holds the scanner to encoding/json: for UTF-8 input within the
// depth and digit limits both must agree on validity, and iterating a
// scanned document must reproduce every value exactly.
func FuzzScan(f *testing.F) {
	for _, s := range []string{`{}`, `[1,2,{"a":"b\n"}]`, "{\n];\n", `-0.5e+10`, `"\u00e9"`, `{"a":[[[]]],"b":null}`} {
		f.Add([]byte(s))
	}
	for _, file := range seedFiles(f) {
		f.Add(file)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		top, err := scan(data)
		if err != nil {
			se := err.(*syntaxError)
			if se.off < 0 || se.off > len(data) {
				t.Fatalf("offset %d outside input of %d bytes", se.off, len(data))
			}
			if strings.Contains(se.msg, "nesting deeper") || strings.Contains(se.msg, "digits") {
				return
			}
			if utf8.Valid(data) && json.Valid(data) {
				t.Fatalf("scan rejects valid JSON: %v", err)
			}
			return
		}
		if !json.Valid(data) {
			t.Fatalf("scan accepts invalid JSON")
		}
		// Re-assemble the document from the lazy iterators and compare
		// with encoding/json's view.
		var want any
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if err := dec.Decode(&want); err != nil {
			t.Fatal(err)
		}
		got := rebuild(data, top)
		wb, _ := json.Marshal(want)
		gb, _ := json.Marshal(got)
		if string(wb) != string(gb) {
			t.Fatalf("rebuilt %s, encoding/json %s", gb, wb)
		}
	})
}

func rebuild(data []byte, v jval) any {
	switch v.kind {
	case jObject:
		m := map[string]any{}
		for k, val := range members(data, v) {
			m[str(data, k)] = rebuild(data, val)
		}
		return m
	case jArray:
		l := []any{}
		for _, el := range elements(data, v) {
			l = append(l, rebuild(data, el))
		}
		return l
	case jString:
		return str(data, v)
	case jNumber:
		return json.Number(data[v.off:v.end])
	case jBool:
		return data[v.off] == 't'
	}
	return nil
}
