package examples

import (
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// installImage lays out what the secrets-init image holds, under a
// temporary root: /secrets-init and the symlink /usr/local/bin/secrets-init
// that kube-secrets-init's initContainer copies from.
func installImage(t *testing.T) (imageRoot string) {
	t.Helper()
	imageRoot = t.TempDir()
	copyFile(t, bin, filepath.Join(imageRoot, "secrets-init"), 0o755)
	if err := os.MkdirAll(filepath.Join(imageRoot, "usr", "local", "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(imageRoot, "secrets-init"), filepath.Join(imageRoot, "usr", "local", "bin", "secrets-init")); err != nil {
		t.Fatal(err)
	}
	return imageRoot
}

// checkCopied checks that dir/secrets-init is a 0755 regular file holding
// the binary, and that it runs.
func checkCopied(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "secrets-init")
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatalf("copy: %v", err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o755 {
		t.Errorf("%s: mode %v, want a regular file with mode 0755", p, fi.Mode())
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(data) != binSum {
		t.Errorf("%s is not a copy of the binary", p)
	}
	if r := run(t, cleanEnv(nil), p, "--version"); r.code != 0 || !strings.HasPrefix(r.stdout, "secrets-init ") {
		t.Errorf("%s --version: exit %d, %q %q", p, r.code, r.stdout, r.stderr)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("%s holds %d files after the copy, want only secrets-init (no temporary file left)", dir, len(entries))
	}
	return p
}

// TestInitContainerCopy runs both initContainer forms: this repository's
// `copy DIR` (the image's default CMD) and kube-secrets-init's
// `cp /usr/local/bin/secrets-init DIR`, the latter through the image's
// symlink.
func TestInitContainerCopy(t *testing.T) {
	img := installImage(t)
	entrypoint := filepath.Join(img, "secrets-init")
	for name, args := range map[string]func(dir string) []string{
		"copy DIR": func(dir string) []string { return []string{"copy", dir} },
		"cp SRC DIR": func(dir string) []string {
			return []string{"cp", filepath.Join(img, "usr", "local", "bin", "secrets-init"), dir}
		},
	} {
		t.Run(name, func(t *testing.T) {
			// A directory that does not exist yet, as a mount point may not.
			dir := filepath.Join(t.TempDir(), "helper", "bin")
			if r := run(t, cleanEnv(nil), append([]string{entrypoint}, args(dir)...)...); r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			copied := checkCopied(t, dir)

			// An initContainer runs again when the pod restarts, and the
			// emptyDir keeps the old copy, which may still be running:
			// the copy replaces it (rename, not ETXTBSY).
			running := exec.Command(copied, "--", "sh", "-c", "read line")
			running.Env = cleanEnv(nil)
			stdin, err := running.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := running.Start(); err != nil {
				t.Fatal(err)
			}
			r := run(t, cleanEnv(nil), append([]string{entrypoint}, args(dir)...)...)
			io.WriteString(stdin, "done\n")
			stdin.Close()
			if err := running.Wait(); err != nil {
				t.Errorf("the running copy: %v", err)
			}
			if r.code != 0 {
				t.Fatalf("copying over a running copy: exit %d: %s", r.code, r.stderr)
			}
			checkCopied(t, dir)
		})
	}
}

// TestWebhookCommandLine runs the copied binary with the exact command line
// kube-secrets-init builds, `/secrets-init/bin/secrets-init --provider=P
// ENTRYPOINT ARGS…` with no `--`, and checks the app gets exactly its
// arguments, flags and all.
func TestWebhookCommandLine(t *testing.T) {
	img := installImage(t)
	helper := filepath.Join(t.TempDir(), "secrets-init", "bin")
	if r := run(t, cleanEnv(nil), filepath.Join(img, "secrets-init"), "cp", filepath.Join(img, "usr", "local", "bin", "secrets-init"), helper); r.code != 0 {
		t.Fatalf("cp: exit %d: %s", r.code, r.stderr)
	}
	injected := filepath.Join(helper, "secrets-init")
	apps := printerDir(t, "node", "app")

	// A reference in the environment proves the command line was resolved
	// and run, not only passed through.
	secret := filepath.Join(t.TempDir(), "db-password")
	if err := os.WriteFile(secret, []byte("s3cr3t\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := cleanEnv([]string{apps}, "DB_PASSWORD=secretfile:"+secret+"?trim", "PLAIN=--provider=aws")

	cases := []struct {
		name string
		args []string // after --provider=P ENTRYPOINT
	}{
		{"node flags", []string{"--max-old-space-size=4096", "server.js"}},
		{"flags secrets-init also has", []string{"-v", "--help", "--version", "-i", "--timeout=0", "--env-file=/nonexistent", "--exec"}},
		{"a literal --", []string{"--", "--help"}},
		{"mixed", []string{"--max-old-space-size=4096", "-v", "--", "--help", "server.js", "--port", "8080"}},
		{"subcommand names", []string{"copy", "/helper/bin", "check"}},
		{"empty and spaced arguments", []string{"", "a b", "--x= y"}},
		{"no arguments", nil},
	}
	for _, provider := range []string{"aws", "google"} {
		for _, c := range cases {
			for _, entrypoint := range []string{"node", filepath.Join(apps, "app")} {
				argv := append([]string{injected, "--provider=" + provider, entrypoint}, c.args...)
				p := runPrinted(t, env, argv...)
				want := c.args
				if want == nil {
					want = []string{}
				}
				if !slices.Equal(p.Args, want) {
					t.Errorf("%s (--provider=%s, %s): the app got %q, want %q", c.name, provider, entrypoint, p.Args, want)
				}
				if v, _ := envValue(p.Env, "DB_PASSWORD"); v != "s3cr3t" {
					t.Errorf("%s: DB_PASSWORD=%q, want the resolved value", c.name, v)
				}
				if v, _ := envValue(p.Env, "PLAIN"); v != "--provider=aws" {
					t.Errorf("%s: PLAIN=%q, want it unchanged", c.name, v)
				}
			}
		}
	}

	// The command line of mutated-pod.yaml itself, as written there (node
	// is the printer, found through PATH).
	m, err := decodeManifest(filepath.Join(examples, "kube-secrets-init", "mutated-pod.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	c := m.objects[0].(*corev1.Pod).Spec.Containers[0]
	if len(c.Command) != 1 || c.Command[0] != "/secrets-init/bin/secrets-init" {
		t.Fatalf("mutated-pod.yaml: command %q", c.Command)
	}
	argv := append([]string{injected}, c.Args...)
	p := runPrinted(t, env, argv...)
	if want := c.Args[2:]; !slices.Equal(p.Args, want) {
		t.Errorf("mutated-pod.yaml's command line: the app got %q, want %q", p.Args, want)
	}
}

// TestDockerfileEntrypoint runs the Dockerfile style, `secrets-init --
// sh -c …`, with secretfile: references, as examples/dockerfile builds it.
func TestDockerfileEntrypoint(t *testing.T) {
	for _, file := range []string{"dockerfile/Dockerfile", "compose/Dockerfile"} {
		df := readDockerfile(t, filepath.Join(examples, file))
		if !slices.Equal(df.entrypoint, []string{"/secrets-init", "--"}) {
			t.Errorf("%s: ENTRYPOINT %q, want [\"/secrets-init\", \"--\"]", file, df.entrypoint)
		}
		if len(df.cmd) == 0 {
			t.Errorf("%s: no CMD", file)
		}
		if !df.copiesBinary {
			t.Errorf("%s: no COPY --from=<the secrets-init stage> /secrets-init /secrets-init", file)
		}
		// The references of the `docker run -e` lines in its comments.
		checkRefs(t, file, df.runEnv)
	}

	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "db_password"), "correct horse\n")
	mustWrite(t, filepath.Join(dir, "api.json"), `{"token":"tok-1","port":8080}`)
	mustWrite(t, filepath.Join(dir, "tls.pem"), "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
	env := cleanEnv(nil,
		"DB_PASSWORD=secretfile:"+dir+"/db_password?trim",
		"API_TOKEN=secretfile:"+dir+"/api.json#token",
		"API_PORT=secretfile:"+dir+"/api.json#port",
		"TLS_CERT_FILE=secretfile:"+dir+"/tls.pem?file",
		"GREETING=hello world",
	)
	script := `printf '%s|%s|%s|%s|' "$DB_PASSWORD" "$API_TOKEN" "$API_PORT" "$GREETING"; cat "$TLS_CERT_FILE"; stat -c '|%a' "$TLS_CERT_FILE"; printf '%s\n' "$@"`
	r := run(t, env, bin, "--", "sh", "-c", script, "sh", "--help", "-v")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	want := "correct horse|tok-1|8080|hello world|-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n|400\n--help\n-v\n"
	if r.stdout != want {
		t.Errorf("the app printed %q, want %q", r.stdout, want)
	}

	// Fail closed: a missing secret file stops the command (exit 125).
	r = run(t, cleanEnv(nil, "DB_PASSWORD=secretfile:"+dir+"/missing"), bin, "--", "sh", "-c", "echo started")
	if r.code != 125 || strings.Contains(r.stdout, "started") || !strings.Contains(r.stderr, "DB_PASSWORD") {
		t.Errorf("a missing secret: exit %d, stdout %q, stderr %q; want 125, the command not started, the variable named", r.code, r.stdout, r.stderr)
	}
}

// checkAppCommandLine runs the command line of an example's app container
// with secrets-init copied as its initContainer would, the app replaced by
// the printer, and the example's variables that are not references: the app
// must get exactly its arguments, and secrets-init's auth inputs must not
// reach it.
func checkAppCommandLine(t *testing.T, c corev1.Container) {
	argv := append(slices.Clone(c.Command), c.Args...)
	i, err := appIndex(c)
	if err != nil {
		t.Fatal(err)
	}
	helper := filepath.Join(t.TempDir(), "helper", "bin")
	if r := run(t, cleanEnv(nil), bin, "copy", helper); r.code != 0 {
		t.Fatalf("copy: %s", r.stderr)
	}
	apps := printerDir(t, filepath.Base(argv[i]))
	argv[0] = filepath.Join(helper, "secrets-init")
	argv[i] = filepath.Join(apps, filepath.Base(argv[i]))
	env := envMap(c)
	refs, _ := parseRefs(t, env)
	var vars []string
	for k, v := range env {
		if _, isRef := refs[k]; !isRef {
			vars = append(vars, k+"="+v)
		}
	}
	got := runPrinted(t, cleanEnv(nil, vars...), argv...)
	if want := argv[i+1:]; !slices.Equal(got.Args, want) {
		t.Errorf("the app got %q, want %q", got.Args, want)
	}
	for _, auth := range []string{"VAULT_AUTH_METHOD", "VAULT_ROLE"} {
		if _, set := env[auth]; !set {
			continue
		}
		if _, leaked := envValue(got.Env, auth); leaked {
			t.Errorf("%s reached the app", auth)
		}
	}
	if v, ok := env["VAULT_ADDR"]; ok {
		if got, _ := envValue(got.Env, "VAULT_ADDR"); got != v {
			t.Errorf("VAULT_ADDR=%q in the app, want %q (kept for the app)", got, v)
		}
	}
}

func mustWrite(t *testing.T, p, data string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
