package provider

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// canary is a secret value that must never appear in any output.
const canary = "CANARY-d0n0tl0g-7f3a"

// memStore is an in-memory store that batches like Secrets Manager: up
// to batch targets per call, each call taking latency.
type memStore struct {
	values  map[string]string // by Target.Name
	binary  map[string]bool
	leases  map[string]time.Duration // by Target.Name: Result.Lease
	batch   int
	latency time.Duration
	hang    bool // ignore the context and never answer
	panics  bool // panic in Fetch
	panicIn bool // panic in a call made through the Limiter

	calls    atomic.Int32
	inFlight atomic.Int32
	maxIn    atomic.Int32
	mu       sync.Mutex
	seen     []Target
}

func (m *memStore) open(_ context.Context, s Settings) (Store, error) {
	return memProvider{m, s.Limit}, nil
}

type memProvider struct {
	m     *memStore
	limit *Limiter
}

func (p memProvider) Fetch(ctx context.Context, targets []Target) []Result {
	m := p.m
	if m.panics {
		panic(canary)
	}
	if m.hang {
		select {}
	}
	m.mu.Lock()
	m.seen = append(m.seen, targets...)
	m.mu.Unlock()
	rs := make([]Result, len(targets))
	batch := max(m.batch, 1)
	n := (len(targets) + batch - 1) / batch
	p.limit.Each(ctx, n, func(c int) {
		m.calls.Add(1)
		if m.panicIn {
			panic(canary)
		}
		in := m.inFlight.Add(1)
		defer m.inFlight.Add(-1)
		for {
			old := m.maxIn.Load()
			if in <= old || m.maxIn.CompareAndSwap(old, in) {
				break
			}
		}
		select {
		case <-time.After(m.latency):
		case <-ctx.Done():
			for i := c * batch; i < min((c+1)*batch, len(targets)); i++ {
				rs[i].Err = fmt.Errorf("waiting for the fake: %w", ctx.Err())
			}
			return
		}
		for i := c * batch; i < min((c+1)*batch, len(targets)); i++ {
			v, ok := m.values[targets[i].Name]
			switch {
			case !ok:
				rs[i].Err = fmt.Errorf("secret %s %w", targets[i].Name, ErrNotFound)
			case targets[i].Name == "denied":
				rs[i].Err = errors.New("access denied")
			default:
				rs[i] = Result{Value: []byte(v), Binary: m.binary[targets[i].Name], Version: "v1", Lease: m.leases[targets[i].Name]}
			}
		}
	})
	return rs
}

func newMem(values map[string]string) *memStore {
	return &memStore{values: values, batch: 20}
}

// config returns a Config whose Google store is m, writing files under a
// temporary directory.
func config(t *testing.T, m *memStore) Config {
	return Config{
		Stores:      map[Kind]Opener{Google: m.open, File: OpenFile},
		Concurrency: 8,
		Timeout:     10 * time.Second,
		FileDir:     t.TempDir(),
	}
}

func resolve(t *testing.T, cfg Config, environ ...string) (*Resolution, error) {
	t.Helper()
	res, err := Resolve(context.Background(), cfg, environ)
	if err != nil && strings.Contains(err.Error(), canary) {
		t.Fatalf("error holds the secret value: %v", err)
	}
	if res != nil {
		for _, s := range res.Report {
			if s.Err != nil && strings.Contains(s.Err.Error(), canary) {
				t.Fatalf("report holds the secret value: %v", s.Err)
			}
		}
	}
	return res, err
}

func mustResolve(t *testing.T, cfg Config, environ ...string) []string {
	t.Helper()
	res, err := resolve(t, cfg, environ...)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	t.Cleanup(func() { res.Files.Remove() })
	return res.Env
}

func TestResolveReplacesInPlace(t *testing.T) {
	m := newMem(map[string]string{"db": `{"user":"app","password":"` + canary + `","port":5432,"tls":{"on":true}}`, "plain": "multi\nline\n"})
	env := mustResolve(t, config(t, m),
		"NOEQUALS",
		"A=x=y=z",
		"DB=gcp:secretmanager:db",
		"EMPTY=",
		"PASS=gcp:secretmanager:db#password",
		"PORT=gcp:secretmanager:db#port",
		"TLS=gcp:secretmanager:db#tls",
		"PEM=gcp:secretmanager:plain",
		"PEM_TRIM=gcp:secretmanager:plain?trim",
		"BYTES=\xff\xfe",
	)
	want := []string{
		"NOEQUALS",
		"A=x=y=z",
		`DB={"user":"app","password":"` + canary + `","port":5432,"tls":{"on":true}}`,
		"EMPTY=",
		"PASS=" + canary,
		"PORT=5432",
		`TLS={"on":true}`,
		"PEM=multi\nline\n",
		"PEM_TRIM=multi\nline",
		"BYTES=\xff\xfe",
	}
	if !slices.Equal(env, want) {
		t.Errorf("env =\n%q\nwant\n%q", env, want)
	}
}

func TestResolveFetchesEachTargetOnce(t *testing.T) {
	values := map[string]string{}
	var environ []string
	for i := range 200 {
		name := fmt.Sprintf("s%d", i%50)
		values[name] = `{"k":"v"}`
		ref := "gcp:secretmanager:" + name
		if i%4 == 1 {
			ref += "#k" // a selector does not make another fetch
		}
		environ = append(environ, fmt.Sprintf("V%d=%s", i, ref))
	}
	m := newMem(values)
	env := mustResolve(t, config(t, m), environ...)
	if len(env) != 200 {
		t.Fatalf("got %d variables, want 200", len(env))
	}
	if got := len(m.seen); got != 50 {
		t.Errorf("store saw %d targets, want 50 distinct", got)
	}
	if got := m.calls.Load(); got > 3 {
		t.Errorf("store made %d calls, want at most 3", got)
	}
}

func TestResolveBoundsConcurrency(t *testing.T) {
	values, environ := references(40, 40)
	m := newMem(values)
	m.batch, m.latency = 1, 5*time.Millisecond
	cfg := config(t, m)
	cfg.Concurrency = 3
	mustResolve(t, cfg, environ...)
	if got := m.maxIn.Load(); got > 3 || got < 2 {
		t.Errorf("max calls in flight = %d, want 2..3 (the bound is 3)", got)
	}
}

func TestResolveFailsClosed(t *testing.T) {
	dir := t.TempDir()
	m := newMem(map[string]string{"db": `{"user":"u","password":"` + canary + `"}`, "denied": canary, "bin": canary + "\x00", "nul": "a\x00" + canary, "text": canary, "notb64": canary + "!"})
	m.binary = map[string]bool{"bin": true}
	cfg := config(t, m)
	res, err := resolve(t, cfg,
		"OK=gcp:secretmanager:db#user",
		"MISSING=gcp:secretmanager:nope",
		"FILED=gcp:secretmanager:db#user?file="+filepath.Join(dir, "user"),
		"KEY=gcp:secretmanager:db#pass",
		"DENIED=gcp:secretmanager:denied",
		"BAD=arn:aws:secretsmanager:eu-west-1:123456789012:db",
		"BIN=gcp:secretmanager:bin",
		"NUL=gcp:secretmanager:nul",
		"NOTJSON=gcp:secretmanager:text#k",
		"B64=gcp:secretmanager:notb64?encoding=base64",
		"NOSTORE=vault:secret/app",
	)
	var f *Failure
	if !errors.As(err, &f) {
		t.Fatalf("Resolve error = %v, want a *Failure", err)
	}
	want := []string{
		"MISSING: gcp:secretmanager:nope: secret nope not found",
		`KEY: gcp:secretmanager:db#pass: JSON key "pass" not in secret (keys: password, user)`,
		"DENIED: gcp:secretmanager:denied: access denied",
		"BAD: arn:aws:secretsmanager:eu-west-1:123456789012:db: malformed reference: a Secrets Manager ARN has the form",
		"BIN: gcp:secretmanager:bin: the secret is binary: deliver it in a file with ?file",
		"NUL: gcp:secretmanager:nul: the value contains a NUL byte",
		"NOTJSON: gcp:secretmanager:text#k: the value is not a JSON object",
		"B64: gcp:secretmanager:notb64?encoding=base64: encoding=base64: the value is not valid base64",
		"NOSTORE: vault:secret/app: this binary was built without the vault store (build tag no_vault)",
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d = %q\nwant prefix %q", i, lines[i], w)
		}
	}
	if res.Env != nil {
		t.Errorf("a failed resolution returned an environment")
	}
	if _, err := os.Stat(filepath.Join(dir, "user")); !os.IsNotExist(err) {
		t.Errorf("a failed resolution left a file behind: %v", err)
	}
}

func TestResolveOptionalAndIgnoreMissing(t *testing.T) {
	m := newMem(map[string]string{"there": "v", "denied": canary})
	cfg := config(t, m)
	env := mustResolve(t, cfg, "A=gcp:secretmanager:gone?optional", "B=gcp:secretmanager:there?optional", "C=keep")
	if want := []string{"B=v", "C=keep"}; !slices.Equal(env, want) {
		t.Errorf("optional: env = %q, want %q", env, want)
	}
	if _, err := resolve(t, cfg, "A=gcp:secretmanager:gone"); err == nil {
		t.Errorf("a missing secret without ?optional did not fail")
	}
	if _, err := resolve(t, cfg, "A=gcp:secretmanager:denied?optional"); err == nil {
		t.Errorf("?optional hid an error that is not 'not found'")
	}
	cfg.IgnoreMissing = true
	env = mustResolve(t, cfg, "A=gcp:secretmanager:gone", "B=gcp:secretmanager:there")
	if want := []string{"B=v"}; !slices.Equal(env, want) {
		t.Errorf("--ignore-missing: env = %q, want %q", env, want)
	}
}

func TestResolveSkip(t *testing.T) {
	cfg := config(t, newMem(map[string]string{"s": "v"}))
	cfg.Skip = []string{"ARN", "BAD"}
	env := mustResolve(t, cfg, "ARN=gcp:secretmanager:s", "BAD=vault:", "X=gcp:secretmanager:s")
	if want := []string{"ARN=gcp:secretmanager:s", "BAD=vault:", "X=v"}; !slices.Equal(env, want) {
		t.Errorf("env = %q, want %q", env, want)
	}
}

func TestResolveExpandJSON(t *testing.T) {
	m := newMem(map[string]string{"db": `{"DB_USER":"u","DB_PASS":"` + canary + `","DB_PORT":5432,"OTHER":"from-json"}`, "list": `[1,2]`})
	cfg := config(t, m)
	cfg.ExpandJSON = true
	env := mustResolve(t, cfg, "A=1", "DB=gcp:secretmanager:db", "L=gcp:secretmanager:list", "K=gcp:secretmanager:db#DB_USER", "OTHER=explicit")
	want := []string{"A=1", "DB_USER=u", "DB_PASS=" + canary, "DB_PORT=5432", "L=[1,2]", "K=u", "OTHER=explicit"}
	if !slices.Equal(env, want) {
		t.Errorf("env = %q\nwant %q", env, want)
	}
	m.values["bad"] = `{"A=B":"` + canary + `"}`
	if _, err := resolve(t, cfg, "X=gcp:secretmanager:bad"); err == nil || !strings.Contains(err.Error(), "cannot be a variable name") {
		t.Errorf("a key that cannot be a name: err = %v", err)
	}
}

func TestResolveFiles(t *testing.T) {
	m := newMem(map[string]string{"tls": `{"cert":"CERT\n","key":"` + canary + `"}`, "bin": "\x00\x01" + canary, "b64": "aGVsbG8K"})
	m.binary = map[string]bool{"bin": true}
	cfg := config(t, m)
	dir := t.TempDir()
	keyPath := filepath.Join(dir, "tls.key")
	if err := os.WriteFile(keyPath, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := resolve(t, cfg,
		"CERT=gcp:secretmanager:tls#cert?file&trim",
		"KEY=gcp:secretmanager:tls#key?file="+keyPath,
		"BIN=gcp:secretmanager:bin?file",
		"B64=gcp:secretmanager:b64?file&encoding=base64",
	)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, kv := range res.Env {
		name, path, _ := strings.Cut(kv, "=")
		if strings.Contains(path, canary) {
			t.Errorf("%s: the value is in the environment", name)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if fi.Mode().Perm() != 0o400 {
			t.Errorf("%s: mode %v, want 0400", name, fi.Mode().Perm())
		}
		b, _ := os.ReadFile(path)
		files[name] = string(b)
	}
	want := map[string]string{"CERT": "CERT", "KEY": canary, "BIN": "\x00\x01" + canary, "B64": "hello\n"}
	for k, v := range want {
		if files[k] != v {
			t.Errorf("%s file holds %q, want %q", k, files[k], v)
		}
	}
	private := res.Files.Dir()
	if fi, err := os.Stat(private); err != nil || fi.Mode().Perm() != 0o700 || !strings.HasPrefix(private, cfg.FileDir) {
		t.Errorf("private directory %s: %v, %v", private, fi.Mode(), err)
	}
	if err := res.Files.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(private); !os.IsNotExist(err) {
		t.Errorf("Remove left %s: %v", private, err)
	}
	if _, err := os.Stat(keyPath); err != nil {
		t.Errorf("Remove deleted the file at the reference's own path: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("the atomic write left temporary files: %v", entries)
	}
}

func TestResolveDryRunWritesNoFile(t *testing.T) {
	cfg := config(t, newMem(map[string]string{"s": "v"}))
	cfg.DryRun = true
	res, err := resolve(t, cfg, "A=gcp:secretmanager:s?file")
	if err != nil || res.Files.Dir() != "" {
		t.Errorf("dry run: err %v, private dir %q", err, res.Files.Dir())
	}
	if len(res.Report) != 1 || res.Report[0].Version != "v1" || res.Report[0].Kind != Google {
		t.Errorf("report = %+v", res.Report)
	}
}

func TestResolveRemovesAuthInputs(t *testing.T) {
	cfg := config(t, newMem(nil))
	cfg.AuthInputs = []string{"VAULT_TOKEN", "VAULT_SECRET_ID", "VAULT_ROLE"}
	cfg.Passthrough = []string{"VAULT_ROLE"}
	env := mustResolve(t, cfg, "VAULT_ADDR=https://vault:8200", "VAULT_TOKEN="+canary, "VAULT_SECRET_ID="+canary, "VAULT_ROLE=app", "APP=1")
	if want := []string{"VAULT_ADDR=https://vault:8200", "VAULT_ROLE=app", "APP=1"}; !slices.Equal(env, want) {
		t.Errorf("env = %q, want %q", env, want)
	}
}

func TestResolveDeadline(t *testing.T) {
	for _, hang := range []bool{false, true} {
		m := newMem(map[string]string{"s": canary})
		m.latency, m.hang = time.Hour, hang
		cfg := config(t, m)
		cfg.Timeout = 50 * time.Millisecond
		_, err := resolve(t, cfg, "A=gcp:secretmanager:s", "B=secretfile:/nonexistent?optional")
		want := "A: gcp:secretmanager:s: deadline of 50ms exceeded (--timeout): waiting for the fake: context deadline exceeded"
		if hang {
			want = "A: gcp:secretmanager:s: deadline of 50ms exceeded (--timeout)"
		}
		if err == nil || err.Error() != want {
			t.Errorf("hang=%v: err = %v\nwant %s", hang, err, want)
		}
	}
}

// TestStoreDeadlineLeavesGrace: stores are given a context that ends the
// grace before the resolution's deadline, so that what they report when
// it ends is heard.
func TestStoreDeadlineLeavesGrace(t *testing.T) {
	deadline := time.Now().Add(time.Hour)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	var got time.Time
	cfg := config(t, nil)
	cfg.Timeout = 0
	cfg.Stores[Vault] = func(ctx context.Context, _ Settings) (Store, error) {
		got, _ = ctx.Deadline()
		return nil, errors.New("opened")
	}
	Resolve(ctx, cfg, []string{"A=vault:a"})
	if want := deadline.Add(-graceAfterDeadline); !got.Equal(want) {
		t.Errorf("the store's deadline is %v before the resolution's, want %v", deadline.Sub(got), graceAfterDeadline)
	}
}

// A store whose client runs its own timer for the deadline may report
// context.DeadlineExceeded a moment before its context ends (gRPC does):
// the reason is still the --timeout.
func TestStoreTimerBeforeDeadline(t *testing.T) {
	cfg := config(t, nil)
	cfg.Timeout = time.Second
	cfg.Stores[Vault] = func(ctx context.Context, _ Settings) (Store, error) {
		d, _ := ctx.Deadline()
		time.Sleep(time.Until(d) - 5*time.Millisecond)
		return nil, context.DeadlineExceeded
	}
	_, err := resolve(t, cfg, "A=vault:a")
	if want := "A: vault:a: deadline of 1s exceeded (--timeout)"; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
}

func TestFailureIsOneLinePerVariable(t *testing.T) {
	m := newMem(nil)
	cfg := config(t, m)
	cfg.Stores[Vault] = func(context.Context, Settings) (Store, error) {
		return nil, errors.New("the server said:\n  line one\r\n  line two")
	}
	_, err := resolve(t, cfg, "A=vault:a", "B=vault:b")
	want := "A: vault:a: the server said: line one line two\nB: vault:b: the server said: line one line two"
	if err == nil || err.Error() != want {
		t.Errorf("err = %q\nwant %q", err, want)
	}
}

func TestResolveStorePanic(t *testing.T) {
	m := newMem(map[string]string{"s": canary})
	m.panics = true
	_, err := resolve(t, config(t, m), "A=gcp:secretmanager:s")
	if err == nil || !strings.Contains(err.Error(), "internal error in the gcp-secretmanager store") {
		t.Errorf("panic in Fetch: err = %v", err)
	}
	m.panics, m.panicIn = false, true
	_, err = resolve(t, config(t, m), "A=gcp:secretmanager:s")
	if err == nil || !strings.Contains(err.Error(), "A: gcp:secretmanager:s: the store returned no value") {
		t.Errorf("panic in a call: err = %v", err)
	}
}

// TestResolveLease: a value issued under a lease gives each variable
// that reads it the lease and when its credentials stop, counted from the
// fetch; other variables have none.
func TestResolveLease(t *testing.T) {
	m := newMem(map[string]string{"creds": `{"username":"u","password":"` + canary + `"}`, "kv": canary})
	m.leases = map[string]time.Duration{"creds": time.Hour}
	before := time.Now()
	res, err := resolve(t, config(t, m), "USER=gcp:secretmanager:creds#username", "PASS=gcp:secretmanager:creds#password", "KV=gcp:secretmanager:kv")
	after := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range res.Report[:2] {
		if s.Lease != time.Hour || s.Expires.Before(before.Add(time.Hour)) || s.Expires.After(after.Add(time.Hour)) {
			t.Errorf("%s: lease %v, expires %v; want 1h from the fetch (%v … %v)", s.Name, s.Lease, s.Expires, before, after)
		}
	}
	if s := res.Report[2]; s.Lease != 0 || !s.Expires.IsZero() {
		t.Errorf("%s has no lease, but its status says %v until %v", s.Name, s.Lease, s.Expires)
	}
	if n := m.calls.Load(); n != 1 {
		t.Errorf("%d calls, want 1", n)
	}
}

func TestResolveOpensOnlyReferencedStores(t *testing.T) {
	opened := false
	cfg := config(t, newMem(nil))
	cfg.Stores[Vault] = func(context.Context, Settings) (Store, error) {
		opened = true
		return nil, errors.New("opened")
	}
	mustResolve(t, cfg, "A=plain")
	if opened {
		t.Errorf("a store nobody references was opened")
	}
}

func TestSecretFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "db"), []byte(`{"password":"`+canary+`"}`), 0o600)
	os.WriteFile(filepath.Join(dir, "unreadable"), []byte(canary), 0o000)
	cfg := config(t, newMem(nil))
	env := mustResolve(t, cfg, "P=secretfile:"+dir+"/db#password", "W=secretfile:"+dir+"/db")
	if want := []string{"P=" + canary, "W=" + `{"password":"` + canary + `"}`}; !slices.Equal(env, want) {
		t.Errorf("env = %q", env)
	}
	_, err := resolve(t, cfg, "D=secretfile:"+dir+"#k", "M=secretfile:"+dir+"/missing")
	if err == nil || !strings.Contains(err.Error(), "D: secretfile:"+dir+"#k: cannot read file") || !strings.Contains(err.Error(), "M: secretfile:"+dir+"/missing: file "+dir+"/missing not found") {
		t.Errorf("err = %v", err)
	}
}

// references returns n references to distinct secrets, and the store's
// values for them: variable i names secret i%distinct.
func references(n, distinct int) (map[string]string, []string) {
	values := map[string]string{}
	var environ []string
	for i := range n {
		values[fmt.Sprint(i%distinct)] = "v"
		environ = append(environ, fmt.Sprintf("V%d=gcp:secretmanager:%d", i, i%distinct))
	}
	return values, environ
}

// benchmarkResolve resolves n references to distinct secrets against a
// store that takes 50 ms per call and accepts 20 targets per call.
func benchmarkResolve(b *testing.B, n, distinct int) {
	values, environ := references(n, distinct)
	m := newMem(values)
	m.latency = 50 * time.Millisecond
	cfg := Config{Stores: map[Kind]Opener{Google: m.open}, Concurrency: 16}
	for b.Loop() {
		if _, err := Resolve(context.Background(), cfg, environ); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(m.calls.Load())/float64(b.N), "calls/op")
}

// BenchmarkResolve50: 50 distinct references, 3 calls.
func BenchmarkResolve50(b *testing.B) { benchmarkResolve(b, 50, 50) }

// BenchmarkResolve200Duplicates: 200 references to 50 secrets, 3 calls.
func BenchmarkResolve200Duplicates(b *testing.B) { benchmarkResolve(b, 200, 50) }
