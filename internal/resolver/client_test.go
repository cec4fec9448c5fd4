package resolver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/secrets-init/secrets-init/internal/options"
	"github.com/secrets-init/secrets-init/provider"
)

// The test binary is also the resolver these tests start: with
// helperVariable set, it serves testStores instead of running the tests.
const helperVariable = "SECRETS_INIT_RESOLVER_TEST_HELPER"

const canary = "CANARY-b1c2d3"

func TestMain(m *testing.M) {
	if os.Getenv(helperVariable) == "1" {
		stores := map[provider.Kind]func(*options.Options) provider.Opener{}
		for kind, open := range testStores {
			stores[kind] = func(*options.Options) provider.Opener { return open }
		}
		// The Google store as the flags configure it: "project" reads
		// back --google-project.
		google := stores[provider.Google]
		stores[provider.Google] = func(o *options.Options) provider.Opener {
			project = o.GoogleProject
			return google(o)
		}
		stderr := SupervisorStderr()
		if err := Serve(os.Stdin, os.Stdout, stores, stderr); err != nil {
			if !errors.Is(err, ErrReported) {
				fmt.Fprintf(stderr, "secrets-init: resolver: %v\n", err)
			}
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// project is the Google project the test resolver was given.
var project string

// testStores exercise the protocol, not any SDK: files (the real store),
// and stores that block, fail, log, crash or panic on demand.
var testStores = map[provider.Kind]provider.Opener{
	provider.File: provider.OpenFile,
	provider.Google: func(ctx context.Context, s provider.Settings) (provider.Store, error) {
		return versionedStore{func(ctx context.Context, ts []provider.Target) []provider.Result {
			rs := make([]provider.Result, len(ts))
			for i, t := range ts {
				switch t.Name {
				case "missing":
					rs[i].Err = fmt.Errorf("secret %s: %w", t.Name, provider.ErrNotFound)
				case "crash":
					os.Exit(3)
				case "panic":
					panic(canary)
				case "crash-panic": // where no recover is
					go panic(canary)
					select {}
				case "fd2": // as GODEBUG traces and print do: no crash
					os.NewFile(2, "fd 2").WriteString("gc 1 @0.001s 0%: trace\n")
					rs[i].Value = []byte("google:fd2")
				case "project":
					rs[i].Value = []byte(project)
				case "log":
					s.Log.Warn("a store's warning", "target", t.Name)
					rs[i].Value = []byte(canary)
				default:
					rs[i].Value, rs[i].Version = []byte("google:"+t.Name), "7"
				}
			}
			return rs
		}}, nil
	},
	provider.Vault: func(ctx context.Context, s provider.Settings) (provider.Store, error) {
		return storeFunc(func(ctx context.Context, ts []provider.Target) []provider.Result {
			<-ctx.Done() // a server that never answers
			return provider.Failed(len(ts), fmt.Errorf("reading %s: %w", ts[0].Name, ctx.Err()))
		}), nil
	},
	provider.Azure: func(ctx context.Context, s provider.Settings) (provider.Store, error) {
		return nil, errors.New("no credentials")
	},
}

type storeFunc func(context.Context, []provider.Target) []provider.Result

// versionedStore is a storeFunc with a version check: version "v-NAME",
// or ErrDenied for "denied".
type versionedStore struct{ storeFunc }

func (versionedStore) Versions(ctx context.Context, ts []provider.Target) []provider.Result {
	rs := make([]provider.Result, len(ts))
	for i, t := range ts {
		if t.Name == "denied" {
			rs[i].Err = fmt.Errorf("describe %s: %w", t.Name, provider.ErrDenied)
		} else {
			rs[i].Version = "v-" + t.Name
		}
	}
	return rs
}

func (f storeFunc) Fetch(ctx context.Context, ts []provider.Target) []provider.Result {
	return f(ctx, ts)
}

var image = sync.OnceValues(func() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(exe)
	return string(b), err
})

// newClient returns a client of the test resolver whose stderr is a file
// the test can read.
func newClient(t *testing.T, s Settings) (*Client, func() string) {
	t.Helper()
	img, err := image()
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(img, s, []string{helperVariable + "=1", "PATH=/usr/bin:/bin"})
	stderr, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	c.Stderr = stderr
	t.Cleanup(func() { c.Kill(); stderr.Close() })
	return c, func() string {
		b, _ := os.ReadFile(stderr.Name())
		return string(b)
	}
}

func open(t *testing.T, c *Client, kind provider.Kind) provider.Store {
	t.Helper()
	st, err := c.Opener(kind)(context.Background(), provider.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// gone reports whether process pid no longer exists (it was reaped).
func gone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// TestStartPaths: the resolver starts from a memfd, or, when that is
// forced off, from a file in a private directory that is gone once it
// runs; it answers, and Close leaves no process.
func TestStartPaths(t *testing.T) {
	for _, mode := range []string{"", "file"} {
		t.Run("mode="+mode, func(t *testing.T) {
			t.Setenv(TestStartVariable, mode)
			c, _ := newClient(t, Settings{LogFormat: "text"})
			path := filepath.Join(t.TempDir(), "secret")
			if err := os.WriteFile(path, []byte(canary+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			rs := open(t, c, provider.File).Fetch(context.Background(), []provider.Target{{Kind: provider.File, Name: path}, {Kind: provider.File, Name: path + ".none"}})
			if len(rs) != 2 || string(rs[0].Value) != canary+"\n" || rs[0].Err != nil {
				t.Fatalf("results %+v", rs)
			}
			if !errors.Is(rs[1].Err, provider.ErrNotFound) {
				t.Errorf("a missing file: %v, want ErrNotFound", rs[1].Err)
			}
			pid := c.Pid()
			exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
			if err != nil {
				t.Fatal(err)
			}
			switch mode {
			case "":
				if !strings.HasPrefix(exe, "/memfd:"+memfdName) {
					t.Errorf("the resolver runs %q, want the memfd", exe)
				}
			case "file":
				if !strings.Contains(exe, "/secrets-init-") || !strings.HasSuffix(exe, "(deleted)") {
					t.Errorf("the resolver runs %q, want a deleted file in a private directory", exe)
				}
				if _, err := os.Stat(filepath.Dir(strings.TrimSuffix(exe, " (deleted)"))); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("the private directory is still there: %v", err)
				}
			}
			if err := c.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			if !gone(pid) {
				t.Errorf("resolver %d is still there after Close", pid)
			}
		})
	}
}

// TestStartRefused: when neither way may execute, Open fails with a
// StartError that names the fix, and no process was started.
func TestStartRefused(t *testing.T) {
	t.Setenv(TestStartVariable, "none")
	c, _ := newClient(t, Settings{})
	_, err := c.Opener(provider.Google)(context.Background(), provider.Settings{})
	var se *StartError
	if !errors.As(err, &se) || c.StartError() == nil {
		t.Fatalf("Open: %v, want a StartError", err)
	}
	for _, want := range []string{"memfd", "private directory", "vm.memfd_noexec", "single-process build"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("%q is more than one line", err)
	}
	if c.Started() {
		t.Error("a resolver started")
	}
	if err := c.Close(); err != nil {
		t.Error(err)
	}
}

// TestErrorsCross: a store's errors keep their text and their classes
// (not found, deadline), an Open error fails every target, a panic is an
// internal error that prints nothing, and a store's log line comes out in
// the supervisor's format.
func TestErrorsCross(t *testing.T) {
	c, stderr := newClient(t, Settings{LogFormat: "json", LogLevel: slog.LevelInfo, GoogleProject: "proj-42"})
	g := open(t, c, provider.Google)
	rs := g.Fetch(context.Background(), []provider.Target{{Kind: provider.Google, Name: "a"}, {Kind: provider.Google, Name: "missing"}, {Kind: provider.Google, Name: "project"}})
	if string(rs[0].Value) != "google:a" || rs[0].Version != "7" {
		t.Errorf("result %+v", rs[0])
	}
	if string(rs[2].Value) != "proj-42" {
		t.Errorf("the store was opened with project %q, want the settings' proj-42", rs[2].Value)
	}
	if !errors.Is(rs[1].Err, provider.ErrNotFound) || rs[1].Err.Error() != "secret missing: not found" {
		t.Errorf("missing: %v", rs[1].Err)
	}
	rs = g.Fetch(context.Background(), []provider.Target{{Kind: provider.Google, Name: "panic"}, {Kind: provider.Google, Name: "b"}})
	for _, r := range rs {
		if r.Err == nil || r.Err.Error() != "internal error in the gcp-secretmanager store" {
			t.Errorf("after a panic: %+v", r)
		}
	}
	rs = g.Fetch(context.Background(), []provider.Target{{Kind: provider.Google, Name: "log"}})
	if string(rs[0].Value) != canary {
		t.Errorf("log: %+v", rs[0])
	}
	rs = open(t, c, provider.Azure).Fetch(context.Background(), []provider.Target{{Kind: provider.Azure, Name: "x"}, {Kind: provider.Azure, Name: "y"}})
	for _, r := range rs {
		if r.Err == nil || r.Err.Error() != "no credentials" {
			t.Errorf("open error: %+v", r)
		}
	}
	rs = open(t, c, provider.SSM).Fetch(context.Background(), []provider.Target{{Kind: provider.SSM, Name: "x"}})
	if rs[0].Err == nil || !strings.Contains(rs[0].Err.Error(), "without the aws-ssm store") {
		t.Errorf("a kind the resolver lacks: %+v", rs[0])
	}
	if err := c.Close(); err != nil {
		t.Error(err)
	}
	out := stderr()
	if strings.Contains(out, canary) {
		t.Errorf("stderr holds a value:\n%s", out)
	}
	if !strings.Contains(out, `{"time":`) || !strings.Contains(out, `"msg":"a store's warning"`) {
		t.Errorf("stderr %q lacks the store's JSON log line", out)
	}
}

// TestDeadline: the resolver keeps the request's deadline: a store that
// never answers ends with it, and the error is a deadline error.
func TestDeadline(t *testing.T) {
	c, _ := newClient(t, Settings{})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	rs := open(t, c, provider.Vault).Fetch(ctx, []provider.Target{{Kind: provider.Vault, Name: "kv/app"}})
	if !errors.Is(rs[0].Err, context.DeadlineExceeded) || !strings.HasPrefix(rs[0].Err.Error(), "reading kv/app: ") {
		t.Errorf("result %+v, want a deadline error", rs[0])
	}
}

// TestConcurrentKinds: requests of several kinds are in flight at once
// on the one connection, and each gets its own answer.
func TestConcurrentKinds(t *testing.T) {
	c, _ := newClient(t, Settings{Concurrency: 4})
	ctx, cancel := context.WithCancel(context.Background())
	blocked := make(chan []provider.Result)
	go func() {
		blocked <- open(t, c, provider.Vault).Fetch(ctx, []provider.Target{{Kind: provider.Vault, Name: "slow"}})
	}()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			name := fmt.Sprint("s", i)
			rs := open(t, c, provider.Google).Fetch(context.Background(), []provider.Target{{Kind: provider.Google, Name: name}})
			if string(rs[0].Value) != "google:"+name {
				t.Errorf("request %d got %+v", i, rs[0])
			}
		})
	}
	wg.Wait()
	cancel() // the supervisor's context ends; the resolver's has no deadline
	c.Kill()
	if rs := <-blocked; rs[0].Err == nil || !strings.Contains(rs[0].Err.Error(), "the resolver stopped") {
		t.Errorf("a request in flight when the resolver was killed: %+v", rs[0])
	}
}

// TestResolverDies: a resolver that exits mid-request fails that request
// and every later one, without a hang; Close reports its status.
func TestResolverDies(t *testing.T) {
	c, _ := newClient(t, Settings{})
	g := open(t, c, provider.Google)
	rs := g.Fetch(context.Background(), []provider.Target{{Kind: provider.Google, Name: "crash"}})
	if rs[0].Err == nil || !strings.Contains(rs[0].Err.Error(), "the resolver stopped") {
		t.Errorf("result %+v", rs[0])
	}
	rs = g.Fetch(context.Background(), []provider.Target{{Kind: provider.Google, Name: "a"}})
	if rs[0].Err == nil {
		t.Errorf("a request after the resolver died: %+v", rs[0])
	}
	if err := c.Close(); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Errorf("Close: %v", err)
	}
}

// TestKillBeforeStart: after Kill, no resolver starts.
func TestKillBeforeStart(t *testing.T) {
	c, _ := newClient(t, Settings{})
	c.Kill()
	if _, err := c.Opener(provider.Google)(context.Background(), provider.Settings{}); err == nil || c.Started() {
		t.Errorf("Open after Kill: %v, started %v", err, c.Started())
	}
}

// probeText lies in the test binary's read-only data, as the embedded
// resolver lies in the supervisor's.
const probeText = "This text is read back from the executable file at the offset its address maps to."

// TestOpenSelf: the bytes of a constant are found in /proc/self/exe
// through the ELF program headers, for sendfile to copy from.
func TestOpenSelf(t *testing.T) {
	data := unsafe.Slice(unsafe.StringData(probeText), len(probeText))
	f := openSelf(data)
	if f == nil {
		exe, _ := os.ReadFile("/proc/self/exe")
		if len(exe) > 17 && exe[16] != 2 {
			t.Skip("a position-independent test binary")
		}
		t.Fatal("the constant was not found in the executable")
	}
	defer f.Close()
	got := make([]byte, len(data))
	if _, err := io.ReadFull(f, got); err != nil || string(got) != probeText {
		t.Errorf("read %q, %v", got, err)
	}
	if openSelf([]byte(strings.Repeat("heap", 20))) != nil {
		t.Error("bytes on the heap were found in the executable")
	}
}

// TestDetach: after Detach the resolver exits on its own, with status 0,
// for the caller's reaper to collect; a later request fails at once.
func TestDetach(t *testing.T) {
	c, _ := newClient(t, Settings{})
	rs := open(t, c, provider.Google).Fetch(context.Background(), []provider.Target{{Kind: provider.Google, Name: "a"}})
	if string(rs[0].Value) != "google:a" {
		t.Fatalf("result %+v", rs[0])
	}
	pid := c.Pid()
	c.Detach()
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil || !ws.Exited() || ws.ExitStatus() != 0 {
		t.Errorf("the resolver: %v, status %v", err, ws)
	}
	rs = open(t, c, provider.Google).Fetch(context.Background(), []provider.Target{{Kind: provider.Google, Name: "b"}})
	if rs[0].Err == nil {
		t.Errorf("a request after Detach: %+v", rs[0])
	}
}

// TestVersions: once the resolver has answered for a store with a version
// check, the stores the client opens for it have one too (refresh's cheap
// check), and its errors keep their class; a store without one stays a
// plain Store.
func TestVersions(t *testing.T) {
	c, _ := newClient(t, Settings{})
	g := open(t, c, provider.Google)
	if _, ok := g.(provider.Versioner); ok {
		t.Fatal("a Versioner before the resolver said so")
	}
	g.Fetch(context.Background(), []provider.Target{{Kind: provider.Google, Name: "a"}})
	v, ok := open(t, c, provider.Google).(provider.Versioner)
	if !ok {
		t.Fatal("the Google store lost its version check")
	}
	rs := v.Versions(context.Background(), []provider.Target{{Kind: provider.Google, Name: "a"}, {Kind: provider.Google, Name: "denied"}})
	if rs[0].Version != "v-a" || rs[0].Value != nil || !errors.Is(rs[1].Err, provider.ErrDenied) {
		t.Errorf("versions %+v", rs)
	}
	open(t, c, provider.File).Fetch(context.Background(), []provider.Target{{Kind: provider.File, Name: "/nonexistent"}})
	if _, ok := open(t, c, provider.File).(provider.Versioner); ok {
		t.Error("the file store became a Versioner")
	}
}
