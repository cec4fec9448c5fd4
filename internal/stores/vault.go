//go:build !no_vault

package stores

import (
	"context"

	"github.com/secrets-init/secrets-init/internal/options"
	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/jwe"
	"github.com/secrets-init/secrets-init/provider/vault"
)

func init() {
	Openers[provider.Vault] = func(*options.Options) provider.Opener { return vault.Open }
	jwe.Register("hcvault", func(ctx context.Context, s provider.Settings) (jwe.KMS, error) {
		k, err := vault.OpenKMS(ctx, s)
		if err != nil {
			return nil, err
		}
		return k, nil
	})
}
