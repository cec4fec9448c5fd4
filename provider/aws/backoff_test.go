package aws

import (
	"errors"
	"testing"
	"time"

	"github.com/aws/smithy-go"

	"github.com/secrets-init/secrets-init/provider"
)

// TestBackoff checks that the SDK's retryer takes its waits from the
// engine's policy: the SDK's throttling errors wait as Throttled, other
// faults as Transient (the policy's own numbers are tested in package
// provider).
func TestBackoff(t *testing.T) {
	throttled := &smithy.GenericAPIError{Code: "ThrottlingException"}
	transient := errors.New("connection reset")
	b := backoff{provider.Backoff{
		Transient: provider.Step{Base: time.Nanosecond, Max: time.Nanosecond},
		Throttled: provider.Step{Base: time.Hour, Max: time.Hour},
	}}
	var longest time.Duration
	for range 100 {
		if d, _ := b.BackoffDelay(1, transient); d != 0 {
			t.Fatalf("transient: waited %v, want the Transient step's (0)", d)
		}
		d, _ := b.BackoffDelay(1, throttled)
		longest = max(longest, d)
	}
	if longest < time.Second {
		t.Errorf("throttled: waits up to %v, want the Throttled step's", longest)
	}
	// The retryer that every client gets uses the default policy, with
	// no attempt limit.
	r := newRetryer()
	if r.MaxAttempts() != 0 {
		t.Errorf("MaxAttempts = %d, want 0 (no limit)", r.MaxAttempts())
	}
	for range 100 {
		if d, err := r.RetryDelay(1, throttled); err != nil || d >= 2*time.Second {
			t.Fatalf("throttled, attempt 1: %v, %v; want < 2s", d, err)
		}
		if d, err := r.RetryDelay(1, transient); err != nil || d >= 500*time.Millisecond {
			t.Fatalf("transient, attempt 1: %v, %v; want < 500ms", d, err)
		}
	}
}
