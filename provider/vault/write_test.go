package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/secrets-init/secrets-init/provider"
)

// writeVault answers writes as Vault's PKI does and records each request.
// fail, when set, answers a request instead (true: answered).
type writeVault struct {
	mu   sync.Mutex
	reqs []writeReq
	fail func(n int, w http.ResponseWriter, r *http.Request) bool
}

type writeReq struct {
	method, path string
	body         map[string]any
}

func (v *writeVault) start(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var body map[string]any
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.UseNumber()
		dec.Decode(&body)
		v.mu.Lock()
		v.reqs = append(v.reqs, writeReq{r.Method, r.URL.Path, body})
		n := len(v.reqs)
		v.mu.Unlock()
		if v.fail != nil && v.fail(n, w, r) {
			return
		}
		switch r.URL.Path {
		case "/v1/pki/issue/web":
			exp := time.Now().Add(90 * time.Minute).Unix()
			fmt.Fprintf(w, `{"lease_id":"","lease_duration":0,"data":{"certificate":"CERT-%[1]v","private_key":%[2]q,"issuing_ca":"CA","serial_number":"1a:2b","expiration":%[3]d}}`, body["common_name"], canary, exp)
		case "/v1/database/rotate":
			w.WriteHeader(http.StatusNoContent)
		case "/v1/database/creds/app":
			fmt.Fprintf(w, `{"lease_id":"database/creds/app/x","lease_duration":600,"renewable":true,"data":{"password":%q}}`, canary)
		default:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"errors":[]}`)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func (v *writeVault) requests() []writeReq {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]writeReq(nil), v.reqs...)
}

func openAt(t *testing.T, addr string) provider.Store {
	t.Helper()
	clearEnv(t)
	t.Setenv("VAULT_ADDR", addr)
	t.Setenv("VAULT_TOKEN", "hvs.good")
	p, err := Open(t.Context(), settings())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func writeTarget(t *testing.T, ref string) provider.Target {
	t.Helper()
	r, ok, err := provider.Parse(ref)
	if !ok || err != nil || !r.IsWrite() {
		t.Fatalf("Parse(%q): %v", ref, err)
	}
	return r.Target
}

// TestWriteOverHTTP: one PUT per distinct write, to the path as written
// (no mount lookup), with the body as given; the answer's data is the
// value, its certificate's expiration the lease, its serial the version.
func TestWriteOverHTTP(t *testing.T) {
	v := &writeVault{}
	p := openAt(t, v.start(t).URL)
	web := writeTarget(t, `>>vault:pki/issue/web#certificate#{"common_name":"web.example.com","ttl":"90m","n":3}`)
	other := writeTarget(t, `>>vault:pki/issue/web#certificate#{"common_name":"api.example.com"}`)
	rotate := writeTarget(t, `>>vault:database/rotate`)
	rs := p.Fetch(t.Context(), []provider.Target{web, web, other, rotate})
	reqs := v.requests()
	if len(reqs) != 3 {
		t.Fatalf("%d requests, want 3 (one per distinct write): %+v", len(reqs), reqs)
	}
	seen := map[string]int{}
	for _, r := range reqs {
		if r.method != http.MethodPut && r.method != http.MethodPost {
			t.Errorf("%s %s: a write is a PUT or POST", r.method, r.path)
		}
		seen[fmt.Sprint(r.path, r.body)]++
	}
	for _, want := range []string{"/v1/pki/issue/webmap[common_name:web.example.com n:3 ttl:90m]", "/v1/pki/issue/webmap[common_name:api.example.com]", "/v1/database/rotatemap[]"} {
		if seen[want] != 1 {
			t.Errorf("requests %v: want one %s", seen, want)
		}
	}
	for i, r := range rs[:3] {
		if r.Err != nil || r.Version != "1a:2b" {
			t.Fatalf("result %d: %+v", i, r)
		}
		if r.Lease <= 80*time.Minute || r.Lease > 90*time.Minute {
			t.Errorf("result %d: lease %v, want the certificate's ~90m", i, r.Lease)
		}
	}
	var data map[string]any
	if err := json.Unmarshal(rs[0].Value, &data); err != nil || data["certificate"] != "CERT-web.example.com" || data["private_key"] != canary {
		t.Errorf("value %s", rs[0].Value)
	}
	if string(rs[1].Value) != string(rs[0].Value) {
		t.Error("the same write gave two values")
	}
	if string(rs[3].Value) != "{}" || rs[3].Err != nil || rs[3].Lease != 0 {
		t.Errorf("204 No Content: %+v, want {}", rs[3])
	}
}

// TestWriteRetries: a write is retried only when Vault provably did not
// act on it (429, 503, a refused connection); a 500 or a connection
// dropped after the request was sent fails at once, naming the path and
// never the body or the answer.
func TestWriteRetries(t *testing.T) {
	target := writeTarget(t, `>>vault:pki/issue/web#certificate#{"common_name":"w","password":"`+canary+`"}`)
	for _, c := range []struct {
		name  string
		fail  func(n int, w http.ResponseWriter, r *http.Request) bool
		calls int
		ok    bool
		want  string
	}{
		{"throttled", func(n int, w http.ResponseWriter, _ *http.Request) bool {
			if n == 1 {
				w.WriteHeader(http.StatusTooManyRequests)
				fmt.Fprint(w, `{"errors":["request path \"pki/issue/web\": rate limit quota exceeded"]}`)
			}
			return n == 1
		}, 2, true, ""},
		{"sealed", func(n int, w http.ResponseWriter, _ *http.Request) bool {
			if n == 1 {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprint(w, `{"errors":["Vault is sealed"]}`)
			}
			return n == 1
		}, 2, true, ""},
		{"500", func(_ int, w http.ResponseWriter, _ *http.Request) bool {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `{"errors":["internal error"]}`)
			return true
		}, 1, false, "HTTP 500"},
		{"dropped", func(_ int, w http.ResponseWriter, _ *http.Request) bool {
			c, _, _ := w.(http.Hijacker).Hijack()
			c.Close()
			return true
		}, 1, false, "may have reached Vault, so it is not retried"},
		{"denied", func(_ int, w http.ResponseWriter, _ *http.Request) bool {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"errors":["1 error occurred:\n\t* permission denied\n\n"]}`)
			return true
		}, 1, false, `permission denied: the Vault token needs the "update" capability on pki/issue/web`},
		{"bad request", func(_ int, w http.ResponseWriter, _ *http.Request) bool {
			w.WriteHeader(http.StatusBadRequest)
			// Vault quotes what it refuses: the body's values are
			// scrubbed out of its reason.
			fmt.Fprintf(w, `{"errors":["unknown role: web","value %s not allowed"]}`, canary)
			return true
		}, 1, false, "Vault refused the write to pki/issue/web: HTTP 400 Bad Request: unknown role: web; value … not allowed"},
		{"404 without a body", func(_ int, w http.ResponseWriter, _ *http.Request) bool {
			w.WriteHeader(http.StatusNotFound)
			return true
		}, 1, false, "not found at pki/issue/web"},
		{"200 without a body", func(_ int, w http.ResponseWriter, _ *http.Request) bool {
			w.WriteHeader(http.StatusOK)
			return true
		}, 1, false, "Vault answered the write to pki/issue/web with HTTP 200 OK and no body"},
		{"not JSON", func(_ int, w http.ResponseWriter, _ *http.Request) bool {
			fmt.Fprintf(w, "<html>%s</html>", canary)
			return true
		}, 1, false, "is not Vault's JSON"},
		{"exhausted", func(_ int, w http.ResponseWriter, _ *http.Request) bool {
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprintf(w, `{"errors":["quota exceeded for %s"]}`, canary)
			return true
		}, -1, false, "quota exceeded for …; still failing at the deadline"},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := &writeVault{fail: c.fail}
			p := openAt(t, v.start(t).URL)
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			rs := p.Fetch(ctx, []provider.Target{target})
			if n := len(v.requests()); c.calls >= 0 && n != c.calls || c.calls < 0 && n < 2 {
				t.Errorf("%d requests, want %d", n, c.calls)
			}
			if c.ok != (rs[0].Err == nil) {
				t.Fatalf("err %v", rs[0].Err)
			}
			if c.ok {
				return
			}
			msg := rs[0].Err.Error()
			if !strings.Contains(msg, c.want) {
				t.Errorf("error %q, want %q", msg, c.want)
			}
			if strings.Contains(msg, canary) || strings.Contains(msg, "password") {
				t.Errorf("error shows the body: %q", msg)
			}
		})
	}
}

// TestWriteRefusedIsRetried: a refused connection never reached Vault: it
// is retried until the deadline, and then reported.
func TestWriteRefusedIsRetried(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := openAt(t, "http://"+addr)
	ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
	defer cancel()
	rs := p.Fetch(ctx, []provider.Target{writeTarget(t, ">>vault:pki/issue/web#certificate")})
	var ex *provider.Exhausted
	if !errors.As(rs[0].Err, &ex) || !strings.Contains(rs[0].Err.Error(), "connection refused") {
		t.Errorf("err %v, want a retried refusal", rs[0].Err)
	}
}

func TestWriteClass(t *testing.T) {
	for _, c := range []struct {
		err  error
		want provider.Class
	}{
		{&api.ResponseError{StatusCode: 429}, provider.Throttled},
		{&api.ResponseError{StatusCode: 503}, provider.Transient},
		{&api.ResponseError{StatusCode: 412}, provider.Transient},
		{&api.ResponseError{StatusCode: 500}, provider.Permanent},
		{&api.ResponseError{StatusCode: 502}, provider.Permanent},
		{&api.ResponseError{StatusCode: 504}, provider.Permanent},
		{&url.Error{Op: "Put", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}, provider.Transient},
		{&url.Error{Op: "Put", Err: &net.DNSError{Name: "vault"}}, provider.Transient},
		{&url.Error{Op: "Put", Err: &net.OpError{Op: "read", Err: syscall.ECONNRESET}}, provider.Permanent},
		{&url.Error{Op: "Put", Err: io.EOF}, provider.Permanent},
		{context.DeadlineExceeded, provider.Permanent},
	} {
		if got := writeClass(c.err); got != c.want {
			t.Errorf("writeClass(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

// TestWriteHasNoVersions: refresh never polls a write: Versions answers
// ErrUnversioned without a call.
func TestWriteHasNoVersions(t *testing.T) {
	v := &writeVault{}
	p := openAt(t, v.start(t).URL)
	rs := p.(provider.Versioner).Versions(t.Context(), []provider.Target{writeTarget(t, ">>vault:pki/issue/web#certificate")})
	if !errors.Is(rs[0].Err, provider.ErrUnversioned) || len(v.requests()) != 0 {
		t.Errorf("err %v after %d requests, want ErrUnversioned and none", rs[0].Err, len(v.requests()))
	}
}

func TestDecodeWriteLease(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	for _, c := range []struct {
		secret *api.Secret
		want   time.Duration
	}{
		{nil, 0},
		{&api.Secret{Data: map[string]any{"expiration": json.Number("1003600")}}, time.Hour},
		{&api.Secret{LeaseID: "l", LeaseDuration: 600, Data: map[string]any{"expiration": json.Number("1003600")}}, 10 * time.Minute},
		{&api.Secret{LeaseID: "l", LeaseDuration: 7200, Data: map[string]any{"expiration": json.Number("1003600")}}, time.Hour},
		{&api.Secret{LeaseID: "l", LeaseDuration: 600}, 10 * time.Minute},
		{&api.Secret{LeaseDuration: 600}, 0}, // no lease id: no lease
		{&api.Secret{Data: map[string]any{"expiration": "soon"}}, 0},
	} {
		if got := decodeWrite(c.secret, "p", now).Lease; got != c.want {
			t.Errorf("decodeWrite(%+v).Lease = %v, want %v", c.secret, got, c.want)
		}
	}
}

// A certificate issued already expired (this host's clock ahead of
// Vault's) is refused, naming the path and the skew, over the wire: it is
// not delivered, nor issued again in a loop.
func TestWriteExpiredCertificate(t *testing.T) {
	v := &writeVault{fail: func(_ int, w http.ResponseWriter, r *http.Request) bool {
		exp := time.Now().Add(-10 * time.Minute).Unix()
		fmt.Fprintf(w, `{"data":{"certificate":"CERT","private_key":%q,"serial_number":"1a:2b","expiration":%d}}`, canary, exp)
		return true
	}}
	p := openAt(t, v.start(t).URL)
	rs := p.Fetch(t.Context(), []provider.Target{writeTarget(t, `>>vault:pki/issue/web#certificate#{"common_name":"web.example.com"}`)})
	err := rs[0].Err
	if err == nil || rs[0].Value != nil || rs[0].Lease != 0 {
		t.Fatalf("err %v, lease %v, a value: %t; want an error and no value", err, rs[0].Lease, rs[0].Value != nil)
	}
	for _, want := range []string{"pki/issue/web", "expired at", "before this host's clock", "clock skew"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if !regexp.MustCompile(`, 10m[01]s before`).MatchString(err.Error()) {
		t.Errorf("error %q does not name the skew (10m)", err)
	}
	if strings.Contains(err.Error(), canary) || strings.Contains(err.Error(), "CERT") {
		t.Errorf("the error quotes the answer: %v", err)
	}
	if n := len(v.requests()); n != 1 {
		t.Errorf("%d writes, want 1", n)
	}
}

// A write whose answer has a lease (database credentials, aws/sts)
// gives its id and renewability, as a read does, so that the refresh loop
// renews and revokes it; a certificate's expiration alone gives none.
func TestWriteLeaseID(t *testing.T) {
	v := &writeVault{}
	p := openAt(t, v.start(t).URL)
	rs := p.Fetch(t.Context(), []provider.Target{writeTarget(t, `>>vault:database/creds/app#password#{"ttl":"10m"}`),
		writeTarget(t, `>>vault:pki/issue/web#certificate#{"common_name":"web.example.com"}`)})
	if r := rs[0]; r.Err != nil || r.LeaseID.Reveal() != "database/creds/app/x" || !r.Renewable || r.Lease != 10*time.Minute {
		t.Errorf("leased write: err %v, lease %v, renewable %t, id given %t", r.Err, r.Lease, r.Renewable, r.LeaseID != "")
	}
	if r := rs[1]; r.Err != nil || r.LeaseID != "" || r.Renewable || r.Lease <= 0 {
		t.Errorf("certificate: err %v, lease %v, renewable %t, id given %t", r.Err, r.Lease, r.Renewable, r.LeaseID != "")
	}
}

// TestWriteAnswerStreamed: an answer whose body is still on the wire
// when its headers arrive (a PKI answer through a proxy, or from a real
// Vault, which streams it) is read whole. The server sends the headers
// and half the body, then waits for the client to hang up (which the
// client does if it ends the request's context on return, as
// Logical().WriteRawWithContext does) or for a second, and sends the
// rest. e2e/vaultengines found it on Vault's real PKI engine: "context
// canceled" after the certificate was issued.
func TestWriteAnswerStreamed(t *testing.T) {
	exp := time.Now().Add(time.Hour).Unix()
	body := fmt.Sprintf(`{"lease_id":"","lease_duration":0,"data":{"certificate":"CERT","private_key":%q,"serial_number":"1a:2b","expiration":%d}}`, canary, exp)
	hungUp := make(chan bool, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, body[:len(body)/2])
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			hungUp <- true
			return
		case <-time.After(time.Second):
			hungUp <- false
		}
		io.WriteString(w, body[len(body)/2:])
	}))
	t.Cleanup(srv.Close)
	p := openAt(t, srv.URL)
	rs := p.Fetch(t.Context(), []provider.Target{writeTarget(t, `>>vault:pki/issue/web#certificate#{"common_name":"web.example.com"}`)})
	if <-hungUp {
		t.Error("the client hung up before it read the answer's body")
	}
	if rs[0].Err != nil {
		if strings.Contains(rs[0].Err.Error(), canary) {
			t.Errorf("the error quotes the answer: %v", rs[0].Err)
		}
		t.Fatalf("a streamed answer: %v", rs[0].Err)
	}
	var data map[string]any
	if err := json.Unmarshal(rs[0].Value, &data); err != nil || data["private_key"] != canary || rs[0].Version != "1a:2b" {
		t.Errorf("value of %d bytes, version %q: not the whole answer", len(rs[0].Value), rs[0].Version)
	}
}
