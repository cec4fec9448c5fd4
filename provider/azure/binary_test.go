package azure_test

// These tests run the built secrets-init binary, which has no test hooks:
// it reaches the fake under the real host names (login.microsoftonline.com,
// *.vault.azure.net) through HTTPS_PROXY and trusts the fake's CA through
// SSL_CERT_FILE, as it would trust a corporate proxy's.

import (
	"bytes"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrets-init/secrets-init/internal/testbin"
	"github.com/secrets-init/secrets-init/provider/azure/azurefake"
)

const canary = "CANARY-e2e-3b7d91"

const (
	vaultA = "https://alpha.vault.azure.net"
	vaultB = "https://beta.vault.azure.net"
)

// binary builds secrets-init once for the package's tests.
func binary(t *testing.T) string { return testbin.SecretsInit(t) }

type run struct {
	code           int
	stdout, stderr string
	env            map[string]string // the child's environment, from env -0
}

// runBinary runs secrets-init -- env -0 against f in an environment built
// from scratch: PATH, the proxy and CA, then kv (pairs).
func runBinary(t *testing.T, f *azurefake.Server, kv ...string) run {
	t.Helper()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, f.CACert, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary(t), "--", "env", "-0")
	// HTTP_PROXY catches the managed-identity probe, which the proxy drops
	// unanswered: no request leaves this machine.
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HTTPS_PROXY=" + f.ProxyURL, "HTTP_PROXY=" + f.ProxyURL, "SSL_CERT_FILE=" + ca}
	for i := 0; i < len(kv); i += 2 {
		cmd.Env = append(cmd.Env, kv[i]+"="+kv[i+1])
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := run{stdout: stdout.String(), stderr: stderr.String(), env: map[string]string{}}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	for _, kv := range strings.Split(r.stdout, "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			r.env[k] = v
		}
	}
	if strings.Contains(r.stdout+r.stderr, "CANARY") {
		t.Errorf("a secret value reached the output:\nstdout %q\nstderr %q", r.stdout, r.stderr)
	}
	return r
}

func startFake(t *testing.T) *azurefake.Server {
	f, err := azurefake.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

var servicePrincipal = []string{
	"AZURE_TENANT_ID", azurefake.Tenant, "AZURE_CLIENT_ID", azurefake.ClientID, "AZURE_CLIENT_SECRET", azurefake.ClientSecret,
}

func TestBinaryResolvesEveryForm(t *testing.T) {
	f := startFake(t)
	v1 := f.Put(vaultA, "db-password", azurefake.Secret{Value: "old"})
	f.Put(vaultA, "db-password", azurefake.Secret{Value: "new"})
	f.Put(vaultA, "config", azurefake.Secret{Value: `{"user":"app","port":5432,"tls":{"on":true}}`})
	vb := f.Put(vaultB, "api-key", azurefake.Secret{Value: "key-b\n"})
	pemCert := "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
	f.Put(vaultB, "tls-pem", azurefake.Secret{Value: pemCert, ContentType: "application/x-pem-file"})
	pfx := []byte{0x30, 0x82, 0x00, 0x01, 0xff, 0x00, 0x0a}
	f.Put(vaultB, "tls-pfx", azurefake.Secret{Value: base64.StdEncoding.EncodeToString(pfx), ContentType: "application/x-pkcs12"})
	pfxPath := filepath.Join(t.TempDir(), "tls.pfx")

	env := append(servicePrincipal,
		"AZURE_KEY_VAULT_URL", vaultA+"/",
		"AZURE_SDK_GO_LOGGING", "all", // the SDK's own logging must stay silent
		"PLAIN", "not-a-reference",
		"URL_CURRENT", "azure:keyvault:"+vaultA+"/secrets/db-password",
		"URL_VERSION", "azure:keyvault:"+vaultA+"/secrets/db-password/"+v1,
		"SHORT", "azure:keyvault:db-password",
		"SHORT_VERSION", "azure:keyvault:db-password/"+v1,
		"KEY_STRING", "azure:keyvault:config#user",
		"KEY_NUMBER", "azure:keyvault:"+vaultA+"/secrets/config#port",
		"KEY_OBJECT", "azure:keyvault:config#tls",
		"APP_URI", "@Microsoft.KeyVault(SecretUri="+vaultB+"/secrets/api-key/"+vb+")",
		"APP_NAMES", "@Microsoft.KeyVault(VaultName=beta;SecretName=api-key)",
		"APP_TRIM", "@Microsoft.KeyVault(VaultName=beta;SecretName=api-key)?trim",
		"APP_KEY", "@Microsoft.KeyVault(VaultName=alpha;SecretName=config)#user",
		"APP_VERSION", "@Microsoft.KeyVault(VaultName=alpha;SecretName=db-password;SecretVersion="+v1+")",
		"PEM", "azure:keyvault:"+vaultB+"/secrets/tls-pem",
		"PFX_FILE", "azure:keyvault:"+vaultB+"/secrets/tls-pfx?file="+pfxPath,
		"PFX_AS_STORED", "azure:keyvault:"+vaultB+"/secrets/tls-pfx",
		"GONE", "azure:keyvault:missing?optional",
	)
	r := runBinary(t, f, env...)
	if r.code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	if r.stderr != "" {
		t.Errorf("stderr is not empty (with AZURE_SDK_GO_LOGGING=all):\n%s", r.stderr)
	}
	want := map[string]string{
		"PLAIN":         "not-a-reference",
		"URL_CURRENT":   "new",
		"URL_VERSION":   "old",
		"SHORT":         "new",
		"SHORT_VERSION": "old",
		"KEY_STRING":    "app",
		"KEY_NUMBER":    "5432",
		"KEY_OBJECT":    `{"on":true}`,
		"APP_URI":       "key-b\n",
		"APP_NAMES":     "key-b\n",
		"APP_TRIM":      "key-b",
		"APP_KEY":       "app",
		"APP_VERSION":   "old",
		"PEM":           pemCert,
		"PFX_FILE":      pfxPath,
		"PFX_AS_STORED": base64.StdEncoding.EncodeToString(pfx),
	}
	for k, v := range want {
		if got, ok := r.env[k]; !ok || got != v {
			t.Errorf("%s = %q (set %v), want %q", k, got, ok, v)
		}
	}
	if _, ok := r.env["GONE"]; ok {
		t.Errorf("GONE is set, want unset (optional, not found)")
	}
	if b, err := os.ReadFile(pfxPath); err != nil || !bytes.Equal(b, pfx) {
		t.Errorf("PFX file holds %x, %v; want %x", b, err, pfx)
	}
	if n := f.TokenRequests(); n != 1 {
		t.Errorf("%d token requests for every secret of two vaults; want 1", n)
	}
}

// One secret of a sovereign cloud: the authority host comes from
// AZURE_AUTHORITY_HOST, the token's audience from the vault's challenge.
func TestBinarySovereignCloud(t *testing.T) {
	f := startFake(t)
	f.Put("https://gamma.vault.azure.cn", "s", azurefake.Secret{Value: "china"})
	r := runBinary(t, f, append(servicePrincipal, "AZURE_AUTHORITY_HOST", "https://login.chinacloudapi.cn",
		"S", "azure:keyvault:https://gamma.vault.azure.cn/secrets/s")...)
	if r.code != 0 || r.env["S"] != "china" {
		t.Fatalf("exit %d, S=%q, stderr:\n%s", r.code, r.env["S"], r.stderr)
	}
}

// failures runs the binary expecting exit 125 and one stderr line per
// variable of wantLines (name → text the line must hold).
func failures(t *testing.T, f *azurefake.Server, wantLines map[string]string, kv ...string) {
	t.Helper()
	r := runBinary(t, f, kv...)
	t.Logf("stderr:\n%s", r.stderr)
	if r.code != 125 {
		t.Fatalf("exit %d, want 125; stderr:\n%s", r.code, r.stderr)
	}
	if len(r.env) != 0 {
		t.Errorf("the command ran")
	}
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	for name, want := range wantLines {
		n := 0
		for _, l := range lines {
			if strings.Contains(l, name+": ") {
				n++
				if !strings.Contains(l, want) {
					t.Errorf("line %q does not say %q", l, want)
				}
			}
		}
		if n != 1 {
			t.Errorf("%d stderr lines name %s, want 1; stderr:\n%s", n, name, r.stderr)
		}
	}
}

func TestBinaryErrors(t *testing.T) {
	f := startFake(t)
	f.Put(vaultA, "ok", azurefake.Secret{Value: canary})
	f.Put(vaultA, "off", azurefake.Secret{Value: canary, Disabled: true})
	f.Put(vaultA, "json", azurefake.Secret{Value: `{"a":"` + canary + `"}`})
	f.Put(vaultB, "denied", azurefake.Secret{Value: canary})
	f.Fail(vaultB, "", azurefake.Fault{Status: 403, Code: "Forbidden", Inner: "ForbiddenByRbac"})
	failures(t, f, map[string]string{
		"MISSING":  "not found in " + vaultA,
		"VERSION":  "no version 00000000000000000000000000000000",
		"DISABLED": "the secret is disabled",
		"DENIED":   `"Key Vault Secrets User" role`,
		"NOKEY":    "b",
	}, append(servicePrincipal,
		"OK", "azure:keyvault:"+vaultA+"/secrets/ok",
		"MISSING", "azure:keyvault:"+vaultA+"/secrets/missing",
		"VERSION", "azure:keyvault:"+vaultA+"/secrets/ok/00000000000000000000000000000000",
		"DISABLED", "azure:keyvault:"+vaultA+"/secrets/off",
		"DENIED", "@Microsoft.KeyVault(VaultName=beta;SecretName=denied)",
		"NOKEY", "azure:keyvault:"+vaultA+"/secrets/json#b",
	)...)
}

func TestBinaryNoCredential(t *testing.T) {
	f := startFake(t)
	f.Put(vaultA, "s", azurefake.Secret{Value: canary})
	failures(t, f, map[string]string{
		"S": "no Azure credential found (tried EnvironmentCredential, WorkloadIdentityCredential, ManagedIdentityCredential, AzureCLICredential",
	}, "S", "azure:keyvault:"+vaultA+"/secrets/s")
}

func TestBinaryWrongSecretAndDeadline(t *testing.T) {
	f := startFake(t)
	f.Put(vaultA, "s", azurefake.Secret{Value: canary})
	failures(t, f, map[string]string{"S": "AADSTS7000215"},
		"AZURE_TENANT_ID", azurefake.Tenant, "AZURE_CLIENT_ID", azurefake.ClientID, "AZURE_CLIENT_SECRET", "wrong",
		"S", "azure:keyvault:"+vaultA+"/secrets/s")

	f.Fail(vaultA, "s", azurefake.Fault{Hang: true})
	failures(t, f, map[string]string{"S": "2s"},
		append(servicePrincipal, "SECRETS_INIT_TIMEOUT", "2s", "S", "azure:keyvault:"+vaultA+"/secrets/s")...)
}
