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
	// Bytes on fd 2 from a resolver that goes on serving.
	rs = g.Fetch(context.Background(), []provider.Target{{Kind: provider.Google, Name: "fd2"}})
	if rs[0].Err != nil || c.Crashed() != nil {
		t.Errorf("a write on fd 2: %+v, %v", rs[0], c.Crashed())
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

// crashReport tells the runtime's crash reports from other writes on fd
// 2, whichever way the writes cut the text.
func TestCrashReportLines(t *testing.T) {
	for _, c := range []struct {
		text  string
		crash bool
	}{
		{"init internal/bytealg @0.008 ms, 0 ms clock, 0 bytes, 0 allocs\ngc 1 @0.012s 1%: 0.01+0.2 ms clock\n", false},
		{"SCHED 0ms: gomaxprocs=2 idleprocs=1 threads=4\n", false},
		{"gc 1 @0.012s 1%: trace\npanic: " + canary + "\n\ngoroutine 1 [running]:\n", true},
		{"fatal error: all goroutines are asleep - deadlock!\n", true},
		{"SIGSEGV: segmentation violation\nPC=0x0 m=0 sigcode=1\n", true},
		{"a line that mentions panic: in its middle\n", false},
	} {
		for _, step := range []int{1, 3, len(c.text)} {
			var w crashReport
			for i := 0; i < len(c.text); i += step {
				w.Write([]byte(c.text[i:min(i+step, len(c.text))]))
			}
			if w.found != c.crash {
				t.Errorf("%.30q in writes of %d bytes: crash %v, want %v", c.text, step, w.found, c.crash)
			}
		}
	}
}
