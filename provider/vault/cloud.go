package vault

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"cloud.google.com/go/auth/credentials"
	"cloud.google.com/go/compute/metadata"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/config"
)

// The login data of the cloud auth methods follow the protocol of Vault's
// official helpers (github.com/hashicorp/vault/api/auth/{aws,gcp,azure}),
// built on the SDKs this binary already links: the aws helper would add
// the AWS SDK v1, and the gcp and azure helpers are not served here.

// stsBody is the signed sts:GetCallerIdentity call that proves an AWS
// identity to Vault's aws auth method (iam type).
const stsBody = "Action=GetCallerIdentity&Version=2011-06-15"

// awsIAMLogin signs sts:GetCallerIdentity with the AWS default credential
// chain (env, profile, web identity, EKS Pod Identity, ECS, IMDS).
func awsIAMLogin(ctx context.Context, role string) (map[string]any, error) {
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1" // only the credential providers use it
	}
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("no AWS credentials for the aws-iam login: %w", err)
	}
	const endpoint = "https://sts.amazonaws.com/"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(stsBody))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	sum := sha256.Sum256([]byte(stsBody))
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "sts", "us-east-1", time.Now()); err != nil {
		return nil, fmt.Errorf("cannot sign the aws-iam login: %w", err)
	}
	headers, err := json.Marshal(req.Header)
	if err != nil {
		return nil, err
	}
	data := map[string]any{
		"iam_http_request_method": http.MethodPost,
		"iam_request_url":         b64(endpoint),
		"iam_request_body":        b64(stsBody),
		"iam_request_headers":     b64(string(headers)),
	}
	if role != "" { // else Vault uses the IAM role's name
		data["role"] = role
	}
	return data, nil
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

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
func serviceAccountEmail(ctx context.Context, creds *credentials.Credentials) (string, error) {
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

// azureIMDS is the Azure Instance Metadata Service.
const azureIMDS = "http://169.254.169.254/metadata/"

// azureLogin gets a managed identity's token and the instance's
// identifiers from Azure IMDS, for Vault's azure auth method.
func azureLogin(ctx context.Context, role string) (map[string]any, error) {
	md := http.Header{"Metadata": {"true"}}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := callJSON(ctx, http.MethodGet, azureIMDS+"identity/oauth2/token?api-version=2018-02-01&resource="+url.QueryEscape("https://management.azure.com/"), nil, md, &tok); err != nil {
		return nil, fmt.Errorf("no managed identity token from Azure IMDS: %w", err)
	}
	var inst struct {
		Compute struct {
			Name              string `json:"name"`
			ResourceGroupName string `json:"resourceGroupName"`
			SubscriptionID    string `json:"subscriptionId"`
			VMScaleSetName    string `json:"vmScaleSetName"`
		} `json:"compute"`
	}
	if err := callJSON(ctx, http.MethodGet, azureIMDS+"instance?api-version=2021-05-01&format=json", nil, md, &inst); err != nil {
		return nil, fmt.Errorf("no instance metadata from Azure IMDS: %w", err)
	}
	c := inst.Compute
	data := map[string]any{"role": role, "jwt": tok.AccessToken, "subscription_id": c.SubscriptionID, "resource_group_name": c.ResourceGroupName}
	if c.VMScaleSetName != "" {
		data["vmss_name"] = c.VMScaleSetName
	} else {
		data["vm_name"] = c.Name
	}
	return data, nil
}

// callJSON makes an HTTP call and decodes its JSON answer into out. Errors
// carry the status, never the body (it may hold a credential).
func callJSON(ctx context.Context, method, u string, body io.Reader, h http.Header, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(statusText(resp.StatusCode))
	}
	if json.NewDecoder(resp.Body).Decode(out) != nil {
		return errors.New("the answer is not the expected JSON")
	}
	return nil
}
