//go:build !embedresolver

package main

import (
	"os"

	"github.com/secrets-init/secrets-init/policy"
)

// runPolicy is `secrets-init policy`, in this process.
func runPolicy(args []string) int {
	return policy.Main(args, os.Stdin, os.Stdout, os.Stderr)
}
