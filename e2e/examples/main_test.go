package examples

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// bin is the secrets-init binary under test, built from the repository by
// TestMain; binSum is its SHA-256. refparse is a helper built with it that
// runs secrets-init's own reference and env-file parsers (refparseMain).
var (
	bin      string
	binSum   [32]byte
	refparse string
)

// root is the repository's top directory; examples is its examples folder.
var (
	root     = filepath.Join("..", "..")
	examples = filepath.Join(root, "examples")
)

// printerEnv makes this test binary print its argv and environment as JSON
// and exit, so that it can stand in for the app behind secrets-init.
const printerEnv = "E2E_EXAMPLES_ARGV_PRINTER"

// printed is what the printer reports.
type printed struct {
	Args []string `json:"args"` // os.Args[1:]: the app's arguments
	Env  []string `json:"env"`
}

func TestMain(m *testing.M) {
	if os.Getenv(printerEnv) == "1" {
		json.NewEncoder(os.Stdout).Encode(printed{Args: os.Args[1:], Env: os.Environ()})
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "secrets-init-e2e-examples")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "secrets-init")
	// The same static build as the Dockerfile's (the split one), in the
	// product's own module.
	build := exec.Command("scripts/build.sh", bin)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building secrets-init: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	refparse = filepath.Join(dir, "refparse")
	if err := buildRefparse(dir, refparse); err != nil {
		fmt.Fprintf(os.Stderr, "building the refparse helper: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binSum = sha256.Sum256(data)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// printerDir returns a directory holding the printer under each of names,
// for a PATH (or an absolute path) that the app's command line names.
func printerDir(t *testing.T, names ...string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, n := range names {
		if err := os.Symlink(self, filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// cleanEnv is a subprocess environment built from scratch: PATH (dirs, then
// the system's) and the given variables, nothing from the test's own.
func cleanEnv(pathDirs []string, vars ...string) []string {
	path := strings.Join(append(slices.Clone(pathDirs), "/usr/local/bin", "/usr/bin", "/bin"), string(os.PathListSeparator))
	return append([]string{"PATH=" + path}, vars...)
}

// result is a finished subprocess.
type result struct {
	code           int
	stdout, stderr string
}

// run runs argv with env and no stdin, and returns its exit code and output.
func run(t *testing.T, env []string, argv ...string) result {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("running %q: %v", argv, err)
		}
		r.code = ee.ExitCode()
	}
	return r
}

// runPrinted runs argv, whose app is the printer, and returns what the app
// received. It fails the test unless everything exited 0.
func runPrinted(t *testing.T, env []string, argv ...string) printed {
	t.Helper()
	r := run(t, append(env, printerEnv+"=1"), argv...)
	if r.code != 0 {
		t.Fatalf("%q: exit %d\nstdout: %s\nstderr: %s", argv, r.code, r.stdout, r.stderr)
	}
	var p printed
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
		t.Fatalf("%q: the app's output is not the printer's: %v\n%s", argv, err, r.stdout)
	}
	return p
}

// envValue returns the value of name in env.
func envValue(env []string, name string) (string, bool) {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v, true
		}
	}
	return "", false
}

// copyFile copies src to dst with mode.
func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// refparseMain is the helper that parses references and env files with
// secrets-init's provider package. It is built in a workspace with the
// repository (buildRefparse), so it uses the product's own dependency
// versions: this module does not import the product, and its go.mod stays
// valid whatever the product's go.mod requires.
const refparseMain = `package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/secrets-init/secrets-init/envfile"
	"github.com/secrets-init/secrets-init/provider"
)

type ref struct {
	Value, Err                                                    string
	OK                                                            bool
	Kind, Partition, Region, Project, Location, Vault, Name, Version, Stage string
	Key                                                           string
	File                                                          bool
	FilePath                                                      string
	Optional, Base64, Trim                                        bool
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "envfile" {
		env, err := envfile.Read(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		json.NewEncoder(os.Stdout).Encode(env)
		return
	}
	var values []string
	if err := json.NewDecoder(os.Stdin).Decode(&values); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out := make([]ref, len(values))
	for i, v := range values {
		r, ok, err := provider.Parse(v)
		out[i] = ref{Value: v, OK: ok}
		if err != nil {
			out[i].Err = err.Error()
			continue
		}
		if ok {
			t, o := r.Target, r.Opts
			out[i].Kind, out[i].Partition, out[i].Region = t.Kind.String(), t.Partition, t.Region
			out[i].Project, out[i].Location, out[i].Vault = t.Project, t.Location, t.Vault
			out[i].Name, out[i].Version, out[i].Stage, out[i].Key = t.Name, t.Version, t.Stage, r.Key
			out[i].File, out[i].FilePath = o.File, o.FilePath
			out[i].Optional, out[i].Base64, out[i].Trim = o.Optional, o.Base64, o.Trim
		}
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
`

var goDirective = regexp.MustCompile(`(?m)^go (\S+)$`)

// buildRefparse builds refparseMain in a temporary workspace that uses the
// repository's module.
func buildRefparse(dir, out string) error {
	abs, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	mod, err := os.ReadFile(filepath.Join(abs, "go.mod"))
	if err != nil {
		return err
	}
	m := goDirective.FindSubmatch(mod)
	if m == nil {
		return fmt.Errorf("no go directive in %s/go.mod", abs)
	}
	ws := filepath.Join(dir, "workspace")
	files := map[string]string{
		"go.work":          fmt.Sprintf("go %s\n\nuse (\n\t%s\n\t./refparse\n)\n", m[1], abs),
		"refparse/go.mod":  fmt.Sprintf("module refparse\n\ngo %s\n", m[1]),
		"refparse/main.go": refparseMain,
	}
	for name, data := range files {
		p := filepath.Join(ws, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			return err
		}
	}
	build := exec.Command("go", "build", "-o", out, "./refparse")
	build.Dir = ws
	// GOFLAGS emptied: workspace mode refuses -mod=mod, which a user may set.
	build.Env = append(os.Environ(), "GOWORK="+filepath.Join(ws, "go.work"), "CGO_ENABLED=0", "GOFLAGS=")
	if b, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("%v\n%s", err, b)
	}
	return nil
}

// The stores, as secrets-init names them (provider.Kind.String).
const (
	kindSecretsManager = "aws-secretsmanager"
	kindSSM            = "aws-ssm"
	kindGoogle         = "gcp-secretmanager"
	kindVault          = "vault"
	kindAzure          = "azure-keyvault"
	kindFile           = "secretfile"
)

// target is what a reference fetches; ref is a parsed reference.
type target struct {
	Kind, Partition, Region, Project, Location, Vault, Name, Version, Stage string
}

type ref struct {
	target
	Value, Err             string
	OK                     bool // the value is a reference (Err: a malformed one)
	Key                    string
	File                   bool
	FilePath               string
	Optional, Base64, Trim bool
}

// parse runs secrets-init's parser on values.
func parse(t *testing.T, values []string) []ref {
	t.Helper()
	in, err := json.Marshal(values)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(refparse)
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("refparse: %v", err)
	}
	var refs []ref
	if err := json.Unmarshal(out, &refs); err != nil || len(refs) != len(values) {
		t.Fatalf("refparse: %v %s", err, out)
	}
	return refs
}

// readEnvFile reads a dotenv file with secrets-init's own parser.
func readEnvFile(t *testing.T, file string) []string {
	t.Helper()
	out, err := exec.Command(refparse, "envfile", file).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("%s: %s", file, ee.Stderr)
		}
		t.Fatal(err)
	}
	var env []string
	if err := json.Unmarshal(out, &env); err != nil {
		t.Fatal(err)
	}
	return env
}

// parseRefs returns the values of vars that parse as references, by
// variable, and the variables whose values are malformed references.
func parseRefs(t *testing.T, vars map[string]string) (refs map[string]ref, malformed map[string]ref) {
	t.Helper()
	names := slices.Sorted(maps.Keys(vars))
	values := make([]string, len(names))
	for i, n := range names {
		values[i] = vars[n]
	}
	refs, malformed = map[string]ref{}, map[string]ref{}
	for i, r := range parse(t, values) {
		switch {
		case r.Err != "":
			malformed[names[i]] = r
		case r.OK:
			refs[names[i]] = r
		}
	}
	return refs, malformed
}

// checkRefs parses every value that looks like a secret reference and
// returns the parsed ones by variable. A value with a reference's prefix
// that does not parse fails the test: secrets-init would refuse to start.
func checkRefs(t *testing.T, where string, vars map[string]string) map[string]ref {
	t.Helper()
	refs, malformed := parseRefs(t, vars)
	for name, r := range malformed {
		t.Errorf("%s: %s=%s: %s", where, name, r.Value, r.Err)
	}
	return refs
}

// kinds lists the stores that refs use.
func kinds(refs map[string]ref) map[string]bool {
	k := map[string]bool{}
	for _, r := range refs {
		k[r.Kind] = true
	}
	return k
}
