//go:build !no_azure

package main

import (
	"github.com/secrets-init/secrets-init/internal/options"
	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/azure"
)

func init() {
	stores[provider.Azure] = func(*options.Options) provider.Opener { return azure.Open }
}
