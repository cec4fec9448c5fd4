//go:build !no_gcp

package stores

import (
	"context"

	"github.com/secrets-init/secrets-init/internal/options"
	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/gcp"
	"github.com/secrets-init/secrets-init/provider/jwe"
)

func init() {
	Openers[provider.Google] = func(o *options.Options) provider.Opener {
		return gcp.Opener(gcp.Options{Project: o.GoogleProject})
	}
	jwe.Register("gcp-kms", func(ctx context.Context, s provider.Settings) (jwe.KMS, error) {
		k, err := gcp.OpenKMS(ctx, s)
		if err != nil {
			return nil, err
		}
		return k, nil
	})
}
