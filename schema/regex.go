package schema

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode/utf8"
)

// RegexError says why a regular expression from a policy is rejected. Reason
// is one sentence that tells the operator what to write instead.
type RegexError struct {
	Expr   string
	Pos    int // byte offset in Expr of the offending construct, or -1
	Reason string
}

func (e *RegexError) Error() string {
	if e.Pos >= 0 {
		return fmt.Sprintf("regex %s at byte %d: %s", truncateQuoted(e.Expr), e.Pos, e.Reason)
	}
	return fmt.Sprintf("regex %s: %s", truncateQuoted(e.Expr), e.Reason)
}

func reasonOf(err error) string {
	var re *RegexError
	if errors.As(err, &re) {
		return re.Reason
	}
	return err.Error()
}

// CheckExclude reports whether expr is safe as a runtime-policy exclude.
//
// Keylime joins all excludes into "(e1)|(e2)|..." and compiles that with
// Python's re; if the joined expression fails to compile, Keylime silently
// ignores every exclude at attestation time (and matches with re.match:
// anchored at the start, any prefix accepted). zest matches with Go's RE2.
// So an exclude must compile with RE2, must not use what Python rejects
// inside the join (a global inline flag such as (?i), Go-only escapes), must
// not use constructs whose meaning differs between the two engines, and
// must not match every path.
//
// Not detected: \d, \w, \s and their negations match Unicode characters in
// Python but only ASCII in RE2, so they differ on non-ASCII paths.
func CheckExclude(expr string) error {
	if expr == "" {
		return &RegexError{Expr: expr, Pos: -1, Reason: "an empty exclude matches every path and turns off checking for all files; remove it"}
	}
	if err := checkPythonRegex(expr); err != nil {
		return err
	}
	anchored, err := regexp.Compile("^(?:" + expr + ")")
	if err != nil {
		return &RegexError{Expr: expr, Pos: -1, Reason: goRegexReason(err)}
	}
	for _, probe := range everyPathProbes {
		if !anchored.MatchString(probe) {
			return nil
		}
	}
	return &RegexError{Expr: expr, Pos: -1, Reason: "matches every path (Keylime accepts a match at the start of the path), which turns off checking for all files; make it specific, e.g. /tmp/ or ^/var/log/.*\\.log$"}
}

// everyPathProbes are unrelated absolute paths; an exclude matching all of
// them at the start matches (nearly) everything.
var everyPathProbes = []string{
	"/usr/bin/bash",
	"/etc/passwd",
	"/lib/modules/6.1.0/kernel/fs/ext4/ext4.ko",
	"/zest-probe/\u00e9\u4e2d~",
	"/",
}

// checkPythonRegex checks a regular expression that Keylime compiles with
// Python's re inside a larger expression and zest compiles with RE2.
func checkPythonRegex(expr string) error {
	if _, err := pyScan(expr); err != nil {
		return err
	}
	if _, err := regexp.Compile(expr); err != nil {
		return &RegexError{Expr: expr, Pos: -1, Reason: goRegexReason(err)}
	}
	return nil
}

// pyScan walks expr lexically, as both engines tokenise it, looking for
// constructs that Python's re rejects or reads differently from RE2. It
// returns the named groups in order.
func pyScan(expr string) ([]string, *RegexError) {
	fail := func(pos int, format string, args ...any) ([]string, *RegexError) {
		return nil, &RegexError{Expr: expr, Pos: pos, Reason: fmt.Sprintf(format, args...)}
	}
	var names []string
	prevQuant := false // the previous token was a quantifier
	for i := 0; i < len(expr); {
		c := expr[i]
		switch c {
		case '\\':
			if i+1 >= len(expr) {
				return fail(i, `ends with a lone backslash; write \\ for a literal backslash`)
			}
			if reason := escapeReason(expr, i, false); reason != "" {
				return fail(i, "%s", reason)
			}
			_, size := utf8.DecodeRuneInString(expr[i+1:])
			i += 1 + size
			prevQuant = false
		case '[':
			end, pos, reason := scanClass(expr, i)
			if reason != "" {
				return fail(pos, "%s", reason)
			}
			i = end
			prevQuant = false
		case '(':
			if strings.HasPrefix(expr[i:], "(?") {
				name, pos, reason := scanGroup(expr, i)
				if reason != "" {
					return fail(pos, "%s", reason)
				}
				if name != "" {
					for _, n := range names {
						if n == name {
							return fail(i, "group name %q is used twice; Python rejects a repeated group name, so rename one", name)
						}
					}
					names = append(names, name)
				}
			}
			i++
			prevQuant = false
		case '{':
			if end, ok := repeatEnd(expr, i); ok {
				if strings.HasPrefix(expr[i:], "{,") {
					return fail(i, "write {0,n} instead of {,n}: Python reads {,n} as a repeat count but RE2 as literal text")
				}
				i = end
				prevQuant = true
				continue
			}
			i++
			prevQuant = false
		case '*', '+', '?':
			if prevQuant && c == '+' {
				return fail(i, "possessive quantifiers like *+ are not supported by RE2; drop the extra +")
			}
			// A ? after a quantifier makes it lazy; a quantifier after that
			// is an error in both engines.
			prevQuant = !(prevQuant && c == '?')
			i++
		default:
			i++
			prevQuant = false
		}
	}
	return names, nil
}

// escapeReason checks the escape at expr[i] (a backslash with a following
// character); inClass tells whether it is inside [...].
func escapeReason(expr string, i int, inClass bool) string {
	d := expr[i+1]
	switch {
	case d == 'Z':
		return `\Z is Python-only and RE2 rejects it; write $ to anchor at the end`
	case d == 'z':
		return `\z is not understood by Python before 3.14; write $ to anchor at the end`
	case d == 'p' || d == 'P':
		return `Unicode classes like \p{L} are Go-only and Python rejects them; spell out the characters, e.g. [a-zA-Z]`
	case d == 'Q' || d == 'E':
		return `\Q...\E quoting is Go-only; escape each special character with a backslash instead`
	case d == 'C':
		return `\C is Go-only; write . instead`
	case d == 'x' && i+2 < len(expr) && expr[i+2] == '{':
		return `\x{...} is Go-only; write \xHH with exactly two hex digits, or the character itself`
	case d == 'u' || d == 'U' || d == 'N':
		return fmt.Sprintf(`\%c escapes are Python-only and RE2 rejects them; write the character itself`, d)
	case !inClass && d >= '1' && d <= '9' && !octal3(expr[i+1:]):
		return fmt.Sprintf(`\%c is a backreference in Python (and group numbers shift when Keylime joins the excludes) but not in RE2; write the character as \xHH instead`, d)
	}
	return ""
}

// octal3 reports whether s starts with a three-digit octal escape below
// 0o400, which both engines read as a character code.
func octal3(s string) bool {
	return len(s) >= 3 && s[0] >= '0' && s[0] <= '3' &&
		s[1] >= '0' && s[1] <= '7' && s[2] >= '0' && s[2] <= '7'
}

// scanClass scans a bracket expression starting at expr[i] == '['. It
// returns the offset after the closing ']' (or len(expr) if it is missing;
// RE2 then reports it).
func scanClass(expr string, i int) (end, pos int, reason string) {
	j := i + 1
	if j < len(expr) && expr[j] == '^' {
		j++
	}
	if j < len(expr) && expr[j] == ']' {
		j++ // a ']' first in the set is literal in both engines
	}
	for j < len(expr) {
		switch expr[j] {
		case '\\':
			if j+1 >= len(expr) {
				return len(expr), j, ""
			}
			if r := escapeReason(expr, j, true); r != "" {
				return 0, j, r
			}
			_, size := utf8.DecodeRuneInString(expr[j+1:])
			j += 1 + size
		case '[':
			if strings.HasPrefix(expr[j:], "[:") && strings.Contains(expr[j+2:], ":]") {
				return 0, j, "POSIX classes like [[:alpha:]] are Go-only and Python reads them as a plain set of characters; spell out the range, e.g. [a-zA-Z]"
			}
			j++
		case ']':
			return j + 1, 0, ""
		default:
			j++
		}
	}
	return len(expr), 0, ""
}

// scanGroup checks a "(?" group opener at expr[i] and returns the name of a
// (?P<name>...) group.
func scanGroup(expr string, i int) (name string, pos int, reason string) {
	rest := expr[i+2:]
	switch {
	case strings.HasPrefix(rest, ":"):
		return "", 0, ""
	case strings.HasPrefix(rest, "P<"):
		end := strings.IndexByte(rest, '>')
		if end < 0 {
			return "", 0, "" // RE2 reports the unterminated name
		}
		name = rest[2:end]
		if !isIdent(name) {
			return "", i, fmt.Sprintf("group name %q is not valid in Python; use letters, digits and _ and do not start with a digit", name)
		}
		return name, 0, ""
	case strings.HasPrefix(rest, "P="):
		return "", i, "named backreferences (?P=name) are not supported by RE2; remove it"
	case strings.HasPrefix(rest, "<=") || strings.HasPrefix(rest, "<!") ||
		strings.HasPrefix(rest, "=") || strings.HasPrefix(rest, "!"):
		return "", i, "lookahead and lookbehind are not supported by RE2, zest's matcher; list what to exclude explicitly instead"
	case strings.HasPrefix(rest, "<"):
		return "", i, "write named groups as (?P<name>...); Python rejects (?<name>...)"
	case strings.HasPrefix(rest, "#"):
		return "", i, "(?#...) comments are Python-only; remove the comment"
	case strings.HasPrefix(rest, "("):
		return "", i, "conditional groups (?(...)...) are Python-only; split the expression into alternatives"
	case strings.HasPrefix(rest, ">"):
		return "", i, "atomic groups (?>...) are not supported by RE2; use a plain group (?:...)"
	}
	// Inline flags: (?flags) or (?flags:...).
	j := 0
	for j < len(rest) && (rest[j] == '-' || rest[j] >= 'a' && rest[j] <= 'z' || rest[j] >= 'A' && rest[j] <= 'Z') {
		j++
	}
	flags := rest[:j]
	if flags == "" {
		return "", 0, "" // RE2 reports what follows "(?"
	}
	for k := 0; k < len(flags); k++ {
		switch f := flags[k]; f {
		case 'i', 'm', 's', '-':
		case 'U':
			return "", i, "Python has no U (ungreedy) flag; use lazy quantifiers like *? instead"
		case 'a', 'L', 'u', 'x':
			return "", i, fmt.Sprintf("flag %c is Python-only and RE2 rejects it; remove it", f)
		}
	}
	if j < len(rest) && rest[j] == ')' {
		return "", i, fmt.Sprintf("inline flags like (?%s) must be scoped: write (?%s:...) around the part they apply to, because Keylime compiles this inside a larger expression, where Python 3.11+ rejects a global flag (and, for excludes, then ignores every exclude)", flags, flags)
	}
	return "", 0, ""
}

// repeatEnd reports whether expr[i:] starts with a repeat count {n}, {n,},
// {n,m} or {,m} and returns the offset after it.
func repeatEnd(expr string, i int) (int, bool) {
	j := i + 1
	digits := func() int {
		k := j
		for j < len(expr) && expr[j] >= '0' && expr[j] <= '9' {
			j++
		}
		return j - k
	}
	lo := digits()
	if j < len(expr) && expr[j] == ',' {
		j++
		hi := digits()
		if lo == 0 && hi == 0 {
			return 0, false
		}
	} else if lo == 0 {
		return 0, false
	}
	if j < len(expr) && expr[j] == '}' {
		return j + 1, true
	}
	return 0, false
}

// goRegexReason turns an RE2 parse error into advice.
func goRegexReason(err error) string {
	var se *syntax.Error
	if !errors.As(err, &se) {
		return "is not an RE2 regular expression: " + err.Error()
	}
	switch se.Code {
	case syntax.ErrInvalidEscape:
		return fmt.Sprintf("%s is not an escape RE2 understands; escape only punctuation, or write \\xHH", se.Expr)
	case syntax.ErrMissingParen:
		return "a ( is never closed; add the ), or write \\( for a literal parenthesis"
	case syntax.ErrUnexpectedParen:
		return "a ) closes nothing; remove it, or write \\) for a literal parenthesis"
	case syntax.ErrMissingBracket:
		return "a [ is never closed; add the ], or write \\[ for a literal bracket"
	case syntax.ErrMissingRepeatArgument:
		return fmt.Sprintf("%s has nothing to repeat; write \\* \\+ \\? for the literal character", se.Expr)
	case syntax.ErrInvalidRepeatOp:
		return fmt.Sprintf("%s repeats a repetition; drop the second operator", se.Expr)
	case syntax.ErrInvalidRepeatSize:
		return fmt.Sprintf("repeat count %s is invalid or above RE2's limit of 1000; use a smaller count, or * or +", se.Expr)
	case syntax.ErrInvalidCharRange:
		return fmt.Sprintf("character range %s is invalid; write the lower bound first", se.Expr)
	case syntax.ErrInvalidNamedCapture:
		return fmt.Sprintf("%s is not a valid named group; write (?P<name>...) with letters, digits and _", se.Expr)
	case syntax.ErrInvalidPerlOp:
		return fmt.Sprintf("%s is not RE2 syntax; use (?:...) to group and (?P<name>...) to name a group", se.Expr)
	case syntax.ErrTrailingBackslash:
		return `ends with a lone backslash; write \\ for a literal backslash`
	case syntax.ErrNestingDepth, syntax.ErrLarge:
		return "is too large or too deeply nested for RE2; split it into several simpler expressions"
	}
	return "is not an RE2 regular expression: " + se.Error()
}
