package provider

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Target.At gives each store's pinned form, and the result is Pinned.
func TestAtPins(t *testing.T) {
	for ref, want := range map[string]Target{
		"aws:secretsmanager:db":               {Kind: SecretsManager, Name: "db", Version: "V"},
		"aws:secretsmanager:db::AWSPREVIOUS":  {Kind: SecretsManager, Name: "db", Version: "V"},
		"aws:ssm:/p":                          {Kind: SSM, Name: "/p", Version: "V"},
		"aws:ssm:/p:live":                     {Kind: SSM, Name: "/p", Version: "V"},
		"gcp:secretmanager:s":                 {Kind: Google, Name: "s", Version: "V"},
		"gcp:secretmanager:s/versions/stable": {Kind: Google, Name: "s", Version: "V"},
		"vault:secret/app#k":                  {Kind: Vault, Name: "secret/app", Version: "V"},
		"azure:keyvault:n":                    {Kind: Azure, Name: "n", Version: "V"},
		"secretfile:/run/secrets/x":           {Kind: File, Name: "/run/secrets/x"},
	} {
		r, _, err := Parse(ref)
		if err != nil {
			t.Fatal(err)
		}
		v := "V"
		if r.Kind == SSM || r.Kind == Google || r.Kind == Vault {
			v, want.Version = "7", "7"
		}
		got := r.Target.At(v)
		if got != want {
			t.Errorf("%s: At = %+v, want %+v", ref, got, want)
		}
		if got.Pinned() != (r.Kind != File) {
			t.Errorf("%s: At(%s).Pinned() = %v", ref, v, got.Pinned())
		}
		if r.Target.At("") != r.Target {
			t.Errorf("%s: At(\"\") changed the target", ref)
		}
	}
}

// versioned is an in-memory Google store with versions: it serves the
// version a target names (latest when none), reports it, and records what
// it was asked. serve, when set, is the version it serves whatever it was
// asked (a store that does not honour a pin).
type versioned struct {
	mu       sync.Mutex
	versions []string
	asked    []string
	serve    string
}

func (s *versioned) open(context.Context, Settings) (Store, error) { return s, nil }

func (s *versioned) Fetch(_ context.Context, ts []Target) []Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := make([]Result, len(ts))
	for i, t := range ts {
		s.asked = append(s.asked, t.Version)
		n := len(s.versions)
		if t.Version != "" {
			n, _ = strconv.Atoi(t.Version)
		}
		if s.serve != "" {
			n, _ = strconv.Atoi(s.serve)
		}
		rs[i] = Result{Value: []byte(s.versions[n-1]), Version: strconv.Itoa(n)}
	}
	return rs
}

func (s *versioned) add(v string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.versions = append(s.versions, v)
}

// RefetchAt reads a changed target at the version its check saw, however
// many versions were added since; a store serving another version than
// the pinned one fails the round; a fingerprint that is not the check's is
// a MovedError with nothing staged.
func TestRefetchAtPins(t *testing.T) {
	s := &versioned{versions: []string{`{"k":"one-` + canary + `"}`}}
	cfg := refreshConfig(t)
	cfg.Stores[Google] = s.open
	res, err := resolve(t, cfg, "A=gcp:secretmanager:db#k", "B=gcp:secretmanager:db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Files.Remove() })
	target := res.Targets()[0].Ref.Target
	s.add(`{"k":"two-` + canary + `"}`)
	s.add(`{"k":"three-` + canary + `"}`)

	fetched, err := res.RefetchAt(context.Background(), []Changed{{Target: target, Version: "2"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(fetched) != 1 || fetched[0].Target != target || fetched[0].Version != "2" {
		t.Errorf("fetched %+v", fetched)
	}
	if got := s.asked[len(s.asked)-1]; got != "2" || len(s.asked) != 2 {
		t.Errorf("the store was asked %q", s.asked)
	}
	if _, err := res.Commit(); err != nil {
		t.Fatal(err)
	}
	if envOf(res.Env, "A") != "two-"+canary {
		t.Errorf("A is not version 2's")
	}
	for _, v := range res.Variables() {
		if v.Version != "2" {
			t.Errorf("%s: version %q", v.Name, v.Version)
		}
	}

	s.serve = "3" // does not honour the pin
	_, err = res.RefetchAt(context.Background(), []Changed{{Target: target, Version: "2"}})
	var f *Failure
	if !errors.As(err, &f) || !strings.Contains(err.Error(), "served version 3, not the version 2") || strings.Contains(err.Error(), canary) {
		t.Errorf("a store serving another version: %v", err)
	}
	if len(res.Staged()) != 0 {
		t.Error("staged after a failure")
	}

	// By fingerprint (the check read the value): the read is compared.
	s.serve = ""
	_, err = res.RefetchAt(context.Background(), []Changed{{Target: target, Fingerprint: cfg.Fingerprint([]byte(s.versions[1]))}})
	var moved *MovedError
	if !errors.As(err, &moved) || len(moved.Targets) != 1 || moved.Targets[0] != target || strings.Contains(err.Error(), canary) {
		t.Errorf("a read that is not what the check saw: %v", err)
	}
	if len(res.Staged()) != 0 {
		t.Error("staged after a move")
	}
	if _, err := res.RefetchAt(context.Background(), []Changed{{Target: target, Fingerprint: cfg.Fingerprint([]byte(s.versions[2]))}}); err != nil {
		t.Fatal(err)
	}
	if changes, err := res.Commit(); err != nil || len(changes) != 2 || envOf(res.Env, "A") != "three-"+canary {
		t.Errorf("Commit after a matching read: %v, %v", changes, err)
	}
}
