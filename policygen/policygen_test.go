package policygen

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/zest-attest/zest/digests"
	"github.com/zest-attest/zest/digests/fstree"
	"github.com/zest-attest/zest/digests/imalog"
)

const fx = "../fixtures/"
const kl = fx + "keylime/create-runtime-policy/"

// keylimeFields is the field set of Keylime's runtime policy format v1
// (RUNTIME_POLICY_SCHEMA and EMPTY_RUNTIME_POLICY in keylime/ima/ima.py, as
// listed in shared/reference/keylime-runtime-policy.md §2.1), written down
// independently of zest's encoder.
var keylimeFields = []string{
	"meta", "meta.version", "meta.generator", "meta.timestamp",
	"release", "digests", "excludes", "keyrings",
	"ima", "ima.ignored_keyrings", "ima.log_hash_alg", "ima.dm_policy",
	"ima-buf", "verification-keys",
}

// fieldSet lists the object keys of v down to (not into) the name->digests maps.
func fieldSet(t *testing.T, data []byte) []string {
	t.Helper()
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		t.Fatal(err)
	}
	var out []string
	for k, v := range top {
		out = append(out, k)
		if k == "meta" || k == "ima" {
			var sub map[string]json.RawMessage
			if err := json.Unmarshal(v, &sub); err != nil {
				t.Fatal(err)
			}
			for s := range sub {
				out = append(out, k+"."+s)
			}
		}
	}
	sort.Strings(out)
	return out
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// imaBufLine builds an ima-buf record with a correct template hash.
func imaBufLine(t *testing.T, name string, buf []byte) string {
	t.Helper()
	d := sha256.Sum256(buf)
	line := fmt.Sprintf("10 %s ima-buf sha256:%x %s %x", strings.Repeat("11", 20), d, name, buf)
	e, err := imalog.ParseLine([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	th := sha1.Sum(e.AppendTemplateData(nil))
	return fmt.Sprintf("10 %x ima-buf sha256:%x %s %x", th, d, name, buf)
}

func selfSignedCert(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(fx + "keylime/ima_keys/rsa2048.pem")
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	key, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		k1, err1 := x509.ParsePKCS1PrivateKey(blk.Bytes)
		if err1 != nil {
			t.Fatal(err)
		}
		key = k1
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "zest-ima-test"},
		NotBefore: time.Unix(1704067200, 0), NotAfter: time.Unix(2019686400, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.(crypto.Signer).Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestGeneratedPolicyHasKeylimeFieldSet(t *testing.T) {
	dir := t.TempDir()
	cert := selfSignedCert(t)
	log := writeFile(t, dir, "log", strings.Join([]string{
		"10 6309e2c83b7814367bb3912a55e5473454623535 ima-ng sha256:f4845392eca429a4c941a6a07fc32faf843a88c5c3dfa3b9329ab8f4171d9ce3 boot_aggregate",
		"10 80255d9c7dad91ef5f21b18560a47642d6f4d653 ima-ng sha256:96d7fae8adb7286a419a88f78c13d35fb782d63df654b7db56f154765698b754 /data",
		imaBufLine(t, ".ima", cert),
		"10 1049ce16a0149404f6c7c4815d9f466ac51d13f7 ima-buf sha256:3b1506f0ce0d28130e896c0777062ae9607e7552764e4fd2601a65259e49303c kernel_version 362e382e30",
	}, "\n")+"\n")
	ex := writeFile(t, dir, "ex", "# tmp files\n^/tmp/\n\n/var/log/\n")
	p, rep, err := GenerateRuntime(context.Background(), RuntimeOptions{
		IMALogs: []string{log}, Keyrings: true, IMABuf: true, ExcludeFiles: []string{ex},
		VerificationKeys: []string{fx + "keylime/ima_keys/rsa2048pub.pem"},
		Timestamp:        time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []Format{FormatPretty, FormatKeylime} {
		data, err := p.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		got := fieldSet(t, data)
		want := slices.Clone(keylimeFields)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Errorf("format %d field set\n got %v\nwant %v", f, got, want)
		}
		var vk struct {
			VK string `json:"verification-keys"`
		}
		json.Unmarshal(data, &vk)
		var keyring map[string]json.RawMessage
		if err := json.Unmarshal([]byte(vk.VK), &keyring); err != nil || len(keyring) != 2 || keyring["pubkeys"] == nil || keyring["keyids"] == nil {
			t.Errorf("verification-keys %q is not Keylime's {pubkeys, keyids} document", vk.VK)
		}
	}
	certDigest := sha256.Sum256(cert)
	if got := p.Keyrings[".ima"]; !slices.Equal(got, []string{hex.EncodeToString(certDigest[:])}) {
		t.Errorf("keyrings .ima = %v", got)
	}
	if got := p.IMABuf["kernel_version"]; !slices.Equal(got, []string{"3b1506f0ce0d28130e896c0777062ae9607e7552764e4fd2601a65259e49303c"}) {
		t.Errorf("ima-buf = %v", p.IMABuf)
	}
	if _, ok := p.Digests[".ima"]; ok {
		t.Error("key measurement leaked into digests")
	}
	if !slices.Equal(p.Excludes, []string{"/var/log/", "^/tmp/"}) {
		t.Errorf("excludes %v", p.Excludes)
	}
	if !strings.Contains(p.VerificationKeys, "4081397027") { // keyidv2 0xf3452d23 (reference §9.4)
		t.Errorf("verification-keys %s", p.VerificationKeys)
	}
	if p.Meta.Timestamp != "2026-11-25 10:00:00" || rep.Algorithm != digests.SHA256 {
		t.Errorf("timestamp %q algorithm %s", p.Meta.Timestamp, rep.Algorithm)
	}

	// Ignored keyrings are not added; without --keyrings/--ima-buf nothing is.
	p2, _, err := GenerateRuntime(context.Background(), RuntimeOptions{IMALogs: []string{log}, Keyrings: true, IgnoredKeyrings: []string{".ima"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(p2.Keyrings) != 0 || len(p2.IMABuf) != 0 || !slices.Equal(p2.IMA.IgnoredKeyrings, []string{".ima"}) {
		t.Errorf("keyrings %v ima-buf %v ignored %v", p2.Keyrings, p2.IMABuf, p2.IMA.IgnoredKeyrings)
	}
}

func TestRegenerationIsByteIdentical(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < 50; i++ {
		sub := filepath.Join(dir, fmt.Sprintf("d%d", i%7))
		os.MkdirAll(sub, 0o755)
		writeFile(t, sub, fmt.Sprintf("f %d", i), strings.Repeat("x", i*100))
	}
	gen := func() []byte {
		p, _, err := GenerateRuntime(context.Background(), RuntimeOptions{
			IMALogs: []string{kl + "ima-log-sha256"},
			HashSources: []HashSource{{Name: "rootfs", Open: func(alg digests.Algorithm) (digests.Source, error) {
				return fstree.New(fstree.Options{Root: dir, Algorithm: alg})
			}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		b, err := p.Marshal(FormatPretty)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b := gen(), gen()
	if !bytes.Equal(a, b) {
		t.Fatal("two runs over the same inputs differ")
	}
	if !bytes.Contains(a, []byte(`"/d3/f_10": [`)) { // spaces written as IMA writes them
		t.Errorf("missing /d3/f_10 in\n%s", a)
	}
	// A changed file shows in the diff.
	writeFile(t, filepath.Join(dir, "d3"), "f 10", "changed")
	c := gen()
	pa, _ := ParseRuntimePolicy(a, "a")
	pc, _ := ParseRuntimePolicy(c, "c")
	d, err := Compare(pa, pc)
	if err != nil {
		t.Fatal(err)
	}
	if d.Equal || len(d.Digests.Changed) != 1 || d.Digests.Changed[0].Name != "/d3/f_10" || len(d.Digests.Added)+len(d.Digests.Removed) != 0 {
		t.Errorf("diff %+v", d.Digests)
	}
}

func TestMarshalRefusesInvalidUTF8(t *testing.T) {
	p := NewRuntimePolicy()
	p.Digests["/bad\xff"] = []string{strings.Repeat("a", 64)}
	if _, err := p.Marshal(FormatPretty); err == nil || !strings.Contains(err.Error(), "not valid UTF-8") {
		t.Fatalf("err %v", err)
	}
}

func TestMarshalEscapes(t *testing.T) {
	p := NewRuntimePolicy()
	p.Digests["/a\"b\\c<d>&é\U0001F600\n"] = []string{strings.Repeat("a", 40)}
	k, err := p.Marshal(FormatKeylime)
	if err != nil {
		t.Fatal(err)
	}
	// Python json.dumps(ensure_ascii=True) of the same key.
	if want := `"/a\"b\\c<d>&\u00e9\ud83d\ude00\n"`; !bytes.Contains(k, []byte(want)) {
		t.Errorf("keylime format %s, want key %s", k, want)
	}
	pr, _ := p.Marshal(FormatPretty)
	var loose struct {
		Digests map[string][]string `json:"digests"`
	}
	if err := json.Unmarshal(pr, &loose); err != nil || loose.Digests["/a\"b\\c<d>&é\U0001F600\n"] == nil {
		t.Errorf("pretty output does not round-trip: %v %s", err, pr)
	}
}

func TestMergeAndCompare(t *testing.T) {
	a := NewRuntimePolicy()
	a.Digests["/a"] = []string{strings.Repeat("1", 64)}
	a.Digests["/b"] = []string{strings.Repeat("2", 64)}
	a.Excludes = []string{"^/tmp/"}
	b := NewRuntimePolicy()
	b.Digests["/b"] = []string{strings.Repeat("3", 64)}
	b.Digests["/c"] = []string{strings.Repeat("4", 64)}
	b.Release = 7
	m, err := Merge(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Digests) != 3 || len(m.Digests["/b"]) != 2 || m.Release != 7 || len(m.Excludes) != 1 {
		t.Errorf("merged %+v", m)
	}
	d, err := Compare(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if d.Equal || len(d.Digests.Added) != 1 || len(d.Digests.Removed) != 1 || len(d.Digests.Changed) != 1 ||
		len(d.Excludes.Removed) != 1 || d.Release == nil {
		t.Errorf("diff %+v", d)
	}
	same, _ := Compare(a, a)
	if !same.Equal {
		t.Error("a policy differs from itself")
	}
	c := NewRuntimePolicy()
	c.IMA.LogHashAlg = "sha256"
	if _, err := Merge(a, c); err == nil || !strings.Contains(err.Error(), "log_hash_alg") {
		t.Errorf("merge with different log_hash_alg: %v", err)
	}
}

func TestConvert(t *testing.T) {
	flat := "# comment line\n96d7fae8adb7286a419a88f78c13d35fb782d63df654b7db56f154765698b754  /usr/bin/my file\n" +
		"a27f78633e1620766b7e03bceebb9c36327c39667789c63d3cd5ea5fdb9b3da0  %keyring:.ima\n\n" +
		"0000000000000000000000000000000000000000  boot_aggregate\n"
	tests := []struct {
		name, in string
		kind     InputKind
		check    func(*RuntimePolicy) bool
	}{
		{"flat", flat, KindFlatAllowlist, func(p *RuntimePolicy) bool {
			return len(p.Digests) == 2 && p.Digests["/usr/bin/my_file"] != nil && p.Keyrings[".ima"] != nil
		}},
		{"json allowlist", `{"meta":{"version":5,"generator":2,"checksum":""},"release":3,"hashes":{"/a":["` + strings.Repeat("ab", 20) + `"]},"keyrings":{},"ima":{"ignored_keyrings":["x"],"log_hash_alg":"sha256"}}`,
			KindJSONAllowlist, func(p *RuntimePolicy) bool {
				return p.Release == 3 && p.Digests["/a"] != nil && p.IMA.LogHashAlg == "sha256" && p.IMA.IgnoredKeyrings[0] == "x"
			}},
		{"verifier record", `{"allowlist":{"hashes":{"/a":["` + strings.Repeat("ab", 20) + `"]}},"exclude":["^/tmp/"]}`,
			KindVerifierRecord, func(p *RuntimePolicy) bool { return p.Excludes[0] == "^/tmp/" && p.Digests["/a"] != nil }},
		{"old policy", `{"meta":{"version":0},"release":0,"digests":{"/a":["` + strings.Repeat("ab", 20) + `"]},"excludes":[]}`,
			KindOldPolicy, func(p *RuntimePolicy) bool { return p.Meta.Generator == GeneratorCompatible && p.Meta.Version == 1 }},
	}
	for _, tt := range tests {
		p, kind, err := Convert([]byte(tt.in), tt.name)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if kind != tt.kind || !tt.check(p) {
			t.Errorf("%s: kind %s policy %+v", tt.name, kind, p)
		}
	}
	for _, bad := range []string{`{"foo":1}`, `{"hashes":{"/a":["XYZ"]}}`, "zz  /a\n", `{"allowlist":{"hashes":{}},"exclude":["(?i)x"]}`} {
		if _, _, err := Convert([]byte(bad), "bad"); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

func TestExcludeErrorsNameLine(t *testing.T) {
	dir := t.TempDir()
	ex := writeFile(t, dir, "ex", "^/ok/\n\n(unclosed\n")
	_, err := ReadExcludes(ex)
	if err == nil || !strings.HasPrefix(err.Error(), ex+":3: ") {
		t.Fatalf("err %v", err)
	}
}

func TestIMALogErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct{ log, want string }{
		{"10 6309e2c83b7814367bb3912a55e5473454623535 ima-ng sha256:f4845392eca429a4c941a6a07fc32faf843a88c5c3dfa3b9329ab8f4171d9ce3 boot_aggregate\n10 nothex ima-ng sha1:00 /x\n", ":2: template hash: bad hex"},
		{"10 1111111111111111111111111111111111111111 ima-ng sha256:f4845392eca429a4c941a6a07fc32faf843a88c5c3dfa3b9329ab8f4171d9ce3 /x\n", ":1: template hash 1111"},
	}
	for _, tt := range tests {
		f := writeFile(t, dir, "log", tt.log)
		_, _, err := GenerateRuntime(context.Background(), RuntimeOptions{IMALogs: []string{f}})
		if err == nil || !strings.Contains(err.Error(), f+tt.want) {
			t.Errorf("err %v, want %q", err, tt.want)
		}
	}
}

// A legacy "ima" record may carry an md5 digest (32 hex digits), which
// Keylime's schema refuses: generation must fail, naming the path.
func TestMD5DigestRefused(t *testing.T) {
	dir := t.TempDir()
	line := "10 0000000000000000000000000000000000000001 ima 0123456789abcdef0123456789abcdef /usr/bin/old tool"
	e, err := imalog.ParseLine([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	th := sha1.Sum(e.AppendTemplateData(nil))
	f := writeFile(t, dir, "log", fmt.Sprintf("10 %x ima 0123456789abcdef0123456789abcdef /usr/bin/old tool\n", th))
	_, _, err = GenerateRuntime(context.Background(), RuntimeOptions{IMALogs: []string{f}})
	if err == nil || !strings.Contains(err.Error(), `$.digests["/usr/bin/old tool"][0]: 32 hex digits`) {
		t.Fatalf("err %v", err)
	}
}
