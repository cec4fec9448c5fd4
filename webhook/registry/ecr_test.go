package registry

import (
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// TestECRNoCredential: with no AWS credential in the environment, the ECR
// keychain's instance role probe runs at the start (Warm) against EC2's
// instance metadata service (a fake over its protocol); while it finds no
// role, ECR lookups are anonymous without asking it again (the helper alone
// would, at every lookup). A lookup a minute later probes again in the
// background; once the role is there, its credentials sign ECR's
// GetAuthorizationToken.
func TestECRNoCredential(t *testing.T) {
	var roleOn atomic.Bool
	var imdsRequests atomic.Int64
	const role, akid, sessionToken = "webhook-node", "ASIAROLEEXAMPLE", "role-session-token-canary"
	imds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		imdsRequests.Add(1)
		switch {
		case !roleOn.Load():
			http.NotFound(w, r)
		case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
			w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", "21600")
			w.Write([]byte("imds-session-token"))
		case r.Header.Get("X-Aws-Ec2-Metadata-Token") != "imds-session-token":
			http.Error(w, "", http.StatusUnauthorized)
		case r.URL.Path == "/latest/meta-data/iam/security-credentials/":
			w.Write([]byte(role))
		case r.URL.Path == "/latest/meta-data/iam/security-credentials/"+role:
			json.NewEncoder(w).Encode(map[string]string{"Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": akid,
				"SecretAccessKey": "role-secret", "Token": sessionToken, "Expiration": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)})
		default:
			http.NotFound(w, r)
		}
	}))
	defer imds.Close()
	var ecrCalls atomic.Int64
	ecrFake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 Credential="+akid+"/") ||
			r.Header.Get("X-Amz-Security-Token") != sessionToken {
			http.Error(w, `{"__type":"UnrecognizedClientException"}`, http.StatusBadRequest)
			return
		}
		ecrCalls.Add(1)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		json.NewEncoder(w).Encode(map[string]any{"authorizationData": []any{map[string]any{
			"authorizationToken": base64.StdEncoding.EncodeToString([]byte("AWS:ecr-token-canary")),
			"expiresAt":          4102444800,
			"proxyEndpoint":      "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com",
		}}})
	}))
	defer ecrFake.Close()
	// The AWS SDK's environment, from scratch: no credential anywhere.
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_EC2_METADATA_DISABLED", "AWS_CA_BUNDLE"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_ECR": ecrFake.URL, "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.URL, "AWS_REGION": "eu-west-1",
		"AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_ECR_DISABLE_CACHE": "true",
		"HOME": t.TempDir(),
	} {
		t.Setenv(k, v)
	}
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	var logs syncBuffer
	ecr := &ECR{Now: func() time.Time { return time.Unix(0, clock.Load()) }, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	kc := authn.NewMultiKeychain(CloudKeychains(ecr, &ACR{})...)
	resolve := func(host string) authn.Authenticator {
		t.Helper()
		reg, _ := name.NewRegistry(host)
		a, err := kc.Resolve(reg)
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		return a
	}
	const ecrHost = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"

	if a := resolve("registry.example.com"); a != authn.Anonymous || imdsRequests.Load() != 0 {
		t.Errorf("another registry: %v, %d IMDS requests", a, imdsRequests.Load())
	}
	ecr.Warm()
	ecr.gate.settle()
	if !ecr.Ready() {
		t.Error("not ready after the first probe ended")
	}
	probe := imdsRequests.Load()
	if probe == 0 {
		t.Fatal("the probe did not ask IMDS")
	}
	for range 3 {
		if a := resolve(ecrHost); a != authn.Anonymous {
			t.Errorf("no role: %v", a)
		}
		if a := resolve("public.ecr.aws"); a != authn.Anonymous {
			t.Errorf("no role, ECR Public: %v", a)
		}
	}
	if n := imdsRequests.Load(); n != probe || ecrCalls.Load() != 0 {
		t.Errorf("lookups without a role: %d IMDS requests after the probe's %d, %d ECR calls", n, probe, ecrCalls.Load())
	}

	// The role appears; a minute later a lookup probes in the background.
	roleOn.Store(true)
	clock.Add(int64(retryMissing + time.Second))
	resolve(ecrHost)
	ecr.gate.settle()
	a := resolve(ecrHost)
	cfg, err := a.Authorization()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Username != "AWS" || cfg.Password != "ecr-token-canary" || ecrCalls.Load() != 1 {
		t.Errorf("with the role: user %q, %d ECR calls", cfg.Username, ecrCalls.Load())
	}
	if n, m := strings.Count(logs.String(), "no AWS credential"), strings.Count(logs.String(), "instance role found"); n != 1 || m != 1 {
		t.Errorf("log lines %d, %d:\n%s", n, m, logs.String())
	}
	if strings.Contains(logs.String(), sessionToken) {
		t.Errorf("the log holds the session token")
	}
}

func TestAWSExplicit(t *testing.T) {
	home := t.TempDir()
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	t.Setenv("HOME", home)
	if awsExplicit() {
		t.Error("nothing configured, yet explicit")
	}
	t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/secrets/eks.amazonaws.com/serviceaccount/token")
	if !awsExplicit() {
		t.Error("IRSA not seen")
	}
	os.Unsetenv("AWS_WEB_IDENTITY_TOKEN_FILE")
	os.MkdirAll(home+"/.aws", 0o700)
	os.WriteFile(home+"/.aws/config", []byte("[default]\nregion = eu-west-1\n"), 0o600)
	if !awsExplicit() {
		t.Error("~/.aws/config not seen")
	}
}
