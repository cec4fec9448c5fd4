//go:build !no_aws

package vault

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

func TestAWSIAMLoginData(t *testing.T) {
	for _, k := range []string{"AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", canary)
	data, err := awsIAMLogin(t.Context(), "app")
	if err != nil {
		t.Fatal(err)
	}
	field := func(k string) string {
		b, err := base64.StdEncoding.DecodeString(data[k].(string))
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		return string(b)
	}
	var headers map[string][]string
	if err := json.Unmarshal([]byte(field("iam_request_headers")), &headers); err != nil {
		t.Fatal(err)
	}
	auth := strings.Join(headers["Authorization"], "")
	if data["role"] != "app" || data["iam_http_request_method"] != "POST" || field("iam_request_url") != "https://sts.amazonaws.com/" ||
		field("iam_request_body") != stsBody || !strings.Contains(auth, "Credential=AKIDEXAMPLE/") || !strings.Contains(auth, "/us-east-1/sts/aws4_request") {
		t.Errorf("login data %v, headers %v", data, headers)
	}
	if strings.Contains(fmt.Sprint(data, headers), canary) {
		t.Error("the login data hold the secret access key")
	}
}
