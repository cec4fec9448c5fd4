package jwe

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/secrets-init/secrets-init/internal/testbin"
)

// runBinary runs the built secrets-init with an environment made from
// scratch plus vars, and returns its output and exit code.
func runBinary(t *testing.T, bin string, args []string, vars ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, vars...)
	cmd.Dir = "testdata"
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

// short is how messages show a JWE.
func short(jwe string) string { return "jwe:" + jwe[:12] + "…" + jwe[len(jwe)-8:] }

func hasLine(out, line string) bool { return strings.Contains("\n"+out, "\n"+line+"\n") }

// TestBinaryFileKeys runs the built binary on jwe: values decrypted with
// file: keys: both serialisations, every way of naming the key, options,
// detection of bare JWE; then the failures, with no plaintext in any output.
func TestBinaryFileKeys(t *testing.T) {
	bin := testbin.SecretsInit(t)
	p := pub(t, "testdata/key.pem")
	kid := "file:key.pem" // relative to the binary's directory
	db := seal(t, p, jose.RSA_OAEP_256, jose.A128CBC_HS256, kid, `{"user":"app","password":"`+canary+`"}`, nil)
	noKid := compact(t, seal(t, p, jose.RSA_OAEP, jose.A256GCM, "", canary+"-nokid\n", nil))
	looksLikeRef := compact(t, seal(t, p, jose.RSA_OAEP_256, jose.A256GCM, kid, "secretfile:/etc/hostname", nil))
	bare := compact(t, seal(t, p, jose.RSA_OAEP_256, jose.A192GCM, kid, canary+"-bare", nil))
	fileOut := filepath.Join(t.TempDir(), "pw")

	stdout, stderr, code := runBinary(t, bin, []string{"--", "/usr/bin/env"},
		"DB_PASSWORD=jwe:"+compact(t, db)+"#password",
		"DB_USER=jwe:"+db.FullSerialize()+"#user",
		"PW_FILE=jwe:"+compact(t, db)+"#password?file="+fileOut,
		"NOKID=jwe:"+noKid+"?trim",
		"NOKID_BY_KEY=jwe:"+noKid+"?key=file%3Akey.pem",
		"LITERAL=jwe:"+looksLikeRef,
		"BARE="+bare,
		"SECRETS_INIT_JWE_KEY=file:key.pem",
	)
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	for _, want := range []string{
		"DB_PASSWORD=" + canary, "DB_USER=app", "PW_FILE=" + fileOut, "NOKID=" + canary + "-nokid",
		"NOKID_BY_KEY=" + canary + "-nokid", "LITERAL=secretfile:/etc/hostname", "BARE=" + bare,
	} {
		if !hasLine(stdout, want) {
			t.Errorf("the child's environment lacks %s:\n%s", want, stdout)
		}
	}
	if b, err := os.ReadFile(fileOut); err != nil || string(b) != canary {
		t.Errorf("?file holds %q, %v", b, err)
	}
	if strings.Contains(stderr, canary) {
		t.Errorf("stderr holds a value:\n%s", stderr)
	}

	// SECRETS_INIT_JWE_DETECT=1: a bare JWE is decrypted.
	stdout, stderr, code = runBinary(t, bin, []string{"--", "/usr/bin/env"}, "BARE="+bare, "SECRETS_INIT_JWE_DETECT=1")
	if code != 0 || !hasLine(stdout, "BARE="+canary+"-bare") {
		t.Errorf("detect: exit %d, stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	_, stderr, code = runBinary(t, bin, []string{"--", "/usr/bin/env"}, "BARE="+bare, "SECRETS_INIT_JWE_DETECT=yes")
	if code != 125 || !strings.Contains(stderr, `SECRETS_INIT_JWE_DETECT="yes": want 1 or 0`) {
		t.Errorf("a bad SECRETS_INIT_JWE_DETECT: exit %d, stderr:\n%s", code, stderr)
	}

	// check: a value-free report naming the store and a short reference.
	stdout, stderr, code = runBinary(t, bin, []string{"check"}, "DB_PASSWORD=jwe:"+compact(t, db)+"#password")
	if code != 0 || !strings.Contains(stdout, "DB_PASSWORD  jwe    "+short(compact(t, db))+"#password") || strings.Contains(stdout+stderr, canary) {
		t.Errorf("check: exit %d, stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}

	// Failures: each variable named, the command not started, exit 125,
	// no plaintext anywhere.
	good := strings.Split(compact(t, db), ".")
	tampered := append([]string{}, good...)
	tampered[3] = "A" + tampered[3][1:]
	if tampered[3] == good[3] {
		tampered[3] = "B" + tampered[3][1:]
	}
	sym := []byte("0123456789abcdef")
	refused := map[string]string{
		"RSA1_5":             compact(t, seal(t, p, jose.RSA1_5, jose.A128GCM, kid, canary, nil)),
		"dir":                compact(t, seal(t, sym, jose.DIRECT, jose.A128GCM, kid, canary, nil)),
		"A128KW":             compact(t, seal(t, sym, jose.A128KW, jose.A128GCM, kid, canary, nil)),
		"A128GCMKW":          compact(t, seal(t, sym, jose.A128GCMKW, jose.A128GCM, kid, canary, nil)),
		"ECDH-ES":            compact(t, seal(t, loadECPublic(t), jose.ECDH_ES, jose.A128GCM, kid, canary, nil)),
		"PBES2-HS256+A128KW": compact(t, seal(t, "password", jose.PBES2_HS256_A128KW, jose.A128GCM, kid, canary, nil)),
	}
	vars := []string{
		"WRONG_KEY=jwe:" + compact(t, db) + "?key=file:other.pem",
		"TAMPERED=jwe:" + strings.Join(tampered, "."),
		"NOT_ALLOWED=jwe:" + compact(t, seal(t, pub(t, "testdata/other.pem"), jose.RSA_OAEP_256, jose.A128GCM, "file:other.pem", canary, nil)),
		"NO_KEY=jwe:" + noKid,
		"SECRETS_INIT_JWE_KEYS=file:key",
	}
	for alg, j := range refused {
		vars = append(vars, "REFUSED_"+strings.NewReplacer("-", "_", "+", "_").Replace(alg)+"=jwe:"+j)
	}
	stdout, stderr, code = runBinary(t, bin, []string{"--", "/usr/bin/env"}, vars...)
	t.Logf("stderr of a failed resolution:\n%s", stderr)
	if code != 125 || stdout != "" {
		t.Errorf("exit %d, stdout %q; want 125 and the command not started", code, stdout)
	}
	for _, want := range []string{
		"WRONG_KEY: " + short(compact(t, db)) + "?key=file:other.pem: key file:other.pem: the key cannot unwrap the JWE's content key: the JWE was encrypted to another key",
		"TAMPERED: " + short(strings.Join(tampered, ".")) + ": the JWE does not authenticate with the content key from file:key.pem: its ciphertext was altered",
		"NOT_ALLOWED: jwe:",
		"the JWE's kid names key file:other.pem, which SECRETS_INIT_JWE_KEYS does not allow",
		"NO_KEY: jwe:",
		"no key for the JWE: give ?key=KEYURI, encrypt with a key URI as kid, or set SECRETS_INIT_JWE_KEY",
		"10 of 10 references failed; the command was not started",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	for alg := range refused {
		if !strings.Contains(stderr, `the JWE's key algorithm "`+alg+`" is refused`) {
			t.Errorf("stderr does not refuse %s", alg)
		}
	}
	if strings.Contains(stdout+stderr, canary) {
		t.Errorf("the output holds a value")
	}
}
