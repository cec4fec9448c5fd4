package jwe

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/secrets-init/secrets-init/provider"
)

// The variables that configure the store (SPEC §9).
const (
	// EnvKey is the key URI of JWEs that name none.
	EnvKey = "SECRETS_INIT_JWE_KEY"
	// EnvKeys, when set, is a comma-separated list of key URI prefixes: the
	// keys a JWE's kid may name.
	EnvKeys = "SECRETS_INIT_JWE_KEYS"
	// EnvDetect=1 makes a bare JWE value a jwe: reference.
	EnvDetect = provider.EnvDetectJWE
)

var (
	keyAlgs = []jose.KeyAlgorithm{jose.RSA_OAEP_256, jose.RSA_OAEP}
	encs    = []jose.ContentEncryption{jose.A128GCM, jose.A192GCM, jose.A256GCM,
		jose.A128CBC_HS256, jose.A192CBC_HS384, jose.A256CBC_HS512}
	// cekSize is the content key length each enc needs.
	cekSize = map[string]int{"A128GCM": 16, "A192GCM": 24, "A256GCM": 32,
		"A128CBC-HS256": 32, "A192CBC-HS384": 48, "A256CBC-HS512": 64}
)

// Detect reads SECRETS_INIT_JWE_DETECT from getenv: "1" or "true" turns
// detection of bare JWE values on; unset, empty, "0" or "false" leaves it
// off; anything else is an error. (It is provider.DetectJWE, which the
// split build's supervisor calls without linking this package.)
func Detect(getenv func(string) string) (bool, error) { return provider.DetectJWE(getenv) }

// Open opens the jwe: store. The key settings come from the environment
// (SECRETS_INIT_JWE_KEY, SECRETS_INIT_JWE_KEYS); no KMS is opened until a
// JWE needs it.
func Open(_ context.Context, s provider.Settings) (provider.Store, error) {
	k, err := keySettings(os.LookupEnv)
	if err != nil {
		return nil, err
	}
	return &store{settings: s, keys: k}, nil
}

// keys are the settings that choose a JWE's key.
type keys struct {
	defaultKey string
	allow      []string // nil: any kid; else the prefixes a kid may have
}

// keySettings reads SECRETS_INIT_JWE_KEY and SECRETS_INIT_JWE_KEYS.
func keySettings(lookup func(string) (string, bool)) (keys, error) {
	var k keys
	k.defaultKey, _ = lookup(EnvKey)
	if k.defaultKey != "" && !provider.IsKeyURI(k.defaultKey) {
		return keys{}, fmt.Errorf("%s is not a key URI (want one of %s)", EnvKey, strings.Join(provider.KeySchemes, " "))
	}
	if v, ok := lookup(EnvKeys); ok {
		k.allow = []string{}
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				k.allow = append(k.allow, p)
			}
		}
	}
	return k, nil
}

// Key is the key URI that the store decrypts t's JWE with, when lookup
// reads the environment (SECRETS_INIT_JWE_KEY, SECRETS_INIT_JWE_KEYS) of
// the process that decrypts it: ?key=, else the protected header's kid
// when it is a key URI (and the allow-list lets it), else
// SECRETS_INIT_JWE_KEY. It opens no KMS and checks no algorithm.
func Key(t provider.Target, lookup func(string) (string, bool)) (string, error) {
	k, err := keySettings(lookup)
	if err != nil {
		return "", err
	}
	kid := ""
	if t.KeyURI == "" {
		h, _, err := rawHeaders(t.Name)
		if err != nil {
			return "", err
		}
		kid = h.kid
	}
	return k.key(t.KeyURI, kid)
}

type store struct {
	settings provider.Settings
	keys
}

// jwe is one target being decrypted.
type jwe struct {
	obj      *jose.JSONWebEncryption
	alg, enc string
	empty    bool // no ciphertext
	keyURI   string
	wrapped  []byte
	job      int // index of its unwrap job
}

// job is one distinct wrapped key to unwrap.
type job struct {
	keyURI, alg string
	wrapped     []byte
	cek         []byte
	err         error
}

func (st *store) Fetch(ctx context.Context, targets []provider.Target) []provider.Result {
	rs := make([]provider.Result, len(targets))
	jwes := make([]*jwe, len(targets))
	var jobs []*job
	seen := map[[3]string]int{}
	for i, t := range targets {
		j, err := st.prepare(t)
		if err != nil {
			rs[i].Err = err
			continue
		}
		k := [3]string{j.keyURI, j.alg, string(j.wrapped)}
		n, ok := seen[k]
		if !ok {
			n = len(jobs)
			seen[k] = n
			jobs = append(jobs, &job{keyURI: j.keyURI, alg: j.alg, wrapped: j.wrapped})
		}
		j.job, jwes[i] = n, j
	}

	kmses := newOpeners(st.settings)
	defer kmses.close()
	err := st.settings.Limit.Each(ctx, len(jobs), func(n int) {
		jb := jobs[n]
		kms, err := kmses.get(ctx, jb.keyURI)
		if err == nil {
			jb.cek, err = kms.Unwrap(ctx, jb.keyURI, jb.alg, jb.wrapped)
		}
		jb.err = err
	})
	for i, j := range jwes {
		if j == nil {
			continue
		}
		jb := jobs[j.job]
		switch {
		case jb.err != nil:
			rs[i].Err = fmt.Errorf("key %s: %w", j.keyURI, jb.err)
		case jb.cek == nil && err != nil: // the deadline kept the call from starting
			rs[i].Err = fmt.Errorf("key %s: %w", j.keyURI, err)
		case jb.cek == nil:
			rs[i].Err = fmt.Errorf("key %s: internal error: no content key", j.keyURI)
		default:
			rs[i] = decrypt(j, jb.cek)
		}
	}
	if st.settings.Log != nil {
		st.settings.Log.Debug("jwe: content keys unwrapped", "jwes", len(targets), "unwraps", len(jobs))
	}
	return rs
}

// prepare parses a target's JWE, checks its algorithms and picks its key.
func (st *store) prepare(t provider.Target) (*jwe, error) {
	h, wrapped, err := rawHeaders(t.Name)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(keyAlgs, jose.KeyAlgorithm(h.alg)) {
		return nil, fmt.Errorf("the JWE's key algorithm %q is refused (accepted: RSA-OAEP-256, RSA-OAEP)", h.alg)
	}
	if !slices.Contains(encs, jose.ContentEncryption(h.enc)) {
		return nil, fmt.Errorf("the JWE's content encryption %q is refused (accepted: A128GCM, A192GCM, A256GCM, A128CBC-HS256, A192CBC-HS384, A256CBC-HS512)", h.enc)
	}
	if h.zip {
		return nil, errors.New("a compressed JWE (zip) is refused")
	}
	if len(wrapped) == 0 {
		return nil, errors.New("the JWE has no encrypted key")
	}
	obj, err := jose.ParseEncrypted(t.Name, keyAlgs, encs)
	if err != nil {
		return nil, errors.New("the JWE cannot be parsed: " + joseReason(err))
	}
	keyURI, err := st.key(t.KeyURI, h.kid)
	if err != nil {
		return nil, err
	}
	return &jwe{obj: obj, alg: h.alg, enc: h.enc, empty: h.empty, keyURI: keyURI, wrapped: wrapped}, nil
}

// key picks the key: ?key=, else a kid that is a key URI (when the
// allow-list lets it), else SECRETS_INIT_JWE_KEY.
func (st keys) key(option, kid string) (string, error) {
	switch {
	case option != "":
		return option, nil
	case provider.IsKeyURI(kid):
		if st.allow != nil && !slices.ContainsFunc(st.allow, func(p string) bool { return strings.HasPrefix(kid, p) }) {
			return "", fmt.Errorf("the JWE's kid names key %s, which %s does not allow", kid, EnvKeys)
		}
		return kid, nil
	case st.defaultKey != "":
		return st.defaultKey, nil
	}
	return "", fmt.Errorf("no key for the JWE: give ?key=KEYURI, encrypt with a key URI as kid, or set %s", EnvKey)
}

// headers are the JWE header parameters the store looks at.
type headers struct {
	alg, enc, kid string
	zip           bool
	empty         bool // the ciphertext is empty
}

// rawHeaders reads the headers (kid from the protected header only: it
// is the one the ciphertext authenticates) and the wrapped key.
func rawHeaders(s string) (headers, []byte, error) {
	var protected, ek, ct string
	var others []map[string]any
	if strings.HasPrefix(s, "{") {
		var j struct {
			Protected    string         `json:"protected"`
			Unprotected  map[string]any `json:"unprotected"`
			Header       map[string]any `json:"header"`
			EncryptedKey string         `json:"encrypted_key"`
			Ciphertext   string         `json:"ciphertext"`
		}
		if json.Unmarshal([]byte(s), &j) != nil {
			return headers{}, nil, errors.New("the JSON JWE is malformed")
		}
		protected, ek, ct, others = j.Protected, j.EncryptedKey, j.Ciphertext, []map[string]any{j.Unprotected, j.Header}
		if _, ok := j.Header["enc"]; ok { // RFC 7516 §7.2.1: enc is shared by every recipient
			return headers{}, nil, errors.New("the JWE gives enc in its per-recipient header; it belongs in the protected header")
		}
	} else {
		f := strings.Split(s, ".")
		if len(f) != 5 {
			return headers{}, nil, errors.New("the compact JWE is malformed")
		}
		protected, ek, ct = f[0], f[1], f[3]
	}
	var p map[string]any
	b, err := base64.RawURLEncoding.DecodeString(protected)
	if err != nil || json.Unmarshal(b, &p) != nil {
		return headers{}, nil, errors.New("the JWE's protected header is not base64url JSON")
	}
	wrapped, err := base64.RawURLEncoding.DecodeString(ek)
	if err != nil {
		return headers{}, nil, errors.New("the JWE's encrypted key is not base64url")
	}
	h := headers{empty: ct == ""}
	str := func(name string) (string, error) {
		var v string
		n := 0
		for _, m := range append([]map[string]any{p}, others...) {
			if x, ok := m[name]; ok {
				s, isStr := x.(string)
				if !isStr {
					return "", fmt.Errorf("the JWE's %q header is not a string", name)
				}
				v, n = s, n+1
			}
		}
		if n > 1 {
			return "", fmt.Errorf("the JWE's %q header is given more than once", name)
		}
		return v, nil
	}
	if h.alg, err = str("alg"); err != nil {
		return headers{}, nil, err
	}
	if h.enc, err = str("enc"); err != nil {
		return headers{}, nil, err
	}
	if _, err = str("zip"); err != nil {
		return headers{}, nil, err
	}
	for _, m := range append([]map[string]any{p}, others...) {
		if _, ok := m["zip"]; ok {
			h.zip = true
		}
	}
	for _, m := range append([]map[string]any{p}, others...) {
		if _, ok := m["crit"]; ok {
			return headers{}, nil, errors.New("a JWE with critical (crit) headers is refused")
		}
	}
	h.kid, _ = p["kid"].(string)
	return h, wrapped, nil
}

// decrypt decrypts the payload with the unwrapped content key.
func decrypt(j *jwe, cek []byte) provider.Result {
	if len(cek) != cekSize[j.enc] {
		return provider.Result{Err: fmt.Errorf("key %s unwrapped a %d-byte content key, but %s needs %d bytes: the JWE was altered", j.keyURI, len(cek), j.enc, cekSize[j.enc])}
	}
	plain, err := j.obj.Decrypt(cekKey(cek))
	if err != nil && j.empty {
		return provider.Result{Err: errors.New("the JWE's payload is empty, which go-jose does not decrypt: encrypt a value that is not empty")}
	}
	if err != nil {
		return provider.Result{Err: fmt.Errorf("the JWE does not authenticate with the content key from %s: its ciphertext was altered", j.keyURI)}
	}
	if plain == nil {
		plain = []byte{}
	}
	return provider.Result{Value: plain}
}

// cekKey hands go-jose a content key that is already unwrapped.
type cekKey []byte

func (k cekKey) DecryptKey([]byte, jose.Header) ([]byte, error) { return k, nil }

// joseReason is a go-jose error without its package prefix. go-jose's
// parse errors quote headers at most, never a payload.
func joseReason(err error) string {
	return strings.TrimPrefix(err.Error(), "go-jose/go-jose: ")
}
