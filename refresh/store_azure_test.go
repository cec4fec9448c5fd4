package refresh

import (
	"strings"
	"testing"
	"time"

	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/azure"
	"github.com/secrets-init/secrets-init/provider/azure/azurefake"
)

var azureStores = map[provider.Kind]provider.Opener{provider.Azure: azure.Open}

// azureReads counts reads of the named secrets of vault: of their current
// version (the check, and an unpinned read), of a named version (a pinned
// read).
func azureReads(vault string, names ...string) [2]int {
	var n [2]int
	for _, name := range names {
		c, v := azFake.Reads(vault, name)
		n[0], n[1] = n[0]+c, n[1]+v
	}
	return n
}

// Azure Key Vault over the wire, through the Loop: quiet rounds make
// exactly one GetSecret of the current version per checked secret (a
// pinned version is never read); a new version is read once, by the
// version id the check saw, and restarts once; a rotation racing between
// the check and the read is read at the checked version; an outage (a
// hang, then server faults) keeps the values and recovers; a deleted
// secret keeps its value.
func TestLoopOverAzure(t *testing.T) {
	const vault = "https://loop.vault.azure.net"
	f := azFake
	f.Put(vault, "db", azurefake.Secret{Value: `{"password":"one-` + canary + `"}`})
	f.Put(vault, "api", azurefake.Secret{Value: "a1-" + canary})
	pin := f.Put(vault, "pin", azurefake.Secret{Value: "p1"})
	h := startWith(t, Config{}, azureStores, nil,
		"PW=azure:keyvault:"+vault+"/secrets/db#password", "RAW=azure:keyvault:"+vault+"/secrets/db?file",
		"API=azure:keyvault:"+vault+"/secrets/api", "PIN=azure:keyvault:"+vault+"/secrets/pin/"+pin)
	reads := func() [2]int { return azureReads(vault, "db", "api", "pin") }
	before := reads()
	for range 50 {
		h.round()
	}
	if got := reads(); got != [2]int{before[0] + 100, before[1]} || len(h.actor.envs) != 0 {
		t.Fatalf("50 quiet rounds: current, named reads %v → %v (want +100, +0); %d restarts", before, got, len(h.actor.envs))
	}
	if s := varState(t, h.loop.Status(), "PIN"); s.State != "pinned" {
		t.Errorf("PIN: %+v", s)
	}

	// A rotation: one read of the version the check saw, one restart.
	v2 := f.Put(vault, "db", azurefake.Secret{Value: `{"password":"two-` + canary + `"}`})
	before = reads()
	h.round()
	h.round()
	if got := reads(); got != [2]int{before[0] + 4, before[1] + 1} {
		t.Errorf("a rotation: %v → %v (want +4, +1)", before, got)
	}
	if len(h.actor.envs) != 1 || envOf(h.actor.envs[0], "PW") != "two-"+canary || varState(t, h.loop.Status(), "PW").Version != v2 {
		t.Fatalf("%d restarts", len(h.actor.envs))
	}

	// A second new version between the check and the read.
	r := race(h, provider.Azure)
	v3 := f.Put(vault, "db", azurefake.Secret{Value: `{"password":"three-` + canary + `"}`})
	var v4 string
	r.then = func() { v4 = f.Put(vault, "db", azurefake.Secret{Value: `{"password":"four-` + canary + `"}`}) }
	before = reads()
	h.round()
	if got := reads(); got != [2]int{before[0] + 2, before[1] + 1} {
		t.Errorf("a raced rotation: %v → %v (want +2, +1)", before, got)
	}
	if len(h.actor.envs) != 2 || envOf(h.actor.envs[1], "PW") != "three-"+canary || varState(t, h.loop.Status(), "PW").Version != v3 {
		t.Fatalf("raced: %d restarts, status %+v", len(h.actor.envs), varState(t, h.loop.Status(), "PW"))
	}
	h.round()
	if len(h.actor.envs) != 3 || envOf(h.actor.envs[2], "PW") != "four-"+canary || varState(t, h.loop.Status(), "PW").Version != v4 {
		t.Fatalf("after the race: %d restarts", len(h.actor.envs))
	}

	// An outage that never answers: one read per secret, the values kept.
	f.Fail(vault, "", azurefake.Fault{Hang: true})
	f.Put(vault, "api", azurefake.Secret{Value: "a2-" + canary})
	h.loop.cfg.Timeout = 300 * time.Millisecond
	before = reads()
	for range 3 {
		h.round()
	}
	s := h.loop.Status()
	if got := reads(); got != [2]int{before[0] + 6, before[1]} || len(h.actor.envs) != 3 || s.ConsecutiveFailures != 3 || varState(t, s, "API").State != "stale" {
		t.Fatalf("an outage: %v → %v, %d restarts, status %+v", before, got, len(h.actor.envs), s)
	}
	// Server faults that pass: retried within the round.
	f.Fail(vault, "", azurefake.Fault{Status: 500, Code: "InternalServerError", Times: 2})
	h.loop.cfg.Timeout = time.Minute
	before = reads()
	h.round()
	s = h.loop.Status()
	if got := reads(); got != [2]int{before[0] + 4, before[1] + 1} || len(h.actor.envs) != 4 || envOf(h.actor.envs[3], "API") != "a2-"+canary || s.ConsecutiveFailures != 0 {
		t.Fatalf("recovery: %v → %v, %d restarts, status %+v", before, got, len(h.actor.envs), s)
	}
	if v := varState(t, s, "API"); v.State != "ok" {
		t.Errorf("API: %+v", v)
	}

	// Deletion: the last value stays.
	f.Delete(vault, "db")
	h.round()
	h.round()
	s = h.loop.Status()
	if v := varState(t, s, "PW"); v.State != "deleted" || s.ConsecutiveFailures != 0 || len(h.actor.envs) != 4 {
		t.Errorf("deleted: %+v, %d restarts", s, len(h.actor.envs))
	}
	if strings.Count(h.log.String(), "was deleted") != 1 {
		t.Errorf("deletion logged %d times", strings.Count(h.log.String(), "was deleted"))
	}
}

// An identity Key Vault refuses: the check is denied, so refresh falls
// back (logged once) to reading the value, which Key Vault's single
// permission refuses too: each round fails with the values kept, making
// one read per secret (no more than a healthy round). Once the role is
// granted, the reads see a rotation by its keyed hash.
func TestLoopOverAzureDenied(t *testing.T) {
	const vault = "https://denied.vault.azure.net"
	f := azFake
	f.Put(vault, "db", azurefake.Secret{Value: "one-" + canary})
	h := startWith(t, Config{}, azureStores, nil, "PW=azure:keyvault:"+vault+"/secrets/db")
	f.Deny(vault, "db")
	t.Cleanup(func() { f.Clear(vault, "db") })
	before := azureReads(vault, "db")
	h.round()
	if got := azureReads(vault, "db"); got != [2]int{before[0] + 2, before[1]} {
		t.Errorf("the denied round: %v → %v (the check, then the value)", before, got)
	}
	before = azureReads(vault, "db")
	for range 5 {
		h.round()
	}
	s := h.loop.Status()
	if got := azureReads(vault, "db"); got != [2]int{before[0] + 5, before[1]} || s.ConsecutiveFailures != 6 || len(h.actor.envs) != 0 {
		t.Fatalf("5 denied rounds: %v → %v, status %+v", before, got, s)
	}
	if strings.Count(h.log.String(), "version check is denied; reading values") != 1 || !strings.Contains(h.log.String(), "Key Vault Secrets User") {
		t.Errorf("log:\n%s", h.log)
	}
	f.Clear(vault, "db")
	f.Put(vault, "db", azurefake.Secret{Value: "two-" + canary})
	before = azureReads(vault, "db")
	h.round()
	if got := azureReads(vault, "db"); got != [2]int{before[0] + 2, before[1]} || len(h.actor.envs) != 1 || envOf(h.actor.envs[0], "PW") != "two-"+canary {
		t.Fatalf("granted, then rotated: %v → %v, %d restarts", before, got, len(h.actor.envs))
	}
	if s := h.loop.Status(); s.ConsecutiveFailures != 0 {
		t.Errorf("status %+v", s)
	}
}
