package registry

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/smithy-go/logging"
	ecrhelper "github.com/awslabs/amazon-ecr-credential-helper/ecr-login"
	"github.com/awslabs/amazon-ecr-credential-helper/ecr-login/api"
	"github.com/google/go-containerregistry/pkg/authn"
)

// ECR is the keychain of Amazon ECR and ECR Public: the ECR credential
// helper with the AWS default chain (IRSA, EKS Pod Identity, environment,
// shared files, the instance role). It is anonymous for other hosts.
//
// The helper asks the default chain afresh at every lookup, and without
// credentials the chain ends with the EC2 instance metadata service: where
// a cluster's network drops those packets, 5 seconds per lookup, never
// remembered. So when the environment configures no AWS credential (keys,
// a web identity token, a container credentials endpoint, a profile or the
// shared files), only the instance role could answer, and a probe decides
// whether it is there, as for ACR's managed identity (see gate).
type ECR struct {
	// Log is told when a probe finds the instance role missing, or back
	// (nil: nothing is logged).
	Log *slog.Logger
	Now func() time.Time

	once     sync.Once
	inner    authn.Keychain
	explicit bool
	gate     gate
}

func (e *ECR) setup() {
	// The helper would cache tokens under $HOME, which the webhook's
	// read-only root filesystem does not allow; the webhook caches image
	// configurations itself.
	if _, ok := os.LookupEnv("AWS_ECR_DISABLE_CACHE"); !ok {
		os.Setenv("AWS_ECR_DISABLE_CACHE", "true")
	}
	e.inner = authn.NewKeychainFromHelper(ecrhelper.NewECRHelper(ecrhelper.WithLogger(io.Discard)))
	e.explicit = awsExplicit()
	e.gate = gate{now: e.Now, log: e.Log,
		missing: "no AWS credential (no instance role): ECR images are read anonymously",
		found:   "AWS instance role found: ECR images are read with it",
		probe: func(ctx context.Context) error {
			cfg, err := config.LoadDefaultConfig(ctx, config.WithLogger(logging.Nop{}))
			if err == nil {
				_, err = cfg.Credentials.Retrieve(ctx)
			}
			return err
		}}
}

// Warm starts the instance role probe in the background when the
// environment configures no AWS credential.
func (e *ECR) Warm() {
	e.once.Do(e.setup)
	if !e.explicit {
		e.gate.warm()
	}
}

// Ready reports whether the instance role probe Warm started has ended,
// or ran firstProbeWait (the webhook's /readyz waits for it).
func (e *ECR) Ready() bool {
	e.once.Do(e.setup)
	return e.explicit || e.gate.settled()
}

// Resolve implements authn.Keychain.
func (e *ECR) Resolve(target authn.Resource) (authn.Authenticator, error) {
	return e.ResolveContext(context.Background(), target)
}

// ResolveContext implements authn.ContextKeychain.
func (e *ECR) ResolveContext(ctx context.Context, target authn.Resource) (authn.Authenticator, error) {
	if _, err := api.ExtractRegistry(target.RegistryStr()); err != nil {
		return authn.Anonymous, nil
	}
	e.once.Do(e.setup)
	if !e.explicit {
		ok, err := e.gate.open(ctx)
		if err != nil || !ok {
			return authn.Anonymous, nil
		}
	}
	return authn.Resolve(ctx, e.inner, target)
}

// awsExplicit reports whether the environment configures an AWS credential
// other than the instance role.
func awsExplicit() bool {
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_PROFILE"} {
		if os.Getenv(k) != "" {
			return true
		}
	}
	home, _ := os.UserHomeDir()
	for _, f := range []struct{ env, def string }{{"AWS_SHARED_CREDENTIALS_FILE", "credentials"}, {"AWS_CONFIG_FILE", "config"}} {
		path := os.Getenv(f.env)
		if path == "" && home != "" {
			path = filepath.Join(home, ".aws", f.def)
		}
		if path != "" {
			if _, err := os.Stat(path); err == nil {
				return true
			}
		}
	}
	return false
}
