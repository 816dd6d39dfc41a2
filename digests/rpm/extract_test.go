package rpm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

func TestExtract(t *testing.T) {
	is := func(p string) func(string) bool { return func(s string) bool { return s == p } }
	ctx := context.Background()
	// Expected digests: fixtures/rpm/*.sums (sha256sum of the staged files).
	for _, pkg := range []string{"gzip-sha256.rpm", "xz-sha256.rpm", "zstd-sha512.rpm", "bzip2-sha512.rpm", "lzma-sha384.rpm"} {
		name, b, err := Extract(ctx, "../../fixtures/rpm/"+pkg, is("/usr/bin/zest-hello"), 1<<20)
		if err != nil {
			t.Fatalf("%s: %v", pkg, err)
		}
		if s := sha256.Sum256(b); name != "/usr/bin/zest-hello" || hex.EncodeToString(s[:]) != "b85e2ea336cd12df4851622b4493818bd0c964d3eb6087e70f1a57881354dbdc" {
			t.Errorf("%s: %s %x", pkg, name, s)
		}
	}
	tests := []struct {
		pkg   string
		match func(string) bool
		max   int64
		want  string
	}{
		{"corrupt-payload.rpm", is("/etc/zest.conf"), 1 << 20, "does not hash to the header's"},
		{"gzip-sha256.rpm", is("/nope"), 1 << 20, "no matching regular file"},
		{"gzip-sha256.rpm", func(s string) bool { return strings.HasPrefix(s, "/usr/") }, 1 << 20, "several matching files"},
		{"gzip-sha256.rpm", is("/usr/bin/zest-hello"), 4, "more than 4"},
		{"truncated.rpm", is("/usr/bin/zest-hello"), 1 << 20, "truncated.rpm"},
	}
	for _, tt := range tests {
		_, _, err := Extract(ctx, "../../fixtures/rpm/"+tt.pkg, tt.match, tt.max)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.pkg, err, tt.want)
		}
	}
}
