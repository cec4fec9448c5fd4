package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestReadiness: /readyz answers 503 naming the first condition still
// awaited, and ok once all hold.
func TestReadiness(t *testing.T) {
	var cert, probes atomic.Bool
	srv := httptest.NewServer(Readiness{
		{Ready: cert.Load, Waiting: "the caBundle is not patched yet"},
		{Ready: probes.Load, Waiting: "the cloud credential probes are running"},
	})
	defer srv.Close()
	get := func() (int, string) {
		t.Helper()
		r, err := http.Get(srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return r.StatusCode, strings.TrimSpace(string(b))
	}
	if code, body := get(); code != http.StatusServiceUnavailable || body != "the caBundle is not patched yet" {
		t.Errorf("%d %q", code, body)
	}
	cert.Store(true)
	if code, body := get(); code != http.StatusServiceUnavailable || body != "the cloud credential probes are running" {
		t.Errorf("%d %q", code, body)
	}
	probes.Store(true)
	if code, body := get(); code != http.StatusOK || body != "ok" {
		t.Errorf("%d %q", code, body)
	}
}
