package gcp

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrets-init/secrets-init/internal/testbin"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testbin.Cleanup()
	os.Exit(code)
}

// binary builds secrets-init once per test run.
func binary(t *testing.T) string { return testbin.SecretsInit(t) }

// run runs the binary with an environment built from scratch: PATH, a
// private HOME and env. It returns stdout, stderr and the exit code.
func run(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}

// TestBinaryEmulator resolves every form through SECRET_MANAGER_EMULATOR_HOST
// in the built binary, with the Google libraries' debug logging on, and
// checks no value reaches secrets-init's own output.
func TestBinaryEmulator(t *testing.T) {
	f := startFake(t)
	f.Add("projects/p/secrets/db", []byte("old-"+canary))
	f.Add("projects/p/secrets/db", []byte("pass-"+canary+"\n"))
	f.Add("projects/p/secrets/json", []byte(`{"user":"app-`+canary+`","port":5432}`))
	f.Add("projects/p/locations/europe-west4/secrets/reg", []byte("regional-"+canary))
	bin := []byte{0, 'b', 'i', 'n', 0xff}
	f.Add("projects/p/secrets/bin", bin)

	out, errOut, code := run(t, []string{
		EmulatorEnv + "=" + f.Addr,
		"GOOGLE_CLOUD_PROJECT=p",
		"GOOGLE_SDK_GO_LOGGING_LEVEL=debug",
		"A=gcp:secretmanager:projects/p/secrets/db?trim",
		"B=gcp:secretmanager:db/versions/1",
		"C=gcp:secretmanager:projects/p/locations/europe-west4/secrets/reg",
		"D=gcp:secretmanager:projects/p/secrets/json#user",
		"E=gcp:secretmanager:projects/p/secrets/json#port",
		"F=gcp:secretmanager:projects/p/secrets/bin?file",
	}, "--log-level", "debug", "--", "sh", "-c", `printf '%s|%s|%s|%s|%s\n' "$A" "$B" "$C" "$D" "$E"; cat "$F"`)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	want := "pass-" + canary + "|old-" + canary + "|regional-" + canary + "|app-" + canary + "|5432\n" + string(bin)
	if out != want {
		t.Errorf("child saw %q, want %q", out, want)
	}
	// The Google libraries log payloads in base64.
	for _, v := range []string{canary, base64.StdEncoding.EncodeToString([]byte("pass-" + canary + "\n"))} {
		if strings.Contains(errOut, v) {
			t.Errorf("a value reached stderr:\n%s", errOut)
		}
	}
	if got := f.Requests(); len(got) != 5 {
		t.Errorf("the emulator got %d requests, want 5 (one per distinct target): %q", len(got), got)
	}
}

// TestBinaryFailures checks exit status 125 and one value-free line per
// failed variable.
func TestBinaryFailures(t *testing.T) {
	f := startFake(t)
	f.Add("projects/p/secrets/denied", []byte(canary))
	f.Deny("projects/p/secrets/denied")
	f.Add("projects/p/secrets/ok", []byte(canary))
	f.CorruptCRC(true)
	out, errOut, code := run(t, []string{
		EmulatorEnv + "=" + f.Addr,
		"MISSING=gcp:secretmanager:projects/p/secrets/missing",
		"DENIED=gcp:secretmanager:projects/p/secrets/denied",
		"CORRUPT=gcp:secretmanager:projects/p/secrets/ok",
		"OPTIONAL=gcp:secretmanager:projects/p/secrets/missing2?optional",
	}, "--", "sh", "-c", "echo started")
	if code != 125 || out != "" {
		t.Fatalf("exit %d, stdout %q; want 125 and no child", code, out)
	}
	for _, w := range []string{"MISSING: ", "not found in project p", "DENIED: ", "secretmanager.versions.access", "CORRUPT: ", "CRC32C"} {
		if !strings.Contains(errOut, w) {
			t.Errorf("stderr does not say %q:\n%s", w, errOut)
		}
	}
	if strings.Contains(errOut, "OPTIONAL") || strings.Contains(errOut, canary) {
		t.Errorf("stderr names the optional variable or holds a value:\n%s", errOut)
	}
}

// TestBinaryNoGoogleReference: with only a non-Google reference and a
// metadata server that accepts and never answers, the child starts and
// nothing ever connects to the metadata server.
func TestBinaryNoGoogleReference(t *testing.T) {
	l := silentListener(t)
	file := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(file, []byte("from a file"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := run(t, []string{"GCE_METADATA_HOST=" + l.addr, "X=secretfile:" + file},
		"--", "sh", "-c", `echo "$X"`)
	if code != 0 || out != "from a file\n" {
		t.Fatalf("exit %d, stdout %q; stderr:\n%s", code, out, errOut)
	}
	if n := l.accepted(); n != 0 {
		t.Errorf("the metadata server got %d connections", n)
	}
}

// TestBinaryNoMetadataServer: with a Google reference, no credentials and
// a metadata server that never answers, the binary fails at --timeout.
func TestBinaryNoMetadataServer(t *testing.T) {
	l := silentListener(t)
	out, errOut, code := run(t, []string{"GCE_METADATA_HOST=" + l.addr, "S=gcp:secretmanager:projects/p/secrets/s"},
		"--timeout", "2s", "--", "sh", "-c", "echo started")
	if code != 125 || out != "" || !strings.Contains(errOut, "S: gcp:secretmanager:projects/p/secrets/s: ") {
		t.Fatalf("exit %d, stdout %q; want 125 and a line for S; stderr:\n%s", code, out, errOut)
	}
	if l.accepted() == 0 {
		t.Error("the metadata server was never asked")
	}
	t.Logf("stderr: %s", errOut)
}
