package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/secrets-init/secrets-init/internal/testbin"
)

// TestHarness runs each benchmark once, small, against a freshly built
// secrets-init: the tables come out, every run checked its child's values,
// and the fleet's processes all started their child.
func TestHarness(t *testing.T) {
	bin := testbin.SecretsInit(t)

	var out bytes.Buffer
	if err := stores(&out, []string{"-runs", "1", "-refs", "1,25", "-latency", "1ms", bin}); err != nil {
		t.Fatalf("stores: %v\n%s", err, out.String())
	}
	// 25 references: 2 BatchGetSecretValue calls (20 ids each), 3
	// GetParameters calls (10 names each), 25 Google reads, 25 Key Vault
	// reads with one token.
	want := map[string]string{"secretsmanager": "2", "ssm": "3", "gcp": "25", "azure": "(1 token, 25 reads)"}
	for _, line := range strings.Split(out.String(), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || f[1] != "25" {
			continue
		}
		if w, ok := want[f[0]]; ok && (w == f[5] || strings.HasSuffix(line, w)) {
			delete(want, f[0])
		}
	}
	if len(want) > 0 {
		t.Errorf("the stores table lacks the calls of 25 references for %v:\n%s", want, out.String())
	}

	out.Reset()
	if err := fleet(&out, []string{"-procs", "8", "-refs", "3", "-rate", "1000", "-burst", "4", "-at-once", "-label", "t", bin}); err != nil {
		t.Fatalf("fleet: %v\n%s", err, out.String())
	}
	// Columns: build, rate, burst, processes, held s, started child, wrong, failed, …
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("fleet printed %d lines, want a header and a row:\n%s", len(lines), out.String())
	}
	f := strings.Fields(lines[1])
	if len(f) < 8 || f[3] != "8" || f[5] != "8" || f[6] != "0" || f[7] != "0" {
		t.Errorf("want 8 processes, 8 started, 0 wrong, 0 failed:\n%s", out.String())
	}

	out.Reset()
	if err := exectime(&out, []string{"-n", "3", bin, "--version"}); err != nil || out.Len() == 0 {
		t.Errorf("exectime: %v, %q", err, out.String())
	}
}
