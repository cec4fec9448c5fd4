//go:build !no_gcp

package vault

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"cloud.google.com/go/auth"
	"cloud.google.com/go/auth/credentials"
	"cloud.google.com/go/compute/metadata"
)

// The gcp-gce and gcp-iam logins follow the protocol of Vault's official
// helper (github.com/hashicorp/vault/api/auth/gcp, not served here) on the
// Google auth libraries this binary already links. Built without Google
// (tag no_gcp), the methods are not available.

// gcpGCELogin gets the instance's identity token for the audience Vault's
// gcp auth method expects (gce type).
func gcpGCELogin(ctx context.Context, role string) (map[string]any, error) {
	jwt, err := metadata.GetWithContext(ctx, "instance/service-accounts/default/identity?format=full&audience="+url.QueryEscape("http://vault/"+role))
	if err != nil {
		return nil, fmt.Errorf("cannot get an identity token from the GCE metadata server: %w", err)
	}
	return map[string]any{"role": role, "jwt": jwt}, nil
}

// gcpIAMLogin has the IAM Credentials API sign a JWT for the service
// account of the Application Default Credentials (iam type).
func gcpIAMLogin(ctx context.Context, role string) (map[string]any, error) {
	creds, err := credentials.DetectDefault(&credentials.DetectOptions{Scopes: []string{"https://www.googleapis.com/auth/cloud-platform"}})
	if err != nil {
		return nil, fmt.Errorf("no Google credentials for the gcp-iam login: %w", err)
	}
	email, err := serviceAccountEmail(ctx, creds)
	if err != nil {
		return nil, err
	}
	tok, err := creds.Token(ctx)
	if err != nil {
		return nil, fmt.Errorf("no Google access token for the gcp-iam login: %w", err)
	}
	claims, err := json.Marshal(map[string]any{"sub": email, "aud": "vault/" + role, "exp": time.Now().Add(15 * time.Minute).Unix()})
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(map[string]string{"payload": string(claims)})
	if err != nil {
		return nil, err
	}
	u := "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/" + url.PathEscape(email) + ":signJwt"
	var out struct {
		SignedJwt string `json:"signedJwt"`
	}
	if err := callJSON(ctx, http.MethodPost, u, strings.NewReader(string(body)), http.Header{"Authorization": {"Bearer " + tok.Value}, "Content-Type": {"application/json"}}, &out); err != nil {
		return nil, fmt.Errorf("cannot sign a JWT for %s (it needs iam.serviceAccounts.signJwt): %w", email, err)
	}
	return map[string]any{"role": role, "jwt": out.SignedJwt}, nil
}

// serviceAccountEmail is the email of the credentials' service account:
// from a key file, or from the metadata server.
func serviceAccountEmail(ctx context.Context, creds *auth.Credentials) (string, error) {
	var key struct {
		ClientEmail string `json:"client_email"`
	}
	if j := creds.JSON(); len(j) > 0 && json.Unmarshal(j, &key) == nil && key.ClientEmail != "" {
		return key.ClientEmail, nil
	}
	email, err := metadata.EmailWithContext(ctx, "default")
	if err != nil {
		return "", fmt.Errorf("cannot find the service account's email for the gcp-iam login (use a service-account key or run on Google Cloud): %w", err)
	}
	return email, nil
}
