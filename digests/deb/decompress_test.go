package deb

import (
	"bufio"
	"bytes"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

func xzCompress(t *testing.T, data []byte, args ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath("xz"); err != nil {
		t.Skip("needs xz")
	}
	cmd := exec.Command("xz", append([]string{"-c"}, args...)...)
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestXzGuard: multi-block streams (as xz -T writes) with each check type
// pass through the guard unchanged, and a block header asking for a
// dictionary above MaxWindow is refused, in the first block or a later one.
func TestXzGuard(t *testing.T) {
	var text strings.Builder
	for i := range 200000 {
		text.WriteString(strconv.Itoa(i * 7919))
		text.WriteByte('\n')
	}
	data := []byte(text.String())
	for _, args := range [][]string{
		{"-6"},
		{"--block-size=100000", "--check=crc32"},
		{"--block-size=65536", "--check=sha256", "-1"},
		{"--block-size=50000", "--check=none", "-0"},
	} {
		comp := xzCompress(t, data, args...)
		dec, _, err := decompress(compXz, bufio.NewReader(bytes.NewReader(comp)))
		if err != nil {
			t.Fatal(args, err)
		}
		got, err := io.ReadAll(dec)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%v: %d bytes, %v", args, len(got), err)
		}
	}
	comp := xzCompress(t, data, "--block-size=100000")
	// Find every block header's LZMA2 properties byte and set it to 40
	// (a 4 GiB dictionary), first in the first block, then in the second.
	var props []int
	g := &xzGuard{br: bufio.NewReader(bytes.NewReader(comp))}
	for off := 0; ; {
		if g.state == xzBlockOrIndex && g.pass == 0 {
			if b, _ := g.br.Peek(8); len(b) == 8 && b[0] != 0 && b[1] == 0 && b[2] == 0x21 && b[3] == 1 {
				props = append(props, off+4)
			}
		}
		n, err := g.Read(make([]byte, 1))
		off += n
		if err != nil {
			break
		}
	}
	if len(props) < 2 {
		t.Fatalf("found %d block headers", len(props))
	}
	for _, p := range props[:2] {
		bad := bytes.Clone(comp)
		bad[p] = 40
		dec, _, err := decompress(compXz, bufio.NewReader(bytes.NewReader(bad)))
		if err == nil {
			_, err = io.ReadAll(dec)
		}
		if err == nil || !strings.Contains(err.Error(), "dictionary of 4294967295 bytes") {
			t.Errorf("props at %d: error %v", p, err)
		}
	}
}
