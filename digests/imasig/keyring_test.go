package imasig

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

func loadKey(t testing.TB, file string) *Key {
	t.Helper()
	k, err := LoadKey(readFile(t, file))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// The Keylime fixtures hold the base64 SPKIs Keylime itself wrote for
// rsa2048pub.pem (keyid 4081397027) and secp256k1.pem (keyid 1394556965).
const (
	keylimeRSA = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA1cD7bW5tX5qIVgWskS5tzY+XpqWzcW6HFq5npj8dHFIWsAJJCUdoSU631hkyY8HP/RfXDPq/J4IeKvx35EVXj49t1Z1FTJBgUlEbkKvqm0rY6jo7PnJ6BsDRrauXtiEXVKNXcWXDk8ES+9v9Cz26BJYAr+5Xgm2aEyAbj8GhicxUZfsjDm8eJ7ZnQKuhF7jejG5dYAYxnBVu99bQJHI5Fsu3dAjGbys9v7ToNbonS+1bJXdHyEE0swhxBOPvvV6vx5CzRNw1Sou3rT19T4j8wpsFOyYXVcbbRVBAmBE2Qy2UHvojFqaJN/A9lztllyER1S5heGG6CxK3GoR6pkOXAQIDAQAB"
	keylimeK1  = "MFYwEAYHKoZIzj0CAQYFK4EEAAoDQgAEnNH3Y/xOTwRRd8D6hpodRLnVx71qDTLvJHouno7nU7JSzcXWN1PxK+HQEh1V7sMdwBER4KFKE635JTv6C+BRBg=="
)

func TestParseKeyringKeylime(t *testing.T) {
	// Sorted by keyid: 1394556965 (secp256k1) before 4081397027 (RSA).
	const want = `{"pubkeys": ["` + keylimeK1 + `", "` + keylimeRSA + `"], "keyids": [1394556965, 4081397027]}`
	for _, file := range []string{"keyring.json", "keyring-no-keyids.json"} {
		t.Run(file, func(t *testing.T) {
			doc := string(readFile(t, fixtures+"imasig/keylime/"+file))
			r, err := ParseKeyring(doc)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.String(); got != want {
				t.Errorf("String() =\n%s\nwant\n%s", got, want)
			}
			if got := r.KeyIDs(); !slices.Equal(got, []uint32{1394556965, 4081397027}) {
				t.Errorf("KeyIDs = %v", got)
			}
			if len(r.Lookup(4081397027)) != 1 || len(r.Lookup(1394556965)) != 0 {
				t.Error("Lookup: want the RSA key usable and the secp256k1 one not")
			}
			var u *UnsupportedKeyError
			if e := r.Entries()[0]; e.Key != nil || !errors.As(e.Unsupported, &u) || u.Type != "ecdsa secp256k1" {
				t.Errorf("secp256k1 entry = %+v", e)
			}
			// Keylime's database form: the document JSON-encoded as a string.
			quoted, _ := json.Marshal(doc)
			r2, err := ParseKeyring(string(quoted))
			if err != nil || r2.String() != want {
				t.Errorf("double-encoded: %v %q", err, r2)
			}
		})
	}
}

func TestKeyringAdd(t *testing.T) {
	r, err := ParseKeyring("")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.String(), `{"pubkeys": [], "keyids": []}`; got != want {
		t.Errorf("empty keyring = %q, want %q", got, want)
	}
	ids := opensslKeyIDs(t)
	// Added out of order and twice over, in different encodings.
	for _, f := range []string{
		"ec-p521.pub.pem", "rsa2048.pkcs8.pem", "ec-p256.pubc.der", "rsa2048.pub.der",
		"rsa2048-skid-custom.crt.pem", "ec-p384.sec1.der", "ec-p256.pem", "rsa2048-skid-hash.crt.pem",
	} {
		if err := r.Add(loadKey(t, keysDir+f)); err != nil {
			t.Fatal(err)
		}
	}
	want := []uint32{ids["ec-p256.pem"], ids["ec-p384.pem"], ids["ec-p521.pem"], 0x12345678, 0xf3452d23}
	slices.Sort(want)
	if got := r.KeyIDs(); !slices.Equal(got, want) {
		t.Errorf("KeyIDs = %08x, want %08x", got, want)
	}
	if r.Len() != 5 {
		t.Errorf("Len = %d, want 5", r.Len())
	}
	// The RSA key sits under its computed keyid and its certificate's SKID.
	a, b := r.Lookup(0xf3452d23), r.Lookup(0x12345678)
	if len(a) != 1 || len(b) != 1 {
		t.Fatalf("Lookup: %d and %d keys", len(a), len(b))
	}
	sa, _ := spkiOf(a[0].Public)
	sb, _ := spkiOf(b[0].Public)
	if string(sa) != string(sb) {
		t.Error("SKID entry holds a different key")
	}
	if err := r.Add(&Key{Public: "bogus"}); err == nil {
		t.Error("Add accepted a non-key")
	}

	// Serialisation: base64 of openssl's DER SPKI, in keyid order.
	var pub, kid []string
	byID := map[uint32]string{
		ids["ec-p256.pem"]: "ec-p256.pub.der", ids["ec-p384.pem"]: "ec-p384.pub.der",
		ids["ec-p521.pem"]: "ec-p521.pub.der", 0x12345678: "rsa2048.pub.der", 0xf3452d23: "rsa2048.pub.der",
	}
	for _, id := range want {
		pub = append(pub, `"`+base64.StdEncoding.EncodeToString(readFile(t, keysDir+byID[id]))+`"`)
		kid = append(kid, strconvU(id))
	}
	wantS := `{"pubkeys": [` + strings.Join(pub, ", ") + `], "keyids": [` + strings.Join(kid, ", ") + `]}`
	if got := r.String(); got != wantS {
		t.Errorf("String() =\n%s\nwant\n%s", got, wantS)
	}
	r2, err := ParseKeyring(r.String())
	if err != nil {
		t.Fatal(err)
	}
	if r2.String() != wantS {
		t.Error("String does not survive ParseKeyring")
	}
}

func strconvU(v uint32) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// §9.4 of the reference: the keyring for rsa2048pub.pem alone.
func TestKeyringReferenceVector(t *testing.T) {
	var r Keyring
	if err := r.Add(loadKey(t, keylimeKeys+"rsa2048pub.pem")); err != nil {
		t.Fatal(err)
	}
	if got, want := r.String(), `{"pubkeys": ["`+keylimeRSA+`"], "keyids": [4081397027]}`; got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
}

func TestParseKeyringQuirks(t *testing.T) {
	tests := []struct {
		name, doc string
		keyids    []uint32
	}{
		{"keyid zero is recomputed", `{"pubkeys": ["` + keylimeRSA + `"], "keyids": [0]}`, []uint32{4081397027}},
		{"keyid null is recomputed", `{"pubkeys": ["` + keylimeRSA + `"], "keyids": [null]}`, []uint32{4081397027}},
		{"given keyid is kept", `{"keyids": [7], "pubkeys": ["` + keylimeRSA + `"]}`, []uint32{7}},
		{"extra keyids ignored", `{"pubkeys": ["` + keylimeRSA + `"], "keyids": [1, 2, 3]}`, []uint32{1}},
		{"duplicates collapse", `{"pubkeys": ["` + keylimeRSA + `", "` + keylimeRSA + `"], "keyids": [5, 5]}`, []uint32{5}},
		{"meta allowed", `{"meta": {"version": 1}, "pubkeys": [], "keyids": []}`, nil},
		{"PKCS#1 item", `{"pubkeys": ["` + base64.StdEncoding.EncodeToString(readFile(t, keysDir+"rsa2048.pkcs1pub.der")) + `"]}`, []uint32{4081397027}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := ParseKeyring(tt.doc)
			if err != nil {
				t.Fatal(err)
			}
			if got := r.KeyIDs(); !slices.Equal(got, tt.keyids) {
				t.Errorf("KeyIDs = %v, want %v", got, tt.keyids)
			}
		})
	}
}

func TestParseKeyringErrors(t *testing.T) {
	tests := []struct{ name, doc, want string }{
		{"not json", `{"pubkeys": [`, "not a JSON object"},
		{"array", `[]`, "not a JSON object"},
		{"no pubkeys", `{"keyids": []}`, `missing "pubkeys"`},
		{"pubkeys not array", `{"pubkeys": "x"}`, "pubkeys: must be an array"},
		{"keyids not array", `{"pubkeys": [], "keyids": {}}`, "keyids: must be an array"},
		{"negative keyid", `{"pubkeys": ["` + keylimeRSA + `"], "keyids": [-1]}`, "keyids[0]: -1 is not"},
		{"keyid too big", `{"pubkeys": ["` + keylimeRSA + `"], "keyids": [4294967296]}`, "keyids[0]: 4294967296"},
		{"float keyid", `{"pubkeys": ["` + keylimeRSA + `"], "keyids": [1.0]}`, "keyids[0]"},
		{"bad base64", `{"pubkeys": ["` + keylimeRSA[:len(keylimeRSA)-1] + `"]}`, "pubkeys[0]: bad base64"},
		{"newline", `{"pubkeys": ["` + keylimeRSA[:8] + `\n` + keylimeRSA[8:] + `"]}`, "pubkeys[0]: base64 contains a line break"},
		{"not a key", `{"pubkeys": ["AAAA"]}`, "pubkeys[0]: not a DER"},
		{"second entry", `{"pubkeys": ["` + keylimeRSA + `", "!!"]}`, "pubkeys[1]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseKeyring(tt.doc)
			var ke *KeyringError
			if !errors.As(err, &ke) {
				t.Fatalf("err = %v, want *KeyringError", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}
