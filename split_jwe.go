//go:build embedresolver

package main

import "github.com/secrets-init/secrets-init/provider"

// The jwe: store is always built (file: keys); its KMSes need the SDKs.
func init() { remoteKinds = append(remoteKinds, provider.JWE) }
