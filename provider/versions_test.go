package provider

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// versionBook is a Versioner that answers from a map and records what it was
// asked; it returns a Value too, which Versions must drop.
type versionBook struct {
	current map[string]string
	asked   []Target
}

func (r *versionBook) Versions(_ context.Context, ts []Target) []Result {
	r.asked = append(r.asked, ts...)
	rs := make([]Result, len(ts))
	for i, t := range ts {
		v, ok := r.current[t.Name]
		switch {
		case t.Name == "unset":
		case !ok:
			rs[i].Err = ErrNotFound
		default:
			rs[i] = Result{Version: v, Value: []byte("CANARY")}
		}
	}
	return rs
}

func TestPinnedRule(t *testing.T) {
	for ref, want := range map[string]bool{
		"aws:secretsmanager:db":                         false,
		"aws:secretsmanager:db::AWSPENDING":             false,
		"aws:secretsmanager:db:::0a1b2c3d":              true,
		"aws:ssm:/p":                                    false,
		"aws:ssm:/p:7":                                  true,
		"aws:ssm:/p:prod":                               false,
		"gcp:secretmanager:s":                           false,
		"gcp:secretmanager:s/versions/latest":           false,
		"gcp:secretmanager:s/versions/stable":           false,
		"gcp:secretmanager:s/versions/12":               true,
		"vault:secret/app#k":                            false,
		"vault:secret/app#k#2":                          true,
		"azure:keyvault:n":                              false,
		"azure:keyvault:n/0123abcd":                     true,
		"secretfile:/run/secrets/x":                     false,
		"@Microsoft.KeyVault(VaultName=v;SecretName=n)": false,
		"jwe:" + compact + "#k":                         true,
	} {
		r, _, err := Parse(ref)
		if err != nil {
			t.Fatal(err)
		}
		if r.Pinned() != want {
			t.Errorf("%s: Pinned = %v, want %v", ref, r.Pinned(), want)
		}
	}
}

func TestVersionsNeverAsksPinned(t *testing.T) {
	rec := &versionBook{current: map[string]string{"a": "7", "b": "v2"}}
	targets := []Target{
		{Kind: SSM, Name: "a"},
		{Kind: SSM, Name: "a", Version: "3"}, // pinned
		{Kind: SecretsManager, Name: "b", Stage: "AWSPREVIOUS"},
		{Kind: SecretsManager, Name: "b", Version: "id-1"}, // pinned
		{Kind: Google, Name: "gone"},
	}
	rs := Versions(t.Context(), rec, targets)
	want := []Target{targets[0], targets[2], targets[4]}
	if !slices.Equal(rec.asked, want) {
		t.Errorf("asked %v, want %v", rec.asked, want)
	}
	for i, v := range []string{"7", "3", "v2", "id-1", ""} {
		if rs[i].Version != v {
			t.Errorf("result %d: version %q, want %q", i, rs[i].Version, v)
		}
		if rs[i].Value != nil || rs[i].FileValue != nil {
			t.Errorf("result %d holds a value", i)
		}
	}
	if !errors.Is(rs[4].Err, ErrNotFound) {
		t.Errorf("deleted: %v", rs[4].Err)
	}
}

func TestVersionsAllPinnedMakesNoCall(t *testing.T) {
	rec := &versionBook{}
	rs := Versions(t.Context(), rec, []Target{{Kind: Vault, Name: "kv/a", Version: "2"}, {Kind: Azure, Name: "n", Version: "ab"}})
	if len(rec.asked) != 0 || rs[0].Version != "2" || rs[1].Version != "ab" {
		t.Errorf("asked %v, got %+v", rec.asked, rs)
	}
}

func TestVersionsUnset(t *testing.T) {
	rec := &versionBook{}
	rs := Versions(t.Context(), rec, []Target{{Kind: Google, Name: "unset"}})
	if rs[0].Err == nil {
		t.Error("an unset result is no error")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	rs = Versions(ctx, rec, []Target{{Kind: Google, Name: "unset"}})
	if !errors.Is(rs[0].Err, context.Canceled) {
		t.Errorf("after ctx ended: %v", rs[0].Err)
	}
}
