package gcp

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/gcp/gcpfake"
)

// canary is stored in secrets whose access fails: it must never show up in
// an error.
const canary = "CANARY-7f3a9c-never-print-me"

// isolate clears the ambient Google configuration, so that only what a
// test sets counts: no project, no credentials, no emulator, no metadata
// server override, an empty home (no gcloud credentials).
func isolate(t *testing.T) {
	t.Helper()
	for _, k := range []string{"GOOGLE_CLOUD_PROJECT", "GOOGLE_PROJECT", "GOOGLE_APPLICATION_CREDENTIALS",
		"CLOUDSDK_CONFIG", EmulatorEnv, "GCE_METADATA_HOST", "GOOGLE_SDK_GO_LOGGING_LEVEL"} {
		t.Setenv(k, "")
	}
	t.Setenv("HOME", t.TempDir())
}

func startFake(t testing.TB) *gcpfake.Server {
	t.Helper()
	f, err := gcpfake.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

func settings() provider.Settings {
	return provider.Settings{Log: slog.New(slog.DiscardHandler), Limit: provider.NewLimiter(16)}
}

// fakeStore is the store in plaintext mode, with project as
// --google-project, sending each location's calls to its fake ("" is
// global).
func fakeStore(project string, s provider.Settings, byLocation map[string]*gcpfake.Server) *store {
	return &store{settings: s, project: project, plaintext: true, endpoint: func(location string) string {
		if f := byLocation[location]; f != nil {
			return f.Addr
		}
		return "127.0.0.1:1" // nothing listens: a misrouted call fails
	}}
}

// targets parses references as the engine does.
func targets(t testing.TB, refs ...string) []provider.Target {
	t.Helper()
	ts := make([]provider.Target, len(refs))
	for i, s := range refs {
		r, ok, err := provider.Parse(s)
		if !ok || err != nil {
			t.Fatalf("Parse(%q) = %v, %v", s, ok, err)
		}
		ts[i] = r.Target
	}
	return ts
}

func fetch(t testing.TB, p provider.Store, timeout time.Duration, refs ...string) []provider.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ts := targets(t, refs...)
	rs := p.Fetch(ctx, ts)
	if len(rs) != len(ts) {
		t.Fatalf("Fetch returned %d results for %d targets", len(rs), len(ts))
	}
	return rs
}

func TestEveryForm(t *testing.T) {
	isolate(t)
	global, regional := startFake(t), startFake(t)
	global.Add("projects/p1/secrets/db", []byte("one"))
	global.Add("projects/p1/secrets/db", []byte("two\n"))
	global.Alias("projects/p1/secrets/db", "prod", 1)
	global.Add("projects/p1/secrets/json", []byte(`{"user":"u","port":5432}`))
	global.Add("projects/p1/secrets/bin", []byte{0, 1, 0xff, 'x', 0})
	global.Add("projects/p1/secrets/empty", nil)
	global.Add("projects/other/secrets/db", []byte("other"))
	regional.Add("projects/p1/locations/europe-west1/secrets/reg", []byte("regional-1"))
	regional.Add("projects/p1/locations/europe-west1/secrets/reg", []byte("regional-2"))

	cases := []struct {
		ref, name, want, version string
		fake                     *gcpfake.Server
	}{
		{"gcp:secretmanager:projects/p1/secrets/db", "projects/p1/secrets/db/versions/latest", "two\n", "2", global},
		{"gcp:secretmanager:projects/p1/secrets/db/versions/1", "projects/p1/secrets/db/versions/1", "one", "1", global},
		{"gcp:secretmanager:projects/p1/secrets/db/versions/prod", "projects/p1/secrets/db/versions/prod", "one", "1", global},
		{"gcp:secretmanager:projects/p1/secrets/db/versions/latest?trim", "projects/p1/secrets/db/versions/latest", "two\n", "2", global},
		{"gcp:secretmanager:projects/other/secrets/db", "projects/other/secrets/db/versions/latest", "other", "1", global},
		{"gcp:secretmanager:projects/p1/secrets/json#user", "projects/p1/secrets/json/versions/latest", `{"user":"u","port":5432}`, "1", global},
		{"gcp:secretmanager:projects/p1/secrets/bin?file", "projects/p1/secrets/bin/versions/latest", "\x00\x01\xffx\x00", "1", global},
		{"gcp:secretmanager:projects/p1/secrets/empty", "projects/p1/secrets/empty/versions/latest", "", "1", global},
		{"gcp:secretmanager:db", "projects/p1/secrets/db/versions/latest", "two\n", "2", global},
		{"gcp:secretmanager:db/versions/1#k?optional", "projects/p1/secrets/db/versions/1", "one", "1", global},
		{"gcp:secretmanager:projects/p1/locations/europe-west1/secrets/reg", "projects/p1/locations/europe-west1/secrets/reg/versions/latest", "regional-2", "2", regional},
		{"gcp:secretmanager:projects/p1/locations/europe-west1/secrets/reg/versions/1", "projects/p1/locations/europe-west1/secrets/reg/versions/1", "regional-1", "1", regional},
	}
	var refs []string
	for _, c := range cases {
		refs = append(refs, c.ref)
	}
	rs := fetch(t, fakeStore("p1", settings(), map[string]*gcpfake.Server{"": global, "europe-west1": regional}), 10*time.Second, refs...)
	for i, c := range cases {
		r := rs[i]
		if r.Err != nil || r.Value == nil || string(r.Value) != c.want || r.Version != c.version || r.Binary {
			t.Errorf("%s: got value %q (nil %v), version %q, binary %v, err %v; want %q, version %q",
				c.ref, r.Value, r.Value == nil, r.Version, r.Binary, r.Err, c.want, c.version)
		}
		if !slices.Contains(c.fake.Requests(), c.name) {
			t.Errorf("%s: the endpoint for its location was not asked for %s", c.ref, c.name)
		}
	}
	for _, name := range global.Requests() {
		if strings.Contains(name, "/locations/") {
			t.Errorf("the global endpoint was asked for regional %s", name)
		}
	}
	for _, name := range regional.Requests() {
		if !strings.Contains(name, "/locations/europe-west1/") {
			t.Errorf("the europe-west1 endpoint was asked for %s", name)
		}
	}
}

// TestOneConnectionPerEndpoint fetches many secrets from two locations and
// checks that each endpoint saw one connection, closed when Fetch returned.
func TestOneConnectionPerEndpoint(t *testing.T) {
	isolate(t)
	global, regional := startFake(t), startFake(t)
	var refs []string
	for _, name := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		global.Add("projects/p/secrets/"+name, []byte(name))
		regional.Add("projects/p/locations/us-east1/secrets/"+name, []byte(name))
		refs = append(refs, "gcp:secretmanager:projects/p/secrets/"+name, "gcp:secretmanager:projects/p/locations/us-east1/secrets/"+name)
	}
	rs := fetch(t, fakeStore("", settings(), map[string]*gcpfake.Server{"": global, "us-east1": regional}), 10*time.Second, refs...)
	for i, r := range rs {
		if r.Err != nil || string(r.Value) != refs[i][strings.LastIndex(refs[i], "/")+1:] {
			t.Errorf("%s: %q, %v", refs[i], r.Value, r.Err)
		}
	}
	for _, f := range []*gcpfake.Server{global, regional} {
		if accepted, _ := f.Conns(); accepted != 1 {
			t.Errorf("an endpoint accepted %d connections, want 1", accepted)
		}
		waitClosed(t, f)
	}
}

// waitClosed waits until the fake has seen its client connections close.
func waitClosed(t *testing.T, f *gcpfake.Server) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, open := f.Conns(); open == 0 {
			return
		}
	}
	t.Error("the connection is still open after Fetch returned")
}

func TestDefaultProjectFromEnvironment(t *testing.T) {
	f := startFake(t)
	for _, p := range []string{"flag-p", "cloud-p", "doit-p"} {
		f.Add("projects/"+p+"/secrets/s", []byte(p))
	}
	cases := []struct {
		flag, cloud, doit, want string
	}{
		{"flag-p", "cloud-p", "doit-p", "flag-p"},
		{"", "cloud-p", "doit-p", "cloud-p"},
		{"", "", "doit-p", "doit-p"},
	}
	for _, c := range cases {
		isolate(t)
		t.Setenv("GOOGLE_CLOUD_PROJECT", c.cloud)
		t.Setenv("GOOGLE_PROJECT", c.doit)
		rs := fetch(t, fakeStore(c.flag, settings(), map[string]*gcpfake.Server{"": f}), 10*time.Second, "gcp:secretmanager:s")
		if string(rs[0].Value) != c.want || rs[0].Err != nil {
			t.Errorf("flag %q, GOOGLE_CLOUD_PROJECT %q, GOOGLE_PROJECT %q: got %q, %v; want %q", c.flag, c.cloud, c.doit, rs[0].Value, rs[0].Err, c.want)
		}
	}
}

// metadataToken is the access token fakeMetadata hands out.
const metadataToken = "ya29.metadata-token"

// fakeMetadata serves the project id and the default service account's
// access token the way the metadata server does.
func fakeMetadata(t *testing.T, project string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Metadata-Flavor") != "Google" {
			http.Error(w, "missing Metadata-Flavor", http.StatusForbidden)
			return
		}
		w.Header().Set("Metadata-Flavor", "Google")
		switch r.URL.Path {
		case "/computeMetadata/v1/project/project-id":
			w.Write([]byte(project))
		case "/computeMetadata/v1/instance/service-accounts/default/token":
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"access_token":"` + metadataToken + `","expires_in":3599,"token_type":"Bearer"}`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestDefaultProjectFromMetadataServer(t *testing.T) {
	isolate(t)
	f := startFake(t)
	f.Add("projects/meta-p/secrets/s", []byte("from metadata project"))
	t.Setenv("GCE_METADATA_HOST", fakeMetadata(t, "meta-p"))
	rs := fetch(t, fakeStore("", settings(), map[string]*gcpfake.Server{"": f}), 10*time.Second, "gcp:secretmanager:s")
	if string(rs[0].Value) != "from metadata project" || !slices.Contains(f.Requests(), "projects/meta-p/secrets/s/versions/latest") {
		t.Errorf("got %q, %v; requests %q", rs[0].Value, rs[0].Err, f.Requests())
	}
}

// writeServiceAccount writes a service account key file, as the console
// creates one, with a fresh RSA key.
func writeServiceAccount(t *testing.T, project string) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     project,
		"private_key_id": "0123456789abcdef",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   "app@" + project + ".iam.gserviceaccount.com",
		"client_id":      "1234567890",
		"token_uri":      "https://oauth2.googleapis.com/token",
	})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// tlsStore is the store with credentials, sending every call to a TLS fake.
func tlsStore(s provider.Settings, f *gcpfake.Server, roots *x509.CertPool) *store {
	return &store{settings: s, endpoint: func(string) string { return f.Addr }, extra: []option.ClientOption{
		option.WithGRPCDialOption(grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots}))),
	}}
}

func startTLSFake(t *testing.T) (*gcpfake.Server, *x509.CertPool) {
	t.Helper()
	f, roots, err := gcpfake.StartTLS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f, roots
}

// TestServiceAccountKey authenticates as ADC does with a service account
// key in GOOGLE_APPLICATION_CREDENTIALS (a self-signed JWT, no token
// exchange), takes the default project from the key, and never contacts
// the metadata server.
func TestServiceAccountKey(t *testing.T) {
	isolate(t)
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", writeServiceAccount(t, "cred-p"))
	l := silentListener(t)
	t.Setenv("GCE_METADATA_HOST", l.addr)
	f, roots := startTLSFake(t)
	f.Add("projects/cred-p/secrets/s", []byte("with a key"))
	r := fetch(t, tlsStore(settings(), f, roots), 10*time.Second, "gcp:secretmanager:s")[0]
	if string(r.Value) != "with a key" || r.Err != nil {
		t.Fatalf("got %q, %v", r.Value, r.Err)
	}
	auth := f.Authorizations()
	if len(auth) != 1 || !strings.HasPrefix(auth[0], "Bearer ") {
		t.Fatalf("authorization metadata %q, want one bearer token", auth)
	}
	parts := strings.Split(strings.TrimPrefix(auth[0], "Bearer "), ".")
	var claims struct{ Iss, Scope string }
	if b, err := base64.RawURLEncoding.DecodeString(parts[min(1, len(parts)-1)]); err != nil || json.Unmarshal(b, &claims) != nil ||
		claims.Iss != "app@cred-p.iam.gserviceaccount.com" || !strings.Contains(claims.Scope, "cloud-platform") {
		t.Errorf("the token is not a JWT signed for the key's account with the cloud-platform scope: %+v", claims)
	}
	if n := l.accepted(); n != 0 {
		t.Errorf("the metadata server got %d connections", n)
	}
}

// TestMetadataServerCredentials authenticates as on GCE, GKE or Cloud Run:
// the token and the default project come from the metadata server.
func TestMetadataServerCredentials(t *testing.T) {
	isolate(t)
	t.Setenv("GCE_METADATA_HOST", fakeMetadata(t, "meta-p"))
	f, roots := startTLSFake(t)
	f.Add("projects/meta-p/secrets/s", []byte("on gce"))
	f.Add("projects/meta-p/locations/us-central1/secrets/s", []byte("regional on gce"))
	rs := fetch(t, tlsStore(settings(), f, roots), 10*time.Second, "gcp:secretmanager:s", "gcp:secretmanager:projects/meta-p/locations/us-central1/secrets/s")
	if string(rs[0].Value) != "on gce" || string(rs[1].Value) != "regional on gce" {
		t.Fatalf("got %q, %v and %q, %v", rs[0].Value, rs[0].Err, rs[1].Value, rs[1].Err)
	}
	if auth := f.Authorizations(); len(auth) != 2 || auth[0] != "Bearer "+metadataToken || auth[1] != auth[0] {
		t.Errorf("authorization metadata %q, want the metadata server's token on both calls", auth)
	}
}

// TestBadCredentialsFile: ADC stops at GOOGLE_APPLICATION_CREDENTIALS, so a
// missing or broken file is an error that names the variable and never
// quotes the file.
func TestBadCredentialsFile(t *testing.T) {
	broken := filepath.Join(t.TempDir(), "broken.json")
	if err := os.WriteFile(broken, []byte(`{"type":"service_account","private_key":"`+canary+`"`), 0o600); err != nil {
		t.Fatal(err)
	}
	wrongType := filepath.Join(t.TempDir(), "wrong.json")
	if err := os.WriteFile(wrongType, []byte(`{"type":"`+canary+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	badKey := filepath.Join(t.TempDir(), "badkey.json")
	if err := os.WriteFile(badKey, []byte(`{"type":"service_account","project_id":"p","client_email":"a@p.iam.gserviceaccount.com","private_key":"`+canary+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{filepath.Join(t.TempDir(), "missing.json"), broken, wrongType, badKey} {
		isolate(t)
		t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", file)
		l := silentListener(t)
		t.Setenv("GCE_METADATA_HOST", l.addr)
		p, err := Opener(Options{Project: "p"})(context.Background(), settings())
		if err != nil {
			t.Fatal(err)
		}
		r := fetch(t, p, 10*time.Second, "gcp:secretmanager:s")[0]
		if r.Err == nil || !strings.Contains(r.Err.Error(), "no Google credentials (from the file in GOOGLE_APPLICATION_CREDENTIALS)") ||
			strings.Contains(r.Err.Error(), canary) || strings.Contains(r.Err.Error(), "\n") {
			t.Errorf("%s: %v", filepath.Base(file), r.Err)
		}
		if n := l.accepted(); n != 0 {
			t.Errorf("%s: the metadata server got %d connections", filepath.Base(file), n)
		}
	}
}

// TestEmulator goes through Open, configured by SECRET_MANAGER_EMULATOR_HOST
// only: every location is served by the emulator, without credentials.
func TestEmulator(t *testing.T) {
	isolate(t)
	f := startFake(t)
	f.Add("projects/p/secrets/s", []byte("global"))
	f.Add("projects/p/locations/asia-south1/secrets/s", []byte("regional"))
	t.Setenv(EmulatorEnv, f.Addr)
	t.Setenv("GOOGLE_CLOUD_PROJECT", "p")
	p, err := Open(context.Background(), settings())
	if err != nil {
		t.Fatal(err)
	}
	rs := fetch(t, p, 10*time.Second, "gcp:secretmanager:s", "gcp:secretmanager:projects/p/locations/asia-south1/secrets/s")
	if string(rs[0].Value) != "global" || string(rs[1].Value) != "regional" {
		t.Errorf("got %q, %v and %q, %v", rs[0].Value, rs[0].Err, rs[1].Value, rs[1].Err)
	}
	if accepted, _ := f.Conns(); accepted != 1 {
		t.Errorf("the emulator accepted %d connections, want 1", accepted)
	}
}

func TestChecksum(t *testing.T) {
	isolate(t)
	f := startFake(t)
	f.Add("projects/p/secrets/s", []byte(canary))
	st := fakeStore("", settings(), map[string]*gcpfake.Server{"": f})

	f.CorruptCRC(true)
	r := fetch(t, st, 10*time.Second, "gcp:secretmanager:projects/p/secrets/s")[0]
	if r.Value != nil || r.Err == nil || !strings.Contains(r.Err.Error(), "CRC32C") || strings.Contains(r.Err.Error(), canary) {
		t.Errorf("corrupted payload: got %q, %v; want a CRC32C error without the value", r.Value, r.Err)
	}

	f.CorruptCRC(false)
	f.OmitCRC(true)
	r = fetch(t, st, 10*time.Second, "gcp:secretmanager:projects/p/secrets/s")[0]
	if string(r.Value) != canary || r.Err != nil {
		t.Errorf("payload without a checksum: got %q, %v", r.Value, r.Err)
	}
}

func TestErrors(t *testing.T) {
	isolate(t)
	f := startFake(t)
	const s = "projects/p/secrets/"
	f.Add(s+"versions", []byte(canary))
	f.Add(s+"versions", []byte(canary))
	f.Add(s+"versions", []byte(canary))
	f.SetState(s+"versions", 1, secretmanagerpb.SecretVersion_DISABLED)
	f.SetState(s+"versions", 2, secretmanagerpb.SecretVersion_DESTROYED)
	f.Add(s+"denied", []byte(canary))
	f.Deny(s + "denied")
	f.Add("projects/off/secrets/s", []byte(canary))
	f.DisableAPI("off")

	cases := []struct {
		ref      string
		notFound bool
		want     []string
	}{
		{"gcp:secretmanager:projects/p/secrets/missing", true, []string{"not found in project p"}},
		{"gcp:secretmanager:projects/p/secrets/versions/versions/9", true, []string{"not found in project p"}},
		{"gcp:secretmanager:projects/p/secrets/versions/versions/nosuchalias", true, []string{"not found"}},
		{"gcp:secretmanager:versions/versions/9", true, []string{"not found in default project p"}},
		{"gcp:secretmanager:projects/p/secrets/versions/versions/1", false, []string{"disabled"}},
		{"gcp:secretmanager:projects/p/secrets/versions/versions/2", false, []string{"destroyed"}},
		{"gcp:secretmanager:projects/p/secrets/denied", false, []string{"secretmanager.versions.access", "roles/secretmanager.secretAccessor"}},
		{"gcp:secretmanager:projects/nosuchproject/secrets/s", false, []string{"project nosuchproject does not exist"}},
		{"gcp:secretmanager:projects/off/secrets/s", false, []string{"API is not enabled in project off"}},
	}
	var refs []string
	for _, c := range cases {
		refs = append(refs, c.ref)
	}
	rs := fetch(t, fakeStore("p", settings(), map[string]*gcpfake.Server{"": f}), 10*time.Second, refs...)
	for i, c := range cases {
		r := rs[i]
		if r.Err == nil {
			t.Errorf("%s: no error (value %q)", c.ref, r.Value)
			continue
		}
		msg := r.Err.Error()
		if errors.Is(r.Err, provider.ErrNotFound) != c.notFound {
			t.Errorf("%s: %q: errors.Is(ErrNotFound) = %v", c.ref, msg, !c.notFound)
		}
		for _, w := range c.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: %q does not say %q", c.ref, msg, w)
			}
		}
		if strings.Contains(msg, canary) || strings.Contains(msg, "\n") || r.Value != nil {
			t.Errorf("%s: %q holds the value or several lines", c.ref, msg)
		}
	}
}

func TestDeadline(t *testing.T) {
	isolate(t)
	f := startFake(t)
	f.Add("projects/p/secrets/slow", []byte(canary))
	f.SetLatency(time.Hour)
	r := fetch(t, fakeStore("", settings(), map[string]*gcpfake.Server{"": f}), 300*time.Millisecond, "gcp:secretmanager:projects/p/secrets/slow")[0]
	if !errors.Is(r.Err, context.DeadlineExceeded) || strings.Contains(r.Err.Error(), canary) {
		t.Errorf("slow server: %v; want a deadline error", r.Err)
	}
}

// TestRetryUntilDeadline points at an endpoint where nothing listens:
// Unavailable is retried until the deadline, and the error says what the
// last attempt met.
func TestRetryUntilDeadline(t *testing.T) {
	isolate(t)
	r := fetch(t, fakeStore("", settings(), nil), time.Second, "gcp:secretmanager:projects/p/secrets/s")[0]
	if !errors.Is(r.Err, context.DeadlineExceeded) || !strings.Contains(r.Err.Error(), "last attempt failed: Unavailable") {
		t.Errorf("unreachable endpoint: %v", r.Err)
	}
}

// TestThrottled: ResourceExhausted answers are retried until one succeeds.
func TestThrottled(t *testing.T) {
	isolate(t)
	f := startFake(t)
	f.Add("projects/p/secrets/s", []byte("after throttling"))
	f.Throttle(3)
	st := fakeStore("", settings(), map[string]*gcpfake.Server{"": f})
	// The engine's waits (up to 2 s, 4 s, 8 s) are for real quotas.
	st.backoff = provider.Backoff{Throttled: provider.Step{Base: time.Millisecond, Max: 10 * time.Millisecond}}
	r := fetch(t, st, 10*time.Second, "gcp:secretmanager:projects/p/secrets/s")[0]
	if string(r.Value) != "after throttling" || r.Err != nil || len(f.Requests()) != 4 {
		t.Errorf("got %q, %v after %d calls; want the value at the 4th call", r.Value, r.Err, len(f.Requests()))
	}
}

// TestLimitSkipped checks that targets the limiter never started, because
// the context ended, still get an error: the engine's, since the store
// leaves them unset.
func TestLimitSkipped(t *testing.T) {
	isolate(t)
	f := startFake(t)
	f.SetLatency(time.Hour)
	cfg := provider.Config{
		Stores: map[provider.Kind]provider.Opener{provider.Google: func(_ context.Context, s provider.Settings) (provider.Store, error) {
			return fakeStore("", s, map[string]*gcpfake.Server{"": f}), nil
		}},
		Concurrency: 1,
		Timeout:     time.Second,
		DryRun:      true,
	}
	_, err := provider.Resolve(context.Background(), cfg, []string{"A=gcp:secretmanager:projects/p/secrets/a", "B=gcp:secretmanager:projects/p/secrets/b"})
	var fe *provider.Failure
	if !errors.As(err, &fe) || len(fe.Vars) != 2 {
		t.Fatalf("err = %v; want both variables to fail", err)
	}
	for _, v := range fe.Vars {
		if v.Reason() != "deadline of 1s exceeded (--timeout)" {
			t.Errorf("%s: %s; want the deadline", v.Name, v.Reason())
		}
	}
}

// A listener accepts connections and never answers, standing in for an
// unreachable metadata server.
type listener struct {
	addr string
	mu   sync.Mutex
	n    int
}

func (l *listener) accepted() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

func silentListener(t *testing.T) *listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &listener{addr: ln.Addr().String()}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.mu.Lock()
			l.n++
			conns = append(conns, c)
			l.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return l
}

// TestNoMetadataServer: with no credentials file and a metadata server that
// accepts and never answers, Open does nothing and Fetch fails at the
// deadline, saying what it tried.
func TestNoMetadataServer(t *testing.T) {
	for _, ref := range []string{"gcp:secretmanager:projects/p/secrets/s", "gcp:secretmanager:s"} {
		isolate(t)
		l := silentListener(t)
		t.Setenv("GCE_METADATA_HOST", l.addr)
		p, err := Open(context.Background(), settings())
		if err != nil {
			t.Fatal(err)
		}
		if n := l.accepted(); n != 0 {
			t.Errorf("Open connected to the metadata server %d times", n)
		}
		r := fetch(t, p, time.Second, ref)[0]
		if !errors.Is(r.Err, context.DeadlineExceeded) || !strings.Contains(r.Err.Error(), "the metadata server at "+l.addr) ||
			!strings.Contains(r.Err.Error(), "GOOGLE_APPLICATION_CREDENTIALS") {
			t.Errorf("%s: %v; want a deadline error naming what was tried", ref, r.Err)
		}
		if l.accepted() == 0 {
			t.Errorf("%s: the metadata server was never asked", ref)
		}
	}

	// No target, no lookup.
	isolate(t)
	l := silentListener(t)
	t.Setenv("GCE_METADATA_HOST", l.addr)
	p, err := Open(context.Background(), settings())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if rs := p.Fetch(ctx, nil); len(rs) != 0 || l.accepted() != 0 {
		t.Errorf("Fetch of no targets: %d results, %d metadata connections", len(rs), l.accepted())
	}

	// Against an emulator no credentials are needed, but a short reference
	// without a configured project still asks the metadata server.
	isolate(t)
	l = silentListener(t)
	t.Setenv("GCE_METADATA_HOST", l.addr)
	f := startFake(t)
	r := fetch(t, fakeStore("", settings(), map[string]*gcpfake.Server{"": f}), time.Second, "gcp:secretmanager:s")[0]
	if !errors.Is(r.Err, context.DeadlineExceeded) || !strings.Contains(r.Err.Error(), "no default project") ||
		!strings.Contains(r.Err.Error(), "GOOGLE_CLOUD_PROJECT") || !strings.Contains(r.Err.Error(), "the metadata server at "+l.addr) {
		t.Errorf("project lookup: %v; want a deadline error naming what was tried", r.Err)
	}
	if len(f.Requests()) != 0 {
		t.Errorf("the emulator was called without a project: %q", f.Requests())
	}
}

// BenchmarkFetch20 fetches 20 secrets whose calls each take 100 ms, under
// the engine's default limit of 16 calls in flight.
func BenchmarkFetch20(b *testing.B) {
	f := startFake(b)
	f.SetLatency(100 * time.Millisecond)
	var refs []string
	for i := range 20 {
		name := "projects/p/secrets/s" + string(rune('a'+i))
		f.Add(name, bytes.Repeat([]byte{'x'}, 64))
		refs = append(refs, "gcp:secretmanager:"+name)
	}
	st := fakeStore("", settings(), map[string]*gcpfake.Server{"": f})
	for b.Loop() {
		for _, r := range fetch(b, st, 10*time.Second, refs...) {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	}
}
