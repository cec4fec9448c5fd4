package jwe

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"os"
	"strings"
	"sync"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/secrets-init/secrets-init/provider"
)

// minRSABits is the smallest RSA key accepted, for decryption and
// encryption alike.
const minRSABits = 2048

// fileKMS is the file: scheme: a PEM or JWK private key on disk, for
// development and tests.
type fileKMS struct {
	mu   sync.Mutex
	keys map[string]*rsa.PrivateKey
}

func openFileKMS(context.Context, provider.Settings) (KMS, error) {
	return &fileKMS{keys: map[string]*rsa.PrivateKey{}}, nil
}

// FilePath is the path a file: key URI names: file:PATH, or file:///PATH.
func FilePath(keyURI string) string {
	p := strings.TrimPrefix(keyURI, "file:")
	if strings.HasPrefix(p, "///") {
		p = p[2:]
	}
	return p
}

func (f *fileKMS) private(keyURI string) (*rsa.PrivateKey, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	path := FilePath(keyURI)
	if k, ok := f.keys[path]; ok {
		return k, nil
	}
	key, err := readKey(path)
	if err != nil {
		return nil, err
	}
	priv, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("the key file holds a public key; decryption needs the private key")
	}
	f.keys[path] = priv
	return priv, nil
}

func (f *fileKMS) Unwrap(_ context.Context, keyURI, alg string, wrapped []byte) ([]byte, error) {
	priv, err := f.private(keyURI)
	if err != nil {
		return nil, err
	}
	h, err := oaepHash(alg)
	if err != nil {
		return nil, err
	}
	cek, err := rsa.DecryptOAEP(h, nil, priv, wrapped, nil)
	if err != nil {
		return nil, errWrongKey
	}
	return cek, nil
}

func (f *fileKMS) PublicKey(_ context.Context, keyURI string) (Public, error) {
	key, err := readKey(FilePath(keyURI))
	if err != nil {
		return Public{}, err
	}
	pub, algs, err := publicOf(key)
	return Public{Key: pub, Algorithms: algs, KeyURI: keyURI}, err
}

// errWrongKey is what an unwrap that fails the OAEP check means.
var errWrongKey = errors.New("the key cannot unwrap the JWE's content key: the JWE was encrypted to another key (or its encrypted key was altered)")

func oaepHash(alg string) (hash.Hash, error) {
	switch alg {
	case RSAOAEP256:
		return sha256.New(), nil
	case RSAOAEP:
		return sha1.New(), nil
	}
	return nil, fmt.Errorf("key algorithm %q is refused", alg)
}

// publicOf returns the public half of an RSA key, and the algorithms it
// is used with (a key file fixes no hash: SHA-256 first).
func publicOf(key crypto.PublicKey) (*rsa.PublicKey, []string, error) {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return &k.PublicKey, []string{RSAOAEP256, RSAOAEP}, nil
	case *rsa.PublicKey:
		return k, []string{RSAOAEP256, RSAOAEP}, nil
	}
	return nil, nil, errors.New("the key is not an RSA key")
}

// readKey reads a PEM (PKCS #1, PKCS #8, PKIX or a certificate) or JWK
// RSA key. Its errors never quote the file.
func readKey(path string) (any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			if errors.Is(err, fs.ErrPermission) {
				return nil, fmt.Errorf("cannot read key file %s: permission denied (secrets-init needs read access to it)", path)
			}
			return nil, fmt.Errorf("cannot read key file %s: %v", path, pe.Err)
		}
		return nil, err
	}
	return ParseKey(b)
}

// ReadPublicKey reads the public half of an RSA key file (PEM or JWK),
// with the kid of a JWK when it is a key URI.
func ReadPublicKey(path string) (pub *rsa.PublicKey, algs []string, kid string, err error) {
	key, err := readKey(path)
	if err != nil {
		return nil, nil, "", err
	}
	pub, algs, err = publicOf(key)
	if err != nil {
		return nil, nil, "", err
	}
	b, _ := os.ReadFile(path)
	var jwk struct {
		Kid string `json:"kid"`
		Alg string `json:"alg"`
	}
	if json.Unmarshal(bytes.TrimSpace(b), &jwk) == nil {
		if provider.IsKeyURI(jwk.Kid) {
			kid = jwk.Kid
		}
		if jwk.Alg != "" {
			algs = []string{jwk.Alg}
		}
	}
	return pub, algs, kid, nil
}

// ParseKey reads an RSA key, private or public, from PEM or JWK bytes.
func ParseKey(b []byte) (any, error) {
	var key any
	if t := bytes.TrimSpace(b); bytes.HasPrefix(t, []byte("{")) {
		var jwk jose.JSONWebKey
		if jwk.UnmarshalJSON(t) != nil {
			return nil, errors.New("the key is not a valid JWK")
		}
		if jwk.Use != "" && jwk.Use != "enc" {
			return nil, fmt.Errorf("the JWK is for %q, not encryption (use=enc)", jwk.Use)
		}
		if jwk.Algorithm != "" && jwk.Algorithm != RSAOAEP256 && jwk.Algorithm != RSAOAEP {
			return nil, fmt.Errorf("the JWK is for algorithm %q, not RSA-OAEP-256 or RSA-OAEP", jwk.Algorithm)
		}
		key = jwk.Key
	} else {
		block, _ := pem.Decode(t)
		if block == nil {
			return nil, errors.New("the key is neither PEM nor a JWK")
		}
		var err error
		switch block.Type {
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			key, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var c *x509.Certificate
			if c, err = x509.ParseCertificate(block.Bytes); err == nil {
				key = c.PublicKey
			}
		default:
			return nil, fmt.Errorf("unsupported PEM block %q", block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("the PEM %s does not parse", block.Type)
		}
	}
	var n int
	switch k := key.(type) {
	case *rsa.PrivateKey:
		n = k.N.BitLen()
	case *rsa.PublicKey:
		n = k.N.BitLen()
	default:
		return nil, fmt.Errorf("the key is a %T, not an RSA key", key)
	}
	if n < minRSABits {
		return nil, fmt.Errorf("the RSA key has %d bits; at least %d are needed", n, minRSABits)
	}
	return key, nil
}
