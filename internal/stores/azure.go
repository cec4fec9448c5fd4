//go:build !no_azure

package stores

import (
	"context"

	"github.com/secrets-init/secrets-init/internal/options"
	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/azure"
	"github.com/secrets-init/secrets-init/provider/jwe"
)

func init() {
	Openers[provider.Azure] = func(*options.Options) provider.Opener { return azure.Open }
	jwe.Register("azure-kv", func(ctx context.Context, s provider.Settings) (jwe.KMS, error) {
		k, err := azure.OpenKMS(ctx, s)
		if err != nil {
			return nil, err
		}
		return k, nil
	})
}
