// Package azurefake is an in-process stand-in for Microsoft Entra ID and
// Azure Key Vault, for tests, benchmarks and demos. It speaks the real wire
// protocol over HTTPS with a certificate from a CA it generates: Entra
// instance discovery, OpenID metadata and the client-credentials token
// endpoint, and Key Vault's GET /secrets/{name}/{version} behind the 401
// WWW-Authenticate challenge, and for RSA keys GET /keys/{name}[/{version}]
// and POST /keys/{name}/{version}/unwrapkey. It answers for the real host names
// (login.microsoftonline.com, *.vault.azure.net and their sovereign-cloud
// twins), which a client reaches either through Transport (in process) or
// through the CONNECT proxy at ProxyURL (HTTPS_PROXY for a subprocess that
// trusts CACert through SSL_CERT_FILE).
//
// Product code must not import it.
package azurefake

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Credentials the fake accepts at its token endpoint.
const (
	Tenant       = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	ClientID     = "0b5f9c1e-3d1a-4c55-9d7e-6a0f3b8e2c11"
	ClientSecret = "fake-client-secret"
	// FederatedToken is the service account token of a workload identity
	// (what AZURE_FEDERATED_TOKEN_FILE holds on AKS); the token endpoint
	// accepts it as ClientID's client assertion.
	FederatedToken = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6YXBwOmFwcCJ9.c2ln"
)

// A cloud is one Azure cloud: its Entra host and its Key Vault domain.
type cloud struct {
	login, vaultSuffix string
}

// resource is the audience of Key Vault tokens in c, as its challenge names it.
func (c cloud) resource() string { return "https://vault" + c.vaultSuffix }

var clouds = []cloud{
	{"login.microsoftonline.com", ".azure.net"},
	{"login.chinacloudapi.cn", ".azure.cn"},
	{"login.microsoftonline.us", ".usgovcloudapi.net"},
}

// cloudOfVault returns the cloud whose Key Vault domain holds host.
func cloudOfVault(host string) (cloud, bool) {
	for _, c := range clouds {
		if strings.HasSuffix(host, ".vault"+c.vaultSuffix) {
			return c, true
		}
	}
	return cloud{}, false
}

func isLogin(host string) bool {
	for _, c := range clouds {
		if host == c.login {
			return true
		}
	}
	return false
}

// A Secret is one version of a Key Vault secret.
type Secret struct {
	Value       string
	ContentType string // e.g. application/x-pkcs12 for a certificate's PFX
	Disabled    bool
}

// A Fault makes Key Vault answer requests for a secret (or a whole vault)
// with an error instead of the secret.
type Fault struct {
	Status int    // HTTP status, e.g. 403, 429, 500
	Code   string // error.code, e.g. Forbidden, Throttled
	Inner  string // error.innererror.code, e.g. AccessDenied, ForbiddenByRbac
	Times  int    // answer this many requests so, then serve normally; 0: all
	Hang   bool   // accept the request and never answer it
	Body   string // if set, sent as is (with Status) instead of an error document
	// RetryAfter, if positive, is sent as the Retry-After header (seconds).
	RetryAfter int
}

type version struct {
	id string
	Secret
}

type fault struct {
	Fault
	left int
}

// Server is a running fake. Close it when done.
type Server struct {
	// CACert is the PEM certificate of the CA that signed the server's
	// certificate: trust it (SSL_CERT_FILE) to talk to the fake.
	CACert []byte
	// ProxyURL is an HTTP proxy that tunnels CONNECT requests for the
	// fake's host names to it, refuses other hosts with 502, and drops
	// plain-HTTP requests (such as a managed-identity probe) unanswered.
	ProxyURL string

	tlsLn, proxyLn net.Listener
	srv, proxy     *http.Server
	caPool         *x509.CertPool

	mu       sync.Mutex
	vaults   map[string]map[string][]version // host → name → versions, oldest first
	keys     map[string]map[string][]key     // host → key name → versions, oldest first
	faults   map[string]*fault               // host or host/name → fault
	tokens   map[string]string               // access token → audience
	nTokens  int
	nSecrets int
	inFlight int // authorized secret reads being answered
	maxIn    int
	latency  time.Duration
	rtt      time.Duration     // SetRequestLatency's delay of every request
	nReqs    int               // HTTPS requests received
	resource map[string]string // vault host → resource its challenge names instead

	reads map[string]*[2]int // host/name → reads of the current version, of a named one (versions.go)
}

// Start runs a fake on loopback ports.
func Start() (*Server, error) {
	caCert, caKey, caPEM, err := newCA()
	if err != nil {
		return nil, err
	}
	leaf, err := newLeaf(caCert, caKey)
	if err != nil {
		return nil, err
	}
	s := &Server{
		CACert:   caPEM,
		caPool:   x509.NewCertPool(),
		vaults:   map[string]map[string][]version{},
		keys:     map[string]map[string][]key{},
		faults:   map[string]*fault{},
		tokens:   map[string]string{},
		resource: map[string]string{},
	}
	s.caPool.AddCert(caCert)
	if s.tlsLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	if s.proxyLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		s.tlsLn.Close()
		return nil, err
	}
	s.ProxyURL = "http://" + s.proxyLn.Addr().String()
	quiet := log.New(io.Discard, "", 0) // clients that hang up or distrust the CA are expected
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), TLSConfig: &tls.Config{Certificates: []tls.Certificate{leaf}}, ErrorLog: quiet}
	s.proxy = &http.Server{Handler: http.HandlerFunc(s.serveProxy), ErrorLog: quiet}
	go s.srv.ServeTLS(s.tlsLn, "", "")
	go s.proxy.Serve(s.proxyLn)
	return s, nil
}

// Close stops the fake, ending any request it holds.
func (s *Server) Close() {
	s.srv.Close()
	s.proxy.Close()
}

// Put stores a new version of a secret, which becomes its current
// version, and returns the version's id. vault is https://HOST or HOST.
func (s *Server) Put(vault, name string, sec Secret) string {
	host := hostOf(vault)
	id := newID()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.vaults[host] == nil {
		s.vaults[host] = map[string][]version{}
	}
	s.vaults[host][name] = append(s.vaults[host][name], version{id, sec})
	return id
}

// Fail makes the vault answer requests for name (empty: every secret of
// the vault) with f.
func (s *Server) Fail(vault, name string, f Fault) {
	key := hostOf(vault)
	if name != "" {
		key += "/" + name
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[key] = &fault{f, f.Times}
}

// SetLatency makes Key Vault take d to answer each authorized read, as
// a vault across a network does.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// SetRequestLatency makes every HTTPS request, Entra ID's and Key Vault's
// (challenges included), wait d before it is answered, as across a network
// with that round-trip time. SetLatency's delay of secret reads comes on top.
func (s *Server) SetRequestLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rtt = d
}

// Requests returns how many HTTPS requests the fake has received: Entra
// ID's (discovery, metadata, tokens) and Key Vault's, challenges included.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nReqs
}

// Challenge makes the vault's 401 challenge name resource instead of its
// cloud's Key Vault resource, as a host that is no Key Vault might.
func (s *Server) Challenge(vault, resource string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.resource[hostOf(vault)] = resource
}

// MaxInFlight returns the most authorized secret reads that Key Vault was
// answering at once.
func (s *Server) MaxInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxIn
}

// TokenRequests returns how many tokens the token endpoint has issued.
func (s *Server) TokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nTokens
}

// SecretRequests returns how many authorized secret reads Key Vault has
// received (challenge round trips not counted).
func (s *Server) SecretRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nSecrets
}

// Transport returns an HTTP transport for in-process clients: it connects
// every TLS host the fake serves to the fake and trusts its CA; a vault
// host nobody Put a secret in does not resolve, and any other address
// (such as the managed-identity endpoint) refuses the connection.
func (s *Server) Transport() *http.Transport {
	d := &net.Dialer{}
	return &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, _ := net.SplitHostPort(addr)
			if err := s.knows(host); err != nil || port != "443" {
				var dns *net.DNSError
				if !errors.As(err, &dns) {
					err = syscall.ECONNREFUSED
				}
				return nil, &net.OpError{Op: "dial", Net: network, Err: err}
			}
			return d.DialContext(ctx, "tcp", s.tlsLn.Addr().String())
		},
		TLSClientConfig:   &tls.Config{RootCAs: s.caPool},
		ForceAttemptHTTP2: true,
	}
}

// knows reports why host is not served by the fake, or nil.
func (s *Server) knows(host string) error {
	if isLogin(host) {
		return nil
	}
	if _, ok := cloudOfVault(host); !ok {
		return fmt.Errorf("the fake does not serve %s", host)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.vaults[host] == nil {
		return &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return nil
}

func (s *Server) serveProxy(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		// Drop it: a client sees a transport error, as when nothing listens.
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
			}
		}
		return
	}
	host, port, _ := net.SplitHostPort(r.Host)
	if s.knows(host) != nil || port != "443" {
		http.Error(w, "no route to "+r.Host, http.StatusBadGateway)
		return
	}
	up, err := net.Dial("tcp", s.tlsLn.Addr().String())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	w.WriteHeader(http.StatusOK)
	c, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		up.Close()
		return
	}
	go func() {
		io.Copy(up, buf)
		up.Close()
	}()
	io.Copy(c, up)
	c.Close()
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.nReqs++
	rtt := s.rtt
	s.mu.Unlock()
	if rtt > 0 {
		select {
		case <-time.After(rtt):
		case <-r.Context().Done():
			return
		}
	}
	host := hostOf(r.Host)
	if isLogin(host) {
		s.serveEntra(w, r, host)
		return
	}
	if c, ok := cloudOfVault(host); ok {
		s.serveVault(w, r, host, c)
		return
	}
	http.NotFound(w, r)
}

// serveEntra answers instance discovery, OpenID metadata and token requests.
func (s *Server) serveEntra(w http.ResponseWriter, r *http.Request, host string) {
	base := "https://" + host + "/"
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	tenant, rest := parts[0], strings.Join(parts[1:], "/")
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/common/discovery/instance":
		ae, _ := url.Parse(r.URL.Query().Get("authorization_endpoint"))
		t := ""
		if ae != nil {
			t = strings.Split(strings.TrimPrefix(ae.Path, "/"), "/")[0]
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"tenant_discovery_endpoint": base + t + "/v2.0/.well-known/openid-configuration",
			"api-version":               "1.1",
			"metadata":                  []map[string]any{{"preferred_network": host, "preferred_cache": host, "aliases": []string{host}}},
		})
	case tenant != Tenant:
		writeJSON(w, http.StatusBadRequest, map[string]any{
			"error":             "invalid_tenant",
			"error_description": "AADSTS90002: Tenant '" + tenant + "' not found.",
			"error_codes":       []int{90002},
		})
	case r.Method == http.MethodGet && rest == "v2.0/.well-known/openid-configuration":
		writeJSON(w, http.StatusOK, map[string]any{
			"token_endpoint":                        base + tenant + "/oauth2/v2.0/token",
			"authorization_endpoint":                base + tenant + "/oauth2/v2.0/authorize",
			"issuer":                                base + tenant + "/v2.0",
			"jwks_uri":                              base + tenant + "/discovery/v2.0/keys",
			"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
			"subject_types_supported":               []string{"pairwise"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	case r.Method == http.MethodPost && rest == "oauth2/v2.0/token":
		s.serveToken(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "client_credentials" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "unsupported_grant_type", "error_description": "AADSTS70003: The app requested an unsupported grant type."})
		return
	}
	secretOK := r.PostForm.Get("client_secret") == ClientSecret
	assertionOK := r.PostForm.Get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" &&
		r.PostForm.Get("client_assertion") == FederatedToken
	if r.PostForm.Get("client_id") != ClientID || !secretOK && !assertionOK {
		writeJSON(w, http.StatusUnauthorized, map[string]any{
			"error":             "invalid_client",
			"error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
			"error_codes":       []int{7000215},
		})
		return
	}
	audience := ""
	for _, sc := range strings.Fields(r.PostForm.Get("scope")) {
		if a, ok := strings.CutSuffix(sc, "/.default"); ok {
			audience = a
		}
	}
	token := newID() + newID()
	s.mu.Lock()
	s.tokens[token] = audience
	s.nTokens++
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token,
	})
}

// serveVault answers Key Vault's GET /secrets/{name}[/{version}].
func (s *Server) serveVault(w http.ResponseWriter, r *http.Request, host string, c cloud) {
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.mu.Lock()
	audience, known := s.tokens[token]
	resource := s.resource[host]
	s.mu.Unlock()
	if resource == "" {
		resource = c.resource()
	}
	if !known || audience != resource {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer authorization="https://%s/%s", resource="%s"`, c.login, Tenant, resource))
		msg := "AKV10000: Request is missing a Bearer or PoP token."
		if known {
			msg = "AKV10022: Invalid audience."
		}
		writeError(w, http.StatusUnauthorized, "Unauthorized", "", msg)
		return
	}
	if strings.HasPrefix(r.URL.Path, "/keys/") {
		s.serveKeys(w, r, host)
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/secrets/"), "/")
	if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, "/secrets/") || len(parts) > 2 || parts[0] == "" {
		writeError(w, http.StatusBadRequest, "BadParameter", "", "The request URI is not valid.")
		return
	}
	name, want := parts[0], ""
	if len(parts) == 2 {
		want = parts[1]
	}
	s.mu.Lock()
	s.nSecrets++
	s.countRead(host, name, want)
	s.inFlight++
	s.maxIn = max(s.maxIn, s.inFlight)
	latency := s.latency
	f := s.faults[host+"/"+name]
	if f == nil {
		f = s.faults[host]
	}
	if f != nil && f.Times > 0 {
		if f.left == 0 {
			f = nil
		} else {
			f.left--
		}
	}
	versions := s.vaults[host][name]
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()
	if latency > 0 {
		select {
		case <-time.After(latency):
		case <-r.Context().Done():
			return
		}
	}
	if f != nil {
		if f.Hang {
			<-r.Context().Done()
			return
		}
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfter))
		}
		if f.Body != "" {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.WriteHeader(f.Status)
			io.WriteString(w, f.Body)
			return
		}
		writeError(w, f.Status, f.Code, f.Inner, "Fault injected by the fake.")
		return
	}
	var v *version
	for i := range versions {
		if versions[i].id == want || want == "" && i == len(versions)-1 {
			v = &versions[i]
		}
	}
	switch {
	case v == nil:
		writeError(w, http.StatusNotFound, "SecretNotFound", "", fmt.Sprintf("A secret with (name/id) %s was not found in this key vault.", strings.Join(parts, "/")))
	case v.Disabled:
		writeError(w, http.StatusForbidden, "Forbidden", "SecretDisabled", "Operation get is not allowed on a disabled secret.")
	default:
		now := time.Now().Unix()
		body := map[string]any{
			"value": v.Value,
			"id":    "https://" + host + "/secrets/" + name + "/" + v.id,
			"attributes": map[string]any{
				"enabled": true, "created": now, "updated": now, "recoveryLevel": "Recoverable+Purgeable", "recoverableDays": 90,
			},
			"tags": map[string]string{},
		}
		if v.ContentType != "" {
			body["contentType"] = v.ContentType
		}
		writeJSON(w, http.StatusOK, body)
	}
}

func writeError(w http.ResponseWriter, status int, code, inner, msg string) {
	e := map[string]any{"code": code, "message": msg}
	if inner != "" {
		e["innererror"] = map[string]string{"code": inner}
	}
	writeJSON(w, status, map[string]any{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// hostOf returns the lower-case host of https://HOST[:PORT][/...] or HOST[:PORT].
func hostOf(s string) string {
	s = strings.TrimPrefix(s, "https://")
	s, _, _ = strings.Cut(s, "/")
	if h, _, err := net.SplitHostPort(s); err == nil {
		s = h
	}
	return strings.ToLower(s)
}

// newID returns 32 lower-case hex digits, the shape of a Key Vault version.
func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func newCA() (*x509.Certificate, *ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "azurefake test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, err
	}
	return cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

func newLeaf(ca *x509.Certificate, caKey *ecdsa.PrivateKey) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	var names []string
	for _, c := range clouds {
		names = append(names, c.login, "*.vault"+c.vaultSuffix)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "azurefake"},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
