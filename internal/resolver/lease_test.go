package resolver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/secrets-init/secrets-init/provider"
)

// leaseStore issues leases and keeps a token, in the test resolver: as
// Secrets Manager's kind, which the other tests leave alone.
type leaseStore struct{ calls *atomic.Int64 }

func init() {
	testStores[provider.SecretsManager] = func(context.Context, provider.Settings) (provider.Store, error) {
		return leaseStore{new(atomic.Int64)}, nil
	}
}

func (s leaseStore) Fetch(_ context.Context, ts []provider.Target) []provider.Result {
	rs := make([]provider.Result, len(ts))
	for i, t := range ts {
		rs[i] = provider.Result{Value: []byte(canary), Lease: time.Hour, LeaseID: provider.LeaseID("creds/" + t.Name), Renewable: t.Name != "fixed"}
	}
	return rs
}

func (s leaseStore) RenewLease(_ context.Context, id provider.LeaseID, inc time.Duration) provider.LeaseState {
	s.calls.Add(1)
	if id.Reveal() == "creds/gone" {
		return provider.LeaseState{Err: errors.New("the lease no longer exists")}
	}
	return provider.LeaseState{TTL: inc / 2, Renewable: true}
}

func (s leaseStore) RevokeLease(_ context.Context, id provider.LeaseID) error {
	s.calls.Add(1)
	if id.Reveal() == "creds/gone" {
		return fmt.Errorf("revoke: %w", provider.ErrNotFound)
	}
	return nil
}

// Token answers the number of calls this store has had as minutes: the
// resolver keeps one store per kind, so it counts up.
func (s leaseStore) Token(_ context.Context, op provider.TokenOp) provider.LeaseState {
	n := s.calls.Add(1)
	return provider.LeaseState{TTL: time.Duration(n) * time.Minute, Renewable: op != provider.TokenLogin, Login: true}
}

// TestLeasesCross: lease ids and renewability come back with the values;
// renewals, revocations and token calls reach the resolver's one store
// of the kind and their answers come back; a store without leases says
// so.
func TestLeasesCross(t *testing.T) {
	c, _ := newClient(t, Settings{})
	st := open(t, c, provider.SecretsManager)
	rs := st.Fetch(context.Background(), []provider.Target{{Kind: provider.SecretsManager, Name: "db"}, {Kind: provider.SecretsManager, Name: "fixed"}})
	if rs[0].LeaseID.Reveal() != "creds/db" || !rs[0].Renewable || rs[0].Lease != time.Hour || rs[1].Renewable {
		t.Fatalf("results: lease ids %q %q, renewable %v %v", rs[0].LeaseID.Reveal(), rs[1].LeaseID.Reveal(), rs[0].Renewable, rs[1].Renewable)
	}
	lr, ok := st.(provider.Leaser)
	if !ok {
		t.Fatal("a remote store is no provider.Leaser")
	}
	if ls := lr.RenewLease(context.Background(), rs[0].LeaseID, time.Hour); ls.Err != nil || ls.TTL != 30*time.Minute || !ls.Renewable {
		t.Errorf("renewal: %+v", ls)
	}
	if ls := lr.RenewLease(context.Background(), "creds/gone", time.Hour); ls.Err == nil || !strings.Contains(ls.Err.Error(), "no longer exists") {
		t.Errorf("renewal of a gone lease: %+v", ls)
	}
	if err := lr.RevokeLease(context.Background(), rs[0].LeaseID); err != nil {
		t.Errorf("revocation: %v", err)
	}
	if err := lr.RevokeLease(context.Background(), "creds/gone"); !errors.Is(err, provider.ErrNotFound) {
		t.Errorf("revocation of a gone lease: %v", err)
	}
	ls := lr.Token(context.Background(), provider.TokenLogin)
	if ls.Err != nil || ls.TTL != 5*time.Minute || ls.Renewable || !ls.Login {
		t.Errorf("token: %+v; want the fifth call to one store, not renewable, login", ls)
	}
	g := open(t, c, provider.Google).(provider.Leaser)
	if ls := g.Token(context.Background(), provider.TokenLookup); ls.Err == nil || !strings.Contains(ls.Err.Error(), "has no leases") {
		t.Errorf("a store without leases: %+v", ls)
	}
}
