package azure

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/azure/azurefake"
)

// canary is stored in every secret an error test touches: it must never
// show in an error.
const canary = "CANARY-5f1d0c-never-print-me"

const (
	vaultA = "https://alpha.vault.azure.net"
	vaultB = "https://beta.vault.azure.net"
)

// azureEnv is every variable DefaultAzureCredential or the store reads.
var azureEnv = []string{
	"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
	"AZURE_CLIENT_CERTIFICATE_PASSWORD", "AZURE_CLIENT_SEND_CERTIFICATE_CHAIN", "AZURE_USERNAME", "AZURE_PASSWORD",
	"AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST", "AZURE_TOKEN_CREDENTIALS", "AZURE_ADDITIONALLY_ALLOWED_TENANTS",
	"AZURE_REGIONAL_AUTHORITY_NAME", "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT",
	"IMDS_ENDPOINT", "MSI_ENDPOINT", "MSI_SECRET", VaultEnv,
}

// setEnv clears the ambient Azure environment, then sets kv (pairs; an
// empty value unsets).
func setEnv(t testing.TB, kv ...string) {
	for _, k := range azureEnv {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	for i := 0; i < len(kv); i += 2 {
		if t.Setenv(kv[i], kv[i+1]); kv[i+1] == "" {
			os.Unsetenv(kv[i])
		}
	}
}

// servicePrincipal is the environment of the fake's client-secret identity.
var servicePrincipal = []string{
	"AZURE_TENANT_ID", azurefake.Tenant, "AZURE_CLIENT_ID", azurefake.ClientID, "AZURE_CLIENT_SECRET", azurefake.ClientSecret,
}

func startFake(t testing.TB) *azurefake.Server {
	f, err := azurefake.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

// open opens a store that reaches the fake; the environment is set first.
func open(t testing.TB, f *azurefake.Server, concurrency int) *store {
	st, err := newStore(provider.Settings{Limit: provider.NewLimiter(concurrency)}, f.Transport())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// targets parses references into their targets.
func targets(t testing.TB, refs ...string) []provider.Target {
	var ts []provider.Target
	for _, r := range refs {
		ref, ok, err := provider.Parse(r)
		if !ok || err != nil {
			t.Fatalf("Parse(%q) = %v, %v", r, ok, err)
		}
		ts = append(ts, ref.Target)
	}
	return ts
}

func fetch(t testing.TB, st *store, timeout time.Duration, refs ...string) []provider.Result {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return st.Fetch(ctx, targets(t, refs...))
}

func TestOpen(t *testing.T) {
	setEnv(t, "AZURE_TOKEN_CREDENTIALS", "bogus")
	if p, err := Open(context.Background(), provider.Settings{Limit: provider.NewLimiter(1)}); p != nil || err == nil || !strings.Contains(err.Error(), "AZURE_TOKEN_CREDENTIALS") {
		t.Errorf("Open with a bad AZURE_TOKEN_CREDENTIALS = %v, %v; want nil and an error naming it", p, err)
	}
	setEnv(t, servicePrincipal...)
	if p, err := Open(context.Background(), provider.Settings{Limit: provider.NewLimiter(1)}); p == nil || err != nil {
		t.Errorf("Open = %v, %v", p, err)
	}
}

func TestEveryForm(t *testing.T) {
	f := startFake(t)
	v1 := f.Put(vaultA, "db-password", azurefake.Secret{Value: "first"})
	v2 := f.Put(vaultA, "db-password", azurefake.Secret{Value: "second\n"})
	vb := f.Put(vaultB, "api-key", azurefake.Secret{Value: `{"user":"u","pass":"p"}`})
	ve := f.Put(vaultA, "empty", azurefake.Secret{})
	setEnv(t, append(servicePrincipal, VaultEnv, vaultA+"/")...)
	st := open(t, f, 4)

	tests := []struct{ ref, want, version string }{
		{"azure:keyvault:" + vaultA + "/secrets/db-password", "second\n", v2},
		{"azure:keyvault:" + vaultA + "/secrets/db-password/", "second\n", v2},
		{"azure:keyvault:" + vaultA + "/secrets/db-password/" + v1, "first", v1},
		{"azure:keyvault:https://ALPHA.vault.azure.net/secrets/db-password/" + v1 + "?trim", "first", v1},
		{"azure:keyvault:db-password", "second\n", v2},
		{"azure:keyvault:db-password/" + v1, "first", v1},
		{"azure:keyvault:empty", "", ve},
		{"azure:keyvault:" + vaultB + "/secrets/api-key#user", `{"user":"u","pass":"p"}`, vb},
		{"@Microsoft.KeyVault(SecretUri=" + vaultA + "/secrets/db-password/)", "second\n", v2},
		{"@Microsoft.KeyVault(SecretUri=" + vaultA + "/secrets/db-password/" + v1 + ")", "first", v1},
		{"@Microsoft.KeyVault(VaultName=alpha;SecretName=db-password)", "second\n", v2},
		{"@Microsoft.KeyVault(VaultName=beta;SecretName=api-key;SecretVersion=" + vb + ")#pass", `{"user":"u","pass":"p"}`, vb},
	}
	var refs []string
	for _, tc := range tests {
		refs = append(refs, tc.ref)
	}
	rs := fetch(t, st, 30*time.Second, refs...)
	for i, tc := range tests {
		r := rs[i]
		if r.Err != nil || r.Value == nil || string(r.Value) != tc.want || r.Version != tc.version || r.Binary {
			t.Errorf("%s: got %q version %q binary %v err %v; want %q version %q", tc.ref, r.Value, r.Version, r.Binary, r.Err, tc.want, tc.version)
		}
	}
}

func TestOneTokenServesManySecrets(t *testing.T) {
	f := startFake(t)
	var refs []string
	for i := range 40 {
		vault := []string{vaultA, vaultB}[i%2]
		name := fmt.Sprintf("s%d", i)
		f.Put(vault, name, azurefake.Secret{Value: "v" + name})
		refs = append(refs, "azure:keyvault:"+vault+"/secrets/"+name)
	}
	setEnv(t, servicePrincipal...)
	st := open(t, f, 8)
	for range 2 {
		for i, r := range fetch(t, st, 30*time.Second, refs...) {
			if want := fmt.Sprintf("vs%d", i); r.Err != nil || string(r.Value) != want {
				t.Fatalf("%s: got %q, %v; want %q", refs[i], r.Value, r.Err, want)
			}
		}
	}
	if n := f.TokenRequests(); n != 1 {
		t.Errorf("%d token requests for 80 reads in 2 vaults; want 1", n)
	}
	if n := f.SecretRequests(); n != 80 {
		t.Errorf("%d authorized reads; want 80", n)
	}
}

// On AKS the workload identity webhook sets the client, the tenant and a
// federated token file; DefaultAzureCredential exchanges the token.
func TestWorkloadIdentity(t *testing.T) {
	f := startFake(t)
	f.Put(vaultA, "s", azurefake.Secret{Value: "wi"})
	file := filepath.Join(t.TempDir(), "azure-identity-token")
	if err := os.WriteFile(file, []byte(azurefake.FederatedToken), 0o600); err != nil {
		t.Fatal(err)
	}
	setEnv(t, "AZURE_TENANT_ID", azurefake.Tenant, "AZURE_CLIENT_ID", azurefake.ClientID,
		"AZURE_FEDERATED_TOKEN_FILE", file, "AZURE_AUTHORITY_HOST", "https://login.microsoftonline.com/")
	r := fetch(t, open(t, f, 2), 30*time.Second, "azure:keyvault:"+vaultA+"/secrets/s")[0]
	if r.Err != nil || string(r.Value) != "wi" || f.TokenRequests() != 1 {
		t.Fatalf("got %q, %v after %d token requests", r.Value, r.Err, f.TokenRequests())
	}
}

// A vault in another cloud gets its challenge's resource as the token's
// audience, from the authority host its environment names.
func TestSovereignCloud(t *testing.T) {
	f := startFake(t)
	const vault = "https://gamma.vault.azure.cn"
	v := f.Put(vault, "s", azurefake.Secret{Value: "china"})
	setEnv(t, append(servicePrincipal, "AZURE_AUTHORITY_HOST", "https://login.chinacloudapi.cn/")...)
	r := fetch(t, open(t, f, 2), 30*time.Second, "azure:keyvault:"+vault+"/secrets/s")[0]
	if r.Err != nil || string(r.Value) != "china" || r.Version != v {
		t.Fatalf("got %q version %q, %v", r.Value, r.Version, r.Err)
	}
}

func TestCertificates(t *testing.T) {
	f := startFake(t)
	pfx := []byte{0x30, 0x82, 0x0a, 0x00, 0x02, 0x01, 0x03, 0x00, 0xff, 0xfe}
	pemCert := "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"
	f.Put(vaultA, "pfx", azurefake.Secret{Value: base64.StdEncoding.EncodeToString(pfx), ContentType: "application/x-pkcs12"})
	f.Put(vaultA, "pem", azurefake.Secret{Value: pemCert, ContentType: "application/x-pem-file"})
	f.Put(vaultA, "bad-pfx", azurefake.Secret{Value: canary + "!", ContentType: "application/x-pkcs12"})
	setEnv(t, servicePrincipal...)
	rs := fetch(t, open(t, f, 2), 30*time.Second,
		"azure:keyvault:"+vaultA+"/secrets/pfx", "azure:keyvault:"+vaultA+"/secrets/pem", "azure:keyvault:"+vaultA+"/secrets/bad-pfx")
	if r := rs[0]; r.Err != nil || string(r.Value) != base64.StdEncoding.EncodeToString(pfx) || !bytes.Equal(r.FileValue, pfx) || r.Binary {
		t.Errorf("pfx: got %q, file value %x, binary %v, %v; want base64, then %x in a file", r.Value, r.FileValue, r.Binary, r.Err, pfx)
	}
	if r := rs[1]; r.Err != nil || string(r.Value) != pemCert || r.Binary {
		t.Errorf("pem: got %q binary %v, %v", r.Value, r.Binary, r.Err)
	}
	checkErr(t, rs[2], "not valid base64", false)
}

// checkErr asserts that r failed with a one-line message holding want and
// no secret value, wrapping ErrNotFound exactly when notFound.
func checkErr(t *testing.T, r provider.Result, want string, notFound bool) {
	t.Helper()
	switch {
	case r.Err == nil:
		t.Fatalf("got %q, want an error with %q", r.Value, want)
	case r.Value != nil:
		t.Errorf("error %v came with a value", r.Err)
	case !strings.Contains(r.Err.Error(), want):
		t.Errorf("error %q does not say %q", r.Err, want)
	case strings.Contains(r.Err.Error(), canary) || strings.Contains(r.Err.Error(), "CANARY"):
		t.Errorf("error %q holds the secret value", r.Err)
	case strings.Contains(r.Err.Error(), "\n"):
		t.Errorf("error %q is not one line", r.Err)
	case errors.Is(r.Err, provider.ErrNotFound) != notFound:
		t.Errorf("error %q: errors.Is(ErrNotFound) = %v, want %v", r.Err, !notFound, notFound)
	}
}

func TestErrors(t *testing.T) {
	secret := azurefake.Secret{Value: canary}
	tests := []struct {
		name     string
		setup    func(f *azurefake.Server)
		env      []string
		ref      string
		timeout  time.Duration
		want     string
		notFound bool
	}{{
		name: "no such secret",
		ref:  "azure:keyvault:" + vaultA + "/secrets/missing",
		want: "not found in " + vaultA, notFound: true,
	}, {
		name: "no such version",
		ref:  "azure:keyvault:" + vaultA + "/secrets/s/0123456789abcdef0123456789abcdef",
		want: "no version 0123456789abcdef0123456789abcdef", notFound: true,
	}, {
		name: "access policy without get",
		setup: func(f *azurefake.Server) {
			f.Fail(vaultA, "", azurefake.Fault{Status: 403, Code: "Forbidden", Inner: "AccessDenied"})
		},
		ref:  "azure:keyvault:" + vaultA + "/secrets/s",
		want: `access denied: the identity needs the "Get" secret permission (access policy) or the "Key Vault Secrets User" role (Azure RBAC) on ` + vaultA + " [AccessDenied]",
	}, {
		name: "no RBAC role",
		setup: func(f *azurefake.Server) {
			f.Fail(vaultA, "s", azurefake.Fault{Status: 403, Code: "Forbidden", Inner: "ForbiddenByRbac"})
		},
		ref:  "azure:keyvault:" + vaultA + "/secrets/s",
		want: `"Key Vault Secrets User" role`,
	}, {
		name: "firewall",
		setup: func(f *azurefake.Server) {
			f.Fail(vaultA, "", azurefake.Fault{Status: 403, Code: "Forbidden", Inner: "ForbiddenByFirewall"})
		},
		ref:  "azure:keyvault:" + vaultA + "/secrets/s",
		want: "access denied by the network rules of " + vaultA,
	}, {
		name:  "disabled",
		setup: func(f *azurefake.Server) { f.Put(vaultA, "off", azurefake.Secret{Value: canary, Disabled: true}) },
		ref:   "azure:keyvault:" + vaultA + "/secrets/off",
		want:  "the secret is disabled",
	}, {
		name: "vault that does not exist",
		ref:  "azure:keyvault:https://nosuchvault.vault.azure.net/secrets/s",
		want: "vault host nosuchvault.vault.azure.net not found (check the vault name)",
	}, {
		name: "short form without a vault",
		env:  []string{VaultEnv, ""},
		ref:  "azure:keyvault:s",
		want: "no vault: set AZURE_KEY_VAULT_URL",
	}, {
		name: "vault variable that is no URL",
		env:  []string{VaultEnv, "alpha"},
		ref:  "azure:keyvault:s",
		want: `AZURE_KEY_VAULT_URL="alpha" is not a vault URL`,
	}, {
		name: "wrong client secret",
		env:  []string{"AZURE_CLIENT_SECRET", "not-the-secret"},
		ref:  "azure:keyvault:" + vaultA + "/secrets/s",
		want: "Azure authentication failed: ClientSecretCredential was refused by login.microsoftonline.com (HTTP 401: invalid_client, AADSTS7000215: Invalid client secret provided)",
	}, {
		name: "unknown tenant",
		env:  []string{"AZURE_TENANT_ID", "0000aaaa-0000-0000-0000-000000000000"},
		ref:  "azure:keyvault:" + vaultA + "/secrets/s",
		want: `Azure authentication failed: ClientSecretCredential isn't configured to acquire tokens for tenant "` + azurefake.Tenant + `"`,
	}, {
		name: "no credential",
		env:  []string{"AZURE_TENANT_ID", "", "AZURE_CLIENT_ID", "", "AZURE_CLIENT_SECRET", "", "PATH", t.TempDir()},
		ref:  "azure:keyvault:" + vaultA + "/secrets/s",
		want: "no Azure credential found (tried EnvironmentCredential, WorkloadIdentityCredential, ManagedIdentityCredential, AzureCLICredential, AzureDeveloperCLICredential, AzurePowerShellCredential)",
	}, {
		name: "answer that is no secret",
		setup: func(f *azurefake.Server) {
			f.Fail(vaultA, "s", azurefake.Fault{Status: 200, Body: `{"value":"` + canary + `",` + canary})
		},
		ref:  "azure:keyvault:" + vaultA + "/secrets/s",
		want: vaultA + " answered with something that is not a Key Vault secret",
	}, {
		name: "throttled for longer than the retry cap",
		setup: func(f *azurefake.Server) {
			f.Fail(vaultA, "s", azurefake.Fault{Status: 429, Code: "Throttled", RetryAfter: 30})
		},
		ref:  "azure:keyvault:" + vaultA + "/secrets/s",
		want: "throttled by " + vaultA + " (HTTP 429)",
	}, {
		name:    "server error until the deadline",
		setup:   func(f *azurefake.Server) { f.Fail(vaultA, "s", azurefake.Fault{Status: 500, Code: "InternalError"}) },
		ref:     "azure:keyvault:" + vaultA + "/secrets/s",
		timeout: 2 * time.Second,
		want:    context.DeadlineExceeded.Error(),
	}, {
		name:    "vault that never answers",
		setup:   func(f *azurefake.Server) { f.Fail(vaultA, "s", azurefake.Fault{Hang: true}) },
		ref:     "azure:keyvault:" + vaultA + "/secrets/s",
		timeout: time.Second,
		want:    context.DeadlineExceeded.Error(),
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := startFake(t)
			f.Put(vaultA, "s", secret)
			if tc.setup != nil {
				tc.setup(f)
			}
			setEnv(t, append(append([]string{VaultEnv, vaultA}, servicePrincipal...), tc.env...)...)
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 30 * time.Second
			}
			r := fetch(t, open(t, f, 2), timeout, tc.ref)[0]
			checkErr(t, r, tc.want, tc.notFound)

			if tc.timeout == 0 && errors.Is(r.Err, context.DeadlineExceeded) {
				t.Errorf("retried until the deadline: %v", r.Err)
			}
		})
	}
}

// The SDK's check that a challenge names the vault's own domain stays on:
// no token is requested for a resource outside it.
func TestChallengeResourceVerified(t *testing.T) {
	f := startFake(t)
	f.Put(vaultA, "s", azurefake.Secret{Value: canary})
	f.Challenge(vaultA, "https://vault.example.com")
	setEnv(t, servicePrincipal...)
	r := fetch(t, open(t, f, 1), 30*time.Second, "azure:keyvault:"+vaultA+"/secrets/s")[0]
	checkErr(t, r, vaultA+" sent an authentication challenge that does not fit a Key Vault at that address; no token was sent", false)
	if n := f.TokenRequests(); n != 0 {
		t.Errorf("%d tokens requested for a foreign resource", n)
	}
}

// A certificate that does not verify fails at once, naming the cause.
func TestUntrustedCertificate(t *testing.T) {
	f := startFake(t)
	f.Put(vaultA, "s", azurefake.Secret{Value: canary})
	setEnv(t, servicePrincipal...)
	tr := f.Transport()
	tr.TLSClientConfig.RootCAs = x509.NewCertPool()
	st, err := newStore(provider.Settings{Limit: provider.NewLimiter(1)}, tr)
	if err != nil {
		t.Fatal(err)
	}
	r := fetch(t, st, 30*time.Second, "azure:keyvault:"+vaultA+"/secrets/s")[0]
	checkErr(t, r, "cannot reach "+vaultA+": tls: failed to verify certificate", false)
	if errors.Is(r.Err, context.DeadlineExceeded) {
		t.Errorf("retried until the deadline: %v", r.Err)
	}
}

// Throttling and transient faults are retried, not reported.
func TestRetries(t *testing.T) {
	f := startFake(t)
	f.Put(vaultA, "s", azurefake.Secret{Value: "v"})
	f.Fail(vaultA, "s", azurefake.Fault{Status: 429, Code: "Throttled", Times: 2})
	f.Put(vaultA, "t", azurefake.Secret{Value: "w"})
	f.Fail(vaultA, "t", azurefake.Fault{Status: 503, Code: "ServiceUnavailable", Times: 2})
	f.Put(vaultA, "u", azurefake.Secret{Value: "x"})
	f.Fail(vaultA, "u", azurefake.Fault{Status: 429, Code: "Throttled", Times: 1, RetryAfter: 1})
	setEnv(t, servicePrincipal...)
	rs := fetch(t, open(t, f, 3), 30*time.Second, "azure:keyvault:"+vaultA+"/secrets/s", "azure:keyvault:"+vaultA+"/secrets/t", "azure:keyvault:"+vaultA+"/secrets/u")
	for i, want := range []string{"v", "w", "x"} {
		if rs[i].Err != nil || string(rs[i].Value) != want {
			t.Errorf("got %q, %v; want %q", rs[i].Value, rs[i].Err, want)
		}
	}
}

// Calls in flight never exceed the engine's bound, and do run concurrently.
func TestConcurrencyBound(t *testing.T) {
	f := startFake(t)
	f.SetLatency(20 * time.Millisecond)
	var refs []string
	for i := range 24 {
		name := fmt.Sprintf("s%d", i)
		f.Put(vaultA, name, azurefake.Secret{Value: name})
		refs = append(refs, "azure:keyvault:"+vaultA+"/secrets/"+name)
	}
	setEnv(t, servicePrincipal...)
	for _, r := range fetch(t, open(t, f, 3), 30*time.Second, refs...) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if n := f.MaxInFlight(); n > 3 || n < 2 {
		t.Errorf("%d reads in flight at once; want 2 or 3 under a bound of 3", n)
	}
}

// Targets not started when the context ends fail with its error: the
// engine's, as the store leaves them unset.
func TestCancelled(t *testing.T) {
	f := startFake(t)
	f.Put(vaultA, "s", azurefake.Secret{Value: canary})
	setEnv(t, servicePrincipal...)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	st := open(t, f, 1)
	cfg := provider.Config{
		Stores: map[provider.Kind]provider.Opener{provider.Azure: func(context.Context, provider.Settings) (provider.Store, error) {
			return st, nil
		}},
		DryRun: true,
	}
	_, err := provider.Resolve(ctx, cfg, []string{"A=azure:keyvault:" + vaultA + "/secrets/s", "B=azure:keyvault:" + vaultA + "/secrets/s/0123456789abcdef0123456789abcdef"})
	var fe *provider.Failure
	if !errors.As(err, &fe) || len(fe.Vars) != 2 {
		t.Fatalf("err = %v; want both variables to fail", err)
	}
	for _, v := range fe.Vars {
		if v.Reason() != context.Canceled.Error() {
			t.Errorf("%s: %s; want %v", v.Name, v.Reason(), context.Canceled)
		}
	}
}

func BenchmarkFetch(b *testing.B) {
	f := startFake(b)
	var refs []string
	for i := range 100 {
		name := fmt.Sprintf("s%d", i)
		f.Put(vaultA, name, azurefake.Secret{Value: "value-" + name})
		refs = append(refs, "azure:keyvault:"+vaultA+"/secrets/"+name)
	}
	setEnv(b, servicePrincipal...)
	ts := targets(b, refs...)
	run := func(b *testing.B, st *store) {
		for _, r := range st.Fetch(context.Background(), ts) {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	}
	b.Run("cold-100", func(b *testing.B) { // a new store: challenge, token, 100 reads
		for b.Loop() {
			run(b, open(b, f, 16))
		}
	})
	b.Run("warm-100", func(b *testing.B) { // token cached, connections closed after each Fetch
		st := open(b, f, 16)
		run(b, st)
		for b.Loop() {
			run(b, st)
		}
	})
	// With 10 ms per read, as across a network: what the bound buys.
	f.SetLatency(10 * time.Millisecond)
	for _, n := range []int{1, 16} {
		b.Run(fmt.Sprintf("latency10ms-100-concurrency%d", n), func(b *testing.B) {
			st := open(b, f, n)
			for b.Loop() {
				run(b, st)
			}
		})
	}
}
