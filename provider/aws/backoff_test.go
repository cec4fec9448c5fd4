package aws

import (
	"errors"
	"testing"
	"time"

	"github.com/aws/smithy-go"
)

// TestBackoff checks that throttling waits longer than a transient fault,
// and that both waits are random (full jitter) and bounded.
func TestBackoff(t *testing.T) {
	throttled := &smithy.GenericAPIError{Code: "ThrottlingException"}
	transient := errors.New("connection reset")
	var longest, shortest time.Duration = 0, time.Hour
	for range 1000 {
		d, _ := jitterBackoff{}.BackoffDelay(1, throttled)
		if d >= 2*baseThrottleBackoff {
			t.Fatalf("throttled, attempt 1: waited %v, want < %v", d, 2*baseThrottleBackoff)
		}
		longest, shortest = max(longest, d), min(shortest, d)
		if d, _ := (jitterBackoff{}).BackoffDelay(1, transient); d >= 2*baseBackoff {
			t.Fatalf("transient, attempt 1: waited %v, want < %v", d, 2*baseBackoff)
		}
	}
	if longest < 2*baseBackoff || shortest > baseBackoff {
		t.Errorf("throttled waits span %v..%v: want them spread over 0..2s, past the transient ceiling", shortest, longest)
	}
	if d, _ := (jitterBackoff{}).BackoffDelay(40, throttled); d >= maxThrottleBackoff {
		t.Errorf("attempt 40 waited %v, want < %v", d, maxThrottleBackoff)
	}
}
