// Package kubernetes_test runs secrets-init-webhook against a real
// kube-apiserver (built from the Go module proxy, k8s.io/kubernetes v1.36),
// etcd (Debian's etcd-server) and kube-controller-manager (its deployment,
// replicaset and serviceaccount controllers), then acts as the kubelet on
// the pods it mutated. Run it with `make e2e-kubernetes`.
//
// KUBE_APISERVER and KUBE_CONTROLLER_MANAGER may name prebuilt binaries
// (same version); otherwise they are built with `go build` from this module.
package kubernetes_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

const kubeVersion = "v1.36.3"

// pki is a CA that issues the cluster's certificates.
type pki struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "e2e CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &pki{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

var serialN int64 = 1

// issue writes a certificate and key to dir/name.{crt,key}: a serving
// certificate for 127.0.0.1 when server, else a client certificate for
// user cn in groups.
func (p *pki) issue(t *testing.T, dir, name, cn string, server bool, groups ...string) (certFile, keyFile string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serialN++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serialN), Subject: pkix.Name{CommonName: cn, Organization: groups},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.DNSNames = []string{"localhost"}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	write(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	write(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}))
	return certFile, keyFile
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// cluster is etcd, kube-apiserver and kube-controller-manager.
type cluster struct {
	dir    string
	pki    *pki
	url    string
	admin  *rest.Config
	client kubernetes.Interface
}

// kubeconfig writes a kubeconfig for user cn in groups and returns its path.
func (c *cluster) kubeconfig(t *testing.T, name, cn string, groups ...string) string {
	t.Helper()
	crt, key := c.pki.issue(t, c.dir, name, cn, false, groups...)
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["e2e"] = &clientcmdapi.Cluster{Server: c.url, CertificateAuthorityData: c.pki.pem}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificate: crt, ClientKey: key}
	cfg.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: name}
	cfg.CurrentContext = "e2e"
	path := filepath.Join(c.dir, name+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// buildKube returns $env, or builds pkg from this module into dir.
func buildKube(env, dir, pkg string) (string, error) {
	if p := os.Getenv(env); p != "" {
		return p, nil
	}
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, "-ldflags", "-X k8s.io/component-base/version.gitVersion="+kubeVersion, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %v\n%s", pkg, err, b)
	}
	return out, nil
}

// start runs a process until the test ends; its output goes to dir/name.log.
func start(t *testing.T, dir, name string, argv ...string) *exec.Cmd {
	t.Helper()
	log, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		log.Close()
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			t.Logf("--- %s (tail)\n%s", name, b)
		}
	})
	return cmd
}

// waitFor polls f until it is true, for at most two minutes (a slow
// machine still gets there; a broken one fails).
func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if f() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	etcd, err := exec.LookPath("etcd")
	if err != nil {
		t.Fatal("etcd is not installed (Debian: apt-get install etcd-server)")
	}
	dir := t.TempDir()
	apiserver, kcm := kubeAPIServer, kubeControllerManager

	etcdPort, peerPort := freePort(t), freePort(t)
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	start(t, dir, "etcd", etcd, "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", "http://127.0.0.1:"+strconv.Itoa(peerPort),
		"--initial-advertise-peer-urls", "http://127.0.0.1:"+strconv.Itoa(peerPort),
		"--initial-cluster", "default=http://127.0.0.1:"+strconv.Itoa(peerPort))
	waitFor(t, "etcd", func() bool {
		r, err := http.Get(etcdURL + "/health")
		if err == nil {
			r.Body.Close()
		}
		return err == nil && r.StatusCode == 200
	})

	c := &cluster{dir: dir, pki: newPKI(t)}
	caFile := filepath.Join(dir, "ca.crt")
	write(t, caFile, c.pki.pem)
	crt, key := c.pki.issue(t, dir, "apiserver", "kube-apiserver", true)
	saKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	saFile := filepath.Join(dir, "sa.key")
	write(t, saFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(saKey)}))
	port := freePort(t)
	c.url = "https://127.0.0.1:" + strconv.Itoa(port)
	start(t, dir, "kube-apiserver", apiserver,
		"--etcd-servers", etcdURL,
		"--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1", "--secure-port", strconv.Itoa(port),
		"--tls-cert-file", crt, "--tls-private-key-file", key, "--client-ca-file", caFile,
		"--service-account-key-file", saFile, "--service-account-signing-key-file", saFile,
		"--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range", "10.96.0.0/24",
		"--authorization-mode", "RBAC",
		"--enable-priority-and-fairness=false", "--profiling=false",
	)
	adminKC := c.kubeconfig(t, "admin", "admin", "system:masters")
	c.admin, err = clientcmd.BuildConfigFromFlags("", adminKC)
	if err != nil {
		t.Fatal(err)
	}
	c.client = kubernetes.NewForConfigOrDie(c.admin)
	waitFor(t, "kube-apiserver /readyz", func() bool {
		b, err := c.client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(context.Background())
		return err == nil && string(b) == "ok"
	})
	// The controllers act with their own identity in a real cluster; here
	// one admin identity is enough.
	kcmKC := c.kubeconfig(t, "kcm", "system:kube-controller-manager", "system:masters")
	start(t, dir, "kube-controller-manager", kcm,
		"--kubeconfig", kcmKC, "--authentication-kubeconfig", kcmKC, "--authorization-kubeconfig", kcmKC,
		"--controllers", "deployment,replicaset,serviceaccount",
		"--leader-elect=false", "--secure-port=0", "--use-service-account-credentials=false",
	)
	return c
}

// tlsClient trusts the cluster CA (for the webhook's own endpoints, whose
// CA is the webhook's).
func tlsClient(caPEM []byte) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}
