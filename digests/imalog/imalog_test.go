package imalog

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
)

const fixtures = "../../fixtures/"

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Expected values from shared/reference/ima.md §13 (computed outside zest).
func TestTemplateData(t *testing.T) {
	tests := []struct {
		line      string
		template  string
		name      string
		dataHex   string // full template data, when the reference spells it out
		sha256Hex string // H_sha256(template data): what a >=5.8 kernel extends into the sha256 bank
	}{
		{
			line:     "10 c156ebdcbfcd28fe1060ef4cdec0aab04d3a9b63 ima-ng sha1:19f13b42c2745066347e76454788c0fe083643f3 /init",
			template: "ima-ng", name: "/init",
			dataHex:   "1a000000" + "736861313a00" + "19f13b42c2745066347e76454788c0fe083643f3" + "06000000" + "2f696e697400",
			sha256Hex: "a2a06274888c7f1c392dd3d7b70a0dcc72f09091c48d4f8cfcde130773ccc4ed",
		},
		{
			line:     "10 1d8d532d463c9f8c205d0df7787669a85f93e260 ima-ng sha1:0000000000000000000000000000000000000000 boot_aggregate",
			template: "ima-ng", name: "boot_aggregate",
			sha256Hex: "bba20e8b15e2f5948a181bc922fd1207b9d5ed549585ffa3ab6e44f8aaeb4b16",
		},
		{
			line:     "10 80255d9c7dad91ef5f21b18560a47642d6f4d653 ima-ng sha256:96d7fae8adb7286a419a88f78c13d35fb782d63df654b7db56f154765698b754 /data",
			template: "ima-ng", name: "/data",
			dataHex:   "28000000" + "7368613235363a00" + "96d7fae8adb7286a419a88f78c13d35fb782d63df654b7db56f154765698b754" + "06000000" + "2f6461746100",
			sha256Hex: "ddeae846af6d57e7a7162b3348528796bf0b4f1bb985070d76cd5c2b35f87ee4",
		},
		{
			line:     "10 6309e2c83b7814367bb3912a55e5473454623535 ima-ng sha256:f4845392eca429a4c941a6a07fc32faf843a88c5c3dfa3b9329ab8f4171d9ce3 boot_aggregate",
			template: "ima-ng", name: "boot_aggregate",
			sha256Hex: "28648d7f6d621b067d420dd97425f6874dbf8a779c7cee67d2408fa8096f77cf",
		},
		{
			line:     "10 d7026dc672344d3ee372217bdbc7395947788671 ima 6f66d1d8e2fffcc12dfcb78c04b81fe5b8bbae4e /usr/bin/kmod",
			template: "ima", name: "/usr/bin/kmod",
			dataHex: "6f66d1d8e2fffcc12dfcb78c04b81fe5b8bbae4e" + hex.EncodeToString([]byte("/usr/bin/kmod")) + strings.Repeat("00", 243),
		},
		{
			line:     "10 7936eb315fb4e74b99e7d461bc5c96049e1ee092 ima-ng sha1:bc026ae66d81713e4e852465e980784dc96651f8 /usr/lib/systemd/systemd",
			template: "ima-ng", name: "/usr/lib/systemd/systemd",
		},
		{
			line:     "10 1049ce16a0149404f6c7c4815d9f466ac51d13f7 ima-buf sha256:3b1506f0ce0d28130e896c0777062ae9607e7552764e4fd2601a65259e49303c kernel_version 362e382e30",
			template: "ima-buf", name: "kernel_version",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := ParseLine([]byte(tt.line))
			if err != nil {
				t.Fatal(err)
			}
			if e.Template != tt.template || e.Name() != tt.name || e.PCR != 10 {
				t.Fatalf("parsed %q %q pcr %d", e.Template, e.Name(), e.PCR)
			}
			data := e.AppendTemplateData(nil)
			if tt.dataHex != "" && hex.EncodeToString(data) != tt.dataHex {
				t.Errorf("template data\n got %x\nwant %s", data, tt.dataHex)
			}
			if err := e.CheckTemplateHash(); err != nil {
				t.Errorf("template hash: %v", err)
			}
			if tt.sha256Hex != "" {
				if got := sha256.Sum256(data); hex.EncodeToString(got[:]) != tt.sha256Hex {
					t.Errorf("sha256 bank digest %x, want %s", got, tt.sha256Hex)
				}
			}
		})
	}
}

// Whole-file replay of rust-keylime's 826-record log: final PCR 10 values
// from shared/reference/ima.md §13.2.
func TestReplayRustKeylimeLog(t *testing.T) {
	f, err := os.Open(fixtures + "rust-keylime/keylime-agent/test-data/ima/ascii_runtime_measurements")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := NewReader(f, f.Name())
	var pcr1 [20]byte
	var pcr256 [32]byte
	var c Checker
	n := 0
	for {
		e, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
		if err = c.Check(e); err != nil {
			t.Fatalf("line %d: %v", e.Line, err)
		}
		pcr1 = sha1.Sum(append(pcr1[:], e.TemplateHash...))
		d := sha256.Sum256(c.TemplateData())
		pcr256 = sha256.Sum256(append(pcr256[:], d[:]...))
	}
	if n != 826 {
		t.Errorf("%d records, want 826", n)
	}
	if got := hex.EncodeToString(pcr1[:]); got != "82231c67a69da98dc5b3aa10f6343d33109225fc" {
		t.Errorf("sha1 PCR10 %s", got)
	}
	if got := hex.EncodeToString(pcr256[:]); got != "c4a065637fc6a7c55f2811dd06cb45dd037133be2b3dc5c3e6fbe6bf061db724" {
		t.Errorf("sha256 PCR10 %s", got)
	}
	st, _ := f.Stat()
	if r.Offset() != st.Size() {
		t.Errorf("offset %d, size %d", r.Offset(), st.Size())
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, input, want string
	}{
		{"no fields", "10\n", "log:1: expected"},
		{"bad pcr", "x 0000000000000000000000000000000000000000 ima-ng sha1:00 /a\n", `log:1: PCR "x"`},
		{"bad template hash", "10 zz ima-ng sha1:00 /a\n", "log:1: template hash: bad hex"},
		{"odd template hash", "10 abc ima-ng sha1:00 /a\n", "odd length"},
		{"template hash width", "10 0000 ima-ng sha1:00 /a\n", "template hash of 2 bytes"},
		{"unknown template", "\n10 0000000000000000000000000000000000000000 foo bar\n", "log:2: unknown template \"foo\""},
		{"missing name", "10 0000000000000000000000000000000000000000 ima-ng sha1:0000000000000000000000000000000000000000\n", "expected 2 fields"},
		{"bad digest hex", "10 0000000000000000000000000000000000000000 ima-ng sha256:xyz0 /a\n", "bad hex"},
		{"prefixless wrong size", "10 0000000000000000000000000000000000000000 ima-ng abcd /a\n", "without algorithm prefix has 2 bytes"},
		{"ima-sig bad sig", "10 0000000000000000000000000000000000000000 ima-sig sha1:0000000000000000000000000000000000000000 /a 0x\n", "field 3"},
		{"legacy d size", "10 0000000000000000000000000000000000000000 ima abcd /a\n", "want 20 (sha1) or 16 (md5)"},
		{"custom unsupported field", "10 0000000000000000000000000000000000000000 d-ng|iuid sha1:00 1\n", "unsupported field \"iuid\""},
		{"line 3", "10 1d8d532d463c9f8c205d0df7787669a85f93e260 ima-ng sha1:0000000000000000000000000000000000000000 boot_aggregate\n\n10 x\n", "log:3:"},
		{"too long", "10 " + strings.Repeat("a", MaxLineBytes+10) + "\n", "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tt.input), "log")
			var err error
			for err == nil {
				_, err = r.Next()
			}
			if err == io.EOF || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *ParseError", err)
			}
		})
	}
}

func TestTemplatesAndFields(t *testing.T) {
	tests := []struct {
		line       string
		template   string
		sig, buf   string
		modsig     string
		digestAlg  string
		digestType string
		viol       bool
		pcr        uint32
	}{
		{line: "10 0000000000000000000000000000000000000000 ima-sig sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03 /usr/bin/hello ", template: "ima-sig", digestAlg: "sha256", viol: true},
		{line: "10 0000000000000000000000000000000000000001 ima-sig sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03 /usr/bin/hello 030204f3452d230100", template: "ima-sig", sig: "030204f3452d230100", digestAlg: "sha256"},
		{line: "10 0000000000000000000000000000000000000001 ima-buf sha256:3b1506f0ce0d28130e896c0777062ae9607e7552764e4fd2601a65259e49303c kernel_version 362e382e30", template: "ima-buf", buf: "362e382e30", digestAlg: "sha256"},
		{line: "10 0000000000000000000000000000000000000001 ima-modsig sha256:3b1506f0ce0d28130e896c0777062ae9607e7552764e4fd2601a65259e49303c /lib/modules/x.ko   ", template: "ima-modsig", digestAlg: "sha256"},
		{line: "10 0000000000000000000000000000000000000001 ima-modsig sha256:3b1506f0ce0d28130e896c0777062ae9607e7552764e4fd2601a65259e49303c /lib/modules/x.ko  sha256:3b1506f0ce0d28130e896c0777062ae9607e7552764e4fd2601a65259e49303c aabb", template: "ima-modsig", modsig: "aabb", digestAlg: "sha256"},
		{line: "10 0000000000000000000000000000000000000001 ima-ngv2 verity:sha256:3b1506f0ce0d28130e896c0777062ae9607e7552764e4fd2601a65259e49303c /a", template: "ima-ngv2", digestAlg: "sha256", digestType: "verity"},
		{line: " 9 0000000000000000000000000000000000000001 d-ng|n-ng|sig sm3:3b1506f0ce0d28130e896c0777062ae9607e7552764e4fd2601a65259e49303c /a 03", template: "d-ng|n-ng|sig", sig: "03", digestAlg: "sm3", pcr: 9},
	}
	for _, tt := range tests {
		e, err := ParseLine([]byte(tt.line))
		if err != nil {
			t.Fatalf("%s: %v", tt.line, err)
		}
		if tt.pcr == 0 {
			tt.pcr = 10
		}
		if e.Template != tt.template || hex.EncodeToString(e.Sig) != tt.sig || hex.EncodeToString(e.Buf) != tt.buf ||
			hex.EncodeToString(e.Modsig) != tt.modsig || e.Digest.Algorithm != tt.digestAlg || e.Digest.Type != tt.digestType ||
			e.IsViolation() != tt.viol || e.PCR != tt.pcr {
			t.Errorf("%s: parsed %+v", tt.line, e)
		}
	}
}

// The ima-modsig line without modsig must encode three empty fields.
func TestModsigEmptyFields(t *testing.T) {
	e, err := ParseLine([]byte("10 0000000000000000000000000000000000000001 ima-modsig sha1:0000000000000000000000000000000000000000 /a   "))
	if err != nil {
		t.Fatal(err)
	}
	want := "1a000000736861313a00" + strings.Repeat("00", 20) + "03000000" + "2f6100" + "00000000" + "00000000" + "00000000"
	if got := hex.EncodeToString(e.AppendTemplateData(nil)); got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

func TestEntriesDoNotAliasAcrossLines(t *testing.T) {
	in := "10 c156ebdcbfcd28fe1060ef4cdec0aab04d3a9b63 ima-ng sha1:19f13b42c2745066347e76454788c0fe083643f3 /init\n" +
		"10 80255d9c7dad91ef5f21b18560a47642d6f4d653 ima-ng sha256:96d7fae8adb7286a419a88f78c13d35fb782d63df654b7db56f154765698b754 /data\n"
	r := NewReader(strings.NewReader(in), "x")
	e1, _ := r.Next()
	d1 := bytes.Clone(e1.Digest.Value)
	e2, err := r.Next()
	if err != nil || e2.Line != 2 || e2.Offset != int64(strings.Index(in, "\n")+1) {
		t.Fatalf("%v %+v", err, e2)
	}
	if bytes.Equal(d1, e2.Digest.Value) {
		t.Fatal("digests equal")
	}
}

func FuzzParse(f *testing.F) {
	for _, p := range []string{
		"ima/vectors.txt",
		"keylime/create-runtime-policy/ima-log-sha256",
		"keylime/create-runtime-policy/ima-log-sha1",
		"keylime/create-runtime-policy/ima-log-unknown",
	} {
		b, err := os.ReadFile(fixtures + p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("10 0000000000000000000000000000000000000001 ima-modsig sha1:00 /a   \n 9 00 d-ng|n-ng x:00 y"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), "fuzz")
		for i := 0; i < 1000; i++ {
			e, err := r.Next()
			if err != nil {
				return
			}
			// Re-encoding must never panic and must be deterministic.
			a := e.AppendTemplateData(nil)
			b := e.AppendTemplateData(nil)
			if !bytes.Equal(a, b) {
				t.Fatal("non-deterministic template data")
			}
			_ = e.CheckTemplateHash()
			_, _ = e.Digest.Alg()
		}
	})
}

// readLines reads every line r gives (at most 1000) as text: line number,
// offset, error, line, and the Reader's offset after it.
func readLines(r *Reader) []string {
	var out []string
	for i := 0; i < 1000; i++ {
		line, n, off, err := r.NextLine()
		out = append(out, fmt.Sprintf("%d %d %v %q %d", n, off, err, line, r.Offset()))
		if err != nil && !errors.As(err, new(*ParseError)) {
			break
		}
	}
	return out
}

// An InMemory list reads as the same list through the buffer.
func TestInMemory(t *testing.T) {
	long := func(n int, end string) string { return strings.Repeat("x", n) + end }
	const buf = 256 << 10
	for _, tc := range []struct{ name, in string }{
		{"empty", ""},
		{"lines", "10 00 ima-ng sha1:00 /a\n\n 9 00 d-ng|n-ng x:00 y\r\nlast"},
		{"just over the limit", "a\n" + long(MaxLineBytes, "\n") + "b\n"},
		{"at five buffers", "a\n" + long(5*buf-1, "\n") + "b\n"},
		{"past five buffers", "a\n" + long(5*buf+7, "\n") + "b\n"},
		{"long without newline", "a\n" + long(5*buf, "")},
		{"longer without newline", "a\n" + long(11*buf+3, "")},
		{"longest allowed", long(MaxLineBytes-1, "\n") + "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := readLines(NewReader(strings.NewReader(tc.in), "l"))
			mem := NewReader(InMemory([]byte(tc.in)), "l")
			if !mem.InPlace() {
				t.Fatal("an InMemory list is not read in place")
			}
			if got := readLines(mem); !slices.Equal(got, want) {
				t.Errorf("in memory:\n%.300q\nthrough the buffer:\n%.300q", got, want)
			}
		})
	}
}

// FuzzInMemory: an InMemory list reads as the same list through the
// buffer.
func FuzzInMemory(f *testing.F) {
	b, err := os.ReadFile(fixtures + "ima/vectors.txt")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte("\n\r\n 9 00 d-ng|n-ng x:00 y\r\n\nlast"))
	f.Fuzz(func(t *testing.T, data []byte) {
		want := readLines(NewReader(bytes.NewReader(data), "f"))
		if got := readLines(NewReader(InMemory(data), "f")); !slices.Equal(got, want) {
			t.Errorf("in memory:\n%q\nthrough the buffer:\n%q", got, want)
		}
	})
}
