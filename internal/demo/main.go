// Command demo runs secrets-init against local stand-ins for AWS Secrets
// Manager and SSM Parameter Store, Google Secret Manager and Azure Key Vault
// (the wire-level fakes the tests use), with no cloud account and no
// network beyond loopback:
//
//	go run ./internal/demo ./secrets-init          the demo (make demo)
//	go run ./internal/demo -serve                  keep the fakes up and print
//	                                               the environment to try it by hand
//
// It starts the fakes holding example secrets, writes a file for a
// secretfile: reference, encrypts a value to a KMS key of the AWS fake with
// `secrets-init encrypt` (a jwe: value, as a custodian commits to Git), prints the environment that points secrets-init at
// the fakes, and runs secrets-init with references to every store at once.
// The child is this program again: it prints the variables it received with
// their values masked, checks each against a digest the demo wrote, and fails
// if one is missing or wrong. A second run references secrets that do not
// exist and shows the fail-closed report. The demo exits non-zero if either
// run does not behave as described.
//
// HashiCorp Vault is not part of the demo: it has no in-process fake (its
// tests run a real Vault server in the e2e/vault module).
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/secrets-init/secrets-init/provider/aws/awsfake"
	"github.com/secrets-init/secrets-init/provider/azure/azurefake"
	"github.com/secrets-init/secrets-init/provider/gcp/gcpfake"
)

const (
	region  = "eu-west-1"
	project = "demo-project"
	vault   = "https://demo-vault.vault.azure.net"
	// runLimit bounds each run of secrets-init; its own --timeout is shorter.
	runLimit = 60 * time.Second
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == childCommand {
		os.Exit(child(os.Stdout, os.Args[2:]))
	}
	serve := flag.Bool("serve", false, "start the fakes, print the environment that points secrets-init at them, and wait for Ctrl-C")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: demo PATH-TO-SECRETS-INIT | demo -serve\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *serve && flag.NArg() == 0 {
		if err := serveOnly(os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "demo:", err)
			os.Exit(1)
		}
		return
	}
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	bin, err := filepath.Abs(flag.Arg(0))
	if err == nil {
		_, err = os.Stat(bin)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(2)
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
	if *serve {
		err = serveOnly(os.Stdout)
	} else {
		err = run(os.Stdout, bin, self)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo: FAILED:", err)
		os.Exit(1)
	}
}

// A world is the running fakes with the demo's secrets, and a directory
// holding the CA certificate, the secretfile: example and a HOME.
type world struct {
	dir   string
	aws   *awsfake.Server
	gcp   *gcpfake.Server
	azure *azurefake.Server
	env   []string          // KEY=VALUE: what points secrets-init at the fakes
	vars  []string          // KEY=VALUE: the references of the successful run, in order
	want  map[string]string // variable → the value it must have in the child
	// kmsKey is the aws-kms:// key URI of the KMS key the jwe: value is
	// encrypted to; jwePlain is that value, encrypted by run.
	kmsKey, jwePlain string
}

func (w *world) close() {
	w.aws.Close()
	w.gcp.Close()
	w.azure.Close()
	os.RemoveAll(w.dir)
}

// start starts the fakes and stores the example secrets.
func start() (_ *world, err error) {
	w := &world{want: map[string]string{}}
	if w.dir, err = os.MkdirTemp("", "secrets-init-demo-"); err != nil {
		return nil, err
	}
	w.aws = awsfake.New()
	if w.gcp, err = gcpfake.Start(); err != nil {
		w.aws.Close()
		return nil, err
	}
	if w.azure, err = azurefake.Start(); err != nil {
		w.aws.Close()
		w.gcp.Close()
		return nil, err
	}
	defer func() {
		if err != nil {
			w.close()
		}
	}()

	// The example values: what the child must receive.
	const (
		dbUser     = "app"
		dbPassword = "correct-horse-battery-staple"
		apiURL     = "https://api.internal.example/v2"
		stripeKey  = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"
		sendgrid   = "SG.demo-sendgrid-key"
		redisPass  = "r3dis-pa55w0rd"
		sessionKey = "9f86d081884c7d659a2feaa0c55ad015"
		smtpPass   = "smtp-hunter2"
	)
	tlsKey := "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n"

	dbARN := w.aws.PutSecret(region, "prod/db", awsfake.Secret{String: fmt.Sprintf(`{"username":%q,"password":%q}`, dbUser, dbPassword)})
	w.aws.PutParameter(region, "/prod/api/url", awsfake.Parameter{Value: apiURL, Secure: true})
	w.gcp.Add("projects/"+project+"/secrets/stripe-key", []byte(stripeKey))
	w.gcp.Add("projects/"+project+"/secrets/sendgrid-key", []byte(sendgrid+"\n"))
	w.azure.Put(vault, "redis-password", azurefake.Secret{Value: redisPass})
	w.azure.Put(vault, "session-key", azurefake.Secret{Value: sessionKey})
	w.azure.Put(vault, "tls-key", azurefake.Secret{Value: tlsKey, ContentType: "application/x-pem-file"})
	kmsPriv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	w.kmsKey = "aws-kms://" + w.aws.PutKey(region, "4f2e9a1c-demo-gitops-key", awsfake.Key{Private: kmsPriv})
	w.jwePlain = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	smtp := filepath.Join(w.dir, "run-secrets", "smtp.json")
	if err := os.MkdirAll(filepath.Dir(smtp), 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(smtp, fmt.Appendf(nil, `{"user":"mailer","password":%q}`, smtpPass), 0o600); err != nil {
		return nil, err
	}
	ca := filepath.Join(w.dir, "azurefake-ca.pem")
	if err := os.WriteFile(ca, w.azure.CACert, 0o600); err != nil {
		return nil, err
	}
	home := filepath.Join(w.dir, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		return nil, err
	}

	awsEnv := w.aws.Env()
	w.env = []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"HOME=" + home,
		// AWS: the SDK's own endpoint variable, static credentials that the
		// fake checks SigV4 signatures against, and a region.
		"AWS_ENDPOINT_URL=" + awsEnv["AWS_ENDPOINT_URL"],
		"AWS_REGION=" + region,
		"AWS_ACCESS_KEY_ID=" + awsEnv["AWS_ACCESS_KEY_ID"],
		"AWS_SECRET_ACCESS_KEY=" + awsEnv["AWS_SECRET_ACCESS_KEY"],
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		// Google: the community emulators' variable (plaintext gRPC, no auth).
		"SECRET_MANAGER_EMULATOR_HOST=" + w.gcp.Addr,
		"GOOGLE_CLOUD_PROJECT=" + project,
		// Azure: the real host names (login.microsoftonline.com,
		// demo-vault.vault.azure.net) reached through the fake's CONNECT
		// proxy, whose certificates the fake's CA signs; a service
		// principal's credentials. HTTP_PROXY catches a managed-identity
		// probe (the proxy drops plain HTTP), NO_PROXY keeps loopback direct.
		"HTTPS_PROXY=" + w.azure.ProxyURL,
		"HTTP_PROXY=" + w.azure.ProxyURL,
		"NO_PROXY=127.0.0.1,localhost",
		"SSL_CERT_FILE=" + ca,
		"AZURE_TENANT_ID=" + azurefake.Tenant,
		"AZURE_CLIENT_ID=" + azurefake.ClientID,
		"AZURE_CLIENT_SECRET=" + azurefake.ClientSecret,
	}

	add := func(name, ref, value string) {
		w.vars = append(w.vars, name+"="+ref)
		w.want[name] = value
	}
	add("DB_PASSWORD", dbARN+":password", dbPassword)             // Secrets Manager ARN + ECS JSON key
	add("DB_USER", "aws:secretsmanager:prod/db:username", dbUser) // short form, same secret: one fetch
	add("API_URL", "aws:ssm:/prod/api/url", apiURL)               // SSM SecureString, decrypted
	add("STRIPE_KEY", "gcp:secretmanager:projects/"+project+"/secrets/stripe-key", stripeKey)
	add("SENDGRID_KEY", "gcp:secretmanager:sendgrid-key?trim", sendgrid) // short form, project from GOOGLE_CLOUD_PROJECT
	add("REDIS_PASSWORD", "azure:keyvault:"+vault+"/secrets/redis-password", redisPass)
	add("SESSION_KEY", "@Microsoft.KeyVault(VaultName=demo-vault;SecretName=session-key)", sessionKey)
	add("TLS_KEY", "azure:keyvault:"+vault+"/secrets/tls-key?file", fileMark+tlsKey) // a path to a 0400 file
	add("SMTP_PASSWORD", "secretfile:"+smtp+"#password", smtpPass)
	w.want["WEBHOOK_SECRET"] = w.jwePlain      // jwe: encrypted to w.kmsKey; run adds its reference
	add("APP_ENV", "production", "production") // not a reference: passed through
	return w, nil
}

// fileMark marks a wanted value that the child must find in the file its
// variable names.
const fileMark = "\x00file:"

// run is the demo: a successful run, then a failing one.
func run(out io.Writer, bin, self string) error {
	began := time.Now()
	w, err := start()
	if err != nil {
		return fmt.Errorf("starting the fakes: %w", err)
	}
	defer w.close()

	fmt.Fprintf(out, "== Fakes on loopback: AWS %s, Google %s, Azure (CONNECT proxy) %s\n", w.aws.URL, w.gcp.Addr, w.azure.ProxyURL)
	fmt.Fprintf(out, "   (HashiCorp Vault is left out: it has no in-process fake)\n\n")
	fmt.Fprintf(out, "== The environment that points secrets-init at them:\n\n")
	printExports(out, w.env)

	fmt.Fprintf(out, "\n== A custodian encrypts a value to the KMS key's public half (GetPublicKey); the jwe: value goes to Git\n\n")
	fmt.Fprintf(out, "$ printf %%s \"$WEBHOOK_SECRET\" | secrets-init encrypt --key %s   # %s\n", w.kmsKey, mask(w.jwePlain))
	jweRef, err := encryptValue(bin, w.env, w.kmsKey, w.jwePlain)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s…%s  (%d bytes, the key URI as kid)\n", jweRef[:40], jweRef[len(jweRef)-12:], len(jweRef))
	w.vars = append(w.vars[:len(w.vars)-1], "WEBHOOK_SECRET="+jweRef, w.vars[len(w.vars)-1]) // before APP_ENV

	manifest := filepath.Join(w.dir, "expected.json")
	if err := writeManifest(manifest, w.want); err != nil {
		return err
	}
	fmt.Fprintf(out, "\n== Run 1: references to every store at once\n\n")
	printExports(out, w.vars)
	fmt.Fprintf(out, "\n$ secrets-init -- demo-child   # prints what it received, values masked\n\n")
	r := execute(bin, append(slices.Clone(w.env), w.vars...), self, childCommand, manifest)
	io.WriteString(out, indent(r.stdout))
	if r.stderr != "" {
		fmt.Fprintf(out, "stderr:\n%s", indent(r.stderr))
	}
	fmt.Fprintf(out, "exit status %d\n", r.code)
	if r.err != nil {
		return fmt.Errorf("run 1: %w", r.err)
	}
	if r.code != 0 {
		return fmt.Errorf("run 1: secrets-init exited %d, want 0 (the child checks every variable)", r.code)
	}
	if want := fmt.Sprintf("received all %d variables", len(w.want)); !strings.Contains(r.stdout, want) {
		return fmt.Errorf("run 1: the child did not report %q", want)
	}
	if err := leaks(r.stdout+r.stderr, w.want); err != nil {
		return fmt.Errorf("run 1: %w", err)
	}
	fmt.Fprintf(out, "\n   calls: AWS %d (%s), Google %d, Azure %d token + %d secret reads\n",
		len(w.aws.Calls()), opCounts(w.aws.Calls()), len(w.gcp.Requests()), w.azure.TokenRequests(), w.azure.SecretRequests())

	fmt.Fprintf(out, "\n== Run 2: two secrets that do not exist: fail closed, the command never starts\n\n")
	failing := []string{
		"DB_PASSWORD=" + ref(w.vars, "DB_PASSWORD"),
		"PAYMENT_KEY=aws:secretsmanager:prod/payments:api_key",
		"STRIPE_KEY=" + ref(w.vars, "STRIPE_KEY"),
		"LEGACY_TOKEN=azure:keyvault:" + vault + "/secrets/legacy-token",
	}
	printExports(out, failing)
	fmt.Fprintf(out, "\n$ secrets-init -- demo-child\n\n")
	r = execute(bin, append(slices.Clone(w.env), failing...), self, childCommand, manifest)
	io.WriteString(out, indent(r.stdout+r.stderr))
	fmt.Fprintf(out, "exit status %d\n", r.code)
	if r.err != nil {
		return fmt.Errorf("run 2: %w", r.err)
	}
	if r.code != 125 || r.stdout != "" {
		return fmt.Errorf("run 2: exit %d with stdout %q, want 125 and the command not started", r.code, r.stdout)
	}
	for _, name := range []string{"PAYMENT_KEY", "LEGACY_TOKEN"} {
		if !strings.Contains(r.stderr, "secrets-init: "+name+": ") {
			return fmt.Errorf("run 2: stderr has no line for %s", name)
		}
	}
	if err := leaks(r.stderr, w.want); err != nil {
		return fmt.Errorf("run 2: %w", err)
	}
	fmt.Fprintf(out, "\n== Demo passed in %s: every variable arrived, and a missing secret stopped the command.\n",
		time.Since(began).Round(time.Millisecond))
	return nil
}

// serveOnly starts the fakes and prints how to use them until interrupted.
func serveOnly(out io.Writer) error {
	w, err := start()
	if err != nil {
		return err
	}
	defer w.close()
	fmt.Fprintf(out, "# The fakes run until Ctrl-C. In another shell:\n\n")
	printExports(out, w.env)
	fmt.Fprintln(out)
	printExports(out, w.vars)
	fmt.Fprintf(out, "\n# then: ./secrets-init -- env\n")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return nil
}

type result struct {
	stdout, stderr string
	code           int
	err            error // secrets-init could not be run, or ran past runLimit
}

// execute runs bin --timeout 30s -- args with exactly env.
func execute(bin string, env []string, args ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), runLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--timeout", "30s", "--"}, args...)...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		r.err = fmt.Errorf("secrets-init ran longer than %s", runLimit)
	case err != nil && !errors.As(err, &exit):
		r.err = err
	}
	return r
}

// encryptValue runs `secrets-init encrypt --key keyURI` on plain and
// returns the jwe: reference it prints.
func encryptValue(bin string, env []string, keyURI, plain string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), runLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "encrypt", "--key", keyURI)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(plain)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("secrets-init encrypt: %v: %s", err, stderr.String())
	}
	ref := strings.TrimSpace(stdout.String())
	if !strings.HasPrefix(ref, "jwe:") || strings.Contains(ref+stderr.String(), plain) {
		return "", fmt.Errorf("secrets-init encrypt printed %.40q", ref)
	}
	return ref, nil
}

// leaks returns an error if s holds any of the secret values.
func leaks(s string, want map[string]string) error {
	for name, v := range want {
		v = strings.TrimPrefix(v, fileMark)
		if name != "APP_ENV" && len(v) >= 6 && strings.Contains(s, strings.TrimSpace(v)) {
			return fmt.Errorf("the output holds the value of %s", name)
		}
	}
	return nil
}

func ref(vars []string, name string) string {
	for _, kv := range vars {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}

func opCounts(calls []awsfake.Call) string {
	n := map[string]int{}
	for _, c := range calls {
		n[c.Op]++
	}
	var parts []string
	for op, k := range n {
		parts = append(parts, fmt.Sprintf("%d %s", k, op))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func printExports(out io.Writer, env []string) {
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(out, "export %s=%s\n", k, shellQuote(v))
	}
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:,@%+=") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n    ") + "\n"
}

// The child's side.

const childCommand = "demo-child"

// An expectation is what the child checks a variable against: a digest, so
// that the manifest holds no value.
type expectation struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	File   bool   `json:"file"` // the variable names a file holding the value
}

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func writeManifest(path string, want map[string]string) error {
	var m []expectation
	for name, v := range want {
		body, file := strings.CutPrefix(v, fileMark)
		m = append(m, expectation{Name: name, SHA256: digest(body), File: file})
	}
	sort.Slice(m, func(i, j int) bool { return m[i].Name < m[j].Name })
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o600)
}

// referencePrefixes are the prefixes of secrets-init's references: a
// variable that still holds one was passed through unresolved.
var referencePrefixes = []string{"arn:aws:secretsmanager:", "arn:aws:ssm:", "aws:secretsmanager:", "aws:ssm:",
	"gcp:secretmanager:", "azure:keyvault:", "@Microsoft.KeyVault(", "secretfile:", "vault:", "jwe:"}

// child prints the expected variables of the manifest at args[0] with
// their values masked and checks them; it returns the exit status.
func child(out io.Writer, args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(out, "usage: demo demo-child MANIFEST")
		return 2
	}
	data, err := os.ReadFile(args[0])
	var m []expectation
	if err == nil {
		err = json.Unmarshal(data, &m)
	}
	if err != nil {
		fmt.Fprintln(out, "child:", err)
		return 2
	}
	bad := 0
	fmt.Fprintf(out, "child: pid %d, parent pid %d; the variables it was given:\n", os.Getpid(), os.Getppid())
	for _, e := range m {
		v, ok := os.LookupEnv(e.Name)
		var line, problem string
		switch {
		case !ok:
			line, problem = "(unset)", "missing"
		case e.File:
			body, err := os.ReadFile(v)
			if err != nil {
				line, problem = v, err.Error()
				break
			}
			st, _ := os.Stat(v)
			line = fmt.Sprintf("%s (a file, mode %04o): %s", v, st.Mode().Perm(), mask(string(body)))
			if digest(string(body)) != e.SHA256 {
				problem = "the file does not hold the expected value"
			}
		default:
			line = mask(v)
			if digest(v) != e.SHA256 {
				problem = "not the expected value"
			}
		}
		for _, p := range referencePrefixes {
			if ok && strings.HasPrefix(v, p) {
				problem = "still a reference: it was not resolved"
			}
		}
		status := "ok"
		if problem != "" {
			status, bad = "WRONG: "+problem, bad+1
		}
		fmt.Fprintf(out, "  %-15s %-24s %s\n", e.Name, line, status)
	}
	if bad > 0 {
		fmt.Fprintf(out, "child: %d of %d variables wrong\n", bad, len(m))
		return 1
	}
	fmt.Fprintf(out, "child: received all %d variables\n", len(m))
	return 0
}

// mask shows a value's first two characters and its length.
func mask(v string) string {
	shown := v
	if len(shown) > 2 {
		shown = shown[:2]
	}
	return fmt.Sprintf("%q… (%d bytes)", shown, len(v))
}
