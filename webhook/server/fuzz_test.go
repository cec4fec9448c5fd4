package server

import (
	"context"
	"os"
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
