package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/secrets-init/secrets-init/internal/atomicfile"
)

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
	return atomicfile.Write(filepath.Join(dir, "secrets-init"), src, 0o755)
}
