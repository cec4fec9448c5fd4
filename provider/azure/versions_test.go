package azure

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/azure/azurefake"
)

// versionsOf checks refs through provider.Versions, failing on a value or
// a canary in an error.
func versionsOf(t *testing.T, st *store, refs ...string) []provider.Result {
	t.Helper()
	rs := provider.Versions(t.Context(), st, targets(t, refs...))
	for i, r := range rs {
		if r.Value != nil || r.FileValue != nil || (r.Version == "") == (r.Err == nil) {
			t.Fatalf("%s: want a version or an error, got %+v", refs[i], r)
		}
		if r.Err != nil && strings.Contains(r.Err.Error(), canary) {
			t.Errorf("%s: error holds a value: %v", refs[i], r.Err)
		}
	}
	return rs
}

func TestVersions(t *testing.T) {
	f := startFake(t)
	setEnv(t, append(servicePrincipal, VaultEnv, vaultA)...)
	v1 := f.Put(vaultA, "db", azurefake.Secret{Value: "one-" + canary})
	vb := f.Put(vaultB, "api", azurefake.Secret{Value: "b-" + canary})
	st := open(t, f, 4)

	refs := []string{"azure:keyvault:db", "azure:keyvault:" + vaultB + "/secrets/api", "@Microsoft.KeyVault(VaultName=alpha;SecretName=db)"}
	rs := versionsOf(t, st, refs...)
	if rs[0].Version != v1 || rs[1].Version != vb || rs[2].Version != v1 {
		t.Errorf("versions %+v; want %s %s %s", rs, v1, vb, v1)
	}
	if r := fetch(t, st, 10*time.Second, refs[0])[0]; r.Version != v1 {
		t.Errorf("Fetch serves %s, Versions said %s", r.Version, v1)
	}

	v2 := f.Put(vaultA, "db", azurefake.Secret{Value: "two-" + canary})
	before, _ := f.Reads(vaultA, "db")
	rs = versionsOf(t, st, "azure:keyvault:db", "azure:keyvault:db/"+v1)
	if rs[0].Version != v2 || rs[1].Version != v1 {
		t.Errorf("after a new version: %+v; want %s, %s", rs, v2, v1)
	}
	current, named := f.Reads(vaultA, "db")
	if current != before+1 || named != 0 {
		t.Errorf("reads of the current version %d (want %d), of a named version %d (want 0: the pinned one is never asked)", current, before+1, named)
	}
}

func TestVersionsDeletedDeniedFaults(t *testing.T) {
	f := startFake(t)
	setEnv(t, append(servicePrincipal, VaultEnv, vaultA)...)
	f.Put(vaultA, "a", azurefake.Secret{Value: canary})
	f.Put(vaultA, "gone", azurefake.Secret{Value: canary})
	f.Put(vaultA, "off", azurefake.Secret{Value: canary, Disabled: true})
	f.Put(vaultA, "closed", azurefake.Secret{Value: canary})
	f.Put(vaultA, "denied", azurefake.Secret{Value: canary})
	f.Delete(vaultA, "gone")
	f.Fail(vaultA, "closed", azurefake.Fault{Status: 403, Code: "Forbidden", Inner: "ForbiddenByFirewall"})
	f.Deny(vaultA, "denied")
	st := open(t, f, 4)

	rs := versionsOf(t, st, "azure:keyvault:a", "azure:keyvault:gone", "azure:keyvault:off", "azure:keyvault:closed", "azure:keyvault:denied")
	if rs[0].Err != nil || !errors.Is(rs[1].Err, provider.ErrNotFound) {
		t.Errorf("present %v, deleted %v", rs[0].Err, rs[1].Err)
	}
	for i, what := range map[int]string{2: "disabled", 3: "network rules"} {
		if errors.Is(rs[i].Err, provider.ErrDenied) || !strings.Contains(rs[i].Err.Error(), what) {
			t.Errorf("%s: %v", what, rs[i].Err)
		}
	}
	if !errors.Is(rs[4].Err, provider.ErrDenied) || !strings.Contains(rs[4].Err.Error(), "Key Vault Secrets User") {
		t.Errorf("denied: %v", rs[4].Err)
	}

	// A throttle and a server fault are retried under the engine's policy.
	f.Put(vaultA, "flaky", azurefake.Secret{Value: canary})
	f.Fail(vaultA, "flaky", azurefake.Fault{Status: 500, Code: "InternalServerError", Times: 1})
	f.Fail(vaultA, "busy", azurefake.Fault{Status: 429, Code: "Throttled", RetryAfter: 1, Times: 1})
	f.Put(vaultA, "busy", azurefake.Secret{Value: canary})
	rs = versionsOf(t, st, "azure:keyvault:flaky", "azure:keyvault:busy")
	for i, name := range []string{"flaky", "busy"} {
		if n, _ := f.Reads(vaultA, name); rs[i].Err != nil || n != 2 {
			t.Errorf("%s: %v after %d reads; want a version after 2", name, rs[i].Err, n)
		}
	}
}
