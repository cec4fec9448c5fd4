//go:build !no_gcp

package main

import (
	"github.com/secrets-init/secrets-init/internal/options"
	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/gcp"
)

func init() {
	stores[provider.Google] = func(o *options.Options) provider.Opener {
		return gcp.Opener(gcp.Options{Project: o.GoogleProject})
	}
}
