package gcp

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/kms/apiv1/kmspb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/secrets-init/secrets-init/provider/gcp/gcpfake"
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

// TestBinaryKMS runs the built binary against the fake Cloud KMS through
// KMS_EMULATOR_HOST: encrypt fetches the public key (GetPublicKey, its
// pem_crc32c checked), the run unwraps with AsymmetricDecrypt (CRC32C
// both ways), and the failures name the key and the permission.
func TestBinaryKMS(t *testing.T) {
	k, err := gcpfake.StartKMS()
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	const ring = "projects/p/locations/europe-west4/keyRings/r/cryptoKeys/"
	key := ring + "app/cryptoKeyVersions/1"
	other := ring + "other/cryptoKeyVersions/1"
	sha1 := ring + "sha1/cryptoKeyVersions/2"
	signing := ring + "sign/cryptoKeyVersions/1"
	denied := ring + "denied/cryptoKeyVersions/1"
	k.AddKey(key, rsaKey(t, "../jwe/testdata/key.pem"), kmspb.CryptoKeyVersion_RSA_DECRYPT_OAEP_2048_SHA256)
	k.AddKey(other, rsaKey(t, "../jwe/testdata/other.pem"), kmspb.CryptoKeyVersion_RSA_DECRYPT_OAEP_2048_SHA256)
	k.AddKey(sha1, rsaKey(t, "../jwe/testdata/other.pem"), kmspb.CryptoKeyVersion_RSA_DECRYPT_OAEP_2048_SHA1)
	k.AddKey(signing, rsaKey(t, "../jwe/testdata/key.pem"), kmspb.CryptoKeyVersion_RSA_SIGN_PSS_2048_SHA256)
	k.AddKey(denied, rsaKey(t, "../jwe/testdata/key.pem"), kmspb.CryptoKeyVersion_RSA_DECRYPT_OAEP_2048_SHA256)
	k.Deny(denied)
	env := []string{KMSEmulatorEnv + "=" + k.Addr, "GOOGLE_SDK_GO_LOGGING_LEVEL=debug"}

	encrypt := func(name string, extra ...string) string {
		t.Helper()
		out, stderr, code := runIn(t, `{"user":"app","password":"`+canary+`"}`, env, append([]string{"encrypt", "--key", "gcp-kms://" + name}, extra...)...)
		if code != 0 {
			t.Fatalf("encrypt %s: exit %d: %s", name, code, stderr)
		}
		return strings.TrimSpace(out)
	}
	ref := encrypt(key)
	refJSON := encrypt(key, "--json")
	refSHA1 := encrypt(sha1, "--enc", "A128CBC-HS256")
	if !strings.HasPrefix(refSHA1, "jwe:eyJhbGciOiJSU0EtT0FFUCIs") { // {"alg":"RSA-OAEP",
		t.Errorf("a SHA-1 key gets %s", refSHA1[:40])
	}

	out, stderr, code := run(t, append(env, "A="+ref+"#password", "B="+ref+"#user", "C="+refJSON+"#password", "D="+refSHA1+"#user"), "--", "/usr/bin/env")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"A=" + canary, "B=app", "C=" + canary, "D=app"} {
		if !strings.Contains("\n"+out, "\n"+want+"\n") {
			t.Errorf("the child's environment lacks %s", want)
		}
	}
	if strings.Contains(stderr, canary) {
		t.Errorf("stderr holds a value:\n%s", stderr)
	}
	decrypts := 0
	for _, r := range k.Requests() {
		if strings.HasPrefix(r, "AsymmetricDecrypt ") {
			decrypts++
		}
	}
	if decrypts != 3 {
		t.Errorf("%d AsymmetricDecrypt calls, want 3 (one per distinct wrapped key): %v", decrypts, k.Requests())
	}

	_, stderr, code = run(t, append(env,
		"WRONG="+ref+"?key=gcp-kms://"+other,
		"DENIED="+ref+"?key=gcp-kms://"+denied,
		"MISSING="+ref+"?key=gcp-kms://"+ring+"gone/cryptoKeyVersions/1",
		"BAD_URI="+ref+"?key=gcp-kms://projects/p/keyRings/r"), "true")
	t.Logf("stderr of a failed resolution:\n%s", stderr)
	for _, want := range []string{
		"WRONG: jwe:", "key gcp-kms://" + other + ": the key cannot unwrap the JWE's content key: the JWE was encrypted to another key",
		"DENIED: jwe:", "key gcp-kms://" + denied + ": permission denied: the workload needs cloudkms.cryptoKeyVersions.useToDecrypt (role roles/cloudkms.cryptoKeyDecrypter) on the key",
		"MISSING: jwe:", "the key version does not exist",
		"BAD_URI: jwe:", "not a Cloud KMS key version",
		"4 of 4 references failed",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	if code != 125 || strings.Contains(stderr, canary) {
		t.Errorf("exit %d, want 125; or stderr holds a value", code)
	}

	// CRC32C, both ways: a corrupted answer, a corrupted request.
	k.CorruptCRC(true)
	_, stderr, code = run(t, append(env, "A="+ref), "true")
	if code != 125 || !strings.Contains(stderr, "the answer failed its CRC32C check") {
		t.Errorf("corrupted answer: exit %d: %s", code, stderr)
	}
	_, stderr, code = runIn(t, canary, env, "encrypt", "--key", "gcp-kms://"+key)
	if code != 1 || !strings.Contains(stderr, "the public key failed its CRC32C check") {
		t.Errorf("corrupted public key: exit %d: %s", code, stderr)
	}
	k.CorruptCRC(false)
	k.CorruptRequests(true)
	_, stderr, code = run(t, append(env, "A="+ref), "true")
	if code != 125 || !strings.Contains(stderr, "Cloud KMS says the request was corrupted in transit (CRC32C)") {
		t.Errorf("corrupted request: exit %d: %s", code, stderr)
	}
	k.CorruptRequests(false)

	// encrypt checks the key's purpose, and names the permission.
	_, stderr, code = runIn(t, canary, env, "encrypt", "--key", "gcp-kms://"+signing)
	if code != 1 || !strings.Contains(stderr, "the key's algorithm is RSA_SIGN_PSS_2048_SHA256: the key's purpose must be ASYMMETRIC_DECRYPT") {
		t.Errorf("encrypt to a signing key: exit %d: %s", code, stderr)
	}
	_, stderr, code = runIn(t, canary, env, "encrypt", "--key", "gcp-kms://"+denied)
	if code != 1 || !strings.Contains(stderr, "cloudkms.cryptoKeyVersions.viewPublicKey") {
		t.Errorf("encrypt with a denied key: exit %d: %s", code, stderr)
	}
}

// runIn is run with stdin.
func runIn(t *testing.T, stdin string, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	if strings.Contains(stderr.String(), canary) {
		t.Errorf("stderr holds a value:\n%s", stderr.String())
	}
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}

// TestKMSWithCredentials unwraps with ADC credentials (a service account
// key) over TLS: the call carries a bearer token, and the checksums hold.
func TestKMSWithCredentials(t *testing.T) {
	isolate(t)
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", writeServiceAccount(t, "cred-p"))
	k, roots, err := gcpfake.StartKMSTLS()
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	const name = "projects/cred-p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1"
	priv := rsaKey(t, "../jwe/testdata/key.pem")
	k.AddKey(name, priv, kmspb.CryptoKeyVersion_RSA_DECRYPT_OAEP_2048_SHA256)
	kms, err := OpenKMS(context.Background(), settings())
	if err != nil {
		t.Fatal(err)
	}
	kms.extra = []option.ClientOption{option.WithEndpoint(k.Addr),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots})))}
	defer kms.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pub, err := kms.PublicKey(ctx, "gcp-kms://"+name)
	if err != nil || pub.Key.N.Cmp(priv.N) != 0 || pub.Algorithms[0] != jwe.RSAOAEP256 {
		t.Fatalf("PublicKey = %+v, %v", pub, err)
	}
	cek := []byte("0123456789abcdef")
	wrapped, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub.Key, cek, nil)
	got, err := kms.Unwrap(ctx, "gcp-kms://"+name, jwe.RSAOAEP256, wrapped)
	if err != nil || string(got) != string(cek) {
		t.Fatalf("Unwrap = %q, %v", got, err)
	}
	auth := k.Authorizations()
	if len(auth) != 2 || !strings.HasPrefix(auth[0], "Bearer ") || !strings.HasPrefix(auth[1], "Bearer ") {
		t.Errorf("authorization metadata %q, want a bearer token on each call", auth)
	}
}
