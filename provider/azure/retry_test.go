package azure

import (
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/secrets-init/secrets-init/provider"
)

// nonRetriableErr is marked the way azidentity marks a failed login.
type nonRetriableErr struct{}

func (nonRetriableErr) Error() string { return "authentication failed" }
func (nonRetriableErr) NonRetriable() {}

// TestClass: Key Vault's answers and transport errors are classed for the
// engine's policy, and a Retry-After is read as the server's wait.
func TestClass(t *testing.T) {
	answer := func(status int, retryAfter string) retryable {
		r := &http.Response{StatusCode: status, Status: http.StatusText(status), Header: http.Header{}}
		if retryAfter != "" {
			r.Header.Set("Retry-After", retryAfter)
		}
		return retryable{r}
	}
	for _, c := range []struct {
		name string
		err  error
		want provider.Class
	}{
		{"429", answer(http.StatusTooManyRequests, ""), provider.Throttled},
		{"503", answer(http.StatusServiceUnavailable, ""), provider.Transient},
		{"connection reset", &net.OpError{Op: "read", Err: errors.New("connection reset by peer")}, provider.Transient},
		{"no such host", &net.DNSError{Name: "x.vault.azure.net", IsNotFound: true}, provider.Permanent},
		{"certificate", &tls.CertificateVerificationError{Err: errors.New("unknown authority")}, provider.Permanent},
		{"failed login", nonRetriableErr{}, provider.Permanent},
		{"rewind", permanent{errors.New("cannot rewind")}, provider.Permanent},
	} {
		if got := class(c.err); got != c.want {
			t.Errorf("%s: class %v, want %v", c.name, got, c.want)
		}
	}
	for _, c := range []struct {
		header string
		want   time.Duration
	}{{"", 0}, {"3", 3 * time.Second}, {"0", 0}, {"-1", 0}, {"soon", 0}, {"Wed, 21 Oct 2015 07:28:00 GMT", 0}} {
		if got := answer(http.StatusTooManyRequests, c.header).RetryAfter(); got != c.want {
			t.Errorf("Retry-After %q: %v, want %v", c.header, got, c.want)
		}
	}
	// A date in the future is a wait (its length depends on the clock:
	// only its sign is checked).
	if got := answer(http.StatusTooManyRequests, time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)).RetryAfter(); got <= 0 {
		t.Errorf("Retry-After a date an hour ahead: %v", got)
	}
	ms := answer(http.StatusTooManyRequests, "30")
	ms.resp.Header.Set("x-ms-retry-after-ms", "1500")
	if got := ms.RetryAfter(); got != 1500*time.Millisecond {
		t.Errorf("x-ms-retry-after-ms 1500: %v, want it over Retry-After", got)
	}
}
