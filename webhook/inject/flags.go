package inject

import (
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/secrets-init/secrets-init/internal/options"
)

// ValidateFlags checks the flags of the secrets-init.io/flags annotation
// with secrets-init's own flag parser: an unknown flag, a bad value or
// anything that is not a flag is an error. The environment is not
// consulted (the pod's SECRETS_INIT_* variables are checked by secrets-init
// when it starts).
func ValidateFlags(args []string) error {
	if len(args) == 0 {
		return nil
	}
	o, rest, err := options.Parse(args, func(string) (string, bool) { return "", false })
	switch {
	case errors.Is(err, flag.ErrHelp):
		return errors.New("-h/--help is not a flag for a wrapped container")
	case err != nil:
		return err
	case len(rest) > 0:
		return fmt.Errorf("%q is not a flag (the annotation holds flags only)", strings.Join(rest, " "))
	case o.Version:
		return errors.New("--version would print the version instead of running the container")
	}
	return nil
}
