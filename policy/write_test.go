package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVaultWrites: a write (>>vault:) needs "create" and "update" on its
// path as written (not MOUNT/data/ under a KV v2 mount), never "read";
// the body's values appear nowhere in the output, a malformed one's
// error included.
func TestVaultWrites(t *testing.T) {
	const canary = "CANARY-policy-3e1"
	env := filepath.Join(t.TempDir(), "app.env")
	content := strings.Join([]string{
		`TLS_CERT=>>vault:pki/issue/web#certificate#{"common_name":"` + canary + `.example.com"}?file`,
		`TLS_KEY=>>vault:pki/issue/web#private_key#{"common_name":"` + canary + `.example.com"}?file`,
		`ROTATE=>>vault:kv/rotate`,
	}, "\n") + "\n"
	if err := os.WriteFile(env, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := run(t, "", "-f", env, "--format", "vault", "--vault-kv2", "kv")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		"path \"kv/rotate\" {\n  capabilities = [\"create\", \"update\"]\n}",
		"path \"pki/issue/web\" {\n  capabilities = [\"create\", \"update\"]\n}",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "read") || strings.Contains(out, "kv/data") {
		t.Errorf("a write is granted a read:\n%s", out)
	}
	bad := `BAD=>>vault:pki/issue/web#certificate#{"common_name":"` + canary + `"` + "\n"
	if err := os.WriteFile(env, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	var o2 string
	o2, stderr, code = run(t, "", "-f", env, "--format", "vault")
	out += o2
	if code == 0 {
		t.Error("a malformed write: exit 0")
	}
	if !strings.Contains(stderr, `BAD: >>vault:pki/issue/web#certificate#{…}`) {
		t.Errorf("stderr does not name the malformed write:\n%s", stderr)
	}
	if strings.Contains(out+stderr, canary) {
		t.Errorf("the output shows a body's value:\n%s\n%s", out, stderr)
	}
}
