package schema

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// genPolicy builds a runtime policy with n paths, shaped like one generated
// from a distribution (long library paths, one sha256 each, a few with two).
func genPolicy(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"meta": {"version": 1, "generator": 3, "timestamp": "2024-09-12 13:44:44.797331"}, "release": 0, "digests": {`)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		sum := sha256.Sum256([]byte{byte(i), byte(i >> 8), byte(i >> 16)})
		fmt.Fprintf(&b, `"/usr/lib/x86_64-linux-gnu/pkg%d/lib%d.so.%d": ["%x"`, i/50, i, i%7, sum)
		if i%10 == 0 {
			fmt.Fprintf(&b, `, "%x"`, sum[:20])
		}
		b.WriteByte(']')
	}
	b.WriteString(`}, "excludes": ["/tmp/", "^/var/log/.*\\.log$", "(?i:/home/[^/]+/\\.cache/)"], "keyrings": {".ima": ["` +
		fmt.Sprintf("%x", sha256.Sum256(nil)) + `"]}, "ima": {"ignored_keyrings": [], "log_hash_alg": "sha1", "dm_policy": null}, "ima-buf": {}, "verification-keys": ""}`)
	return b.Bytes()
}

func TestGeneratedPolicyIsValid(t *testing.T) {
	data := genPolicy(1000)
	if !json.Valid(data) {
		t.Fatal("generator writes invalid JSON")
	}
	if errs := Validate(RuntimePolicy, data, Options{Strict: true}); errs != nil {
		t.Fatalf("%v", errs[0])
	}
}

// BenchmarkValidatePolicy200k: the target is well under a second for
// 200,000 paths. ns/path is the headline; x_json_Valid compares with
// encoding/json merely checking the same bytes, measured in the same run.
func BenchmarkValidatePolicy200k(b *testing.B) {
	const paths = 200_000
	data := genPolicy(paths)
	start := time.Now()
	if !json.Valid(data) {
		b.Fatal("invalid JSON")
	}
	baseline := time.Since(start)
	for _, strict := range []bool{false, true} {
		b.Run(fmt.Sprintf("strict=%v", strict), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if errs := Validate(RuntimePolicy, data, Options{Strict: strict}); errs != nil {
					b.Fatal(errs[0])
				}
			}
			per := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			b.ReportMetric(per/paths, "ns/path")
			b.ReportMetric(per/float64(baseline.Nanoseconds()), "x_json_Valid")
		})
	}
}

func BenchmarkValidateRefstate(b *testing.B) {
	data := readFile(b, "testdata/refstate-secureboot.json")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if errs := Validate(MBRefstate, data, Options{}); errs != nil {
			b.Fatal(errs[0])
		}
	}
}

func BenchmarkCheckExclude(b *testing.B) {
	for b.Loop() {
		if err := CheckExclude(`^/var/log/(?P<unit>[a-z0-9_-]+)/.*\.log$`); err != nil {
			b.Fatal(err)
		}
	}
}
