package refresh

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrets-init/secrets-init/provider"
)

// TestPlanOfWrite: a Vault write is never polled (polling would issue a
// new certificate every round), so it costs no calls per month.
func TestPlanOfWrite(t *testing.T) {
	ref, _, err := provider.Parse(`>>vault:pki/issue/web#certificate#{"common_name":"w"}?file`)
	if err != nil {
		t.Fatal(err)
	}
	p := PlanOf(ref, time.Minute, false)
	if p.PerMonth != 0 || !strings.Contains(p.How, "never polled") {
		t.Errorf("PlanOf(write) = %+v", p)
	}
	read, _, _ := provider.Parse("vault:kv/app#k")
	if PlanOf(read, time.Minute, false).PerMonth == 0 {
		t.Error("a KV read costs nothing")
	}
}

// writeStore answers every write with {} and no lease (as a 204 No
// Content): it has no Versioner, so a poll of it could only write again.
type writeStore struct {
	mu     sync.Mutex
	writes int
}

func (s *writeStore) Fetch(_ context.Context, ts []provider.Target) []provider.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes += len(ts)
	out := make([]provider.Result, len(ts))
	for i := range out {
		out[i].Value = []byte("{}")
	}
	return out
}

// A write whose answer has neither lease nor expiration is never polled:
// a day of 1m rounds makes no write after the first.
func TestWriteWithoutLeaseNeverPolled(t *testing.T) {
	st := &writeStore{}
	open := func(context.Context, provider.Settings) (provider.Store, error) { return st, nil }
	h := startWith(t, Config{}, map[provider.Kind]provider.Opener{provider.Vault: open}, map[string]string{"f": "x"},
		"ROTATE=>>vault:database/rotate-root/db", "F=secretfile:DIR/f")
	h.run(h.clock.now.Add(24 * time.Hour))
	if st.writes != 1 || h.loop.counters.Checks < 1000 {
		t.Errorf("%d writes in %d rounds, want 1", st.writes, h.loop.counters.Checks)
	}
	for _, v := range h.readStatus().Variables {
		if v.Name == "ROTATE" && v.State != "unchecked" {
			t.Errorf("ROTATE: state %s, want unchecked", v.State)
		}
	}
}
