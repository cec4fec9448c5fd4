package azure

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"

	"github.com/secrets-init/secrets-init/provider"
)

// retryPolicy retries Key Vault requests under the engine's backoff
// (provider.Backoff): the clients' own retry policy is off, since azcore
// takes no delay function. A Retry-After is waited as the policy says.
// (The credential's token requests keep azcore's retry, with the policy's
// numbers: azidentity relies on per-request overrides of it, such as the
// single attempt of its managed identity probe.)
type retryPolicy struct{ backoff provider.Backoff }

// retryable is a response whose status shouldRetry retries, as an error.
type retryable struct{ resp *http.Response }

func (r retryable) Error() string { return "HTTP " + r.resp.Status }

// RetryAfter is the wait the response asks for, as azcore reads it:
// retry-after-ms or x-ms-retry-after-ms (milliseconds), else Retry-After
// (seconds, or an HTTP date); 0 if none.
func (r retryable) RetryAfter() time.Duration {
	h := r.resp.Header
	for _, name := range []string{"retry-after-ms", "x-ms-retry-after-ms"} {
		if ms, err := strconv.Atoi(h.Get(name)); err == nil && ms > 0 {
			return time.Duration(ms) * time.Millisecond
		}
	}
	v := h.Get("Retry-After")
	if s, err := strconv.Atoi(v); err == nil {
		return time.Duration(max(s, 0)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

func (p retryPolicy) Do(req *policy.Request) (*http.Response, error) {
	ctx := req.Raw().Context()
	var resp *http.Response
	err := p.backoff.Retry(ctx, func() error {
		if resp != nil {
			runtime.Drain(resp) // a retryable answer: nothing in it is needed
			resp = nil
		}
		if err := req.RewindBody(); err != nil {
			return permanent{err}
		}
		var err error
		resp, err = req.Clone(ctx).Next()
		switch {
		case err != nil:
			return err
		case shouldRetry(resp, nil):
			return retryable{resp}
		}
		return nil
	}, class)
	// As azcore's retry, the last answer goes with the error (the
	// SDK and describe read it).
	var r retryable
	var pe permanent
	switch {
	case err == nil, errors.As(err, &r):
		// Done, or a Retry-After beyond the policy's: the SDK reads the
		// answer.
		return resp, nil
	case errors.As(err, &pe):
		return resp, pe.err
	case ctx.Err() != nil:
		return resp, ctx.Err()
	}
	return resp, err
}

// permanent is an error that is not retried.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }

// nonRetriable is how the Azure SDK marks errors that no retry mends,
// such as a failed authentication.
type nonRetriable interface{ NonRetriable() }

// class tells how a failed attempt is retried: 429 is throttling; the
// other statuses and transport errors that shouldRetry retries are
// transient.
func class(err error) provider.Class {
	var r retryable
	var p permanent
	switch {
	case errors.As(err, &r):
		if r.resp.StatusCode == http.StatusTooManyRequests {
			return provider.Throttled
		}
		return provider.Transient
	case errors.As(err, &p), errors.As(err, new(nonRetriable)), !shouldRetry(nil, err):
		return provider.Permanent
	}
	return provider.Transient
}
