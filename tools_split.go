//go:build embedresolver

package main

import (
	"fmt"
	"os"

	"github.com/secrets-init/secrets-init/internal/resolver"
)

// runTool runs `secrets-init policy` or `secrets-init encrypt`, which the
// split build runs in the embedded resolver executable: policy's manifest
// readers would otherwise weigh on every supervisor's start, and encrypt
// needs the KMS SDKs.
func runTool(name string, args []string) int {
	code, err := resolver.Run(append([]string{"secrets-init", name}, args...))
	if err != nil {
		fmt.Fprintf(os.Stderr, "secrets-init: %s: %v\n", name, err)
		return exitFailed
	}
	return code
}
