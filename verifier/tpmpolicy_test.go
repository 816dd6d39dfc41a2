package verifier

import (
	"strings"
	"testing"
)

func TestParseTPMPolicy(t *testing.T) {
	z32 := strings.Repeat("00", 32)
	tests := []struct {
		name, in string
		mask     uint32
		pcrs     int
		err      string
	}{
		{"object", `{"15":["` + z32 + `"],"mask":"0x8000"}`, 0x8000, 1, ""},
		{"double encoded", `"{\"15\":[\"` + z32 + `\"],\"mask\":\"0x8000\"}"`, 0x8000, 1, ""},
		{"mask only", `{"mask":"0x10401"}`, 0x10401, 0, ""},
		{"mask derived", `{"7":["` + z32 + `"]}`, 0x80, 1, ""},
		{"single string", `{"7":"` + z32 + `"}`, 0x80, 1, ""},
		{"pcr 10", `{"10":["` + z32 + `"]}`, 0, 0, "reserved"},
		{"pcr 16", `{"16":["` + z32 + `"]}`, 0, 0, "reserved"},
		{"pcr 24", `{"24":["` + z32 + `"]}`, 0, 0, "PCR number"},
		{"leading zero", `{"07":["` + z32 + `"]}`, 0, 0, "PCR number"},
		{"bad hex", `{"7":["zz"]}`, 0, 0, "hex digest"},
		{"short digest", `{"7":["0011"]}`, 0, 0, "hex digest"},
		{"bad mask", `{"mask":"0x1000000"}`, 0, 0, "above 23"},
		{"not object", `[1]`, 0, 0, "not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParseTPMPolicy([]byte(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Mask != tt.mask || len(p.Allowed) != tt.pcrs {
				t.Fatalf("mask %#x pcrs %d, want %#x %d", p.Mask, len(p.Allowed), tt.mask, tt.pcrs)
			}
		})
	}
}

func TestMask(t *testing.T) {
	m, err := ParseMask("10401")
	if err != nil || m != 0x10401 {
		t.Fatal(m, err)
	}
	if got := MaskPCRs(m); len(got) != 3 || got[0] != 0 || got[1] != 10 || got[2] != 16 {
		t.Fatal(got)
	}
	if FormatMask(m) != "0x10401" {
		t.Fatal(FormatMask(m))
	}
	for _, bad := range []string{"", "0x", "xyz", "123456789"} {
		if _, err := ParseMask(bad); err == nil {
			t.Errorf("ParseMask(%q) accepted", bad)
		}
	}
}

func FuzzParseTPMPolicy(f *testing.F) {
	f.Add([]byte(`{"15":["` + strings.Repeat("ab", 32) + `"],"mask":"0x8000"}`))
	f.Add([]byte(`"{\"mask\":\"0x1\"}"`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseTPMPolicy(b)
		if err != nil {
			return
		}
		for pcr := range p.Allowed {
			if p.Mask&(1<<pcr) == 0 || pcr == IMAPCR || pcr == DataPCR {
				t.Fatalf("pcr %d allowed but mask %#x", pcr, p.Mask)
			}
		}
	})
}
