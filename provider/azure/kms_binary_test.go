package azure_test

import (
	"bytes"
	"crypto/rsa"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrets-init/secrets-init/provider/azure/azurefake"
	"github.com/secrets-init/secrets-init/provider/jwe"
)

func rsaKey(t *testing.T, path string) *rsa.PrivateKey {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k, err := jwe.ParseKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*rsa.PrivateKey)
}

// TestBinaryKeyVaultKeys runs the built binary against the fake's Key
// Vault keys, behind its challenge and Entra ID: encrypt fetches the
// public key (GET /keys/NAME/), the run unwraps the content key (POST
// /keys/NAME/VERSION/unwrapkey).
func TestBinaryKeyVaultKeys(t *testing.T) {
	f, err := azurefake.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, f.CACert, 0o600)
	v1 := f.PutKey(vaultA, "app", rsaKey(t, "../jwe/testdata/other.pem"))
	v2 := f.PutKey(vaultA, "app", rsaKey(t, "../jwe/testdata/key.pem")) // the current version
	f.PutKey(vaultA, "signing", rsaKey(t, "../jwe/testdata/key.pem"), "sign", "verify")
	f.PutKey(vaultA, "denied", rsaKey(t, "../jwe/testdata/key.pem"))
	f.Fail(vaultA, "denied", azurefake.Fault{Status: 403, Code: "Forbidden", Inner: "ForbiddenByRbac"})

	run := func(stdin string, args []string, vars ...string) (string, string, int) {
		t.Helper()
		cmd := exec.Command(binary(t), args...)
		cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HTTPS_PROXY=" + f.ProxyURL, "HTTP_PROXY=" + f.ProxyURL, "SSL_CERT_FILE=" + ca,
			"AZURE_TENANT_ID=" + azurefake.Tenant, "AZURE_CLIENT_ID=" + azurefake.ClientID, "AZURE_CLIENT_SECRET=" + azurefake.ClientSecret}, vars...)
		cmd.Stdin = strings.NewReader(stdin)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if _, ok := err.(*exec.ExitError); err != nil && !ok {
			t.Fatal(err)
		}
		if strings.Contains(stderr.String(), canary) {
			t.Errorf("stderr holds a value:\n%s", stderr.String())
		}
		return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
	}
	const host = "alpha.vault.azure.net"
	// Without a version, encrypt records the current one in the kid.
	ref, stderr, code := run(`{"password":"`+canary+`"}`, []string{"encrypt", "--key", "azure-kv://" + host + "/keys/app"})
	ref = strings.TrimSpace(ref)
	if code != 0 {
		t.Fatalf("encrypt: exit %d: %s", code, stderr)
	}
	old, _, _ := run(canary+"-old", []string{"encrypt", "--key", "azure-kv://" + host + "/keys/app/" + v1, "--json"})
	old = strings.TrimSpace(old)

	out, stderr, code := run("", []string{"--", "sh", "-c", `printf '%s|%s' "$A" "$B"`}, "A="+ref+"#password", "B="+old)
	if code != 0 || out != canary+"|"+canary+"-old" {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", code, out, stderr)
	}
	if f.TokenRequests() == 0 || f.SecretRequests() == 0 {
		t.Errorf("no token (%d) or no authorized key request (%d): the challenge flow did not run", f.TokenRequests(), f.SecretRequests())
	}

	_, stderr, code = run("", []string{"true"},
		"WRONG="+ref+"?key=azure-kv://"+host+"/keys/app/"+v1,
		"DENIED="+ref+"?key=azure-kv://"+host+"/keys/denied/0123",
		"MISSING="+ref+"?key=azure-kv://"+host+"/keys/gone/0123",
		"BAD_URI="+ref+"?key=azure-kv://"+host+"/secrets/x")
	t.Logf("stderr of a failed resolution:\n%s", stderr)
	for _, want := range []string{
		"WRONG: jwe:", "key azure-kv://" + host + "/keys/app/" + v1 + ": the key cannot unwrap the JWE's content key: the JWE was encrypted to another key",
		"DENIED: jwe:", `access denied: the identity needs the "Unwrap Key" key permission (access policy) or the "Key Vault Crypto User" role (Azure RBAC) on the key`,
		"MISSING: jwe:", "the key does not exist in https://" + host,
		"BAD_URI: jwe:", "not a Key Vault key",
		"4 of 4 references failed",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	if code != 125 {
		t.Errorf("exit %d, want 125", code)
	}
	hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(strings.TrimPrefix(ref, "jwe:"), ".")[0])
	if want := `"kid":"azure-kv://` + host + `/keys/app/` + v2 + `"`; !strings.Contains(string(hdr), want) {
		t.Errorf("the header %s lacks %s", hdr, want)
	}

	_, stderr, code = run(canary, []string{"encrypt", "--key", "azure-kv://" + host + "/keys/signing"})
	if code != 1 || !strings.Contains(stderr, "the key's operations do not include unwrapKey") {
		t.Errorf("encrypt to a signing key: exit %d: %s", code, stderr)
	}
}
