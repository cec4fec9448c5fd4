//go:build !embedresolver

package main

import (
	"os"

	"github.com/secrets-init/secrets-init/internal/encrypt"
	"github.com/secrets-init/secrets-init/policy"
)

// runTool runs `secrets-init policy` or `secrets-init encrypt`, in this
// process.
func runTool(name string, args []string) int {
	if name == "encrypt" {
		return encrypt.Main(args, os.Stdin, os.Stdout, os.Stderr)
	}
	return policy.Main(args, os.Stdin, os.Stdout, os.Stderr)
}
