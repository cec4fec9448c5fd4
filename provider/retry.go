package provider

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// A Class says whether and how a failed call may be retried. Stores map
// their API's errors to a Class; the Backoff decides the waits.
type Class int

const (
	Permanent Class = iota // no retry can mend it: report it at once
	Transient              // may pass by itself: unreachable, a server fault, a server restarting
	Throttled              // the service asks for fewer calls: wait longer
)

// A Step is the delays of one Class: before retry n (n = 1, 2, …) the
// wait is random in [0, min(Max, Base·2^n)).
type Step struct{ Base, Max time.Duration }

// Backoff is the retry policy of every store: full-jitter exponential
// backoff, throttling waiting longer than a transient fault, and no
// attempt limit: only the context's end stops the retries.
//
// The zero Backoff has DefaultBackoff's numbers.
type Backoff struct {
	Transient, Throttled Step

	rand  func(n time.Duration) time.Duration              // random in [0, n); nil: math/rand/v2
	sleep func(ctx context.Context, d time.Duration) error // nil: a timer, or ctx's end
}

// DefaultBackoff is the policy's numbers. Throttling starts higher: when a
// fleet starts at once, a short first wait only throttles half of it again
// (bench/fleet.sh: 1.70× the minimum calls with 250 ms, 1.50× with 1 s,
// which is the floor for a fleet that arrives at one moment). Full jitter
// up to the cap too, so that a fleet never retries in step.
var DefaultBackoff = Backoff{
	Transient: Step{Base: 250 * time.Millisecond, Max: 10 * time.Second},
	Throttled: Step{Base: time.Second, Max: 20 * time.Second},
}

// step returns the delays of c.
func (b Backoff) step(c Class) Step {
	if b.Transient == (Step{}) && b.Throttled == (Step{}) {
		b.Transient, b.Throttled = DefaultBackoff.Transient, DefaultBackoff.Throttled
	}
	if c == Throttled {
		return b.Throttled
	}
	return b.Transient
}

// Delay returns the wait before retry n (n ≥ 1) of a call whose last
// attempt failed with class c: random in [0, min(Max, Base·2^n)).
func (b Backoff) Delay(n int, c Class) time.Duration {
	s := b.step(c)
	ceiling := s.Max
	if n >= 0 && n < 16 {
		ceiling = min(s.Max, s.Base<<n)
	}
	if ceiling <= 0 {
		return 0
	}
	if b.rand != nil {
		return b.rand(ceiling)
	}
	return rand.N(ceiling)
}

// MaxHint is the longest server-given wait (an HTTP Retry-After) that is
// honoured: a server that asks for more is answered with its error at
// once.
func (b Backoff) MaxHint() time.Duration { return b.step(Throttled).Max }

// A Hinted error carries the server's own wait before the next attempt
// (such as an HTTP Retry-After); 0 means none.
type Hinted interface{ RetryAfter() time.Duration }

// Retry calls op until it succeeds, fails with a Permanent error (which
// it returns), or ctx ends. classify maps op's errors to a Class. When
// ctx ends after a failed attempt, Retry returns an *Exhausted holding
// that attempt's error; when it ends before any, ctx's error.
//
// A failure whose error is Hinted waits as the server asks, unless that
// is more than MaxHint: then Retry returns the error at once.
func (b Backoff) Retry(ctx context.Context, op func() error, classify func(error) Class) error {
	var last error
	for n := 1; ; n++ {
		err := op()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return stopped(ctx, last)
		}
		c := classify(err)
		if c == Permanent {
			return err
		}
		last = err
		d := b.Delay(n, c)
		var h Hinted
		if errors.As(err, &h) && h.RetryAfter() > 0 {
			if d = h.RetryAfter(); d > b.MaxHint() {
				return err
			}
		}
		if b.wait(ctx, d) != nil {
			return stopped(ctx, last)
		}
	}
}

// Retry is DefaultBackoff.Retry.
func Retry(ctx context.Context, op func() error, classify func(error) Class) error {
	return DefaultBackoff.Retry(ctx, op, classify)
}

// wait sleeps d, or until ctx ends.
func (b Backoff) wait(ctx context.Context, d time.Duration) error {
	if b.sleep != nil {
		return b.sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// stopped is how a Retry ends with ctx: ctx's error when nothing had
// failed before, else an *Exhausted with the last failure.
func stopped(ctx context.Context, last error) error {
	if last == nil {
		return ctx.Err()
	}
	return &Exhausted{Last: last}
}

// Exhausted is a Retry that the context ended after failed attempts. It
// does not unwrap to the context's error, so that the engine reports the
// last failure (such as "Vault is sealed") and not a bare "deadline
// exceeded".
type Exhausted struct{ Last error }

func (e *Exhausted) Error() string {
	return e.Last.Error() + "; still failing at the deadline (--timeout)"
}
