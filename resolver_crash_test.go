package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrets-init/secrets-init/internal/resolver"
	"github.com/secrets-init/secrets-init/internal/testbin"
)

// TestResolverCrash: a resolver that panics where nothing recovers (the
// test-only resolver.TestPanicVariable, whose value, a canary, is in the
// panic's text) is a failed resolution: exit 125, the command not
// started, and one line of secrets-init's own in the format asked for,
// with nothing of the runtime's report.
func TestResolverCrash(t *testing.T) {
	t.Parallel()
	if !testbin.Split() {
		t.Skip("the single-process build has no resolver")
	}
	const canary = "CANARY-crash-9f8e7d"
	prog := buildTestprog(t)
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			marker := filepath.Join(t.TempDir(), "started")
			env := append(awsEnv(awsFake()), stdPath, "RESOLVED=aws:secretsmanager:forced", "OTHER=aws:ssm:/x", resolver.TestPanicVariable+"="+canary)
			p := startInit(t, false, env, "--log-format", format, "--", prog, "touch", marker)
			if code := p.wait(); code != 125 {
				t.Errorf("exit code %d, want 125\nstderr:\n%v", code, p.stderr)
			}
			p.waitOutput()
			out := p.stderr.String()
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], "the resolver crashed") || !strings.Contains(lines[0], "the command was not started") {
				t.Errorf("stderr, want one line saying the resolver crashed:\n%s", out)
			}
			if format == "json" {
				var line map[string]any
				if err := json.Unmarshal([]byte(lines[0]), &line); err != nil || line["level"] != "ERROR" {
					t.Errorf("not a JSON error line (%v): %s", err, lines[0])
				}
			}
			for _, s := range []string{canary, "goroutine", "panic:"} {
				if strings.Contains(out, s) {
					t.Errorf("stderr holds %q:\n%s", s, out)
				}
			}
			if _, err := os.Stat(marker); err == nil {
				t.Errorf("the command ran")
			}
		})
	}
}

// TestResolverTraceIsNoCrash: the runtime's traces on the resolver's fd 2
// (GODEBUG=inittrace=1, which it inherits) are no crash: the resolution
// succeeds and the command runs.
func TestResolverTraceIsNoCrash(t *testing.T) {
	t.Parallel()
	if !testbin.Split() {
		t.Skip("the single-process build has no resolver")
	}
	prog := buildTestprog(t)
	marker := filepath.Join(t.TempDir(), "started")
	env := append(awsEnv(awsFake()), stdPath, "RESOLVED=aws:secretsmanager:forced", "GODEBUG=inittrace=1")
	p := startInit(t, false, env, "--", prog, "touch", marker)
	if code := p.wait(); code != 0 {
		t.Errorf("exit code %d, want 0\nstderr:\n%v", code, p.stderr)
	}
	p.waitOutput()
	if strings.Contains(p.stderr.String(), "crashed") {
		t.Errorf("stderr:\n%s", p.stderr.String())
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("the command did not run: %v", err)
	}
}
