package azurefake_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/secrets-init/secrets-init/provider/azure/azurefake"
)

// TestRequestLatency checks that SetRequestLatency delays every request,
// a Key Vault challenge and an Entra token request alike, and that
// Requests counts them all.
func TestRequestLatency(t *testing.T) {
	f, err := azurefake.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Put("https://v.vault.azure.net", "s", azurefake.Secret{Value: "x"})
	client := &http.Client{Transport: f.Transport()}

	const d = 60 * time.Millisecond
	f.SetRequestLatency(d)
	start := time.Now()
	resp, err := client.Get("https://v.vault.azure.net/secrets/s?api-version=7.5")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("an unauthenticated read answered %d, want 401", resp.StatusCode)
	}
	resp, err = client.PostForm("https://login.microsoftonline.com/"+azurefake.Tenant+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {azurefake.ClientID}, "client_secret": {azurefake.ClientSecret},
		"scope": {"https://vault.azure.net/.default"},
	})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("the token request answered %d, want 200", resp.StatusCode)
	}
	if elapsed := time.Since(start); elapsed < 2*d {
		t.Errorf("two requests took %s, want at least %s", elapsed, 2*d)
	}
	if got := f.Requests(); got != 2 {
		t.Errorf("Requests() = %d, want 2", got)
	}
	if got := f.TokenRequests(); got != 1 {
		t.Errorf("TokenRequests() = %d, want 1", got)
	}
	if got := f.SecretRequests(); got != 0 {
		t.Errorf("SecretRequests() = %d, want 0 (a challenge is no read)", got)
	}

	f.SetRequestLatency(0)
	resp, err = client.Get("https://v.vault.azure.net/secrets/s?api-version=7.5")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := f.Requests(); got != 3 {
		t.Errorf("Requests() = %d, want 3", got)
	}
}
