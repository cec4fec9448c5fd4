package policy

// The aws format is evaluated by an IAM policy simulator: the npm package
// @cloud-copilot/iam-simulate, run offline under Node by
// testdata/iamsim/sim.mjs. Every referenced resource must be allowed, and
// its neighbours (another name, suffix, region, account, action) denied.

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

const simDir = "testdata/iamsim"

var npmOnce sync.Once

// simulator returns the node binary, after `npm ci` if the simulator is
// not installed. Without node the test is skipped (CI installs node).
func simulator(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the IAM simulator test needs Node.js and npm")
	}
	var npmErr error
	var npmOut []byte
	npmOnce.Do(func() {
		if _, err := os.Stat(filepath.Join(simDir, "node_modules", "@cloud-copilot", "iam-simulate")); err == nil {
			return
		}
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = simDir
		npmOut, npmErr = cmd.CombinedOutput()
	})
	if npmErr != nil {
		t.Fatalf("npm ci in %s: %v\n%s", simDir, npmErr, npmOut)
	}
	return node
}

type simRequest struct {
	Action           string `json:"action"`
	Resource         string `json:"resource"`
	Account          string `json:"account"`
	PrincipalAccount string `json:"principalAccount"`
	ResourcePolicy   any    `json:"resourcePolicy,omitempty"`
}

// simulate evaluates policy for each request: Allowed, ImplicitlyDenied,
// ExplicitlyDenied, or "error: …" for a request the simulator rejects.
func simulate(t *testing.T, policy json.RawMessage, reqs []simRequest) []string {
	t.Helper()
	node := simulator(t)
	in, _ := json.Marshal(map[string]any{"policy": policy, "requests": reqs})
	cmd := exec.Command(node, "sim.mjs")
	cmd.Dir = simDir
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("sim.mjs: %v\n%s", err, stderr.String())
	}
	res := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(res) != len(reqs) {
		t.Fatalf("%d results for %d requests:\n%s", len(res), len(reqs), out)
	}
	return res
}

// req makes a request as a principal of the resource's own account, so
// that a denial comes from the identity policy and not from crossing
// accounts.
func req(action, arn string) simRequest {
	account := "111122223333"
	if f := strings.Split(arn, ":"); len(f) > 4 {
		account = f[4]
	}
	r := simRequest{Action: action, Resource: arn, Account: account, PrincipalAccount: account}
	if strings.HasPrefix(action, "kms:") {
		// A KMS key is usable only as far as its key policy lets IAM
		// policies decide: this is the default key policy, which does.
		r.ResourcePolicy = map[string]any{"Version": "2012-10-17", "Statement": []any{map[string]any{
			"Sid": "Enable IAM User Permissions", "Effect": "Allow", "Principal": map[string]any{"AWS": "arn:aws:iam::" + account + ":root"},
			"Action": "kms:*", "Resource": "*",
		}}}
	}
	return r
}

func TestIAMSimulator(t *testing.T) {
	const (
		sm  = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:"
		ssm = "arn:aws:ssm:eu-west-1:111122223333:parameter/"
		key = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	)
	gen := func(extra ...string) json.RawMessage {
		out, stderr, code := run(t, "", append(append([]string{"-f", manifests + "/workloads.yaml", "--format", "aws",
			"--group", "serviceaccount/prod/web", "--kms-key", key}, flags...), extra...)...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		return json.RawMessage(out)
	}
	get, describe := "secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"
	allowed := []simRequest{
		req(get, sm+"prod/db-Q1w2E3"),     // aws:secretsmanager:prod/db, as AWS names it
		req(get, sm+"prod/stripe-zz99Aa"), // a partial ARN
		req(get, sm+"prod/api-AbC123"),    // a complete ARN
		req("secretsmanager:BatchGetSecretValue", "*"),
		req("ssm:GetParameters", ssm+"prod/db/host"), // aws:ssm:/prod/db/host
		req("ssm:GetParameter", ssm+"prod/db/host"),
		req("ssm:GetParameters", ssm+"prod/flags"),  // an ARN with a version
		req("ssm:GetParameters", ssm+"prod/listed"), // aws:ssm:prod/listed
		req("kms:Decrypt", key),
	}
	denied := []simRequest{
		req(get, sm+"prod/db-extra-Q1w2E3"), // another secret, prod/db-extra
		req(get, sm+"prod/db2-Q1w2E3"),
		req(get, sm+"prod/dbQ1w2E3"),
		req(get, sm+"prod/stripe-live-zz99Aa"),
		req(get, sm+"prod/api-Zz9999"), // the same name, another secret (suffix)
		req(get, sm+"prod/api-AbC123-Q1w2E3"),
		req(get, "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db-Q1w2E3"), // another region
		req(get, "arn:aws:secretsmanager:eu-west-1:444455556666:secret:prod/db-Q1w2E3"), // another account
		req(get, "arn:aws-cn:secretsmanager:eu-west-1:111122223333:secret:prod/db-Q1w2E3"),
		req(describe, sm+"prod/db-Q1w2E3"), // only with --refresh
		req("secretsmanager:PutSecretValue", sm+"prod/db-Q1w2E3"),
		req("secretsmanager:DeleteSecret", sm+"prod/api-AbC123"),
		req("ssm:GetParameters", ssm+"prod/db/host2"),
		req("ssm:GetParameters", ssm+"prod/db"),
		req("ssm:GetParameters", ssm+"prod/db/host/child"),
		req("ssm:GetParametersByPath", ssm+"prod/db"),
		req("ssm:PutParameter", ssm+"prod/db/host"),
		req("ssm:GetParameters", "arn:aws:ssm:us-east-1:111122223333:parameter/prod/db/host"),
		req("ssm:GetParameters", "arn:aws:ssm:eu-west-1:444455556666:parameter/prod/db/host"),
		req("kms:Decrypt", "arn:aws:kms:eu-west-1:111122223333:key/other"),
		req("kms:Encrypt", key),
	}
	check := func(policy json.RawMessage, reqs []simRequest, want string) {
		t.Helper()
		for i, got := range simulate(t, policy, reqs) {
			if got != want {
				t.Errorf("%s on %s: %s, want %s", reqs[i].Action, reqs[i].Resource, got, want)
			}
		}
	}
	policy := gen()
	check(policy, allowed, "Allowed")
	check(policy, denied, "ImplicitlyDenied")

	// --refresh adds DescribeSecret on the same secrets, nothing else.
	policy = gen("--refresh")
	check(policy, append(allowed, req(describe, sm+"prod/db-Q1w2E3"), req(describe, sm+"prod/api-AbC123")), "Allowed")
	check(policy, append(denied[:9], req(describe, sm+"prod/db2-Q1w2E3"), req("secretsmanager:ListSecrets", "*")), "ImplicitlyDenied")

	// --no-batch: no BatchGetSecretValue.
	check(gen("--no-batch"), []simRequest{req("secretsmanager:BatchGetSecretValue", "*")}, "ImplicitlyDenied")
}

// TestIAMSimulatorJWE: a jwe: reference's key (its kid) may decrypt, and
// nothing else: not its neighbour key, not another action on it.
func TestIAMSimulatorJWE(t *testing.T) {
	const key = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	out, stderr, code := run(t, "", "-f", "testdata/jwe/web.yaml", "--format", "aws", "--group-by", "none",
		"--aws-region", "eu-west-1", "--aws-account", "111122223333", "--azure-subscription", "s", "--azure-resource-group", "g")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	policy := json.RawMessage(out)
	for i, got := range simulate(t, policy, []simRequest{req("kms:Decrypt", key)}) {
		if got != "Allowed" {
			t.Errorf("request %d: kms:Decrypt on the JWE's key: %s", i, got)
		}
	}
	denied := []simRequest{
		req("kms:Decrypt", "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ac"), // the neighbour key
		req("kms:Decrypt", "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
		req("kms:Decrypt", "arn:aws:kms:eu-west-1:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
		req("kms:Encrypt", key),
		req("kms:GetPublicKey", key),
		req("kms:ReEncryptFrom", key),
	}
	for i, got := range simulate(t, policy, denied) {
		if got != "ImplicitlyDenied" {
			t.Errorf("%s on %s: %s, want ImplicitlyDenied", denied[i].Action, denied[i].Resource, got)
		}
	}
}
