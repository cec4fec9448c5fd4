package encrypt

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secrets-init/secrets-init/internal/testbin"
	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/provider/jwe"
)

const (
	canary  = "CANARY-encrypt-91d2"
	keyFile = "../../provider/jwe/testdata/key.pem"
	pubFile = "../../provider/jwe/testdata/key.pub.pem"
)

// encrypt runs Main in-process.
func encrypt(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Main(args, strings.NewReader(stdin), &out, &errOut)
	if strings.Contains(errOut.String(), canary) {
		t.Fatalf("stderr holds the value:\n%s", errOut.String())
	}
	return out.String(), errOut.String(), code
}

// decrypt resolves a jwe: reference with the store.
func decrypt(t *testing.T, ref string) (string, error) {
	t.Helper()
	r, ok, err := provider.Parse(ref)
	if !ok || err != nil {
		t.Fatalf("Parse: %v %v", ok, err)
	}
	st, err := jwe.Open(context.Background(), provider.Settings{Limit: provider.NewLimiter(1)})
	if err != nil {
		t.Fatal(err)
	}
	res := st.Fetch(context.Background(), []provider.Target{r.Target})[0]
	return string(res.Value), res.Err
}

func TestEncrypt(t *testing.T) {
	abs, _ := filepath.Abs(keyFile)
	kid := "file:" + abs
	for _, args := range [][]string{
		{"--key", pubFile, "--kid", kid},
		{"--key", kid},
		{"--key", pubFile, "--kid", kid, "--json", "--enc", "A128CBC-HS256"},
		{"--key", "file://" + abs, "--enc", "A192GCM"}, // file:///PATH
	} {
		for _, enc := range encs {
			args := append(args, "--enc", enc)
			out, stderr, code := encrypt(t, canary, args...)
			if code != 0 || stderr != "" || !strings.HasPrefix(out, "jwe:") || !strings.HasSuffix(out, "\n") {
				t.Fatalf("encrypt %v: exit %d, stdout %q, stderr %q", args, code, out, stderr)
			}
			if strings.Contains(out, canary) {
				t.Fatalf("the output holds the plaintext")
			}
			got, err := decrypt(t, strings.TrimSuffix(out, "\n"))
			if err != nil || got != canary {
				t.Errorf("encrypt %v decrypts to %q, %v", args, got, err)
			}
		}
	}
}

func TestEncryptInput(t *testing.T) {
	abs, _ := filepath.Abs(keyFile)
	key := []string{"--key", "file:" + abs}

	// A trailing newline is kept, with a warning, or stripped by --trim.
	out, stderr, _ := encrypt(t, canary+"\n", key...)
	if !strings.Contains(stderr, "warning: the value ends with a newline") {
		t.Errorf("no warning for a trailing newline: %q", stderr)
	}
	if got, _ := decrypt(t, strings.TrimSpace(out)); got != canary+"\n" {
		t.Errorf("the newline was not kept: %q", got)
	}
	out, stderr, _ = encrypt(t, canary+"\r\n", append(key, "--trim")...)
	if got, _ := decrypt(t, strings.TrimSpace(out)); got != canary || stderr != "" {
		t.Errorf("--trim: %q, stderr %q", got, stderr)
	}
	// Binary input, byte for byte, from --in.
	bin := []byte{0, 1, 2, 0xff, '\n', 'x'}
	in := filepath.Join(t.TempDir(), "in")
	os.WriteFile(in, bin, 0o600)
	out, _, code := encrypt(t, "ignored", append(key, "--in", in, "--no-prefix")...)
	if code != 0 || strings.HasPrefix(out, "jwe:") {
		t.Fatalf("--no-prefix: %q", out)
	}
	if got, _ := decrypt(t, "jwe:"+strings.TrimSpace(out)+"?file"); got != string(bin) {
		t.Errorf("--in: %q", got)
	}
	// A public key file without a key URI: a warning, and no kid.
	out, stderr, _ = encrypt(t, canary, "--key", pubFile)
	if !strings.Contains(stderr, "the JWE names no key") {
		t.Errorf("no warning for a JWE without kid: %q", stderr)
	}
	if _, err := decrypt(t, strings.TrimSpace(out)); err == nil || !strings.Contains(err.Error(), "no key for the JWE") {
		t.Errorf("a JWE without kid: %v", err)
	}
}

func TestEncryptErrors(t *testing.T) {
	tests := []struct {
		stdin string
		args  []string
		code  int
		want  string
	}{
		{canary, nil, 2, "--key is required"},
		{canary, []string{"--key", pubFile, "extra"}, 2, `unexpected argument "extra"`},
		{canary, []string{"--key", pubFile, "--enc", "A128CTR"}, 2, `--enc "A128CTR" is not one of`},
		{canary, []string{"--key", pubFile, "--kid", "https://x"}, 2, `--kid "https://x" is not a key URI`},
		{canary, []string{"--bogus"}, 2, "flag provided but not defined: -bogus"},
		{"", []string{"--key", pubFile}, 1, "the value is empty"},
		{"\n", []string{"--key", pubFile, "--trim"}, 1, "the value is empty"},
		{canary, []string{"--key", "nope.pem"}, 1, "nope.pem: cannot read key file nope.pem: no such file or directory"},
		{canary, []string{"--key", "../../provider/jwe/testdata/small.pem"}, 1, "the RSA key has 1024 bits"},
		{canary, []string{"--key", "../../provider/jwe/testdata/ec.pem"}, 1, "not an RSA key"},
		{canary, []string{"--key", "encrypt.go"}, 1, "the key is neither PEM nor a JWK"},
		{canary, []string{"--key", "--in"}, 1, "cannot read key file --in"},
		{canary, []string{"--key", pubFile, "--in", "missing"}, 1, "open missing: no such file or directory"},
	}
	for _, tt := range tests {
		out, stderr, code := encrypt(t, tt.stdin, tt.args...)
		if code != tt.code || out != "" || !strings.Contains(stderr, tt.want) {
			t.Errorf("encrypt %v: exit %d, stdout %q, stderr %q; want exit %d and %q", tt.args, code, out, stderr, tt.code, tt.want)
		}
	}
	// A signing JWK is refused.
	jwk := filepath.Join(t.TempDir(), "sig.jwk")
	os.WriteFile(jwk, []byte(`{"kty":"RSA","use":"sig","n":"x","e":"AQAB"}`), 0o600)
	if _, stderr, code := encrypt(t, canary, "--key", jwk); code != 1 || !strings.Contains(stderr, "not a valid JWK") && !strings.Contains(stderr, `"sig"`) {
		t.Errorf("a signing JWK: exit %d, %q", code, stderr)
	}
	if out, _, code := encrypt(t, "", "--help"); code != 0 || !strings.Contains(out, "Usage: secrets-init encrypt --key KEYREF") {
		t.Errorf("--help: exit %d, %q", code, out)
	}
}

// run runs a program with stdin and an environment made from scratch.
func run(t *testing.T, stdin string, env []string, name string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.Run()
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

// TestJoseUtil checks the built binary against go-jose's own command line,
// jose-util: what encrypt writes, jose-util decrypts; what jose-util
// encrypts (the custodian command), secrets-init decrypts.
func TestJoseUtil(t *testing.T) {
	bin := testbin.SecretsInit(t)
	joseUtil := testbin.Build(t, "github.com/go-jose/go-jose/v4/jose-util")
	key, _ := filepath.Abs(keyFile)

	for _, args := range [][]string{{}, {"--json"}, {"--enc", "A128CBC-HS256"}} {
		args = append([]string{"encrypt", "--key", pubFile, "--no-prefix", "--kid", "file:" + key}, args...)
		jwe, stderr, code := run(t, canary, nil, bin, args...)
		if code != 0 {
			t.Fatalf("secrets-init %v: exit %d: %s", args, code, stderr)
		}
		plain, stderr, code := run(t, jwe, nil, joseUtil, "decrypt", "--key", keyFile)
		if code != 0 || plain != canary {
			t.Errorf("jose-util decrypt of secrets-init %v: exit %d, %q, %s", args, code, plain, stderr)
		}
	}

	for _, args := range [][]string{
		{"--alg", "RSA-OAEP-256", "--enc", "A128CBC-HS256"},
		{"--alg", "RSA-OAEP", "--enc", "A256GCM", "--full"},
	} {
		jwe, stderr, code := run(t, canary, nil, joseUtil, append([]string{"encrypt", "--key", pubFile}, args...)...)
		if code != 0 {
			t.Fatalf("jose-util encrypt %v: exit %d: %s", args, code, stderr)
		}
		env := []string{"SECRETS_INIT_JWE_KEY=file:" + key, "SECRET=jwe:" + strings.TrimSpace(jwe), "BARE=" + strings.TrimSpace(jwe), "SECRETS_INIT_JWE_DETECT=1"}
		out, stderr, code := run(t, "", env, bin, "--", "sh", "-c", `printf '%s|%s' "$SECRET" "$BARE"`)
		if code != 0 || out != canary+"|"+canary {
			t.Errorf("secrets-init on jose-util encrypt %v: exit %d, %q, %s", args, code, out, stderr)
		}
	}
}

// TestNodeJose checks interoperability with the jose npm package, an
// implementation that shares no code with go-jose.
func TestNodeJose(t *testing.T) {
	bin := testbin.SecretsInit(t)
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm is not installed")
	}
	dir := t.TempDir()
	for _, f := range []string{"package.json", "package-lock.json", "decrypt.mjs", "encrypt.mjs"} {
		b, err := os.ReadFile(filepath.Join("testdata/node", f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, f), b, 0o644)
	}
	ci := exec.Command(npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts")
	ci.Dir = dir
	if out, err := ci.CombinedOutput(); err != nil {
		t.Fatalf("npm ci: %v\n%s", err, out)
	}
	key, _ := filepath.Abs(keyFile)
	pub, _ := filepath.Abs(pubFile)

	for _, args := range [][]string{{}, {"--json", "--enc", "A256CBC-HS512"}, {"--enc", "A128GCM"}} {
		args = append([]string{"encrypt", "--key", "file:" + key}, args...)
		jwe, stderr, code := run(t, canary, nil, bin, args...)
		if code != 0 {
			t.Fatalf("secrets-init %v: exit %d: %s", args, code, stderr)
		}
		plain, stderr, code := run(t, jwe, nil, "node", filepath.Join(dir, "decrypt.mjs"), key)
		if code != 0 || plain != canary || !strings.Contains(stderr, "kid=file:"+key) {
			t.Errorf("node jose decrypt of secrets-init %v: exit %d, %q, %s", args, code, plain, stderr)
		}
	}

	for _, alg := range [][2]string{{"RSA-OAEP-256", "A256GCM"}, {"RSA-OAEP", "A192CBC-HS384"}} {
		jwe, stderr, code := run(t, canary, nil, "node", filepath.Join(dir, "encrypt.mjs"), pub, alg[0], alg[1], "file:"+key)
		if code != 0 {
			t.Fatalf("node jose encrypt %v: exit %d: %s", alg, code, stderr)
		}
		out, stderr, code := run(t, "", []string{"SECRET=jwe:" + strings.TrimSpace(jwe)}, bin, "--", "sh", "-c", `printf %s "$SECRET"`)
		if code != 0 || out != canary {
			t.Errorf("secrets-init on node jose %v: exit %d, %q, %s", alg, code, out, stderr)
		}
	}
}
