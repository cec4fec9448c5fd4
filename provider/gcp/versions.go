package gcp

import (
	"context"
	"fmt"
	"strings"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"github.com/googleapis/gax-go/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/secrets-init/secrets-init/provider"
)

var _ provider.Versioner = (*store)(nil)

// Versions implements provider.Versioner with one GetSecretVersion call per
// target on .../versions/latest (or the alias the reference names), run
// concurrently under the engine's limit: the number of the version that
// name resolves to now. GetSecretVersion returns metadata only, no payload;
// it needs secretmanager.versions.get (roles/secretmanager.viewer), which
// roles/secretmanager.secretAccessor does not grant: without it the result
// wraps provider.ErrDenied.
func (s *store) Versions(ctx context.Context, targets []provider.Target) []provider.Result {
	return s.each(ctx, targets, getVersion)
}

// getVersion resolves one version name to its number.
func getVersion(ctx context.Context, b provider.Backoff, c call) provider.Result {
	r := &retryer{backoff: b}
	v, err := c.client.GetSecretVersion(ctx,
		&secretmanagerpb.GetSecretVersionRequest{Name: c.name},
		gax.WithRetry(func() gax.Retryer { return r }))
	if err != nil {
		if ctx.Err() == nil && status.Code(err) == codes.PermissionDenied && reason(err) == "" {
			return provider.Result{Err: fmt.Errorf("%w in %s: the caller needs secretmanager.versions.get on the secret (e.g. roles/secretmanager.viewer; roles/secretmanager.secretAccessor has only versions.access)", provider.ErrDenied, c.where)}
		}
		return provider.Result{Err: describe(ctx, err, r.last, c.where)}
	}
	name := v.GetName() // projects/NUMBER/[locations/L/]secrets/S/versions/N
	n := name[strings.LastIndexByte(name, '/')+1:]
	switch v.GetState() {
	case secretmanagerpb.SecretVersion_DISABLED:
		return provider.Result{Err: fmt.Errorf("version %s is disabled: enable it or name another version", n)}
	case secretmanagerpb.SecretVersion_DESTROYED:
		return provider.Result{Err: fmt.Errorf("version %s is destroyed: name another version", n)}
	}
	if n == "" || strings.HasSuffix(name, "/versions/latest") {
		return provider.Result{Err: fmt.Errorf("Google answered for %s without a version number", c.where)}
	}
	return provider.Result{Version: n}
}
