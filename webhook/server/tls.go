package server

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"sync"
	"time"
)

// CertFiles serves the certificate of a cert/key file pair and reloads it
// when either file changes (cert-manager renews a Secret volume by swapping
// a symlink). A pair that fails to load keeps the previous certificate.
type CertFiles struct {
	Cert, Key string
	Log       *slog.Logger
	Metrics   *Metrics

	mu    sync.Mutex
	stamp string
	cert  *tls.Certificate
}

func fileStamp(paths ...string) (string, error) {
	var b bytes.Buffer
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%s %d %d;", p, fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String(), nil
}

// Load reads the pair if it changed since the last load.
func (c *CertFiles) Load() (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	stamp, err := fileStamp(c.Cert, c.Key)
	if err == nil && stamp == c.stamp && c.cert != nil {
		return c.cert, nil
	}
	if err == nil {
		var cert tls.Certificate
		cert, err = tls.LoadX509KeyPair(c.Cert, c.Key)
		if err == nil {
			c.cert, c.stamp = &cert, stamp
			c.Metrics.Add("secrets_init_webhook_tls_reloads_total", "")
			if c.Log != nil {
				c.Log.Info("serving certificate loaded", "cert", c.Cert)
			}
			return c.cert, nil
		}
	}
	if c.cert != nil {
		if c.Log != nil {
			c.Log.Warn("keeping the previous certificate", "error", err.Error())
		}
		return c.cert, nil
	}
	return nil, err
}

// GetCertificate is tls.Config's callback.
func (c *CertFiles) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) { return c.Load() }

// CA is a self-signed certificate authority, PEM-encoded.
type CA struct {
	CertPEM, KeyPEM []byte
}

// NewCA makes a CA valid for ten years.
func NewCA() (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "secrets-init-webhook CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &CA{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}),
	}, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

// Issue makes a serving certificate for names (DNS names or IP addresses),
// valid for a year.
func (ca *CA) Issue(names []string) (*tls.Certificate, error) {
	caPair, err := tls.X509KeyPair(ca.CertPEM, ca.KeyPEM)
	if err != nil {
		return nil, fmt.Errorf("the CA: %v", err)
	}
	caCert, err := x509.ParseCertificate(caPair.Certificate[0])
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, errors.New("no name to issue a certificate for")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caPair.PrivateKey)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
