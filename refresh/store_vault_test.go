package refresh

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/vault"
)

// A real Vault's address and root token: e2e/vault (TestVersions) starts
// an in-memory Vault and runs TestLoopOverVault against it; without them
// it is skipped.
const (
	realVaultAddrEnv  = "SECRETS_INIT_TEST_VAULT_ADDR"
	realVaultTokenEnv = "SECRETS_INIT_TEST_VAULT_TOKEN"
)

// Vault KV v2 over a real server, through the Loop: a quiet round is one
// metadata read; a new version is read once with ?version=N (the version
// the check saw), also when another version is written between the check
// and the read, and the status names it; the next round delivers the
// newer one.
func TestLoopOverVault(t *testing.T) {
	addr, rootToken := os.Getenv(realVaultAddrEnv), os.Getenv(realVaultTokenEnv)
	if addr == "" || rootToken == "" {
		t.Skip("no real Vault: run by e2e/vault (TestVersions)")
	}
	cfg := api.DefaultConfig()
	cfg.Address = addr
	root, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	root.SetToken(rootToken)
	if err := root.Sys().Mount("refresh-kv", &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	put := func(password string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second) // a new KV v2 mount upgrades in the background
		for {
			_, err := root.Logical().Write("refresh-kv/data/app", map[string]any{"data": map[string]any{"password": password}})
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("write: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	put("one-" + canary)

	// A proxy that counts the requests: method, path and query.
	target, _ := url.Parse(addr)
	rp := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	seen := map[string]int{}
	px := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery]++
		mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(px.Close)
	count := func(what string) int {
		mu.Lock()
		defer mu.Unlock()
		return seen[what]
	}
	for _, k := range []string{"VAULT_TOKEN_FILE", "VAULT_AUTH_METHOD", "VAULT_NAMESPACE", "VAULT_CACERT", "VAULT_CAPATH",
		"VAULT_CLIENT_CERT", "VAULT_CLIENT_KEY", "VAULT_AGENT_ADDR", "VAULT_REVOKE_TOKEN"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("VAULT_ADDR", px.URL)
	t.Setenv("VAULT_TOKEN", rootToken)

	h := startWith(t, Config{}, map[provider.Kind]provider.Opener{provider.Vault: vault.Open}, nil, "PW=vault:refresh-kv/app#password")
	const meta, data = "GET /v1/refresh-kv/metadata/app?", "GET /v1/refresh-kv/data/app?"
	for range 5 {
		h.round()
	}
	if m, d := count(meta), count(data); m != 5 || d != 1 || len(h.actor.envs) != 0 {
		t.Fatalf("5 quiet rounds: %d metadata reads (want 5), %d data reads (want the first resolution's only)", m, d)
	}

	r := race(h, provider.Vault)
	put("two-" + canary)
	r.then = func() { put("three-" + canary) }
	h.round()
	if m, d2, d := count(meta), count(data+"version=2"), count(data); m != 6 || d2 != 1 || d != 1 {
		t.Errorf("a raced rotation: %d metadata reads (want 6), %d reads of version=2 (want 1), %d unpinned reads (want 1)", m, d2, d)
	}
	if len(h.actor.envs) != 1 || envOf(h.actor.envs[0], "PW") != "two-"+canary || varState(t, h.loop.Status(), "PW").Version != "2" {
		t.Fatalf("raced: %d restarts, status %+v", len(h.actor.envs), varState(t, h.loop.Status(), "PW"))
	}
	h.round()
	if len(h.actor.envs) != 2 || envOf(h.actor.envs[1], "PW") != "three-"+canary || varState(t, h.loop.Status(), "PW").Version != "3" || count(data+"version=3") != 1 {
		t.Fatalf("after the race: %d restarts", len(h.actor.envs))
	}
}
