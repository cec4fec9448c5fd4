package main

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/secrets-init/secrets-init/internal/testbin"
)

func TestMain(m *testing.M) {
	testscript.Main(cleanup{m}, map[string]func(){
		"secrets-init": func() { os.Exit(run(os.Args[1:])) },
	})
}

// cleanup removes the binaries init_test.go built once the tests are done.
type cleanup struct{ m *testing.M }

func (c cleanup) Run() int {
	defer testbin.Cleanup()
	return c.m.Run()
}

// TestScript runs the CLI scripts in testdata/script: each one is a small
// session of commands with their expected output.
func TestScript(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:  "testdata/script",
		Cmds: map[string]func(*testscript.TestScript, bool, []string){"status": status},
	})
}

// status runs a program and checks its exit status: status N PROG [ARG...].
// Its output is kept for stdout and stderr, as exec's is.
func status(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: status N PROG [ARG...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("status %q: %v", args[0], err)
	}
	got := 0
	var ee *exec.ExitError
	if err := ts.Exec(args[1], args[2:]...); errors.As(err, &ee) {
		got = ee.ExitCode()
	} else if err != nil {
		ts.Fatalf("%v", err)
	}
	if got != want {
		ts.Fatalf("exit status %d, want %d", got, want)
	}
}
