// Package vault_test runs the built secrets-init binary against a real,
// in-memory Vault server (vault.TestCoreUnsealedWithConfig served by
// vaulthttp.TestServer) with the real approle, jwt and kubernetes auth
// plugins. A recording reverse proxy in front of the server counts the
// requests secrets-init makes.
package vault_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
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
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/hashicorp/go-hclog"
	jwtauth "github.com/hashicorp/vault-plugin-auth-jwt"
	kubeauth "github.com/hashicorp/vault-plugin-auth-kubernetes"
	"github.com/hashicorp/vault/api"
	credAppRole "github.com/hashicorp/vault/builtin/credential/approle"
	awsauth "github.com/hashicorp/vault/builtin/credential/aws"
	vaulthttp "github.com/hashicorp/vault/http"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/hashicorp/vault/vault"
)

// canary is part of every stored value that an error test could leak.
const canary = "CANARY-7f3a9c"

// bin is the secrets-init binary under test, built by TestMain.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "secrets-init-e2e-vault")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "secrets-init")
	// The release build (the split one: the Vault store runs in the resolver).
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

// server is a Vault core behind a recording proxy.
type server struct {
	core  *vault.Core
	root  *api.Client // talks to Vault directly, as root
	proxy string      // VAULT_ADDR for secrets-init
	addr  string      // the server's own address

	mu   sync.Mutex
	reqs []request // what went through the proxy
}

type request struct{ method, path, token string }

// newServer starts an unsealed in-memory Vault with the approle, jwt and
// kubernetes auth plugins and a dynamic-secrets engine available.
func newServer(t *testing.T) *server {
	t.Helper()
	core, _, token := vault.TestCoreUnsealedWithConfig(t, &vault.CoreConfig{
		CredentialBackends: map[string]logical.Factory{
			"approle":    credAppRole.Factory,
			"jwt":        jwtauth.Factory,
			"kubernetes": kubeauth.Factory,
			"aws":        awsauth.Factory,
		},
		LogicalBackends: map[string]logical.Factory{"dynamic": dynamicFactory},
		Logger:          hclog.NewNullLogger(),
	})
	ln, addr := vaulthttp.TestServer(t, core)
	t.Cleanup(func() { ln.Close() })
	s := &server{core: core, addr: addr}
	cfg := api.DefaultConfig()
	cfg.Address = addr
	root, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	root.SetToken(token)
	s.root = root
	target, _ := url.Parse(addr)
	rp := httputil.NewSingleHostReverseProxy(target)
	px := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.reqs = append(s.reqs, request{r.Method, r.URL.Path, r.Header.Get("X-Vault-Token")})
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

// dynamicFactory is a secrets engine that, like database/creds, issues new
// credentials with a lease at every read of creds/app.
func dynamicFactory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	var n atomic.Int64
	b := &framework.Backend{BackendType: logical.TypeLogical}
	b.Secrets = []*framework.Secret{{
		Type:   "creds",
		Fields: map[string]*framework.FieldSchema{},
		Revoke: func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
			return nil, nil
		},
	}}
	b.Paths = []*framework.Path{{
		Pattern: "creds/app",
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{Callback: func(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
				i := n.Add(1)
				resp := b.Secret("creds").Response(map[string]any{
					"username": fmt.Sprintf("user-%d", i),
					"password": fmt.Sprintf("pass-%d-%s", i, canary),
				}, nil)
				resp.Secret.TTL = time.Hour
				return resp, nil
			}},
		},
	}}
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}

// result is one run of secrets-init.
type result struct {
	env    map[string]string // the child's environment (when it ran)
	stderr string
	code   int
}

// run runs `secrets-init [flags] -- env` with an environment built from
// scratch: PATH, HOME (an empty directory unless given), VAULT_ADDR (the
// proxy) and vars.
func (s *server) run(t *testing.T, vars map[string]string, flags ...string) result {
	t.Helper()
	env := map[string]string{"PATH": os.Getenv("PATH"), "HOME": t.TempDir(), "VAULT_ADDR": s.proxy}
	for k, v := range vars {
		env[k] = v
	}
	var list []string
	for k, v := range env {
		if v != "\x00unset" {
			list = append(list, k+"="+v)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(flags, "--", "env")...)
	cmd.Env = list
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stderr: stderr.String(), env: map[string]string{}}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("running secrets-init: %v", err)
	}
	for _, line := range strings.Split(stdout.String(), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			r.env[k] = v
		}
	}
	return r
}

// leaseWarnings are the lines of stderr that warn about a dynamic
// secret's lease.
func leaseWarnings(stderr string) []string {
	var out []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.Contains(l, "dynamic secret:") {
			out = append(out, l)
		}
	}
	return out
}

// ok checks the run succeeded and the child saw want.
func (r result) ok(t *testing.T, want map[string]string) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	for k, v := range want {
		if got, ok := r.env[k]; !ok || got != v {
			t.Errorf("child's %s = %q (set: %v), want %q", k, got, ok, v)
		}
	}
}

// failed checks the run failed closed with a line for name holding every
// one of words, and no canary anywhere.
func (r result) failed(t *testing.T, name string, words ...string) {
	t.Helper()
	if r.code != 125 {
		t.Fatalf("exit %d, want 125; stderr:\n%s", r.code, r.stderr)
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

// setup writes the fixtures: KV v1 at secret/, KV v2 at kv/ and
// team/a/kv/, a dynamic engine at database/, policies and auth methods.
type fixture struct {
	reader      string // a token with the reader policy
	roleID      string
	secretID    string
	jwt         string // signed for the jwt auth method
	saToken     string // a service-account token for the kubernetes auth method
	reviews     *atomic.Int64
	stsCalls    *atomic.Int64
	deletedTime string
}

func (s *server) setup(t *testing.T) fixture {
	t.Helper()
	var f fixture
	sys := s.root.Sys()
	for path, version := range map[string]string{"kv": "2", "team/a/kv": "2"} {
		if err := sys.Mount(path, &api.MountInput{Type: "kv", Options: map[string]string{"version": version}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := sys.Mount("database", &api.MountInput{Type: "dynamic"}); err != nil {
		t.Fatal(err)
	}
	// KV v2 mounts upgrade in the background: wait until they take writes.
	deadline := time.Now().Add(30 * time.Second)
	for _, p := range []string{"kv/data/probe", "team/a/kv/data/probe"} {
		for {
			_, err := s.root.Logical().Write(p, map[string]any{"data": map[string]any{"x": "y"}})
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("KV v2 mount never became ready: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	s.write(t, "secret/app", map[string]any{"user": "alice", "pass": "v1-" + canary})
	s.write(t, "kv/data/app", map[string]any{"data": map[string]any{"password": "one-" + canary}})
	s.write(t, "kv/data/app", map[string]any{"data": map[string]any{"password": "two-" + canary, "port": 5432, "tls": map[string]any{"on": true}}})
	s.write(t, "kv/data/private", map[string]any{"data": map[string]any{"key": "private-" + canary}})
	s.write(t, "kv/data/gone", map[string]any{"data": map[string]any{"key": "gone-" + canary}})
	if _, err := s.root.Logical().Delete("kv/data/gone"); err != nil {
		t.Fatal(err)
	}
	s.write(t, "kv/data/shredded", map[string]any{"data": map[string]any{"key": "shredded-" + canary}})
	s.write(t, "kv/destroy/shredded", map[string]any{"versions": []int{1}})
	s.write(t, "team/a/kv/data/svc", map[string]any{"data": map[string]any{"token": "team-" + canary}})

	if err := sys.PutPolicy("reader", `
path "secret/*"          { capabilities = ["read"] }
path "kv/data/app"       { capabilities = ["read"] }
path "kv/data/gone"      { capabilities = ["read"] }
path "kv/data/shredded"  { capabilities = ["read"] }
path "kv/data/missing"   { capabilities = ["read"] }
path "team/a/kv/data/*"  { capabilities = ["read"] }
path "database/creds/app" { capabilities = ["read"] }
`); err != nil {
		t.Fatal(err)
	}
	tok, err := s.root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"reader"}})
	if err != nil {
		t.Fatal(err)
	}
	f.reader = tok.Auth.ClientToken

	// approle
	if err := sys.EnableAuthWithOptions("approle", &api.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatal(err)
	}
	s.write(t, "auth/approle/role/app", map[string]any{"token_policies": "reader"})
	rid, err := s.root.Logical().Read("auth/approle/role/app/role-id")
	if err != nil {
		t.Fatal(err)
	}
	f.roleID = rid.Data["role_id"].(string)
	f.secretID = s.write(t, "auth/approle/role/app/secret-id", nil).Data["secret_id"].(string)

	// jwt, with a key of our own
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := sys.EnableAuthWithOptions("jwt", &api.EnableAuthOptions{Type: "jwt"}); err != nil {
		t.Fatal(err)
	}
	s.write(t, "auth/jwt/config", map[string]any{"jwt_validation_pubkeys": []string{string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))}})
	s.write(t, "auth/jwt/role/app", map[string]any{"role_type": "jwt", "bound_audiences": "vault", "user_claim": "sub", "token_policies": "reader"})
	f.jwt = sign(t, key, map[string]any{"sub": "ci", "aud": "vault", "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()})

	// kubernetes, against a fake TokenReview API that accepts f.saToken
	f.saToken = sign(t, key, map[string]any{
		"iss":                                    "kubernetes/serviceaccount",
		"kubernetes.io/serviceaccount/namespace": "default",
		"kubernetes.io/serviceaccount/service-account.name": "app",
		"kubernetes.io/serviceaccount/service-account.uid":  "uid-1",
	})
	f.reviews = new(atomic.Int64)
	kube := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var review struct {
			Spec struct{ Token string } `json:"spec"`
		}
		if r.URL.Path != "/apis/authentication.k8s.io/v1/tokenreviews" || json.NewDecoder(r.Body).Decode(&review) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		f.reviews.Add(1)
		status := map[string]any{"authenticated": false}
		if review.Spec.Token == f.saToken {
			status = map[string]any{"authenticated": true, "user": map[string]any{"username": "system:serviceaccount:default:app", "uid": "uid-1"}}
		}
		json.NewEncoder(w).Encode(map[string]any{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": status})
	}))
	t.Cleanup(kube.Close)
	if err := sys.EnableAuthWithOptions("k8s", &api.EnableAuthOptions{Type: "kubernetes"}); err != nil {
		t.Fatal(err)
	}
	s.write(t, "auth/k8s/config", map[string]any{"kubernetes_host": kube.URL, "disable_local_ca_jwt": true, "token_reviewer_jwt": "reviewer"})
	s.write(t, "auth/k8s/role/app", map[string]any{"bound_service_account_names": "app", "bound_service_account_namespaces": "default", "token_policies": "reader"})

	// aws (iam), against a fake STS that checks the signature
	f.stsCalls = new(atomic.Int64)
	sts := httptest.NewServer(fakeSTS(t, f.stsCalls))
	t.Cleanup(sts.Close)
	if err := sys.EnableAuthWithOptions("aws", &api.EnableAuthOptions{Type: "aws"}); err != nil {
		t.Fatal(err)
	}
	s.write(t, "auth/aws/config/client", map[string]any{"sts_endpoint": sts.URL, "sts_region": "us-east-1"})
	s.write(t, "auth/aws/role/app", map[string]any{"auth_type": "iam", "bound_iam_principal_arn": "arn:aws:iam::123456789012:role/app", "resolve_aws_unique_ids": false, "token_policies": "reader"})
	return f
}

// The AWS credentials secrets-init signs its aws-iam login with.
const (
	awsKeyID  = "AKIDEXAMPLE"
	awsSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
)

// fakeSTS answers the sts:GetCallerIdentity calls Vault forwards, with
// role/app's identity when the request is signed with awsSecret: it signs
// the same request again and compares.
func fakeSTS(t *testing.T, calls *atomic.Int64) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "text/xml")
		body, _ := io.ReadAll(r.Body)
		auth := r.Header.Get("Authorization")
		_, signed, _ := strings.Cut(auth, "SignedHeaders=")
		signed, _, _ = strings.Cut(signed, ",")
		again, _ := http.NewRequest(r.Method, "https://"+r.Host+"/", bytes.NewReader(body))
		for _, h := range strings.Split(signed, ";") {
			if h != "host" {
				again.Header.Set(h, r.Header.Get(h))
			}
		}
		when, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
		sum := sha256.Sum256(body)
		if err == nil {
			err = v4.NewSigner().SignHTTP(r.Context(), aws.Credentials{AccessKeyID: awsKeyID, SecretAccessKey: awsSecret}, again, hex.EncodeToString(sum[:]), "sts", "us-east-1", when)
		}
		if err != nil || auth == "" || again.Header.Get("Authorization") != auth || string(body) != "Action=GetCallerIdentity&Version=2011-06-15" {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `<ErrorResponse><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>bad signature</Message></Error></ErrorResponse>`)
			return
		}
		fmt.Fprint(w, `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult>`+
			`<Arn>arn:aws:sts::123456789012:assumed-role/app/session</Arn><UserId>AROAEXAMPLE:session</UserId><Account>123456789012</Account>`+
			`</GetCallerIdentityResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></GetCallerIdentityResponse>`)
	}
}

// sign makes an RS256 JWT with claims.
func sign(t *testing.T, key *rsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := josejwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// file writes content to a new file and returns its path.
func file(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVault(t *testing.T) {
	s := newServer(t)
	f := s.setup(t)
	tok := map[string]string{"VAULT_TOKEN": f.reader}
	with := func(base map[string]string, kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}

	t.Run("KVv1", func(t *testing.T) {
		s.run(t, with(tok, "USER", "vault:secret/app#user", "ALL", "vault:secret/app")).ok(t, map[string]string{
			"USER": "alice",
			"ALL":  `{"pass":"v1-` + canary + `","user":"alice"}`,
		})
	})

	t.Run("KVv2", func(t *testing.T) {
		s.requests()
		r := s.run(t, with(tok,
			"SHORT", "vault:kv/app#password",
			"LONG", "vault:kv/data/app#password",
			"SLASHES", "vault:/kv/app/#password",
			"V1", "vault:kv/app#password#1",
			"V2", "vault:kv/data/app#password#2",
			"PORT", "vault:kv/app#port",
			"TLS", "vault:kv/app#tls",
			"ALL", "vault:kv/app",
			"ALL1", "vault:kv/app##1",
			"TEAM", "vault:team/a/kv/svc#token",
		))
		r.ok(t, map[string]string{
			"SHORT":   "two-" + canary,
			"LONG":    "two-" + canary,
			"SLASHES": "two-" + canary,
			"V1":      "one-" + canary,
			"V2":      "two-" + canary,
			"PORT":    "5432",
			"TLS":     `{"on":true}`,
			"ALL":     `{"password":"two-` + canary + `","port":5432,"tls":{"on":true}}`,
			"ALL1":    `{"password":"one-` + canary + `"}`,
			"TEAM":    "team-" + canary,
		})
		reqs := s.requests()
		// kv/app, kv/data/app (the same read), version 1 and version 2
		if n := count(reqs, "GET", "/v1/kv/data/app"); n != 3 {
			t.Errorf("%d reads of kv/data/app, want 3 (latest, version 1, version 2): %v", n, reqs)
		}
		var preflights []string
		for _, r := range reqs {
			if p, ok := strings.CutPrefix(r.path, "/v1/sys/internal/ui/mounts/"); ok {
				preflights = append(preflights, p)
			}
		}
		if len(preflights) != 2 { // one for kv/, one for team/a/kv/
			t.Errorf("mount lookups %v, want one per mount", preflights)
		}
	})

	t.Run("DynamicReadOncePerPath", func(t *testing.T) {
		s.requests()
		r := s.run(t, with(tok, "DB_USER", "vault:database/creds/app#username", "DB_PASS", "vault:database/creds/app#password", "DB", "vault:database/creds/app"))
		r.ok(t, nil)
		reqs := s.requests()
		if n := count(reqs, "GET", "/v1/database/creds/app"); n != 1 {
			t.Fatalf("%d reads of database/creds/app, want 1", n)
		}
		user, pass := r.env["DB_USER"], r.env["DB_PASS"]
		n := strings.TrimPrefix(user, "user-")
		if !strings.HasPrefix(pass, "pass-"+n+"-") || r.env["DB"] != fmt.Sprintf(`{"password":%q,"username":%q}`, pass, user) {
			t.Errorf("user %q, password %q and %q are not from one lease", user, pass, r.env["DB"])
		}
		// Refresh is off: one warning per variable, naming it and when
		// its credentials stop, with no value and no lease id.
		warnings := leaseWarnings(r.stderr)
		for _, name := range []string{"DB_USER", "DB_PASS", "DB"} {
			n := 0
			for _, w := range warnings {
				if strings.Contains(w, " variable="+name+" ") {
					n++
					if !strings.Contains(w, "reference=vault:database/creds/app") || !strings.Contains(w, " expires=") || !strings.Contains(w, "lease=1h0m0s") {
						t.Errorf("warning %q lacks the reference, the end or the lease", w)
					}
				}
			}
			if n != 1 {
				t.Errorf("%d lease warnings for %s, want 1; stderr:\n%s", n, name, r.stderr)
			}
		}
		if len(warnings) != 3 {
			t.Errorf("%d lease warnings, want 3; stderr:\n%s", len(warnings), r.stderr)
		}
		if strings.Contains(r.stderr, canary) || strings.Contains(r.stderr, user) || strings.Contains(r.stderr, "database/creds/app/") {
			t.Errorf("stderr holds a value or a lease id:\n%s", r.stderr)
		}
	})

	t.Run("NoLeaseWarningWithRefreshOrKV", func(t *testing.T) {
		r := s.run(t, with(tok, "DB_USER", "vault:database/creds/app#username"), "--refresh", "1m")
		r.ok(t, nil)
		if w := leaseWarnings(r.stderr); len(w) != 0 {
			t.Errorf("with --refresh: lease warnings %q", w)
		}
		r = s.run(t, with(tok, "USER", "vault:secret/app#user", "P", "vault:kv/app#password"))
		r.ok(t, nil)
		if w := leaseWarnings(r.stderr); len(w) != 0 {
			t.Errorf("KV reads: lease warnings %q", w)
		}
	})

	t.Run("AuthInputsNotPassed", func(t *testing.T) {
		inputs := with(tok, "X", "vault:secret/app#user",
			"VAULT_TOKEN_FILE", "/nonexistent", "VAULT_ROLE", "r", "VAULT_PATH", "p",
			"VAULT_ROLE_ID", "rid", "VAULT_SECRET_ID", "sid", "VAULT_JWT", "j", "VAULT_REVOKE_TOKEN", "false",
			"VAULT_AUTH_METHOD", "token", "VAULT_NAMESPACE", "")
		r := s.run(t, inputs)
		r.ok(t, map[string]string{"X": "alice", "VAULT_ADDR": s.proxy})
		for _, k := range []string{"VAULT_TOKEN", "VAULT_TOKEN_FILE", "VAULT_ROLE", "VAULT_PATH", "VAULT_ROLE_ID", "VAULT_SECRET_ID", "VAULT_JWT", "VAULT_REVOKE_TOKEN", "VAULT_AUTH_METHOD"} {
			if v, ok := r.env[k]; ok {
				t.Errorf("the child got %s=%q", k, v)
			}
		}
		// unless passed through, as vault-env's VAULT_ENV_PASSTHROUGH does
		s.run(t, with(tok, "X", "vault:secret/app#user", "VAULT_ENV_PASSTHROUGH", "VAULT_TOKEN")).
			ok(t, map[string]string{"X": "alice", "VAULT_TOKEN": f.reader})
	})

	t.Run("TokenFile", func(t *testing.T) {
		s.run(t, map[string]string{"VAULT_TOKEN_FILE": file(t, f.reader), "X": "vault:secret/app#user"}).ok(t, map[string]string{"X": "alice"})
	})

	t.Run("HomeVaultToken", func(t *testing.T) {
		home := t.TempDir()
		if err := os.WriteFile(filepath.Join(home, ".vault-token"), []byte(f.reader), 0o600); err != nil {
			t.Fatal(err)
		}
		s.run(t, map[string]string{"HOME": home, "X": "vault:secret/app#user"}).ok(t, map[string]string{"X": "alice"})
	})

	t.Run("AppRole", func(t *testing.T) {
		s.requests()
		s.run(t, map[string]string{"VAULT_AUTH_METHOD": "approle", "VAULT_ROLE_ID": f.roleID, "VAULT_SECRET_ID": f.secretID, "X": "vault:kv/app#password"}).
			ok(t, map[string]string{"X": "two-" + canary})
		if n := count(s.requests(), "PUT", "/v1/auth/approle/login"); n != 1 {
			t.Errorf("%d approle logins, want 1", n)
		}
		// VAULT_ROLE_ID alone selects approle; the secret id from a file.
		s.run(t, map[string]string{"VAULT_ROLE_ID": f.roleID, "VAULT_SECRET_ID_FILE": file(t, f.secretID), "X": "vault:kv/app#password"}).
			ok(t, map[string]string{"X": "two-" + canary})
	})

	t.Run("JWT", func(t *testing.T) {
		s.run(t, map[string]string{"VAULT_AUTH_METHOD": "jwt", "VAULT_ROLE": "app", "VAULT_JWT_FILE": file(t, f.jwt), "X": "vault:secret/app#user"}).
			ok(t, map[string]string{"X": "alice"})
	})

	t.Run("Kubernetes", func(t *testing.T) {
		before := f.reviews.Load()
		s.run(t, map[string]string{"VAULT_AUTH_METHOD": "kubernetes", "VAULT_PATH": "k8s", "VAULT_ROLE": "app", "VAULT_JWT_FILE": file(t, f.saToken), "X": "vault:secret/app#user"}).
			ok(t, map[string]string{"X": "alice"})
		if f.reviews.Load() == before {
			t.Error("the kubernetes auth method made no TokenReview")
		}
	})

	t.Run("AWSIAM", func(t *testing.T) {
		aws := map[string]string{"VAULT_AUTH_METHOD": "aws-iam", "VAULT_ROLE": "app", "AWS_ACCESS_KEY_ID": awsKeyID,
			"AWS_SECRET_ACCESS_KEY": awsSecret, "AWS_EC2_METADATA_DISABLED": "true", "X": "vault:secret/app#user"}
		before := f.stsCalls.Load()
		s.run(t, aws).ok(t, map[string]string{"X": "alice"})
		if f.stsCalls.Load() == before {
			t.Error("Vault made no STS call")
		}
		aws["AWS_SECRET_ACCESS_KEY"] = "wrong"
		s.run(t, aws).failed(t, "X", "aws-iam", "auth/aws")
	})

	t.Run("RevokeToken", func(t *testing.T) {
		// a token secrets-init logged in with
		s.requests()
		s.run(t, map[string]string{"VAULT_ROLE_ID": f.roleID, "VAULT_SECRET_ID": f.secretID, "VAULT_REVOKE_TOKEN": "true", "X": "vault:secret/app#user"}).
			ok(t, map[string]string{"X": "alice"})
		var used string
		for _, r := range s.requests() {
			if r.path == "/v1/auth/token/revoke-self" {
				used = r.token
			}
		}
		if used == "" {
			t.Fatal("no revoke-self call")
		}
		if _, err := s.root.Auth().Token().Lookup(used); err == nil {
			t.Error("the login token still works after VAULT_REVOKE_TOKEN=true")
		}
		// a given token
		given, err := s.root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"reader"}})
		if err != nil {
			t.Fatal(err)
		}
		s.run(t, map[string]string{"VAULT_TOKEN": given.Auth.ClientToken, "VAULT_REVOKE_TOKEN": "true", "X": "vault:secret/app#user"}).
			ok(t, map[string]string{"X": "alice"})
		if _, err := s.root.Auth().Token().Lookup(given.Auth.ClientToken); err == nil {
			t.Error("VAULT_TOKEN still works after VAULT_REVOKE_TOKEN=true")
		}
		// without the variable, the token lives on
		s.run(t, with(tok, "X", "vault:secret/app#user")).ok(t, nil)
		if _, err := s.root.Auth().Token().Lookup(f.reader); err != nil {
			t.Errorf("the token was revoked without VAULT_REVOKE_TOKEN: %v", err)
		}
	})

	t.Run("Errors", func(t *testing.T) {
		for _, c := range []struct {
			name  string
			env   map[string]string
			words []string
		}{
			{"PermissionDenied", with(tok, "X", "vault:kv/private#key"), []string{"permission denied", `"read"`, "kv/data/private"}},
			{"NoMount", with(tok, "X", "vault:nomount/x#key"), []string{"permission denied", `"read"`, "nomount/x", "no secrets engine"}},
			{"PathNotFound", with(tok, "X", "vault:kv/missing#key"), []string{"not found", "kv/data/missing"}},
			{"KVv1NotFound", with(tok, "X", "vault:secret/missing"), []string{"not found", "secret/missing"}},
			{"VersionNotFound", with(tok, "X", "vault:kv/app#password#99"), []string{"version 99 not found"}},
			{"VersionOnKVv1", with(tok, "X", "vault:secret/app#user#1"), []string{"KV v2"}},
			{"Deleted", with(tok, "X", "vault:kv/gone#key"), []string{"version 1", "was deleted"}},
			{"Destroyed", with(tok, "X", "vault:kv/shredded#key#1"), []string{"version 1", "destroyed"}},
			{"KeyNotFound", with(tok, "X", "vault:kv/app#nokey"), []string{"nokey", "password"}},
			{"BadToken", map[string]string{"VAULT_TOKEN": "hvs.bogus", "X": "vault:kv/app#password"}, []string{"permission denied"}},
			{"BadSecretID", map[string]string{"VAULT_ROLE_ID": f.roleID, "VAULT_SECRET_ID": "wrong-" + canary, "X": "vault:kv/app#password"}, []string{"approle", "auth/approle", "invalid"}},
			{"BadJWT", map[string]string{"VAULT_AUTH_METHOD": "jwt", "VAULT_ROLE": "app", "VAULT_JWT": "not-a-jwt-" + canary, "X": "vault:kv/app"}, []string{"jwt", "auth/jwt"}},
			{"NoJWTFile", map[string]string{"VAULT_AUTH_METHOD": "jwt", "VAULT_ROLE": "app", "VAULT_JWT_FILE": "/nonexistent/jwt", "X": "vault:kv/app"}, []string{"/nonexistent/jwt"}},
			{"NoCredentials", map[string]string{"X": "vault:kv/app"}, []string{"no Vault credentials", "VAULT_TOKEN"}},
			{"UnknownMethod", map[string]string{"VAULT_AUTH_METHOD": "ldap", "X": "vault:kv/app"}, []string{"ldap"}},
		} {
			t.Run(c.name, func(t *testing.T) {
				s.run(t, c.env).failed(t, "X", c.words...)
			})
		}
	})

	t.Run("Optional", func(t *testing.T) {
		r := s.run(t, with(tok, "X", "vault:kv/missing#key?optional", "G", "vault:kv/gone#key?optional", "Y", "vault:secret/app#user"))
		r.ok(t, map[string]string{"Y": "alice"})
		for _, k := range []string{"X", "G"} {
			if _, ok := r.env[k]; ok {
				t.Errorf("%s is set", k)
			}
		}
	})
}

func TestUnreachable(t *testing.T) {
	s := &server{proxy: "http://127.0.0.1:1"}
	r := s.run(t, map[string]string{"VAULT_TOKEN": "t", "X": "vault:kv/app"}, "--timeout=2s")
	r.failed(t, "X", "cannot reach Vault at http://127.0.0.1:1", "VAULT_ADDR", "connection refused", "deadline")
}

func TestSealed(t *testing.T) {
	s := newServer(t)
	if err := vault.TestCoreSeal(s.core); err != nil {
		t.Fatal(err)
	}
	r := s.run(t, map[string]string{"VAULT_TOKEN": "t", "X": "vault:kv/app", "Y": "vault:secret/x#k"}, "--timeout=2s")
	r.failed(t, "X", "sealed", s.proxy, "deadline")
	r.failed(t, "Y", "sealed")
	if slices.ContainsFunc(s.requests(), func(r request) bool { return r.path == "/v1/kv/data/app" }) {
		t.Error("read a sealed Vault's data path")
	}
}

func TestTLS(t *testing.T) {
	s := newServer(t)
	s.write(t, "secret/app", map[string]any{"user": "alice", "pass": canary})
	target, _ := url.Parse(s.addr)
	px := httptest.NewTLSServer(httputil.NewSingleHostReverseProxy(target))
	t.Cleanup(px.Close)
	s.proxy = px.URL
	ca := file(t, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: px.Certificate().Raw})))
	vars := map[string]string{"VAULT_TOKEN": s.root.Token(), "X": "vault:secret/app#user"}
	s.run(t, vars).failed(t, "X", "unknown authority", "VAULT_CACERT")
	vars["VAULT_CACERT"] = ca
	s.run(t, vars).ok(t, map[string]string{"X": "alice"})
}
