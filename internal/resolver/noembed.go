//go:build !embedresolver

package resolver

// Executable is empty: this binary resolves in-process (a plain go build).
const Executable = ""
