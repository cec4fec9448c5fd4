//go:build !no_aws

package vault

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/config"
)

// The aws-iam login follows the protocol of Vault's official helper
// (github.com/hashicorp/vault/api/auth/aws) on the AWS SDK v2 this binary
// already links (the helper would add the AWS SDK v1). Built without AWS
// (tag no_aws), the method is not available.

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
