// Command secrets-init resolves the secret references in its environment,
// then runs a command with their values and supervises it as a small init.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/secrets-init/secrets-init/internal/options"
	"github.com/secrets-init/secrets-init/reaper"
	"github.com/secrets-init/secrets-init/signals"
	"github.com/secrets-init/secrets-init/supervisor"
)

// Exit codes of secrets-init itself; the command's own pass through.
const (
	exitUsage  = 2   // bad flags or no command
	exitFailed = 125 // a reference could not be resolved, or another failure of secrets-init
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `Usage:
  secrets-init [FLAGS] [--] COMMAND [ARG...]  resolve secret references, then run and supervise COMMAND
  secrets-init check [FLAGS]                  resolve everything and print a value-free report
  secrets-init copy DIR                       copy this binary to DIR/secrets-init (mode 0755)
  secrets-init policy [-f FILE|DIR|-]...      write the least-privilege policy the manifests' references need
  secrets-init encrypt --key KEYREF           encrypt stdin to a KMS key as a jwe: value (--help)
  secrets-init --version | --help

Every flag can also be set with SECRETS_INIT_<FLAG> (upper case, '-' as '_');
a flag on the command line wins. Repeatable flags take a comma-separated list there.

Flags:
`

func main() {
	os.Exit(run(os.Args[1:]))
}

// run dispatches on the subcommand, which is only ever the first argument.
func run(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "copy", "cp": // cp: doitintl's alias
			return copySelf(args[1:])
		case "check":
			return check(args[1:])
		case "policy":
			return runTool("policy", args[1:])
		case "encrypt":
			return runTool("encrypt", args[1:])
		}
	}
	return runCommand(args)
}

// runCommand is secrets-init's main job: parse, resolve, start, wait, exit.
func runCommand(args []string) int {
	o, command, code := parseFlags(args)
	switch {
	case o == nil:
		return code
	case len(command) == 0:
		fmt.Fprintln(os.Stderr, "secrets-init: no command given")
		printUsage(os.Stderr)
		return exitUsage
	}
	log := o.Logger(os.Stderr)

	// Subscribe to the standard signals before anything else: SIGTERM
	// during resolution must abort it, and none may be lost once the child
	// runs. (The supervisor adds the real-time ones.)
	sigs := make(chan os.Signal, 128)
	signal.Notify(sigs, signals.Standard...)
	if !o.Exec {
		if err := reaper.Subreaper(); err != nil {
			log.Warn("cannot become a child subreaper; orphans will not be reaped", "err", err)
		}
	}

	res, code, err := resolve(o, log, sigs, false)
	if code != 0 {
		return code
	}
	if err != nil {
		fail(o, log, res, err)
		return exitFailed
	}
	defer res.Files.Remove()
	warnLeases(o, log, res.Report)
	// The command must not read the auth inputs from /proc/<pid>/environ
	// either (docs/security.md). Harmless before --exec.
	if err := supervisor.ScrubEnviron(authInputs, passthrough(o)); err != nil {
		log.Warn("auth inputs may still be readable in /proc/<secrets-init>/environ", "err", err)
	}

	cmd := supervisor.Command{
		Args:    command,
		Env:     res.Env,
		Child:   o.ForwardTo == "child",
		Rewrite: o.Rewrite,
		Log:     log,
	}
	defer startRefresh(o, log, res, &cmd)()
	res.Env = nil
	if o.Exec {
		// No signal.Reset: execve gives caught signals their default
		// action, and secrets-init ignores none.
		err = supervisor.Exec(cmd)
	} else {
		code, err = supervisor.Run(cmd, sigs)
	}
	var se *supervisor.StartError
	switch {
	case errors.As(err, &se):
		fmt.Fprintf(os.Stderr, "secrets-init: %v\n", se)
		return se.Code
	case err != nil:
		fmt.Fprintf(os.Stderr, "secrets-init: %v\n", err)
		return exitFailed
	}
	return code
}

// parseFlags parses the flags of the run and of check. It returns the
// options and the command, or nil options and the exit code when there is
// nothing to run: --help, --version or a usage error, already reported.
func parseFlags(args []string) (*options.Options, []string, int) {
	o, command, err := options.Parse(args, os.LookupEnv)
	switch {
	case errors.Is(err, flag.ErrHelp):
		printUsage(os.Stdout)
		return nil, nil, 0
	case err != nil:
		fmt.Fprintf(os.Stderr, "secrets-init: %v\n", err)
		printUsage(os.Stderr)
		return nil, nil, exitUsage
	case o.Version:
		fmt.Println("secrets-init", version)
		return nil, nil, 0
	}
	return o, command, 0
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, usage)
	options.PrintDefaults(w)
}
