package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/google/go-containerregistry/pkg/authn"
)

// ACRUser is the user name that goes with an ACR refresh token.
const ACRUser = "00000000-0000-0000-0000-000000000000"

// acrClouds maps an ACR domain to the Azure Resource Manager audience its
// Entra tokens are issued for.
var acrClouds = []struct{ suffix, scope string }{
	{".azurecr.io", "https://management.azure.com/.default"},
	{".azurecr.cn", "https://management.chinacloudapi.cn/.default"},
	{".azurecr.us", "https://management.usgovcloudapi.net/.default"},
	{".azurecr.de", "https://management.microsoftazure.de/.default"},
}

// acrScope returns the Entra scope for an ACR host, or "" when host is not
// an Azure Container Registry.
func acrScope(host string) string {
	host = strings.ToLower(host)
	for _, c := range acrClouds {
		if name, ok := strings.CutSuffix(host, c.suffix); ok && name != "" && !strings.ContainsAny(name, ":/") {
			return c.scope
		}
	}
	return ""
}

// acrEarly: a cached refresh token is replaced this long before it expires.
const acrEarly = 5 * time.Minute

// ACR is the keychain of Azure Container Registry (*.azurecr.io and the
// sovereign clouds' .cn, .us, .de): an Entra token from
// DefaultAzureCredential (environment service principal, AKS workload
// identity, managed identity), exchanged at the registry's
// /oauth2/exchange for an ACR refresh token, which is cached per registry
// until shortly before it expires. It is anonymous for other hosts (no
// Azure code runs for them) and when no Azure credential is configured.
//
// "Configured" is decided from the environment: a service principal
// (AZURE_CLIENT_ID, AZURE_TENANT_ID and a secret, certificate or user), a
// workload identity (AZURE_FEDERATED_TOKEN_FILE), IDENTITY_ENDPOINT or
// MSI_ENDPOINT; then the credential's failures are errors. Otherwise only
// IMDS's managed identity is possible, and whether it is there is found by
// a probe (a token request for the scope of the registry's cloud: each
// cloud's IMDS answers for its own Resource Manager only) that runs apart
// from the lookups, as the gate type says: Warm starts the public cloud's
// at the webhook's start (Ready is false until it ends, 10 seconds at
// most), and a lookup waits only for its cloud's first probe while it
// runs. Without a managed identity the keychain is anonymous, and a lookup
// a minute later or more starts the next probe in the background.
type ACR struct {
	// Transport carries the Entra, IMDS and /oauth2/exchange requests
	// (nil: http.DefaultTransport).
	Transport http.RoundTripper
	// Log is told when a probe finds the managed identity missing, or
	// back (nil: nothing is logged).
	Log *slog.Logger
	Now func() time.Time

	credOnce sync.Once
	cred     azcore.TokenCredential
	credErr  error
	explicit bool

	mu      sync.Mutex
	gates   map[string]*gate      // Entra scope → whether IMDS's managed identity has tokens for it
	tokens  map[string]acrToken   // registry host → refresh token
	flights map[string]*acrFlight // registry host → the fetch in flight
}

type acrToken struct {
	refresh string
	expires time.Time
}

func (a *ACR) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// Warm starts the managed identity probe in the background when the
// environment configures no other Azure credential (Ready tells when it
// has ended).
func (a *ACR) Warm() {
	a.credOnce.Do(a.setup)
	if !a.explicit && a.credErr == nil {
		a.gateFor(acrClouds[0].scope).warm()
	}
}

// Ready reports whether the managed identity probe Warm started has
// ended, or ran firstProbeWait (the webhook's /readyz waits for it).
func (a *ACR) Ready() bool {
	a.credOnce.Do(a.setup)
	return a.explicit || a.credErr != nil || a.gateFor(acrClouds[0].scope).settled()
}

// Resolve implements authn.Keychain.
func (a *ACR) Resolve(target authn.Resource) (authn.Authenticator, error) {
	return a.ResolveContext(context.Background(), target)
}

// ResolveContext implements authn.ContextKeychain.
func (a *ACR) ResolveContext(ctx context.Context, target authn.Resource) (authn.Authenticator, error) {
	host := strings.ToLower(target.RegistryStr())
	scope := acrScope(host)
	if scope == "" {
		return authn.Anonymous, nil
	}
	if tok, ok := a.cached(host); ok {
		return acrAuth(tok), nil
	}
	a.credOnce.Do(a.setup)
	if a.credErr != nil {
		return nil, fmt.Errorf("Azure credential: %s", firstLine(a.credErr))
	}
	if !a.explicit {
		ok, err := a.gateFor(scope).open(ctx)
		if err != nil {
			return nil, fmt.Errorf("Azure managed identity for %s: %v", host, err)
		}
		if !ok {
			return authn.Anonymous, nil
		}
	}
	refresh, err := a.refresh(ctx, host, scope)
	if err != nil {
		return nil, err
	}
	return acrAuth(refresh), nil
}

// acrFlight is the one token fetch (Entra token and exchange) in flight
// for a registry; done is closed when tok or err is set.
type acrFlight struct {
	done chan struct{}
	tok  acrToken
	err  error
}

// acrFetchTimeout bounds a fetch, which outlives the lookup that started
// it (its token serves the next ones).
const acrFetchTimeout = 30 * time.Second

// refresh returns the registry's refresh token: cached, else from the
// fetch in flight for that registry, started if none is. Lookups of one
// registry share one fetch, those of other registries never wait for it,
// and a lookup stops waiting when its context ends.
func (a *ACR) refresh(ctx context.Context, host, scope string) (string, error) {
	a.mu.Lock()
	if t, ok := a.tokens[host]; ok && a.now().Add(acrEarly).Before(t.expires) {
		a.mu.Unlock()
		return t.refresh, nil
	}
	f := a.flights[host]
	if f == nil {
		f = &acrFlight{done: make(chan struct{})}
		if a.flights == nil {
			a.flights = map[string]*acrFlight{}
		}
		a.flights[host] = f
		go a.fly(context.WithoutCancel(ctx), host, scope, f)
	}
	a.mu.Unlock()
	select {
	case <-f.done:
		if f.err != nil {
			return "", f.err
		}
		return f.tok.refresh, nil
	case <-ctx.Done():
		return "", fmt.Errorf("Azure credential for %s: %v", host, ctx.Err())
	}
}

// fly runs a fetch and hands its outcome to the lookups waiting for it.
func (a *ACR) fly(ctx context.Context, host, scope string, f *acrFlight) {
	ctx, cancel := context.WithTimeout(ctx, acrFetchTimeout)
	defer cancel()
	tok, err := a.fetchToken(ctx, host, scope)
	a.mu.Lock()
	delete(a.flights, host)
	if err == nil {
		if a.tokens == nil {
			a.tokens = map[string]acrToken{}
		}
		put(a.tokens, host, tok)
	}
	f.tok, f.err = tok, err
	a.mu.Unlock()
	close(f.done)
}

// fetchToken gets an Entra token for scope and exchanges it at host.
func (a *ACR) fetchToken(ctx context.Context, host, scope string) (acrToken, error) {
	at, err := a.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}})
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return acrToken{}, fmt.Errorf("Azure credential: %s", firstLine(err))
	}
	return a.exchange(ctx, host, at)
}

func acrAuth(refresh string) authn.Authenticator {
	return authn.FromConfig(authn.AuthConfig{Username: ACRUser, Password: refresh})
}

func (a *ACR) cached(host string) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.tokens[host]
	if ok && a.now().Add(acrEarly).Before(t.expires) {
		return t.refresh, true
	}
	return "", false
}

// firstLine keeps an SDK error to one line (azidentity's span several).
func firstLine(err error) string {
	s := strings.TrimSpace(err.Error())
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "---") {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, " ")
}

// acrExplicit reports whether the environment configures an Azure
// credential other than IMDS's managed identity.
func acrExplicit() bool {
	has := func(k string) bool { return os.Getenv(k) != "" }
	if has("IDENTITY_ENDPOINT") || has("MSI_ENDPOINT") {
		return true
	}
	if !has("AZURE_CLIENT_ID") {
		return false
	}
	return has("AZURE_FEDERATED_TOKEN_FILE") ||
		has("AZURE_TENANT_ID") && (has("AZURE_CLIENT_SECRET") || has("AZURE_CLIENT_CERTIFICATE_PATH") || has("AZURE_USERNAME"))
}

func (a *ACR) setup() {
	a.explicit = acrExplicit()
	opts := &azidentity.DefaultAzureCredentialOptions{}
	if a.Transport != nil {
		opts.ClientOptions.Transport = &http.Client{Transport: a.Transport}
	}
	a.cred, a.credErr = azidentity.NewDefaultAzureCredential(opts)
}

// gateFor returns the probe of IMDS's managed identity for an Entra
// scope: one per cloud, since a cloud's IMDS issues tokens for its own
// Resource Manager only (China's refuses management.azure.com).
func (a *ACR) gateFor(scope string) *gate {
	a.mu.Lock()
	defer a.mu.Unlock()
	if g := a.gates[scope]; g != nil {
		return g
	}
	domain := ""
	for _, c := range acrClouds {
		if c.scope == scope {
			domain = "*" + c.suffix
		}
	}
	g := &gate{now: a.Now, log: a.Log,
		missing: "no Azure credential for " + domain + " (no managed identity token for " + scope + "): its images are read anonymously",
		found:   "Azure managed identity found for " + domain + ": its images are read with it",
		probe: func(ctx context.Context) error {
			_, err := a.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{scope}})
			return err
		}}
	if a.gates == nil {
		a.gates = map[string]*gate{}
	}
	a.gates[scope] = g
	return g
}

func (a *ACR) client() *http.Client {
	t := a.Transport
	if t == nil {
		t = http.DefaultTransport
	}
	return &http.Client{Transport: t, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// exchange trades an Entra access token for the registry's refresh token.
func (a *ACR) exchange(ctx context.Context, host string, at azcore.AccessToken) (acrToken, error) {
	form := url.Values{"grant_type": {"access_token"}, "service": {host}, "access_token": {at.Token}}
	tenant := os.Getenv("AZURE_TENANT_ID")
	if tenant == "" {
		tenant = claims(at.Token).Tenant
	}
	if tenant != "" {
		form.Set("tenant", tenant)
	}
	endpoint := "https://" + host + "/oauth2/exchange"
	fail := func(format string, args ...any) (acrToken, error) {
		msg := fmt.Sprintf(format, args...)
		msg = strings.ReplaceAll(msg, at.Token, "[token]")
		return acrToken{}, fmt.Errorf("ACR token exchange at %s: %s", endpoint, msg)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return fail("%v", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := a.client().Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fail("%v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fail("%v", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fail("%s%s", resp.Status, acrErrors(body, at.Token))
	}
	var out struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.RefreshToken == "" {
		return fail("the answer holds no refresh_token")
	}
	expires := at.ExpiresOn
	if exp := claims(out.RefreshToken).Exp; exp > 0 {
		expires = time.Unix(exp, 0)
	}
	if expires.IsZero() {
		expires = a.now().Add(time.Hour)
	}
	return acrToken{refresh: out.RefreshToken, expires: expires}, nil
}

// acrErrors renders a registry error body ({"errors":[{"code","message"}]}),
// codes and messages only, without token, and at most 300 bytes of them.
func acrErrors(body []byte, token string) string {
	var e struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if json.Unmarshal(body, &e) != nil || len(e.Errors) == 0 {
		return ""
	}
	var parts []string
	for _, x := range e.Errors {
		parts = append(parts, strings.TrimSpace(x.Code+" "+x.Message))
	}
	s := strings.Join(parts, "; ")
	if token != "" {
		s = strings.ReplaceAll(s, token, "[token]")
	}
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return " (" + s + ")"
}

// tokenClaims are the claims read, unverified, from a JWT this keychain
// holds: its tenant and its expiry.
type tokenClaims struct {
	Tenant string `json:"tid"`
	Exp    int64  `json:"exp"`
}

func claims(jwt string) tokenClaims {
	var c tokenClaims
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return c
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err == nil {
		json.Unmarshal(b, &c)
	}
	return c
}
