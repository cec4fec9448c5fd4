//go:build embedresolver

package main

import (
	"log/slog"

	"github.com/secrets-init/secrets-init/internal/options"
	"github.com/secrets-init/secrets-init/internal/resolver"
	"github.com/secrets-init/secrets-init/provider"
)

// remoteKinds are the SDK stores this build has: each split_*.go file adds
// its own unless its no_* build tag leaves it out, as the resolver's
// build leaves out the SDK.
var remoteKinds []provider.Kind

// openStores returns the stores of a resolution. This build (the release
// build) links no SDK: the stores that need one run in the resolver, a
// process started from the executable it embeds when a reference first
// needs one of them (docs/resolver-protocol.md).
func openStores(o *options.Options, log *slog.Logger) (map[provider.Kind]provider.Opener, storeCloser) {
	all := map[provider.Kind]provider.Opener{provider.File: provider.OpenFile}
	c := resolver.NewEmbeddedClient(resolver.Settings{
		LogFormat:     o.LogFormat,
		LogLevel:      o.LogLevel,
		GoogleProject: o.GoogleProject,
		Concurrency:   o.Concurrency,
	})
	if c == nil {
		return all, nil
	}
	c.Log = log
	for _, k := range remoteKinds {
		all[k] = c.Opener(k)
	}
	return all, c
}
