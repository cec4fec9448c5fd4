package aws

import (
	"bytes"
	"crypto/rsa"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/secrets-init/secrets-init/internal/testbin"
	"github.com/secrets-init/secrets-init/provider/aws/awsfake"
	"github.com/secrets-init/secrets-init/provider/jwe"
)

func rsaKey(t *testing.T, path string) *rsa.PrivateKey {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k, err := jwe.ParseKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return k.(*rsa.PrivateKey)
}

// TestBinaryKMS runs the built binary against the fake's KMS: encrypt
// fetches the public key (GetPublicKey), the run unwraps the content key
// (Decrypt), every request SigV4-signed for kms.
func TestBinaryKMS(t *testing.T) {
	bin := testbin.SecretsInit(t)
	f := awsfake.New()
	defer f.Close()
	keyARN := f.PutKey("eu-west-1", "1234abcd-12ab-34cd-56ef-1234567890ab", awsfake.Key{Private: rsaKey(t, "../jwe/testdata/key.pem")})
	otherARN := f.PutKey("eu-west-1", "other", awsfake.Key{Private: rsaKey(t, "../jwe/testdata/other.pem")})
	sha1Only := f.PutKey("us-east-1", "sha1", awsfake.Key{Private: rsaKey(t, "../jwe/testdata/other.pem"), Algorithms: []string{"RSAES_OAEP_SHA_1"}})
	signing := f.PutKey("eu-west-1", "signing", awsfake.Key{Private: rsaKey(t, "../jwe/testdata/key.pem"), Usage: "SIGN_VERIFY"})
	deniedARN := f.PutKey("eu-west-1", "denied", awsfake.Key{Private: rsaKey(t, "../jwe/testdata/key.pem")})
	f.FailName("denied", "AccessDeniedException", "User: arn:aws:sts::123456789012:assumed-role/app is not authorized to perform: kms:Decrypt")

	run := func(stdin string, args []string, vars ...string) (stdout, stderr string, code int) {
		env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "AWS_REGION=us-east-1"}
		for k, v := range f.Env() {
			env = append(env, k+"="+v)
		}
		cmd := exec.Command(bin, args...)
		cmd.Env = append(env, vars...)
		cmd.Stdin = strings.NewReader(stdin)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatal(err)
		}
		if strings.Contains(errOut.String(), canary) {
			t.Errorf("stderr holds a value:\n%s", errOut.String())
		}
		return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
	}
	encrypt := func(keyURI string, extra ...string) string {
		t.Helper()
		out, stderr, code := run(`{"user":"app","password":"`+canary+`"}`, append([]string{"encrypt", "--key", keyURI}, extra...))
		if code != 0 {
			t.Fatalf("encrypt --key %s: exit %d: %s", keyURI, code, stderr)
		}
		return strings.TrimSpace(out)
	}
	ref := encrypt("aws-kms://" + keyARN)
	refJSON := encrypt("aws-kms://"+keyARN, "--json", "--enc", "A128CBC-HS256")
	refSHA1 := encrypt("aws-kms://" + sha1Only)
	if !strings.HasPrefix(refSHA1, "jwe:eyJhbGciOiJSU0EtT0FFUCIs") { // {"alg":"RSA-OAEP",
		t.Errorf("a key that does only SHA-1 gets %s", refSHA1[:40])
	}
	if n := f.Count("GetPublicKey"); n != 3 {
		t.Errorf("%d GetPublicKey calls, want 3", n)
	}

	stdout, stderr, code := run("", []string{"--", "/usr/bin/env"},
		"DB_PASSWORD="+ref+"#password", "DB_USER="+ref+"#user", "AGAIN="+refJSON+"#password", "SHA1="+refSHA1+"#user")
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	for _, want := range []string{"DB_PASSWORD=" + canary, "DB_USER=app", "AGAIN=" + canary, "SHA1=app"} {
		if !strings.Contains("\n"+stdout, "\n"+want+"\n") {
			t.Errorf("the child's environment lacks %s", want)
		}
	}
	// One Decrypt per distinct wrapped key: ref's two variables share one.
	if n := f.Count("Decrypt"); n != 3 {
		t.Errorf("%d Decrypt calls, want 3", n)
	}

	// Failures name the key and the permission.
	_, stderr, code = run("", []string{"true"},
		"WRONG="+ref+"?key=aws-kms://"+otherARN,
		"DENIED="+ref+"?key=aws-kms://"+deniedARN,
		"MISSING="+ref+"?key=aws-kms://"+awsfake.KeyARN("eu-west-1", "gone"),
		"BAD_URI="+ref+"?key=aws-kms://arn:aws:s3:::bucket",
	)
	t.Logf("stderr of a failed resolution:\n%s", stderr)
	for _, want := range []string{
		"WRONG: jwe:", "key aws-kms://" + otherARN + ": the key cannot unwrap the JWE's content key: the JWE was encrypted to another key",
		"DENIED: jwe:", "key aws-kms://" + deniedARN + ": access denied: the workload's role needs kms:Decrypt on the key",
		"MISSING: jwe:", "the key does not exist in eu-west-1",
		"BAD_URI: jwe:", "not a KMS key ARN",
		"4 of 4 references failed",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	if code != 125 {
		t.Errorf("exit %d, want 125", code)
	}

	// encrypt checks the key's purpose.
	_, stderr, code = run(canary, []string{"encrypt", "--key", "aws-kms://" + signing})
	if code != 1 || !strings.Contains(stderr, "the key's usage is SIGN_VERIFY, not ENCRYPT_DECRYPT") {
		t.Errorf("encrypt to a signing key: exit %d, %s", code, stderr)
	}
	_, stderr, code = run(canary, []string{"encrypt", "--key", "aws-kms://" + deniedARN})
	if code != 1 || !strings.Contains(stderr, "access denied: the workload's role needs kms:GetPublicKey on the key") {
		t.Errorf("encrypt with a denied key: exit %d, %s", code, stderr)
	}
	// A KMS that accepts the call and never answers fails at the deadline.
	f.Hang()
	_, stderr, code = run("", []string{"--timeout", "2s", "true"}, "A="+ref)
	if code != 125 || !strings.Contains(stderr, "A: jwe:") || !strings.Contains(stderr, "deadline of 2s exceeded (--timeout)") {
		t.Errorf("a hanging KMS: exit %d: %s", code, stderr)
	}
	if n := f.BadSignatures(); n != 0 {
		t.Errorf("%d requests had a bad signature", n)
	}
	for _, c := range f.Calls() {
		if c.Region != "eu-west-1" && c.Region != "us-east-1" {
			t.Errorf("a call signed for %s", c.Region)
		}
	}
}
