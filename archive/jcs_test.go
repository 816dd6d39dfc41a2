package archive

import (
	"encoding/json"
	"testing"
)

// Expected values are from RFC 8785 (§3.2.2 example, Appendix B number
// table) and the cyberphone reference implementation's test data.
func TestCanonicalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"b":1, "a":[true, null, "x"]}`, `{"a":[true,null,"x"],"b":1}`},
		// RFC 8785 §3.2.2.
		{`{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001], "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/", "literals": [null, true, false]}`,
			`{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`},
		// Sorting by UTF-16 code units (RFC 8785 §3.2.3 example).
		{`{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}`,
			"{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\",\"\u00f6\":\"Latin Small Letter O With Diaeresis\",\"\u20ac\":\"Euro Sign\",\"\U0001F600\":\"Emoji: Grinning Face\",\"\ufb33\":\"Hebrew Letter Dalet With Dagesh\"}"},
		// Appendix B numbers.
		{`[0, -0, 5e-324, 1.7976931348623157e308, 9007199254740992, 1e21, 1e-7, 0.000001, 295147905179352830000, 1e+23]`,
			`[0,0,5e-324,1.7976931348623157e+308,9007199254740992,1e+21,1e-7,0.000001,295147905179352830000,1e+23]`},
		{`"\u001f\b"`, `"\u001f\b"`},
	}
	for _, tt := range tests {
		got, err := Canonicalize([]byte(tt.in))
		if err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		if string(got) != tt.want {
			t.Errorf("Canonicalize(%s)\n got %s\nwant %s", tt.in, got, tt.want)
		}
	}
}

func TestCanonicalizeRejects(t *testing.T) {
	for _, in := range []string{
		`{"a":1,"a":2}`,   // duplicate key
		"\"\xff\"",        // invalid UTF-8
		`[1] [2]`,         // trailing data
		`{"a":1e400}`,     // not a double
		`[`,               // truncated
		string(deep(100)), // too deep
	} {
		if _, err := Canonicalize([]byte(in)); err == nil {
			t.Errorf("Canonicalize(%.40q) accepted", in)
		}
	}
}

func deep(n int) []byte {
	b := make([]byte, 0, 2*n)
	for i := 0; i < n; i++ {
		b = append(b, '[')
	}
	for i := 0; i < n; i++ {
		b = append(b, ']')
	}
	return b
}

// FuzzCanonicalize: output is valid JSON, a fixed point, and means the
// same as the input.
func FuzzCanonicalize(f *testing.F) {
	for _, s := range []string{`{"b":1,"a":[true,null,"x"]}`, `[1e30,4.50,-0.0]`, `{"\ud83d\ude00":1,"\u20ac":2}`, `"\u0000"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := Canonicalize(in)
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("invalid JSON output %q", out)
		}
		again, err := Canonicalize(out)
		if err != nil || string(again) != string(out) {
			t.Fatalf("not a fixed point: %q -> %q (%v)", out, again, err)
		}
		var a any
		if json.Unmarshal(in, &a) == nil {
			ja, _ := json.Marshal(a)
			if c, err := Canonicalize(ja); err == nil && string(c) != string(out) {
				t.Fatalf("meaning changed: %s vs %s", c, out)
			}
		}
	})
}

// TestIsCanonical: the one-pass check agrees with Canonicalize on the RFC
// vectors (their canonical forms pass, their inputs do not) and on
// near-misses.
func TestIsCanonical(t *testing.T) {
	for _, s := range isCanonicalSeeds {
		checkIsCanonical(t, []byte(s))
	}
}

var isCanonicalSeeds = []string{
	`{"a":[true,null,"x"],"b":1}`, `{"b":1, "a":[true, null, "x"]}`, `{"b":1,"a":2}`, `{"a":1,"a":1}`,
	`{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`,
	"{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\",\"\u00f6\":\"Latin Small Letter O With Diaeresis\",\"\u20ac\":\"Euro Sign\",\"\U0001F600\":\"Emoji: Grinning Face\",\"\ufb33\":\"Hebrew Letter Dalet With Dagesh\"}",
	"{\"\U0001F600\":1,\"\ufb33\":2}", "{\"\ufb33\":1,\"\U0001F600\":2}",
	`[0,0,5e-324,1.7976931348623157e+308,9007199254740992,1e+21,1e-7,0.000001,295147905179352830000,1e+23]`,
	`[-0]`, `[0.0]`, `[1.50]`, `[01]`, `[1E+30]`, `[123456789012345]`, `[1234567890123456789]`, `[-12]`, `[1e400]`,
	`"\u001f\b"`, `"\u001F"`, `"\u0008"`, `"\u0041"`, `"\/"`, `"a\"b"`, `{"\n":1,"\u0001":2}`, `{"\u0001":1,"\n":2}`,
	`[1] `, ` [1]`, `[1,]`, `{}`, `[]`, `{"a":{}}`, `true`, `nul`, `"`, `"\u00`, ``, "\"\xff\"", string(deep(64)), string(deep(66)),
}

func checkIsCanonical(t *testing.T, in []byte) {
	t.Helper()
	out, err := Canonicalize(in)
	want := err == nil && string(out) == string(in)
	if got := IsCanonical(in); got != want {
		t.Errorf("IsCanonical(%.60q) = %v, Canonicalize says %v (%q, %v)", in, got, want, out, err)
	}
}

func FuzzIsCanonical(f *testing.F) {
	for _, s := range isCanonicalSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		checkIsCanonical(t, in)
		if out, err := Canonicalize(in); err == nil {
			checkIsCanonical(t, out)
		}
	})
}

// TestLocalEntry: the hand-written entry is byte-identical to the
// canonical encoding of localEntry.
func TestLocalEntry(t *testing.T) {
	for _, id := range []string{"ab12", "", `q"\` + "\x01<>&\u2028é\U0001F600", "\xff"} {
		rec := &Record{Body: []byte(`{"a":1}`), KeyID: id, Sig: []byte{0, 1, 2, 250, 251}}
		want, err := localEntrySlow(rec)
		if err != nil {
			t.Fatal(err)
		}
		if got := LocalEntry(rec); string(got) != string(want) {
			t.Errorf("key id %q:\n got %s\nwant %s", id, got, want)
		}
	}
}
