package registry

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// TestECRKeychain: for an ECR host, the cloud keychains ask ECR's
// GetAuthorizationToken (a fake over the AWS JSON protocol, SigV4-signed
// with the default chain's credentials) and log in with its token; other
// hosts get anonymous access without a call.
func TestECRKeychain(t *testing.T) {
	var calls atomic.Int64
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Target") != "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken" ||
			!strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") {
			http.Error(w, `{"__type":"UnrecognizedClientException"}`, http.StatusBadRequest)
			return
		}
		calls.Add(1)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		json.NewEncoder(w).Encode(map[string]any{"authorizationData": []any{map[string]any{
			"authorizationToken": base64.StdEncoding.EncodeToString([]byte("AWS:ecr-token-canary")),
			"expiresAt":          4102444800,
			"proxyEndpoint":      "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com",
		}}})
	}))
	defer fake.Close()
	// The AWS SDK's environment, from scratch.
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_ECR": fake.URL, "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret",
		"AWS_REGION": "eu-west-1", "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
		"AWS_CA_BUNDLE": "", "AWS_PROFILE": "", "AWS_SESSION_TOKEN": "", "AWS_EC2_METADATA_DISABLED": "true",
		"AWS_ECR_DISABLE_CACHE": "true", "HOME": t.TempDir(),
	} {
		t.Setenv(k, v)
	}
	kc := authn.NewMultiKeychain(CloudKeychains(&ECR{}, &ACR{})...)

	ref, _ := name.ParseReference("123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app:1.0")
	a, err := kc.Resolve(ref.Context())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := a.Authorization()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Username != "AWS" || cfg.Password != "ecr-token-canary" || calls.Load() != 1 {
		t.Errorf("ECR: user %q, %d calls", cfg.Username, calls.Load())
	}

	ref, _ = name.ParseReference("registry.example.com/team/app:1.0")
	if a, err := kc.Resolve(ref.Context()); err != nil || a != authn.Anonymous || calls.Load() != 1 {
		t.Errorf("another registry: %v %v, %d calls", a, err, calls.Load())
	}
}
