//go:build embedresolver && !no_aws

package main

import "github.com/secrets-init/secrets-init/provider"

func init() { remoteKinds = append(remoteKinds, provider.SecretsManager, provider.SSM) }
