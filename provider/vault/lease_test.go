package vault

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/secrets-init/secrets-init/provider"
)

// leaseID is what the fake issues: it must never be in a URL or an error.
const leaseID = "database/creds/app/LEASE-" + canary

// leaseVault speaks the lease and token paths of Vault's HTTP API (the
// real server is in e2e/vault): it records each request's path and body,
// and answers as Vault does for a live, a gone and a forbidden lease.
func leaseVault(t *testing.T) (*sync.Mutex, *[]string) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.Path)
		mu.Unlock()
		if r.Header.Get("X-Vault-Token") != "hvs.lease" {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"errors":["permission denied"]}`)
			return
		}
		switch r.URL.Path {
		case "/v1/sys/leases/renew", "/v1/sys/leases/revoke":
			switch body["lease_id"] {
			case leaseID:
				if inc, _ := body["increment"].(float64); r.URL.Path == "/v1/sys/leases/renew" && inc != 3600 {
					t.Errorf("increment %v, want 3600", body["increment"])
				}
				if r.URL.Path == "/v1/sys/leases/revoke" {
					w.WriteHeader(http.StatusNoContent)
					return
				}
				fmt.Fprintf(w, `{"lease_id":%q,"lease_duration":1800,"renewable":true}`, leaseID)
			case leaseID + "-forbidden":
				w.WriteHeader(http.StatusForbidden)
				fmt.Fprint(w, `{"errors":["1 error occurred:\n\t* permission denied\n\n"]}`)
			default: // Vault's answer quotes the lease id
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprintf(w, `{"errors":["lease not found or lease is not renewable: %s"]}`, body["lease_id"])
			}
		case "/v1/auth/token/lookup-self":
			fmt.Fprint(w, `{"data":{"ttl":600,"renewable":true}}`)
		case "/v1/auth/token/renew-self":
			fmt.Fprint(w, `{"auth":{"client_token":"hvs.lease","lease_duration":700,"renewable":false}}`)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	clearEnv(t)
	t.Setenv("VAULT_ADDR", srv.URL)
	t.Setenv("VAULT_TOKEN", "hvs.lease")
	return &mu, &seen
}

// The store renews and revokes leases (the id in the body, never in a
// URL), maps a gone lease to ErrNotFound and a forbidden one to
// ErrDenied without quoting Vault's text (which holds the id), and looks
// up and renews its token; a given token cannot log in again.
func TestLeaseCalls(t *testing.T) {
	mu, seen := leaseVault(t)
	st, err := Open(t.Context(), settings())
	if err != nil {
		t.Fatal(err)
	}
	lr := st.(provider.Leaser)
	if ls := lr.RenewLease(t.Context(), leaseID, time.Hour); ls.Err != nil || ls.TTL != 30*time.Minute || !ls.Renewable {
		t.Errorf("renewal: %+v", ls)
	}
	if err := lr.RevokeLease(t.Context(), leaseID); err != nil {
		t.Errorf("revocation: %v", err)
	}
	gone := lr.RenewLease(t.Context(), leaseID+"-gone", time.Hour)
	if !errors.Is(gone.Err, provider.ErrNotFound) || !strings.Contains(gone.Err.Error(), "HTTP 400") {
		t.Errorf("a gone lease: %v, want ErrNotFound and the status", gone.Err)
	}
	denied := lr.RenewLease(t.Context(), leaseID+"-forbidden", time.Hour)
	if !errors.Is(denied.Err, provider.ErrDenied) || !strings.Contains(denied.Err.Error(), `"update" capability on sys/leases/renew`) {
		t.Errorf("a forbidden lease: %v, want ErrDenied naming the capability", denied.Err)
	}
	if err := lr.RevokeLease(t.Context(), leaseID+"-gone"); err != nil {
		t.Errorf("revoking a gone lease: %v, want none (already gone is not an error)", err)
	}
	for _, err := range []error{gone.Err, denied.Err, lr.RevokeLease(t.Context(), leaseID+"-forbidden")} {
		if err == nil || strings.Contains(err.Error(), "LEASE") || strings.Contains(err.Error(), canary) {
			t.Errorf("error %v: want one that quotes no lease id", err)
		}
	}
	if ls := lr.Token(t.Context(), provider.TokenLookup); ls.Err != nil || ls.TTL != 10*time.Minute || !ls.Renewable || ls.Login {
		t.Errorf("lookup: %+v", ls)
	}
	if ls := lr.Token(t.Context(), provider.TokenRenew); ls.Err != nil || ls.TTL != 700*time.Second || ls.Renewable {
		t.Errorf("renewal: %+v", ls)
	}
	if ls := lr.Token(t.Context(), provider.TokenLogin); ls.Err == nil || !strings.Contains(ls.Err.Error(), "no auth method") {
		t.Errorf("a given token logging in again: %+v", ls)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, s := range *seen {
		if strings.Contains(s, "LEASE") {
			t.Errorf("a lease id in a URL: %s", s)
		}
	}
}

// A store that logged in keeps its token for later calls (one login per
// store), and Token(TokenLogin) gets a new one.
func TestLeaseLoginOnce(t *testing.T) {
	var mu sync.Mutex
	logins := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/auth/approle/login":
			mu.Lock()
			logins++
			n := logins
			mu.Unlock()
			fmt.Fprintf(w, `{"auth":{"client_token":"hvs.login-%d","lease_duration":60,"renewable":true}}`, n)
		case "/v1/auth/token/lookup-self":
			fmt.Fprintf(w, `{"data":{"ttl":60,"renewable":true,"id":%q}}`, r.Header.Get("X-Vault-Token"))
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	clearEnv(t)
	t.Setenv("VAULT_ADDR", srv.URL)
	t.Setenv("VAULT_ROLE_ID", "rid")
	t.Setenv("VAULT_SECRET_ID", canary)
	st, err := Open(t.Context(), settings())
	if err != nil {
		t.Fatal(err)
	}
	lr := st.(provider.Leaser)
	for range 3 {
		if ls := lr.Token(t.Context(), provider.TokenLookup); ls.Err != nil || !ls.Login {
			t.Fatalf("lookup: %+v", ls)
		}
	}
	if logins != 1 {
		t.Errorf("%d logins for 3 calls of one store, want 1", logins)
	}
	if ls := lr.Token(t.Context(), provider.TokenLogin); ls.Err != nil || ls.TTL != time.Minute {
		t.Errorf("login again: %+v", ls)
	}
	if logins != 2 {
		t.Errorf("%d logins after TokenLogin, want 2", logins)
	}
}

// A logged-in token whose policy lacks lookup-self and renew-self (no
// default policy) is denied both, with the TTL its login gave, and a new
// login answers with the new login's TTL.
func TestLeaseTokenDeniedLoginTTL(t *testing.T) {
	var mu sync.Mutex
	logins := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/auth/approle/login":
			mu.Lock()
			logins++
			n := logins
			mu.Unlock()
			fmt.Fprintf(w, `{"auth":{"client_token":"hvs.login-%d","lease_duration":600,"renewable":true}}`, n)
		case "/v1/auth/token/lookup-self", "/v1/auth/token/renew-self":
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"errors":["1 error occurred:\n\t* permission denied\n\n"]}`)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	clearEnv(t)
	t.Setenv("VAULT_ADDR", srv.URL)
	t.Setenv("VAULT_ROLE_ID", "rid")
	t.Setenv("VAULT_SECRET_ID", canary)
	st, err := Open(t.Context(), settings())
	if err != nil {
		t.Fatal(err)
	}
	lr := st.(provider.Leaser)
	near := func(d time.Duration) bool { return d > 590*time.Second && d <= 600*time.Second }
	for _, op := range []provider.TokenOp{provider.TokenLookup, provider.TokenRenew} {
		ls := lr.Token(t.Context(), op)
		if !errors.Is(ls.Err, provider.ErrDenied) || !ls.Login || !near(ls.TTL) {
			t.Errorf("op %d: %+v; want ErrDenied, Login, TTL about 600s", op, ls)
		}
	}
	ls := lr.Token(t.Context(), provider.TokenLogin)
	if ls.Err != nil || !ls.Login || !near(ls.TTL) || ls.Renewable || logins != 2 {
		t.Errorf("login again: %+v after %d logins; want TTL about 600s, not renewable, 2 logins", ls, logins)
	}
}
