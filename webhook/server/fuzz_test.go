package server

import (
	"context"
	"os"
	"strings"
	"testing"
)

// FuzzReview feeds arbitrary bytes to the review handler: it answers or
// refuses, and never panics.
func FuzzReview(f *testing.F) {
	for _, name := range []string{"command-args", "value-from", "several-containers", "deny-bad-flags"} {
		b, err := os.ReadFile("testdata/mutate/" + name + ".review.json")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"request":{"kind":{"kind":"Pod"},"operation":"CREATE","object":{"spec":{"containers":[{"name":"a","env":[{"name":"X","value":"vault:"}]}]}}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, _ := testHandler(t)
		out, err := h.Review(context.Background(), b)
		if err == nil && (out == nil || out.Response == nil) {
			t.Fatal("no response and no error")
		}
	})
}

// FuzzSecretsReview feeds arbitrary bytes to the /secrets handler: it
// answers or refuses, never panics, and a denial never quotes a
// plaintext.
func FuzzSecretsReview(f *testing.F) {
	for _, name := range []string{"compact", "flattened-string-data", "deny-wrong-key", "update"} {
		b, err := os.ReadFile("testdata/secrets/" + name + ".review.json")
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"request":{"kind":{"kind":"Secret"},"operation":"CREATE","object":{"metadata":{"labels":{"secrets-init.io/decrypt":"jwe"}},"stringData":{"a":"jwe:{}"}}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		h := secretsHandler(t, true, nil)
		out, err := h.Review(context.Background(), b)
		if err == nil && (out == nil || out.Response == nil) {
			t.Fatal("no response and no error")
		}
		if err == nil && out.Response.Result != nil && strings.Contains(out.Response.Result.Message, canary) {
			t.Fatal("a denial quotes the plaintext")
		}
	})
}
