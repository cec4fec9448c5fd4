package gcp

import (
	"errors"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"

	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/gcp/gcpfake"
)

// versionsOf checks refs through provider.Versions, failing on a value or
// a canary in an error.
func versionsOf(t *testing.T, st *store, refs ...string) []provider.Result {
	t.Helper()
	rs := provider.Versions(t.Context(), st, targets(t, refs...))
	for i, r := range rs {
		if r.Value != nil || (r.Version == "") == (r.Err == nil) {
			t.Fatalf("%s: want a version or an error, got %+v", refs[i], r)
		}
		if r.Err != nil && strings.Contains(r.Err.Error(), canary) {
			t.Errorf("%s: error holds a value: %v", refs[i], r.Err)
		}
	}
	return rs
}

func TestVersions(t *testing.T) {
	isolate(t)
	f := startFake(t)
	regional := startFake(t)
	const name = "projects/p/secrets/db"
	f.Add(name, []byte("one-"+canary))
	f.Add(name, []byte("two-"+canary))
	f.Alias(name, "stable", 1)
	regional.Add("projects/p/locations/europe-west1/secrets/db", []byte("eu-"+canary))
	st := fakeStore("p", settings(), map[string]*gcpfake.Server{"": f, "europe-west1": regional})

	refs := []string{
		"gcp:secretmanager:db",
		"gcp:secretmanager:projects/p/secrets/db/versions/latest",
		"gcp:secretmanager:db/versions/stable",
		"gcp:secretmanager:projects/p/locations/europe-west1/secrets/db",
	}
	rs := versionsOf(t, st, refs...)
	for i, want := range []string{"2", "2", "1", "1"} {
		if rs[i].Version != want {
			t.Errorf("%s: version %q, want %s", refs[i], rs[i].Version, want)
		}
	}
	if f.Count("GetSecretVersion") != 3 || regional.Count("GetSecretVersion") != 1 {
		t.Errorf("GetSecretVersion calls: %d global, %d regional", f.Count("GetSecretVersion"), regional.Count("GetSecretVersion"))
	}
	if f.Count("AccessSecretVersion")+regional.Count("AccessSecretVersion") != 0 {
		t.Error("Versions read a payload")
	}
	// What Fetch serves is the version Versions reported.
	if r := fetch(t, st, 10*time.Second, refs[0])[0]; r.Version != "2" {
		t.Errorf("Fetch serves %q", r.Version)
	}

	f.Add(name, []byte("three-"+canary))
	f.Alias(name, "stable", 2)
	rs = versionsOf(t, st, refs[0], refs[2], "gcp:secretmanager:db/versions/1")
	if rs[0].Version != "3" || rs[1].Version != "2" || rs[2].Version != "1" {
		t.Errorf("after a new version and a moved alias: %+v", rs)
	}
	if n := f.Count("GetSecretVersion"); n != 5 {
		t.Errorf("%d GetSecretVersion calls, want 5: the pinned version is never asked", n)
	}
}

func TestVersionsDeletedDeniedThrottled(t *testing.T) {
	isolate(t)
	f := startFake(t)
	f.Add("projects/p/secrets/a", []byte(canary))
	f.Add("projects/p/secrets/gone", []byte(canary))
	f.Add("projects/p/secrets/off", []byte(canary))
	f.SetState("projects/p/secrets/off", 1, secretmanagerpb.SecretVersion_DISABLED)
	f.Delete("projects/p/secrets/gone")
	st := fakeStore("p", settings(), map[string]*gcpfake.Server{"": f})
	st.backoff = provider.Backoff{Throttled: provider.Step{Base: time.Millisecond, Max: 10 * time.Millisecond}}

	rs := versionsOf(t, st, "gcp:secretmanager:a", "gcp:secretmanager:gone", "gcp:secretmanager:off", "gcp:secretmanager:a/versions/nosuchalias")
	if rs[0].Version != "1" || !errors.Is(rs[1].Err, provider.ErrNotFound) || rs[2].Err == nil || !strings.Contains(rs[2].Err.Error(), "disabled") || !errors.Is(rs[3].Err, provider.ErrNotFound) {
		t.Errorf("versions %+v", rs)
	}

	f.DenyGet(true)
	r := versionsOf(t, st, "gcp:secretmanager:a")[0]
	if !errors.Is(r.Err, provider.ErrDenied) || !strings.Contains(r.Err.Error(), "secretmanager.versions.get") {
		t.Errorf("denied: %v", r.Err)
	}
	// The fallback, reading the value, still works.
	if r := fetch(t, st, 10*time.Second, "gcp:secretmanager:a")[0]; string(r.Value) != canary {
		t.Errorf("fallback read: %v", r.Err)
	}
	// A project without the API is not a denied version check.
	f.DenyGet(false)
	f.DisableAPI("p")
	if r := versionsOf(t, st, "gcp:secretmanager:a")[0]; errors.Is(r.Err, provider.ErrDenied) || !strings.Contains(r.Err.Error(), "not enabled") {
		t.Errorf("API disabled: %v", r.Err)
	}

	g := startFake(t)
	g.Add("projects/p/secrets/a", []byte(canary))
	g.Throttle(2)
	st = fakeStore("p", settings(), map[string]*gcpfake.Server{"": g})
	st.backoff = provider.Backoff{Throttled: provider.Step{Base: time.Millisecond, Max: 10 * time.Millisecond}}
	if r := versionsOf(t, st, "gcp:secretmanager:a")[0]; r.Version != "1" || g.Count("GetSecretVersion") != 3 {
		t.Errorf("after 2 throttles: %+v in %d calls", r, g.Count("GetSecretVersion"))
	}
}
