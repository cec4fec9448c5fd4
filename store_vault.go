//go:build !no_vault

package main

import (
	"github.com/secrets-init/secrets-init/internal/options"
	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/vault"
)

func init() {
	stores[provider.Vault] = func(*options.Options) provider.Opener { return vault.Open }
}
