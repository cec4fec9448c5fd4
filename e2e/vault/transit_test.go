package vault_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/helper/keysutil"
	"github.com/hashicorp/vault/sdk/logical"
)

// encrypt runs `secrets-init encrypt --key KEYURI` on stdin with the root
// token, and returns the jwe: reference.
func (s *server) encrypt(t *testing.T, keyURI, plain string, extra ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"encrypt", "--key", keyURI}, extra...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "VAULT_ADDR=" + s.proxy, "VAULT_TOKEN=" + s.root.Token()}
	cmd.Stdin = strings.NewReader(plain)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	if strings.Contains(stderr.String(), canary) {
		t.Errorf("stderr holds the value:\n%s", stderr.String())
	}
	return strings.TrimSpace(stdout.String()), stderr.String(), cmd.ProcessState.ExitCode()
}

// TestTransit decrypts jwe: values with Vault transit RSA keys (hcvault://)
// in a real Vault: encrypt reads the public key (and pins the latest
// version in the kid), the run decrypts the content key with transit's
// decrypt under a token that may do only that.
func TestTransit(t *testing.T) {
	s := newServer(t)
	if err := s.root.Sys().Mount("transit", &api.MountInput{Type: "transit"}); err != nil {
		t.Fatal(err)
	}
	s.write(t, "transit/keys/app", map[string]any{"type": "rsa-2048"})
	s.write(t, "transit/keys/app/rotate", nil)
	s.write(t, "transit/keys/other", map[string]any{"type": "rsa-2048"})
	if err := s.root.Sys().PutPolicy("decrypt-app", `path "transit/decrypt/app" { capabilities = ["update"] }`); err != nil {
		t.Fatal(err)
	}
	token := func(policies ...string) string {
		sec, err := s.root.Auth().Token().Create(&api.TokenCreateRequest{Policies: policies})
		if err != nil {
			t.Fatal(err)
		}
		return sec.Auth.ClientToken
	}
	decryptOnly, nothing := token("decrypt-app"), token("default")

	ref, stderr, code := s.encrypt(t, "hcvault://transit/keys/app", `{"user":"app","password":"`+canary+`"}`)
	if code != 0 {
		t.Fatalf("encrypt: exit %d: %s", code, stderr)
	}
	hdr, _ := base64.RawURLEncoding.DecodeString(strings.Split(strings.TrimPrefix(ref, "jwe:"), ".")[0])
	if !strings.Contains(string(hdr), `"kid":"hcvault://transit/keys/app/versions/2"`) {
		t.Errorf("the kid does not pin the latest version: %s", hdr)
	}
	old, stderr, code := s.encrypt(t, "hcvault://transit/keys/app/versions/1", canary+"-v1", "--json")
	if code != 0 {
		t.Fatalf("encrypt to version 1: exit %d: %s", code, stderr)
	}
	s.requests()

	r := s.run(t, map[string]string{"VAULT_TOKEN": decryptOnly, "PASSWORD": ref + "#password", "USER": ref + "#user", "OLD": old})
	r.ok(t, map[string]string{"PASSWORD": canary, "USER": "app", "OLD": canary + "-v1"})
	if _, leaked := r.env["VAULT_TOKEN"]; leaked {
		t.Error("the child got VAULT_TOKEN")
	}
	if n := count(s.requests(), "PUT", "/v1/transit/decrypt/app"); n != 2 {
		t.Errorf("%d transit decrypt calls, want 2 (one per distinct wrapped key)", n)
	}

	r = s.run(t, map[string]string{"VAULT_TOKEN": nothing, "A": ref})
	r.failed(t, "A", `key hcvault://transit/keys/app/versions/2: permission denied: the Vault token needs the "update" capability on transit/decrypt/app`)
	r = s.run(t, map[string]string{"VAULT_TOKEN": s.root.Token(), "A": ref + "?key=hcvault://transit/keys/other/versions/1"})
	r.failed(t, "A", "key hcvault://transit/keys/other/versions/1: the key cannot unwrap the JWE's content key: the JWE was encrypted to another key")
	r = s.run(t, map[string]string{"VAULT_TOKEN": s.root.Token(), "A": ref + "?key=hcvault://transit/keys/app"})
	r.failed(t, "A", "the key URI names no version")

	_, stderr, code = s.encrypt(t, "hcvault://transit/keys/missing", canary)
	if code != 1 || !strings.Contains(stderr, "transit/keys/missing") {
		t.Errorf("encrypt to a missing key: exit %d: %s", code, stderr)
	}
}

// transitFactory is a transit secrets engine for RSA keys: its paths
// keys/NAME (create, read), keys/NAME/rotate and decrypt/NAME over
// keysutil, the key-policy code Vault's transit runs. (The transit builtin
// of github.com/hashicorp/vault v1.21.4 needs a newer sdk than the v0.20.0
// this module must pin; the Vault core around it — routing, tokens, ACL
// policies — is the real one.)
func transitFactory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	lm, err := keysutil.NewLockManager(true, 0)
	if err != nil {
		return nil, err
	}
	b := &framework.Backend{BackendType: logical.TypeLogical}
	policy := func(ctx context.Context, req *logical.Request, name string, upsert bool) (*keysutil.Policy, error) {
		p, _, err := lm.GetPolicy(ctx, keysutil.PolicyRequest{Storage: req.Storage, Name: name, KeyType: keysutil.KeyType_RSA2048, Upsert: upsert}, rand.Reader)
		if err != nil || p == nil {
			return nil, err
		}
		p.Lock(upsert)
		return p, nil
	}
	name := map[string]*framework.FieldSchema{"name": {Type: framework.TypeString}, "type": {Type: framework.TypeString}, "ciphertext": {Type: framework.TypeString}}
	b.Paths = []*framework.Path{{
		Pattern: "keys/" + framework.GenericNameRegex("name") + "/rotate",
		Fields:  name,
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{Callback: func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
				p, err := policy(ctx, req, d.Get("name").(string), false)
				if err != nil || p == nil {
					return logical.ErrorResponse("no such key"), err
				}
				defer p.Unlock()
				return nil, p.Rotate(ctx, req.Storage, rand.Reader)
			}},
		},
	}, {
		Pattern: "keys/" + framework.GenericNameRegex("name"),
		Fields:  name,
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{Callback: func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
				if typ := d.Get("type").(string); typ != "rsa-2048" {
					return logical.ErrorResponse("this stand-in makes rsa-2048 keys only, not %q", typ), nil
				}
				p, err := policy(ctx, req, d.Get("name").(string), true)
				if err != nil {
					return nil, err
				}
				p.Unlock()
				return nil, nil
			}},
			logical.ReadOperation: &framework.PathOperation{Callback: func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
				p, err := policy(ctx, req, d.Get("name").(string), false)
				if err != nil || p == nil {
					return nil, err
				}
				defer p.Unlock()
				keys := map[string]any{}
				for v, k := range p.Keys {
					der, err := x509.MarshalPKIXPublicKey(&k.RSAKey.PublicKey)
					if err != nil {
						return nil, err
					}
					keys[v] = map[string]any{"public_key": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}
				}
				return &logical.Response{Data: map[string]any{
					"name": p.Name, "type": p.Type.String(), "latest_version": p.LatestVersion,
					"supports_encryption": p.Type.EncryptionSupported(), "supports_decryption": p.Type.DecryptionSupported(), "keys": keys,
				}}, nil
			}},
		},
	}, {
		Pattern: "decrypt/" + framework.GenericNameRegex("name"),
		Fields:  name,
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{Callback: func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
				p, err := policy(ctx, req, d.Get("name").(string), false)
				if err != nil {
					return nil, err
				}
				if p == nil {
					return logical.ErrorResponse("encryption key not found"), logical.ErrInvalidRequest
				}
				defer p.Unlock()
				plain, err := p.Decrypt(nil, nil, d.Get("ciphertext").(string))
				if err != nil {
					return logical.ErrorResponse("failed to decrypt the ciphertext: %v", err), logical.ErrInvalidRequest
				}
				return &logical.Response{Data: map[string]any{"plaintext": plain}}, nil
			}},
		},
	}}
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}
