package schema

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

// excludeCases: pyJoinOK is what CPython 3.11's re.compile("(" + expr + ")")
// said (the form Keylime compiles, one exclude shown; recorded from a run of
// python3.11, and re-checked by TestExcludeCasesAgainstPython when python3
// is installed). want is "" for accepted, else a fragment of the reason.
var excludeCases = []struct {
	expr     string
	pyJoinOK bool
	want     string
}{
	// Accepted.
	{"/tmp/", true, ""},
	{`^/var/log/.*\.log$`, true, ""},
	{"/usr/bin/h", true, ""},
	{"(?i:/HOME/)", true, ""},
	{"(?-i:a)", true, ""},
	{"(?i-s:/a.b)", true, ""},
	{`/opt/(?P<app>[a-z]+)/cache/`, true, ""},
	{`/etc/\w+\.conf$`, true, ""},
	{`/proc/[0-9]+/`, true, ""},
	{"/a/b{2,3}", true, ""},
	{`/boot/vmlinuz\-6\.1\ x`, true, ""}, // Python re.escape style
	{`/a\\b`, true, ""},
	{`/dev/\012`, true, ""}, // three-digit octal: the same character in both
	{`/x[]a]`, true, ""},

	// Python rejects inside the join, which disables every exclude.
	{"(?i)/home", false, "must be scoped: write (?i:...)"},
	{"/a(?s)b", false, "must be scoped"},
	{"(?U:a*)", false, "no U (ungreedy) flag"},
	{`/tmp\z`, false, `\z is not understood by Python`},
	{`\pL`, false, "Go-only and Python rejects them"},
	{`\Q.*\E`, false, `\Q...\E quoting is Go-only`},
	{`/\C`, false, `\C is Go-only`},
	{`\x{41}`, false, `\x{...} is Go-only`},
	{`(a)\1`, false, "backreference"},
	{`/\12`, false, "backreference"},
	{"(?P<1a>x)", false, "not valid in Python"},
	{"(?P<a>x)(?P<a>y)", false, "used twice"},
	{"(?<n>x)", false, "write named groups as (?P<name>...)"},
	{"a(", false, "never closed"},
	{"a)", false, "closes nothing"},
	{"[a", false, "never closed"},
	{"*a", false, "nothing to repeat"},
	{"[z-a]", false, "write the lower bound first"},
	{`a\`, false, "lone backslash"},

	// Python accepts, RE2 (zest) does not.
	{"(?x:a)", true, "flag x is Python-only"},
	{`/tmp\Z`, true, `\Z is Python-only`},
	{`/\u00e9`, true, `\u escapes are Python-only`},
	{"(?P<a>x)(?P=a)", true, "named backreferences"},
	{"a(?=b)", true, "lookahead and lookbehind"},
	{"(?#c)a", true, "comments are Python-only"},
	{"(?>a)", true, "atomic groups"},
	{"/a*+", true, "possessive"},
	{"/a{1001}", true, "limit of 1000"},
	{"/\\\u00e9", true, "not an escape RE2 understands"},
	{`/[\b]`, true, "not an escape RE2 understands"},

	// Both accept, with different meanings.
	{"/x{,3}", true, "write {0,n} instead of {,n}"},
	{"/[[:alpha:]]", true, "POSIX classes"},

	// Both accept; it turns off checking for every file.
	{"", true, "empty exclude"},
	{".*", true, "matches every path"},
	{"/", true, "matches every path"},
	{"(|x)", true, "matches every path"},
}

func TestCheckExclude(t *testing.T) {
	for _, tt := range excludeCases {
		err := CheckExclude(tt.expr)
		if tt.want == "" {
			if err != nil {
				t.Errorf("CheckExclude(%q) = %v, want nil", tt.expr, err)
			}
			continue
		}
		var re *RegexError
		if !errors.As(err, &re) {
			t.Errorf("CheckExclude(%q) = %v, want a *RegexError", tt.expr, err)
			continue
		}
		if !strings.Contains(re.Reason, tt.want) {
			t.Errorf("CheckExclude(%q) reason %q, want it to contain %q", tt.expr, re.Reason, tt.want)
		}
		if re.Expr != tt.expr || !strings.Contains(err.Error(), re.Reason) {
			t.Errorf("CheckExclude(%q): Expr %q, Error() %q", tt.expr, re.Expr, err.Error())
		}
	}
}

// TestExcludeCasesAgainstPython re-derives the pyJoinOK column with the
// local python3, so the table cannot drift from what Python does.
func TestExcludeCasesAgainstPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	var in strings.Builder
	for _, tt := range excludeCases {
		in.WriteString(quoteJSON(tt.expr) + "\n")
	}
	script := `
import json, re, sys, warnings
warnings.simplefilter("ignore")
for line in sys.stdin:
    try:
        re.compile("(" + json.loads(line) + ")")
        print("ok")
    except re.error:
        print("err")
`
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = strings.NewReader(in.String())
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("python3: %v", err)
	}
	got := strings.Fields(string(out))
	if len(got) != len(excludeCases) {
		t.Fatalf("python3 printed %d lines for %d cases", len(got), len(excludeCases))
	}
	for i, tt := range excludeCases {
		if (got[i] == "ok") != tt.pyJoinOK {
			t.Errorf("%q: python3 says %s, table says pyJoinOK=%v", tt.expr, got[i], tt.pyJoinOK)
		}
	}
}

func TestKernelCmdlineRegex(t *testing.T) {
	tests := []struct {
		expr string
		want string
	}{
		// re.escape output for a GRUB command line (reference notes §13.4).
		{`ro\ quiet\ rd\.luks\.uuid=luks\-d53e\ crashkernel=1G\-4G:192M,4G\-64G:256M\ \#x\&y\~z`, ""},
		{"", ""},
		{`.*`, ""}, // a wildcard command line is legal (if weak) here
		{`(?i)ro`, "must be scoped"},
		{`ro(?!x)`, "lookahead"},
		{`\(hd0`, ""},
		{`(hd0`, "never closed"},
	}
	for _, tt := range tests {
		err := checkPythonRegex(tt.expr)
		if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("checkPythonRegex(%q) = %v, want %q", tt.expr, err, tt.want)
		}
	}
}
