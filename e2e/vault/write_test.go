package vault_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"
)

// The write form >>vault:PATH#KEY#JSON_BODY against Vault's own core,
// router and ACLs (the PKI engine, which this module cannot build, is
// tested in e2e/vaultengines, on a real core). sys/tools/random answers each write with new
// random bytes, so two variables with the same value came from one write.

// TestWriteSharedOnce: variables that select from one write (same path,
// bodies equal up to spacing and member order) get one PUT, counted at the
// proxy; a different body is another write.
func TestWriteSharedOnce(t *testing.T) {
	s := newServer(t)
	s.requests()
	r := s.run(t, map[string]string{
		"VAULT_TOKEN": s.root.Token(),
		"A":           `>>vault:sys/tools/random/32#random_bytes#{"format":"hex","source":"platform"}`,
		"B":           `>>vault:sys/tools/random/32#random_bytes#{ "source" : "platform", "format" : "hex" }`,
		"C":           `>>vault:sys/tools/random/32#random_bytes#{"format":"base64"}`,
	})
	r.ok(t, nil)
	if r.env["A"] == "" || r.env["A"] != r.env["B"] || len(r.env["A"]) != 64 {
		t.Errorf("A %q, B %q: want the same 32 bytes in hex", r.env["A"], r.env["B"])
	}
	if r.env["C"] == "" || r.env["C"] == r.env["A"] {
		t.Errorf("C %q: want another write's bytes", r.env["C"])
	}
	reqs := s.requests()
	if n := count(reqs, http.MethodPut, "/v1/sys/tools/random/32") + count(reqs, http.MethodPost, "/v1/sys/tools/random/32"); n != 2 {
		t.Errorf("%d writes to sys/tools/random/32, want 2 (one per distinct body): %v", n, reqs)
	}
	if n := len(reqs); n != 2 {
		t.Errorf("%d requests, want only the 2 writes (no mount lookup): %v", n, reqs)
	}
}

// TestWriteDenied: a token whose policy lacks "update" on the path fails
// closed, naming the variable, the path and the capability; the body (it
// holds the canary) appears nowhere.
func TestWriteDenied(t *testing.T) {
	s := newServer(t)
	if err := s.root.Sys().PutPolicy("nowrite", `path "sys/tools/random/*" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	tok, err := s.root.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"nowrite"}})
	if err != nil {
		t.Fatal(err)
	}
	r := s.run(t, map[string]string{
		"VAULT_TOKEN": tok.Auth.ClientToken,
		"RND":         `>>vault:sys/tools/random/32#random_bytes#{"format":"hex","note":"` + canary + `"}`,
	})
	r.failed(t, "RND", `>>vault:sys/tools/random/32#random_bytes#{"format":…,"note":…}`, "permission denied", `"update" capability on sys/tools/random/32`)
}

// TestWriteBadBody: a body that is not a JSON object fails closed before
// any request, naming the variable; the body is not echoed.
func TestWriteBadBody(t *testing.T) {
	s := newServer(t)
	s.requests()
	r := s.run(t, map[string]string{
		"VAULT_TOKEN": s.root.Token(),
		"BAD":         `>>vault:sys/tools/random/32#random_bytes#{"note":"` + canary + `"`,
	})
	r.failed(t, "BAD", "malformed reference", "not a complete JSON object", ">>vault:sys/tools/random/32#random_bytes#{…}")
	for _, q := range s.requests() {
		if strings.Contains(q.path, "random") {
			t.Errorf("a malformed write was sent: %v", q)
		}
	}
}

// TestWritePolicy: the policy `secrets-init policy --format vault` writes
// for a write is accepted by Vault, grants create and update on exactly
// that path (no read), and lets secrets-init make the write.
func TestWritePolicy(t *testing.T) {
	s := newServer(t)
	ref := `>>vault:sys/tools/random/16#random_bytes#{"format":"hex","note":"` + canary + `"}`
	out := generate(t, "-f", manifest(t, map[string][2]string{"RND": {ref, ""}}), "--format", "vault", "--group-by", "none")
	if strings.Contains(out, canary) {
		t.Fatalf("the policy shows the body:\n%s", out)
	}
	c := s.tokenWith(t, "writes", out)
	if got := capabilities(t, c, []string{"sys/tools/random/16", "sys/tools/random/32"}); got["sys/tools/random/16"] != "create,update" || got["sys/tools/random/32"] != "deny" {
		t.Errorf("capabilities %v, want create,update on the write's path only:\n%s", got, out)
	}
	r := s.run(t, map[string]string{"VAULT_TOKEN": c.Token(), "RND": ref})
	r.ok(t, nil)
	if len(r.env["RND"]) != 32 {
		t.Errorf("RND = %q, want 16 bytes in hex", r.env["RND"])
	}
}
