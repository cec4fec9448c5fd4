//go:build !no_gcp

package vault

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestGCEIdentityToken(t *testing.T) {
	var audience string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Metadata-Flavor") != "Google" || r.URL.Path != "/computeMetadata/v1/instance/service-accounts/default/identity" {
			http.NotFound(w, r)
			return
		}
		audience = r.URL.Query().Get("audience")
		w.Header().Set("Metadata-Flavor", "Google")
		fmt.Fprint(w, "id-token")
	}))
	defer srv.Close()
	t.Setenv("GCE_METADATA_HOST", strings.TrimPrefix(srv.URL, "http://"))
	data, err := gcpGCELogin(t.Context(), "app")
	if err != nil {
		t.Fatal(err)
	}
	if data["jwt"] != "id-token" || data["role"] != "app" || audience != "http://vault/app" {
		t.Errorf("login data %v for audience %q", data, audience)
	}
}
