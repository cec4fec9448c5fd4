package azure

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/secrets-init/secrets-init/provider"
)

var _ provider.Versioner = (*store)(nil)

// Versions implements provider.Versioner with one GetSecret call per
// secret (no version: the current one), concurrent under the engine's
// limit: the version in the secret id it answers with.
//
// Key Vault has no call that tells a secret's current version without its
// value. GetSecret is one request and one billed operation whatever the
// secret's history, needs only the permission the value read needs (Get,
// or the Key Vault Secrets User role), and names exactly the version a
// value read serves. Listing the versions instead
// (NewListSecretPropertiesVersionsPager) sends no value but costs a
// request per 25 versions, needs the List permission too, and leaves the
// current version to be inferred from creation times. The value GetSecret
// brings back crosses TLS as it does for Fetch and is dropped at once:
// it is never kept, hashed or logged.
func (st *store) Versions(ctx context.Context, targets []provider.Target) []provider.Result {
	defer st.transport.CloseIdleConnections()
	rs := make([]provider.Result, len(targets))
	st.limit.Each(ctx, len(targets), func(i int) { rs[i] = st.version(ctx, targets[i]) })
	return rs
}

func (st *store) version(ctx context.Context, t provider.Target) provider.Result {
	c, vault, err := st.clientFor(t)
	if err != nil {
		return provider.Result{Err: err}
	}
	var raw *http.Response
	resp, err := c.GetSecret(policy.WithCaptureResponse(ctx, &raw), t.Name, "", nil)
	if err != nil {
		reason := describe(ctx, err, raw, vault, "")
		if denied(ctx, err) {
			reason = fmt.Errorf("%w: %v", provider.ErrDenied, reason)
		}
		return provider.Result{Err: reason}
	}
	if resp.ID == nil || resp.ID.Version() == "" {
		return provider.Result{Err: fmt.Errorf("%s answered without the secret's version", vault)}
	}
	return provider.Result{Version: resp.ID.Version()}
}

// denied tells whether err is Key Vault refusing the identity (403) for
// lack of permission: not a disabled secret, not a firewall rule.
func denied(ctx context.Context, err error) bool {
	var re *azcore.ResponseError
	if ctx.Err() != nil || !errors.As(err, &re) || re.StatusCode != http.StatusForbidden {
		return false
	}
	switch innerCode(re.RawResponse) {
	case "SecretDisabled", "ForbiddenByFirewall":
		return false
	}
	return true
}
