package allowlist

import (
	"bytes"
	"encoding/hex"
	"io"
	"os"
	"strings"
	"testing"
)

func readAll(t *testing.T, in string) ([]Entry, error) {
	t.Helper()
	r := NewReader(strings.NewReader(in), "al")
	var out []Entry
	for {
		e, err := r.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, *e)
	}
}

func TestParse(t *testing.T) {
	sha1 := "009b0d8ee8fb8d890fa70f9c8e02b3f1eded1509"
	sha256 := "96d7fae8adb7286a419a88f78c13d35fb782d63df654b7db56f154765698b754"
	in := "# comment line\n" +
		sha256 + "  /usr/bin/my file\n" +
		"\n" +
		"  " + sha1 + "\tdata  \n" +
		sha256 + " *binary\n" +
		"a27f78633e1620766b7e03bceebb9c36327c39667789c63d3cd5ea5fdb9b3da0  %keyring:.ima\n" +
		"\\" + sha1 + "  /odd\\nname\n" +
		strings.ToUpper(sha1) + "  /upper\n"
	got, err := readAll(t, in)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		line          int
		path, keyring string
		hex           string
	}{
		{2, "/usr/bin/my_file", "", sha256},
		{4, "data", "", sha1},
		{5, "binary", "", sha256},
		{6, "", ".ima", "a27f78633e1620766b7e03bceebb9c36327c39667789c63d3cd5ea5fdb9b3da0"},
		{7, "/odd\nname", "", sha1},
		{8, "/upper", "", sha1},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries: %+v", len(got), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Line != w.line || g.Path != w.path || g.Keyring != w.keyring || hex.EncodeToString(g.Value) != w.hex {
			t.Errorf("entry %d = %+v, want %+v", i, g, w)
		}
	}
}

func TestErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"abc\n", "al:1: expected"},
		{"# x\nzz  /a\n", "al:2: digest \"zz\" is not a hex string"},
		{"abc  /a\n", "not a hex string"},
		{"38debce1fb87347226e0c14d0084ef5c  data\n", "32-character digest matches no supported algorithm"},
		{"009b0d8ee8fb8d890fa70f9c8e02b3f1eded1509  %keyring:\n", "no keyring name"},
		{strings.Repeat("a", MaxLineBytes+1), "al:1: line longer than"},
	}
	for _, tt := range tests {
		_, err := readAll(t, tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%.40q: error %v, want %q", tt.in, err, tt.want)
		}
	}
}

func TestKeylimeFixtures(t *testing.T) {
	for alg, n := range map[string]int{"sha1": 20, "sha256": 32, "sha384": 48, "sha512": 64, "sm3_256": 32} {
		b, err := os.ReadFile("../../fixtures/keylime/create-runtime-policy/allowlist-" + alg)
		if err != nil {
			t.Fatal(err)
		}
		got, err := readAll(t, string(b))
		if err != nil || len(got) != 1 || got[0].Path != "data" || len(got[0].Value) != n {
			t.Errorf("%s: %v %+v", alg, err, got)
		}
	}
}

func FuzzReader(f *testing.F) {
	for _, alg := range []string{"sha1", "sha256", "unknown"} {
		b, _ := os.ReadFile("../../fixtures/keylime/create-runtime-policy/allowlist-" + alg)
		f.Add(b)
	}
	f.Add([]byte("# c\n\\0000000000000000000000000000000000000000 *%keyring:x\\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), "fuzz")
		for {
			e, err := r.Next()
			if err != nil {
				return
			}
			if (e.Path == "") == (e.Keyring == "") {
				t.Fatalf("entry with path %q keyring %q", e.Path, e.Keyring)
			}
			if _, _, err := e.Algorithm(); err != nil {
				t.Fatalf("accepted digest of unsupported length: %v", err)
			}
		}
	})
}
