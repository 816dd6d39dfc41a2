package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets the scripts run the real zest binary as "zest".
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"zest": func() { os.Exit(Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) },
	})
}

// TestScripts runs testdata/script/*.txtar: each holds the commands a user
// types, their input files and the expected output and exit status.
// $FIXTURES points at the repository's fixtures/ directory.
func TestScripts(t *testing.T) {
	fixtures, err := filepath.Abs("../../fixtures")
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Setup: func(env *testscript.Env) error {
			env.Setenv("FIXTURES", fixtures)
			env.Setenv("SOURCE_DATE_EPOCH", "")
			return nil
		},
		UpdateScripts: os.Getenv("ZEST_UPDATE_SCRIPTS") == "1",
	})
}
