package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseWrite(t *testing.T) {
	w := func(name, key, body string, o Options) Ref {
		return Ref{Target: Target{Kind: Vault, Name: name, Body: body}, Key: key, Opts: o}
	}
	tests := []struct {
		in   string
		want Ref
	}{
		{">>vault:pki/issue/web", w("pki/issue/web", "", "{}", Options{})},
		{">>vault:pki/issue/web?file", w("pki/issue/web", "", "{}", Options{File: true})},
		{">>vault:pki/issue/web#certificate", w("pki/issue/web", "certificate", "{}", Options{})},
		{">>vault:pki/issue/web#certificate?file&trim", w("pki/issue/web", "certificate", "{}", Options{File: true, Trim: true})},
		{`>>vault:pki/issue/web#certificate#{"common_name":"web.example.com"}`, w("pki/issue/web", "certificate", `{"common_name":"web.example.com"}`, Options{})},
		{`>>vault:pki/issue/web#certificate#{"common_name":"web.example.com"}?file`, w("pki/issue/web", "certificate", `{"common_name":"web.example.com"}`, Options{File: true})},
		// Spacing and member order do not matter: one canonical body.
		{`>>vault:/pki/issue/web/#private_key#{ "ttl" : "1h", "common_name":"w" }?file=/tls/key&refresh=HUP`,
			w("pki/issue/web", "private_key", `{"common_name":"w","ttl":"1h"}`, Options{File: true, FilePath: "/tls/key", Refresh: Action{Kind: ActSignal, Signal: 1}})},
		// '#', '?', '&', '}' and ':' inside the body's strings are the body's.
		{`>>vault:transit/encrypt/k#ciphertext#{"plaintext":"a#b?c&d}e:f"}?optional`, w("transit/encrypt/k", "ciphertext", `{"plaintext":"a#b?c&d}e:f"}`, Options{Optional: true})},
		// JSON whitespace around the body, as vault-env's decoding allows.
		{">>vault:p#k#\n {\"a\": 1}\n ?file", w("p", "k", `{"a":1}`, Options{File: true})},
		{">>vault:p#k# {\"a\":\"b\"} ", w("p", "k", `{"a":"b"}`, Options{})},
		// No key: the whole answer, as a JSON object.
		{`>>vault:pki/issue/web##{"common_name":"w"}`, w("pki/issue/web", "", `{"common_name":"w"}`, Options{})},
		{`>>vault:pki/issue/web#k#{}`, w("pki/issue/web", "k", "{}", Options{})},
		// Numbers as written; nested values kept.
		{`>>vault:x/y#k#{"n":12345678901234567890,"f":1.50,"o":{"a":[1,"2"]},"h":"<&>"}`, w("x/y", "k", `{"f":1.50,"h":"<&>","n":12345678901234567890,"o":{"a":[1,"2"]}}`, Options{})},
	}
	for _, tt := range tests {
		got, ok, err := Parse(tt.in)
		if !ok || err != nil {
			t.Errorf("Parse(%q) = ok %v, err %v", tt.in, ok, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Parse(%q) =\n %+v, want\n %+v", tt.in, got, tt.want)
		}
		if !got.IsWrite() || got.Pinned() {
			t.Errorf("Parse(%q): IsWrite %v Pinned %v; want a write, never pinned", tt.in, got.IsWrite(), got.Pinned())
		}
		again, _, err := Parse(got.String())
		if err != nil || again != got {
			t.Errorf("Parse(%q).String() = %q parses to %+v, %v", tt.in, got.String(), again, err)
		}
	}
	// A read is not a write.
	if r, _, _ := Parse("vault:pki/cert/ca#certificate"); r.IsWrite() {
		t.Error("vault:... is a write")
	}
}

func TestParseWriteErrors(t *testing.T) {
	const canary = "CANARY-s3cr3t"
	tests := []struct{ in, want string }{
		{`>>vault:`, "invalid Vault path"},
		{`>>vault:#k#{}`, "invalid Vault path"},
		{`>>vault:a//b#k`, "invalid Vault path"},
		{`>>vault:p#k#`, "empty JSON body"},
		{`>>vault:p#k#?file`, "empty JSON body"},
		{`>>vault:p#k#2`, "not a JSON object"},
		{`>>vault:p#k#["` + canary + `"]`, "not a JSON object"},
		{`>>vault:p#k#{"password":"` + canary + `"`, "not a complete JSON object"},
		{`>>vault:p#k#{"password":` + canary + `}`, "not valid JSON (at byte 13"},
		{`>>vault:p#k#{"password":"` + canary + `"}x`, "unexpected text after the JSON body"},
		{`>>vault:p#k#{"password":"` + canary + `"} x?file`, "unexpected text after the JSON body"},
		{`>>vault:p#k#  `, "empty JSON body"},
		{`>>vault:p#k#{"password":"` + canary + `"}#v`, "unexpected text after the JSON body"},
		{`>>vault:p#{"password":"` + canary + `"}`, "cannot start with '{'"},
		{`>>vault:p#k#{"password":"` + canary + `"}?bogus`, "unknown option"},
		{`>>vault:p#k?file#{"password":"` + canary + `"}`, "'#' or '{' in the options"},
		{`>>vault:p?bogus{"password":"` + canary + `"}`, "'#' or '{' in the options"},
		{`>>vault:p#k#{"password":"` + canary + `"}?key=file:/k`, "jwe: references only"},
		{`>>vault:p#k#{"password":"` + canary + `"}?refresh=HUP`, "needs"},
	}
	for _, tt := range tests {
		_, ok, err := Parse(tt.in)
		if !ok || err == nil {
			t.Errorf("Parse(%q) = ok %v, err nil; want an error", tt.in, ok)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) = %v; want %q", tt.in, err, tt.want)
		}
		if strings.Contains(err.Error(), canary) || strings.Contains(err.Error(), "password") {
			t.Errorf("Parse(%q): the error quotes the body: %v", tt.in, err)
		}
		if s := ShownReference(tt.in); strings.Contains(s, canary) {
			t.Errorf("ShownReference(%q) = %q: shows the body", tt.in, s)
		}
	}
}

func TestShownReference(t *testing.T) {
	tests := []struct{ in, want string }{
		{`>>vault:pki/issue/web#certificate#{"ttl":"1h","common_name":"web.example.com"}?file&trim`, `>>vault:pki/issue/web#certificate#{"common_name":…,"ttl":…}?file&trim`},
		{`>>vault:pki/issue/web#certificate`, `>>vault:pki/issue/web#certificate`},
		{`>>vault:pki/issue/web#k#{}`, `>>vault:pki/issue/web#k`},
		{`>>vault:pki/issue/web#k#{"a":1`, `>>vault:pki/issue/web#k#{…}`},
		{`>>vault:pki/issue/web#{"a":1}`, `>>vault:pki/issue/web#{…}`},
		{`vault:secret/app#k`, `vault:secret/app#k`},
		{`plain`, `plain`},
	}
	for _, tt := range tests {
		if got := ShownReference(tt.in); got != tt.want {
			t.Errorf("ShownReference(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// writeStore answers writes with one certificate per distinct target, as
// Vault's PKI does, counting the calls.
type writeStore struct {
	calls, targets atomic.Int32
}

func (s *writeStore) Fetch(_ context.Context, ts []Target) []Result {
	s.calls.Add(1)
	s.targets.Add(int32(len(ts)))
	rs := make([]Result, len(ts))
	for i, t := range ts {
		if !t.IsWrite() {
			rs[i].Err = ErrNotFound
			continue
		}
		v, _ := json.Marshal(map[string]string{"certificate": "CERT-" + t.Body, "private_key": "KEY-" + t.Body, "serial_number": "01"})
		rs[i] = Result{Value: v, Version: "01", Lease: time.Hour}
	}
	return rs
}

// TestWriteSharedByItsVariables: variables that select keys of one write
// (same path, same body up to spacing and order) share one target, so one
// issued certificate; a different body is another write. The CANARY in
// the body never reaches the report.
func TestWriteSharedByItsVariables(t *testing.T) {
	st := &writeStore{}
	cfg := Config{Stores: map[Kind]Opener{Vault: func(context.Context, Settings) (Store, error) { return st, nil }}, DryRun: true}
	env := []string{
		`TLS_CERT=>>vault:pki/issue/web#certificate#{"common_name":"web","x":"CANARY"}`,
		`TLS_KEY=>>vault:pki/issue/web#private_key#{ "x":"CANARY", "common_name":"web" }`,
		`OTHER=>>vault:pki/issue/web#private_key#{"common_name":"api"}`,
	}
	res, err := Resolve(context.Background(), cfg, env)
	if err != nil {
		t.Fatal(err)
	}
	if st.calls.Load() != 1 || st.targets.Load() != 2 {
		t.Fatalf("store calls %d with %d targets; want 1 call with 2 distinct writes", st.calls.Load(), st.targets.Load())
	}
	got := map[string]string{}
	for _, kv := range res.Env {
		k, v, _ := strings.Cut(kv, "=")
		got[k] = v
	}
	body := `{"common_name":"web","x":"CANARY"}`
	if got["TLS_CERT"] != "CERT-"+body || got["TLS_KEY"] != "KEY-"+body || got["OTHER"] != `KEY-{"common_name":"api"}` {
		t.Fatalf("env = %q", res.Env)
	}
	for _, s := range res.Report {
		if strings.Contains(s.Reference, "CANARY") {
			t.Errorf("%s: the report shows the body: %s", s.Name, s.Reference)
		}
		if s.Lease != time.Hour || s.Version != "01" {
			t.Errorf("%s: lease %v version %q", s.Name, s.Lease, s.Version)
		}
	}
}

// TestWriteFailureNamesNoBody: a failing write names the variable and the
// reference without its body's values.
func TestWriteFailureNamesNoBody(t *testing.T) {
	cfg := Config{Stores: map[Kind]Opener{Vault: func(context.Context, Settings) (Store, error) { return &writeStore{}, nil }}, DryRun: true}
	env := []string{
		`BAD=>>vault:p#k#{"password":"CANARY"`,
		`MISSING=>>vault:pki/issue/web#nokey#{"password":"CANARY"}`,
	}
	_, err := Resolve(context.Background(), cfg, env)
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if strings.Contains(msg, "CANARY") {
		t.Fatalf("the error shows the body:\n%s", msg)
	}
	for _, want := range []string{`BAD: >>vault:p#k#{…}: malformed reference`, `MISSING: >>vault:pki/issue/web#nokey#{"password":…}: `} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
}

// issuer issues a new certificate and key, numbered, at every write.
type issuer struct{ n atomic.Int32 }

func (s *issuer) Fetch(_ context.Context, ts []Target) []Result {
	rs := make([]Result, len(ts))
	for i := range ts {
		n := s.n.Add(1)
		v, _ := json.Marshal(map[string]string{"certificate": fmt.Sprintf("CERT-%d", n), "private_key": fmt.Sprintf("KEY-%d", n)})
		rs[i] = Result{Value: v, Version: fmt.Sprint(n), Lease: time.Hour}
	}
	return rs
}

// TestRefetchWriteIssuesOneSet: refetching a write issues once more for
// all its variables, and Commit switches the certificate and its key as
// one set of files.
func TestRefetchWriteIssuesOneSet(t *testing.T) {
	st := &issuer{}
	cfg := Config{Stores: map[Kind]Opener{Vault: func(context.Context, Settings) (Store, error) { return st, nil }},
		Refresh: true, FileDir: t.TempDir(), Timeout: 10 * time.Second}
	body := `{"common_name":"web.example.com"}`
	res, err := Resolve(context.Background(), cfg, []string{
		"TLS_CERT=>>vault:pki/issue/web#certificate#" + body + "?file",
		"TLS_KEY=>>vault:pki/issue/web#private_key#" + body + "?file",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Files.Remove() })
	certPath, keyPath := envOf(res.Env, "TLS_CERT"), envOf(res.Env, "TLS_KEY")
	if readFileT(t, certPath) != "CERT-1" || readFileT(t, keyPath) != "KEY-1" || st.n.Load() != 1 {
		t.Fatalf("first issue: %d writes", st.n.Load())
	}
	targets := res.Targets()
	if len(targets) != 1 || targets[0].Lease != time.Hour || targets[0].Version != "1" {
		t.Fatalf("Targets: %+v", targets)
	}
	fetched, err := res.Refetch(context.Background(), []Target{targets[0].Ref.Target})
	if err != nil || len(fetched) != 1 || st.n.Load() != 2 {
		t.Fatalf("Refetch: %+v, %v after %d writes; want one more write", fetched, err, st.n.Load())
	}
	if readFileT(t, certPath) != "CERT-1" {
		t.Fatal("a refetch changed a file before Commit")
	}
	changed, err := res.Commit()
	if err != nil || len(changed) != 2 {
		t.Fatalf("Commit: %v, %v", changed, err)
	}
	if readFileT(t, certPath) != "CERT-2" || readFileT(t, keyPath) != "KEY-2" {
		t.Error("the certificate and its key did not switch together")
	}
	if envOf(res.Env, "TLS_CERT") != certPath {
		t.Error("a ?file path changed")
	}
}

func BenchmarkParseWrite(b *testing.B) {
	const ref = `>>vault:pki/issue/web#certificate#{"common_name":"web.example.com","alt_names":"a.example.com,b.example.com","ttl":"24h"}?file`
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Parse(ref); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseRead(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Parse("vault:secret/data/web#certificate?file"); err != nil {
			b.Fatal(err)
		}
	}
}

// Shown, as the engine's status and policy show references: a jwe: cut
// short, a write without its body's values, a malformed long jwe: cut
// (also any malformed long value where bare JWEs are detected), anything
// else as written.
func TestShown(t *testing.T) {
	jweRef := "jwe:" + compact + "#k"
	bad := "jwe:" + compact + "!!"                                    // its fifth part is not base64url
	longBad := "arn:aws:secretsmanager:us-east-1:123456789012:secret" // no name
	for _, c := range []struct {
		value string
		bare  bool
		want  string
	}{
		{jweRef, false, "jwe:" + compact[:12] + "…" + compact[len(compact)-8:] + "#k"},
		{`>>vault:pki/issue/web#certificate#{"common_name":"canary"}?file`, false, `>>vault:pki/issue/web#certificate#{"common_name":…}?file`},
		{bad, false, bad[:32] + "…"},
		{longBad, true, longBad[:32] + "…"},
		{longBad, false, longBad},
		{"vault:secret/app#password", false, "vault:secret/app#password"},
	} {
		ref, _, err := Parse(c.value)
		if got := Shown(c.value, ref, err, c.bare); got != c.want {
			t.Errorf("Shown(%.40q, bare %v) = %q, want %q", c.value, c.bare, got, c.want)
		}
	}
}
