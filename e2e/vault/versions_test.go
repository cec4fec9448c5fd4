package vault_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestVersions runs provider/vault's TestVersionsOnRealVault (the store's
// cheap version checks: KV v2 metadata, deletion, a token denied the
// metadata) against this module's real in-memory Vault. The test lives in
// the main module, which this module does not import: it gets the
// server's address and a root token in its environment, built from
// scratch.
func TestVersions(t *testing.T) {
	s := newServer(t)
	cmd := exec.Command("go", "test", "-count=1", "-v", "-run", "^TestVersionsOnRealVault$", "./provider/vault")
	cmd.Dir = "../.."
	cmd.Env = []string{
		"SECRETS_INIT_TEST_VAULT_ADDR=" + s.addr,
		"SECRETS_INIT_TEST_VAULT_TOKEN=" + s.root.Token(),
	}
	for _, kv := range os.Environ() { // what the go command needs, nothing of Vault's
		k, _, _ := strings.Cut(kv, "=")
		if k == "PATH" || k == "HOME" || strings.HasPrefix(k, "GO") || k == "CGO_ENABLED" || k == "TMPDIR" {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestVersionsOnRealVault") {
		t.Fatalf("go test ./provider/vault -run TestVersionsOnRealVault: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "CANARY-") { // provider/vault's canary
		t.Errorf("the output holds a secret value:\n%s", out)
	}
}
