package options

import (
	"errors"
	"flag"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"
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
