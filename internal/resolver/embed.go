//go:build embedresolver

package resolver

import _ "embed" // the resolver executable

// Executable is the resolver, built by the first step of the release
// build and embedded by the second (see docs/resolver-protocol.md). The
// file is not in the repository: the build supplies it with -overlay.
//
//go:embed bin/secrets-init-resolver
var Executable string
