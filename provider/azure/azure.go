// Package azure resolves Azure Key Vault secrets with azsecrets and the
// standard credential chain (DefaultAzureCredential: environment, workload
// identity, managed identity, Azure CLI, ...). One credential, and so one
// token per cloud, serves every vault; each vault has its own client,
// created on first use.
package azure

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azlog "github.com/Azure/azure-sdk-for-go/sdk/azcore/log"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/secrets-init/secrets-init/provider"
)

// VaultEnv names the variable that gives the vault of the short form
// azure:keyvault:NAME[/VERSION] (bank-vaults secret-init's name).
const VaultEnv = "AZURE_KEY_VAULT_URL"

// pkcs12 is the content type Key Vault gives the secret behind a
// certificate whose key is exportable as PFX; its value is base64.
const pkcs12 = "application/x-pkcs12"

// Open returns the Key Vault store, reading the process environment. It
// does no network I/O: the credential and clients work on first Fetch.
func Open(_ context.Context, s provider.Settings) (provider.Store, error) {
	// AZURE_SDK_GO_LOGGING=all makes the SDK log requests and responses to
	// stderr: no SDK log line may carry a value or a token.
	azlog.SetListener(nil)
	st, err := newStore(s, http.DefaultTransport.(*http.Transport).Clone())
	if err != nil {
		return nil, err
	}
	return st, nil
}

// store is the Key Vault store.
type store struct {
	limit     *provider.Limiter
	transport *http.Transport      // closed after each Fetch, so no connection outlives it
	options   azcore.ClientOptions // the credential's
	// vaultOptions are the Key Vault clients': options, with the
	// engine's retries (retry.go) in place of azcore's.
	vaultOptions azcore.ClientOptions
	cred         azcore.TokenCredential
	vault        string // AZURE_KEY_VAULT_URL, normalised; empty when vaultErr says why
	vaultErr     error

	mu      sync.Mutex
	clients map[string]*azsecrets.Client // by vault URL
}

// newStore makes a store whose every request (tokens included) goes
// through transport, which honours HTTPS_PROXY and SSL_CERT_FILE.
func newStore(s provider.Settings, transport *http.Transport) (*store, error) {
	st := &store{
		limit:     s.Limit,
		transport: transport,
		options: azcore.ClientOptions{
			Transport: &http.Client{Transport: transport},
			// The credential's retries (retry.go): bounded by the
			// context's deadline (--timeout), not by a count, with the
			// engine's first ceiling and longest wait.
			Retry: policy.RetryOptions{
				MaxRetries:    math.MaxInt32,
				RetryDelay:    2 * provider.DefaultBackoff.Transient.Base,
				MaxRetryDelay: provider.DefaultBackoff.MaxHint(),
				ShouldRetry:   shouldRetry,
			},
		},
		clients: map[string]*azsecrets.Client{},
	}
	// Key Vault requests are retried by the engine's policy instead.
	st.vaultOptions = st.options
	st.vaultOptions.Retry = policy.RetryOptions{MaxRetries: -1}
	st.vaultOptions.PerCallPolicies = []policy.Policy{retryPolicy{}}
	st.vault, st.vaultErr = vaultURL(os.Getenv(VaultEnv))
	cred, err := azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{ClientOptions: st.options})
	if err != nil {
		return nil, fmt.Errorf("azure credential: %w", err)
	}
	st.cred = credential{cred}
	return st, nil
}

// vaultURL checks and normalises the value of AZURE_KEY_VAULT_URL.
func vaultURL(v string) (string, error) {
	if v == "" {
		return "", errors.New("no vault: set " + VaultEnv + " (https://NAME.vault.azure.net) for the short form, or use the secret identifier URL")
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%s=%q is not a vault URL (want https://NAME.vault.azure.net)", VaultEnv, v)
	}
	return "https://" + strings.ToLower(u.Host), nil
}

// Fetch reads every target concurrently under the engine's bound. Targets
// not started when ctx ends are left to the engine.
func (st *store) Fetch(ctx context.Context, targets []provider.Target) []provider.Result {
	defer st.transport.CloseIdleConnections()
	rs := make([]provider.Result, len(targets))
	st.limit.Each(ctx, len(targets), func(i int) { rs[i] = st.fetch(ctx, targets[i]) })
	return rs
}

func (st *store) fetch(ctx context.Context, t provider.Target) provider.Result {
	c, vault, err := st.clientFor(t)
	if err != nil {
		return provider.Result{Err: err}
	}
	var raw *http.Response
	resp, err := c.GetSecret(policy.WithCaptureResponse(ctx, &raw), t.Name, t.Version, nil)
	if err != nil {
		return provider.Result{Err: describe(ctx, err, raw, vault, t.Version)}
	}
	r := provider.Result{Value: []byte{}}
	if resp.ID != nil {
		r.Version = resp.ID.Version()
	}
	if resp.Value != nil {
		r.Value = []byte(*resp.Value)
	}
	if resp.ContentType != nil && strings.EqualFold(*resp.ContentType, pkcs12) {
		b, err := base64.StdEncoding.DecodeString(string(r.Value))
		if err != nil {
			return provider.Result{Err: errors.New("the certificate's PFX (" + pkcs12 + ") is not valid base64")}
		}
		r.FileValue = b // as stored in the environment; decoded in a ?file
	}
	return r
}

// clientFor returns the client of t's vault: the one its reference names,
// else AZURE_KEY_VAULT_URL's.
func (st *store) clientFor(t provider.Target) (*azsecrets.Client, string, error) {
	vault := t.Vault
	if vault == "" {
		if st.vaultErr != nil {
			return nil, "", st.vaultErr
		}
		vault = st.vault
	}
	c, err := st.client(vault)
	return c, vault, err
}

// client returns the vault's client, creating it on first use.
func (st *store) client(vault string) (*azsecrets.Client, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if c := st.clients[vault]; c != nil {
		return c, nil
	}
	c, err := azsecrets.NewClient(vault, st.cred, &azsecrets.ClientOptions{ClientOptions: st.vaultOptions})
	if err != nil {
		return nil, fmt.Errorf("vault %s: %w", vault, err)
	}
	st.clients[vault] = c
	return c, nil
}
