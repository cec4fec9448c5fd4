package vault

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/secrets-init/secrets-init/provider"
)

// Environment of TestVersionsOnRealVault: a real Vault's address and a root
// token. e2e/vault (TestVersions) starts an in-memory Vault and runs this
// test against it; without them it is skipped.
const (
	realVaultAddrEnv  = "SECRETS_INIT_TEST_VAULT_ADDR"
	realVaultTokenEnv = "SECRETS_INIT_TEST_VAULT_TOKEN"
)

// counter is a reverse proxy in front of Vault that counts requests by
// method and path.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) count(method, path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[method+" "+path]
}

func TestVersionsOnRealVault(t *testing.T) {
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
	for path, version := range map[string]string{"detect-kv": "2", "detect-v1": "1"} {
		if err := root.Sys().Mount(path, &api.MountInput{Type: "kv", Options: map[string]string{"version": version}}); err != nil {
			t.Fatal(err)
		}
	}
	write := func(path string, data map[string]any) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second) // a new KV v2 mount upgrades in the background
		for {
			_, err := root.Logical().Write(path, data)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("write %s: %v", path, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	kv := func(password string) map[string]any {
		return map[string]any{"data": map[string]any{"password": password}}
	}
	write("detect-kv/data/app", kv("one-"+canary))
	write("detect-kv/data/other", kv("other-"+canary))
	write("detect-kv/data/shredded", kv("shredded-"+canary))
	write("detect-v1/app", map[string]any{"password": "v1-" + canary})
	// delete_version_after gives every version a deletion_time in the future.
	write("detect-kv/metadata/expiring", map[string]any{"delete_version_after": "1h"})
	write("detect-kv/data/expiring", kv("expiring-"+canary))

	target, _ := url.Parse(addr)
	rp := httputil.NewSingleHostReverseProxy(target)
	c := &counter{n: map[string]int{}}
	px := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.n[r.Method+" "+r.URL.Path]++
		c.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(px.Close)

	clearEnv(t)
	t.Setenv("VAULT_ADDR", px.URL)
	t.Setenv("VAULT_TOKEN", rootToken)
	open := func() provider.Store {
		t.Helper()
		p, err := Open(t.Context(), settings())
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	check := func(p provider.Store, refs ...string) []provider.Result {
		t.Helper()
		ts := make([]provider.Target, len(refs))
		for i, s := range refs {
			r, ok, err := provider.Parse(s)
			if !ok || err != nil {
				t.Fatalf("Parse(%q): %v", s, err)
			}
			ts[i] = r.Target
		}
		rs := provider.Versions(t.Context(), p.(provider.Versioner), ts)
		for i, r := range rs {
			if r.Value != nil || (r.Version == "") == (r.Err == nil) {
				t.Fatalf("%s: want a version or an error, got %+v", refs[i], r)
			}
			if r.Err != nil && strings.Contains(r.Err.Error(), canary) {
				t.Errorf("%s: error holds a value: %v", refs[i], r.Err)
			}
		}
		return rs
	}
	p := open()

	// The current version, one metadata read per secret, no data read,
	// the pinned reference never asked, KV v1 unversioned.
	rs := check(p, "vault:detect-kv/app#password", "vault:detect-kv/data/app", "vault:detect-kv/app#password#1", "vault:detect-v1/app#password")
	if rs[0].Version != "1" || rs[1].Version != "1" || rs[2].Version != "1" {
		t.Errorf("versions %+v", rs)
	}
	if !errors.Is(rs[3].Err, provider.ErrUnversioned) {
		t.Errorf("KV v1: %v", rs[3].Err)
	}
	if n := c.count("GET", "/v1/detect-kv/metadata/app"); n != 1 {
		t.Errorf("%d metadata reads for one secret named twice", n)
	}
	if n := c.count("GET", "/v1/detect-kv/data/app"); n != 0 {
		t.Errorf("%d data reads by Versions", n)
	}
	if r := p.Fetch(t.Context(), []provider.Target{{Kind: provider.Vault, Name: "detect-kv/app"}})[0]; r.Version != "1" {
		t.Errorf("Fetch serves version %q", r.Version)
	}

	// A version whose deletion_time is still to come is live.
	if r := check(p, "vault:detect-kv/expiring")[0]; r.Version != "1" {
		t.Errorf("a version to be deleted in an hour: %+v", r)
	}
	if r := p.Fetch(t.Context(), []provider.Target{{Kind: provider.Vault, Name: "detect-kv/expiring"}})[0]; r.Err != nil || r.Version != "1" {
		t.Errorf("Fetch of a version to be deleted in an hour: version %q, %v", r.Version, r.Err)
	}

	// A new version moves it.
	write("detect-kv/data/app", kv("two-"+canary))
	if rs := check(p, "vault:detect-kv/app#password", "vault:detect-kv/other#password"); rs[0].Version != "2" || rs[1].Version != "1" {
		t.Errorf("after a new version: %+v", rs)
	}

	// Deleted (the current version), destroyed, metadata gone, never written.
	if _, err := root.Logical().Delete("detect-kv/data/app"); err != nil {
		t.Fatal(err)
	}
	write("detect-kv/destroy/shredded", map[string]any{"versions": []int{1}})
	if _, err := root.Logical().Delete("detect-kv/metadata/other"); err != nil {
		t.Fatal(err)
	}
	rs = check(p, "vault:detect-kv/app", "vault:detect-kv/shredded", "vault:detect-kv/other", "vault:detect-kv/never")
	for i, r := range rs {
		if !errors.Is(r.Err, provider.ErrNotFound) {
			t.Errorf("%d: %v, want not found", i, r.Err)
		}
	}

	// A token that may read the data but not the metadata.
	write("detect-kv/data/app", kv("three-"+canary))
	if err := root.Sys().PutPolicy("detect-data-only", `path "detect-kv/data/*" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	tok, err := root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"detect-data-only"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("VAULT_TOKEN", tok.Auth.ClientToken)
	p = open()
	r := check(p, "vault:detect-kv/app#password")[0]
	if !errors.Is(r.Err, provider.ErrDenied) || !strings.Contains(r.Err.Error(), "detect-kv/metadata/app") {
		t.Errorf("denied: %v", r.Err)
	}
	// The fallback, reading the value, still works.
	if r := p.Fetch(t.Context(), []provider.Target{{Kind: provider.Vault, Name: "detect-kv/app"}})[0]; r.Err != nil || r.Version != "3" || !strings.Contains(string(r.Value), "three-") {
		t.Errorf("fallback read: version %q, %v", r.Version, r.Err)
	}
}

func TestIsPast(t *testing.T) {
	for s, want := range map[string]bool{
		"":                     false,
		"2020-01-02T03:04:05Z": true,
		time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano): false, // delete_version_after: not yet
		"garbled": true,
	} {
		if isPast(s) != want {
			t.Errorf("isPast(%q) = %v", s, !want)
		}
	}
}
