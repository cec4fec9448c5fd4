package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/secrets-init/secrets-init/provider"
)

// Writes: >>vault:PATH[#KEY[#JSON_BODY]] (SPEC §8). The engine gives the
// store one Target per distinct (PATH, body); the store makes one write
// (a PUT, which Vault takes as a POST; see writeOnce) per
// Target, to PATH exactly as written (no mount
// lookup, no KV v2 data/ segment), and the value is the answer's data as a
// JSON object, whatever its engine.
//
// A write is not idempotent: a PKI issue that reached Vault has issued a
// certificate, whether or not its answer came back. So a write is retried
// only when Vault provably did not act on it: the connection was never
// made (refused, no route, DNS), Vault throttled it (429: a rate limit
// quota rejects a request before any engine sees it), or Vault could not
// serve it (503: sealed, standby; 412: a performance standby not caught
// up). Any other failure, a timeout or a reset after the request was sent
// included, fails the write at once: at start-up secrets-init fails
// closed; under refresh the round fails and the next one writes again.

// write makes one write.
func (st *store) write(ctx context.Context, r request) provider.Result {
	data, err := provider.WriteData(r.body)
	if err != nil {
		return provider.Result{Err: err}
	}
	var secret *api.Secret
	err = provider.Retry(ctx, func() (err error) {
		secret, err = st.writeOnce(ctx, r)
		return err
	}, writeClass)
	if err != nil {
		scrub(err, bodyStrings(data))
		return provider.Result{Err: describeWrite(st.client, err, r.path)}
	}
	return decodeWrite(secret, r.path, time.Now())
}

// writeOnce sends the body as it is held (canonical JSON: numbers as
// written) and reads the answer. Unlike Logical().Write, it tells a 204 No
// Content (a write with no answer: nil) from a 404 without a body (an
// error, so that an empty answer from something that is not Vault never
// passes for one).
//
// It sends the request with Client.RawRequestWithContext, not
// Logical().WriteRawWithContext: the latter cancels its context (the
// client's timeout, VAULT_CLIENT_TIMEOUT) when it returns, before the
// answer's body is read, so that a body still on the wire (a PKI answer
// of a few kilobytes, streamed by a proxy or a real Vault) ends in
// "context canceled" or "unexpected EOF" after the certificate was
// issued. RawRequestWithContext leaves that context to end with its
// timeout, as Logical().ReadRawWithContext does.
func (st *store) writeOnce(ctx context.Context, r request) (*api.Secret, error) {
	req := st.client.NewRequest(http.MethodPut, "/v1/"+r.path)
	req.BodyBytes = []byte(r.body)
	resp, err := st.client.RawRequestWithContext(ctx, req) //nolint:staticcheck // see above: the non-deprecated call cuts the body short
	if resp != nil {
		defer resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusNoContent {
		return nil, nil
	}
	secret, err := api.ParseSecret(resp.Body)
	if errors.Is(err, io.EOF) || err == nil && secret == nil {
		return nil, fmt.Errorf("Vault answered the write to %s with %s and no body", r.path, statusText(resp.StatusCode))
	}
	return secret, err
}

// scrub removes the body's values from Vault's error strings: Vault
// quotes what it refuses ("common name x.example.org not allowed by this
// role"), and a body may hold a secret. Each string of the body (of 3
// bytes or more: shorter ones tell nothing) becomes "…".
func scrub(err error, values []string) {
	var ex *provider.Exhausted
	if errors.As(err, &ex) {
		err = ex.Last
	}
	var re *api.ResponseError
	if !errors.As(err, &re) {
		return
	}
	for i, e := range re.Errors {
		for _, v := range values {
			e = strings.ReplaceAll(e, v, "…")
		}
		re.Errors[i] = e
	}
}

// bodyStrings lists the strings of a body, its members' names left out,
// longest first (so that a value holding another is scrubbed whole).
func bodyStrings(v any) []string {
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			if len(x) >= 3 {
				out = append(out, x)
			}
		case json.Number:
			if len(x) >= 3 {
				out = append(out, string(x))
			}
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}

// writeClass tells how a failed write is retried: only when Vault
// provably did not act on it.
func writeClass(err error) provider.Class {
	var re *api.ResponseError
	if errors.As(err, &re) {
		switch re.StatusCode {
		case http.StatusTooManyRequests:
			return provider.Throttled
		case http.StatusServiceUnavailable, http.StatusPreconditionFailed:
			return provider.Transient
		}
		return provider.Permanent
	}
	if notSent(err) {
		return provider.Transient
	}
	return provider.Permanent
}

// notSent tells whether err means the request never left: no connection
// was made.
func notSent(err error) bool {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return true
	}
	var de *net.DNSError
	return errors.As(err, &de) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH)
}

// describeWrite explains a failed write. A write needs the "update"
// capability on its path (and "create" where the path does not exist yet).
func describeWrite(c *api.Client, err error, path string) error {
	var re *api.ResponseError
	if errors.As(err, &re) && re.StatusCode == http.StatusForbidden {
		return fmt.Errorf("permission denied: the Vault token needs the \"update\" capability on %s to write to it (and \"create\" where nothing exists there yet)", path)
	}
	if errors.As(err, &re) && re.StatusCode == http.StatusBadRequest {
		// Vault's reason (unknown role, a name the role does not allow),
		// with the body's values scrubbed out of it.
		return fmt.Errorf("Vault refused the write to %s: %s%s", path, statusText(re.StatusCode), vaultErrors(re))
	}
	if !errors.As(err, &re) && !notSent(err) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) && transient(err) {
		return fmt.Errorf("the write to %s may have reached Vault, so it is not retried: %w", path, describe(c, err, path, "update"))
	}
	return describe(c, err, path, "update")
}

// decodeWrite turns a write's answer into a Result: its data as a JSON
// object ({} when Vault answered 204 No Content). Its Lease is how long
// what it issued lasts: a lease's duration, or for a certificate (PKI's
// "expiration", Unix seconds) the time left until it expires, whichever
// ends first. Its Version is the certificate's serial number, when there
// is one: it names no secret.
func decodeWrite(secret *api.Secret, path string, now time.Time) provider.Result {
	data := map[string]any{}
	if secret != nil && secret.Data != nil {
		data = secret.Data
	}
	b, err := json.Marshal(data)
	if err != nil { // never quote the data
		return provider.Result{Err: fmt.Errorf("cannot encode the answer of the write to %s as JSON", path)}
	}
	res := provider.Result{Value: b}
	if s, ok := data["serial_number"].(string); ok {
		res.Version = s
	}
	if secret != nil && secret.LeaseID != "" && secret.LeaseDuration > 0 {
		// As for a read (decode): the refresh loop renews and revokes
		// it (aws/sts/ROLE, database credentials issued by a write).
		res.Lease = time.Duration(secret.LeaseDuration) * time.Second
		res.LeaseID, res.Renewable = provider.LeaseID(secret.LeaseID), secret.Renewable
	}
	if exp, ok := expiration(data["expiration"]); ok {
		left := exp.Sub(now)
		if left <= 0 {
			// Issued already expired: this host's clock is ahead of
			// Vault's by more than the certificate's TTL (or the role
			// caps it at less than the skew). Fail closed: delivering
			// it would start the command with a dead certificate, and
			// issuing again at once would loop.
			return provider.Result{Err: fmt.Errorf("the certificate issued by the write to %s expired at %s, %s before this host's clock (%s): check the clock skew between this host and Vault, or ask for a longer ttl",
				path, exp.UTC().Format(time.RFC3339), (-left).Round(time.Second), now.UTC().Format(time.RFC3339))}
		}
		if res.Lease == 0 || left < res.Lease {
			res.Lease = left
		}
	}
	return res
}

// expiration reads PKI's "expiration": Unix seconds, a JSON number.
func expiration(v any) (time.Time, bool) {
	var sec int64
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		if err != nil {
			return time.Time{}, false
		}
		sec = i
	case float64:
		sec = int64(n)
	case string:
		i, err := strconv.ParseInt(n, 10, 64)
		if err != nil {
			return time.Time{}, false
		}
		sec = i
	default:
		return time.Time{}, false
	}
	if sec <= 0 {
		return time.Time{}, false
	}
	return time.Unix(sec, 0), true
}
