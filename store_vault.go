//go:build !no_vault

package main

import (
	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/vault"
)

func init() { stores[provider.Vault] = vault.Open }
