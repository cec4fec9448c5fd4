package resolver

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/secrets-init/secrets-init/provider"
)

// TestCrashReported: a panic nothing recovers ends the resolver; the
// requests fail with ErrCrashed, Crashed says so, and the runtime's
// report (which holds the panic's value, the canary) reaches neither the
// supervisor's stderr nor any error.
func TestCrashReported(t *testing.T) {
	c, stderr := newClient(t, Settings{LogFormat: "json"})
	g := open(t, c, provider.Google)
	rs := g.Fetch(context.Background(), []provider.Target{{Kind: provider.Google, Name: "crash-panic"}})
	if !errors.Is(rs[0].Err, ErrCrashed) {
		t.Fatalf("result %+v, want ErrCrashed", rs[0])
	}
	if err := c.Crashed(); !errors.Is(err, ErrCrashed) {
		t.Errorf("Crashed: %v", err)
	}
	c.Close()
	for _, s := range []string{stderr(), rs[0].Err.Error()} {
		if strings.Contains(s, canary) || strings.Contains(s, "goroutine") {
			t.Errorf("the crash report got through: %q", s)
		}
	}
}

// TestNoCrash: a resolver that exits, logs or recovers a store's panic
// has not crashed; its log lines still reach the supervisor's stderr.
func TestNoCrash(t *testing.T) {
	c, stderr := newClient(t, Settings{LogFormat: "json"})
	g := open(t, c, provider.Google)
	rs := g.Fetch(context.Background(), []provider.Target{{Kind: provider.Google, Name: "log"}, {Kind: provider.Google, Name: "a"}})
	if rs[0].Err != nil || rs[1].Err != nil {
		t.Fatalf("results %+v", rs)
	}
	rs = g.Fetch(context.Background(), []provider.Target{{Kind: provider.Google, Name: "panic"}})
	if rs[0].Err == nil || errors.Is(rs[0].Err, ErrCrashed) {
		t.Errorf("a recovered panic: %v", rs[0].Err)
	}
	rs = g.Fetch(context.Background(), []provider.Target{{Kind: provider.Google, Name: "crash"}})
	if errors.Is(rs[0].Err, ErrCrashed) || c.Crashed() != nil {
		t.Errorf("an exit: %v, %v", rs[0].Err, c.Crashed())
	}
	c.Close()
	if !strings.Contains(stderr(), "a store's warning") {
		t.Errorf("the resolver's log line is missing: %q", stderr())
	}
}
