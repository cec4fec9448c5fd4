package main

import (
	"bytes"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/secrets-init/secrets-init/internal/options"
)

// With refresh, VAULT_REVOKE_TOKEN is made inert (one warning) before the
// stores open: revoking the token would revoke the leases refresh renews.
// Without refresh, or for a dry run, it stays as set.
func TestRefreshKeepsVaultToken(t *testing.T) {
	for _, c := range []struct {
		name    string
		o       options.Options
		dryRun  bool
		set     string
		want    string
		warning bool
	}{
		{"refresh", options.Options{Refresh: time.Minute}, false, "true", "false", true},
		{"leases", options.Options{RefreshLeases: true}, false, "1", "false", true},
		{"no refresh", options.Options{}, false, "true", "true", false},
		{"dry run", options.Options{Refresh: time.Minute}, true, "true", "true", false},
		{"false", options.Options{Refresh: time.Minute}, false, "false", "false", false},
		{"invalid", options.Options{Refresh: time.Minute}, false, "maybe", "maybe", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("VAULT_REVOKE_TOKEN", c.set)
			var buf bytes.Buffer
			keepVaultToken(&c.o, slog.New(slog.NewTextHandler(&buf, nil)), c.dryRun)
			if got := os.Getenv("VAULT_REVOKE_TOKEN"); got != c.want {
				t.Errorf("VAULT_REVOKE_TOKEN=%q, want %q", got, c.want)
			}
			if got := strings.Count(buf.String(), "VAULT_REVOKE_TOKEN is ignored with --refresh"); got != b2i(c.warning) {
				t.Errorf("%d warnings, want %d:\n%s", got, b2i(c.warning), &buf)
			}
		})
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
