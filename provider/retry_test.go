package provider

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// drawing returns a Backoff whose random source always draws the largest
// wait allowed (just under the ceiling), or the smallest (0).
func drawing(largest bool) Backoff {
	b := DefaultBackoff
	b.rand = func(n time.Duration) time.Duration {
		if largest {
			return n - 1
		}
		return 0
	}
	return b
}

// TestDelayCeilings: the wait before retry n is below min(Max, Base·2^n),
// throttling's ceiling above a transient fault's, and the draw spans the
// whole range from 0 (full jitter).
func TestDelayCeilings(t *testing.T) {
	hi, lo := drawing(true), drawing(false)
	for _, c := range []struct {
		n     int
		class Class
		want  time.Duration // ceiling
	}{
		{1, Transient, 500 * time.Millisecond},
		{2, Transient, time.Second},
		{5, Transient, 8 * time.Second},
		{6, Transient, 10 * time.Second},
		{40, Transient, 10 * time.Second},
		{1, Throttled, 2 * time.Second},
		{2, Throttled, 4 * time.Second},
		{4, Throttled, 16 * time.Second},
		{5, Throttled, 20 * time.Second},
		{1000, Throttled, 20 * time.Second},
	} {
		if got := hi.Delay(c.n, c.class); got != c.want-1 {
			t.Errorf("Delay(%d, %v), largest draw = %v, want %v", c.n, c.class, got, c.want-1)
		}
		if got := lo.Delay(c.n, c.class); got != 0 {
			t.Errorf("Delay(%d, %v), smallest draw = %v, want 0", c.n, c.class, got)
		}
	}
}

// TestDelayRandom: with the real random source, waits stay under the
// ceiling and are spread over it (full jitter, not a fixed wait).
func TestDelayRandom(t *testing.T) {
	var shortest, longest time.Duration = time.Hour, 0
	for range 1000 {
		d := DefaultBackoff.Delay(1, Throttled)
		if d < 0 || d >= 2*time.Second {
			t.Fatalf("throttled, retry 1: waited %v, want [0, 2s)", d)
		}
		shortest, longest = min(shortest, d), max(longest, d)
		if d := DefaultBackoff.Delay(1, Transient); d < 0 || d >= 500*time.Millisecond {
			t.Fatalf("transient, retry 1: waited %v, want [0, 500ms)", d)
		}
	}
	if shortest > 250*time.Millisecond || longest < time.Second {
		t.Errorf("throttled waits span %v..%v: want them spread over 0..2s", shortest, longest)
	}
}

func TestZeroBackoffIsDefault(t *testing.T) {
	var b Backoff
	b.rand = func(n time.Duration) time.Duration { return n }
	if got := b.Delay(1, Throttled); got != 2*time.Second {
		t.Errorf("zero Backoff: ceiling %v, want the default's 2s", got)
	}
	if b.MaxHint() != 20*time.Second {
		t.Errorf("MaxHint = %v", b.MaxHint())
	}
}

// recorder is a Backoff whose sleeps are recorded, not slept.
func recorder(slept *[]time.Duration) Backoff {
	b := drawing(true)
	b.sleep = func(ctx context.Context, d time.Duration) error {
		*slept = append(*slept, d)
		return ctx.Err()
	}
	return b
}

type hinted struct{ after time.Duration }

func (h hinted) Error() string             { return "busy" }
func (h hinted) RetryAfter() time.Duration { return h.after }

var (
	errBusy    = errors.New("busy")
	errDown    = errors.New("down")
	errDenied  = errors.New("denied")
	classifier = func(err error) Class {
		switch {
		case errors.Is(err, errBusy), errors.As(err, new(hinted)):
			return Throttled
		case errors.Is(err, errDown):
			return Transient
		}
		return Permanent
	}
)

func TestRetry(t *testing.T) {
	ctx := t.Context()
	var slept []time.Duration
	b := recorder(&slept)

	// Failures are retried, each with its class's wait, until success.
	fails := []error{errDown, errBusy, errDown, nil}
	n := 0
	if err := b.Retry(ctx, func() error { n++; return fails[n-1] }, classifier); err != nil || n != 4 {
		t.Fatalf("err %v after %d calls, want success at the 4th", err, n)
	}
	want := []time.Duration{500*time.Millisecond - 1, 4*time.Second - 1, 2*time.Second - 1}
	if !slices.Equal(slept, want) {
		t.Errorf("waits %v, want %v", slept, want)
	}

	// A permanent failure is returned at once.
	slept, n = nil, 0
	if err := b.Retry(ctx, func() error { n++; return errDenied }, classifier); err != errDenied || n != 1 || len(slept) != 0 {
		t.Errorf("permanent: err %v after %d calls and %d waits", err, n, len(slept))
	}

	// A server's wait is honoured, up to MaxHint; beyond it the error
	// is returned at once.
	slept, n = nil, 0
	if err := b.Retry(ctx, func() error {
		if n++; n == 1 {
			return hinted{3 * time.Second}
		}
		return nil
	}, classifier); err != nil || !slices.Equal(slept, []time.Duration{3 * time.Second}) {
		t.Errorf("hinted: err %v, waits %v", err, slept)
	}
	slept = nil
	long := hinted{21 * time.Second}
	if err := b.Retry(ctx, func() error { return long }, classifier); err != long || len(slept) != 0 {
		t.Errorf("hint beyond MaxHint: err %v, waits %v", err, slept)
	}
}

// TestRetryUntilContextEnds: no attempt limit; when the context ends the
// last failure is kept, and a context that ended before any failure
// gives its own error.
func TestRetryUntilContextEnds(t *testing.T) {
	var slept []time.Duration
	b := recorder(&slept)
	ctx, cancel := context.WithCancel(t.Context())
	n := 0
	err := b.Retry(ctx, func() error {
		if n++; n == 100 {
			cancel()
		}
		return errBusy
	}, classifier)
	var ex *Exhausted
	if !errors.As(err, &ex) || ex.Last != errBusy || errors.Is(err, context.Canceled) || n != 100 {
		t.Errorf("err %v after %d calls; want *Exhausted with the last failure, after 100", err, n)
	}
	if err.Error() != "busy; still failing at the deadline (--timeout)" {
		t.Errorf("message %q", err)
	}
	if slept[len(slept)-1] != 20*time.Second-1 {
		t.Errorf("last wait %v, want the cap", slept[len(slept)-1])
	}

	// Ended while waiting: the same.
	ctx, cancel = context.WithCancel(t.Context())
	b.sleep = func(context.Context, time.Duration) error { cancel(); return context.Canceled }
	if err := b.Retry(ctx, func() error { return errDown }, classifier); !errors.As(err, &ex) || ex.Last != errDown {
		t.Errorf("ended while waiting: %v", err)
	}

	// Ended before any failure: ctx's error.
	if err := b.Retry(ctx, func() error { return ctx.Err() }, classifier); err != context.Canceled {
		t.Errorf("ended before: %v", err)
	}
}

// TestRetryRealSleep runs the timer path without asserting on time.
func TestRetryRealSleep(t *testing.T) {
	b := Backoff{Transient: Step{time.Microsecond, time.Millisecond}, Throttled: Step{time.Microsecond, time.Millisecond}}
	n := 0
	if err := b.Retry(t.Context(), func() error {
		if n++; n < 5 {
			return errDown
		}
		return nil
	}, classifier); err != nil || n != 5 {
		t.Errorf("err %v after %d calls", err, n)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := b.wait(ctx, time.Hour); err != context.Canceled {
		t.Errorf("wait on an ended context: %v", err)
	}
}
