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
	"time"

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
}

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
	})
	if err != nil {
		return nil, nil, err
	}
	return o, fs.Args(), o.validate()
}

// validate checks what a flag's type alone cannot.
func (o *Options) validate() error {
	switch {
	case o.Timeout <= 0:
		return errors.New("--timeout must be positive")
	case o.Concurrency < 1:
		return errors.New("--concurrency must be at least 1")
	}
	return nil
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
