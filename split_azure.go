//go:build embedresolver && !no_azure

package main

import "github.com/secrets-init/secrets-init/provider"

func init() { remoteKinds = append(remoteKinds, provider.Azure) }
