// Command secrets-init resolves the secret references in its environment,
// then runs a command with their values and supervises it as a small init.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/secrets-init/secrets-init/provider"
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

// stores are the stores this binary was built with; each store_*.go file
// adds its own unless its no_* build tag leaves it out.
var stores = map[provider.Kind]provider.Opener{
	provider.File: provider.OpenFile,
}

const usage = `Usage:
  secrets-init [FLAGS] [--] COMMAND [ARG...]  resolve secret references, then run and supervise COMMAND
  secrets-init check [FLAGS]                  resolve everything and print a value-free report
  secrets-init copy DIR                       copy this binary to DIR/secrets-init (mode 0755)
  secrets-init --version | --help

Every flag can also be set with SECRETS_INIT_<FLAG> (upper case, '-' as '_');
a flag on the command line wins. Repeatable flags take a comma-separated list there.

Flags:
`

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "copy", "cp": // cp: doitintl's alias
			return copySelf(args[1:])
		case "check":
			return resolveAndRun(args[1:], true)
		}
	}
	return resolveAndRun(args, false)
}

// options are the parsed flags.
type options struct {
	provider      string
	exitEarly     bool
	logFormat     string
	logLevel      string
	googleProject string
	interactive   bool
	timeout       time.Duration
	concurrency   int
	envFiles      list
	expandJSON    bool
	exec          bool
	forwardTo     string
	rewrite       signals.Rewrite
	ignoreMissing bool
	skip          list
	passthrough   list
	version       bool
}

// list is a repeatable flag.
type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

func newFlags(o *options) *flag.FlagSet {
	fs := flag.NewFlagSet("secrets-init", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.provider, "provider", "", "accepted for doitintl/secrets-init compatibility; stores are detected from the references")
	fs.StringVar(&o.provider, "p", "", "shorthand for --provider (doitintl's)")
	fs.BoolVar(&o.exitEarly, "exit-early", false, "accepted for compatibility; failing closed is always the behaviour")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&o.logFormat, "l", "text", "shorthand for --log-format (doitintl's)")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&o.googleProject, "google-project", "", "Google Cloud project for short gcp:secretmanager: references")
	fs.BoolVar(&o.interactive, "interactive", false, "accepted for compatibility; a terminal on stdin is detected")
	fs.BoolVar(&o.interactive, "i", false, "shorthand for --interactive")
	fs.DurationVar(&o.timeout, "timeout", 60*time.Second, "deadline for resolving every reference")
	fs.IntVar(&o.concurrency, "concurrency", 32, "most store calls in flight at once")
	fs.Var(&o.envFiles, "env-file", "read variables from a dotenv `FILE` (repeatable; the environment wins)")
	fs.BoolVar(&o.expandJSON, "expand-json", false, "make every top-level key of a JSON secret its own variable (doitintl's behaviour)")
	fs.BoolVar(&o.exec, "exec", false, "replace secrets-init with the command (no supervisor)")
	fs.StringVar(&o.forwardTo, "forward-to", "group", "`WHERE` to forward signals: group (the child's process group) or child")
	fs.Var(o.rewrite, "rewrite", "forward signal `FROM:TO` as another, e.g. TERM:QUIT (repeatable; TO 0 drops it)")
	fs.BoolVar(&o.ignoreMissing, "ignore-missing", false, "leave a variable unset when its secret does not exist")
	fs.Var(&o.skip, "skip", "never resolve variable `NAME` (repeatable)")
	fs.Var(&o.passthrough, "passthrough", "pass auth input `NAME` (e.g. VAULT_TOKEN) to the command (repeatable)")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	return fs
}

// legacyEnv are the variables doitintl/secrets-init reads its flags from.
var legacyEnv = map[string]string{"log-format": "LOG_FORMAT", "exit-early": "EXIT_EARLY"}

// parseFlags reads flags from args, then from SECRETS_INIT_* for the flags
// args did not set. It returns the command.
func parseFlags(args []string) (*options, []string, error) {
	o := &options{rewrite: signals.Rewrite{}}
	fs := newFlags(o)
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for short, long := range map[string]string{"i": "interactive", "l": "log-format", "p": "provider"} {
		set[long] = set[long] || set[short]
		set[short] = true // shorthands have no variable of their own
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := "SECRETS_INIT_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		env, ok := os.LookupEnv(name)
		if legacy := legacyEnv[f.Name]; !ok && legacy != "" {
			// doitintl's own variables, honoured only with a value that
			// makes sense: an application may use LOG_FORMAT for itself.
			if env, ok = os.LookupEnv(legacy); ok && f.Value.Set(env) != nil {
				f.Value.Set(f.DefValue)
				return
			}
			name = legacy
		}
		if !ok || env == "" || set[f.Name] || f.Name == "version" || err != nil {
			return
		}
		values := []string{env}
		if _, repeatable := f.Value.(*list); repeatable || f.Name == "rewrite" {
			values = strings.Split(env, ",")
		}
		for _, v := range values {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s: %w", name, e)
			}
		}
	})
	if err != nil {
		return nil, nil, err
	}
	switch {
	case o.forwardTo != "group" && o.forwardTo != "child":
		err = fmt.Errorf("--forward-to %q: want group or child", o.forwardTo)
	case o.logFormat != "text" && o.logFormat != "json":
		err = fmt.Errorf("--log-format %q: want text or json", o.logFormat)
	case o.timeout <= 0:
		err = errors.New("--timeout must be positive")
	case o.concurrency < 1:
		err = errors.New("--concurrency must be at least 1")
	}
	var level slog.Level
	if err == nil {
		if e := level.UnmarshalText([]byte(o.logLevel)); e != nil {
			err = fmt.Errorf("--log-level %q: want debug, info, warn or error", o.logLevel)
		}
	}
	return o, fs.Args(), err
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, usage)
	fs := newFlags(&options{rewrite: signals.Rewrite{}})
	fs.SetOutput(w)
	fs.PrintDefaults()
}

func (o *options) logger() *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(o.logLevel))
	h := &slog.HandlerOptions{Level: level}
	if o.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, h))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, h))
}

func resolveAndRun(args []string, check bool) int {
	o, command, err := parseFlags(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		printUsage(os.Stdout)
		return 0
	case err != nil:
		fmt.Fprintf(os.Stderr, "secrets-init: %v\n", err)
		printUsage(os.Stderr)
		return exitUsage
	case o.version:
		fmt.Println("secrets-init", version)
		return 0
	case check && len(command) > 0:
		fmt.Fprintln(os.Stderr, "secrets-init: check takes no command")
		return exitUsage
	case !check && len(command) == 0:
		fmt.Fprintln(os.Stderr, "secrets-init: no command given")
		printUsage(os.Stderr)
		return exitUsage
	}
	log := o.logger()

	// Subscribe to the standard signals before anything else: SIGTERM
	// during resolution must abort it, and none may be lost once the child
	// runs. (The supervisor adds the real-time ones.)
	sigs := make(chan os.Signal, 128)
	signal.Notify(sigs, signals.Standard...)
	if !o.exec {
		if err := reaper.Subreaper(); err != nil {
			log.Warn("cannot become a child subreaper; orphans will not be reaped", "err", err)
		}
	}

	environ, err := environment(o.envFiles)
	if err != nil {
		fmt.Fprintf(os.Stderr, "secrets-init: %v\n", err)
		return exitFailed
	}
	cfg := provider.Config{
		Stores:        stores,
		Settings:      provider.Settings{GoogleProject: o.googleProject, Log: log},
		Timeout:       o.timeout,
		Concurrency:   o.concurrency,
		ExpandJSON:    o.expandJSON,
		IgnoreMissing: o.ignoreMissing,
		Skip:          o.skip,
		Passthrough:   append(o.passthrough, strings.Split(os.Getenv("VAULT_ENV_PASSTHROUGH"), ",")...),
		DryRun:        check,
	}
	res, code, err := resolve(cfg, environ, sigs)
	if code != 0 {
		return code
	}
	if check {
		return report(o, res, err)
	}
	if err != nil {
		fail(o, log, res, err)
		return exitFailed
	}
	defer res.Files.Remove()
	// The command must not read the auth inputs from /proc/<pid>/environ
	// either (docs/security.md). Harmless before --exec.
	if err := supervisor.ScrubEnviron(provider.AuthInputs, cfg.Passthrough); err != nil {
		log.Warn("auth inputs may still be readable in /proc/<secrets-init>/environ", "err", err)
	}

	cmd := supervisor.Command{
		Args:    command,
		Env:     res.Env,
		Child:   o.forwardTo == "child",
		Rewrite: o.rewrite,
		Log:     log,
	}
	res = nil
	if o.exec {
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

// environment is the process environment merged with the --env-file
// files. Variables a file adds are also set in this process, so that the
// stores' SDKs see them (AWS_REGION, VAULT_ADDR, …).
func environment(files []string) ([]string, error) {
	var parsed [][]string
	for _, f := range files {
		env, err := provider.ReadEnvFile(f)
		if err != nil {
			return nil, err
		}
		parsed = append(parsed, env)
	}
	environ := provider.MergeEnv(os.Environ(), parsed...)
	for _, kv := range environ[len(os.Environ()):] {
		name, value, _ := strings.Cut(kv, "=")
		os.Setenv(name, value)
	}
	return environ, nil
}

// resolve runs the resolution, which SIGTERM, SIGINT or SIGHUP abort: code
// is then 128+N. Other signals that come meanwhile have no child to go to.
func resolve(cfg provider.Config, environ []string, sigs chan os.Signal) (*provider.Resolution, int, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		res *provider.Resolution
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := provider.Resolve(ctx, cfg, environ)
		done <- result{res, err}
	}()
	for {
		select {
		case r := <-done:
			return r.res, 0, r.err
		case s := <-sigs:
			sig, _ := s.(syscall.Signal)
			switch sig {
			case syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP:
				fmt.Fprintf(os.Stderr, "secrets-init: %s: resolution aborted; the command was not started\n", signals.Name(sig))
				return nil, 128 + int(sig), nil
			}
		}
	}
}

// fail reports a failed resolution: a line per failed variable, then a
// summary. No value is in any of it.
func fail(o *options, log *slog.Logger, res *provider.Resolution, err error) {
	var f *provider.Failure
	if !errors.As(err, &f) {
		log.Error("resolution failed", "err", err)
		return
	}
	for _, v := range f.Vars {
		if o.logFormat == "json" {
			log.Error("cannot resolve", "variable", v.Name, "reference", v.Reference, "error", v.Reason())
		} else {
			fmt.Fprintf(os.Stderr, "secrets-init: %s: %s: %s\n", v.Name, v.Reference, v.Reason())
		}
	}
	summary := fmt.Sprintf("%d of %d references failed; the command was not started", len(f.Vars), len(res.Report))
	if o.logFormat == "json" {
		log.Error(summary, "failed", len(f.Vars), "references", len(res.Report))
	} else {
		fmt.Fprintf(os.Stderr, "secrets-init: %s\n", summary)
	}
}

// report prints check's table: no value, only what was resolved and how.
func report(o *options, res *provider.Resolution, err error) int {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tSTORE\tREFERENCE\tVERSION\tSTATUS\tLATENCY")
	for _, s := range res.Report {
		status := "ok"
		switch {
		case s.Err != nil:
			status = "error: " + s.Reason()
		case s.Missing:
			status = "missing (left unset)"
		}
		kind := "-"
		if s.Kind != 0 {
			kind = s.Kind.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, kind, s.Reference, orDash(s.Version), status, s.Latency.Round(time.Millisecond))
	}
	tw.Flush()
	if err != nil {
		var f *provider.Failure
		if errors.As(err, &f) {
			fmt.Fprintf(os.Stderr, "secrets-init: %d of %d references failed\n", len(f.Vars), len(res.Report))
		}
		return exitFailed
	}
	fmt.Fprintf(os.Stderr, "secrets-init: %d references resolved\n", len(res.Report))
	return 0
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// copySelf copies this executable (or SRC, in the `cp SRC DIR` form that
// kube-secrets-init's initContainer uses) to DIR/secrets-init, atomically,
// for an initContainer that hands it to the app's container.
func copySelf(args []string) int {
	src := "/proc/self/exe"
	if len(args) == 2 {
		src, args = args[0], args[1:]
	}
	if len(args) != 1 || args[0] == "" || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(os.Stderr, "usage: secrets-init copy DIR")
		return exitUsage
	}
	if err := copyTo(src, args[0]); err != nil {
		fmt.Fprintf(os.Stderr, "secrets-init: copy: %v\n", err)
		return exitFailed
	}
	return 0
}

func copyTo(from, dir string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return provider.WriteAtomic(filepath.Join(dir, "secrets-init"), src, 0o755)
}
