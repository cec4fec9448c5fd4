// Package jwe is the store of jwe: references (SPEC §9): values that are a
// JWE encrypted to an RSA key whose private half stays in a KMS. Only the
// wrapped content key goes to the KMS; the payload is decrypted here. It
// also holds `secrets-init encrypt`, which makes such values.
//
// Each KMS is registered for its key URI scheme by main, behind its
// store's build tag; file: (a local private key) is always there.
package jwe

import (
	"context"
	"crypto/rsa"
	"fmt"
	"strings"
	"sync"

	"github.com/secrets-init/secrets-init/provider"
)

// The algorithms a JWE may use (SPEC §9); everything else is refused.
const (
	RSAOAEP256 = "RSA-OAEP-256" // RSAES-OAEP with SHA-256 and MGF1-SHA-256
	RSAOAEP    = "RSA-OAEP"     // RSAES-OAEP with SHA-1, for keys that only do SHA-1
)

// A KMS holds private keys named by key URIs of one scheme.
type KMS interface {
	// Unwrap decrypts a wrapped content key with the key keyURI names,
	// using alg (RSAOAEP256 or RSAOAEP). Its errors name no key material
	// and say which permission a denied call needs.
	Unwrap(ctx context.Context, keyURI, alg string, wrapped []byte) ([]byte, error)
	// PublicKey fetches the public half of keyURI and checks that it is an
	// RSA key for decryption.
	PublicKey(ctx context.Context, keyURI string) (Public, error)
}

// Public is a KMS key's public half.
type Public struct {
	Key        *rsa.PublicKey
	Algorithms []string // the JWE key algorithms it accepts, the preferred first
	// KeyURI names the key for decryption: the URI asked for, or one that
	// pins the version it resolved to (for the kid).
	KeyURI string
}

// An Opener creates the KMS client of one scheme. It is called only when a
// reference or `encrypt` needs that scheme.
type Opener func(ctx context.Context, s provider.Settings) (KMS, error)

var registry = struct {
	sync.Mutex
	m map[string]Opener
}{m: map[string]Opener{"file": openFileKMS}}

// Register makes a KMS available for the key URIs of scheme ("aws-kms",
// "gcp-kms", "azure-kv", "hcvault").
func Register(scheme string, open Opener) {
	registry.Lock()
	defer registry.Unlock()
	registry.m[scheme] = open
}

// buildTags names the build tag that leaves each scheme out.
var buildTags = map[string]string{"aws-kms": "no_aws", "gcp-kms": "no_gcp", "azure-kv": "no_azure", "hcvault": "no_vault"}

// scheme returns the scheme of a key URI: what precedes "://" or ":".
func scheme(keyURI string) string {
	s, _, _ := strings.Cut(keyURI, ":")
	return s
}

// openers opens the KMS of each scheme at most once.
type openers struct {
	settings provider.Settings
	mu       sync.Mutex
	open     map[string]*openResult
}

type openResult struct {
	once sync.Once
	kms  KMS
	err  error
}

func newOpeners(s provider.Settings) *openers {
	return &openers{settings: s, open: map[string]*openResult{}}
}

// get returns the KMS for keyURI's scheme, opening it the first time.
func (o *openers) get(ctx context.Context, keyURI string) (KMS, error) {
	sch := scheme(keyURI)
	o.mu.Lock()
	r, ok := o.open[sch]
	if !ok {
		r = &openResult{}
		o.open[sch] = r
	}
	o.mu.Unlock()
	r.once.Do(func() {
		registry.Lock()
		open := registry.m[sch]
		registry.Unlock()
		if open == nil {
			if tag, known := buildTags[sch]; known {
				r.err = fmt.Errorf("this binary was built without the %s key scheme (build tag %s)", sch, tag)
			} else {
				r.err = fmt.Errorf("unknown key scheme %q (want one of %s)", sch, strings.Join(provider.KeySchemes, " "))
			}
			return
		}
		r.kms, r.err = open(ctx, o.settings)
	})
	return r.kms, r.err
}

// PublicKey fetches and checks the public key keyURI names, through the
// KMS registered for its scheme (for `encrypt`).
func PublicKey(ctx context.Context, s provider.Settings, keyURI string) (Public, error) {
	o := newOpeners(s)
	defer o.close()
	kms, err := o.get(ctx, keyURI)
	if err != nil {
		return Public{}, err
	}
	p, err := kms.PublicKey(ctx, keyURI)
	if err == nil && p.KeyURI == "" {
		p.KeyURI = keyURI
	}
	return p, err
}

// close closes the KMS clients that have a Close method (their idle
// connections), once a Fetch is done with them.
func (o *openers) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, r := range o.open {
		if c, ok := r.kms.(interface{ Close() }); ok && r.err == nil {
			c.Close()
		}
	}
}
