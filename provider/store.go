// Package provider finds secret references in an environment and resolves
// them: it parses references, de-duplicates the fetch targets, hands each
// store all of its targets at once, applies selectors and options, and
// builds the child's environment. It imports no cloud SDK; the stores live
// in its subpackages and are wired in by main.
package provider

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// ErrNotFound is wrapped by a store's error when a secret does not exist.
// Such a reference is left unset under ?optional or --ignore-missing.
var ErrNotFound = errors.New("not found")

// A Store resolves the fetch targets of one Kind.
type Store interface {
	// Fetch resolves every target and returns one Result per target, in
	// the same order. It is called once per resolution with every target
	// of its Kind, so that it can batch; concurrent calls it makes go
	// through Settings.Limit, and failed calls are retried under the
	// engine's Backoff (Retry). ctx ends a grace before the engine stops
	// waiting: Fetch returns when it ends, having released its
	// connections. A Result left unset (no Value, no Err) because ctx
	// ended gets the context's error from the engine.
	Fetch(ctx context.Context, targets []Target) []Result
}

// A Result is one target's value, or why there is none.
type Result struct {
	Value   []byte // non-nil on success (an empty secret is []byte{})
	Version string // the version served, when the store tells it
	Binary  bool   // the store holds it as binary: deliverable only with ?file
	// FileValue, when set, is what ?file writes instead of Value: the
	// decoded bytes of a value stored as text, such as an Azure PFX.
	FileValue []byte
	// Lease is how long the value's credentials last, when the store
	// issued them under a lease that ends (a Vault dynamic secret); 0:
	// none.
	Lease time.Duration
	// LeaseID names that lease, when the store can renew or revoke it
	// (a Leaser); Renewable says whether it can be renewed.
	LeaseID   LeaseID
	Renewable bool
	Err       error // why there is no value; never holds the value
}

// Settings are what stores are opened with.
type Settings struct {
	Log   *slog.Logger // never given values
	Limit *Limiter     // bounds concurrent calls (--concurrency)
}

// An Opener creates a Store. It is called only when the environment
// references its Kind, so no client (and no metadata or network call)
// exists for a store nobody references.
type Opener func(ctx context.Context, s Settings) (Store, error)

// A Limiter bounds the number of calls in flight across all stores.
type Limiter struct{ slots chan struct{} }

// NewLimiter returns a Limiter allowing n concurrent calls (at least 1).
func NewLimiter(n int) *Limiter {
	return &Limiter{slots: make(chan struct{}, max(n, 1))}
}

// Each calls fn(i) for every i in [0, n), each in its own goroutine once a
// slot is free, and waits for the calls it started. When ctx ends first,
// calls not yet started are skipped and Each returns ctx's error. A call
// that panics is abandoned, its result left unset (the engine reports it),
// so that no panic message can print a value.
func (l *Limiter) Each(ctx context.Context, n int, fn func(i int)) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := range n {
		select {
		case l.slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		wg.Go(func() {
			defer func() {
				recover()
				<-l.slots
			}()
			fn(i)
		})
	}
	return nil
}

// Failed returns n Results that all carry err.
func Failed(n int, err error) []Result {
	rs := make([]Result, n)
	for i := range rs {
		rs[i].Err = err
	}
	return rs
}
