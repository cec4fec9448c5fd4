// Package stores wires in the stores that need an SDK, each unless its
// no_* build tag leaves it out. The single-process build of secrets-init
// and the resolver (internal/resolver) use it; the split supervisor does
// not import it, so that it links no SDK.
package stores

import (
	"github.com/secrets-init/secrets-init/internal/options"
	"github.com/secrets-init/secrets-init/provider"
)

// Openers are the SDK stores this binary was built with, each as a
// function of the flags.
var Openers = map[provider.Kind]func(*options.Options) provider.Opener{}
