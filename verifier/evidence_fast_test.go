package verifier

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzEvidenceFastPath: whenever the fast decoder accepts a body,
// encoding/json must decode it to exactly the same request.
func FuzzEvidenceFastPath(f *testing.F) {
	data := `{"quote":"rAA:BB:CC","nonce":"n","hash_alg":"sha256","tpm_ak":"ak","tpm_ek":"ek","tpm_policy":"{\"mask\":\"0x400\"}","runtime_policy":"{\"meta\":{}}","ima_measurement_list":"10 ab ima-ng sha256:00 /a\n10 cd ima-ng sha256:11 /b\\c\n","mb_list":"AA=="}`
	for _, s := range []string{
		`{"type":"tpm","data":` + data + `}`,
		` { "type" : "tpm" , "data" : ` + data + ` , "extra" : "x" } `,
		`{"type":"tpm","data":null}`,
		`{"type":"tpm","data":{},"data":` + data + `}`,
		`{"type":"tpm","data":{"Quote":"q"}}`,
		`{"type":"tpm","DATA":{"quote":"q"}}`,
		`{"type":"t\u00e9","data":{}}`,
		`{"type":"tpm","data":{"quote":"a\/b\t\r\f\b"}}`,
		`{"type":"tpm","data":{"quote":"a"},}`,
		`{"type":"tpm","data":{"tpm_policy":{"mask":"0x1"}}}`,
		`{}`, `[]`, `{"type":"tpm"} x`, `{"type":"tpm","data":{"quote":"a"}`,
	} {
		f.Add([]byte(s))
	}
	f.Add([]byte(`"{\"a\":\t1}\/"`))
	f.Add([]byte(`"\\\"quoted\\\" and a 16-byte run\\"`))
	f.Fuzz(func(t *testing.T, body []byte) {
		// A policy given as a JSON string: the fast unquote must agree.
		p := &fastParser{b: body}
		if s, _, ok := p.str(); ok && p.i == len(body) {
			var want string
			if err := json.Unmarshal(body, &want); err != nil || want != s {
				t.Fatalf("unquote %q: fast %q, encoding/json %q %v", body, s, want, err)
			}
		}
		fast, fastHas, ok := fastDecodeEvidence(body)
		if !ok {
			return
		}
		slow, slowHas, err := decodeEvidence(body)
		if err != nil {
			t.Fatalf("fast path accepted %q, encoding/json: %v", body, err)
		}
		if fastHas != slowHas || !bytes.Equal(fast.RawData, slow.RawData) || fast.Type != slow.Type || !reflect.DeepEqual(fast.Data, slow.Data) {
			t.Fatalf("%q:\nfast %v %+v %q\nslow %v %+v %q", body, fastHas, fast, fast.RawData, slowHas, slow, slow.RawData)
		}
	})
}

// TestEvidenceFastPathTaken: Keylime-shaped bodies take the fast path
// (else the speed silently falls back to encoding/json's).
func TestEvidenceFastPathTaken(t *testing.T) {
	v := loadVector(t)
	body := evidenceBody(t, v, func(d map[string]any) {
		d["runtime_policy"] = `{"meta": {"version": 1}, "digests": {"/a": ["00"]}}`
		d["ima_measurement_list"] = "10 ab ima-ng sha256:00 /a\n"
	})
	if _, _, ok := fastDecodeEvidence(body); !ok {
		t.Fatalf("fast path refused %s", body)
	}
}
