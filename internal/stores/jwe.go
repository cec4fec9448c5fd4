package stores

import (
	"github.com/secrets-init/secrets-init/internal/options"
	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/jwe"
)

// The jwe: store is always built; its KMSes come with their stores' build
// tags (the other files of this package register them), file: keys always.
func init() { Openers[provider.JWE] = func(*options.Options) provider.Opener { return jwe.Open } }
