//go:build !no_aws

package main

import (
	"github.com/secrets-init/secrets-init/internal/options"
	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/aws"
)

func init() {
	stores[provider.SecretsManager] = func(*options.Options) provider.Opener { return aws.OpenSecretsManager }
	stores[provider.SSM] = func(*options.Options) provider.Opener { return aws.OpenSSM }
}
