package dsse

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func addSeeds(f *testing.F, patterns ...string) {
	for _, p := range patterns {
		files, _ := filepath.Glob(p)
		if len(files) == 0 {
			f.Fatalf("no seeds for %s", p)
		}
		for _, file := range files {
			f.Add(readFile(f, file))
		}
	}
}

func FuzzParseEnvelope(f *testing.F) {
	addSeeds(f, keylime+"runtime-policy-test-signed*.json", osslDir+"*.json")
	pub := loadPub(f, keylime+"runtime-policy-pubkey.pub")
	f.Fuzz(func(t *testing.T, data []byte) {
		IsEnvelope(data)
		env, err := ParseEnvelope(data)
		if err != nil {
			return
		}
		if !IsEnvelope(data) {
			t.Fatal("ParseEnvelope accepted what IsEnvelope rejects")
		}
		out := env.MarshalKeylime()
		back, err := ParseEnvelope(out)
		if err != nil {
			t.Fatalf("MarshalKeylime output does not parse: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(env, back) {
			t.Fatalf("round trip changed the envelope:\n%+v\n%+v", env, back)
		}
		if !bytes.Equal(back.MarshalKeylime(), out) {
			t.Fatal("MarshalKeylime is not stable")
		}
		_, _ = Verify(env, pub)
	})
}

func FuzzPythonJSON(f *testing.F) {
	addSeeds(f, fixtures+"dsse/pyjson/*.json", keylime+"runtime-policy-test-signed.json")
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := PythonJSON(in)
		if err != nil {
			return
		}
		for _, c := range out {
			if c < 0x20 || c > 0x7e {
				t.Fatalf("non-printable-ASCII byte %#x in output", c)
			}
		}
		vin, err := decodeNumbers(in)
		if err != nil {
			t.Fatalf("PythonJSON accepted input encoding/json rejects: %v", err)
		}
		vout, err := decodeNumbers(out)
		if err != nil {
			t.Fatalf("output is not JSON: %v\n%q", err, out)
		}
		if !sameValue(vin, vout) {
			t.Fatalf("value changed:\n in %q\nout %q", in, out)
		}
		again, err := PythonJSON(out)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: %v\n%q\n%q", err, out, again)
		}
	})
}

func decodeNumbers(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, fmt.Errorf("trailing data")
	}
	return v, nil
}

// sameValue compares decoded documents the way Python sees them: integers
// exactly (with -0 == 0), other numbers as float64.
func sameValue(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if w, ok := y[k]; !ok || !sameValue(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !sameValue(x[i], y[i]) {
				return false
			}
		}
		return true
	case json.Number:
		y, ok := b.(json.Number)
		if !ok {
			return false
		}
		if !strings.ContainsAny(string(x), ".eE") {
			canon := func(n json.Number) string { return strings.Replace(string(n), "-0", "0", 1) } // only "-0" can start so
			return canon(x) == canon(y)
		}
		fx, err1 := strconv.ParseFloat(string(x), 64)
		fy, err2 := strconv.ParseFloat(string(y), 64)
		return err1 == nil && err2 == nil && fx == fy
	}
	return reflect.DeepEqual(a, b)
}
