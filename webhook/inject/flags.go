package inject

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// ValidateFlags checks the flags of the secrets-init.io/flags annotation the
// way secrets-init will parse them: an unknown flag, a bad value or anything
// that is not a flag is an error. (Interim copy of secrets-init's flag
// table, until its options package can be imported.)
func ValidateFlags(args []string) error {
	fs := flag.NewFlagSet("secrets-init", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var s string
	var b bool
	var d time.Duration
	var n int
	for _, name := range []string{"provider", "p", "log-format", "l", "log-level", "google-project", "forward-to"} {
		fs.StringVar(&s, name, "", "")
	}
	for _, name := range []string{"exit-early", "interactive", "i", "expand-json", "exec", "ignore-missing", "version"} {
		fs.BoolVar(&b, name, false, "")
	}
	fs.DurationVar(&d, "timeout", 0, "")
	fs.IntVar(&n, "concurrency", 0, "")
	for _, name := range []string{"env-file", "rewrite", "skip", "passthrough"} {
		fs.Func(name, "", func(string) error { return nil })
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errors.New("-h/--help is not a flag for a wrapped container")
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%q is not a flag (the annotation holds flags only)", strings.Join(fs.Args(), " "))
	}
	return nil
}
