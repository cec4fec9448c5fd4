// Package vaultengines_test runs the built secrets-init binary against a
// real, in-memory Vault (vault.TestCoreUnsealedWithConfig served by
// vaulthttp.TestServer) with Vault's own secrets engines mounted for real:
// transit, for jwe: values whose content key is wrapped with a transit
// RSA key (hcvault://MOUNT/keys/NAME/versions/N), and pki, for the write
// form >>vault:pki/issue/ROLE#KEY#JSON_BODY and the re-issue of its
// certificate under refresh.
//
// It is a module of its own, apart from e2e/vault, because of versions:
// builtin/logical/transit and builtin/logical/pki compile only against the
// sdk their Vault release was cut with, and the newest release whose
// transit and pki compile against a published github.com/hashicorp/vault/sdk
// is v1.19.5, with sdk v0.18.0 (v1.21.4's pki needs sdk v0.21.0, its core
// v0.20.0). e2e/vault follows newer Vault releases for the auth plugins.
package vaultengines_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/builtin/logical/pki"
	"github.com/hashicorp/vault/builtin/logical/transit"
	vaulthttp "github.com/hashicorp/vault/http"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/vault"
)

// canary is part of every encrypted value that an error test could leak.
const canary = "CANARY-5d2e81"

// bin is the secrets-init binary under test, built by TestMain.
var bin string

func TestMain(m *testing.M) {
	if os.Getenv(childVar) == "reader" { // the command of TestReissue
		reader()
		return
	}
	dir, err := os.MkdirTemp("", "secrets-init-e2e-transit")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "secrets-init")
	// The release build (the split one: the Vault KMS runs in the resolver).
	build := exec.Command("scripts/build.sh", bin)
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building secrets-init: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// server is a Vault core with the transit engine mounted at transit/,
// behind a proxy that records the requests secrets-init makes.
type server struct {
	root  *api.Client // talks to Vault directly, as root
	proxy string      // VAULT_ADDR for secrets-init

	mu      sync.Mutex
	reqs    []request
	serials []string // of the certificates issued through the proxy, in order
}

type request struct{ method, path string }

func newServer(t *testing.T) *server {
	t.Helper()
	core, _, token := vault.TestCoreUnsealedWithConfig(t, &vault.CoreConfig{
		// Vault's own engines, as its server binary registers them (pki
		// is there for tests that need certificates).
		LogicalBackends: map[string]logical.Factory{"transit": transit.Factory, "pki": pki.Factory},
		Logger:          hclog.NewNullLogger(),
	})
	ln, addr := vaulthttp.TestServer(t, core)
	t.Cleanup(func() { ln.Close() })
	cfg := api.DefaultConfig()
	cfg.Address = addr
	root, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	root.SetToken(token)
	s := &server{root: root}
	if err := root.Sys().Mount("transit", &api.MountInput{Type: "transit"}); err != nil {
		t.Fatal(err)
	}
	target, _ := url.Parse(addr)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(r *http.Response) error {
		if r.Request.Method != http.MethodPut || !strings.Contains(r.Request.URL.Path, "/issue/") || r.StatusCode != http.StatusOK {
			return nil
		}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return err
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		var answer struct {
			Data struct {
				Serial string `json:"serial_number"`
			}
		}
		json.Unmarshal(b, &answer)
		s.mu.Lock()
		s.serials = append(s.serials, answer.Data.Serial)
		s.mu.Unlock()
		return nil
	}
	px := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.reqs = append(s.reqs, request{r.Method, r.URL.Path})
		s.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(px.Close)
	s.proxy = px.URL
	return s
}

// requests returns and forgets the requests recorded so far.
func (s *server) requests() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.reqs
	s.reqs = nil
	return r
}

// issued returns the serial numbers of the certificates issued so far.
func (s *server) issued() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.serials...)
}

// count is how many recorded requests had method and path.
func count(reqs []request, method, path string) int {
	n := 0
	for _, r := range reqs {
		if r.method == method && r.path == path {
			n++
		}
	}
	return n
}

func (s *server) write(t *testing.T, path string, data map[string]any) *api.Secret {
	t.Helper()
	sec, err := s.root.Logical().Write(path, data)
	if err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	return sec
}

// token makes a token whose policies are Vault's default and the one
// given (an HCL text), named name.
func (s *server) token(t *testing.T, name, policy string) string {
	t.Helper()
	if err := s.root.Sys().PutPolicy(name, policy); err != nil {
		t.Fatalf("Vault refuses policy %s: %v\n%s", name, err, policy)
	}
	sec, err := s.root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{name}})
	if err != nil {
		t.Fatal(err)
	}
	return sec.Auth.ClientToken
}

// secretsInit runs the binary with args, an environment built from
// scratch (PATH, an empty HOME, VAULT_ADDR: the proxy, and vars) and
// stdin.
func (s *server) secretsInit(t *testing.T, vars map[string]string, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "VAULT_ADDR=" + s.proxy}
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running secrets-init: %v", err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

// encrypt runs `secrets-init encrypt --key KEYURI [extra]` on plain with
// the root token; it returns the jwe: reference, stderr and the exit
// code, and checks stderr holds no canary.
func (s *server) encrypt(t *testing.T, keyURI, plain string, extra ...string) (string, string, int) {
	t.Helper()
	out, stderr, code := s.secretsInit(t, map[string]string{"VAULT_TOKEN": s.root.Token()}, plain, append([]string{"encrypt", "--key", keyURI}, extra...)...)
	if strings.Contains(stderr, canary) {
		t.Errorf("encrypt's stderr holds the value:\n%s", stderr)
	}
	return strings.TrimSpace(out), stderr, code
}

// result is one run of `secrets-init [flags] -- env`.
type result struct {
	env    map[string]string // the child's environment (when it ran)
	stderr string
	code   int
}

func (s *server) run(t *testing.T, vars map[string]string, flags ...string) result {
	t.Helper()
	out, stderr, code := s.secretsInit(t, vars, "", append(flags, "--", "env")...)
	r := result{env: map[string]string{}, stderr: stderr, code: code}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			r.env[k] = v
		}
	}
	return r
}

// ok checks the run succeeded, the child saw want, and stderr holds no
// canary.
func (r result) ok(t *testing.T, want map[string]string) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, canary) {
		t.Errorf("stderr holds a secret value:\n%s", r.stderr)
	}
	for k, v := range want {
		if got, ok := r.env[k]; !ok || got != v {
			t.Errorf("child's %s = %q (set: %v), want %q", k, got, ok, v)
		}
	}
}

// failed checks the run failed closed (exit 125, no command run) with a
// line for name holding every one of words, and no canary anywhere.
func (r result) failed(t *testing.T, name string, words ...string) {
	t.Helper()
	if r.code != 125 {
		t.Fatalf("exit %d, want 125; stderr:\n%s", r.code, r.stderr)
	}
	if len(r.env) != 0 {
		t.Errorf("the command ran: %v", r.env)
	}
	if strings.Contains(r.stderr, canary) {
		t.Errorf("stderr holds a secret value:\n%s", r.stderr)
	}
	var line string
	for _, l := range strings.Split(r.stderr, "\n") {
		if strings.Contains(l, name+": ") {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("no error line for %s in stderr:\n%s", name, r.stderr)
	}
	for _, w := range words {
		if !strings.Contains(line, w) {
			t.Errorf("error line %q lacks %q", line, w)
		}
	}
}
