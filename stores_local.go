//go:build !embedresolver

package main

import (
	"log/slog"

	"github.com/secrets-init/secrets-init/internal/options"
	"github.com/secrets-init/secrets-init/internal/stores"
	"github.com/secrets-init/secrets-init/provider"
)

// openStores returns the stores of a resolution, configured by the flags.
// This build (a plain go build) resolves in-process: every store it was
// built with runs here.
func openStores(o *options.Options, _ *slog.Logger) (map[provider.Kind]provider.Opener, storeCloser) {
	all := map[provider.Kind]provider.Opener{provider.File: provider.OpenFile}
	for kind, opener := range stores.Openers {
		all[kind] = opener(o)
		if refreshOn(o) {
			// One store per kind for the command's life: its checks,
			// re-reads and lease renewals share a client and a token.
			all[kind] = provider.Keep(all[kind])
		}
	}
	return all, nil
}
