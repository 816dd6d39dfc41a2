package dsse

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

const (
	keylime = fixtures + "keylime/"
	signDir = keylime + "sign-runtime-policy/"
	osslDir = fixtures + "dsse/openssl/"
)

func sha256hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func loadPub(t testing.TB, file string) crypto.PublicKey {
	t.Helper()
	k, err := LoadPublicKey(readFile(t, file))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func loadPriv(t testing.TB, file string) crypto.Signer {
	t.Helper()
	k, err := LoadPrivateKey(readFile(t, file))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// keylime-runtime-policy.md §9.3: Keylime's own signed fixture.
func TestKeylimeSignedFixture(t *testing.T) {
	env, err := ParseEnvelope(readFile(t, keylime+"runtime-policy-test-signed.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(env.Payload) != 2078 || sha256hex(env.Payload) != "64608ceb82d6d6459e8ac5ffd19865d670d1fe99417e10f20446de5d125bc4ab" {
		t.Fatalf("payload: %d bytes, sha256 %s", len(env.Payload), sha256hex(env.Payload))
	}
	if !bytes.Equal(env.Payload, readFile(t, keylime+"runtime-policy-test.json")) {
		t.Error("payload differs from runtime-policy-test.json")
	}
	if n := len(PAE(env.PayloadType, env.Payload)); n != 2122 {
		t.Errorf("PAE is %d bytes, want 2122", n)
	}
	const keyid = "8114198dd64f6b1e07bd392274824d7adca5af8bfdc2fd2cf93a18db8f589e05"
	if len(env.Signatures) != 1 || env.Signatures[0].KeyID != keyid || len(env.Signatures[0].Sig) != 71 {
		t.Fatalf("signatures = %+v", env.Signatures)
	}
	pubFile := readFile(t, keylime+"runtime-policy-pubkey.pub")
	pub := loadPub(t, keylime+"runtime-policy-pubkey.pub")
	if id, _ := PublicKeyID(pub); id != keyid || sha256hex(pubFile) != keyid {
		t.Errorf("PublicKeyID = %s, want %s", id, keyid)
	}
	payload, err := Verify(env, pub)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(payload, env.Payload) {
		t.Error("Verify returned another payload")
	}
	// Another key must not verify it.
	other := loadPub(t, signDir+"ec-p521-public.pem")
	if _, err := Verify(env, other); !errors.Is(err, ErrVerification) {
		t.Errorf("wrong key: %v, want ErrVerification", err)
	}
	if !IsEnvelope(readFile(t, keylime+"runtime-policy-test-signed.json")) {
		t.Error("IsEnvelope = false")
	}
}

func TestKeylimeSignedBadFixture(t *testing.T) {
	data := readFile(t, keylime+"runtime-policy-test-signed-bad.json")
	_, err := ParseEnvelope(data)
	var ee *EnvelopeError
	if !errors.As(err, &ee) || ee.Field != "signatures[0].sig" || !strings.Contains(err.Error(), "padding") {
		t.Fatalf("err = %v, want a padding error on signatures[0].sig", err)
	}
	if !IsEnvelope(data) {
		t.Error("IsEnvelope = false; Keylime treats it as an envelope")
	}
}

// keylime-runtime-policy.md §9.3: what `keylime-policy sign runtime -k
// ec-p521-private.pem` produces for sign-runtime-policy/runtime-policy.json.
func TestSignLikeKeylime(t *testing.T) {
	priv := loadPriv(t, signDir+"ec-p521-private.pem")
	s, err := NewECDSASigner(priv.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	const keyid = "ef283e2cf75457fb0f0166aa3b394ef4f77c3ebef3946daf5d0da6a8412700f9"
	if s.KeyID() != keyid || sha256hex(readFile(t, signDir+"ec-p521-public.pem")) != keyid {
		t.Fatalf("keyid = %s, want %s", s.KeyID(), keyid)
	}
	env, err := SignJSON(readFile(t, signDir+"runtime-policy.json"), s)
	if err != nil {
		t.Fatal(err)
	}
	if len(env.Payload) != 916 || len(PAE(env.PayloadType, env.Payload)) != 959 {
		t.Errorf("payload %d bytes, PAE %d; want 916 and 959", len(env.Payload), len(PAE(env.PayloadType, env.Payload)))
	}
	// The payload python3 wrote in gen.sh for the same file.
	if !bytes.Equal(env.Payload, readFile(t, osslDir+"payload.json")) {
		t.Error("payload differs from CPython's json.dumps")
	}
	// Keylime's layout, built by hand from the parts.
	want := `{"payload": "` + base64.StdEncoding.EncodeToString(env.Payload) +
		`", "payloadType": "application/vnd.keylime+json", "signatures": [{"keyid": "` + keyid +
		`", "sig": "` + base64.StdEncoding.EncodeToString(env.Signatures[0].Sig) + `"}]}`
	out := env.MarshalKeylime()
	if string(out) != want {
		t.Errorf("MarshalKeylime =\n%s\nwant\n%s", out, want)
	}
	back, err := ParseEnvelope(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(back, loadPub(t, signDir+"ec-p521-public.pem")); err != nil {
		t.Errorf("Verify: %v", err)
	}
	if _, err := NewSigner(loadPriv(t, signDir+"rsa-4096-private.pem")); err != nil {
		t.Errorf("RSA signer: %v", err)
	}
}

// Envelopes from fixtures/dsse/gen.sh: PAE by printf, signature by
// `openssl dgst -sha256 -sign`, keyid by sha256sum.
func TestOpenSSLEnvelopes(t *testing.T) {
	payload := readFile(t, osslDir+"payload.json")
	if pae := PAE(KeylimePayloadType, payload); !bytes.Equal(pae, readFile(t, osslDir+"pae.bin")) {
		t.Fatalf("PAE differs from the printf one:\n%q", pae[:60])
	}
	keyids := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(readFile(t, osslDir+"keyids.txt"))), "\n") {
		k, id, _ := strings.Cut(l, " ")
		keyids[k] = id
	}
	tests := []struct {
		env, key string
		ok       bool
	}{
		{"ec-p256.json", "ec-p256", true},
		{"ec-p384.json", "ec-p384", true},
		{"rsa2048-pss.json", "rsa2048", true},
		{"rsa2048-pkcs1.json", "rsa2048", false}, // PKCS#1 v1.5 is not zest's RSA scheme
		{"ec-p256.json", "ec-p384", false},
		{"ec-p384.json", "rsa2048", false},
	}
	for _, tt := range tests {
		t.Run(tt.env+"/"+tt.key, func(t *testing.T) {
			raw := readFile(t, osslDir+tt.env)
			env, err := ParseEnvelope(raw)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(env.MarshalKeylime(), raw) {
				t.Error("MarshalKeylime does not reproduce the file byte for byte")
			}
			pub := loadPub(t, osslDir+tt.key+".pub.pem")
			if id, _ := PublicKeyID(pub); id != keyids[tt.key] {
				t.Errorf("PublicKeyID = %s, sha256sum says %s", id, keyids[tt.key])
			}
			got, err := Verify(env, pub)
			if tt.ok && (err != nil || !bytes.Equal(got, payload)) {
				t.Errorf("Verify: %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrVerification) {
				t.Errorf("Verify = %v, want ErrVerification", err)
			}
		})
	}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	payload := readFile(t, signDir+"runtime-policy.json")
	var signers []Signer
	for _, c := range []elliptic.Curve{elliptic.P256(), elliptic.P384(), elliptic.P521()} {
		k, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewECDSASigner(k)
		if err != nil {
			t.Fatal(err)
		}
		signers = append(signers, s)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := NewRSASigner(rk)
	if err != nil {
		t.Fatal(err)
	}
	signers = append(signers, rs)
	wrong, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	for _, s := range signers {
		t.Run(keyType(s.Public())+"/"+s.KeyID()[:8], func(t *testing.T) {
			env, err := SignJSON(payload, s)
			if err != nil {
				t.Fatal(err)
			}
			if id, _ := PublicKeyID(s.Public()); env.Signatures[0].KeyID != id {
				t.Error("keyid is not PublicKeyID")
			}
			parsed, err := ParseEnvelope(env.MarshalKeylime())
			if err != nil {
				t.Fatal(err)
			}
			got, err := Verify(parsed, &wrong.PublicKey, s.Public())
			if err != nil || !bytes.Equal(got, env.Payload) {
				t.Fatalf("Verify: %v", err)
			}

			tampered := *parsed
			tampered.Payload = bytes.Replace(parsed.Payload, []byte(`"release": 0`), []byte(`"release": 1`), 1)
			if bytes.Equal(tampered.Payload, parsed.Payload) {
				t.Fatal("tampering did not change the payload")
			}
			if _, err := Verify(&tampered, s.Public()); !errors.Is(err, ErrVerification) {
				t.Errorf("tampered payload: %v", err)
			}
			retyped := *parsed
			retyped.PayloadType = "application/vnd.in-toto+json"
			if _, err := Verify(&retyped, s.Public()); !errors.Is(err, ErrVerification) {
				t.Errorf("other payloadType: %v", err)
			}
			if _, err := Verify(parsed, &wrong.PublicKey); !errors.Is(err, ErrVerification) {
				t.Errorf("wrong key: %v", err)
			}
			badSig := *parsed
			badSig.Signatures = []Signature{{Sig: append([]byte{}, parsed.Signatures[0].Sig...)}}
			badSig.Signatures[0].Sig[5] ^= 1
			if _, err := Verify(&badSig, s.Public()); !errors.Is(err, ErrVerification) {
				t.Errorf("tampered signature: %v", err)
			}
		})
	}
}

func TestVerifyErrors(t *testing.T) {
	env, err := ParseEnvelope(readFile(t, keylime+"runtime-policy-test-signed.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(env); err == nil || errors.Is(err, ErrVerification) {
		t.Errorf("no keys: %v, want a non-verification error", err)
	}
	if _, err := Verify(env, "key"); err == nil || errors.Is(err, ErrVerification) {
		t.Errorf("bad key type: %v", err)
	}
	unsigned := *env
	unsigned.Signatures = nil
	if _, err := Verify(&unsigned, loadPub(t, keylime+"runtime-policy-pubkey.pub")); !errors.Is(err, ErrVerification) {
		t.Errorf("no signatures: %v", err)
	}
}

func TestParseEnvelope(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	sig := b64("\x30\x06\x02\x01\x01\x02\x01\x01")
	tests := []struct {
		name, doc string
		field     string // "" = parses
		payload   string
		keyid     string
	}{
		{"minimal", `{"payload": "` + b64("{}") + `", "payloadType": "t", "signatures": [{"sig": "` + sig + `"}]}`, "", "{}", ""},
		{"null keyid and extras", `{"x": 1, "payload": "` + b64("[1]") + `", "payloadType": "t", "signatures": [{"keyid": null, "sig": "` + sig + `", "y": 2}]}`, "", "[1]", ""},
		{"last member wins", `{"payload": "` + b64("a") + `", "payload": "` + b64("bcd") + `", "payloadType": "t", "signatures": [{"keyid": "k", "sig": "` + sig + `"}]}`, "", "bcd", "k"},
		{"url-safe", `{"payload": "` + base64.URLEncoding.EncodeToString([]byte("\xfb\xff\xfe")) + `", "payloadType": "t", "signatures": [{"sig": "` + sig + `"}]}`, "", "\xfb\xff\xfe", ""},
		{"hex payload", `{"payload": "7b7d", "payloadType": "t", "signatures": [{"sig": "` + sig + `"}]}`, "payload", "", ""},
		{"hex-looking base64", `{"payload": "` + b64("{}") + `", "payloadType": "t", "signatures": [{"sig": "deadbeef"}]}`, "signatures[0].sig", "", ""},
		{"mixed alphabets", `{"payload": "+-AA", "payloadType": "t", "signatures": [{"sig": "` + sig + `"}]}`, "payload", "", ""},
		{"no padding", `{"payload": "e30", "payloadType": "t", "signatures": [{"sig": "` + sig + `"}]}`, "payload", "", ""},
		{"line break", `{"payload": "e3\n0=", "payloadType": "t", "signatures": [{"sig": "` + sig + `"}]}`, "payload", "", ""},
		{"empty payload", `{"payload": "", "payloadType": "t", "signatures": []}`, "payload", "", ""},
		{"payload not string", `{"payload": 1, "payloadType": "t", "signatures": []}`, "payload", "", ""},
		{"no payloadType", `{"payload": "e30=", "signatures": []}`, "payloadType", "", ""},
		{"no signatures", `{"payload": "e30=", "payloadType": "t"}`, "signatures", "", ""},
		{"signatures object", `{"payload": "e30=", "payloadType": "t", "signatures": {}}`, "signatures", "", ""},
		{"signature not object", `{"payload": "e30=", "payloadType": "t", "signatures": [null]}`, "signatures[0]", "", ""},
		{"no sig", `{"payload": "e30=", "payloadType": "t", "signatures": [{"keyid": "k"}]}`, "signatures[0].sig", "", ""},
		{"empty sig", `{"payload": "e30=", "payloadType": "t", "signatures": [{"sig": ""}]}`, "signatures[0].sig", "", ""},
		{"keyid number", `{"payload": "e30=", "payloadType": "t", "signatures": [{"keyid": 5, "sig": "` + sig + `"}]}`, "signatures[0].keyid", "", ""},
		{"case matters", `{"Payload": "e30=", "payloadType": "t", "signatures": []}`, "payload", "", ""},
		{"not object", `[]`, "", "", ""},
		{"not UTF-8", "{\"payload\": \"\xff\"}", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, err := ParseEnvelope([]byte(tt.doc))
			wantErr := tt.field != "" || tt.payload == ""
			if !wantErr {
				if err != nil {
					t.Fatal(err)
				}
				if string(env.Payload) != tt.payload || env.Signatures[0].KeyID != tt.keyid {
					t.Errorf("got payload %q keyid %q", env.Payload, env.Signatures[0].KeyID)
				}
				return
			}
			var ee *EnvelopeError
			if !errors.As(err, &ee) {
				t.Fatalf("err = %v, want *EnvelopeError", err)
			}
			if ee.Field != tt.field {
				t.Errorf("field %q, want %q (%v)", ee.Field, tt.field, err)
			}
		})
	}
}

func TestIsEnvelope(t *testing.T) {
	tests := []struct {
		doc  string
		want bool
	}{
		{string(readFile(t, keylime+"runtime-policy-test.json")), false},
		{`{"payload": "e30="}`, true},
		{`{"payload": ""}`, false},
		{`{"payload": null}`, false},
		{`{"payload": 0}`, false},
		{`{"payload": 0.0}`, false},
		{`{"payload": 2}`, true},
		{`{"payload": false}`, false},
		{`{"payload": true}`, true},
		{`{"payload": []}`, false},
		{`{"payload": [0]}`, true},
		{`{"payload": {}}`, false},
		{`{"Payload": "x"}`, false},
		{`["payload"]`, false},
		{`{"payload": "x"`, false},
	}
	for _, tt := range tests {
		if got := IsEnvelope([]byte(tt.doc)); got != tt.want {
			t.Errorf("IsEnvelope(%.40q) = %v, want %v", tt.doc, got, tt.want)
		}
	}
}
