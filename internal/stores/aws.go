//go:build !no_aws

package stores

import (
	"context"

	"github.com/secrets-init/secrets-init/internal/options"
	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/aws"
	"github.com/secrets-init/secrets-init/provider/jwe"
)

func init() {
	Openers[provider.SecretsManager] = func(*options.Options) provider.Opener { return aws.OpenSecretsManager }
	Openers[provider.SSM] = func(*options.Options) provider.Opener { return aws.OpenSSM }
	jwe.Register("aws-kms", func(ctx context.Context, s provider.Settings) (jwe.KMS, error) {
		k, err := aws.OpenKMS(ctx, s)
		if err != nil {
			return nil, err
		}
		return k, nil
	})
}
