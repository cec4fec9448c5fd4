package vaultengines_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

// header is the protected header of a compact or flattened-JSON jwe:
// reference.
func header(t *testing.T, ref string) map[string]any {
	t.Helper()
	v := strings.TrimPrefix(ref, "jwe:")
	var protected string
	if strings.HasPrefix(v, "{") {
		var flat struct{ Protected string }
		if err := json.Unmarshal([]byte(v), &flat); err != nil {
			t.Fatalf("not a flattened JWE: %v", err)
		}
		protected = flat.Protected
	} else {
		protected, _, _ = strings.Cut(v, ".")
	}
	raw, err := base64.RawURLEncoding.DecodeString(protected)
	var h map[string]any
	if err == nil {
		err = json.Unmarshal(raw, &h)
	}
	if err != nil {
		t.Fatalf("the JWE's protected header: %v", err)
	}
	return h
}

// TestTransit decrypts jwe: values with RSA keys of Vault's transit engine
// (hcvault://): encrypt reads the public key (transit/keys/NAME) and pins
// the version in the kid; the run sends the wrapped content key to
// transit/decrypt/NAME under a token that may do only that.
func TestTransit(t *testing.T) {
	s := newServer(t)
	s.write(t, "transit/keys/app", map[string]any{"type": "rsa-2048"})
	s.write(t, "transit/keys/app/rotate", nil)
	s.write(t, "transit/keys/big", map[string]any{"type": "rsa-3072"})
	s.write(t, "transit/keys/sym", nil) // aes256-gcm96, transit's default
	decryptApp := s.token(t, "decrypt-app", `path "transit/decrypt/app" { capabilities = ["update"] }
path "transit/decrypt/big" { capabilities = ["update"] }`)

	ref, stderr, code := s.encrypt(t, "hcvault://transit/keys/app", `{"user":"app","password":"`+canary+`"}`)
	if code != 0 {
		t.Fatalf("encrypt: exit %d: %s", code, stderr)
	}
	if h := header(t, ref); h["kid"] != "hcvault://transit/keys/app/versions/2" || h["alg"] != "RSA-OAEP-256" {
		t.Errorf("the header does not pin the latest version with RSA-OAEP-256: %v", h)
	}
	old, stderr, code := s.encrypt(t, "hcvault://transit/keys/app/versions/1", canary+"-v1", "--json")
	if code != 0 {
		t.Fatalf("encrypt to version 1: exit %d: %s", code, stderr)
	}
	if h := header(t, old); h["kid"] != "hcvault://transit/keys/app/versions/1" {
		t.Errorf("the flattened JWE's kid is %v, want version 1", h["kid"])
	}
	big, stderr, code := s.encrypt(t, "hcvault://transit/keys/big", canary+"-3072")
	if code != 0 {
		t.Fatalf("encrypt to a 3072-bit key: exit %d: %s", code, stderr)
	}

	t.Run("Decrypt", func(t *testing.T) {
		s.requests()
		r := s.run(t, map[string]string{"VAULT_TOKEN": decryptApp, "PASSWORD": ref + "#password", "USER": ref + "#user", "OLD": old, "BIG": big})
		r.ok(t, map[string]string{"PASSWORD": canary, "USER": "app", "OLD": canary + "-v1", "BIG": canary + "-3072"})
		if _, leaked := r.env["VAULT_TOKEN"]; leaked {
			t.Error("the child got VAULT_TOKEN")
		}
		reqs := s.requests()
		// PASSWORD and USER share one wrapped key: one call for it, one for OLD.
		if n := count(reqs, "PUT", "/v1/transit/decrypt/app"); n != 2 {
			t.Errorf("%d decrypt calls on app, want 2 (one per distinct wrapped key): %v", n, reqs)
		}
		if n := count(reqs, "PUT", "/v1/transit/decrypt/big"); n != 1 {
			t.Errorf("%d decrypt calls on big, want 1", n)
		}
		if n := len(reqs) - 3; n != 0 {
			t.Errorf("%d requests besides the decrypt calls: %v", n, reqs)
		}
	})

	t.Run("Denied", func(t *testing.T) {
		// A policy that may read the key and its decrypt path, but not
		// update (what transit's decrypt needs).
		readOnly := s.token(t, "read-app", `path "transit/keys/app" { capabilities = ["read"] }
path "transit/decrypt/app" { capabilities = ["read", "list"] }`)
		s.run(t, map[string]string{"VAULT_TOKEN": readOnly, "A": ref + "#password", "B": "plain"}).failed(t, "A",
			`key hcvault://transit/keys/app/versions/2: permission denied: the Vault token needs the "update" capability on transit/decrypt/app`)
		// A token that may decrypt big only: app's variable fails, naming
		// its key, and nothing runs.
		r := s.run(t, map[string]string{"VAULT_TOKEN": s.token(t, "big-only", `path "transit/decrypt/big" { capabilities = ["update"] }`), "A": old, "BIG": big})
		r.failed(t, "A", "hcvault://transit/keys/app/versions/1", "permission denied", "transit/decrypt/app")
	})

	// Transit answers a ciphertext its key cannot decrypt with HTTP 500
	// ("failed to RSA decrypt the ciphertext", an internal error in
	// keysutil); secrets-init reads it as the key refusing the JWE, fails
	// at once and does not retry it as a server fault.
	unwrapFails := func(t *testing.T, jwe, key string) {
		t.Helper()
		r := s.run(t, map[string]string{"VAULT_TOKEN": s.root.Token(), "A": jwe})
		r.failed(t, "A", "key "+key+": ", "the key cannot unwrap the JWE's content key")
	}

	t.Run("WrongKey", func(t *testing.T) {
		unwrapFails(t, ref+"?key=hcvault://transit/keys/big/versions/1", "hcvault://transit/keys/big/versions/1")
		// version 1 of app is another RSA key than version 2
		unwrapFails(t, ref+"?key=hcvault://transit/keys/app/versions/1", "hcvault://transit/keys/app/versions/1")
		root := s.root.Token()
		r := s.run(t, map[string]string{"VAULT_TOKEN": root, "A": ref + "?key=hcvault://transit/keys/app"})
		r.failed(t, "A", "the key URI names no version")
		r = s.run(t, map[string]string{"VAULT_TOKEN": root, "A": ref + "?key=hcvault://transit/keys/missing/versions/1"})
		r.failed(t, "A", "key hcvault://transit/keys/missing/versions/1: ", "encryption key not found")
		// An AES key's decrypt refuses an RSA-wrapped key (HTTP 400).
		r = s.run(t, map[string]string{"VAULT_TOKEN": root, "A": ref + "?key=hcvault://transit/keys/sym/versions/1"})
		r.failed(t, "A", "key hcvault://transit/keys/sym/versions/1: ")
	})

	t.Run("Tampered", func(t *testing.T) {
		// The encrypted key (the second segment) altered: transit's
		// OAEP check refuses it.
		parts := strings.Split(ref, ".")
		ek, _ := base64.RawURLEncoding.DecodeString(parts[1])
		ek[len(ek)/2] ^= 1
		parts[1] = base64.RawURLEncoding.EncodeToString(ek)
		unwrapFails(t, strings.Join(parts, "."), "hcvault://transit/keys/app/versions/2")
		// The ciphertext (fourth segment) altered: the content key
		// unwraps, the payload's tag does not match.
		parts = strings.Split(ref, ".")
		ct, _ := base64.RawURLEncoding.DecodeString(parts[3])
		ct[0] ^= 1
		parts[3] = base64.RawURLEncoding.EncodeToString(ct)
		s.run(t, map[string]string{"VAULT_TOKEN": s.root.Token(), "A": strings.Join(parts, ".")}).failed(t, "A")
	})

	t.Run("Rotation", func(t *testing.T) {
		// A new version: encrypt now pins it, and what was encrypted to
		// the older ones still decrypts.
		s.write(t, "transit/keys/app/rotate", nil)
		v3, stderr, code := s.encrypt(t, "hcvault://transit/keys/app", "v3-"+canary)
		if code != 0 {
			t.Fatalf("encrypt after rotation: exit %d: %s", code, stderr)
		}
		if kid := header(t, v3)["kid"]; kid != "hcvault://transit/keys/app/versions/3" {
			t.Errorf("after rotation the kid is %v, want version 3", kid)
		}
		s.run(t, map[string]string{"VAULT_TOKEN": decryptApp, "V3": v3, "V2": ref + "#password", "V1": old}).
			ok(t, map[string]string{"V3": "v3-" + canary, "V2": canary, "V1": canary + "-v1"})
		// Versions below min_decryption_version are refused by Vault: the
		// variables encrypted to them fail closed, naming their key.
		s.write(t, "transit/keys/app/config", map[string]any{"min_decryption_version": 3})
		r := s.run(t, map[string]string{"VAULT_TOKEN": decryptApp, "V3": v3, "V1": old})
		r.failed(t, "V1", "key hcvault://transit/keys/app/versions/1: ", "disallowed by policy (too old)")
		if strings.Contains(r.stderr, "V3: ") {
			t.Errorf("V3 has an error line:\n%s", r.stderr)
		}
		s.run(t, map[string]string{"VAULT_TOKEN": decryptApp, "V3": v3}).ok(t, map[string]string{"V3": "v3-" + canary})
	})

	t.Run("EncryptErrors", func(t *testing.T) {
		for _, c := range []struct{ key, want string }{
			{"hcvault://transit/keys/missing", "transit/keys/missing"},
			{"hcvault://transit/keys/sym", `of type "aes256-gcm96"`},
			{"hcvault://transit/keys/app/versions/9", "no public key for version 9"},
		} {
			out, stderr, code := s.encrypt(t, c.key, canary)
			if code != 1 || !strings.Contains(stderr, c.want) || out != "" {
				t.Errorf("encrypt --key %s: exit %d, stdout %q, stderr %q; want exit 1 and %q", c.key, code, out, stderr, c.want)
			}
		}
	})
}
