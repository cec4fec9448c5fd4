package vault

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/hashicorp/vault/api"

	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/jwe"
)

// KMS unwraps the content keys of jwe: references with Vault transit RSA
// keys (hcvault://MOUNT/keys/NAME/versions/N): transit's decrypt, which is
// RSA-OAEP with SHA-256. It configures its client and logs in as the
// vault: store does (VAULT_ADDR, VAULT_TOKEN, VAULT_AUTH_METHOD, …), once,
// on the first call.
type KMS struct {
	st *store

	once  sync.Once
	err   error
	token bool // logged in: revoke on Close under VAULT_REVOKE_TOKEN
}

// OpenKMS opens the hcvault key scheme. It does no network I/O.
func OpenKMS(ctx context.Context, s provider.Settings) (*KMS, error) {
	p, err := Open(ctx, s)
	if err != nil {
		return nil, err
	}
	return &KMS{st: p.(*store)}, nil
}

func (k *KMS) login(ctx context.Context) error {
	k.once.Do(func() {
		k.err = k.st.authenticate(ctx)
		k.token = k.err == nil
	})
	return k.err
}

// Close revokes the token under VAULT_REVOKE_TOKEN, and closes idle
// connections.
func (k *KMS) Close() {
	if k.token && k.st.revoke {
		if err := k.st.client.Auth().Token().RevokeSelfWithContext(context.Background(), ""); err != nil && k.st.s.Log != nil {
			k.st.s.Log.Warn("vault: could not revoke the token (VAULT_REVOKE_TOKEN)", "reason", describe(k.st.client, err, "auth/token/revoke-self", "update"))
		}
	}
	k.st.http.CloseIdleConnections()
}

// transitKey parses hcvault://MOUNT/keys/NAME[/versions/N], from the end:
// MOUNT may have several segments, and a key may be named keys.
func transitKey(keyURI string) (mount, name, version string, err error) {
	bad := errors.New("not a Vault transit key (want hcvault://MOUNT/keys/NAME/versions/N)")
	p := strings.TrimPrefix(keyURI, "hcvault://")
	if i := strings.LastIndex(p, "/versions/"); i >= 0 {
		v := p[i+len("/versions/"):]
		if n, err := strconv.Atoi(v); err != nil || n < 1 || strconv.Itoa(n) != v {
			return "", "", "", bad
		}
		p, version = p[:i], v
	}
	j := strings.LastIndex(p, "/")
	if j < 0 {
		return "", "", "", bad
	}
	mount, ok := strings.CutSuffix(p[:j], "/keys")
	name = p[j+1:]
	if !ok || mount == "" || name == "" || strings.HasPrefix(mount, "/") || strings.Contains(mount, "//") || strings.ContainsAny(p, "?#") {
		return "", "", "", bad
	}
	return mount, name, version, nil
}

// Unwrap decrypts a wrapped content key with transit's decrypt.
func (k *KMS) Unwrap(ctx context.Context, keyURI, alg string, wrapped []byte) ([]byte, error) {
	mount, name, version, err := transitKey(keyURI)
	if err != nil {
		return nil, err
	}
	if version == "" {
		return nil, errors.New("the key URI names no version (want hcvault://MOUNT/keys/NAME/versions/N); encrypt records it")
	}
	if alg != jwe.RSAOAEP256 {
		return nil, fmt.Errorf("Vault transit RSA keys decrypt RSA-OAEP-256 only, not %s", alg)
	}
	if err := k.login(ctx); err != nil {
		return nil, err
	}
	path := mount + "/decrypt/" + name
	body := map[string]any{"ciphertext": "vault:v" + version + ":" + base64.StdEncoding.EncodeToString(wrapped)}
	var secret *api.Secret
	err = provider.Retry(ctx, func() (err error) {
		secret, err = k.st.client.Logical().WriteWithContext(ctx, path, body)
		return err
	}, func(err error) provider.Class {
		if cannotUnwrap(err) {
			return provider.Permanent
		}
		return class(err)
	})
	if err != nil {
		if cannotUnwrap(err) {
			return nil, errors.New("the key cannot unwrap the JWE's content key: the JWE was encrypted to another key (or its encrypted key was altered)")
		}
		return nil, describe(k.st.client, err, path, "update")
	}
	s, _ := secret.Data["plaintext"].(string)
	cek, derr := base64.StdEncoding.DecodeString(s)
	if secret == nil || derr != nil || s == "" {
		return nil, fmt.Errorf("the answer from %s has no plaintext", path)
	}
	return cek, nil
}

// PublicKey reads the transit key and checks that it is an RSA key that
// decrypts; the URI it returns names the version it took (the latest when
// the URI names none).
func (k *KMS) PublicKey(ctx context.Context, keyURI string) (jwe.Public, error) {
	mount, name, version, err := transitKey(keyURI)
	if err != nil {
		return jwe.Public{}, err
	}
	if err := k.login(ctx); err != nil {
		return jwe.Public{}, err
	}
	path := mount + "/keys/" + name
	var secret *api.Secret
	err = retry(ctx, func() (err error) {
		secret, err = k.st.client.Logical().ReadWithContext(ctx, path)
		return err
	})
	if err != nil {
		return jwe.Public{}, describe(k.st.client, err, path, "read")
	}
	if secret == nil {
		return jwe.Public{}, fmt.Errorf("the transit key %s does not exist", path)
	}
	typ, _ := secret.Data["type"].(string)
	if !strings.HasPrefix(typ, "rsa-") {
		return jwe.Public{}, fmt.Errorf("the transit key is of type %q, not rsa-2048/3072/4096", typ)
	}
	if ok, _ := secret.Data["supports_decryption"].(bool); !ok {
		return jwe.Public{}, errors.New("the transit key does not support decryption")
	}
	if version == "" {
		n, _ := secret.Data["latest_version"].(json.Number)
		version = n.String()
	}
	keys, _ := secret.Data["keys"].(map[string]any)
	kv, _ := keys[version].(map[string]any)
	pemText, _ := kv["public_key"].(string)
	block, _ := pem.Decode([]byte(pemText))
	if block == nil {
		return jwe.Public{}, fmt.Errorf("the transit key has no public key for version %s", version)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	rsaPub, ok := pub.(*rsa.PublicKey)
	if err != nil || !ok {
		return jwe.Public{}, errors.New("the transit key's public key is not an RSA key")
	}
	return jwe.Public{Key: rsaPub, Algorithms: []string{jwe.RSAOAEP256}, KeyURI: "hcvault://" + mount + "/keys/" + name + "/versions/" + version}, nil
}

// cannotUnwrap tells whether transit refused to decrypt the wrapped key
// with this key: a 400 for a key of the wrong kind, and a 500 "failed to
// RSA decrypt the ciphertext" for an RSA key the JWE was not encrypted to
// (transit labels the OAEP failure an internal error). Retrying either
// cannot help.
func cannotUnwrap(err error) bool {
	var re *api.ResponseError
	if !errors.As(err, &re) {
		return false
	}
	switch re.StatusCode {
	case http.StatusBadRequest:
		return vaultSaid(re, "decrypt")
	case http.StatusInternalServerError:
		return vaultSaid(re, "failed to RSA decrypt")
	}
	return false
}
