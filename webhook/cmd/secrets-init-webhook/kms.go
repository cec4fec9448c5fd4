package main

import (
	"context"

	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/aws"
	"github.com/secrets-init/secrets-init/provider/azure"
	"github.com/secrets-init/secrets-init/provider/gcp"
	"github.com/secrets-init/secrets-init/provider/jwe"
	"github.com/secrets-init/secrets-init/provider/vault"
)

// The KMSes of the jwe: store, for POST /secrets: the same clients
// secrets-init registers (its store_*.go), all in this one file. file:
// keys are always there. A client is created only when a JWE names its
// scheme.
func init() {
	jwe.Register("aws-kms", func(ctx context.Context, s provider.Settings) (jwe.KMS, error) {
		k, err := aws.OpenKMS(ctx, s)
		if err != nil {
			return nil, err
		}
		return k, nil
	})
	jwe.Register("gcp-kms", func(ctx context.Context, s provider.Settings) (jwe.KMS, error) {
		k, err := gcp.OpenKMS(ctx, s)
		if err != nil {
			return nil, err
		}
		return k, nil
	})
	jwe.Register("azure-kv", func(ctx context.Context, s provider.Settings) (jwe.KMS, error) {
		k, err := azure.OpenKMS(ctx, s)
		if err != nil {
			return nil, err
		}
		return k, nil
	})
	jwe.Register("hcvault", func(ctx context.Context, s provider.Settings) (jwe.KMS, error) {
		k, err := vault.OpenKMS(ctx, s)
		if err != nil {
			return nil, err
		}
		return k, nil
	})
}
