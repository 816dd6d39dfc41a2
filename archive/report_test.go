package archive

import (
	"bytes"
	"context"
	"flag"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// TestReportHTML renders the report of a window with a rejection and a gap,
// checks the page is self-contained, and screenshots it in headless
// Chromium: the timeline must show trusted green, rejected red and the
// gap's grey. testdata/report.png is the reference screenshot (-update).
func TestReportHTML(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, sqliteDSN(t), 12, map[uint64]bool{8: true, 9: true, 10: true}, 5)
	rep, err := Replay(ctx, f.st, "a1", t0.Add(2*time.Second), t0.Add(26*time.Second), f.opts())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteHTML(&buf, rep); err != nil {
		t.Fatal(err)
	}
	html := buf.String()
	for _, want := range []string{"Not continuously attested", "ima.validation.ima-ng.not_in_allowlist", `class="gap"`, `class="rejected"`, "Every round has a verified inclusion proof"} {
		if !strings.Contains(html, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", "http://", "https://", "<link"} {
		if strings.Contains(html, bad) {
			t.Errorf("report is not self-contained: %q", bad)
		}
	}

	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium not installed")
		}
		t.Skip("chromium not installed")
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	shot := filepath.Join(dir, "report.png")
	os.WriteFile(page, buf.Bytes(), 0o644)
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
		"--window-size=1000,700", "--screenshot="+shot, "file://"+page)
	cmd.Env = append(os.Environ(), "HOME="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	b, err := os.ReadFile(shot)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	colors := map[string][3]uint8{"trusted": {0x43, 0xa0, 0x47}, "rejected": {0xe5, 0x39, 0x35}, "gap": {0xbb, 0xbb, 0xbb}, "verdict banner": {0xc6, 0x28, 0x28}}
	for name, c := range colors {
		if n := countColor(img, c); n < 200 {
			t.Errorf("screenshot shows %d pixels of %s %x", n, name, c)
		}
	}
	golden := "testdata/report.png"
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(golden, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(golden); err != nil {
		t.Errorf("reference screenshot %s missing (run with -update)", golden)
	}
}

func countColor(img image.Image, c [3]uint8) int {
	n := 0
	bd := img.Bounds()
	for y := bd.Min.Y; y < bd.Max.Y; y++ {
		for x := bd.Min.X; x < bd.Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			if near(r>>8, c[0]) && near(g>>8, c[1]) && near(b>>8, c[2]) {
				n++
			}
		}
	}
	return n
}

func near(v uint32, c uint8) bool {
	d := int(v) - int(c)
	return d >= -6 && d <= 6
}
