package vault_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestVersions runs, against this module's real in-memory Vault, the main
// module's tests that need one: provider/vault's TestVersionsOnRealVault
// (the store's cheap version checks: KV v2 metadata, deletion, a token
// denied the metadata) and refresh's TestLoopOverVault (the refresh loop
// over KV v2: a rotation raced by a second one is read at the version its
// check saw). The tests live in the main module, which this module does
// not import: they get the server's address and a root token in their
// environment, built from scratch.
func TestVersions(t *testing.T) {
	s := newServer(t)
	for pkg, test := range map[string]string{"./provider/vault": "TestVersionsOnRealVault", "./refresh": "TestLoopOverVault"} {
		cmd := exec.Command("go", "test", "-count=1", "-v", "-run", "^"+test+"$", pkg)
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
		if err != nil || !strings.Contains(string(out), "--- PASS: "+test) {
			t.Fatalf("go test %s -run %s: %v\n%s", pkg, test, err, out)
		}
		if strings.Contains(string(out), "CANARY-") { // the tests' canaries
			t.Errorf("the output holds a secret value:\n%s", out)
		}
	}
}
