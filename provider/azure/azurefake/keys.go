package azurefake

import (
	"crypto"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"time"
)

// A key is one version of a Key Vault RSA key; its private half stays in
// the fake.
type key struct {
	id   string
	priv *rsa.PrivateKey
	ops  []string
}

// PutKey stores a new version of an RSA key, which becomes its current
// version, and returns the version's id. ops are its key_ops (default:
// wrapKey, unwrapKey, encrypt, decrypt). Fail(vault, name, …) makes its
// requests fail too.
func (s *Server) PutKey(vault, name string, priv *rsa.PrivateKey, ops ...string) string {
	if len(ops) == 0 {
		ops = []string{"wrapKey", "unwrapKey", "encrypt", "decrypt"}
	}
	host := hostOf(vault)
	id := newID()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.vaults[host] == nil { // the vault now resolves
		s.vaults[host] = map[string][]version{}
	}
	if s.keys[host] == nil {
		s.keys[host] = map[string][]key{}
	}
	s.keys[host][name] = append(s.keys[host][name], key{id, priv, ops})
	return id
}

var b64 = base64.RawURLEncoding

// serveKeys answers GET /keys/{name}[/{version}] and
// POST /keys/{name}/{version}/unwrapkey for an authorized caller.
func (s *Server) serveKeys(w http.ResponseWriter, r *http.Request, host string) {
	parts := strings.Split(strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/keys/"), "/"), "/")
	name := parts[0]
	s.mu.Lock()
	s.nSecrets++
	f := s.faults[host+"/"+name]
	if f == nil {
		f = s.faults[host]
	}
	versions := s.keys[host][name]
	s.mu.Unlock()
	if f != nil {
		writeError(w, f.Status, f.Code, f.Inner, "Fault injected by the fake.")
		return
	}
	var want, op string
	switch {
	case r.Method == http.MethodGet && len(parts) <= 2:
		if len(parts) == 2 {
			want = parts[1]
		}
	case r.Method == http.MethodPost && len(parts) == 3 && parts[2] == "unwrapkey":
		want, op = parts[1], "unwrapKey"
	default:
		writeError(w, http.StatusBadRequest, "BadParameter", "", "The request URI is not valid.")
		return
	}
	var k *key
	for i := range versions {
		if versions[i].id == want || want == "" && i == len(versions)-1 {
			k = &versions[i]
		}
	}
	if k == nil {
		writeError(w, http.StatusNotFound, "KeyNotFound", "", fmt.Sprintf("A key with (name/id) %s was not found in this key vault.", strings.Join(parts[:min(2, len(parts))], "/")))
		return
	}
	kid := "https://" + host + "/keys/" + name + "/" + k.id
	if op == "" {
		now := time.Now().Unix()
		writeJSON(w, http.StatusOK, map[string]any{
			"key": map[string]any{
				"kid": kid, "kty": "RSA", "key_ops": k.ops,
				"n": b64.EncodeToString(k.priv.N.Bytes()), "e": b64.EncodeToString(big.NewInt(int64(k.priv.E)).Bytes()),
			},
			"attributes": map[string]any{"enabled": true, "created": now, "updated": now, "recoveryLevel": "Recoverable+Purgeable"},
		})
		return
	}
	hasOp := false
	for _, o := range k.ops {
		hasOp = hasOp || o == op
	}
	if !hasOp {
		writeError(w, http.StatusForbidden, "Forbidden", "", "Operation unwrapKey is not permitted on this key.")
		return
	}
	var in struct{ Alg, Value string }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeError(w, http.StatusBadRequest, "BadParameter", "", "The request body is not valid.")
		return
	}
	wrapped, err := b64.DecodeString(strings.TrimRight(in.Value, "="))
	h := map[string]crypto.Hash{"RSA-OAEP": crypto.SHA1, "RSA-OAEP-256": crypto.SHA256}[in.Alg]
	if err != nil || h == 0 {
		writeError(w, http.StatusBadRequest, "BadParameter", "", "Invalid algorithm or value.")
		return
	}
	cek, err := rsa.DecryptOAEP(h.New(), nil, k.priv, wrapped, nil)
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadParameter", "", "Unwrap failed: the value does not decrypt with this key.")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"kid": kid, "value": b64.EncodeToString(cek)})
}
