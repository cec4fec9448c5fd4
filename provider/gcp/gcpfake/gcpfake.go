// Package gcpfake is an in-process Google Secret Manager for tests, demos
// and benchmarks: a gRPC server on a loopback port that implements
// AccessSecretVersion as the real service does (versions, the latest alias
// and named aliases, disabled and destroyed versions, not-found and
// permission errors, data_crc32c), records the names it was asked for, and
// can add latency or corrupt checksums. It speaks plaintext, as the
// emulators, or TLS, for clients with credentials. Product code never imports it.
package gcpfake

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"hash/crc32"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// A Server is a running fake Secret Manager. Its methods may be called
// while it serves.
type Server struct {
	secretmanagerpb.UnimplementedSecretManagerServiceServer

	// Addr is the host:port it listens on, for SECRET_MANAGER_EMULATOR_HOST
	// or a client's endpoint.
	Addr string

	grpc *grpc.Server

	mu       sync.Mutex
	secrets  map[string]*secret // by secret name, projects/P[/locations/L]/secrets/S
	denied   map[string]bool    // secret names the caller may not access
	disabled map[string]bool    // projects without the Secret Manager API
	requests []string
	auth     []string // the calls' authorization metadata
	latency  time.Duration
	corrupt  bool // send a wrong data_crc32c
	noCRC    bool // send no data_crc32c
	throttle int  // calls still to answer ResourceExhausted
	conns    int  // connections accepted
	open     int  // connections not yet closed

	meta metaState // GetSecretVersion's (versions.go)
}

type secret struct {
	versions []version        // versions[i] is version i+1
	aliases  map[string]int64 // alias → version number
}

type version struct {
	data  []byte
	state secretmanagerpb.SecretVersion_State
}

// Start serves a new, empty Secret Manager on 127.0.0.1 (plaintext gRPC,
// no authentication, as the community emulators). Close stops it.
func Start() (*Server, error) { return start() }

// StartTLS is Start over TLS, with a new self-signed certificate for
// 127.0.0.1 that Roots holds: the fake for clients that send credentials
// (gRPC sends per-call credentials only over TLS).
func StartTLS() (*Server, *x509.CertPool, error) {
	creds, roots, err := selfSigned()
	if err != nil {
		return nil, nil, err
	}
	s, err := start(creds)
	return s, roots, err
}

// selfSigned returns the server option of a new self-signed certificate
// for 127.0.0.1, and the pool that trusts it.
func selfSigned() (grpc.ServerOption, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "gcpfake"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true,

		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	return grpc.Creds(credentials.NewServerTLSFromCert(&tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key})), roots, nil
}

func start(opts ...grpc.ServerOption) (*Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{
		Addr:     l.Addr().String(),
		grpc:     grpc.NewServer(opts...),
		secrets:  map[string]*secret{},
		denied:   map[string]bool{},
		disabled: map[string]bool{},
	}
	secretmanagerpb.RegisterSecretManagerServiceServer(s.grpc, s)
	go s.grpc.Serve(countingListener{l, s})
	return s, nil
}

// Close stops the server and closes its connections.
func (s *Server) Close() { s.grpc.Stop() }

// Add stores data as a new enabled version of the secret named
// projects/P/secrets/S or projects/P/locations/L/secrets/S, creating the
// secret if needed, and returns the version's number.
func (s *Server) Add(name string, data []byte) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.secrets[name]
	if sec == nil {
		sec = &secret{aliases: map[string]int64{}}
		s.secrets[name] = sec
	}
	sec.versions = append(sec.versions, version{data: append([]byte{}, data...), state: secretmanagerpb.SecretVersion_ENABLED})
	return int64(len(sec.versions))
}

// Alias points a version alias of an existing secret at version n.
func (s *Server) Alias(name, alias string, n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets[name].aliases[alias] = n
}

// SetState sets the state of version n of an existing secret (DISABLED or
// DESTROYED make it inaccessible, as in the real service).
func (s *Server) SetState(name string, n int64, state secretmanagerpb.SecretVersion_State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secrets[name].versions[n-1].state = state
}

// Deny makes the secret (existing or not) answer PermissionDenied, as for a
// caller without secretmanager.versions.access on it.
func (s *Server) Deny(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.denied[name] = true
}

// DisableAPI makes every call in the project answer as Google does when
// the Secret Manager API is not enabled there.
func (s *Server) DisableAPI(project string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.disabled[project] = true
}

// Throttle makes the next n calls answer ResourceExhausted, as a project
// over its quota does.
func (s *Server) Throttle(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttle = n
}

// SetLatency makes every call take at least d.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// CorruptCRC makes responses carry a wrong data_crc32c.
func (s *Server) CorruptCRC(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.corrupt = on
}

// OmitCRC makes responses carry no data_crc32c (older servers and some
// emulators).
func (s *Server) OmitCRC(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noCRC = on
}

// Authorizations returns the authorization metadata (e.g. "Bearer TOKEN")
// of the calls so far, in arrival order; calls without any add nothing.
func (s *Server) Authorizations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string{}, s.auth...)
}

// Requests returns the version names asked for so far, in arrival order.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string{}, s.requests...)
}

// Conns returns the number of connections accepted so far, and how many of
// them are still open.
func (s *Server) Conns() (accepted, open int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns, s.open
}

// AccessSecretVersion implements the RPC.
func (s *Server) AccessSecretVersion(ctx context.Context, req *secretmanagerpb.AccessSecretVersionRequest) (*secretmanagerpb.AccessSecretVersionResponse, error) {
	s.mu.Lock()
	s.requests = append(s.requests, req.GetName())
	md, _ := metadata.FromIncomingContext(ctx)
	s.auth = append(s.auth, md.Get("authorization")...)
	s.mu.Unlock()
	if err := s.arrive(ctx); err != nil {
		return nil, err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.throttled("Access requests"); err != nil {
		return nil, err
	}
	i := strings.LastIndex(req.GetName(), "/versions/")
	if i < 0 {
		i = len(req.GetName())
	}
	name, v := req.GetName()[:i], strings.TrimPrefix(req.GetName()[i:], "/versions/")
	sec, n, err := s.find(req.GetName(), name, v, "secretmanager.versions.access", false)
	if err != nil {
		return nil, err
	}
	ver := sec.versions[n-1]
	full := fmt.Sprintf("%s/versions/%d", name, n)
	if ver.state != secretmanagerpb.SecretVersion_ENABLED {
		return nil, status.Errorf(codes.FailedPrecondition, "Secret Version [%s] is in %s state.", full, ver.state)
	}
	payload := &secretmanagerpb.SecretPayload{Data: ver.data}
	if !s.noCRC {
		sum := int64(crc32.Checksum(ver.data, crc32.MakeTable(crc32.Castagnoli)))
		if s.corrupt {
			sum ^= 1
		}
		payload.DataCrc32C = &sum
	}
	return &secretmanagerpb.AccessSecretVersionResponse{Name: full, Payload: payload}, nil
}

// find looks up the version V of secret name that request full names (V a
// number, latest or an alias) with the checks and errors of the API, in
// their order; permission is what a denial names, and deny denies
// whatever the secret. s.mu is held.
func (s *Server) find(full, name, v, permission string, deny bool) (*secret, int64, error) {
	if v == "" || !validSecretName(name) {
		return nil, 0, status.Errorf(codes.InvalidArgument, "Resource ID [%s] is not in a valid format.", full)
	}
	if s.denied[name] || deny {
		return nil, 0, status.Errorf(codes.PermissionDenied, "Permission '%s' denied for resource '%s' (or it may not exist).", permission, full)
	}
	project := strings.Split(name, "/")[1]
	if s.disabled[project] {
		return nil, 0, errorInfo("Secret Manager API has not been used in project "+project+" before or it is disabled.", "SERVICE_DISABLED", project)
	}
	if !s.knownProject(project) {
		return nil, 0, errorInfo("Permission denied on resource project "+project+".", "CONSUMER_INVALID", project)
	}
	sec := s.secrets[name]
	if sec == nil || len(sec.versions) == 0 {
		return nil, 0, status.Errorf(codes.NotFound, "Secret [%s] not found or has no versions.", name)
	}
	n, err := strconv.ParseInt(v, 10, 64)
	switch {
	case v == "latest":
		n = int64(len(sec.versions))
	case err == nil:
	case sec.aliases[v] != 0:
		n = sec.aliases[v]
	default:
		return nil, 0, status.Errorf(codes.NotFound, "Secret Version [%s] not found.", full)
	}
	if n < 1 || n > int64(len(sec.versions)) {
		return nil, 0, status.Errorf(codes.NotFound, "Secret Version [%s] not found.", full)
	}
	return sec, n, nil
}

// errorInfo is a PermissionDenied status with an ErrorInfo detail, as
// Google's front end sends about projects.
func errorInfo(msg, reason, project string) error {
	st, _ := status.New(codes.PermissionDenied, msg).WithDetails(&errdetails.ErrorInfo{
		Reason: reason, Domain: "googleapis.com", Metadata: map[string]string{"consumer": "projects/" + project},
	})
	return st.Err()
}

// knownProject reports whether any secret lives in the project; the fake
// treats other projects as nonexistent.
func (s *Server) knownProject(project string) bool {
	for name := range s.secrets {
		if strings.HasPrefix(name, "projects/"+project+"/") {
			return true
		}
	}
	for name := range s.denied {
		if strings.HasPrefix(name, "projects/"+project+"/") {
			return true
		}
	}
	return false
}

// validSecretName checks projects/P/secrets/S or projects/P/locations/L/secrets/S.
func validSecretName(name string) bool {
	f := strings.Split(name, "/")
	for i := range f {
		if f[i] == "" {
			return false
		}
	}
	switch len(f) {
	case 4:
		return f[0] == "projects" && f[2] == "secrets"
	case 6:
		return f[0] == "projects" && f[2] == "locations" && f[4] == "secrets"
	}
	return false
}

// countingListener counts the connections a Server accepts and closes.
type countingListener struct {
	net.Listener
	s *Server
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	l.s.conns++
	l.s.open++
	return &countedConn{Conn: c, s: l.s}, nil
}

type countedConn struct {
	net.Conn
	s    *Server
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		defer c.s.mu.Unlock()
		c.s.open--
	})
	return c.Conn.Close()
}
