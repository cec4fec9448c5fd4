// Package options defines secrets-init's flags and reads them from the
// command line and from SECRETS_INIT_* variables. The admission webhook
// validates its flags annotation with the same Parse.
package options

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/signals"
)

// Options are the parsed flags.
type Options struct {
	Provider      string
	ExitEarly     bool
	LogFormat     string
	LogLevel      slog.Level
	GoogleProject string
	Interactive   bool
	Timeout       time.Duration
	Concurrency   int
	EnvFiles      List
	ExpandJSON    bool
	Exec          bool
	ForwardTo     string
	Rewrite       signals.Rewrite
	IgnoreMissing bool
	Skip          List
	Passthrough   List
	Version       bool

	// Refresh (SPEC §8); see docs/refresh.md.
	Refresh       time.Duration   // --refresh D: check every D (0: off)
	RefreshLeases bool            // --refresh leases: only Vault leases and tokens
	OnChange      provider.Action // --on-change: restart or none
	OnFileChange  provider.Action // --on-file-change: restart, a signal or none
	Splay         time.Duration   // --splay
	StopTimeout   time.Duration   // --stop-timeout
	MaxStale      time.Duration   // --max-stale (0: off)
	StatusFile    string          // --status-file
	RefreshSignal syscall.Signal  // --refresh-signal (0: none)
	set           map[string]bool // the flags given, on the command line or in a variable
}

// MinRefresh is the shortest --refresh interval.
const MinRefresh = 10 * time.Second

// TestRefreshFloor names a variable that lowers MinRefresh, for secrets-init's
// own tests only (they run rounds every few milliseconds): a duration, read
// through the same lookup as the flags. Never set it in production.
const TestRefreshFloor = "SECRETS_INIT_TEST_REFRESH_FLOOR"

// List is a repeatable flag; its variable holds a comma-separated list.
type List []string

func (l *List) String() string     { return strings.Join(*l, ",") }
func (l *List) Set(v string) error { *l = append(*l, v); return nil }

// shorthands are doitintl's one-letter flags: they set the long flag and
// have no variable of their own.
var shorthands = map[string]string{"i": "interactive", "l": "log-format", "p": "provider"}

// legacyEnv are the variables doitintl/secrets-init reads its flags from.
var legacyEnv = map[string]string{"log-format": "LOG_FORMAT", "exit-early": "EXIT_EARLY"}

func newFlags(o *Options) *flag.FlagSet {
	fs := flag.NewFlagSet("secrets-init", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.Provider, "provider", "", "accepted for doitintl/secrets-init compatibility; stores are detected from the references")
	fs.StringVar(&o.Provider, "p", "", "shorthand for --provider (doitintl's)")
	fs.BoolVar(&o.ExitEarly, "exit-early", false, "accepted for compatibility; failing closed is always the behaviour")
	o.LogFormat, o.ForwardTo = "text", "group"
	fs.Var(choice{&o.LogFormat, []string{"text", "json"}}, "log-format", "log `FORMAT`: text or json")
	fs.Var(choice{&o.LogFormat, []string{"text", "json"}}, "l", "shorthand for --log-format `FORMAT` (doitintl's)")
	fs.Var(levelFlag{&o.LogLevel}, "log-level", "log `LEVEL`: debug, info, warn or error")
	fs.StringVar(&o.GoogleProject, "google-project", "", "Google Cloud project for short gcp:secretmanager: references")
	fs.BoolVar(&o.Interactive, "interactive", false, "accepted for compatibility; a terminal on stdin is detected")
	fs.BoolVar(&o.Interactive, "i", false, "shorthand for --interactive")
	fs.DurationVar(&o.Timeout, "timeout", 60*time.Second, "deadline for resolving every reference")
	fs.IntVar(&o.Concurrency, "concurrency", 32, "most store calls in flight at once")
	fs.Var(&o.EnvFiles, "env-file", "read variables from a dotenv `FILE` (repeatable; the environment wins)")
	fs.BoolVar(&o.ExpandJSON, "expand-json", false, "make every top-level key of a JSON secret its own variable (doitintl's behaviour)")
	fs.BoolVar(&o.Exec, "exec", false, "replace secrets-init with the command (no supervisor)")
	fs.Var(choice{&o.ForwardTo, []string{"group", "child"}}, "forward-to", "`WHERE` to forward signals: group (the child's process group) or child")
	fs.Var(o.Rewrite, "rewrite", "forward signal `FROM:TO` as another, e.g. TERM:QUIT (repeatable; TO 0 drops it)")
	fs.BoolVar(&o.IgnoreMissing, "ignore-missing", false, "leave a variable unset when its secret does not exist")
	fs.Var(&o.Skip, "skip", "never resolve variable `NAME` (repeatable)")
	fs.Var(&o.Passthrough, "passthrough", "pass auth input `NAME` (e.g. VAULT_TOKEN) to the command (repeatable)")
	fs.BoolVar(&o.Version, "version", false, "print the version and exit")
	o.OnChange, o.OnFileChange = provider.Action{Kind: provider.ActRestart}, provider.Action{Kind: provider.ActRestart}
	fs.Var(refreshFlag{o}, "refresh", "check every reference that is not pinned about every `D` (at least 10s), or 'leases' (Vault leases and tokens only); see docs/refresh.md")
	fs.Var(actionFlag{&o.OnChange, false}, "on-change", "`ACTION` when a value in the environment changes: restart or none")
	fs.Var(actionFlag{&o.OnFileChange, true}, "on-file-change", "`ACTION` when a ?file value changes: restart, a signal (HUP, USR1, a number) or none")
	fs.DurationVar(&o.Splay, "splay", 0, "wait a random time in [0, `D`] before acting on a change; changes meanwhile make one action")
	fs.DurationVar(&o.StopTimeout, "stop-timeout", 30*time.Second, "during a restart, time between the stop signal and SIGKILL")
	fs.DurationVar(&o.MaxStale, "max-stale", 0, "stop the command and exit 125 when no check has succeeded for `D`")
	fs.StringVar(&o.StatusFile, "status-file", "", "write a value-free JSON status to `PATH` after every check")
	fs.Var(signalFlag{&o.RefreshSignal}, "refresh-signal", "a `SIGNAL` that makes secrets-init check now (not forwarded)")
	return fs
}

// choice is a flag that takes one of a few words.
type choice struct {
	s     *string
	words []string
}

func (c choice) String() string {
	if c.s == nil {
		return ""
	}
	return *c.s
}

func (c choice) Set(v string) error {
	if !slices.Contains(c.words, v) {
		return fmt.Errorf("want %s", strings.Join(c.words, " or "))
	}
	*c.s = v
	return nil
}

// levelFlag is --log-level.
type levelFlag struct{ l *slog.Level }

func (f levelFlag) String() string {
	if f.l == nil {
		return ""
	}
	return strings.ToLower(f.l.String())
}

func (f levelFlag) Set(v string) error {
	if err := f.l.UnmarshalText([]byte(v)); err != nil {
		return errors.New("want debug, info, warn or error")
	}
	return nil
}

// Parse reads flags from args, then, for the flags args did not set, from
// SECRETS_INIT_<FLAG> (and doitintl's LOG_FORMAT and EXIT_EARLY) as
// lookupEnv finds them. It returns the arguments after the flags: the
// command. The error wraps flag.ErrHelp for -h and --help.
func Parse(args []string, lookupEnv func(string) (string, bool)) (*Options, []string, error) {
	o := &Options{Rewrite: signals.Rewrite{}}
	fs := newFlags(o)
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for short, long := range shorthands {
		set[long] = set[long] || set[short]
		set[short] = true
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := "SECRETS_INIT_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		env, ok := lookupEnv(name)
		if legacy := legacyEnv[f.Name]; !ok && legacy != "" {
			// doitintl's own variables, honoured only with a value that
			// makes sense: an application may use LOG_FORMAT for itself.
			if env, ok = lookupEnv(legacy); ok && env != "" && !set[f.Name] && f.Value.Set(env) != nil {
				f.Value.Set(f.DefValue)
			}
			return
		}
		if !ok || env == "" || set[f.Name] || f.Name == "version" || err != nil {
			return
		}
		values := []string{env}
		if _, repeatable := f.Value.(*List); repeatable || f.Name == "rewrite" {
			values = strings.Split(env, ",")
		}
		for _, v := range values {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s: %w", name, e)
			}
		}
		set[f.Name] = true
	})
	if err != nil {
		return nil, nil, err
	}
	o.set = set
	floor := MinRefresh
	if v, ok := lookupEnv(TestRefreshFloor); ok && v != "" {
		if floor, err = time.ParseDuration(v); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", TestRefreshFloor, err)
		}
	}
	return o, fs.Args(), o.validate(floor)
}

// refreshFlags need --refresh.
var refreshFlags = []string{"on-change", "on-file-change", "splay", "stop-timeout", "max-stale", "status-file", "refresh-signal"}

// validate checks what a flag's type alone cannot. floor is the shortest
// --refresh allowed.
func (o *Options) validate(floor time.Duration) error {
	switch {
	case o.Timeout <= 0:
		return errors.New("--timeout must be positive")
	case o.Concurrency < 1:
		return errors.New("--concurrency must be at least 1")
	}
	on := o.Refresh > 0 || o.RefreshLeases
	for _, f := range refreshFlags {
		if o.set[f] && !on {
			return fmt.Errorf("--%s needs --refresh", f)
		}
	}
	switch {
	case !on:
		return nil
	case o.Exec:
		return errors.New("--refresh needs the supervisor: it cannot be combined with --exec")
	case o.Refresh > 0 && o.Refresh < floor:
		return fmt.Errorf("--refresh %s is too short (at least %s)", o.Refresh, floor)
	case o.Splay < 0:
		return errors.New("--splay cannot be negative")
	case o.Refresh > 0 && o.Splay > o.Refresh:
		return fmt.Errorf("--splay %s is longer than --refresh %s", o.Splay, o.Refresh)
	case o.StopTimeout <= 0:
		return errors.New("--stop-timeout must be positive")
	case o.MaxStale < 0:
		return errors.New("--max-stale cannot be negative")
	case o.MaxStale > 0 && o.MaxStale < o.Refresh:
		return fmt.Errorf("--max-stale %s is shorter than --refresh %s: it would stop the command before a second check", o.MaxStale, o.Refresh)
	case o.RefreshSignal != 0 && o.RefreshSignal == o.OnFileChange.Signal:
		return fmt.Errorf("--refresh-signal %s is also --on-file-change: the command would make secrets-init check again", signals.Name(o.RefreshSignal))
	}
	return nil
}

// Changed reports whether flag name was given, on the command line or in
// its variable.
func (o *Options) Changed(name string) bool { return o.set[name] }

// refreshFlag is --refresh: a duration or "leases".
type refreshFlag struct{ o *Options }

func (f refreshFlag) String() string {
	switch {
	case f.o == nil || f.o.Refresh == 0 && !f.o.RefreshLeases:
		return ""
	case f.o.RefreshLeases:
		return "leases"
	}
	return f.o.Refresh.String()
}

func (f refreshFlag) Set(v string) error {
	if v == "leases" {
		f.o.Refresh, f.o.RefreshLeases = 0, true
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return errors.New("want a duration such as 5m, or leases")
	}
	f.o.Refresh, f.o.RefreshLeases = d, false
	return nil
}

// actionFlag is --on-change and --on-file-change.
type actionFlag struct {
	a      *provider.Action
	signal bool
}

func (f actionFlag) String() string {
	if f.a == nil {
		return ""
	}
	return f.a.String()
}

func (f actionFlag) Set(v string) error {
	a, err := provider.ParseAction(v, f.signal, false)
	if err == nil {
		*f.a = a
	}
	return err
}

// signalFlag is --refresh-signal.
type signalFlag struct{ s *syscall.Signal }

func (f signalFlag) String() string {
	if f.s == nil || *f.s == 0 {
		return ""
	}
	return signals.Name(*f.s)
}

func (f signalFlag) Set(v string) error {
	sig, err := signals.Parse(v)
	if err == nil {
		err = provider.SignalAllowed(sig)
	}
	if err == nil {
		*f.s = sig
	}
	return err
}

// PrintDefaults writes the flags and their defaults to w.
func PrintDefaults(w io.Writer) {
	fs := newFlags(&Options{Rewrite: signals.Rewrite{}})
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// Logger returns the logger the flags ask for, writing to w.
func (o *Options) Logger(w io.Writer) *slog.Logger {
	h := &slog.HandlerOptions{Level: o.LogLevel}
	if o.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, h))
	}
	return slog.New(slog.NewTextHandler(w, h))
}
