package vault

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/hashicorp/vault/api"

	"github.com/secrets-init/secrets-init/provider"
)

// retry calls op until it succeeds, fails for good, or ctx ends, under
// the engine's backoff (provider.Retry). When ctx ends after transient
// failures, the error is a *provider.Exhausted that keeps the last one.
func retry(ctx context.Context, op func() error) error {
	return provider.Retry(ctx, op, class)
}

// class tells how a failure is retried: throttling (429, a rate limit
// quota) waits longer than the other transient faults.
func class(err error) provider.Class {
	var re *api.ResponseError
	switch {
	case !transient(err):
		return provider.Permanent
	case errors.As(err, &re) && re.StatusCode == http.StatusTooManyRequests:
		return provider.Throttled
	}
	return provider.Transient
}

// transient tells whether err may go away by itself.
func transient(err error) bool {
	var re *api.ResponseError
	if errors.As(err, &re) {
		switch re.StatusCode {
		case http.StatusPreconditionFailed, http.StatusTooManyRequests, http.StatusInternalServerError,
			http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	if tlsProblem(err) != "" {
		return false
	}
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ne) || errors.As(err, &oe) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// tlsProblem describes a TLS failure that retrying cannot fix ("" if err is
// not one).
func tlsProblem(err error) string {
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	var rh tls.RecordHeaderError
	switch {
	case errors.As(err, &ua):
		return "its certificate is signed by an unknown authority (set VAULT_CACERT or VAULT_CAPATH)"
	case errors.As(err, &hn):
		return "its certificate is not valid for " + hn.Host
	case errors.As(err, &ci):
		return "its certificate is invalid: " + ci.Error()
	case errors.As(err, &rh):
		return "it does not speak TLS (use an http:// VAULT_ADDR?)"
	}
	return ""
}

// describe turns a failed request on path into a one-line error a user can
// act on. It never quotes a response body: Vault's own error strings are
// used only when Vault sent them as JSON.
func describe(c *api.Client, err error, path, capability string) error {
	var ex *provider.Exhausted
	if errors.As(err, &ex) {
		return &provider.Exhausted{Last: describe(c, ex.Last, path, capability)}
	}
	var ie inputError
	if errors.As(err, &ie) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var re *api.ResponseError
	if errors.As(err, &re) {
		switch {
		case re.StatusCode == http.StatusForbidden:
			return fmt.Errorf("permission denied: the Vault token needs the %q capability on %s", capability, path)
		case re.StatusCode == http.StatusNotFound:
			return fmt.Errorf("%w at %s", provider.ErrNotFound, path)
		case re.StatusCode == http.StatusServiceUnavailable && vaultSaid(re, "sealed"):
			return fmt.Errorf("Vault at %s is sealed", c.Address())
		}
		return fmt.Errorf("Vault answered %s%s", statusText(re.StatusCode), vaultErrors(re))
	}
	if p := tlsProblem(err); p != "" {
		return fmt.Errorf("cannot talk to Vault at %s (VAULT_ADDR): %s", c.Address(), p)
	}
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	if errors.As(err, &se) || errors.As(err, &te) {
		return fmt.Errorf("the answer from %s for %s is not Vault's JSON (is VAULT_ADDR a Vault server?)", c.Address(), path)
	}
	if transient(err) {
		return fmt.Errorf("cannot reach Vault at %s (VAULT_ADDR): %s", c.Address(), netReason(err))
	}
	return err
}

// describeLogin describes a failed login: Vault's reason (such as "invalid
// role or secret ID") is the useful part.
func describeLogin(c *api.Client, err error) error {
	var re *api.ResponseError
	if errors.As(err, &re) && re.StatusCode >= 400 && re.StatusCode < 500 {
		return fmt.Errorf("Vault answered %s%s", statusText(re.StatusCode), vaultErrors(re))
	}
	return describe(c, err, "the login path", "update")
}

// vaultSaid tells whether one of Vault's error strings contains word.
func vaultSaid(re *api.ResponseError, word string) bool {
	return !re.RawError && strings.Contains(strings.Join(re.Errors, " "), word)
}

// vaultErrors formats Vault's JSON error strings as ": a; b" on one line.
func vaultErrors(re *api.ResponseError) string {
	if re.RawError || len(re.Errors) == 0 {
		return ""
	}
	var parts []string
	for _, e := range re.Errors {
		if e = strings.Join(strings.Fields(e), " "); e != "" {
			parts = append(parts, e)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return ": " + strings.Join(parts, "; ")
}

// netReason is the innermost reason of a network error, e.g.
// "connection refused".
func netReason(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		err = oe.Err
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		return "cannot resolve " + de.Name
	}
	for u := errors.Unwrap(err); u != nil; u = errors.Unwrap(u) {
		err = u
	}
	return err.Error()
}
