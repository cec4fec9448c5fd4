package server

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

func writePair(t *testing.T, ca *CA, dir string, names ...string) {
	t.Helper()
	cert, err := ca.Issue(names)
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	// Written as cert-manager's Secret volume does: new files, then a rename.
	for name, b := range map[string][]byte{
		"tls.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}),
		"tls.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}),
	} {
		tmp := filepath.Join(dir, "."+name)
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

// served returns the DNS names of the certificate a TLS server with files
// presents.
func served(t *testing.T, files *CertFiles, ca *CA) []string {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.TLS = &tls.Config{GetCertificate: files.GetCertificate}
	srv.StartTLS()
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	conn, err := tls.Dial("tcp", srv.Listener.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "webhook.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].DNSNames
}

func TestCertFilesReload(t *testing.T) {
	ca, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writePair(t, ca, dir, "webhook.test", "first.test")
	m := NewMetrics()
	files := &CertFiles{Cert: filepath.Join(dir, "tls.crt"), Key: filepath.Join(dir, "tls.key"), Metrics: m}
	if got := served(t, files, ca); len(got) != 2 || got[1] != "first.test" {
		t.Fatalf("served %q", got)
	}
	// Renewed: the next handshake presents the new certificate.
	writePair(t, ca, dir, "webhook.test", "second.test", "x.test")
	if got := served(t, files, ca); len(got) != 3 || got[1] != "second.test" {
		t.Fatalf("after renewal, served %q", got)
	}
	// A broken pair keeps the last good certificate.
	os.WriteFile(files.Key, []byte("not a key"), 0o600)
	if got := served(t, files, ca); len(got) != 3 || got[1] != "second.test" {
		t.Fatalf("after a broken write, served %q", got)
	}
	if n := m.Get("secrets_init_webhook_tls_reloads_total", ""); n != 2 {
		t.Errorf("%d reloads counted", n)
	}
	// Without a first good pair there is nothing to serve.
	bad := &CertFiles{Cert: filepath.Join(dir, "missing.crt"), Key: files.Key}
	if _, err := bad.Load(); err == nil {
		t.Error("loaded a missing certificate")
	}
}

func TestSelfSignedCA(t *testing.T) {
	ca, err := NewCA()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Issue([]string{"secrets-init-webhook.secrets-init.svc", "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(cert.Certificate[0])
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	for _, name := range []string{"secrets-init-webhook.secrets-init.svc", "127.0.0.1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: name}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "other.svc"}); err == nil {
		t.Error("valid for another name")
	}
	if _, err := ca.Issue(nil); err == nil {
		t.Error("issued for no name")
	}
}
