//go:build !no_aws

package main

import (
	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/aws"
)

func init() {
	stores[provider.SecretsManager] = aws.OpenSecretsManager
	stores[provider.SSM] = aws.OpenSSM
}
