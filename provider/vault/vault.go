// Package vault is the HashiCorp Vault (and OpenBao) store: vault:PATH
// references, read from KV v1, KV v2 (with or without the data/ segment)
// and any other readable path such as a dynamic secrets engine.
//
// The client is configured the way the vault CLI is (api.DefaultConfig:
// VAULT_ADDR, VAULT_CACERT, VAULT_CAPATH, VAULT_CLIENT_CERT,
// VAULT_CLIENT_KEY, VAULT_SKIP_VERIFY, VAULT_NAMESPACE), and logs in with
// bank-vaults vault-env's variables (see auth.go).
package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/secrets-init/secrets-init/provider"
)

// store is the Vault store.
type store struct {
	client *api.Client
	http   *http.Client // the client's, to release its connections
	login  login        // how to get a token
	revoke bool         // VAULT_REVOKE_TOKEN: revoke the token after reading
	s      provider.Settings
	mounts mountCache
	// tokenMu serialises logging in (authenticate, lease.go's Token).
	tokenMu sync.Mutex
	// loginEnd is when the token of the last login ends, by the login's
	// answer (zero: a given token, or no TTL): lease.go's Token falls
	// back on it when the token may not look itself up.
	loginEnd time.Time
}

// Open configures a Vault client from the environment. It does no network
// I/O: the login, if any, happens in Fetch.
func Open(_ context.Context, s provider.Settings) (provider.Store, error) {
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		return nil, fmt.Errorf("vault client configuration: %w", cfg.Error)
	}
	cfg.MaxRetries = 0 // retries are ours, bounded by the deadline (retry.go)
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vault client configuration: %w", err)
	}
	client.ClearToken() // the token comes from authFromEnv, never implicitly
	l, err := authFromEnv()
	if err != nil {
		return nil, err
	}
	revoke, err := envBool("VAULT_REVOKE_TOKEN")
	if err != nil {
		return nil, err
	}
	return &store{client: client, http: cfg.HttpClient, login: l, revoke: revoke, s: s}, nil
}

// Fetch logs in once, then reads each distinct path (and version) once:
// the targets kv/app and kv/data/app of a KV v2 mount are one read. Each
// distinct write (path and body) is made once.
func (st *store) Fetch(ctx context.Context, targets []provider.Target) []provider.Result {
	defer st.http.CloseIdleConnections()
	if err := st.authenticate(ctx); err != nil {
		return provider.Failed(len(targets), err)
	}
	results := make([]provider.Result, len(targets))
	reqs := make([]request, len(targets))
	st.s.Limit.Each(ctx, len(targets), func(i int) {
		reqs[i], results[i].Err = st.request(ctx, targets[i])
	})
	index := map[request]int{}
	var distinct []request
	for _, r := range reqs {
		if _, ok := index[r]; !ok && r.path != "" {
			index[r] = len(distinct)
			distinct = append(distinct, r)
		}
	}
	read := make([]provider.Result, len(distinct))
	st.s.Limit.Each(ctx, len(distinct), func(j int) {
		read[j] = st.read(ctx, distinct[j])
	})
	for i, r := range reqs {
		if r.path != "" { // else skipped (ctx ended: the engine says so) or failed
			results[i] = read[index[r]]
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

// authenticate sets the client's token, logging in when needed: once per
// store, which refresh keeps for the command's life (provider.Keep), so
// that its leases stay those of one token (lease.go renews it).
func (st *store) authenticate(ctx context.Context) error {
	st.tokenMu.Lock()
	defer st.tokenMu.Unlock()
	if st.client.Token() != "" {
		return nil
	}
	token, ttl, err := st.login.token(ctx, st.client)
	if err != nil {
		return err
	}
	st.client.SetToken(token)
	st.loginEnd = time.Time{}
	if ttl > 0 {
		st.loginEnd = time.Now().Add(ttl)
	}
	return nil
}

// A request is one read: the API path, the KV v2 version, and whether the
// answer is KV v2's; or one write (write.go): the path and its body.
type request struct {
	path, version string
	kv2           bool
	body          string // a write's JSON object; empty for a read
}

// request finds the mount of t and the read it needs.
func (st *store) request(ctx context.Context, t provider.Target) (request, error) {
	if t.IsWrite() { // to the path as written: no mount to look up
		return request{path: t.Name, body: t.Body}, nil
	}
	m, err := st.mounts.lookup(ctx, st.client, t.Name)
	if err != nil {
		return request{}, err
	}
	if t.Version != "" && m.kv != 2 {
		return request{}, fmt.Errorf("#%s selects a KV v2 version, but %s is not on a KV v2 mount", t.Version, t.Name)
	}
	return request{path: m.apiPath(t.Name), version: t.Version, kv2: m.kv == 2}, nil
}

// read makes one read, or one write.
func (st *store) read(ctx context.Context, r request) provider.Result {
	if r.body != "" {
		return st.write(ctx, r)
	}
	var params map[string][]string
	if r.version != "" {
		params = map[string][]string{"version": {r.version}}
	}
	var secret *api.Secret
	err := retry(ctx, func() (err error) {
		secret, err = st.client.Logical().ReadWithDataWithContext(ctx, r.path, params)
		return err
	})
	if err != nil {
		return provider.Result{Err: describe(st.client, err, r.path, "read")}
	}
	return decode(secret, r.kv2, r.path, r.version)
}

// decode turns a read's answer into a Result: the secret's data as a
// compact JSON object (for KV v2, the inner data map).
func decode(secret *api.Secret, kv2 bool, path, version string) provider.Result {
	if secret == nil {
		if version != "" {
			return provider.Result{Err: fmt.Errorf("version %s %w at %s", version, provider.ErrNotFound, path)}
		}
		return provider.Result{Err: fmt.Errorf("%w at %s", provider.ErrNotFound, path)}
	}
	data := secret.Data
	var served string
	if kv2 {
		meta, _ := data["metadata"].(map[string]any)
		served = fmt.Sprint(meta["version"])
		if destroyed, _ := meta["destroyed"].(bool); destroyed {
			return provider.Result{Err: fmt.Errorf("version %s at %s is destroyed: %w", served, path, provider.ErrNotFound)}
		}
		if deleted, _ := meta["deletion_time"].(string); isPast(deleted) {
			return provider.Result{Err: fmt.Errorf("version %s at %s was deleted at %s (undelete it, or pick a version with #KEY#VERSION): %w", served, path, deleted, provider.ErrNotFound)}
		}
		inner, ok := data["data"].(map[string]any)
		if !ok {
			return provider.Result{Err: fmt.Errorf("%s holds no KV v2 data (is it a KV v2 secret?)", path)}
		}
		data = inner
	}
	if data == nil {
		data = map[string]any{}
	}
	b, err := json.Marshal(data)
	if err != nil { // cannot happen for decoded JSON; never quote the data
		return provider.Result{Err: fmt.Errorf("cannot encode the data at %s as JSON", path)}
	}
	res := provider.Result{Value: b, Version: served}
	if secret.LeaseID != "" && secret.LeaseDuration > 0 {
		// A dynamic secret: its credentials stop when the lease ends,
		// unless refresh renews it (KV reads have no lease). The id
		// is a provider.LeaseID, which never prints.
		res.Lease = time.Duration(secret.LeaseDuration) * time.Second
		res.LeaseID, res.Renewable = provider.LeaseID(secret.LeaseID), secret.Renewable
	}
	return res
}

// A mount is where a path's secrets engine is mounted and its KV version
// (0: not a KV engine, so paths are read as given).
type mount struct {
	path string // with a trailing slash, e.g. "secret/"
	kv   int
}

// apiPath is the path to read for name: on KV v2, name with its data/
// segment (added unless present).
func (m mount) apiPath(name string) string {
	if m.kv != 2 {
		return name
	}
	rest := strings.TrimPrefix(name, m.path)
	if strings.HasPrefix(rest, "data/") {
		return name
	}
	return m.path + "data/" + rest
}

// mountCache remembers the mounts found so far. Lookups that may need the
// same preflight request are serialised by the path's first segment, so a
// mount is asked about once however many targets it holds.
type mountCache struct {
	mu     sync.Mutex
	mounts []mount
	locks  map[string]*sync.Mutex
}

// lookup finds the mount of name, asking Vault (sys/internal/ui/mounts)
// when no known mount holds it.
func (c *mountCache) lookup(ctx context.Context, client *api.Client, name string) (mount, error) {
	lock := c.lock(strings.SplitN(name, "/", 2)[0])
	lock.Lock()
	defer lock.Unlock()
	if m, ok := c.known(name); ok {
		return m, nil
	}
	m, err := preflight(ctx, client, name)
	if err != nil {
		return mount{}, err
	}
	c.mu.Lock()
	c.mounts = append(c.mounts, m)
	c.mu.Unlock()
	return m, nil
}

func (c *mountCache) lock(segment string) *sync.Mutex {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.locks == nil {
		c.locks = map[string]*sync.Mutex{}
	}
	if c.locks[segment] == nil {
		c.locks[segment] = new(sync.Mutex)
	}
	return c.locks[segment]
}

// known returns the longest known mount that holds name.
func (c *mountCache) known(name string) (mount, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var best mount
	for _, m := range c.mounts {
		if strings.HasPrefix(name+"/", m.path) && len(m.path) > len(best.path) {
			best = m
		}
	}
	return best, best.path != ""
}

// preflight asks Vault which mount holds name and its KV version, as the
// vault CLI's kv commands do.
func preflight(ctx context.Context, client *api.Client, name string) (mount, error) {
	path := "sys/internal/ui/mounts/" + name
	var secret *api.Secret
	err := retry(ctx, func() (err error) {
		secret, err = client.Logical().ReadWithContext(ctx, path)
		return err
	})
	var re *api.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusForbidden {
		return mount{}, fmt.Errorf("permission denied: the Vault token needs the \"read\" capability on %s (or no secrets engine is mounted there)", name)
	}
	if err != nil {
		return mount{}, describe(client, err, name, "read")
	}
	return parseMount(secret, name), nil
}

// parseMount reads a sys/internal/ui/mounts answer. No answer (a Vault
// without the endpoint) or no usable path in it means a KV v1 mount at the
// first segment, as the vault CLI assumes.
func parseMount(secret *api.Secret, name string) mount {
	first := strings.SplitN(name, "/", 2)[0] + "/"
	if secret == nil {
		return mount{path: first, kv: 1}
	}
	path, _ := secret.Data["path"].(string)
	// The mount's path is relative to the namespace: a namespace written
	// in the reference's path (ns1/secret/app) stays in front of it.
	switch i := strings.Index("/"+name+"/", "/"+path); {
	case path == "" || i < 0:
		path = first
	default:
		path = name[:i] + path
	}
	m := mount{path: path}
	typ, _ := secret.Data["type"].(string)
	options, _ := secret.Data["options"].(map[string]any)
	switch {
	case typ == "kv" && options["version"] == "2":
		m.kv = 2
	case typ == "kv" || typ == "generic":
		m.kv = 1
	}
	return m
}

// statusText names an HTTP status for errors.
func statusText(code int) string {
	return fmt.Sprintf("HTTP %d %s", code, http.StatusText(code))
}
