package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestCommandLine runs the command as a subprocess (this test binary,
// re-executed) and checks its refusals of bad command lines.
func TestCommandLine(t *testing.T) {
	if args := os.Getenv("WEBHOOK_TEST_ARGS"); args != "" {
		os.Exit(run(strings.Fields(args)))
	}
	for _, tc := range []struct {
		args, stderr string
		code         int
	}{
		{"--version", "", 0},
		{"--no-such-flag", "flag provided but not defined", 2},
		{"--log-level=loud --image=x --tls-self-signed", "--log-level", 2},
		{"--tls-self-signed", "--image is required", 1},
		{"--image=x", "give --tls-cert and --tls-key, or --tls-self-signed", 1},
		{"--image=x --tls-self-signed --tls-cert=a --tls-key=b", "exclude each other", 1},
		{"--image=x --tls-cert=a", "give --tls-cert and --tls-key", 1},
		{"--image=x --tls-self-signed --concurrency=0", "--concurrency must be at least 1", 1},
		{"--image=x --tls-cert=/nonexistent/a --tls-key=/nonexistent/b --kubeconfig=/nonexistent/kubeconfig", "API access", 1},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCommandLine$")
		cmd.Env = []string{"WEBHOOK_TEST_ARGS=" + tc.args, "HOME=" + t.TempDir()}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if code != tc.code || !strings.Contains(stderr.String(), tc.stderr) {
			t.Errorf("%s: exit %d, stderr %q; want %d, %q", tc.args, code, stderr.String(), tc.code, tc.stderr)
		}
	}
}
