package azure

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/jwe"
)

// KMS unwraps the content keys of jwe: references with Key Vault RSA keys
// (azure-kv://VAULT.vault.azure.net/keys/NAME/VERSION) through unwrapKey,
// with the store's credential chain, transport and retry policy.
type KMS struct {
	st *store

	mu      sync.Mutex
	clients map[string]*azkeys.Client // by vault URL
}

// OpenKMS opens the azure-kv key scheme. It does no network I/O.
func OpenKMS(_ context.Context, s provider.Settings) (*KMS, error) {
	st, err := newStore(s, http.DefaultTransport.(*http.Transport).Clone())
	if err != nil {
		return nil, err
	}
	return &KMS{st: st, clients: map[string]*azkeys.Client{}}, nil
}

// Close closes idle connections.
func (k *KMS) Close() { k.st.transport.CloseIdleConnections() }

// kvKey parses azure-kv://HOST/keys/NAME[/VERSION].
func kvKey(keyURI string) (vault, name, version string, err error) {
	u, perr := url.Parse("https://" + strings.TrimPrefix(keyURI, "azure-kv://"))
	parts := strings.Split(strings.TrimPrefix(u.Path, "/keys/"), "/")
	if perr != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || !strings.HasPrefix(u.Path, "/keys/") ||
		len(parts) > 2 || parts[0] == "" || !allAzureName(parts[0]) || len(parts) == 2 && !allAzureName(parts[1]) {
		return "", "", "", errors.New("not a Key Vault key (want azure-kv://VAULT.vault.azure.net/keys/NAME/VERSION)")
	}
	if len(parts) == 2 {
		version = parts[1]
	}
	return "https://" + strings.ToLower(u.Host), parts[0], version, nil
}

func allAzureName(s string) bool {
	return s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") == ""
}

func (k *KMS) client(vault string) (*azkeys.Client, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if c := k.clients[vault]; c != nil {
		return c, nil
	}
	c, err := azkeys.NewClient(vault, k.st.cred, &azkeys.ClientOptions{ClientOptions: k.st.options})
	if err != nil {
		return nil, fmt.Errorf("vault %s: %w", vault, err)
	}
	k.clients[vault] = c
	return c, nil
}

// Unwrap unwraps a content key with the Key Vault key.
func (k *KMS) Unwrap(ctx context.Context, keyURI, alg string, wrapped []byte) ([]byte, error) {
	vault, name, version, err := kvKey(keyURI)
	if err != nil {
		return nil, err
	}
	c, err := k.client(vault)
	if err != nil {
		return nil, err
	}
	a := azkeys.EncryptionAlgorithm(alg)
	var raw *http.Response
	resp, err := c.UnwrapKey(policy.WithCaptureResponse(ctx, &raw), name, version, azkeys.KeyOperationParameters{Algorithm: &a, Value: wrapped}, nil)
	if err != nil {
		return nil, keyError(ctx, err, raw, vault, "unwrapKey", `"Unwrap Key" key permission (access policy) or the "Key Vault Crypto User" role (Azure RBAC)`)
	}
	return resp.Result, nil
}

// PublicKey fetches the key and checks that it is an RSA key that may
// unwrap keys. The URI it returns names the version it fetched.
func (k *KMS) PublicKey(ctx context.Context, keyURI string) (jwe.Public, error) {
	vault, name, version, err := kvKey(keyURI)
	if err != nil {
		return jwe.Public{}, err
	}
	c, err := k.client(vault)
	if err != nil {
		return jwe.Public{}, err
	}
	var raw *http.Response
	resp, err := c.GetKey(policy.WithCaptureResponse(ctx, &raw), name, version, nil)
	if err != nil {
		return jwe.Public{}, keyError(ctx, err, raw, vault, "get", `"Get" key permission (access policy) or the "Key Vault Crypto User" role (Azure RBAC)`)
	}
	jk := resp.Key
	if jk == nil || jk.Kty == nil || !strings.HasPrefix(string(*jk.Kty), "RSA") || len(jk.N) == 0 || len(jk.E) == 0 {
		return jwe.Public{}, errors.New("the key is not an RSA key")
	}
	if !slices.ContainsFunc(jk.KeyOps, func(o *azkeys.KeyOperation) bool { return o != nil && *o == azkeys.KeyOperationUnwrapKey }) {
		return jwe.Public{}, errors.New("the key's operations do not include unwrapKey")
	}
	e := new(big.Int).SetBytes(jk.E)
	if !e.IsInt64() || e.Int64() > 1<<31-1 {
		return jwe.Public{}, errors.New("the key's exponent is not usable")
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(jk.N), E: int(e.Int64())}
	uri := keyURI
	if jk.KID != nil && jk.KID.Version() != "" {
		uri = "azure-kv://" + strings.TrimPrefix(vault, "https://") + "/keys/" + name + "/" + jk.KID.Version()
	}
	return jwe.Public{Key: pub, Algorithms: []string{jwe.RSAOAEP256, jwe.RSAOAEP}, KeyURI: uri}, nil
}

// keyError explains a failed key operation, naming the permission.
func keyError(ctx context.Context, err error, raw *http.Response, vault, op, permission string) error {
	var re *azcore.ResponseError
	if ctx.Err() == nil && errors.As(err, &re) {
		switch re.StatusCode {
		case http.StatusForbidden:
			if inner := innerCode(re.RawResponse); inner == "ForbiddenByFirewall" {
				return fmt.Errorf("access denied by the network rules of %s (firewall or private endpoint)", vault)
			}
			if op == "unwrapKey" {
				return fmt.Errorf("access denied: the identity needs the %s on the key (or the key does not permit unwrapKey)", permission)
			}
			return fmt.Errorf("access denied: the identity needs the %s on the key", permission)
		case http.StatusNotFound:
			return fmt.Errorf("the key does not exist in %s", vault)
		case http.StatusBadRequest:
			if op == "unwrapKey" {
				return errors.New("the key cannot unwrap the JWE's content key: the JWE was encrypted to another key (or its encrypted key was altered)")
			}
		}
	}
	return describe(ctx, err, raw, vault, "")
}
