package options

import (
	"errors"
	"flag"
	"log/slog"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/secrets-init/secrets-init/provider"
)

func env(kv ...string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		for _, e := range kv {
			if n, v, _ := strings.Cut(e, "="); n == name {
				return v, true
			}
		}
		return "", false
	}
}

func TestParse(t *testing.T) {
	o, cmd, err := Parse([]string{"--timeout=2m", "-l", "json", "--skip", "A", "node", "--inspect"},
		env("SECRETS_INIT_TIMEOUT=5s", "SECRETS_INIT_SKIP=B,C", "SECRETS_INIT_LOG_LEVEL=debug", "LOG_FORMAT=text"))
	if err != nil {
		t.Fatal(err)
	}
	if o.Timeout != 2*time.Minute || o.LogFormat != "json" || o.LogLevel != slog.LevelDebug {
		t.Errorf("flags did not win over variables: %+v", o)
	}
	if !slices.Equal(o.Skip, []string{"A"}) {
		t.Errorf("Skip = %q: the flag wins over SECRETS_INIT_SKIP", o.Skip)
	}
	if !slices.Equal(cmd, []string{"node", "--inspect"}) {
		t.Errorf("command = %q", cmd)
	}
}

func TestParseLegacyVariables(t *testing.T) {
	o, _, err := Parse(nil, env("LOG_FORMAT=json", "EXIT_EARLY=true"))
	if err != nil || o.LogFormat != "json" || !o.ExitEarly {
		t.Fatalf("doitintl's variables: %+v, %v", o, err)
	}
	// An application's own LOG_FORMAT with another meaning is not an error.
	if o, _, err = Parse(nil, env("LOG_FORMAT=logfmt")); err != nil || o.LogFormat != "text" {
		t.Fatalf("LOG_FORMAT=logfmt: %+v, %v", o, err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"--nope"}, nil, "not defined"},
		{[]string{"--forward-to", "x"}, nil, "want group or child"},
		{[]string{"--concurrency", "0"}, nil, "at least 1"},
		{nil, []string{"SECRETS_INIT_LOG_LEVEL=loud"}, "SECRETS_INIT_LOG_LEVEL: want debug"},
		{nil, []string{"SECRETS_INIT_REWRITE=TERM:QUIT,HUP"}, "SECRETS_INIT_REWRITE"},
	} {
		_, _, err := Parse(tc.args, env(tc.env...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q, %q) = %v, want an error with %q", tc.args, tc.env, err, tc.want)
		}
	}
	if _, _, err := Parse([]string{"--help"}, env()); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v", err)
	}
}

func TestParseRefresh(t *testing.T) {
	o, _, err := Parse([]string{"--refresh", "5m", "--on-file-change", "HUP", "--splay=30s", "--max-stale", "1h",
		"--status-file", "/run/s.json", "--refresh-signal", "USR2", "true"}, env("SECRETS_INIT_ON_CHANGE=none", "SECRETS_INIT_STOP_TIMEOUT=5s"))
	if err != nil {
		t.Fatal(err)
	}
	if o.Refresh != 5*time.Minute || o.RefreshLeases || o.Splay != 30*time.Second || o.MaxStale != time.Hour ||
		o.StatusFile != "/run/s.json" || o.RefreshSignal != syscall.SIGUSR2 || o.StopTimeout != 5*time.Second {
		t.Errorf("refresh flags: %+v", o)
	}
	if o.OnChange.Kind != provider.ActNone || o.OnFileChange != (provider.Action{Kind: provider.ActSignal, Signal: syscall.SIGHUP}) {
		t.Errorf("actions: %v %v", o.OnChange, o.OnFileChange)
	}
	o, _, err = Parse(nil, env("SECRETS_INIT_REFRESH=leases"))
	if err != nil || !o.RefreshLeases || o.Refresh != 0 {
		t.Errorf("--refresh leases: %+v, %v", o, err)
	}
	o, _, err = Parse(nil, env())
	if err != nil || o.Refresh != 0 || o.StopTimeout != 30*time.Second || o.OnChange.Kind != provider.ActRestart || o.OnFileChange.Kind != provider.ActRestart {
		t.Errorf("defaults: %+v, %v", o, err)
	}
	// The test-only floor.
	if o, _, err = Parse([]string{"--refresh", "20ms"}, env(TestRefreshFloor+"=1ms")); err != nil || o.Refresh != 20*time.Millisecond {
		t.Errorf("below the floor with %s: %+v, %v", TestRefreshFloor, o, err)
	}
}

func TestParseRefreshErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  []string
		want string
	}{
		{[]string{"--refresh", "9s"}, nil, "too short (at least 10s)"},
		{[]string{"--refresh", "soon"}, nil, "want a duration"},
		{[]string{"--refresh", "0s"}, nil, "want a duration"},
		{[]string{"--refresh", "1m", "--exec"}, nil, "cannot be combined with --exec"},
		{nil, []string{"SECRETS_INIT_REFRESH=1m", "SECRETS_INIT_EXEC=true"}, "cannot be combined with --exec"},
		{[]string{"--on-change", "HUP", "--refresh", "1m"}, nil, "want restart or none"},
		{[]string{"--on-file-change", "KILL", "--refresh", "1m"}, nil, "cannot be used"},
		{[]string{"--on-file-change", "off", "--refresh", "1m"}, nil, "want restart, a signal"},
		{[]string{"--on-change", "none"}, nil, "--on-change needs --refresh"},
		{nil, []string{"SECRETS_INIT_STATUS_FILE=/x"}, "--status-file needs --refresh"},
		{[]string{"--stop-timeout", "5s"}, nil, "--stop-timeout needs --refresh"},
		{[]string{"--refresh", "1m", "--splay", "2m"}, nil, "longer than --refresh"},
		{[]string{"--refresh", "1m", "--splay", "-1s"}, nil, "cannot be negative"},
		{[]string{"--refresh", "1m", "--stop-timeout", "0s"}, nil, "must be positive"},
		{[]string{"--refresh", "1m", "--max-stale", "30s"}, nil, "shorter than --refresh"},
		{[]string{"--refresh", "1m", "--refresh-signal", "STOP"}, nil, "cannot be used"},
		{[]string{"--refresh", "1m", "--refresh-signal", "HUP", "--on-file-change", "HUP"}, nil, "also --on-file-change"},
		{[]string{"--refresh", "1m"}, []string{TestRefreshFloor + "=x"}, TestRefreshFloor},
	} {
		_, _, err := Parse(tc.args, env(tc.env...))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q, %q) = %v, want an error with %q", tc.args, tc.env, err, tc.want)
		}
	}
}
