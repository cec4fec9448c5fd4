package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrets-init/secrets-init/internal/testbin"
)

// TestMain lets the test binary play the demo's child, as the demo binary
// does: run re-executes os.Executable with childCommand.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == childCommand {
		os.Exit(child(os.Stdout, os.Args[2:]))
	}
	os.Exit(m.Run())
}

// TestDemo builds secrets-init and runs the whole demo against it.
func TestDemo(t *testing.T) {
	bin := testbin.SecretsInit(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(&out, bin, self); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"child: received all 11 variables",
		"== A custodian encrypts a value to the KMS key's public half",
		"1 Decrypt, 1 GetParameters, 1 GetPublicKey)",
		"secrets-init: PAYMENT_KEY: aws:secretsmanager:prod/payments:api_key: not found in eu-west-1\n",
		"secrets-init: 2 of 4 references failed; the command was not started\n",
		"exit status 125\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the demo's output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestChildFailsOnWrongValues checks that the child, the demo's only
// judge of the successful run, rejects a wrong value, an unresolved
// reference and a missing variable.
func TestChildFailsOnWrongValues(t *testing.T) {
	manifest := filepath.Join(t.TempDir(), "m.json")
	if err := writeManifest(manifest, map[string]string{"A": "alpha", "B": "beta", "C": "gamma", "D": "delta"}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("A", "alpha")
	t.Setenv("B", "BETA")
	t.Setenv("C", "aws:ssm:/gamma")
	t.Setenv("D", "")
	os.Unsetenv("D")
	var out bytes.Buffer
	if code := child(&out, []string{manifest}); code != 1 {
		t.Errorf("child exited %d, want 1:\n%s", code, out.String())
	}
	for _, want := range []string{"child: 3 of 4 variables wrong", "not the expected value", "still a reference", "missing"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the child's output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "alpha") || strings.Contains(out.String(), "BETA") {
		t.Errorf("the child printed a value:\n%s", out.String())
	}
}
