package vault

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/secrets-init/secrets-init/provider"
)

// canary is in every payload an error test could leak.
const canary = "CANARY-51c0"

func TestAPIPath(t *testing.T) {
	kv2 := mount{path: "secret/", kv: 2}
	team := mount{path: "team/a/kv/", kv: 2}
	for _, c := range []struct {
		m          mount
		name, want string
	}{
		{kv2, "secret/app", "secret/data/app"},
		{kv2, "secret/data/app", "secret/data/app"},
		{kv2, "secret/a/b", "secret/data/a/b"},
		{team, "team/a/kv/svc", "team/a/kv/data/svc"},
		{mount{path: "secret/", kv: 1}, "secret/app", "secret/app"},
		{mount{path: "database/"}, "database/creds/app", "database/creds/app"},
	} {
		if got := c.m.apiPath(c.name); got != c.want {
			t.Errorf("%+v.apiPath(%q) = %q, want %q", c.m, c.name, got, c.want)
		}
	}
}

func TestParseMount(t *testing.T) {
	secret := func(data map[string]any) *api.Secret { return &api.Secret{Data: data} }
	for _, c := range []struct {
		name   string
		secret *api.Secret
		want   mount
	}{
		{"secret/app", nil, mount{"secret/", 1}}, // a Vault without the endpoint
		{"secret/app", secret(map[string]any{"path": "secret/", "type": "kv", "options": map[string]any{"version": "2"}}), mount{"secret/", 2}},
		{"secret/app", secret(map[string]any{"path": "secret/", "type": "kv", "options": map[string]any{"version": "1"}}), mount{"secret/", 1}},
		{"secret/app", secret(map[string]any{"path": "secret/", "type": "kv", "options": nil}), mount{"secret/", 1}},
		{"old/app", secret(map[string]any{"path": "old/", "type": "generic"}), mount{"old/", 1}},
		{"team/a/kv/x", secret(map[string]any{"path": "team/a/kv/", "type": "kv", "options": map[string]any{"version": "2"}}), mount{"team/a/kv/", 2}},
		{"database/creds/app", secret(map[string]any{"path": "database/", "type": "database"}), mount{"database/", 0}},
		{"ns1/secret/app", secret(map[string]any{"path": "secret/", "type": "kv", "options": map[string]any{"version": "2"}}), mount{"ns1/secret/", 2}},
		{"secret", secret(map[string]any{"path": "secret/", "type": "kv"}), mount{"secret/", 1}},
		{"x/y", secret(map[string]any{"type": "kv"}), mount{"x/", 1}},
		{"x/y", secret(map[string]any{"path": "other/", "type": "kv"}), mount{"x/", 1}},
	} {
		if got := parseMount(c.secret, c.name); got != c.want {
			t.Errorf("parseMount(%v, %q) = %+v, want %+v", c.secret, c.name, got, c.want)
		}
	}
}

func TestMountCacheKnown(t *testing.T) {
	var c mountCache
	c.mounts = []mount{{"secret/", 2}, {"team/", 1}, {"team/a/kv/", 2}}
	for name, want := range map[string]string{
		"secret/app":      "secret/",
		"secret":          "secret/",
		"team/a/kv/x":     "team/a/kv/",
		"team/a/other":    "team/",
		"secretx/app":     "",
		"database/creds/": "",
	} {
		got, ok := c.known(name)
		if got.path != want || ok != (want != "") {
			t.Errorf("known(%q) = %+v, %v; want %q", name, got, ok, want)
		}
	}
}

func TestDecode(t *testing.T) {
	kv2 := func(data any, meta map[string]any) *api.Secret {
		return &api.Secret{Data: map[string]any{"data": data, "metadata": meta}}
	}
	for _, c := range []struct {
		name         string
		secret       *api.Secret
		kv2          bool
		version      string
		want, served string
		notFound     bool
		errHas       string
	}{
		{name: "kv1", secret: &api.Secret{Data: map[string]any{"b": "x", "a": json.Number("5")}}, want: `{"a":5,"b":"x"}`},
		{name: "kv1 empty", secret: &api.Secret{}, want: `{}`},
		{name: "kv2", secret: kv2(map[string]any{"k": canary}, map[string]any{"version": json.Number("3")}), kv2: true, want: `{"k":"` + canary + `"}`, served: "3"},
		{name: "missing", notFound: true, errHas: "not found at p"},
		{name: "missing version", version: "9", kv2: true, notFound: true, errHas: "version 9 not found at p"},
		{name: "deleted", secret: kv2(nil, map[string]any{"version": json.Number("2"), "deletion_time": "2026-01-02T03:04:05Z"}), kv2: true, notFound: true, errHas: "version 2 at p was deleted at 2026-01-02T03:04:05Z"},
		{name: "destroyed", secret: kv2(nil, map[string]any{"version": json.Number("1"), "destroyed": true, "deletion_time": ""}), kv2: true, notFound: true, errHas: "version 1 at p is destroyed"},
		{name: "not kv2", secret: &api.Secret{Data: map[string]any{"data": canary}}, kv2: true, errHas: "no KV v2 data"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := decode(c.secret, c.kv2, "p", c.version)
			if c.errHas == "" {
				if r.Err != nil || string(r.Value) != c.want || r.Version != c.served {
					t.Fatalf("got %q version %q err %v; want %q version %q", r.Value, r.Version, r.Err, c.want, c.served)
				}
				return
			}
			if r.Err == nil || r.Value != nil {
				t.Fatalf("got %q, want an error", r.Value)
			}
			if !strings.Contains(r.Err.Error(), c.errHas) || strings.Contains(r.Err.Error(), canary) {
				t.Errorf("error %q: want %q in it and no value", r.Err, c.errHas)
			}
			if errors.Is(r.Err, provider.ErrNotFound) != c.notFound {
				t.Errorf("error %q: wraps ErrNotFound = %v, want %v", r.Err, !c.notFound, c.notFound)
			}
		})
	}
}

func testClient(t *testing.T, addr string) *api.Client {
	t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = addr
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDescribe(t *testing.T) {
	c := testClient(t, "https://vault.example:8200")
	refused := &url.Error{Op: "Get", URL: "https://vault.example:8200/v1/x", Err: &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}
	for _, c2 := range []struct {
		name     string
		err      error
		want     []string
		notFound bool
	}{
		{"403", &api.ResponseError{StatusCode: 403, Errors: []string{"1 error occurred:\n\t* permission denied\n\n"}}, []string{`permission denied: the Vault token needs the "read" capability on kv/data/app`}, false},
		{"404", &api.ResponseError{StatusCode: 404}, []string{"not found at kv/data/app"}, true},
		{"sealed", &api.ResponseError{StatusCode: 503, Errors: []string{"Vault is sealed"}}, []string{"Vault at https://vault.example:8200 is sealed"}, false},
		{"500", &api.ResponseError{StatusCode: 500, Errors: []string{"internal\nerror", "  "}}, []string{"Vault answered HTTP 500 Internal Server Error: internal error"}, false},
		{"raw body", &api.ResponseError{StatusCode: 502, RawError: true, Errors: []string{"<html>" + canary}}, []string{"Vault answered HTTP 502 Bad Gateway"}, false},
		{"refused", refused, []string{"cannot reach Vault at https://vault.example:8200 (VAULT_ADDR): connection refused"}, false},
		{"dns", &url.Error{Op: "Get", Err: &net.OpError{Op: "dial", Err: &net.DNSError{Name: "vault.example", Err: "no such host"}}}, []string{"cannot resolve vault.example"}, false},
		{"unknown CA", &url.Error{Op: "Get", Err: x509.UnknownAuthorityError{}}, []string{"unknown authority", "VAULT_CACERT"}, false},
		{"not JSON", &json.SyntaxError{Offset: 1}, []string{"is not Vault's JSON", "kv/data/app"}, false},
		{"stopped", &provider.Exhausted{Last: refused}, []string{"connection refused; still failing at the deadline (--timeout)"}, false},
		{"input", inputError{errors.New("cannot read VAULT_JWT_FILE (/x): no such file")}, []string{"cannot read VAULT_JWT_FILE (/x)"}, false},
	} {
		t.Run(c2.name, func(t *testing.T) {
			err := describe(c, c2.err, "kv/data/app", "read")
			for _, w := range c2.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), canary) || strings.Contains(err.Error(), "\n") {
				t.Errorf("%q holds a body or is not one line", err)
			}
			if errors.Is(err, provider.ErrNotFound) != c2.notFound {
				t.Errorf("%q: wraps ErrNotFound = %v", err, !c2.notFound)
			}
		})
	}
}

func TestTransient(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&api.ResponseError{StatusCode: 429}, true},
		{&api.ResponseError{StatusCode: 503}, true},
		{&api.ResponseError{StatusCode: 412}, true},
		{&api.ResponseError{StatusCode: 403}, false},
		{&api.ResponseError{StatusCode: 400}, false},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, true},
		{&url.Error{Err: x509.UnknownAuthorityError{}}, false},
		{inputError{&net.OpError{Op: "dial", Err: syscall.ECONNRESET}}, true},
		{errors.New("no role ID"), false},
	} {
		if got := transient(c.err); got != c.want {
			t.Errorf("transient(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// TestRetry: Vault's failures, classified, under the engine's policy
// (with short waits: the policy's own are tested in package provider).
func TestRetry(t *testing.T) {
	ctx := t.Context()
	fast := provider.Backoff{
		Transient: provider.Step{Base: time.Millisecond, Max: 10 * time.Millisecond},
		Throttled: provider.Step{Base: time.Millisecond, Max: 10 * time.Millisecond},
	}
	busy := &api.ResponseError{StatusCode: 429}
	sealed := &api.ResponseError{StatusCode: 503}
	n := 0
	if err := fast.Retry(ctx, func() error {
		if n++; n < 3 {
			return busy
		}
		return nil
	}, class); err != nil || n != 3 {
		t.Errorf("after two throttles: err %v after %d calls, want success after 3", err, n)
	}
	n = 0
	denied := &api.ResponseError{StatusCode: 403}
	if err := fast.Retry(ctx, func() error { n++; return denied }, class); err != denied || n != 1 {
		t.Errorf("permission denied: err %v after %d calls, want it at once", err, n)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	err := fast.Retry(short, func() error { return busy }, class)
	var ex *provider.Exhausted
	if !errors.As(err, &ex) || ex.Last != busy || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("always throttled: %v, want the throttle as the reason", err)
	}
	done, cancel2 := context.WithCancel(ctx)
	cancel2()
	if err := retry(done, func() error { return done.Err() }); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	for _, c := range []struct {
		err  error
		want provider.Class
	}{
		{busy, provider.Throttled},
		{sealed, provider.Transient},
		{&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, provider.Transient},
		{denied, provider.Permanent},
		{&url.Error{Err: x509.UnknownAuthorityError{}}, provider.Permanent},
	} {
		if got := class(c.err); got != c.want {
			t.Errorf("class(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// clearEnv unsets every variable the store reads and gives it an empty HOME.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{"VAULT_TOKEN", "VAULT_TOKEN_FILE", "VAULT_AUTH_METHOD", "VAULT_ROLE", "VAULT_PATH",
		"VAULT_ROLE_ID", "VAULT_ROLE_ID_FILE", "VAULT_SECRET_ID", "VAULT_SECRET_ID_FILE", "VAULT_JWT", "VAULT_JWT_FILE",
		"VAULT_REVOKE_TOKEN", "VAULT_ADDR", "VAULT_NAMESPACE", "VAULT_CACERT", "VAULT_CAPATH", "VAULT_SKIP_VERIFY",
		"VAULT_CLIENT_CERT", "VAULT_CLIENT_KEY", "VAULT_AGENT_ADDR", "VAULT_MAX_RETRIES", "VAULT_HEADERS"} {
		t.Setenv(k, "")
	}
	t.Setenv("HOME", t.TempDir())
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAuthFromEnv(t *testing.T) {
	for _, c := range []struct {
		name   string
		env    func(t *testing.T) map[string]string
		token  string // a fixed token
		method string // or a login: "NAME@MOUNT"
		errHas string
	}{
		{name: "token", env: vars("VAULT_TOKEN", " hvs.abc\n"), token: "hvs.abc"},
		{name: "token file", env: func(t *testing.T) map[string]string {
			return map[string]string{"VAULT_TOKEN_FILE": writeFile(t, "hvs.file\n")}
		}, token: "hvs.file"},
		{name: "missing token file", env: vars("VAULT_TOKEN_FILE", "/nonexistent/tok"), errHas: "cannot read VAULT_TOKEN_FILE (/nonexistent/tok): no such file"},
		{name: "empty token file", env: func(t *testing.T) map[string]string {
			return map[string]string{"VAULT_TOKEN_FILE": writeFile(t, "\n")}
		}, errHas: "is empty"},
		{name: "home token", env: func(t *testing.T) map[string]string {
			home := t.TempDir()
			os.WriteFile(filepath.Join(home, ".vault-token"), []byte("hvs.home"), 0o600)
			return map[string]string{"HOME": home}
		}, token: "hvs.home"},
		{name: "nothing", env: vars(), errHas: "no Vault credentials"},
		{name: "approle by role id", env: vars("VAULT_ROLE_ID", "r", "VAULT_SECRET_ID", "s"), method: "approle@approle"},
		{name: "approle secret file", env: vars("VAULT_AUTH_METHOD", "approle", "VAULT_ROLE_ID", "r", "VAULT_SECRET_ID_FILE", "/x", "VAULT_PATH", "/auth/ar/"), method: "approle@ar"},
		{name: "approle role id file", env: func(t *testing.T) map[string]string {
			return map[string]string{"VAULT_ROLE_ID_FILE": writeFile(t, "rid\n"), "VAULT_SECRET_ID": "s"}
		}, method: "approle@approle"},
		{name: "approle no secret", env: vars("VAULT_ROLE_ID", "r"), errHas: "VAULT_SECRET_ID or VAULT_SECRET_ID_FILE"},
		{name: "approle no role id", env: vars("VAULT_AUTH_METHOD", "approle", "VAULT_SECRET_ID", "s"), errHas: "VAULT_ROLE_ID or VAULT_ROLE_ID_FILE is needed"},
		{name: "kubernetes", env: vars("VAULT_AUTH_METHOD", "Kubernetes", "VAULT_ROLE", "app"), method: "kubernetes@kubernetes"},
		{name: "kubernetes no role", env: vars("VAULT_AUTH_METHOD", "kubernetes"), errHas: "needs VAULT_ROLE"},
		{name: "jwt", env: vars("VAULT_AUTH_METHOD", "jwt", "VAULT_ROLE", "ci", "VAULT_PATH", "gitlab"), method: "jwt@gitlab"},
		{name: "aws", env: vars("VAULT_AUTH_METHOD", "aws-iam"), method: "aws-iam@aws"},
		{name: "gcp", env: vars("VAULT_AUTH_METHOD", "gcp-gce", "VAULT_ROLE", "r"), method: "gcp-gce@gcp"},
		{name: "azure", env: vars("VAULT_AUTH_METHOD", "azure", "VAULT_ROLE", "r"), method: "azure@azure"},
		{name: "token method without token", env: vars("VAULT_AUTH_METHOD", "token"), errHas: "no Vault token"},
		{name: "unknown", env: vars("VAULT_AUTH_METHOD", "ldap"), errHas: `unknown VAULT_AUTH_METHOD "ldap"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			clearEnv(t)
			for k, v := range c.env(t) {
				t.Setenv(k, v)
			}
			l, err := authFromEnv()
			switch {
			case c.errHas != "":
				if err == nil || !strings.Contains(err.Error(), c.errHas) {
					t.Fatalf("err %v, want %q", err, c.errHas)
				}
			case err != nil:
				t.Fatal(err)
			case c.token != "":
				if l != fixedToken(c.token) {
					t.Errorf("login %#v, want the token %q", l, c.token)
				}
			default:
				m, ok := l.(methodLogin)
				if !ok || m.name+"@"+m.mount != c.method {
					t.Errorf("login %#v, want %s", l, c.method)
				}
			}
		})
	}
}

// vars returns an env func for name/value pairs.
func vars(kv ...string) func(*testing.T) map[string]string {
	return func(*testing.T) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
}

func TestOpenRejectsBadRevokeFlag(t *testing.T) {
	clearEnv(t)
	t.Setenv("VAULT_TOKEN", "t")
	t.Setenv("VAULT_REVOKE_TOKEN", "maybe")
	if _, err := Open(t.Context(), settings()); err == nil || !strings.Contains(err.Error(), "VAULT_REVOKE_TOKEN") {
		t.Errorf("err %v, want a VAULT_REVOKE_TOKEN error", err)
	}
}

func settings() provider.Settings {
	return provider.Settings{Log: slog.New(slog.DiscardHandler), Limit: provider.NewLimiter(4)}
}

// fakeVault answers like Vault for a KV v2 mount at secret/: the first
// mount lookup is throttled, then secret/data/app is served.
func fakeVault(t *testing.T, token string) (*httptest.Server, *atomic.Int64) {
	var calls atomic.Int64
	var throttled atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.Header.Get("X-Vault-Token") != token {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"errors":["permission denied"]}`)
			return
		}
		switch {
		case strings.HasPrefix(r.URL.Path, "/v1/sys/internal/ui/mounts/secret/"):
			if !throttled.Swap(true) {
				w.WriteHeader(http.StatusTooManyRequests)
				fmt.Fprint(w, `{"errors":["rate limited"]}`)
				return
			}
			fmt.Fprint(w, `{"data":{"path":"secret/","type":"kv","options":{"version":"2"}}}`)
		case r.URL.Path == "/v1/secret/data/app":
			fmt.Fprintf(w, `{"data":{"data":{"k":%q},"metadata":{"version":4}}}`, canary)
		default:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"errors":[]}`)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func TestFetchOverHTTP(t *testing.T) {
	clearEnv(t)
	srv, calls := fakeVault(t, "hvs.good")
	t.Setenv("VAULT_ADDR", srv.URL)
	t.Setenv("VAULT_TOKEN", "hvs.good")
	p, err := Open(t.Context(), settings())
	if err != nil {
		t.Fatal(err)
	}
	rs := p.Fetch(t.Context(), []provider.Target{
		{Kind: provider.Vault, Name: "secret/app"},
		{Kind: provider.Vault, Name: "secret/data/app"},
		{Kind: provider.Vault, Name: "secret/nope"},
	})
	if string(rs[0].Value) != `{"k":"`+canary+`"}` || rs[0].Version != "4" || string(rs[1].Value) != string(rs[0].Value) {
		t.Errorf("results %+v %+v", rs[0], rs[1])
	}
	if !errors.Is(rs[2].Err, provider.ErrNotFound) || !strings.Contains(rs[2].Err.Error(), "secret/data/nope") {
		t.Errorf("missing secret: %v", rs[2].Err)
	}
	// one throttled and one good mount lookup, one read per distinct path
	if n := calls.Load(); n != 4 {
		t.Errorf("%d requests, want 4", n)
	}
}

func TestFetchHangingServerFailsAtDeadline(t *testing.T) {
	clearEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // accept, never answer
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	t.Setenv("VAULT_ADDR", "http://"+ln.Addr().String())
	t.Setenv("VAULT_TOKEN", "t")
	p, err := Open(t.Context(), settings())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	rs := p.Fetch(ctx, []provider.Target{{Kind: provider.Vault, Name: "secret/app"}})
	if !errors.Is(rs[0].Err, context.DeadlineExceeded) {
		t.Errorf("err %v, want the deadline", rs[0].Err)
	}
}

func TestLoginFailure(t *testing.T) {
	clearEnv(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"errors":["invalid role or secret ID"]}`)
	}))
	defer srv.Close()
	t.Setenv("VAULT_ADDR", srv.URL)
	t.Setenv("VAULT_ROLE_ID", "rid")
	t.Setenv("VAULT_SECRET_ID", canary)
	p, err := Open(t.Context(), settings())
	if err != nil {
		t.Fatal(err)
	}
	rs := p.Fetch(t.Context(), []provider.Target{{Kind: provider.Vault, Name: "a/b"}, {Kind: provider.Vault, Name: "c/d"}})
	for _, r := range rs {
		if r.Err == nil || !strings.Contains(r.Err.Error(), "vault login with approle at auth/approle failed: Vault answered HTTP 400 Bad Request: invalid role or secret ID") || strings.Contains(r.Err.Error(), canary) {
			t.Errorf("err %v", r.Err)
		}
	}
}

// BenchmarkFetch resolves 50 secrets of one KV v2 mount over HTTP: one
// mount lookup, then 50 reads.
func BenchmarkFetch(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/sys/internal/ui/mounts/") {
			fmt.Fprint(w, `{"data":{"path":"secret/","type":"kv","options":{"version":"2"}}}`)
			return
		}
		fmt.Fprint(w, `{"data":{"data":{"user":"u","password":"p"},"metadata":{"version":1}}}`)
	}))
	defer srv.Close()
	b.Setenv("VAULT_ADDR", srv.URL)
	b.Setenv("VAULT_TOKEN", "t")
	targets := make([]provider.Target, 50)
	for i := range targets {
		targets[i] = provider.Target{Kind: provider.Vault, Name: fmt.Sprintf("secret/app%d", i)}
	}
	s := settings()
	s.Limit = provider.NewLimiter(16)
	for b.Loop() {
		p, err := Open(b.Context(), s)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range p.Fetch(b.Context(), targets) {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	}
}

// TestFetchLease: a read answered with a lease (a dynamic secret, as
// database/creds answers) gives its Result the lease's duration; a KV
// read, which has none, gives none.
func TestFetchLease(t *testing.T) {
	clearEnv(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/sys/internal/ui/mounts/database/creds/app":
			fmt.Fprint(w, `{"data":{"path":"database/","type":"database"}}`)
		case "/v1/sys/internal/ui/mounts/secret/app":
			fmt.Fprint(w, `{"data":{"path":"secret/","type":"kv","options":{"version":"1"}}}`)
		case "/v1/database/creds/app":
			fmt.Fprintf(w, `{"lease_id":"database/creds/app/AbC","renewable":true,"lease_duration":3600,"data":{"username":"u","password":%q}}`, canary)
		case "/v1/secret/app":
			// KV v1 answers with a refresh interval but no lease id.
			fmt.Fprintf(w, `{"lease_id":"","renewable":false,"lease_duration":2764800,"data":{"k":%q}}`, canary)
		default:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"errors":[]}`)
		}
	}))
	t.Cleanup(srv.Close)
	t.Setenv("VAULT_ADDR", srv.URL)
	t.Setenv("VAULT_TOKEN", "hvs.good")
	p, err := Open(t.Context(), settings())
	if err != nil {
		t.Fatal(err)
	}
	rs := p.Fetch(t.Context(), []provider.Target{
		{Kind: provider.Vault, Name: "database/creds/app"},
		{Kind: provider.Vault, Name: "secret/app"},
	})
	if rs[0].Err != nil || rs[0].Lease != time.Hour || rs[0].LeaseID.Reveal() != "database/creds/app/AbC" || !rs[0].Renewable {
		t.Errorf("dynamic secret: lease %v, renewable %v, err %v; want 1h, its id, renewable", rs[0].Lease, rs[0].Renewable, rs[0].Err)
	}
	if rs[1].Err != nil || rs[1].Lease != 0 || rs[1].LeaseID != "" {
		t.Errorf("KV secret: lease %v, err %v; want none", rs[1].Lease, rs[1].Err)
	}
}
