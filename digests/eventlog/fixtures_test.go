package eventlog

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const fixtureDir = "../../fixtures/eventlog"

// readFixture returns a fixture's bytes; mb_log.b64 is base64-decoded.
func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, name))
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(name, ".b64") {
		b, err = base64.StdEncoding.DecodeString(strings.Join(strings.Fields(string(b)), ""))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	return b
}
