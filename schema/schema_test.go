package schema

import (
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"cuelang.org/go/cue"
)

const keylimeFixtures = "../fixtures/keylime/"

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// withKeys returns the JSON object in base with top-level keys replaced by
// the raw JSON in overrides ("-" deletes the key).
func withKeys(t testing.TB, base []byte, overrides map[string]string) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(base, &m); err != nil {
		t.Fatal(err)
	}
	for k, v := range overrides {
		if v == "-" {
			delete(m, k)
			continue
		}
		if !json.Valid([]byte(v)) {
			t.Fatalf("override %s: invalid JSON %s", k, v)
		}
		m[k] = json.RawMessage(v)
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func errPaths(errs []Error) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Path)
	}
	return out
}

func TestRuntimePolicyFixtures(t *testing.T) {
	tests := []struct {
		file     string
		wantPath []string // nil: valid
		wantMsg  string
	}{
		{"create-runtime-policy/policy-sha1", nil, ""},
		{"create-runtime-policy/policy-sha256", nil, ""},
		{"create-runtime-policy/policy-sha384", nil, ""},
		{"create-runtime-policy/policy-sha512", nil, ""},
		{"create-runtime-policy/policy-sm3_256", nil, ""},
		// A 62-character digest: no algorithm has that length, but it is
		// within Keylime's ^[0-9a-f]{40,128}$ (checked below).
		{"create-runtime-policy/policy-unknown", nil, ""},
		{"sign-runtime-policy/runtime-policy.json", nil, ""},
		// digests is {}: schema-valid (and it accepts no file at all).
		{"sign-runtime-policy/runtime-policy-empty.json", nil, ""},
		// "{\n];\n": Python's json.loads says "Expecting property name
		// enclosed in double quotes: line 2 column 1 (char 2)".
		{"sign-runtime-policy/runtime-policy-bogus.json", []string{"$"}, "invalid JSON at byte 2 (line 2, column 1)"},
		// Keylime's verifier answers 400 "'sha256:4309…' does not match
		// '^[0-9a-f]{40,128}$'" for this file (reference notes §9.3).
		{"runtime-policy-test.json", []string{"$.digests.boot_aggregate[0]"}, `without an algorithm prefix, got "sha256:4309217e`},
	}
	for _, tt := range tests {
		data := readFile(t, keylimeFixtures+tt.file)
		for _, strict := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/strict=%v", tt.file, strict), func(t *testing.T) {
				errs := Validate(RuntimePolicy, data, Options{Strict: strict})
				if !slices.Equal(errPaths(errs), tt.wantPath) {
					t.Fatalf("errors %v, want paths %v", errs, tt.wantPath)
				}
				if tt.wantMsg != "" && !strings.Contains(errs[0].Msg, tt.wantMsg) {
					t.Errorf("message %q, want it to contain %q", errs[0].Msg, tt.wantMsg)
				}
			})
		}
	}

	var unknown struct {
		Digests map[string][]string `json:"digests"`
	}
	if err := json.Unmarshal(readFile(t, keylimeFixtures+"create-runtime-policy/policy-unknown"), &unknown); err != nil {
		t.Fatal(err)
	}
	if n := len(unknown.Digests["/rootfs_data"][0]); n != 62 {
		t.Errorf("policy-unknown digest has %d hex digits, the test expects the 62-digit one", n)
	}
}

func TestSignedPolicyFixtures(t *testing.T) {
	for _, name := range []string{"runtime-policy-test-signed.json", "runtime-policy-test-signed-bad.json"} {
		data := readFile(t, keylimeFixtures+name)
		_, err := Detect(data)
		if !errors.Is(err, ErrDSSEEnvelope) || !strings.Contains(err.Error(), `"application/vnd.keylime+json"`) {
			t.Errorf("%s: Detect error %v, want ErrDSSEEnvelope naming the payload type", name, err)
		}
		// The envelope itself is not a policy: every required key is missing.
		errs := Validate(RuntimePolicy, data, Options{})
		want := []string{"$.digests", "$.excludes", "$.ima", `$["ima-buf"]`, "$.keyrings", "$.meta", "$.release", `$["verification-keys"]`}
		if !slices.Equal(errPaths(errs), want) {
			t.Errorf("%s: %v, want missing %v", name, errs, want)
		}
		// The payload is byte-identical to runtime-policy-test.json
		// (reference notes §9.3) and fails the same way.
		var env struct{ Payload string }
		if err := json.Unmarshal(data, &env); err != nil {
			t.Fatal(err)
		}
		payload, err := base64.StdEncoding.DecodeString(env.Payload)
		if err != nil {
			t.Fatal(err)
		}
		errs = Validate(RuntimePolicy, payload, Options{})
		if !slices.Equal(errPaths(errs), []string{"$.digests.boot_aggregate[0]"}) {
			t.Errorf("%s payload: %v", name, errs)
		}
	}
}

func TestDetect(t *testing.T) {
	tests := []struct {
		name    string
		data    []byte
		want    Kind
		wantErr error
		errText string
	}{
		{"policy", readFile(t, keylimeFixtures+"create-runtime-policy/policy-sha256"), RuntimePolicy, nil, ""},
		{"empty policy", readFile(t, keylimeFixtures+"sign-runtime-policy/runtime-policy-empty.json"), RuntimePolicy, nil, ""},
		{"refstate SB", readFile(t, "testdata/refstate-secureboot.json"), MBRefstate, nil, ""},
		{"refstate no SB", readFile(t, "testdata/refstate-no-secureboot.json"), MBRefstate, nil, ""},
		{"envelope", readFile(t, keylimeFixtures+"runtime-policy-test-signed.json"), "", ErrDSSEEnvelope, "verify its signature"},
		{"bogus", readFile(t, keylimeFixtures+"sign-runtime-policy/runtime-policy-bogus.json"), "", ErrUnrecognized, "invalid JSON at byte 2"},
		{"array", []byte(`[1]`), "", ErrUnrecognized, "top-level value is a list"},
		{"empty object", []byte(`{}`), "", ErrUnrecognized, "empty object"},
		{"legacy allowlist", []byte(`{"meta": {"version": 5}, "hashes": {}}`), RuntimePolicy, nil, ""},
		{"legacy allowlist only hashes", []byte(`{"hashes": {}}`), "", ErrUnrecognized, "legacy Keylime JSON allowlist"},
		{"unrelated", []byte(`{"foo": 1}`), "", ErrUnrecognized, "no keys of a runtime policy"},
		{"tie", []byte(`{"digests": {}, "kernels": []}`), "", ErrUnrecognized, "as many"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Detect(tt.data)
			if got != tt.want || !errors.Is(err, tt.wantErr) || (tt.wantErr != nil && !strings.Contains(err.Error(), tt.errText)) {
				t.Errorf("Detect = %q, %v; want %q, %v containing %q", got, err, tt.want, tt.wantErr, tt.errText)
			}
		})
	}
}

func TestUnknownKind(t *testing.T) {
	errs := Validate("allowlist", []byte(`{}`), Options{})
	if len(errs) != 1 || errs[0].Path != "$" || !strings.Contains(errs[0].Msg, "unknown document kind") {
		t.Errorf("%v", errs)
	}
}

func TestLimits(t *testing.T) {
	defer func(n int) { inputLimit = n }(inputLimit)
	inputLimit = 100
	big := []byte(`{"meta": "` + strings.Repeat("x", 100) + `"}`)
	if errs := Validate(RuntimePolicy, big, Options{}); len(errs) != 1 || !strings.Contains(errs[0].Msg, "more than the limit of 100 bytes") {
		t.Errorf("oversized: %v", errs)
	}
	if _, err := Detect(big); !errors.Is(err, ErrUnrecognized) {
		t.Errorf("oversized Detect: %v", err)
	}
	inputLimit = MaxInputSize
	bom := append([]byte{0xef, 0xbb, 0xbf}, readFile(t, keylimeFixtures+"create-runtime-policy/policy-sha256")...)
	if errs := Validate(RuntimePolicy, bom, Options{}); len(errs) != 1 || !strings.Contains(errs[0].Msg, "byte order mark") {
		t.Errorf("BOM: %v", errs)
	}
	// Many errors: the list is capped and the rest counted.
	var b strings.Builder
	b.WriteString(`{"digests": {`)
	for i := range maxIssues + 5 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"/f%d": []`, i)
	}
	b.WriteString(`}}`)
	errs := Validate(RuntimePolicy, []byte(b.String()), Options{})
	if len(errs) != maxIssues+1 || errs[len(errs)-1].Msg != "12 more errors not shown" {
		t.Errorf("got %d errors, last %v", len(errs), errs[len(errs)-1])
	}
}

func TestEvaluationBudget(t *testing.T) {
	defer func(n int) { maxEvaluations = n }(maxEvaluations)
	maxEvaluations = 5
	data := withKeys(t, readFile(t, keylimeFixtures+"create-runtime-policy/policy-sha256"), map[string]string{
		"excludes": `["/a/", "/b/", "/c/", "/d/", "/e/", "/f/"]`,
	})
	errs := Validate(RuntimePolicy, data, Options{})
	if len(errs) != 1 || errs[0].Path != "$" || !strings.Contains(errs[0].Msg, "validation stopped after 5 checks") {
		t.Errorf("%v", errs)
	}
}

func TestErrorString(t *testing.T) {
	e := Error{Path: "$.meta.version", Msg: `must be an integer >= 0, got "x"`}
	if got, want := e.Error(), `$.meta.version: must be an integer >= 0, got "x"`; got != want {
		t.Errorf("%q, want %q", got, want)
	}
}

func TestPathString(t *testing.T) {
	tests := []struct {
		p    jpath
		want string
	}{
		{nil, "$"},
		{jpath{}.key("meta").key("version"), "$.meta.version"},
		{jpath{}.key("digests").key("/usr/bin/x").idx(0), `$.digests["/usr/bin/x"][0]`},
		{jpath{}.key("ima-buf").key("kernel_version").idx(0), `$["ima-buf"].kernel_version[0]`},
		{jpath{}.key("_x9").key("9x").key(""), `$._x9["9x"][""]`},
		{jpath{}.key("a\"b\\c\nd\x01é<>"), `$["a\"b\\c\nd\u0001é<>"]`},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("%q, want %q", got, tt.want)
		}
	}
}

func TestErrorsSortedNumerically(t *testing.T) {
	digests := `{"/b": ["x","x","x","x","x","x","x","x","x","x","x"], "/a": [], "/b/": ["X"]}`
	data := withKeys(t, readFile(t, keylimeFixtures+"create-runtime-policy/policy-sha256"), map[string]string{"digests": digests})
	got := errPaths(Validate(RuntimePolicy, data, Options{}))
	want := []string{`$.digests["/a"]`}
	for i := range 11 {
		want = append(want, fmt.Sprintf(`$.digests["/b"][%d]`, i))
	}
	want = append(want, `$.digests["/b/"][0]`)
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

// TestAllErrorsAtOnce: one document breaking rules in every part of the
// policy; every violation must be reported in one call.
func TestAllErrorsAtOnce(t *testing.T) {
	doc := `{
	  "meta": {"version": "1", "timestamp": 7},
	  "release": -1,
	  "digests": {"/bin/sh": ["SHA"], "/bin/ls": []},
	  "excludes": ["(?i)/tmp", 5],
	  "keyrings": {".ima": "x"},
	  "ima": {"ignored_keyrings": [1], "log_hash_alg": "md5"},
	  "ima-buf": [],
	  "verification-keys": "{\"keyids\": [\"1\"]}"
	}`
	got := Validate(RuntimePolicy, []byte(doc), Options{})
	want := []string{
		`$.digests["/bin/ls"]`,
		`$.digests["/bin/sh"][0]`,
		`$.excludes[0]`,
		`$.excludes[1]`,
		`$.ima.dm_policy`,
		`$.ima.ignored_keyrings[0]`,
		`$.ima.log_hash_alg`,
		`$["ima-buf"]`,
		`$.keyrings[".ima"]`,
		`$.meta.generator`,
		`$.meta.timestamp`,
		`$.meta.version`,
		`$.release`,
		`$["verification-keys"]`, // keyids[0] is a string
		`$["verification-keys"]`, // pubkeys missing
	}
	if !slices.Equal(errPaths(got), want) {
		t.Errorf("got:\n%s\nwant paths %q", joinErrors(got), want)
	}
}

func joinErrors(errs []Error) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString("  " + e.Error() + "\n")
	}
	return b.String()
}

func TestConcurrentValidate(t *testing.T) {
	policy := readFile(t, keylimeFixtures+"runtime-policy-test.json")
	refstate := readFile(t, "testdata/refstate-secureboot.json")
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3 {
				if errs := Validate(RuntimePolicy, policy, Options{Strict: i%2 == 0}); len(errs) != 1 {
					t.Errorf("policy: %v", errs)
				}
				if errs := Validate(MBRefstate, refstate, Options{}); errs != nil {
					t.Errorf("refstate: %v", errs)
				}
			}
		}()
	}
	wg.Wait()
}

// TestSchemaAnnotations walks every definition: each node a message can
// name must carry an @expect, and every @check must be implemented.
func TestSchemaAnnotations(t *testing.T) {
	c, err := load()
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	w := &walker{c: c}
	var visit func(n *node, pat string, depth int)
	visit = func(n *node, pat string, depth int) {
		if depth > 10 {
			t.Fatalf("%s: too deep", pat)
		}
		if !n.expectSet {
			t.Errorf("%s: no @expect", pat)
		}
		if n.check != "" && !checkNames[n.check] {
			t.Errorf("%s: unknown @check(%s)", pat, n.check)
		}
		if n.kind&cue.StructKind != 0 {
			n.loadFields()
			for _, name := range n.order {
				f := n.fields[name]
				visit(w.info(f.v, pat+"."+name), pat+"."+name, depth+1)
			}
			if n.pattern != nil {
				visit(w.info(*n.pattern, pat+".*"), pat+".*", depth+1)
			}
		}
		if n.kind&cue.ListKind != 0 {
			n.loadList()
			for i := 0; i <= len(n.prefix); i++ {
				if es, epat, ok := n.elem(i, pat); ok {
					visit(w.info(es, epat), epat, depth+1)
				}
			}
		}
	}
	for name, v := range map[string]*node{
		"#RuntimePolicy":  w.info(c.runtimePolicy, "#RuntimePolicy"),
		"#IMAKeyring":     w.info(c.imaKeyring, "#IMAKeyring"),
		"#MBRefstateSB":   w.info(c.mbSB, "#MBRefstateSB"),
		"#MBRefstateNoSB": w.info(c.mbNoSB, "#MBRefstateNoSB"),
	} {
		visit(v, name, 0)
	}
}

// pemDER returns the base64 of the DER inside a PEM file, decoded with the
// standard library (independent of the code under test).
func pemDER(t testing.TB, name string) string {
	t.Helper()
	block, _ := pem.Decode(readFile(t, name))
	if block == nil {
		t.Fatalf("%s: no PEM block", name)
	}
	return base64.StdEncoding.EncodeToString(block.Bytes)
}

func seedFiles(tb testing.TB) [][]byte {
	var names []string
	for _, pattern := range []string{
		keylimeFixtures + "create-runtime-policy/policy-*",
		keylimeFixtures + "sign-runtime-policy/*.json",
		keylimeFixtures + "runtime-policy-test*.json",
		"testdata/*.json",
	} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			tb.Fatal(err)
		}
		names = append(names, m...)
	}
	if len(names) < 10 {
		tb.Fatalf("only %d seed files found", len(names))
	}
	var out [][]byte
	for _, n := range names {
		out = append(out, readFile(tb, n))
	}
	return out
}
