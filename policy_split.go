//go:build embedresolver

package main

import (
	"fmt"
	"os"

	"github.com/secrets-init/secrets-init/internal/resolver"
)

// runPolicy is `secrets-init policy`, which the split build runs in the
// embedded resolver executable: the manifest readers (YAML, JSON,
// regular expressions) would otherwise weigh on every supervisor's start.
func runPolicy(args []string) int {
	code, err := resolver.Run(append([]string{"secrets-init", "policy"}, args...))
	if err != nil {
		fmt.Fprintf(os.Stderr, "secrets-init: policy: %v\n", err)
		return exitFailed
	}
	return code
}
