package failure

import (
	"encoding/json"
	"testing"
)

func TestVerdict(t *testing.T) {
	tests := []struct {
		name string
		l    List
		want Verdict
	}{
		{"empty", nil, VerdictTrusted},
		{"reject", List{Rejectf("ima.validation.ima-ng.not_in_allowlist", nil, "x")}, VerdictRejected},
		{"error wins", List{Rejectf("a.b", nil, "x"), Errorf("c.d", nil, "y")}, VerdictError},
	}
	for _, tt := range tests {
		if got := tt.l.Verdict(); got != tt.want {
			t.Errorf("%s: Verdict() = %v, want %v", tt.name, got, tt.want)
		}
	}
	var zero Verdict
	if zero != VerdictError {
		t.Fatalf("zero Verdict must be error, is %v", zero)
	}
}

func TestJSONShape(t *testing.T) {
	f := Rejectf(InvalidPCR(10), map[string]any{"pcr": 10}, "PCR %d differs", 10)
	b, err := json.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"pcr_validation.invalid_pcr_10","kind":"reject","message":"PCR 10 differs","context":{"pcr":10}}`
	if string(b) != want {
		t.Fatalf("got %s\nwant %s", b, want)
	}
	var back Failure
	if err := json.Unmarshal(b, &back); err != nil || back.Kind != Reject || back.ID != f.ID {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	k, _ := json.Marshal(List{f}.Keylime())
	if string(k) != `[{"type":"pcr_validation.invalid_pcr_10","context":{"message":"PCR 10 differs","pcr":10}}]` {
		t.Fatalf("keylime shape: %s", k)
	}
	if f.Component() != "pcr_validation" {
		t.Fatal(f.Component())
	}
}
