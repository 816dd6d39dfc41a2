// Command zest generates, checks and signs Keylime attestation policies.
//
// This package only parses flags, opens files, calls the libraries and
// renders their results; all behaviour lives in digests/, policygen/ and
// schema/.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// Exit codes are part of zest's interface.
const (
	exitOK      = 0
	exitFailure = 1 // the job failed, or found what it looks for (rejection, difference, invalid policy)
	exitUsage   = 2 // bad command line
)

func main() {
	os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// app holds what every command shares; there is no package-level state.
type app struct {
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
	quiet   bool
	running bool // set once a command's RunE starts: errors before that are usage errors
}

// exitError carries an exit code; err may be nil when the command already
// said everything (e.g. diff found differences).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func usageErrorf(format string, a ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, a...)}
}

// Main runs zest with args and returns the exit code. It is the only place
// that prints errors.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteC()
	if err == nil {
		return exitOK
	}
	code := exitFailure
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
		err = ee.err
	} else if !a.running {
		code = exitUsage
	}
	if err != nil {
		msg := strings.TrimRight(err.Error(), "\n")
		fmt.Fprintf(stderr, "zest: %s\n", msg)
		if code == exitUsage && cmd != nil {
			fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
	}
	return code
}

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "zest",
		Short: "Keylime attestation policies as code: generate, validate, diff, merge, sign",
		Long: `zest turns what you ship (filesystem trees, initrds, golden-machine IMA logs,
allowlists) into Keylime-compatible runtime policies, deterministically, and
validates, diffs, merges and signs them.`,
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			a.running = true
			return nil
		},
	}
	root.PersistentFlags().BoolVarP(&a.quiet, "quiet", "q", false, "no progress or summary on stderr")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: exitUsage, err: err}
	})
	root.AddCommand(a.policyCmd(), a.digestsCmd(), a.eventlogCmd(), a.pcrCmd(), a.verifyCmd(), a.serveCmd(), a.archiveCmd(), a.versionCmd())
	return root
}

// stderrIsTTY reports whether progress may be drawn.
func (a *app) progressAllowed() bool {
	if a.quiet {
		return false
	}
	f, ok := a.stderr.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// note prints a short human line on stderr unless --quiet.
func (a *app) note(format string, args ...any) {
	if !a.quiet {
		fmt.Fprintf(a.stderr, format+"\n", args...)
	}
}
