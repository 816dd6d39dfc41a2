package schema

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

type ruleCase struct {
	name      string
	overrides map[string]string // top-level key -> raw JSON, "-" deletes
	raw       string            // whole document instead of overrides
	strict    bool
	// wantPaths lists the error paths exactly (nil: valid); wantMsg must
	// appear in the first error's message.
	wantPaths []string
	wantMsg   string
}

func runRules(t *testing.T, kind Kind, base []byte, cases []ruleCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			data := []byte(tt.raw)
			if tt.raw == "" {
				data = withKeys(t, base, tt.overrides)
			}
			errs := Validate(kind, data, Options{Strict: tt.strict})
			if !slices.Equal(errPaths(errs), tt.wantPaths) {
				t.Fatalf("got\n%swant paths %q", joinErrors(errs), tt.wantPaths)
			}
			if tt.wantMsg != "" && !strings.Contains(errs[0].Msg, tt.wantMsg) {
				t.Errorf("message %q does not contain %q", errs[0].Msg, tt.wantMsg)
			}
			// The digest maps go through a Go fast path; the same document
			// through CUE alone must give the same answer.
			if kind == RuntimePolicy {
				slow := validate(kind, data, Options{Strict: tt.strict}, true)
				if !slices.Equal(slow, errs) {
					t.Errorf("CUE-only walk differs:\n%s", joinErrors(slow))
				}
			}
		})
	}
}

// The Keylime keyring from reference notes §9.4: rsa2048pub.pem and its
// keyidv2 0xf3452d23.
func keyring(ids string, keys ...string) string {
	q := make([]string, len(keys))
	for i, k := range keys {
		q[i] = `"` + k + `"`
	}
	s := fmt.Sprintf(`{"pubkeys": [%s], "keyids": %s}`, strings.Join(q, ", "), ids)
	return quoteJSON(s)
}

const (
	// openssl ec -in ima_keys/secp256k1.pem -pubout -outform DER | base64
	secp256k1SPKI = "MFYwEAYHKoZIzj0CAQYFK4EEAAoDQgAEnNH3Y/xOTwRRd8D6hpodRLnVx71qDTLvJHouno7nU7JSzcXWN1PxK+HQEh1V7sMdwBER4KFKE635JTv6C+BRBg=="
	// openssl genpkey -algorithm ed25519 | openssl pkey -pubout -outform DER | base64
	ed25519SPKI = "MCowBQYDK2VwAyEAq0rmAdwehhPQ74J62j0RUmvskSqE0vSkR3/XvYJ+h88="
)

func TestRuntimePolicyRules(t *testing.T) {
	base := readFile(t, keylimeFixtures+"create-runtime-policy/policy-sha256")
	rsa := pemDER(t, keylimeFixtures+"ima_keys/rsa2048pub.pem")
	p521 := pemDER(t, keylimeFixtures+"sign-runtime-policy/ec-p521-public.pem")
	hex64 := strings.Repeat("ab", 32)
	meta := func(s string) map[string]string { return map[string]string{"meta": s} }
	ima := func(s string) map[string]string { return map[string]string{"ima": s} }
	vk := func(s string) map[string]string { return map[string]string{"verification-keys": s} }
	dg := func(s string) map[string]string { return map[string]string{"digests": s} }

	runRules(t, RuntimePolicy, base, []ruleCase{
		// Valid variants.
		{name: "base", overrides: nil},
		{name: "extra keys allowed (Keylime)", overrides: map[string]string{"x": "1", "meta": `{"version": 1, "generator": 3, "y": 2}`, "ima": `{"ignored_keyrings": [], "log_hash_alg": "sha1", "dm_policy": null, "z": 3}`}},
		{name: "no timestamp", overrides: meta(`{"version": 0, "generator": 0}`)},
		{name: "integral float (jsonschema integer)", overrides: map[string]string{"release": "1.0", "meta": `{"version": 1e0, "generator": -0.0}`}},
		{name: "mixed digest lengths 40..128", overrides: dg(`{"/a": ["` + strings.Repeat("0", 40) + `", "` + strings.Repeat("f", 128) + `", "` + strings.Repeat("1", 62) + `"]}`)},
		{name: "escaped hex digits", overrides: dg(`{"/a": ["\u0061` + strings.Repeat("0", 39) + `"]}`)},
		{name: "any key in digests", overrides: dg(`{"": ["` + hex64 + `"], "relative path": ["` + hex64 + `"]}`)},
		{name: "good excludes", overrides: map[string]string{"excludes": `["/tmp/", "^/var/log/.*\\.log$", "(?i:/home/)", "/opt/(?P<app>[a-z]+)/"]`}},
		{name: "keyrings and ima-buf", overrides: map[string]string{"keyrings": `{".ima": ["` + hex64 + `"]}`, "ima-buf": `{"kernel_version": ["` + hex64 + `"]}`}},
		{name: "keyring rsa and p521", overrides: vk(keyring(`[4081397027, 0]`, rsa, p521))},
		{name: "keyring with meta", overrides: vk(quoteJSON(`{"meta": {"version": 1}, "keyids": [], "pubkeys": []}`))},
		{name: "all log_hash_alg", overrides: ima(`{"ignored_keyrings": ["*", ".ima"], "log_hash_alg": "sha512", "dm_policy": null}`)},
		{name: "last duplicate wins (bad first)", raw: `{"release": -1, "release": 0, "meta": {"version": 1, "generator": 1}, "digests": {"/a": [], "/a": ["` + hex64 + `"]}, "excludes": [], "keyrings": {}, "ima": {"ignored_keyrings": [], "log_hash_alg": "sha1", "dm_policy": null}, "ima-buf": {}, "verification-keys": ""}`},

		// Top level.
		{name: "not an object", raw: `[]`, wantPaths: []string{"$"}, wantMsg: "must be an object (a Keylime runtime policy), got an empty list"},
		{name: "missing release", overrides: map[string]string{"release": "-"}, wantPaths: []string{"$.release"}, wantMsg: "missing, must be an integer >= 0"},
		{name: "last duplicate wins (bad last)", raw: `{"release": 0, "release": -1, "meta": {"version": 1, "generator": 1}, "digests": {"/a": ["` + hex64 + `"], "/a": []}, "excludes": [], "keyrings": {}, "ima": {"ignored_keyrings": [], "log_hash_alg": "sha1", "dm_policy": null}, "ima-buf": {}, "verification-keys": ""}`, wantPaths: []string{`$.digests["/a"]`, "$.release"}},

		// meta.
		{name: "meta not object", overrides: meta(`1`), wantPaths: []string{"$.meta"}, wantMsg: "must be an object with version and generator, got 1"},
		{name: "version string", overrides: meta(`{"version": "x", "generator": 3}`), wantPaths: []string{"$.meta.version"}, wantMsg: `must be an integer >= 0, got "x"`},
		{name: "version negative", overrides: meta(`{"version": -1, "generator": 3}`), wantPaths: []string{"$.meta.version"}, wantMsg: "got -1"},
		{name: "version missing", overrides: meta(`{"generator": 3}`), wantPaths: []string{"$.meta.version"}, wantMsg: "missing"},
		{name: "generator 4", overrides: meta(`{"version": 1, "generator": 4}`), wantPaths: []string{"$.meta.generator"}, wantMsg: "must be an integer from 0 to 3, got 4"},
		{name: "generator missing", overrides: meta(`{"version": 1}`), wantPaths: []string{"$.meta.generator"}, wantMsg: "missing"},
		{name: "timestamp not string", overrides: meta(`{"version": 1, "generator": 3, "timestamp": 5}`), wantPaths: []string{"$.meta.timestamp"}, wantMsg: "must be a string, got 5"},

		// release.
		{name: "release negative", overrides: map[string]string{"release": "-1"}, wantPaths: []string{"$.release"}},
		{name: "release fraction", overrides: map[string]string{"release": "1.5"}, wantPaths: []string{"$.release"}, wantMsg: "got 1.5"},
		{name: "release bool", overrides: map[string]string{"release": "true"}, wantPaths: []string{"$.release"}, wantMsg: "got true"},
		{name: "release inf", overrides: map[string]string{"release": "1e400"}, wantPaths: []string{"$.release"}, wantMsg: "got 1e400"},
		{name: "release float strict", overrides: map[string]string{"release": "1.0"}, strict: true, wantPaths: []string{"$.release"}, wantMsg: "got 1.0"},

		// digests (and the shared digests-object rules).
		{name: "digests not object", overrides: dg(`[]`), wantPaths: []string{"$.digests"}, wantMsg: "must be an object mapping file paths to non-empty lists of hex digests, got an empty list"},
		{name: "digest list empty", overrides: dg(`{"/a": []}`), wantPaths: []string{`$.digests["/a"]`}, wantMsg: "must be a non-empty list of hex digests, got an empty list"},
		{name: "digest list not list", overrides: dg(`{"/a": "` + hex64 + `"}`), wantPaths: []string{`$.digests["/a"]`}, wantMsg: `got "abab`},
		{name: "digest uppercase", overrides: dg(`{"/a": ["` + strings.ToUpper(hex64) + `"]}`), wantPaths: []string{`$.digests["/a"][0]`}, wantMsg: "40 to 128 lowercase hex digits"},
		{name: "digest 39 digits", overrides: dg(`{"/a": ["` + strings.Repeat("0", 39) + `"]}`), wantPaths: []string{`$.digests["/a"][0]`}},
		{name: "digest 129 digits", overrides: dg(`{"/a": ["` + strings.Repeat("0", 129) + `"]}`), wantPaths: []string{`$.digests["/a"][0]`}, wantMsg: `got "000000000000000000000000000000000000000000000000000000000000..."`},
		{name: "digest with alg prefix", overrides: dg(`{"boot_aggregate": ["sha256:` + hex64 + `"]}`), wantPaths: []string{"$.digests.boot_aggregate[0]"}, wantMsg: "without an algorithm prefix"},
		{name: "digest not string", overrides: dg(`{"/a": ["` + hex64 + `", 1.0]}`), wantPaths: []string{`$.digests["/a"][1]`}, wantMsg: "got 1.0"},
		{name: "legacy allowlist comment (D6)", overrides: dg(`{"comment line": ["#"]}`), wantPaths: []string{`$.digests["comment line"][0]`}, wantMsg: `got "#"`},
		{name: "keyrings digest", overrides: map[string]string{"keyrings": `{".ima": ["xyz"]}`}, wantPaths: []string{`$.keyrings[".ima"][0]`}},
		{name: "ima-buf digest", overrides: map[string]string{"ima-buf": `{"kernel_version": [1]}`}, wantPaths: []string{`$["ima-buf"].kernel_version[0]`}, wantMsg: "got 1"},
		{name: "ima-buf not object", overrides: map[string]string{"ima-buf": `null`}, wantPaths: []string{`$["ima-buf"]`}, wantMsg: "mapping buffer names"},

		// excludes.
		{name: "excludes not list", overrides: map[string]string{"excludes": `"/tmp"`}, wantPaths: []string{"$.excludes"}, wantMsg: "must be a list of regular expressions"},
		{name: "exclude not string", overrides: map[string]string{"excludes": `["/tmp", null]`}, wantPaths: []string{"$.excludes[1]"}, wantMsg: "got null"},
		{name: "exclude bad regex", overrides: map[string]string{"excludes": `["/tmp", "(?i)/home"]`}, wantPaths: []string{"$.excludes[1]"}, wantMsg: "must be scoped"},
		{name: "exclude group reused", overrides: map[string]string{"excludes": `["/a/(?P<x>b)", "/c/", "/d/(?P<x>e)"]`}, wantPaths: []string{"$.excludes[2]"}, wantMsg: `group name "x" is already used by excludes[0]`},

		// ima.
		{name: "ima not object", overrides: ima(`[]`), wantPaths: []string{"$.ima"}, wantMsg: "an object with ignored_keyrings, log_hash_alg and dm_policy"},
		{name: "ignored_keyrings not list", overrides: ima(`{"ignored_keyrings": ".ima", "log_hash_alg": "sha1", "dm_policy": null}`), wantPaths: []string{"$.ima.ignored_keyrings"}},
		{name: "ignored keyring not string", overrides: ima(`{"ignored_keyrings": [1], "log_hash_alg": "sha1", "dm_policy": null}`), wantPaths: []string{"$.ima.ignored_keyrings[0]"}, wantMsg: "a keyring name"},
		{name: "log_hash_alg md5", overrides: ima(`{"ignored_keyrings": [], "log_hash_alg": "md5", "dm_policy": null}`), wantPaths: []string{"$.ima.log_hash_alg"}, wantMsg: `one of "sha1", "sha256", "sha384", "sha512", got "md5"`},
		{name: "log_hash_alg sm3_256", overrides: ima(`{"ignored_keyrings": [], "log_hash_alg": "sm3_256", "dm_policy": null}`), wantPaths: []string{"$.ima.log_hash_alg"}},
		{name: "log_hash_alg missing", overrides: ima(`{"ignored_keyrings": [], "dm_policy": null}`), wantPaths: []string{"$.ima.log_hash_alg"}, wantMsg: "missing"},
		{name: "dm_policy object (D9)", overrides: ima(`{"ignored_keyrings": [], "log_hash_alg": "sha1", "dm_policy": {"version": 1}}`), wantPaths: []string{"$.ima.dm_policy"}, wantMsg: "must be null, got an object"},
		{name: "dm_policy missing (migrated policy)", overrides: ima(`{"ignored_keyrings": [], "log_hash_alg": "sha1"}`), wantPaths: []string{"$.ima.dm_policy"}, wantMsg: "missing, must be null"},

		// verification-keys.
		{name: "vk not string", overrides: vk(`{}`), wantPaths: []string{`$["verification-keys"]`}, wantMsg: "must be a string holding an IMA keyring as JSON"},
		{name: "vk not JSON", overrides: vk(`"{\"keyids\": [1]"`), wantPaths: []string{`$["verification-keys"]`}, wantMsg: "not valid JSON: byte 14"},
		{name: "vk not object", overrides: vk(`"[]"`), wantPaths: []string{`$["verification-keys"]`}, wantMsg: "keyring $: must be an object with keyids and pubkeys, got an empty list"},
		{name: "vk keyids missing", overrides: vk(quoteJSON(`{"pubkeys": []}`)), wantPaths: []string{`$["verification-keys"]`}, wantMsg: "keyring $.keyids: missing"},
		{name: "vk keyid not int", overrides: vk(keyring(`["4081397027"]`, rsa)), wantPaths: []string{`$["verification-keys"]`}, wantMsg: "keyring $.keyids[0]: must be an integer from 0 to 4294967295"},
		{name: "vk keyid above u32", overrides: vk(keyring(`[4294967296]`, rsa)), wantPaths: []string{`$["verification-keys"]`}, wantMsg: "got 4294967296"},
		{name: "vk pubkey not base64", overrides: vk(keyring(`[1]`, "not base64!")), wantPaths: []string{`$["verification-keys"]`}, wantMsg: "keyring $.pubkeys[0]: must be standard base64"},
		{name: "vk pubkey not SPKI", overrides: vk(keyring(`[1]`, "AAAA")), wantPaths: []string{`$["verification-keys"]`}, wantMsg: "DER SubjectPublicKeyInfo"},
		{name: "vk pubkey ed25519", overrides: vk(keyring(`[1]`, ed25519SPKI)), wantPaths: []string{`$["verification-keys"]`}, wantMsg: "Ed25519"},
		{name: "vk pubkey secp256k1", overrides: vk(keyring(`[1]`, secp256k1SPKI)), wantPaths: []string{`$["verification-keys"]`}, wantMsg: "unsupported elliptic curve"},
		{name: "vk lengths differ", overrides: vk(keyring(`[1, 2]`, rsa)), wantPaths: []string{`$["verification-keys"]`}, wantMsg: "got 2 keyids and 1 pubkeys"},
		{name: "vk meta version 0", overrides: vk(quoteJSON(`{"meta": {"version": 0}, "keyids": [], "pubkeys": []}`)), wantPaths: []string{`$["verification-keys"]`}, wantMsg: "keyring $.meta.version: must be an integer >= 1"},

		// Strict mode.
		{name: "strict unknown top", overrides: map[string]string{"extra": "1"}, strict: true, wantPaths: []string{"$.extra"}, wantMsg: "unknown key; expected one of meta, release, digests"},
		{name: "strict unknown nested", overrides: map[string]string{"meta": `{"version": 1, "generator": 3, "checksum": ""}`, "ima": `{"ignored_keyrings": [], "log_hash_alg": "sha1", "dm_policy": null, "x": 1}`}, strict: true, wantPaths: []string{"$.ima.x", "$.meta.checksum"}},
		{name: "strict unknown in keyring", overrides: vk(quoteJSON(`{"keyids": [], "pubkeys": [], "x": 1}`)), strict: true, wantPaths: []string{`$["verification-keys"]`}, wantMsg: "keyring $.x: unknown key"},
		{name: "strict duplicates", raw: `{"release": 0, "release": 0, "meta": {"version": 1, "generator": 1}, "digests": {"/a": ["` + hex64 + `"], "/a": ["` + hex64 + `"]}, "excludes": [], "keyrings": {}, "ima": {"ignored_keyrings": [], "log_hash_alg": "sha1", "dm_policy": null}, "ima-buf": {}, "verification-keys": ""}`, strict: true, wantPaths: []string{`$.digests["/a"]`, "$.release"}, wantMsg: "duplicate key"},
	})
}

func TestRefstateFixtures(t *testing.T) {
	for _, name := range []string{"testdata/refstate-secureboot.json", "testdata/refstate-no-secureboot.json"} {
		for _, strict := range []bool{false, true} {
			if errs := Validate(MBRefstate, readFile(t, name), Options{Strict: strict}); errs != nil {
				t.Errorf("%s strict=%v:\n%s", name, strict, joinErrors(errs))
			}
		}
	}
}

// TestRefstateCmdlineMatchesLog checks the hand-derived fixtures against the
// logs they came from: the kernel_cmdline regex must fullmatch GRUB's PCR 8
// string in the binary log, whose SHA-256 (text after the prefix) is the
// logged digest quoted in reference notes §13.4.
func TestRefstateCmdlineMatchesLog(t *testing.T) {
	tests := []struct {
		refstate, log, wantSHA256 string
	}{
		{"testdata/refstate-secureboot.json", "binary_bios_measurements-secureboot", "55aaa5dc5ea00b720c56c5ed346d06f650e501dfd3e462c43f257db7e7336269"},
		{"testdata/refstate-no-secureboot.json", "binary_bios_measurements", ""},
	}
	for _, tt := range tests {
		var ref struct {
			Kernels []struct {
				Cmdline string `json:"kernel_cmdline"`
			} `json:"kernels"`
		}
		if err := json.Unmarshal(readFile(t, tt.refstate), &ref); err != nil {
			t.Fatal(err)
		}
		log := readFile(t, keylimeFixtures+"create-mb-policy/"+tt.log)
		i := bytes.Index(log, []byte("kernel_cmdline: "))
		if i < 0 {
			t.Fatalf("%s: no kernel_cmdline event", tt.log)
		}
		text := string(log[i : i+bytes.IndexByte(log[i:], 0)])
		if sum := sha256.Sum256([]byte(strings.TrimPrefix(text, "kernel_cmdline: "))); tt.wantSHA256 != "" && hex.EncodeToString(sum[:]) != tt.wantSHA256 {
			t.Errorf("%s: digest %x, want %s", tt.log, sum, tt.wantSHA256)
		}
		re := regexp.MustCompile("^(?:kernel_cmdline: " + ref.Kernels[0].Cmdline + ")$")
		if !re.MatchString(text) {
			t.Errorf("%s: %q does not fullmatch %q", tt.refstate, ref.Kernels[0].Cmdline, text)
		}
	}
}

// TestRefstateSkeleton validates the skeleton printed in reference notes §5
// (the "…N signatures…" placeholders emptied so that it is JSON). Each
// abbreviated value ("0x65976c0b…f34a") must be reported; nothing else.
func TestRefstateSkeleton(t *testing.T) {
	errs := Validate(MBRefstate, readFile(t, "testdata/refstate-skeleton.json"), Options{})
	want := []string{
		"$.dbx[0].SignatureData",
		"$.kernels[0].grub_authcode_sha256",
		"$.kernels[0].initrd_plain_sha256",
		"$.kernels[0].kernel_authcode_sha256",
		"$.kernels[0].shim_authcode_sha256",
		"$.mokdig[0].sha256",
		"$.mokxdig[0].sha256",
		"$.pk[0].SignatureData",
		"$.scrtm_and_bios[0].platform_firmware[0].sha256",
		"$.scrtm_and_bios[0].platform_firmware[1].sha256",
		"$.scrtm_and_bios[0].scrtm.sha256",
		"$.vendor_db[0].SignatureData",
	}
	if !slices.Equal(errPaths(errs), want) {
		t.Errorf("got\n%swant %q", joinErrors(errs), want)
	}
	if !strings.Contains(errs[len(errs)-2].Msg, `must be 0x followed by 64 lowercase hex digits, got "0x65976c0b…f34a"`) {
		t.Errorf("message: %s", errs[len(errs)-2].Msg)
	}
}

func TestRefstateRules(t *testing.T) {
	// The secure-boot fixture with its 371-entry dbx cut to two entries,
	// to keep each case fast (CUE evaluates every scalar).
	sb := readFile(t, "testdata/refstate-secureboot.json")
	var full struct {
		DBX []json.RawMessage `json:"dbx"`
	}
	if err := json.Unmarshal(sb, &full); err != nil {
		t.Fatal(err)
	}
	sb = withKeys(t, sb, map[string]string{"dbx": "[" + string(full.DBX[0]) + "," + string(full.DBX[1]) + "]"})
	noSB := readFile(t, "testdata/refstate-no-secureboot.json")
	h := func(n int) string { return "0x" + strings.Repeat("a", n) }
	k := func(fields string) map[string]string {
		return map[string]string{"kernels": `[{"shim_authcode_sha256": "` + h(64) + `", "grub_authcode_sha256": "` + h(64) + `", "initrd_plain_sha256": "` + h(64) + `", "kernel_cmdline": "ro\\ quiet"` + fields + `}]`}
	}
	sig := func(owner, data string) map[string]string {
		return map[string]string{"pk": `[{"SignatureOwner": "` + owner + `", "SignatureData": "` + data + `"}]`}
	}
	const guid = "a0baa8a3-041d-48a8-bc87-c36d121b5e3d"
	scrtm := func(d string) map[string]string {
		return map[string]string{"scrtm_and_bios": `[{"scrtm": ` + d + `, "platform_firmware": []}]`}
	}

	runRules(t, MBRefstate, sb, []ruleCase{
		{name: "base"},
		{name: "vendor_db optional", overrides: map[string]string{"vendor_db": "-"}},
		{name: "has_secureboot defaults to true", overrides: map[string]string{"has_secureboot": "-"}},
		{name: "scrtm sha1 only", overrides: scrtm(`{"sha1": "` + h(40) + `"}`)},
		{name: "several algorithms", overrides: scrtm(`{"sha1": "` + h(40) + `", "sha256": "` + h(64) + `", "sha384": "` + h(96) + `", "sha512": "` + h(128) + `", "sm3_256": "` + h(64) + `"}`)},
		{name: "old GUID spelling still a GUID", overrides: sig("61dfe48b-ca93-d211-aa0d-00e098032b8c", "0x00")},
		{name: "extra keys ignored", overrides: map[string]string{"x": "1", "kernels": `[{"shim_authcode_sha256": "` + h(64) + `", "grub_authcode_sha256": "` + h(64) + `", "kernel_authcode_sha256": "` + h(64) + `", "initrd_plain_sha256": "` + h(64) + `", "kernel_cmdline": "", "note": 1}]`}},
		{name: "empty signature lists", overrides: map[string]string{"pk": "[]", "kek": "[]", "db": "[]", "dbx": "[]", "mokdig": "[]", "mokxdig": "[]"}},

		{name: "not an object", raw: `"x"`, wantPaths: []string{"$"}, wantMsg: "must be an object (a Keylime measured-boot refstate)"},
		{name: "empty object", raw: `{}`, wantPaths: []string{"$.db", "$.dbx", "$.kek", "$.kernels", "$.mokdig", "$.mokxdig", "$.pk", "$.scrtm_and_bios"}},
		{name: "has_secureboot not bool", overrides: map[string]string{"has_secureboot": `"yes"`}, wantPaths: []string{"$.has_secureboot"}, wantMsg: `must be true or false, got "yes"`},

		{name: "scrtm_and_bios missing", overrides: map[string]string{"scrtm_and_bios": "-"}, wantPaths: []string{"$.scrtm_and_bios"}, wantMsg: "missing"},
		{name: "scrtm_and_bios empty", overrides: map[string]string{"scrtm_and_bios": "[]"}, wantPaths: []string{"$.scrtm_and_bios"}, wantMsg: "non-empty list"},
		{name: "scrtm_and_bios not list", overrides: map[string]string{"scrtm_and_bios": "{}"}, wantPaths: []string{"$.scrtm_and_bios"}},
		{name: "scrtm missing", overrides: map[string]string{"scrtm_and_bios": `[{"platform_firmware": []}]`}, wantPaths: []string{"$.scrtm_and_bios[0].scrtm"}, wantMsg: `missing, must be a digest object like {"sha256": "0x..."}`},
		{name: "platform_firmware missing", overrides: map[string]string{"scrtm_and_bios": `[{"scrtm": {"sha256": "` + h(64) + `"}}]`}, wantPaths: []string{"$.scrtm_and_bios[0].platform_firmware"}},
		{name: "platform_firmware not list", overrides: map[string]string{"scrtm_and_bios": `[{"scrtm": {"sha256": "` + h(64) + `"}, "platform_firmware": {}}]`}, wantPaths: []string{"$.scrtm_and_bios[0].platform_firmware"}},
		{name: "digest wrong length for alg", overrides: scrtm(`{"sha256": "` + h(40) + `"}`), wantPaths: []string{"$.scrtm_and_bios[0].scrtm.sha256"}, wantMsg: "0x followed by 64 lowercase hex digits"},
		{name: "digest without 0x", overrides: scrtm(`{"sha1": "` + strings.Repeat("a", 40) + `"}`), wantPaths: []string{"$.scrtm_and_bios[0].scrtm.sha1"}},
		{name: "digest uppercase", overrides: scrtm(`{"sha384": "0x` + strings.Repeat("A", 96) + `"}`), wantPaths: []string{"$.scrtm_and_bios[0].scrtm.sha384"}},
		{name: "digest empty", overrides: scrtm(`{}`), wantPaths: []string{"$.scrtm_and_bios[0].scrtm"}, wantMsg: "must name at least one of sha1, sha256, sha384, sha512, sm3_256, got an empty object"},
		{name: "digest unknown alg", overrides: scrtm(`{"sha3_256": "` + h(64) + `"}`), wantPaths: []string{"$.scrtm_and_bios[0].scrtm"}, wantMsg: "must name at least one"},
		{name: "digest unknown alg strict", overrides: scrtm(`{"sha3_256": "` + h(64) + `"}`), strict: true, wantPaths: []string{"$.scrtm_and_bios[0].scrtm", "$.scrtm_and_bios[0].scrtm.sha3_256"}},

		{name: "pk missing", overrides: map[string]string{"pk": "-"}, wantPaths: []string{"$.pk"}, wantMsg: "missing, must be a list of signature objects"},
		{name: "dbx not list", overrides: map[string]string{"dbx": `{}`}, wantPaths: []string{"$.dbx"}},
		{name: "signature not object", overrides: map[string]string{"kek": `["` + h(64) + `"]`}, wantPaths: []string{"$.kek[0]"}, wantMsg: "a signature object with SignatureOwner and SignatureData"},
		{name: "owner uppercase", overrides: sig(strings.ToUpper(guid), "0x00"), wantPaths: []string{"$.pk[0].SignatureOwner"}, wantMsg: "a lower-case GUID"},
		{name: "owner missing", overrides: map[string]string{"pk": `[{"SignatureData": "0x00"}]`}, wantPaths: []string{"$.pk[0].SignatureOwner"}},
		{name: "data odd length", overrides: sig(guid, "0x123"), wantPaths: []string{"$.pk[0].SignatureData"}, wantMsg: "even number of lowercase hex digits"},
		{name: "data without 0x", overrides: sig(guid, "3082"), wantPaths: []string{"$.pk[0].SignatureData"}},
		{name: "data uppercase", overrides: sig(guid, "0x30AB"), wantPaths: []string{"$.pk[0].SignatureData"}},
		{name: "data empty", overrides: sig(guid, "0x"), wantPaths: []string{"$.pk[0].SignatureData"}},
		{name: "vendor_db bad", overrides: map[string]string{"vendor_db": `[{"SignatureOwner": "` + guid + `"}]`}, wantPaths: []string{"$.vendor_db[0].SignatureData"}},
		{name: "mokdig missing", overrides: map[string]string{"mokdig": "-"}, wantPaths: []string{"$.mokdig"}},
		{name: "mokxdig missing", overrides: map[string]string{"mokxdig": "-"}, wantPaths: []string{"$.mokxdig"}},
		{name: "kek db dbx missing", overrides: map[string]string{"kek": "-", "db": "-", "dbx": "-"}, wantPaths: []string{"$.db", "$.dbx", "$.kek"}},
		{name: "mokxdig entry empty", overrides: map[string]string{"mokxdig": `[{}]`}, wantPaths: []string{"$.mokxdig[0]"}},

		{name: "kernels missing (create_mb_policy D6)", overrides: map[string]string{"kernels": "-"}, wantPaths: []string{"$.kernels"}, wantMsg: "missing, must be a non-empty list of kernel entries"},
		{name: "kernels empty", overrides: map[string]string{"kernels": "[]"}, wantPaths: []string{"$.kernels"}, wantMsg: "got an empty list"},
		{name: "SB kernel lacks kernel_authcode", overrides: k(""), wantPaths: []string{"$.kernels[0].kernel_authcode_sha256"}, wantMsg: "missing, must be 0x followed by 64 lowercase hex digits (a SHA-256 Authenticode digest)"},
		{name: "no SB in SB file lacks vmlinuz", overrides: map[string]string{"has_secureboot": "false"}, wantPaths: []string{"$.kernels[0].vmlinuz_plain_sha256"}},
		{name: "falsy has_secureboot picks no-SB rules", overrides: map[string]string{"has_secureboot": "0"}, wantPaths: []string{"$.has_secureboot", "$.kernels[0].vmlinuz_plain_sha256"}},
		{name: "authcode short", overrides: k(`, "kernel_authcode_sha256": "` + h(62) + `"`), wantPaths: []string{"$.kernels[0].kernel_authcode_sha256"}},
		{name: "cmdline not string", overrides: map[string]string{"kernels": `[{"shim_authcode_sha256": "` + h(64) + `", "grub_authcode_sha256": "` + h(64) + `", "kernel_authcode_sha256": "` + h(64) + `", "initrd_plain_sha256": "` + h(64) + `", "kernel_cmdline": []}]`}, wantPaths: []string{"$.kernels[0].kernel_cmdline"}, wantMsg: "a regular expression for the kernel command line"},
		{name: "cmdline lookahead", overrides: map[string]string{"kernels": `[{"shim_authcode_sha256": "` + h(64) + `", "grub_authcode_sha256": "` + h(64) + `", "kernel_authcode_sha256": "` + h(64) + `", "initrd_plain_sha256": "` + h(64) + `", "kernel_cmdline": "ro(?= quiet)"}]`}, wantPaths: []string{"$.kernels[0].kernel_cmdline"}, wantMsg: "lookahead"},
		{name: "cmdline global flag", overrides: map[string]string{"kernels": `[{"shim_authcode_sha256": "` + h(64) + `", "grub_authcode_sha256": "` + h(64) + `", "kernel_authcode_sha256": "` + h(64) + `", "initrd_plain_sha256": "` + h(64) + `", "kernel_cmdline": "(?i)ro"}]`}, wantPaths: []string{"$.kernels[0].kernel_cmdline"}, wantMsg: "must be scoped"},
		{name: "cmdline unbalanced", overrides: map[string]string{"kernels": `[{"shim_authcode_sha256": "` + h(64) + `", "grub_authcode_sha256": "` + h(64) + `", "kernel_authcode_sha256": "` + h(64) + `", "initrd_plain_sha256": "` + h(64) + `", "kernel_cmdline": "(hd0,gpt2)/vmlinuz root=("}]`}, wantPaths: []string{"$.kernels[0].kernel_cmdline"}, wantMsg: "never closed"},

		{name: "strict unknown keys", overrides: map[string]string{"x": "1", "kernels": `[{"shim_authcode_sha256": "` + h(64) + `", "grub_authcode_sha256": "` + h(64) + `", "kernel_authcode_sha256": "` + h(64) + `", "initrd_plain_sha256": "` + h(64) + `", "kernel_cmdline": "", "note": 1}]`}, strict: true, wantPaths: []string{"$.kernels[0].note", "$.x"}},
	})

	runRules(t, MBRefstate, noSB, []ruleCase{
		{name: "no-SB base"},
		{name: "no-SB with kernel_authcode too", overrides: map[string]string{"kernels": `[{"shim_authcode_sha256": "` + h(64) + `", "grub_authcode_sha256": "` + h(64) + `", "vmlinuz_plain_sha256": "` + h(64) + `", "kernel_authcode_sha256": "` + h(64) + `", "initrd_plain_sha256": "` + h(64) + `", "kernel_cmdline": ""}]`}},
		{name: "no-SB lacks vmlinuz", overrides: k(""), wantPaths: []string{"$.kernels[0].vmlinuz_plain_sha256"}, wantMsg: "SHA-256 of the vmlinuz file"},
		{name: "no-SB file without has_secureboot gets SB rules", overrides: map[string]string{"has_secureboot": "-"}, wantPaths: []string{"$.kernels[0].kernel_authcode_sha256"}},
	})
}
