package resolver

import (
	"os"
	"slices"
	"testing"
)

// TestWithoutGC: the resolver starts with its collector off, unless the
// environment sets GOGC: the user's setting is then left as it is.
func TestWithoutGC(t *testing.T) {
	env := []string{"PATH=/bin", "A=1"}
	got := withoutGC(env)
	if want := []string{"PATH=/bin", "A=1", "GOGC=off", "GOMEMLIMIT=64MiB", GCVariable + "=1"}; !slices.Equal(got, want) {
		t.Errorf("withoutGC(%q) = %q, want %q", env, got, want)
	}
	if !slices.Equal(env, []string{"PATH=/bin", "A=1"}) {
		t.Errorf("the caller's slice changed: %q", env)
	}
	for _, env := range [][]string{{"PATH=/bin", "GOGC=50"}, {"GOGC=", "A=1"}, {"GOMEMLIMIT=1GiB"}} {
		if got := withoutGC(env); !slices.Equal(got, env) {
			t.Errorf("withoutGC(%q) = %q: the user's GOGC and GOMEMLIMIT must stay", env, got)
		}
	}
	_, gogc := os.LookupEnv("GOGC")
	if _, limit := os.LookupEnv("GOMEMLIMIT"); gogc || limit {
		return // this process's environment sets them: withoutGC(nil) keeps it
	}
	t.Setenv("SECRETS_INIT_GC_TEST", "x")
	if got := withoutGC(nil); !slices.Contains(got, "SECRETS_INIT_GC_TEST=x") || !slices.Contains(got, "GOGC=off") {
		t.Errorf("withoutGC(nil) is not this process's environment with GOGC=off: %q", got)
	}
}
