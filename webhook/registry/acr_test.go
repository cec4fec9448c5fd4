package registry

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/secrets-init/secrets-init/webhook/inject"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	acrHost        = "myreg.azurecr.io"
	slowHost       = "slow.azurecr.io" // a second registry of the fake ACR
	chinaHost      = "myreg.azurecr.cn"
	entraHost      = "login.entra.test"
	acrTenant      = "6b0f1d2e-8c3a-4f7e-9a51-2d4c8e0f7a13"
	acrClientID    = "3c9e7a1b-5d2f-4e8a-b6c4-0f1e2d3a4b5c"
	acrSecret      = "canary-ClientSecret-8f3e2a" // the client secret the fake Entra accepts
	tokenCanaryTag = "canary-token-"              // every token the fakes issue holds it
	// federatedToken is the projected service account token of AKS
	// workload identity (AZURE_FEDERATED_TOKEN_FILE), which Entra takes as
	// the client's assertion.
	federatedToken = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6c2VjcmV0cy1pbml0OnNlY3JldHMtaW5pdC13ZWJob29rIn0.c2ln"
)

// newTLSCA returns a CA's pool and a function issuing it a leaf for names.
func newTLSCA(t testing.TB) (*x509.CertPool, func(names ...string) tls.Certificate) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	serial := int64(1)
	return pool, func(names ...string) tls.Certificate {
		serial++
		lk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		lt := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		ld, err := x509.CreateCertificate(rand.Reader, lt, ca, &lk.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{ld}, PrivateKey: lk}
	}
}

func randomHex() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// jwt makes an unsigned token with claims (the fakes check tokens by
// lookup, the keychain only reads tid and exp).
func jwt(claims map[string]any) string {
	claims["jti"] = tokenCanaryTag + randomHex()
	b, _ := json.Marshal(claims)
	return "eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString(b) + ".c2ln"
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// entraTokens are the access tokens the fakes' Entra and IMDS issued
// (token → audience), shared by every fake of the process as one Entra's
// signature would be: MSAL caches managed identity tokens process-wide.
var entraTokens sync.Map

// azure is a fake Microsoft Entra ID (instance discovery, OpenID metadata,
// the client-credentials token endpoint) and a fake Azure Container
// Registry (/oauth2/exchange, the registry's /oauth2/token and the v2 API
// behind its Bearer challenge, in front of go-containerregistry's
// in-memory registry), each over HTTPS, and a managed identity endpoint
// that never answers. Clients reach them by their real names through
// transport.
type azure struct {
	transport *http.Transport
	pushTo    string // plain-HTTP address of the in-memory registry, to push images

	mu              sync.Mutex
	entraTokens     map[string]string // Entra access token → audience
	refresh         map[string]bool   // ACR refresh tokens issued
	access          map[string]bool   // ACR access tokens issued
	issued          []string          // every token issued, to look for in messages
	entraCalls      int               // client-credentials grants
	entraHosts      []string          // the host each grant was sent to
	exchanges       int               // successful /oauth2/exchange calls
	exchangeForms   []map[string]string
	denyExchange    bool // /oauth2/exchange answers 401 (the identity has no role on the registry)
	anonymous       bool // the registry allows anonymous pulls
	imdsDials       int  // connections to the managed identity endpoint
	managedIdentity bool // IMDS answers (the webhook runs on an Azure VM with an identity)
	refreshTTL      time.Duration
	hold            map[string]chan struct{} // host → closed to let its held exchanges answer
	held            chan string              // a held exchange arrived (its host)
	imdsAudiences   []string                 // the resources IMDS issues tokens for (nil: any)
}

func newAzure(t testing.TB) *azure {
	t.Helper()
	z := &azure{refresh: map[string]bool{}, access: map[string]bool{}, refreshTTL: 3 * time.Hour,
		hold: map[string]chan struct{}{}, held: make(chan string, 16)}
	pool, issue := newTLSCA(t)
	quiet := log.New(io.Discard, "", 0)

	entra := httptest.NewUnstartedServer(http.HandlerFunc(z.serveEntra))
	entra.TLS = &tls.Config{Certificates: []tls.Certificate{issue(entraHost, "login.microsoftonline.com")}}
	entra.Config.ErrorLog = quiet
	entra.StartTLS()
	t.Cleanup(entra.Close)

	inner := registry.New(registry.Logger(quiet))
	plain := httptest.NewServer(inner)
	t.Cleanup(plain.Close)
	z.pushTo = strings.TrimPrefix(plain.URL, "http://")
	acr := httptest.NewUnstartedServer(z.serveACR(inner))
	acr.TLS = &tls.Config{Certificates: []tls.Certificate{issue(acrHost, slowHost, chinaHost)}}
	acr.Config.ErrorLog = quiet
	acr.StartTLS()
	t.Cleanup(acr.Close)

	// The managed identity endpoint (IMDS): on a cluster outside Azure
	// whose network drops the packets, it accepts and never answers; with
	// managedIdentity set, it answers as Azure's IMDS does.
	imds := httptest.NewUnstartedServer(http.HandlerFunc(z.serveIMDS))
	imds.Config.ErrorLog = quiet
	imds.Start()
	t.Cleanup(func() {
		imds.CloseClientConnections()
		imds.Close()
	})

	d := &net.Dialer{}
	z.transport = &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			switch addr {
			case acrHost + ":443", slowHost + ":443", chinaHost + ":443":
				return d.DialContext(ctx, "tcp", acr.Listener.Addr().String())
			case entraHost + ":443", "login.microsoftonline.com:443":
				return d.DialContext(ctx, "tcp", entra.Listener.Addr().String())
			case "169.254.169.254:80":
				z.mu.Lock()
				z.imdsDials++
				z.mu.Unlock()
				return d.DialContext(ctx, "tcp", imds.Listener.Addr().String())
			}
			return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
		},
		TLSClientConfig: &tls.Config{RootCAs: pool},
	}
	t.Cleanup(z.transport.CloseIdleConnections)
	return z
}

func (z *azure) serveIMDS(w http.ResponseWriter, r *http.Request) {
	z.mu.Lock()
	on := z.managedIdentity
	z.mu.Unlock()
	switch {
	case !on:
		<-r.Context().Done()
	case r.Header.Get("Metadata") != "true":
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "Required metadata header not specified"})
	case z.imdsAudiences != nil && !slices.Contains(z.imdsAudiences, strings.TrimSuffix(r.URL.Query().Get("resource"), "/")):
		// Another cloud's resource (China's IMDS and management.azure.com).
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_resource",
			"error_description": "AADSTS500011: The resource principal named " + r.URL.Query().Get("resource") + " was not found in the tenant"})
	default:
		aud := r.URL.Query().Get("resource")
		tok := jwt(map[string]any{"tid": acrTenant, "aud": aud, "exp": time.Now().Add(time.Hour).Unix()})
		z.mu.Lock()
		entraTokens.Store(tok, aud)
		z.issued = append(z.issued, tok)
		z.entraCalls++
		z.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]string{"access_token": tok, "token_type": "Bearer", "resource": aud,
			"expires_in": "3599", "expires_on": strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)})
	}
}

func (z *azure) serveEntra(w http.ResponseWriter, r *http.Request) {
	base := "https://" + r.Host + "/"
	parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/"), "/", 2)
	switch {
	case r.URL.Path == "/common/discovery/instance":
		// Instance discovery (asked of login.microsoftonline.com for an
		// authority host it does not know) answers for that authority.
		authority := r.Host
		if ae, err := url.Parse(r.URL.Query().Get("authorization_endpoint")); err == nil && ae.Host != "" {
			authority = ae.Host
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"tenant_discovery_endpoint": "https://" + authority + "/" + acrTenant + "/v2.0/.well-known/openid-configuration",
			"api-version":               "1.1",
			"metadata":                  []map[string]any{{"preferred_network": authority, "preferred_cache": authority, "aliases": []string{authority}}},
		})
	case len(parts) != 2 || parts[0] != acrTenant:
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "invalid_tenant", "error_description": "AADSTS90002: Tenant not found."})
	case r.Method == http.MethodGet && parts[1] == "v2.0/.well-known/openid-configuration":
		writeJSON(w, http.StatusOK, map[string]any{
			"token_endpoint":         base + acrTenant + "/oauth2/v2.0/token",
			"authorization_endpoint": base + acrTenant + "/oauth2/v2.0/authorize",
			"issuer":                 base + acrTenant + "/v2.0",
			"jwks_uri":               base + acrTenant + "/discovery/v2.0/keys",
		})
	case r.Method == http.MethodPost && parts[1] == "oauth2/v2.0/token":
		r.ParseForm()
		f := r.PostForm
		secretOK := f.Get("client_secret") == acrSecret
		assertionOK := f.Get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" &&
			f.Get("client_assertion") == federatedToken
		if f.Get("grant_type") != "client_credentials" || f.Get("client_id") != acrClientID || !secretOK && !assertionOK {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"error": "invalid_client",
				"error_description": "AADSTS7000215: Invalid client secret provided.", "error_codes": []int{7000215}})
			return
		}
		aud := ""
		for _, sc := range strings.Fields(f.Get("scope")) {
			if a, ok := strings.CutSuffix(sc, "/.default"); ok {
				aud = a
			}
		}
		tok := jwt(map[string]any{"tid": acrTenant, "aud": aud, "exp": time.Now().Add(time.Hour).Unix()})
		z.mu.Lock()
		entraTokens.Store(tok, aud)
		z.issued = append(z.issued, tok)
		z.entraCalls++
		z.entraHosts = append(z.entraHosts, r.Host)
		z.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"token_type": "Bearer", "expires_in": 3599, "access_token": tok})
	default:
		http.NotFound(w, r)
	}
}

// registryHost is the registry a request of the fake ACR was sent to.
func registryHost(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.Host); err == nil {
		return h
	}
	return r.Host
}

// armAudience is the audience the fake ACR takes Entra tokens for: the
// Resource Manager of the registry's cloud.
func armAudience(host string) string {
	if strings.HasSuffix(host, ".azurecr.cn") {
		return "https://management.chinacloudapi.cn"
	}
	return "https://management.azure.com"
}

// holdExchanges makes the exchanges at host wait (they report on z.held
// when they arrive) until the returned function is called.
func (z *azure) holdExchanges(t *testing.T, host string) (release func()) {
	ch := make(chan struct{})
	z.mu.Lock()
	z.hold[host] = ch
	z.mu.Unlock()
	var once sync.Once
	release = func() { once.Do(func() { close(ch) }) }
	t.Cleanup(release)
	return release
}

// within runs f, failing the test if it has not returned after d: a guard
// against a hang, far above what f takes, not a timing assertion.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s: still blocked after %v", what, d)
	}
}

func acrError(w http.ResponseWriter, code int, ec, msg string) {
	writeJSON(w, code, map[string]any{"errors": []map[string]string{{"code": ec, "message": msg}}})
}

func (z *azure) serveACR(inner http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/oauth2/exchange":
			host := registryHost(r)
			z.mu.Lock()
			hold := z.hold[host]
			z.mu.Unlock()
			if hold != nil {
				z.held <- host
				select {
				case <-hold:
				case <-r.Context().Done():
					return
				}
			}
			r.ParseForm()
			f := r.PostForm
			form := map[string]string{}
			for k := range f {
				form[k] = f.Get(k)
			}
			z.mu.Lock()
			defer z.mu.Unlock()
			z.exchangeForms = append(z.exchangeForms, form)
			aud, known := entraTokens.Load(f.Get("access_token"))
			switch {
			case r.Method != http.MethodPost || f.Get("grant_type") != "access_token" || f.Get("service") != host:
				acrError(w, http.StatusBadRequest, "BAD_REQUEST", "grant_type access_token and service "+host+" expected")
			case !known || aud != armAudience(host) || z.denyExchange:
				// A real ACR does not echo the token; this fake does, to
				// check that the keychain's message never carries it.
				acrError(w, http.StatusUnauthorized, "UNAUTHORIZED", "the token "+f.Get("access_token")+" grants no access to "+host)
			default:
				tok := jwt(map[string]any{"exp": time.Now().Add(z.refreshTTL).Unix(), "grant_type": "refresh_token"})
				z.refresh[tok] = true
				z.issued = append(z.issued, tok)
				z.exchanges++
				writeJSON(w, http.StatusOK, map[string]string{"refresh_token": tok})
			}
		case "/oauth2/token":
			u, p, basic := r.BasicAuth()
			z.mu.Lock()
			defer z.mu.Unlock()
			if basic && (u != ACRUser || !z.refresh[p]) || !basic && !z.anonymous {
				acrError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
				return
			}
			tok := tokenCanaryTag + "access-" + randomHex()
			z.access[tok] = true
			z.issued = append(z.issued, tok)
			writeJSON(w, http.StatusOK, map[string]string{"access_token": tok})
		default:
			bearer, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			z.mu.Lock()
			ok := z.access[bearer]
			z.mu.Unlock()
			if !ok {
				host := registryHost(r)
				w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="https://%s/oauth2/token",service="%s"`, host, host))
				acrError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
				return
			}
			inner.ServeHTTP(w, r)
		}
	})
}

// push stores an image in the registry and returns its ACR name.
func (z *azure) push(t *testing.T, repoTag string, entrypoint, cmd []string) string {
	t.Helper()
	ref, _ := name.ParseReference(z.pushTo + "/" + repoTag)
	if err := remote.Write(ref, image(t, DefaultPlatform, entrypoint, cmd)); err != nil {
		t.Fatal(err)
	}
	return acrHost + "/" + repoTag
}

func (z *azure) counts() (entra, exchanges, imds int) {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.entraCalls, z.exchanges, z.imdsDials
}

// noToken fails if s holds a token or the client secret.
func (z *azure) noToken(t *testing.T, s string) {
	t.Helper()
	z.mu.Lock()
	defer z.mu.Unlock()
	if strings.Contains(s, tokenCanaryTag) || strings.Contains(s, acrSecret) {
		t.Errorf("a token or the client secret in %q", s)
	}
}

// azureEnv sets the Azure SDK's environment from scratch: a service
// principal with secret when secret is not "", else nothing configured.
func azureEnv(t testing.TB, secret string) {
	for _, k := range []string{"AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
		"AZURE_CLIENT_CERTIFICATE_PASSWORD", "AZURE_USERNAME", "AZURE_PASSWORD", "AZURE_FEDERATED_TOKEN_FILE",
		"IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET", "AZURE_POD_IDENTITY_AUTHORITY_HOST",
		"AZURE_REGIONAL_AUTHORITY_NAME", "AZURE_ADDITIONALLY_ALLOWED_TENANTS"} {
		t.Setenv(k, "") // restored after the test
		os.Unsetenv(k)  // the SDK tells unset from empty
	}
	t.Setenv("AZURE_TOKEN_CREDENTIALS", "prod")
	t.Setenv("AZURE_AUTHORITY_HOST", "https://"+entraHost+"/")
	if secret != "" {
		t.Setenv("AZURE_TENANT_ID", acrTenant)
		t.Setenv("AZURE_CLIENT_ID", acrClientID)
		t.Setenv("AZURE_CLIENT_SECRET", secret)
	}
}

func acrPods(z *azure, acr *ACR) *Pods {
	acr.Transport = z.transport
	return &Pods{Resolver: &Resolver{TTL: time.Minute, Options: []remote.Option{remote.WithTransport(z.transport)}},
		Objects: &objects{}, Cloud: CloudKeychains(&ECR{}, acr)}
}

func acrPod() *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "app"}}
}

// TestACRKeychain: for an ACR image, the webhook gets an Entra token with
// the environment's service principal, exchanges it at the registry's
// /oauth2/exchange (grant_type, service, tenant, the access token), logs
// in with the refresh token, and reads the entrypoint; the refresh token
// is reused until shortly before it expires. Other registries never reach
// Azure.
func TestACRKeychain(t *testing.T) {
	z := newAzure(t)
	azureEnv(t, acrSecret)
	now := time.Now()
	clock := now
	acr := &ACR{Now: func() time.Time { return clock }}
	pods := acrPods(z, acr)
	img := z.push(t, "team/app:1.0", []string{"/app"}, []string{"serve"})
	other := z.push(t, "team/worker:2.0", []string{"/worker"}, nil)

	ep, cmd, err := pods.Entrypoint(context.Background(), acrPod(), img)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ep, []string{"/app"}) || !reflect.DeepEqual(cmd, []string{"serve"}) {
		t.Errorf("entrypoint %q cmd %q", ep, cmd)
	}
	z.mu.Lock()
	form, hosts := z.exchangeForms[0], z.entraHosts
	z.mu.Unlock()
	if !reflect.DeepEqual(hosts, []string{entraHost}) {
		t.Errorf("Entra tokens asked of %q, want AZURE_AUTHORITY_HOST's %s", hosts, entraHost)
	}
	if form["grant_type"] != "access_token" || form["service"] != acrHost || form["tenant"] != acrTenant || form["access_token"] == "" {
		t.Errorf("exchange form %v", form)
	}
	if e, x, _ := z.counts(); e != 1 || x != 1 {
		t.Errorf("%d Entra tokens, %d exchanges; want 1, 1", e, x)
	}

	// Another image of the registry: the refresh token is reused.
	if ep, _, err := pods.Entrypoint(context.Background(), acrPod(), other); err != nil || ep[0] != "/worker" {
		t.Fatalf("%q %v", ep, err)
	}
	if e, x, _ := z.counts(); e != 1 || x != 1 {
		t.Errorf("second image: %d Entra tokens, %d exchanges; want 1, 1", e, x)
	}

	// Other registries: anonymous, without a call to Azure.
	kc := authn.NewMultiKeychain(pods.Cloud...)
	for _, host := range []string{"registry.example.com", "azurecr.io", "myreg.azurecr.io.example.com", "myreg.azurecr.io:5000"} {
		reg, err := name.NewRegistry(host)
		if err != nil {
			t.Fatal(err)
		}
		if a, err := kc.Resolve(reg); err != nil || a != authn.Anonymous {
			t.Errorf("%s: %v %v", host, a, err)
		}
	}
	if e, x, imds := z.counts(); e != 1 || x != 1 || imds != 0 {
		t.Errorf("other registries: %d Entra tokens, %d exchanges, %d IMDS dials", e, x, imds)
	}

	// Four minutes before the refresh token expires, a new one is fetched.
	clock = now.Add(3*time.Hour - 4*time.Minute)
	reg, _ := name.NewRegistry(acrHost)
	a, err := kc.Resolve(reg)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := a.Authorization()
	z.mu.Lock()
	fresh := z.refresh[cfg.Password]
	z.mu.Unlock()
	if cfg.Username != ACRUser || !fresh {
		t.Errorf("login %q with a refresh token the registry issued: %v", cfg.Username, fresh)
	}
	if _, x, _ := z.counts(); x != 2 {
		t.Errorf("near expiry: %d exchanges, want 2", x)
	}
}

// TestACRDenied: a refused client secret, or an exchange the registry
// refuses (401), deny the pod with a message naming the container, the
// image and the cause, with no token or secret in it.
func TestACRDenied(t *testing.T) {
	for _, tc := range []struct {
		name, secret string
		deny         bool
		want         []string
	}{
		{"bad client secret", "canary-wrong-secret-5d1c", false, []string{"Azure credential", "invalid_client"}},
		{"exchange refused", acrSecret, true, []string{"ACR token exchange at https://" + acrHost + "/oauth2/exchange", "401", "UNAUTHORIZED", "[token]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			z := newAzure(t)
			z.denyExchange = tc.deny
			azureEnv(t, tc.secret)
			img := z.push(t, "team/app:1.0", []string{"/app"}, nil)
			in := &inject.Injector{Image: "secrets-init@sha256:" + strings.Repeat("a", 64), Entrypoints: acrPods(z, &ACR{})}
			pod := acrPod()
			pod.Spec.Containers = []corev1.Container{{Name: "app", Image: img,
				Env: []corev1.EnvVar{{Name: "DB_PASSWORD", Value: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db"}}}}
			_, err := in.Mutate(context.Background(), pod)
			if err == nil {
				t.Fatal("admitted")
			}
			msg := err.Error()
			for _, w := range append([]string{`container "app"`, img}, tc.want...) {
				if !strings.Contains(msg, w) {
					t.Errorf("%q lacks %q", msg, w)
				}
			}
			t.Log(msg)
			z.noToken(t, msg)
			if strings.Contains(msg, tc.secret) || strings.Contains(msg, "\n") {
				t.Errorf("secret or several lines in %q", msg)
			}
		})
	}
}

// syncBuffer is a log written from the probe's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// settle waits for the running managed identity probes.
func (a *ACR) settle() {
	a.mu.Lock()
	var gates []*gate
	for _, g := range a.gates {
		gates = append(gates, g)
	}
	a.mu.Unlock()
	for _, g := range gates {
		g.settle()
	}
}

// TestACRNoCredential: with no Azure credential configured, outside Azure
// (the managed identity endpoint never answers), an ACR image is read
// anonymously. The managed identity is probed once at the start (Warm), in
// the background, never for other registries, and again in the background
// by a lookup a minute later; when it answers, it is used.
func TestACRNoCredential(t *testing.T) {
	z := newAzure(t)
	z.anonymous = true
	azureEnv(t, "")
	var clock atomic.Int64 // the probe reads it from its goroutine
	clock.Store(time.Now().UnixNano())
	var logs syncBuffer
	acr := &ACR{Now: func() time.Time { return time.Unix(0, clock.Load()) }, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	pods := acrPods(z, acr)
	kc := authn.NewMultiKeychain(pods.Cloud...)
	reg, _ := name.NewRegistry("registry.example.com")
	if a, err := kc.Resolve(reg); err != nil || a != authn.Anonymous {
		t.Fatalf("%v %v", a, err)
	}
	if _, _, imds := z.counts(); imds != 0 {
		t.Errorf("another registry probed the managed identity %d times", imds)
	}
	start := time.Now()
	acr.Warm()
	acr.settle()
	if !acr.Ready() {
		t.Error("not ready after the first probe ended")
	}
	t.Logf("the probe at the start, in the background: %v (reported, not asserted)", time.Since(start))
	for i, tag := range []string{"1.0", "1.1", "1.2"} {
		img := z.push(t, "public/app:"+tag, []string{"/app"}, nil)
		start := time.Now()
		ep, _, err := pods.Entrypoint(context.Background(), acrPod(), img)
		t.Logf("lookup %d of an ACR image: %v (reported, not asserted)", i+1, time.Since(start))
		if err != nil || ep[0] != "/app" {
			t.Fatalf("%s: %q %v", img, ep, err)
		}
		if e, x, imds := z.counts(); e != 0 || x != 0 || imds != 1 {
			t.Errorf("lookup %d: %d Entra tokens, %d exchanges, %d IMDS probes; want 0, 0, 1", i+1, e, x, imds)
		}
	}
	// A minute later, a lookup starts a probe in the background and goes
	// on anonymously.
	clock.Add(int64(retryMissing + time.Second))
	if _, _, err := pods.Entrypoint(context.Background(), acrPod(), z.push(t, "public/app:1.3", []string{"/app"}, nil)); err != nil {
		t.Fatal(err)
	}
	acr.settle()
	if _, _, imds := z.counts(); imds != 2 {
		t.Errorf("%d IMDS probes after a minute, want 2", imds)
	}
	// The identity appears (it was missing by accident): the next probe
	// finds it, and lookups use it from then on.
	z.mu.Lock()
	z.managedIdentity = true
	z.mu.Unlock()
	clock.Add(int64(retryMissing + time.Second))
	if _, _, err := pods.Entrypoint(context.Background(), acrPod(), z.push(t, "public/app:1.4", []string{"/app"}, nil)); err != nil {
		t.Fatal(err)
	}
	acr.settle()
	if _, _, err := pods.Entrypoint(context.Background(), acrPod(), z.push(t, "public/app:1.5", []string{"/app"}, nil)); err != nil {
		t.Fatal(err)
	}
	if _, x, imds := z.counts(); x != 1 || imds < 3 {
		t.Errorf("after the identity appeared: %d exchanges, %d IMDS connections", x, imds)
	}
	if n, m := strings.Count(logs.String(), "no Azure credential"), strings.Count(logs.String(), "managed identity found"); n != 1 || m != 1 {
		t.Errorf("%d and %d log lines, want one when the identity goes missing, one when it is found:\n%s", n, m, logs.String())
	}
}

// TestACRManagedIdentity: on an Azure VM (IMDS answers), with nothing in
// the environment, the first ACR lookup waits for the probe, then the
// managed identity's token is exchanged; the tenant comes from its tid.
func TestACRManagedIdentity(t *testing.T) {
	z := newAzure(t)
	z.managedIdentity = true
	azureEnv(t, "")
	pods := acrPods(z, &ACR{})
	img := z.push(t, "team/app:1.0", []string{"/app"}, []string{"serve"})
	ep, _, err := pods.Entrypoint(context.Background(), acrPod(), img)
	if err != nil || ep[0] != "/app" {
		t.Fatalf("%q %v", ep, err)
	}
	z.mu.Lock()
	form := z.exchangeForms[0]
	z.mu.Unlock()
	if form["tenant"] != acrTenant || form["service"] != acrHost {
		t.Errorf("exchange form %v", form)
	}
	if _, x, imds := z.counts(); x != 1 || imds < 1 {
		t.Errorf("%d exchanges, %d IMDS connections", x, imds)
	}
	// The registry refuses the identity: an error, not anonymous access.
	z.mu.Lock()
	z.denyExchange = true
	z.mu.Unlock()
	pods = acrPods(z, &ACR{})
	if _, _, err := pods.Entrypoint(context.Background(), acrPod(), z.push(t, "team/app:1.1", []string{"/app"}, nil)); err == nil ||
		!strings.Contains(err.Error(), "401") {
		t.Errorf("refused identity: %v", err)
	} else {
		z.noToken(t, err.Error())
	}
}

// TestACRManagedIdentityOtherCloud: in Azure China, IMDS issues tokens
// for China's Resource Manager only. The probe for *.azurecr.io finds no
// identity (logged), yet an .azurecr.cn image is read with the managed
// identity's token for management.chinacloudapi.cn.
func TestACRManagedIdentityOtherCloud(t *testing.T) {
	z := newAzure(t)
	z.managedIdentity = true
	z.imdsAudiences = []string{"https://management.chinacloudapi.cn"}
	azureEnv(t, "")
	// A user-assigned identity of its own: MSAL's process-wide cache holds
	// the system-assigned identity's public cloud token of other tests.
	t.Setenv("AZURE_CLIENT_ID", "7d2c9b4e-1f3a-4c5d-8e6f-"+randomHex()[:12])
	var logs syncBuffer
	acr := &ACR{Log: slog.New(slog.NewTextHandler(&logs, nil))}
	pods := acrPods(z, acr)
	acr.Warm()
	acr.settle()
	img := strings.Replace(z.push(t, "team/app:1.0", []string{"/app"}, nil), acrHost, chinaHost, 1)
	ep, _, err := pods.Entrypoint(context.Background(), acrPod(), img)
	if err != nil || ep[0] != "/app" {
		t.Fatalf("%s: %q %v", img, ep, err)
	}
	z.mu.Lock()
	form := z.exchangeForms[0]
	z.mu.Unlock()
	if form["service"] != chinaHost || form["tenant"] != acrTenant {
		t.Errorf("exchange form %v", form)
	}
	if !strings.Contains(logs.String(), "no Azure credential for *.azurecr.io") || strings.Contains(logs.String(), "*.azurecr.cn (") {
		t.Errorf("log:\n%s", logs.String())
	}
	z.noToken(t, logs.String())
}

// TestACRWorkloadIdentity: AKS workload identity (what its webhook puts in
// the pod's environment): the federated token file is Entra's client
// assertion; concurrent lookups of one registry make one exchange.
func TestACRWorkloadIdentity(t *testing.T) {
	z := newAzure(t)
	azureEnv(t, "")
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(federatedToken), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AZURE_CLIENT_ID", acrClientID)
	t.Setenv("AZURE_TENANT_ID", acrTenant)
	t.Setenv("AZURE_FEDERATED_TOKEN_FILE", file)
	acr := &ACR{}
	pods := acrPods(z, acr)
	if !acr.Ready() {
		t.Error("with workload identity configured, not ready (there is no probe to wait for)")
	}
	var imgs []string
	for i := range 8 {
		imgs = append(imgs, z.push(t, fmt.Sprintf("team/app:%d", i), []string{fmt.Sprintf("/app%d", i)}, nil))
	}
	var wg sync.WaitGroup
	errs := make([]error, len(imgs))
	eps := make([][]string, len(imgs))
	for i, img := range imgs {
		wg.Go(func() { eps[i], _, errs[i] = pods.Entrypoint(context.Background(), acrPod(), img) })
	}
	wg.Wait()
	for i := range imgs {
		if errs[i] != nil || !reflect.DeepEqual(eps[i], []string{fmt.Sprintf("/app%d", i)}) {
			t.Errorf("%s: %q %v", imgs[i], eps[i], errs[i])
		}
	}
	if e, x, imds := z.counts(); e != 1 || x != 1 || imds != 0 {
		t.Errorf("%d Entra tokens, %d exchanges, %d IMDS probes; want 1, 1, 0", e, x, imds)
	}
}

// TestACRRegistriesApart: a fetch that hangs (here the slow registry's
// exchange) holds up neither the lookups of another registry nor a lookup
// of its own registry whose context ends; when it answers, its token is
// cached for the next lookups.
func TestACRRegistriesApart(t *testing.T) {
	z := newAzure(t)
	azureEnv(t, acrSecret)
	release := z.holdExchanges(t, slowHost)
	acr := &ACR{Transport: z.transport}
	slow, _ := name.NewRegistry(slowHost)
	fast, _ := name.NewRegistry(acrHost)
	slowErr := make(chan error, 1)
	go func() {
		_, err := acr.ResolveContext(context.Background(), slow)
		slowErr <- err
	}()
	if h := <-z.held; h != slowHost {
		t.Fatalf("held exchange at %s", h)
	}

	within(t, 20*time.Second, "a lookup of another registry", func() {
		a, err := acr.ResolveContext(context.Background(), fast)
		if err != nil || a == authn.Anonymous {
			t.Errorf("%s while %s hangs: %v %v", acrHost, slowHost, a, err)
		}
	})
	within(t, 20*time.Second, "a lookup whose context ended", func() {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := acr.ResolveContext(ctx, slow)
		if err == nil || !strings.Contains(err.Error(), "context canceled") || !strings.Contains(err.Error(), slowHost) {
			t.Errorf("a lookup of %s whose context ended: %v", slowHost, err)
		}
	})
	if _, x, _ := z.counts(); x != 1 {
		t.Errorf("%d exchanges before the slow one answers, want 1", x)
	}

	release()
	if err := <-slowErr; err != nil {
		t.Fatalf("the slow registry's lookup: %v", err)
	}
	if a, err := acr.ResolveContext(context.Background(), slow); err != nil || a == authn.Anonymous {
		t.Errorf("cached: %v %v", a, err)
	}
	// One Entra token (the SDK caches it per scope), one exchange per
	// registry.
	if e, x, _ := z.counts(); e != 1 || x != 2 {
		t.Errorf("%d Entra tokens, %d exchanges; want 1, 2", e, x)
	}
}

// FuzzACRParsers: the token claims and the registry's error bodies are
// read from the network; neither panics, and a rendered error never holds
// the token it was told to hide.
func FuzzACRParsers(f *testing.F) {
	f.Add("eyJhbGciOiJub25lIn0.eyJ0aWQiOiJ0IiwiZXhwIjoxfQ.c2ln", []byte(`{"errors":[{"code":"UNAUTHORIZED","message":"x"}]}`), "myreg.azurecr.io")
	f.Add("a.b.c", []byte(`{"errors":[]}`), "r.azurecr.cn")
	f.Fuzz(func(t *testing.T, token string, body []byte, host string) {
		claims(token)
		if scope := acrScope(host); scope != "" && (strings.ContainsAny(host, ":/") || !strings.Contains(strings.ToLower(host), ".azurecr.")) {
			t.Errorf("%q taken for an ACR host (%s)", host, scope)
		}
		out := acrErrors(body, token)
		if len(token) >= 16 && strings.Trim(token, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == "" &&
			strings.Contains(out, token) {
			t.Errorf("%q holds the token", out)
		}
	})
}

// BenchmarkACRCached: an ACR lookup once the refresh token is cached.
func BenchmarkACRCached(b *testing.B) {
	z := newAzure(b)
	azureEnv(b, acrSecret)
	acr := &ACR{Transport: z.transport}
	reg, _ := name.NewRegistry(acrHost)
	if _, err := acr.Resolve(reg); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if a, err := acr.Resolve(reg); err != nil || a == authn.Anonymous {
			b.Fatal(a, err)
		}
	}
}

func TestACRScope(t *testing.T) {
	for host, want := range map[string]string{
		"myreg.azurecr.io": "https://management.azure.com/.default",
		"MyReg.AzureCR.io": "https://management.azure.com/.default",
		"r.azurecr.cn":     "https://management.chinacloudapi.cn/.default",
		"r.azurecr.us":     "https://management.usgovcloudapi.net/.default",
		"r.azurecr.de":     "https://management.microsoftazure.de/.default",
		"azurecr.io":       "", ".azurecr.io": "", "r.azurecr.io:443": "", "r.azurecr.io.evil.com": "",
		"gcr.io": "", "r.azurecr.com": "",
	} {
		if got := acrScope(host); got != want {
			t.Errorf("%s: %q, want %q", host, got, want)
		}
	}
}

// BenchmarkCloudKeychainsOtherRegistry: what the cloud keychains cost a
// lookup on a registry that is none of theirs (no credentials, no calls).
func BenchmarkCloudKeychainsOtherRegistry(b *testing.B) {
	kc := authn.NewMultiKeychain(CloudKeychains(&ECR{}, &ACR{})...)
	reg, _ := name.NewRegistry("registry.example.com")
	for b.Loop() {
		if a, err := kc.Resolve(reg); err != nil || a != authn.Anonymous {
			b.Fatal(a, err)
		}
	}
}
