package aws

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrets-init/secrets-init/internal/testbin"
	"github.com/secrets-init/secrets-init/provider/aws/awsfake"
)

// TestBinary builds secrets-init and runs it with nothing but environment
// variables pointing it at the fake: the product's own Open, endpoint and
// credential handling, with no test hook.
func TestBinary(t *testing.T) {
	bin := testbin.SecretsInit(t)

	f := awsfake.New()
	defer f.Close()
	dbARN := f.PutSecret("eu-west-1", "db", awsfake.Secret{String: `{"user":"app","password":"` + canary + `"}`})
	f.PutSecret("us-east-1", "token", awsfake.Secret{String: "tok-" + canary})
	f.PutParameter("us-east-1", "/app/url", awsfake.Parameter{Value: "postgres://db", Secure: true})
	f.PutParameter("us-east-1", "/app/url", awsfake.Parameter{Value: "postgres://db2", Labels: []string{"next"}})
	keystore := []byte{0xfe, 0xed, 0xfe, 0xed, 0, 0, 0, 2}
	f.PutSecret("us-east-1", "keystore", awsfake.Secret{Binary: keystore})
	keystorePath := filepath.Join(t.TempDir(), "keystore.jks")

	// run runs the binary with env built from scratch, plus vars.
	run := func(vars ...string) (stdout, stderr string, code int) {
		env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "AWS_REGION=us-east-1"}
		for k, v := range f.Env() {
			env = append(env, k+"="+v)
		}
		cmd := exec.Command(bin, "--", "/usr/bin/env")
		cmd.Env = append(env, vars...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatal(err)
		}
		return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
	}

	stdout, stderr, code := run(
		"DB_PASSWORD="+dbARN+":password",
		"DB_USER="+dbARN+":user",
		"TOKEN=aws:secretsmanager:token",
		"DB_URL=aws:ssm:/app/url:1",
		"DB_URL_NEXT=arn:aws:ssm:us-east-1:"+awsfake.Account+":parameter/app/url:next",
		"PLAIN=aws-not-a-reference",
		"KEYSTORE=aws:secretsmanager:keystore?file="+keystorePath,
	)
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	for _, want := range []string{
		"DB_PASSWORD=" + canary, "DB_USER=app", "TOKEN=tok-" + canary,
		"DB_URL=postgres://db", "DB_URL_NEXT=postgres://db2", "PLAIN=aws-not-a-reference",
		"KEYSTORE=" + keystorePath,
	} {
		if !strings.Contains("\n"+stdout, "\n"+want+"\n") {
			t.Errorf("the child's environment lacks %s", want)
		}
	}
	if got, err := os.ReadFile(keystorePath); err != nil || !bytes.Equal(got, keystore) {
		t.Errorf("the binary secret's file holds %x (%v), want %x", got, err, keystore)
	}
	if n := f.BadSignatures(); n != 0 {
		t.Errorf("%d requests had a bad signature", n)
	}
	if strings.Contains(stderr, canary) {
		t.Errorf("stderr holds a value:\n%s", stderr)
	}

	stdout, stderr, code = run("TOKEN=aws:secretsmanager:token", "MISSING=aws:secretsmanager:nope", "GONE=aws:ssm:/app/gone",
		"KEYSTORE=aws:secretsmanager:keystore")
	t.Logf("stderr of a failed resolution:\n%s", stderr)
	if code != 125 || stdout != "" {
		t.Errorf("exit %d with stdout %q, want 125 and the command not started", code, stdout)
	}
	for _, want := range []string{
		"MISSING: aws:secretsmanager:nope: not found in us-east-1\n",
		"GONE: aws:ssm:/app/gone: not found in us-east-1\n",
		"KEYSTORE: aws:secretsmanager:keystore: the secret is binary",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, canary) {
		t.Errorf("stderr holds a value:\n%s", stderr)
	}
}
