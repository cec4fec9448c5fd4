package jwe

import (
	"strings"
	"testing"

	"github.com/secrets-init/secrets-init/provider"
)

// FuzzPrepare checks that reading a JWE's headers, algorithms and key
// never panics, and that a JWE it accepts names an accepted algorithm.
func FuzzPrepare(f *testing.F) {
	for _, s := range []string{
		"eyJhbGciOiJSU0EtT0FFUC0yNTYiLCJlbmMiOiJBMjU2R0NNIn0.a2V5.aXY.Y2lwaGVy.dGFn",
		`{"protected":"eyJlbmMiOiJBMTI4R0NNIn0","header":{"alg":"RSA-OAEP","kid":"file:k"},"encrypted_key":"a2V5","iv":"aXY","ciphertext":"","tag":"dGFn"}`,
		"eyJhbGciOiJkaXIiLCJlbmMiOiJBMTI4R0NNIiwiemlwIjoiREVGIn0..aXY.Y2lwaGVy.dGFn", "{}", "a.b.c.d.e",
	} {
		f.Add(s, "file:k")
	}
	st := &store{keys: keys{defaultKey: "file:default"}}
	f.Fuzz(func(t *testing.T, jwe, key string) {
		j, err := st.prepare(provider.Target{Kind: provider.JWE, Name: jwe, KeyURI: key})
		if err != nil {
			return
		}
		if j.alg != RSAOAEP256 && j.alg != RSAOAEP || cekSize[j.enc] == 0 || len(j.wrapped) == 0 || j.keyURI == "" {
			t.Fatalf("accepted %q: alg %q enc %q key %q", jwe, j.alg, j.enc, j.keyURI)
		}
		if strings.TrimSpace(jwe) == "" {
			t.Fatal("accepted an empty JWE")
		}
	})
}
