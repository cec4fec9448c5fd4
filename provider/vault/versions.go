package vault

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/secrets-init/secrets-init/provider"
)

var _ provider.Versioner = (*store)(nil)

// Versions implements provider.Versioner for KV v2 secrets with one read
// of MOUNT/metadata/PATH per distinct secret (its current_version),
// concurrent under the engine's limit; no secret data is read. It needs
// the "read" capability on the metadata path: without it the result wraps
// provider.ErrDenied. A path that is not on a KV v2 mount (KV v1, any
// other engine) has no versions: its result wraps provider.ErrUnversioned.
// A secret whose current version is deleted or destroyed, or whose
// metadata is gone, is not found.
func (st *store) Versions(ctx context.Context, targets []provider.Target) []provider.Result {
	defer st.http.CloseIdleConnections()
	if err := st.authenticate(ctx); err != nil {
		return provider.Failed(len(targets), err)
	}
	results := make([]provider.Result, len(targets))
	paths := make([]string, len(targets))
	st.s.Limit.Each(ctx, len(targets), func(i int) {
		paths[i], results[i].Err = st.metadataPath(ctx, targets[i])
	})
	index := map[string]int{}
	var distinct []string
	for _, p := range paths {
		if _, ok := index[p]; !ok && p != "" {
			index[p] = len(distinct)
			distinct = append(distinct, p)
		}
	}
	read := make([]provider.Result, len(distinct))
	st.s.Limit.Each(ctx, len(distinct), func(j int) {
		read[j] = st.currentVersion(ctx, distinct[j])
	})
	for i, p := range paths {
		if p != "" {
			results[i] = read[index[p]]
		}
	}
	if st.revoke {
		if err := st.client.Auth().Token().RevokeSelfWithContext(ctx, ""); err != nil {
			st.s.Log.Warn("vault: could not revoke the token (VAULT_REVOKE_TOKEN)", "reason", describe(st.client, err, "auth/token/revoke-self", "update"))
		}
		st.forgetToken()
	}
	return results
}

// metadataPath is the KV v2 metadata path of t's secret.
func (st *store) metadataPath(ctx context.Context, t provider.Target) (string, error) {
	if t.IsWrite() { // asked of nobody: a write issues anew
		return "", fmt.Errorf("%s is a write (>>vault:): %w; it is issued again as its lease or certificate nears its end", t.Name, provider.ErrUnversioned)
	}
	m, err := st.mounts.lookup(ctx, st.client, t.Name)
	if err != nil {
		return "", err
	}
	if m.kv != 2 {
		return "", fmt.Errorf("%s is not on a KV v2 mount: %w (only its value can tell a change)", t.Name, provider.ErrUnversioned)
	}
	rest := strings.TrimPrefix(strings.TrimPrefix(t.Name, m.path), "data/")
	return m.path + "metadata/" + rest, nil
}

// currentVersion reads a metadata path's current_version.
func (st *store) currentVersion(ctx context.Context, path string) provider.Result {
	var secret *api.Secret
	err := retry(ctx, func() (err error) {
		secret, err = st.client.Logical().ReadWithContext(ctx, path)
		return err
	})
	var re *api.ResponseError
	switch {
	case err != nil && ctx.Err() == nil && errors.As(err, &re) && re.StatusCode == http.StatusForbidden:
		return provider.Result{Err: fmt.Errorf("%w: the Vault token needs the \"read\" capability on %s", provider.ErrDenied, path)}
	case err != nil:
		return provider.Result{Err: describe(st.client, err, path, "read")}
	case secret == nil || secret.Data == nil:
		return provider.Result{Err: fmt.Errorf("%w at %s", provider.ErrNotFound, path)}
	}
	current := fmt.Sprint(secret.Data["current_version"])
	if current == "" || current == "0" || current == "<nil>" {
		return provider.Result{Err: fmt.Errorf("%w at %s: no versions", provider.ErrNotFound, path)}
	}
	versions, _ := secret.Data["versions"].(map[string]any)
	meta, _ := versions[current].(map[string]any)
	if destroyed, _ := meta["destroyed"].(bool); destroyed {
		return provider.Result{Err: fmt.Errorf("version %s at %s is destroyed: %w", current, path, provider.ErrNotFound)}
	}
	if deleted, _ := meta["deletion_time"].(string); isPast(deleted) {
		return provider.Result{Err: fmt.Errorf("version %s at %s was deleted at %s: %w", current, path, deleted, provider.ErrNotFound)}
	}
	return provider.Result{Version: current}
}

// isPast tells whether a KV v2 deletion_time has come: empty is never, a
// time in the future (delete_version_after) not yet, an unreadable one
// has.
func isPast(deletion string) bool {
	if deletion == "" {
		return false
	}
	t, err := time.Parse(time.RFC3339Nano, deletion)
	return err != nil || !t.After(time.Now())
}
