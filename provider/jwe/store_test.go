package jwe

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/secrets-init/secrets-init/provider"
)

// canary is a plaintext that must never appear in any error.
const canary = "CANARY-jwe-5e3c7"

func loadKey(t testing.TB, path string) any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k, err := ParseKey(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return k
}

func pub(t testing.TB, path string) *rsa.PublicKey {
	t.Helper()
	k, _, err := publicOf(loadKey(t, path))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// seal encrypts plain to key with go-jose; kid is set when not empty.
func seal(t testing.TB, key any, alg jose.KeyAlgorithm, enc jose.ContentEncryption, kid, plain string, opts *jose.EncrypterOptions) *jose.JSONWebEncryption {
	t.Helper()
	e, err := jose.NewEncrypter(enc, jose.Recipient{Algorithm: alg, Key: key, KeyID: kid}, opts)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := e.Encrypt([]byte(plain))
	if err != nil {
		t.Fatal(err)
	}
	return obj
}

func compact(t testing.TB, obj *jose.JSONWebEncryption) string {
	t.Helper()
	s, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fetch resolves refs (jwe: references) with the store and returns the
// results, checking that no error holds the canary.
func fetch(t *testing.T, refs ...string) []provider.Result {
	t.Helper()
	var targets []provider.Target
	for _, r := range refs {
		ref, ok, err := provider.Parse(r)
		if !ok || err != nil {
			t.Fatalf("Parse(%.60q): %v %v", r, ok, err)
		}
		targets = append(targets, ref.Target)
	}
	st, err := Open(context.Background(), provider.Settings{Limit: provider.NewLimiter(4)})
	if err != nil {
		t.Fatal(err)
	}
	rs := st.Fetch(context.Background(), targets)
	for _, r := range rs {
		if r.Err != nil && strings.Contains(r.Err.Error(), canary) {
			t.Fatalf("an error holds the plaintext: %v", r.Err)
		}
	}
	return rs
}

func TestDecryptFileKeys(t *testing.T) {
	keyURI := "file:testdata/key.pem"
	p := pub(t, "testdata/key.pem")
	var refs, want []string
	for _, alg := range []jose.KeyAlgorithm{jose.RSA_OAEP_256, jose.RSA_OAEP} {
		for _, enc := range encs {
			plain := canary + "-" + string(alg) + "-" + string(enc)
			obj := seal(t, p, alg, enc, keyURI, plain, nil)
			refs = append(refs, "jwe:"+compact(t, obj), "jwe:"+obj.FullSerialize())
			want = append(want, plain, plain)
		}
	}
	// A JWK private key, by ?key= (percent-encoded), with a kid that is no key URI.
	jwk, _ := json.Marshal(jose.JSONWebKey{Key: loadKey(t, "testdata/key.pem"), Use: "enc"})
	jwkPath := filepath.Join(t.TempDir(), "key & more.jwk")
	os.WriteFile(jwkPath, jwk, 0o600)
	refs = append(refs, "jwe:"+compact(t, seal(t, p, jose.RSA_OAEP_256, jose.A256GCM, "2024-01", "jwk", nil))+"?key=file:"+strings.ReplaceAll(jwkPath, " & ", "%20%26%20"))
	want = append(want, "jwk")

	for i, r := range fetch(t, refs...) {
		if r.Err != nil {
			t.Errorf("ref %d: %v", i, r.Err)
		} else if string(r.Value) != want[i] || r.Value == nil {
			t.Errorf("ref %d = %q, want %q", i, r.Value, want[i])
		}
	}
}

// go-jose decrypts no empty payload; for AES-GCM the error says so.
func TestEmptyValue(t *testing.T) {
	p := pub(t, "testdata/key.pem")
	rs := fetch(t, "jwe:"+compact(t, seal(t, p, jose.RSA_OAEP_256, jose.A128GCM, "file:testdata/key.pem", "", nil)),
		"jwe:"+compact(t, seal(t, p, jose.RSA_OAEP_256, jose.A128CBC_HS256, "file:testdata/key.pem", "", nil)))
	if rs[0].Err == nil || !strings.Contains(rs[0].Err.Error(), "the JWE's payload is empty") {
		t.Errorf("empty GCM payload: %q, %v", rs[0].Value, rs[0].Err)
	}
	if rs[1].Err == nil { // CBC pads an empty payload to a block; go-jose refuses it all the same
		t.Errorf("empty CBC payload: %q, %v", rs[1].Value, rs[1].Err)
	}
}

func TestKeyChoice(t *testing.T) {
	p := pub(t, "testdata/key.pem")
	noKid := "jwe:" + compact(t, seal(t, p, jose.RSA_OAEP_256, jose.A256GCM, "", canary, nil))
	otherKid := "jwe:" + compact(t, seal(t, p, jose.RSA_OAEP_256, jose.A256GCM, "file:testdata/other.pem", canary, nil))
	goodKid := "jwe:" + compact(t, seal(t, p, jose.RSA_OAEP_256, jose.A256GCM, "file:testdata/key.pem", canary, nil))

	rs := fetch(t, noKid)
	if rs[0].Err == nil || !strings.Contains(rs[0].Err.Error(), "no key for the JWE: give ?key=KEYURI") {
		t.Errorf("no key: %v", rs[0].Err)
	}
	// SECRETS_INIT_JWE_KEY is the default; a kid that is a key URI wins
	// over it, and ?key= over both.
	t.Setenv(EnvKey, "file:testdata/key.pem")
	rs = fetch(t, noKid, otherKid, otherKid+"?key=file:testdata/key.pem")
	if rs[0].Err != nil || string(rs[0].Value) != canary {
		t.Errorf("default key: %q, %v", rs[0].Value, rs[0].Err)
	}
	if rs[1].Err == nil || !strings.Contains(rs[1].Err.Error(), "key file:testdata/other.pem: the key cannot unwrap") {
		t.Errorf("kid naming the wrong key: %v", rs[1].Err)
	}
	if rs[2].Err != nil || string(rs[2].Value) != canary {
		t.Errorf("?key= over kid: %q, %v", rs[2].Value, rs[2].Err)
	}

	// The allow-list restricts kid, not ?key= or the default.
	t.Setenv(EnvKeys, "gcp-kms://projects/p/, file:testdata/k")
	rs = fetch(t, otherKid, goodKid, otherKid+"?key=file:testdata/key.pem", noKid)
	if rs[0].Err == nil || !strings.Contains(rs[0].Err.Error(), "the JWE's kid names key file:testdata/other.pem, which SECRETS_INIT_JWE_KEYS does not allow") {
		t.Errorf("kid outside the allow-list: %v", rs[0].Err)
	}
	for i := 1; i < 4; i++ {
		if rs[i].Err != nil || string(rs[i].Value) != canary {
			t.Errorf("ref %d: %q, %v", i, rs[i].Value, rs[i].Err)
		}
	}
	t.Setenv(EnvKeys, "")
	if rs = fetch(t, goodKid); rs[0].Err == nil || !strings.Contains(rs[0].Err.Error(), "does not allow") {
		t.Errorf("an empty allow-list allows no kid: %v", rs[0].Err)
	}

	t.Setenv(EnvKey, "https://example.com/key")
	if _, err := Open(context.Background(), provider.Settings{}); err == nil || !strings.Contains(err.Error(), "SECRETS_INIT_JWE_KEY is not a key URI") {
		t.Errorf("Open with a bad default key: %v", err)
	}
}

func TestRefused(t *testing.T) {
	p := pub(t, "testdata/key.pem")
	ec := loadECPublic(t)
	sym := []byte("0123456789abcdef")
	tests := []struct {
		name, jwe, want string
	}{
		{"RSA1_5", compact(t, seal(t, p, jose.RSA1_5, jose.A128GCM, "", canary, nil)), `key algorithm "RSA1_5" is refused`},
		{"dir", compact(t, seal(t, sym, jose.DIRECT, jose.A128GCM, "", canary, nil)), `key algorithm "dir" is refused`},
		{"A128KW", compact(t, seal(t, sym, jose.A128KW, jose.A128GCM, "", canary, nil)), `key algorithm "A128KW" is refused`},
		{"A128GCMKW", compact(t, seal(t, sym, jose.A128GCMKW, jose.A128GCM, "", canary, nil)), `key algorithm "A128GCMKW" is refused`},
		{"ECDH-ES", compact(t, seal(t, ec, jose.ECDH_ES, jose.A128GCM, "", canary, nil)), `key algorithm "ECDH-ES" is refused`},
		{"ECDH-ES+A128KW", compact(t, seal(t, ec, jose.ECDH_ES_A128KW, jose.A128GCM, "", canary, nil)), `key algorithm "ECDH-ES+A128KW" is refused`},
		{"PBES2", compact(t, seal(t, "password", jose.PBES2_HS256_A128KW, jose.A128GCM, "", canary, nil)), `key algorithm "PBES2-HS256+A128KW" is refused`},
		{"enc none", withHeader(t, compact(t, seal(t, p, jose.RSA_OAEP_256, jose.A128GCM, "", canary, nil)), `{"alg":"RSA-OAEP-256","enc":"none"}`), `content encryption "none" is refused`},
		{"enc A128CTR", withHeader(t, compact(t, seal(t, p, jose.RSA_OAEP_256, jose.A128GCM, "", canary, nil)), `{"alg":"RSA-OAEP-256","enc":"A128CTR"}`), `content encryption "A128CTR" is refused`},
		{"zip", compact(t, seal(t, p, jose.RSA_OAEP_256, jose.A128GCM, "", canary, &jose.EncrypterOptions{Compression: jose.DEFLATE})), "compressed JWE (zip) is refused"},
		{"alg twice", flatWithHeader(t, seal(t, p, jose.RSA_OAEP_256, jose.A128GCM, "", canary, nil), `{"alg":"RSA1_5"}`), `"alg" header is given more than once`},
		{"alg not a string", flatWithHeader(t, seal(t, p, jose.RSA_OAEP_256, jose.A128GCM, "", canary, nil), `{"kid":1,"alg":1}`), `"alg" header is not a string`},
		{"enc per recipient", flatWithHeader(t, seal(t, p, jose.RSA_OAEP_256, jose.A128GCM, "", canary, nil), `{"enc":"A128GCM"}`), "enc in its per-recipient header"},
		{"crit", withHeader(t, compact(t, seal(t, p, jose.RSA_OAEP_256, jose.A128GCM, "", canary, nil)), `{"alg":"RSA-OAEP-256","enc":"A128GCM","crit":["exp"],"exp":1}`), "critical (crit) headers is refused"},
	}
	var refs []string
	for _, tt := range tests {
		refs = append(refs, "jwe:"+tt.jwe+"?key=file:testdata/key.pem")
	}
	for i, r := range fetch(t, refs...) {
		if r.Err == nil || !strings.Contains(r.Err.Error(), tests[i].want) {
			t.Errorf("%s: value %q, err %v; want an error with %q", tests[i].name, r.Value, r.Err, tests[i].want)
		}
	}
}

func loadECPublic(t *testing.T) *ecdsa.PublicKey {
	b, _ := os.ReadFile("testdata/ec.pem")
	k, err := ParseKey(b)
	if err == nil {
		t.Fatalf("ParseKey took an EC key: %T", k)
	}
	// ParseKey refuses EC keys; make one for the refused-algorithm JWEs.
	obj := jose.JSONWebKey{}
	if err := obj.UnmarshalJSON([]byte(`{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}`)); err != nil {
		t.Fatal(err)
	}
	return obj.Key.(*ecdsa.PublicKey)
}

// withHeader replaces the protected header of a compact JWE (which then
// no longer authenticates).
func withHeader(t *testing.T, jwe, header string) string {
	f := strings.Split(jwe, ".")
	f[0] = base64.RawURLEncoding.EncodeToString([]byte(header))
	return strings.Join(f, ".")
}

// flatWithHeader is a flattened JSON JWE with a per-recipient header.
func flatWithHeader(t *testing.T, obj *jose.JSONWebEncryption, header string) string {
	var m map[string]any
	json.Unmarshal([]byte(obj.FullSerialize()), &m)
	var h any
	json.Unmarshal([]byte(header), &h)
	m["header"] = h
	b, _ := json.Marshal(m)
	return string(b)
}

func TestWrongKeyAndTampering(t *testing.T) {
	p := pub(t, "testdata/key.pem")
	good := compact(t, seal(t, p, jose.RSA_OAEP_256, jose.A256GCM, "file:testdata/key.pem", canary, nil))
	f := strings.Split(good, ".")
	flip := func(seg string) string {
		b, _ := base64.RawURLEncoding.DecodeString(seg)
		b[len(b)/2] ^= 1
		return base64.RawURLEncoding.EncodeToString(b)
	}
	tamper := func(i int) string {
		g := append([]string{}, f...)
		g[i] = flip(g[i])
		return "jwe:" + strings.Join(g, ".")
	}
	cbc := compact(t, seal(t, p, jose.RSA_OAEP_256, jose.A128CBC_HS256, "file:testdata/key.pem", canary, nil))
	g := strings.Split(cbc, ".")
	g[3] = flip(g[3])
	rs := fetch(t,
		"jwe:"+good+"?key=file:testdata/other.pem", // the wrong key
		tamper(1), tamper(2), tamper(3), tamper(4), // encrypted key, iv, ciphertext, tag
		"jwe:"+strings.Join(g, "."), // CBC-HMAC ciphertext
		"jwe:"+good+"?key=file:testdata/key.pub.pem",
		"jwe:"+good+"?key=file:testdata/missing.pem",
		"jwe:"+good+"?key=file:testdata/small.pem",
		"jwe:"+good+"?key=file:testdata/ec.pem",
	)
	want := []string{
		"key file:testdata/other.pem: the key cannot unwrap the JWE's content key: the JWE was encrypted to another key",
		"key file:testdata/key.pem: the key cannot unwrap",
		"the JWE does not authenticate with the content key from file:testdata/key.pem: its ciphertext was altered",
		"does not authenticate", "does not authenticate", "does not authenticate",
		"key file:testdata/key.pub.pem: the key file holds a public key; decryption needs the private key",
		"key file:testdata/missing.pem: cannot read key file testdata/missing.pem: no such file or directory",
		"the RSA key has 1024 bits; at least 2048 are needed",
		"not an RSA key",
	}
	for i, r := range rs {
		if r.Err == nil || !strings.Contains(r.Err.Error(), want[i]) {
			t.Errorf("case %d: value %q, err %v; want an error with %q", i, r.Value, r.Err, want[i])
		}
	}
}

// countingKMS counts the unwraps of a file KMS.
type countingKMS struct {
	KMS
	n *atomic.Int32
}

func (c countingKMS) Unwrap(ctx context.Context, keyURI, alg string, wrapped []byte) ([]byte, error) {
	c.n.Add(1)
	return c.KMS.Unwrap(ctx, "file:"+strings.TrimPrefix(keyURI, "hcvault://"), alg, wrapped)
}

func TestIdenticalWrappedKeysUnwrapOnce(t *testing.T) {
	var n atomic.Int32
	Register("hcvault", func(ctx context.Context, s provider.Settings) (KMS, error) {
		k, _ := openFileKMS(ctx, s)
		return countingKMS{k, &n}, nil
	})
	defer Register("hcvault", nil)
	p := pub(t, "testdata/key.pem")
	obj := seal(t, p, jose.RSA_OAEP_256, jose.A256GCM, "", canary, nil)
	other := seal(t, p, jose.RSA_OAEP_256, jose.A256GCM, "", canary, nil)
	// The same JWE in both serialisations, and another JWE: two wrapped keys.
	key := "?key=hcvault://testdata/key.pem"
	rs := fetch(t, "jwe:"+compact(t, obj)+key, "jwe:"+obj.FullSerialize()+key, "jwe:"+compact(t, other)+key)
	for i, r := range rs {
		if r.Err != nil {
			t.Errorf("ref %d: %v", i, r.Err)
		}
	}
	if got := n.Load(); got != 2 {
		t.Errorf("%d unwraps, want 2", got)
	}
}

func TestUnknownScheme(t *testing.T) {
	Register("azure-kv", nil)
	p := pub(t, "testdata/key.pem")
	rs := fetch(t, "jwe:"+compact(t, seal(t, p, jose.RSA_OAEP_256, jose.A256GCM, "azure-kv://v.vault.azure.net/keys/k/1", canary, nil)))
	if rs[0].Err == nil || !strings.Contains(rs[0].Err.Error(), "key azure-kv://v.vault.azure.net/keys/k/1: this binary was built without the azure-kv key scheme (build tag no_azure)") {
		t.Errorf("unregistered scheme: %v", rs[0].Err)
	}
}

func TestDetect(t *testing.T) {
	for v, want := range map[string]bool{"": false, "0": false, "1": true, "true": true, "FALSE": false} {
		got, err := Detect(func(string) string { return v })
		if err != nil || got != want {
			t.Errorf("Detect(%q) = %v, %v", v, got, err)
		}
	}
	if _, err := Detect(func(string) string { return "yes" }); err == nil {
		t.Error("Detect(yes) is not an error")
	}
}

// TestKey: the exported choice of key is the store's, read from the
// environment it is given.
func TestKey(t *testing.T) {
	jweWith := func(kid string) string {
		h := `{"alg":"RSA-OAEP-256","enc":"A256GCM"`
		if kid != "" {
			h += `,"kid":"` + kid + `"`
		}
		return base64.RawURLEncoding.EncodeToString([]byte(h+"}")) + ".AAAA.AAAA.AAAA.AAAA"
	}
	const aws = "aws-kms://arn:aws:kms:eu-west-1:111122223333:key/k-1"
	const vault = "hcvault://transit/keys/app/versions/1"
	for _, c := range []struct {
		name, kid, option string
		env               map[string]string
		want, err         string
	}{
		{name: "option wins", kid: aws, option: vault, want: vault},
		{name: "kid", kid: aws, env: map[string]string{EnvKey: vault}, want: aws},
		{name: "kid not a key URI", kid: "k1", env: map[string]string{EnvKey: vault}, want: vault},
		{name: "default", env: map[string]string{EnvKey: vault}, want: vault},
		{name: "allowed", kid: aws, env: map[string]string{EnvKeys: " aws-kms://arn:aws:kms:eu-west-1:111122223333:key/ ,x"}, want: aws},
		{name: "not allowed", kid: aws, env: map[string]string{EnvKeys: "hcvault://"}, err: "which " + EnvKeys + " does not allow"},
		{name: "empty allow-list", kid: aws, env: map[string]string{EnvKeys: ""}, err: "does not allow"},
		{name: "none", err: "no key for the JWE"},
		{name: "bad default", env: map[string]string{EnvKey: "kms-key-1"}, err: EnvKey + " is not a key URI"},
	} {
		lookup := func(k string) (string, bool) { v, ok := c.env[k]; return v, ok }
		got, err := Key(provider.Target{Kind: provider.JWE, Name: jweWith(c.kid), KeyURI: c.option}, lookup)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: %q, %v; want error %q", c.name, got, err, c.err)
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
		}
	}
	if _, err := Key(provider.Target{Kind: provider.JWE, Name: "eyJ.AAAA.AAAA.AAAA.AAAA"}, func(string) (string, bool) { return "", false }); err == nil {
		t.Error("a JWE whose header is not JSON has a key")
	}
}
