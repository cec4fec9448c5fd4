package vault_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	credAppRole "github.com/hashicorp/vault/builtin/credential/approle"
	vaulthttp "github.com/hashicorp/vault/http"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/vault"
)

// Lease TTLs of the leased engine: renewals at about 4s, 8s and 12s, the
// last one cut by the max TTL, so new credentials at about 14s.
const (
	leaseTTL    = 6 * time.Second
	leaseMaxTTL = 15 * time.Second
	tokenTTL    = 8 * time.Second
)

// leasedFactory is a secrets engine like database/creds with renewable
// leases of leaseTTL up to leaseMaxTTL; it appends "revoke USER" to
// events when Vault revokes a lease, so that a test can order the
// revocation against the command's own lines.
func leasedFactory(events string, ttl, maxTTL time.Duration) logical.Factory {
	return func(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
		var n atomic.Int64
		b := &framework.Backend{BackendType: logical.TypeLogical}
		b.Secrets = []*framework.Secret{{
			Type:   "creds",
			Fields: map[string]*framework.FieldSchema{},
			Renew:  framework.LeaseExtend(ttl, maxTTL, conf.System),
			Revoke: func(_ context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
				appendLine(events, fmt.Sprintf("revoke %v", req.Secret.InternalData["username"]))
				return nil, nil
			},
		}}
		b.Paths = []*framework.Path{{
			Pattern: "creds/app",
			Operations: map[logical.Operation]framework.OperationHandler{
				logical.ReadOperation: &framework.PathOperation{Callback: func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
					i := n.Add(1)
					user := fmt.Sprintf("user-%d", i)
					appendLine(events, "read "+user)
					resp := b.Secret("creds").Response(map[string]any{
						"username": user,
						"password": fmt.Sprintf("pass-%d-%s", i, canary),
					}, map[string]any{"username": user})
					resp.Secret.TTL, resp.Secret.MaxTTL, resp.Secret.Renewable = ttl, maxTTL, true
					return resp, nil
				}},
			},
		}}
		if err := b.Setup(ctx, conf); err != nil {
			return nil, err
		}
		return b, nil
	}
}

var eventsMu sync.Mutex

func appendLine(path, line string) {
	eventsMu.Lock()
	defer eventsMu.Unlock()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	f.WriteString(line + "\n")
}

// singleBinary is the single-process build (a plain go build), built
// once for the tests that run both builds.
var singleBinary = sync.OnceValues(func() (string, error) {
	out := filepath.Join(filepath.Dir(bin), "secrets-init-single")
	build := exec.Command("go", "build", "-o", out, ".")
	build.Dir = filepath.Join("..", "..")
	if b, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, b)
	}
	return out, nil
})

// leaseServer starts a Vault with the leased engine at database/ (leases
// of ttl, up to maxTTL) and returns its address, a root client, and a
// token of tokenTTL (renewable, explicit max 10m) that may read and
// manage the leases. The approle role "app" logs in with the same
// policy, for tokens of tokenTTL up to a max of 10s.
func leaseServer(t *testing.T, events string, ttl, maxTTL time.Duration) (string, *api.Client, string) {
	t.Helper()
	core, _, root := vault.TestCoreUnsealedWithConfig(t, &vault.CoreConfig{
		LogicalBackends:    map[string]logical.Factory{"leased": leasedFactory(events, ttl, maxTTL)},
		CredentialBackends: map[string]logical.Factory{"approle": credAppRole.Factory},
		Logger:             hclog.NewNullLogger(),
	})
	ln, addr := vaulthttp.TestServer(t, core)
	t.Cleanup(func() { ln.Close() })
	cfg := api.DefaultConfig()
	cfg.Address = addr
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(root)
	if err := c.Sys().Mount("database", &api.MountInput{Type: "leased"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Sys().PutPolicy("app", `
path "database/creds/app" { capabilities = ["read"] }
path "sys/leases/revoke" { capabilities = ["update"] }
`); err != nil {
		t.Fatal(err)
	}
	if err := c.Sys().EnableAuthWithOptions("approle", &api.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Logical().Write("auth/approle/role/app", map[string]any{"token_policies": "app", "token_ttl": tokenTTL.String(), "token_max_ttl": "10s"}); err != nil {
		t.Fatal(err)
	}
	tok, err := c.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"app"}, TTL: tokenTTL.String(), ExplicitMaxTTL: "10m", Renewable: ptr(true)})
	if err != nil {
		t.Fatal(err)
	}
	return addr, c, tok.Auth.ClientToken
}

func ptr[T any](v T) *T { return &v }

// liveLeases lists the ids of database/creds/app's live leases.
func liveLeases(t *testing.T, c *api.Client) []string {
	t.Helper()
	s, err := c.Logical().List("sys/leases/lookup/database/creds/app/")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	if s != nil {
		keys, _ := s.Data["keys"].([]any)
		for _, k := range keys {
			out = append(out, fmt.Sprint(k))
		}
	}
	return out
}

// poll waits for cond, with a generous deadline (no timed assertion).
func poll(t *testing.T, what string, cond func() bool, diag func() string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s\n%s", what, diag())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestLeases runs the real binary (both builds; and the split one with
// --refresh 10s, which also checks values but never polls the dynamic
// secret) with --refresh leases on
// dynamic credentials of a 6s lease (max 15s), read with a renewable 8s
// token: the lease and the token are renewed; before the max TTL, new
// credentials are read and the command restarted with them; the old
// lease is revoked after the old command was reaped, the new one stays
// alive, also after secrets-init exits; and no lease id or value is in
// any output at debug level.
func TestLeases(t *testing.T) {
	for _, build := range []string{"split", "single", "split --refresh 10s"} {
		t.Run(build, func(t *testing.T) {
			binary, mode := bin, "leases"
			if build == "split --refresh 10s" {
				mode = "10s" // leases and value checks: the dynamic secret is still not polled
			}
			if build == "single" {
				var err error
				if binary, err = singleBinary(); err != nil {
					t.Fatal(err)
				}
			}
			dir := t.TempDir()
			events := filepath.Join(dir, "events")
			status := filepath.Join(dir, "status.json")
			addr, root, token := leaseServer(t, events, leaseTTL, leaseMaxTTL)
			child := `echo "start $DB_USER" >> "$EVENTS"; trap 'echo "stop $DB_USER" >> "$EVENTS"; exit 0' TERM; while :; do sleep 0.1; done`
			cmd := exec.Command(binary, "--refresh", mode, "--log-level", "debug", "--status-file", status, "--stop-timeout", "20s", "--", "/bin/sh", "-c", child)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "VAULT_ADDR=" + addr, "VAULT_TOKEN=" + token, "EVENTS=" + events,
				"DB_USER=vault:database/creds/app#username", "DB_PASS=vault:database/creds/app#password"}
			var stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stderr, &stderr
			cmd.WaitDelay = 5 * time.Second // the command's own processes may hold the pipe
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			t.Cleanup(func() { cmd.Process.Kill() })
			seen := map[string]bool{}
			read := func() string {
				for _, id := range liveLeases(t, root) {
					seen[id] = true
				}
				b, _ := os.ReadFile(events)
				return string(b)
			}
			diag := func() string { return "events:\n" + read() + "\nstderr:\n" + stderr.String() }

			poll(t, "a restart with new credentials and the old lease's revocation", func() bool {
				return strings.Contains(read(), "revoke user-1")
			}, diag)
			lines := strings.Split(strings.TrimSpace(read()), "\n")
			index := func(s string) int {
				for i, l := range lines {
					if l == s {
						return i
					}
				}
				return -1
			}
			if n := strings.Count(read(), "read user-"); n != 2 {
				t.Errorf("events %q: %d reads of the dynamic secret, want 2 (at start, and before the max TTL): it is not polled", lines, n)
			}
			if a, b, c := index("start user-1"), index("stop user-1"), index("revoke user-1"); a < 0 || b < a || c < b {
				t.Errorf("events %q: want start user-1, stop user-1 (the old command ended), then revoke user-1", lines)
			}
			if index("start user-2") < 0 || index("revoke user-2") >= 0 {
				t.Errorf("events %q: want the command restarted with user-2, whose lease is not revoked", lines)
			}
			if live := liveLeases(t, root); len(live) != 1 {
				t.Errorf("%d live leases after the revocation, want 1 (the new one)", len(live))
			}
			out := stderr.String()
			if n := strings.Count(out, "refresh: lease renewed"); n < 2 {
				t.Errorf("%d lease renewals logged before the re-read, want at least 2:\n%s", n, out)
			}
			for _, want := range []string{"refresh: lease ending; reading new credentials", "restarting the command", "superseded lease revoked", "refresh: token renewed"} {
				if !strings.Contains(out, want) {
					t.Errorf("stderr lacks %q:\n%s", want, out)
				}
			}
			poll(t, "the status file's lease expiry", func() bool {
				b, _ := os.ReadFile(status)
				return bytes.Contains(b, []byte(`"lease_expiry": "`))
			}, diag)

			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-exited:
				if err != nil {
					t.Errorf("secrets-init: %v\n%s", err, stderr.String())
				}
			case <-time.After(60 * time.Second):
				t.Fatalf("secrets-init did not exit on SIGTERM")
			}
			// At exit, leases are left alone: the current one is alive.
			if live := liveLeases(t, root); len(live) != 1 {
				t.Errorf("%d live leases after exit, want 1: leases are left alone at exit", len(live))
			}
			read()
			statusFile, _ := os.ReadFile(status)
			out = stderr.String()
			for _, leak := range append([]string{canary, "user-1", "user-2"}, keys(seen)...) {
				if strings.Contains(out, leak) || strings.Contains(string(statusFile), leak) {
					t.Errorf("a value or lease id (%s) is in stderr or the status file:\n%s\n%s", leak, out, statusFile)
				}
			}
			t.Logf("events:\n%s\nstderr:\n%s", read(), out)
			if len(seen) < 2 {
				t.Errorf("saw %d lease ids, want both leases", len(seen))
			}
		})
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// approleLogin returns the role id and a secret id of approle's app role.
func approleLogin(t *testing.T, c *api.Client) (string, string) {
	t.Helper()
	rid, err := c.Logical().Read("auth/approle/role/app/role-id")
	if err != nil {
		t.Fatal(err)
	}
	sid, err := c.Logical().Write("auth/approle/role/app/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	return rid.Data["role_id"].(string), sid.Data["secret_id"].(string)
}

// TestLeasesLoginAgain: a token from an approle login is renewed until
// its max TTL (10s) cuts a renewal; secrets-init then logs in again and,
// since the leases read under the old token end with it, reads new
// credentials (the leases themselves last an hour), restarts the command
// with them and revokes the old lease after the old command was reaped.
func TestLeasesLoginAgain(t *testing.T) {
	dir := t.TempDir()
	events := filepath.Join(dir, "events")
	addr, root, _ := leaseServer(t, events, time.Hour, 2*time.Hour)
	roleID, secretID := approleLogin(t, root)
	child := `echo "start $DB_USER" >> "$EVENTS"; trap 'echo "stop $DB_USER" >> "$EVENTS"; exit 0' TERM; while :; do sleep 0.1; done`
	cmd := exec.Command(bin, "--refresh", "leases", "--log-level", "debug", "--", "/bin/sh", "-c", child)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "VAULT_ADDR=" + addr, "EVENTS=" + events,
		"VAULT_AUTH_METHOD=approle", "VAULT_ROLE_ID=" + roleID, "VAULT_SECRET_ID=" + secretID,
		"DB_USER=vault:database/creds/app#username", "DB_PASS=vault:database/creds/app#password"}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	cmd.WaitDelay = 5 * time.Second // the command's own processes may hold the pipe
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
		cmd.Wait()
	})
	read := func() string { b, _ := os.ReadFile(events); return string(b) }
	diag := func() string { return "events:\n" + read() + "\nstderr:\n" + stderr.String() }
	poll(t, "a new login, new credentials and the old lease's revocation", func() bool {
		return strings.Contains(read(), "revoke user-1")
	}, diag)
	// The command's lines and the revocations, without the engine's reads
	// (which interleave with them), in order.
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(read()), "\n") {
		if !strings.HasPrefix(l, "read ") {
			lines = append(lines, l)
		}
	}
	if n := strings.Count(read(), "read user-"); n < 2 {
		t.Errorf("events %q: %d reads of the dynamic secret, want one at start and one after the new login", read(), n)
	}
	if len(lines) < 3 || lines[0] != "start user-1" || lines[1] != "stop user-1" || !strings.Contains(read(), "start user-2") {
		t.Errorf("events %q: want start user-1, stop user-1, start user-2, revoke user-1", lines)
	}
	out := stderr.String()
	login := strings.Index(out, "refresh: logged in again for a new token")
	renewed := strings.Index(out, "refresh: token renewed")
	reread := strings.Index(out, "refresh: lease ending; reading new credentials")
	revoked := strings.Index(out, "refresh: superseded lease revoked")
	if renewed < 0 || login < renewed || reread < login || revoked < reread {
		t.Errorf("want the token renewed, then a new login, new credentials, and secrets-init revoking the old lease:\n%s", out)
	}
	t.Logf("events:\n%s\nstderr:\n%s", read(), out)
	for _, leak := range []string{canary, "user-1", "user-2", secretID, roleID} {
		if strings.Contains(out, leak) {
			t.Errorf("stderr holds a value or credential (%s):\n%s", leak, out)
		}
	}
}

// TestLeaseRevokedElsewhere: a lease revoked behind secrets-init's back
// (an operator's `vault lease revoke`) makes its next renewal fail; new
// credentials are read at once and the command restarted with them. The
// log line names neither the lease nor a value.
func TestLeaseRevokedElsewhere(t *testing.T) {
	dir := t.TempDir()
	events := filepath.Join(dir, "events")
	addr, root, token := leaseServer(t, events, leaseTTL, time.Hour)
	child := `echo "start $DB_USER" >> "$EVENTS"; trap 'echo "stop $DB_USER" >> "$EVENTS"; exit 0' TERM; while :; do sleep 0.1; done`
	cmd := exec.Command(bin, "--refresh", "leases", "--log-level", "debug", "--", "/bin/sh", "-c", child)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "VAULT_ADDR=" + addr, "VAULT_TOKEN=" + token, "EVENTS=" + events,
		"DB_USER=vault:database/creds/app#username", "DB_PASS=vault:database/creds/app#password"}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
		cmd.Wait()
	})
	read := func() string { b, _ := os.ReadFile(events); return string(b) }
	diag := func() string { return "events:\n" + read() + "\nstderr:\n" + stderr.String() }
	poll(t, "the command's start", func() bool { return strings.Contains(read(), "start user-1") }, diag)
	ids := liveLeases(t, root)
	if len(ids) != 1 {
		t.Fatalf("%d live leases, want 1", len(ids))
	}
	if _, err := root.Logical().Write("sys/leases/revoke-prefix/database/creds/app", nil); err != nil {
		t.Fatal(err)
	}
	poll(t, "new credentials after the lease was revoked elsewhere", func() bool { return strings.Contains(read(), "start user-2") }, diag)
	out := stderr.String()
	if !strings.Contains(out, "refresh: a lease can no longer be renewed; reading new credentials now") || !strings.Contains(out, "HTTP 400") {
		t.Errorf("no line for the lost lease:\n%s", out)
	}
	for _, leak := range []string{canary, "user-1", "user-2", ids[0]} {
		if strings.Contains(out, leak) {
			t.Errorf("stderr holds a value or lease id (%s):\n%s", leak, out)
		}
	}
}

// TestLeaseCheckPlan: `check --refresh 1m` shows a dynamic secret as a
// lease that is renewed, not polled, with its renewals a month.
func TestLeaseCheckPlan(t *testing.T) {
	dir := t.TempDir()
	addr, _, token := leaseServer(t, filepath.Join(dir, "events"), leaseTTL, leaseMaxTTL)
	cmd := exec.Command(bin, "check", "--refresh", "1m")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "VAULT_ADDR=" + addr, "VAULT_TOKEN=" + token,
		"DB_USER=vault:database/creds/app#username", "DB_PASS=vault:database/creds/app#password"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("check: %v\n%s", err, out)
	}
	// 30 days / (2/3 of 6s), once for the one target, and in the total.
	if !strings.Contains(string(out), "a lease: not polled") || strings.Count(string(out), "648000") != 2 ||
		!strings.Contains(string(out), "; 648000 store API calls per instance per month") {
		t.Errorf("check --refresh output:\n%s", out)
	}
	if strings.Contains(string(out), canary) {
		t.Errorf("check prints a value:\n%s", out)
	}
}
