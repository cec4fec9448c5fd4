package provider

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
)

// Leases (SPEC §8, "Vault dynamic secrets"): a store whose values come
// with leases renews and revokes them, and keeps its own token alive, for
// the refresh loop (package refresh), which decides when.

// A LeaseID names a lease, so that it can be renewed or revoked. It is
// not a value, but it is never shown either: fmt, slog and JSON print
// "[lease id]" in its place, so that it cannot reach a log line, an error
// or the status file by accident.
type LeaseID string

const leaseIDShown = "[lease id]"

func (LeaseID) String() string               { return leaseIDShown }
func (LeaseID) GoString() string             { return leaseIDShown }
func (LeaseID) Format(f fmt.State, _ rune)   { io.WriteString(f, leaseIDShown) }
func (LeaseID) LogValue() slog.Value         { return slog.StringValue(leaseIDShown) }
func (LeaseID) MarshalText() ([]byte, error) { return []byte(leaseIDShown), nil }

// Reveal is the lease id itself, for the store's API call and the
// resolver's pipe only.
func (id LeaseID) Reveal() string { return string(id) }

// A LeaseState is what a store said of a lease or of its token.
type LeaseState struct {
	TTL       time.Duration // how long it lasts from now; 0: it does not end
	Renewable bool          // it can be renewed again
	Login     bool          // for a token: the store can log in again for a new one
	Err       error         // never holds a value or a lease id
}

// TokenOp is what Leaser.Token does.
type TokenOp uint8

const (
	TokenLookup TokenOp = iota // how long the token lasts
	TokenRenew                 // renew it
	TokenLogin                 // log in again for a new one
)

// A Leaser is a Store whose values can come with leases.
type Leaser interface {
	// RenewLease renews a lease by about increment; TTL is how long it
	// lasts now (a store's maximum may cut it).
	RenewLease(ctx context.Context, id LeaseID, increment time.Duration) LeaseState
	// RevokeLease ends a lease: its credentials stop working.
	RevokeLease(ctx context.Context, id LeaseID) error
	// Token looks up, renews or replaces the store's own token.
	Token(ctx context.Context, op TokenOp) LeaseState
}

// Keep returns an Opener that opens once and gives the same Store to
// every later call (a failed Open is tried again next time): with
// refresh, the resolution's reads, the checks and the lease renewals then
// share one client and one token.
func Keep(open Opener) Opener {
	if open == nil {
		return nil
	}
	var mu sync.Mutex
	var kept Store
	return func(ctx context.Context, s Settings) (Store, error) {
		mu.Lock()
		defer mu.Unlock()
		if kept != nil {
			return kept, nil
		}
		st, err := open(ctx, s)
		if err == nil {
			kept = st
		}
		return st, err
	}
}
