package keylime

import (
	"encoding/json"
	"testing"
)

// Seeds are shaped like Keylime's registrar docs (2.5 GET /agents/{id})
// and rust-keylime's answers; fuzzing checks that no input panics and that
// an accepted record is internally consistent.
func FuzzRegistrarRecord(f *testing.F) {
	f.Add([]byte(`{"aik_tpm":"ARgAAQALAAUAcgAAABAAFAALCAAAAAAAAQA=","ek_tpm":"AToAAQ==","ekcert":null,"mtls_cert":"disabled","ip":"127.0.0.1","port":9002,"regcount":1}`))
	f.Add([]byte(`{"aik_tpm":"AAAA","ek_tpm":"","ekcert":"MIIB","mtls_cert":"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n","ip":"10.0.0.1","port":"9002","regcount":2}`))
	f.Add([]byte(`{"aik_tpm":null}`))
	f.Add([]byte(`{"aik_tpm":"AAAA","port":70000}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := parseRegistrarAgent("https://registrar/v2.6/agents/x", json.RawMessage(b), b)
		if err != nil {
			return
		}
		if len(a.AIKTPM) == 0 || a.Port < 0 || a.Port > 65535 {
			t.Fatalf("accepted inconsistent record %+v", a)
		}
	})
}

func FuzzDecodeCertBytes(f *testing.F) {
	f.Add("MIIB")
	f.Add("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
	f.Add("-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n")
	f.Add("!!")
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = decodeCertBytes(s)
		_, _ = parseCerts([]byte(s))
	})
}

func FuzzParseHandle(f *testing.F) {
	for _, s := range []string{`2164260864`, `"0x81010002"`, `"81000000"`, `-1`, `{}`, `"0x1ffffffff"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseHandle(b)
	})
}

func TestParseHandle(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint32
		ok   bool
	}{{`2164260864`, 0x81000000, true}, {`"0x81010002"`, 0x81010002, true}, {`"2164260864"`, 0x81000000, true}, {`-1`, 0, false}, {`"0x1ffffffff"`, 0, false}} {
		got, err := parseHandle([]byte(tc.in))
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseHandle(%s) = %x, %v", tc.in, got, err)
		}
	}
}
