package vault

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/jwe"
)

func TestTransitKey(t *testing.T) {
	for in, want := range map[string][3]string{
		"hcvault://transit/keys/app/versions/3":      {"transit", "app", "3"},
		"hcvault://team/a/transit/keys/app":          {"team/a/transit", "app", ""},
		"hcvault://keys/keys/keys/versions/1":        {"keys", "keys", "1"},
		"hcvault://transit/keys/app-2_x/versions/12": {"transit", "app-2_x", "12"},
	} {
		m, n, v, err := transitKey(in)
		if err != nil || [3]string{m, n, v} != want {
			t.Errorf("transitKey(%q) = %q %q %q, %v; want %q", in, m, n, v, err, want)
		}
	}
	for _, in := range []string{"hcvault://", "hcvault://keys/app", "hcvault:///keys/app", "hcvault://transit/keys/",
		"hcvault://transit/keys/a/b", "hcvault://transit/keys/app/versions/0", "hcvault://transit/keys/app/versions/01",
		"hcvault://transit/keys/app/versions/x", "hcvault://a//b/keys/app"} {
		if _, _, _, err := transitKey(in); err == nil {
			t.Errorf("transitKey(%q) is not an error", in)
		}
	}
}

// TestTransitOverHTTP speaks transit's JSON to a stand-in that decrypts as
// transit does (RSA-OAEP with SHA-256) and checks the token; the real
// Vault's transit engine is exercised by e2e/vault.
func TestTransitOverHTTP(t *testing.T) {
	b, err := os.ReadFile("../jwe/testdata/key.pem")
	if err != nil {
		t.Fatal(err)
	}
	k, err := jwe.ParseKey(b)
	if err != nil {
		t.Fatal(err)
	}
	priv := k.(*rsa.PrivateKey)
	der, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	pubPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Vault-Token") != "t0ken" {
			w.WriteHeader(http.StatusForbidden)
			json.NewEncoder(w).Encode(map[string]any{"errors": []string{"permission denied"}})
			return
		}
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/v1/transit/keys/app":
			json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{
				"type": "rsa-2048", "supports_decryption": true, "latest_version": 2,
				"keys": map[string]any{"2": map[string]any{"public_key": pubPEM}},
			}})
		case r.Method == http.MethodPut && r.URL.Path == "/v1/transit/decrypt/app":
			var in struct{ Ciphertext string }
			json.NewDecoder(r.Body).Decode(&in)
			ct, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(in.Ciphertext, "vault:v2:"))
			plain, err := rsa.DecryptOAEP(sha256.New(), nil, priv, ct, nil)
			if err != nil || !strings.HasPrefix(in.Ciphertext, "vault:v2:") {
				// As Vault's transit answers: an internal error.
				w.WriteHeader(http.StatusInternalServerError)
				json.NewEncoder(w).Encode(map[string]any{"errors": []string{"failed to RSA decrypt the ciphertext: crypto/rsa: decryption error"}})
				return
			}
			json.NewEncoder(w).Encode(map[string]any{"data": map[string]any{"plaintext": base64.StdEncoding.EncodeToString(plain)}})
		default:
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(map[string]any{"errors": []string{}})
		}
	}))
	defer srv.Close()
	for _, kv := range [][2]string{{"VAULT_ADDR", srv.URL}, {"VAULT_TOKEN", "t0ken"}} {
		t.Setenv(kv[0], kv[1])
	}
	ctx := context.Background()
	kms, err := OpenKMS(ctx, provider.Settings{Limit: provider.NewLimiter(1)})
	if err != nil {
		t.Fatal(err)
	}
	defer kms.Close()
	pub, err := kms.PublicKey(ctx, "hcvault://transit/keys/app")
	if err != nil || pub.KeyURI != "hcvault://transit/keys/app/versions/2" || pub.Key.N.Cmp(priv.N) != 0 || pub.Algorithms[0] != jwe.RSAOAEP256 {
		t.Fatalf("PublicKey = %+v, %v", pub, err)
	}
	cek := []byte("0123456789abcdef0123456789abcdef")
	wrapped, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, &priv.PublicKey, cek, nil)
	got, err := kms.Unwrap(ctx, pub.KeyURI, jwe.RSAOAEP256, wrapped)
	if err != nil || string(got) != string(cek) {
		t.Errorf("Unwrap = %q, %v", got, err)
	}
	wrapped[0] ^= 1
	// Refused for good at the first answer: a retry would run into the
	// deadline and say so instead.
	bounded, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := kms.Unwrap(bounded, pub.KeyURI, jwe.RSAOAEP256, wrapped); err == nil || !strings.Contains(err.Error(), "the JWE was encrypted to another key") {
		t.Errorf("Unwrap of a corrupted key: %v", err)
	}
	if _, err := kms.Unwrap(ctx, pub.KeyURI, jwe.RSAOAEP, wrapped); err == nil || !strings.Contains(err.Error(), "RSA-OAEP-256 only") {
		t.Errorf("Unwrap with RSA-OAEP: %v", err)
	}
	if _, err := kms.Unwrap(ctx, "hcvault://transit/keys/other/versions/1", jwe.RSAOAEP256, wrapped); err == nil || !strings.Contains(err.Error(), "not found at transit/decrypt/other") {
		t.Errorf("Unwrap with a missing key: %v", err)
	}
}
