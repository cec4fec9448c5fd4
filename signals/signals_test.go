package signals

import (
	"syscall"
	"testing"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]syscall.Signal{
		"TERM": syscall.SIGTERM, "SIGTERM": syscall.SIGTERM, "term": syscall.SIGTERM, "sigquit": syscall.SIGQUIT,
		"15": syscall.SIGTERM, "0": 0, "WINCH": syscall.SIGWINCH, "USR1": syscall.SIGUSR1,
	} {
		if got, err := Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "NOPE", "SIG", "-1", "65", "1.5"} {
		if got, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %v; want an error", in, got)
		}
	}
}

func TestRewrite(t *testing.T) {
	r := Rewrite{}
	for _, rule := range []string{"TERM:QUIT", "10:12", "HUP:0"} {
		if err := r.Set(rule); err != nil {
			t.Fatalf("Set(%q): %v", rule, err)
		}
	}
	for from, want := range map[syscall.Signal]syscall.Signal{
		syscall.SIGTERM: syscall.SIGQUIT, syscall.SIGUSR1: syscall.SIGUSR2, syscall.SIGHUP: 0, syscall.SIGINT: syscall.SIGINT,
	} {
		if got := r.Map(from); got != want {
			t.Errorf("Map(%v) = %v, want %v", from, got, want)
		}
	}
	for _, bad := range []string{"TERM", "0:TERM", "TERM:NOPE", "X:1", ":"} {
		if err := r.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted a bad rule", bad)
		}
	}
}

func TestName(t *testing.T) {
	if got := Name(syscall.SIGTERM); got != "SIGTERM" {
		t.Errorf("Name(SIGTERM) = %q", got)
	}
	if got := Name(syscall.Signal(63)); got == "" {
		t.Errorf("Name(63) is empty")
	}
}
