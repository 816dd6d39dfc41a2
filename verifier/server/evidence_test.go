package server

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
)

// TestEvidenceOverHTTP posts Keylime's real quote vector to a real HTTP
// server on loopback and checks the documented response shape.
func TestEvidenceOverHTTP(t *testing.T) {
	raw, err := os.ReadFile("../../fixtures/keylime/quote-vector.json")
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]string
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(Options{Evidence: Library{}}))
	defer srv.Close()
	post := func(nonce string) (int, map[string]any) {
		body, _ := json.Marshal(map[string]any{"type": "tpm", "data": map[string]any{
			"quote":      "r" + v["quoteblob_b64"] + ":" + v["sigblob_b64"] + ":" + v["pcrblob_b64"],
			"nonce":      nonce,
			"hash_alg":   "sha256",
			"tpm_ak":     base64.StdEncoding.EncodeToString([]byte(v["aik_pem"])),
			"tpm_ek":     "ek",
			"tpm_policy": `{"mask":"0x10000"}`,
		}})
		resp, err := http.Post(srv.URL+"/v2.3/verify/evidence", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var env map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, env["results"].(map[string]any)
	}
	code, res := post(v["nonce"])
	if code != 200 || res["valid"] != true || len(res["failures"].([]any)) != 0 || res["claims"].(map[string]any)["nonce"] != v["nonce"] {
		t.Fatalf("vector: HTTP %d %v", code, res)
	}
	code, res = post("someothernonce")
	fails := res["failures"].([]any)
	if code != 200 || res["valid"] != false || len(fails) == 0 || len(res["claims"].(map[string]any)) != 0 {
		t.Fatalf("wrong nonce: HTTP %d %v", code, res)
	}
	f := fails[0].(map[string]any)
	if f["type"] != "qoute_validation.quote_validation" || f["context"].(map[string]any)["message"] == "" {
		t.Fatalf("failure shape: %v", f)
	}
}
