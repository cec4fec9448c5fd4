package vault

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/secrets-init/secrets-init/provider"
)

// Leases and the token (SPEC §8): the store only makes the calls and maps
// their errors; when to make them is the refresh loop's. No error here
// holds a lease id or a token: the paths named are the fixed API paths
// (the lease id travels in the request body, never in a URL).

var _ provider.Leaser = (*store)(nil)

// RenewLease renews a lease (sys/leases/renew, the "update" capability)
// by about increment; Vault may cut it at the lease's max TTL.
func (st *store) RenewLease(ctx context.Context, id provider.LeaseID, increment time.Duration) provider.LeaseState {
	defer st.http.CloseIdleConnections()
	if err := st.authenticate(ctx); err != nil {
		return provider.LeaseState{Err: err}
	}
	var secret *api.Secret
	err := retry(ctx, func() (err error) {
		secret, err = st.client.Sys().RenewWithContext(ctx, id.Reveal(), int(increment/time.Second))
		return err
	})
	if err != nil {
		return provider.LeaseState{Err: leaseError(st.client, err, "sys/leases/renew")}
	}
	if secret == nil {
		return provider.LeaseState{Err: errors.New("Vault renewed the lease but sent no answer (sys/leases/renew)")}
	}
	return provider.LeaseState{TTL: time.Duration(secret.LeaseDuration) * time.Second, Renewable: secret.Renewable}
}

// RevokeLease revokes a lease (sys/leases/revoke, the "update"
// capability). A lease that is already gone (Vault's 400: revoked, or
// ended) is not an error: its credentials have stopped, as asked.
func (st *store) RevokeLease(ctx context.Context, id provider.LeaseID) error {
	defer st.http.CloseIdleConnections()
	if err := st.authenticate(ctx); err != nil {
		return err
	}
	err := retry(ctx, func() error {
		return st.client.Sys().RevokeWithContext(ctx, id.Reveal())
	})
	if err != nil {
		if err = leaseError(st.client, err, "sys/leases/revoke"); errors.Is(err, provider.ErrNotFound) {
			return nil
		}
		return err
	}
	return nil
}

// Token looks up (auth/token/lookup-self), renews (auth/token/renew-self)
// or replaces (a new login, then lookup-self) the store's token. Both
// paths are in Vault's default policy. Login is true when the store logs
// in with an auth method, and so can get a new token.
//
// A token of a login whose policy lacks them (no default policy) gets
// ErrDenied for lookup-self and renew-self, with TTL the time its login
// said it has left, so that the caller can log in again before it ends;
// a new login then answers with the login's TTL.
func (st *store) Token(ctx context.Context, op provider.TokenOp) provider.LeaseState {
	defer st.http.CloseIdleConnections()
	_, fixed := st.login.(fixedToken)
	state := func(s provider.LeaseState) provider.LeaseState {
		s.Login = !fixed
		return s
	}
	if op == provider.TokenLogin {
		if fixed {
			return provider.LeaseState{Err: errors.New("the Vault token was given (VAULT_TOKEN, a token file): there is no auth method to log in with again")}
		}
		st.forgetToken()
	}
	if err := st.authenticate(ctx); err != nil {
		return state(provider.LeaseState{Err: err})
	}
	if op == provider.TokenRenew {
		var secret *api.Secret
		err := retry(ctx, func() (err error) {
			secret, err = st.client.Auth().Token().RenewSelfWithContext(ctx, 0)
			return err
		})
		if err != nil {
			return st.deniedToken(state, leaseError(st.client, err, "auth/token/renew-self"))
		}
		if secret == nil || secret.Auth == nil {
			return state(provider.LeaseState{Err: errors.New("Vault renewed the token but sent no answer (auth/token/renew-self)")})
		}
		return state(provider.LeaseState{TTL: time.Duration(secret.Auth.LeaseDuration) * time.Second, Renewable: secret.Auth.Renewable})
	}
	var secret *api.Secret
	err := retry(ctx, func() (err error) {
		secret, err = st.client.Auth().Token().LookupSelfWithContext(ctx)
		return err
	})
	if err != nil {
		err = leaseError(st.client, err, "auth/token/lookup-self")
		if ttl := st.loginLeft(); op == provider.TokenLogin && ttl > 0 && errors.Is(err, provider.ErrDenied) {
			return state(provider.LeaseState{TTL: ttl}) // logged in; its answer said how long for
		}
		return st.deniedToken(state, err)
	}
	ttl, err := secret.TokenTTL()
	if err != nil {
		return state(provider.LeaseState{Err: errors.New("Vault's answer for auth/token/lookup-self has no readable ttl")})
	}
	renewable, _ := secret.TokenIsRenewable()
	return state(provider.LeaseState{TTL: ttl, Renewable: renewable})
}

// deniedToken is the answer to a token call that failed with err: when
// it was denied and a login said how long its token lasts, with that TTL.
func (st *store) deniedToken(state func(provider.LeaseState) provider.LeaseState, err error) provider.LeaseState {
	s := provider.LeaseState{Err: err}
	if errors.Is(err, provider.ErrDenied) {
		s.TTL = st.loginLeft()
	}
	return state(s)
}

// loginLeft is how long the token of the last login has left, by its
// answer (0: a given token, a login without a TTL, or ended).
func (st *store) loginLeft() time.Duration {
	st.tokenMu.Lock()
	defer st.tokenMu.Unlock()
	if st.loginEnd.IsZero() {
		return 0
	}
	return max(time.Until(st.loginEnd), 0)
}

// forgetToken drops the token, so that the next call logs in again.
func (st *store) forgetToken() {
	st.tokenMu.Lock()
	defer st.tokenMu.Unlock()
	st.client.ClearToken()
}

// capability is what path needs in a policy.
func capability(path string) string {
	if path == "auth/token/lookup-self" {
		return "read"
	}
	return "update"
}

// leaseError describes a failed lease or token call. Vault's own error
// strings are not passed on for these paths, since some of them can quote
// the lease id: only the status and what it means.
func leaseError(c *api.Client, err error, path string) error {
	var ex *provider.Exhausted
	if errors.As(err, &ex) {
		return &provider.Exhausted{Last: leaseError(c, ex.Last, path)}
	}
	var re *api.ResponseError
	if errors.As(err, &re) {
		switch re.StatusCode {
		case 400:
			// Vault's answer to a lease that was revoked, has ended or
			// is not renewable: as good as gone.
			return fmt.Errorf("Vault refused %s (%s): the lease or token is not renewable, or no longer exists: %w", path, statusText(re.StatusCode), provider.ErrNotFound)
		case 403:
			return fmt.Errorf("%w: the Vault token needs the %q capability on %s", provider.ErrDenied, capability(path), path)
		}
		return fmt.Errorf("Vault answered %s for %s", statusText(re.StatusCode), path)
	}
	return describe(c, err, path, capability(path))
}
