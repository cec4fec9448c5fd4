//go:build !no_gcp

package main

import (
	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/gcp"
)

func init() { stores[provider.Google] = gcp.Open }
