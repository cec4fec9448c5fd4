//go:build embedresolver && !no_gcp

package main

import "github.com/secrets-init/secrets-init/provider"

func init() { remoteKinds = append(remoteKinds, provider.Google) }
