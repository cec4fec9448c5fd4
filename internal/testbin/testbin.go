// Package testbin builds the programs that tests run as processes — the
// secrets-init binary above all — once per test binary, so that tests
// exercise the real executable with no hook in the product.
package testbin

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Module is the import path of secrets-init itself.
const Module = "github.com/secrets-init/secrets-init"

// dirPrefix names the build directories; the pid that follows it lets a
// later run remove those of runs that are gone.
const dirPrefix = "secrets-init-testbin-"

var builds struct {
	sync.Mutex
	dir  string
	done map[string]string // import path → executable
}

// SecretsInit builds secrets-init as a release is built: the split build,
// a supervisor with the resolver embedded (scripts/build.sh), unless the
// build tags leave out every SDK or SECRETS_INIT_TEST_SPLIT=0 asks for the
// single-process build. See Build.
func SecretsInit(t testing.TB) string { return Build(t, Module) }

// Resolver is the package of the split build's resolver executable.
const Resolver = Module + "/internal/resolver/cmd/secrets-init-resolver"

// Split reports whether SecretsInit builds the split binary.
func Split() bool {
	if os.Getenv("SECRETS_INIT_TEST_SPLIT") == "0" {
		return false
	}
	tags := buildTags(strings.Fields(os.Getenv("SECRETS_INIT_TEST_BUILDFLAGS")))
	for _, s := range []string{"aws", "gcp", "azure", "vault"} {
		if !slices.Contains(tags, "no_"+s) {
			return true
		}
	}
	return false
}

// buildTags returns the tags of -tags flags.
func buildTags(flags []string) []string {
	var tags []string
	for i, f := range flags {
		f = strings.TrimPrefix(f, "-")
		switch {
		case strings.HasPrefix(f, "-tags=") || strings.HasPrefix(f, "tags="):
			tags = append(tags, strings.FieldsFunc(f[strings.IndexByte(f, '=')+1:], isSep)...)
		case (f == "tags" || f == "-tags") && i+1 < len(flags):
			tags = append(tags, strings.FieldsFunc(flags[i+1], isSep)...)
		}
	}
	return tags
}

func isSep(r rune) bool { return r == ',' || r == ' ' }

// withTags returns flags with its -tags replaced by one holding tags.
func withTags(flags, tags []string) []string {
	var out []string
	for i := 0; i < len(flags); i++ {
		f := strings.TrimPrefix(flags[i], "-")
		switch {
		case strings.HasPrefix(f, "-tags=") || strings.HasPrefix(f, "tags="):
			continue
		case f == "tags" || f == "-tags":
			i++
			continue
		}
		out = append(out, flags[i])
	}
	return append(out, "-tags="+strings.Join(tags, ","))
}

// Build builds the package pkg (an import path of this module) once per
// test binary and returns the executable's path. It skips the test under
// -short. Extra `go build` flags (such as -race or -tags=no_aws) come from
// SECRETS_INIT_TEST_BUILDFLAGS; without -race the build is static
// (CGO_ENABLED=0), as a release is.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds " + pkg)
	}
	builds.Lock()
	defer builds.Unlock()
	if exe, ok := builds.done[pkg]; ok {
		return exe
	}
	if builds.dir == "" {
		removeStale()
		dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", dirPrefix, os.Getpid()))
		if err != nil {
			t.Fatal(err)
		}
		builds.dir, builds.done = dir, map[string]string{}
	}
	exe := filepath.Join(builds.dir, path.Base(pkg))
	if pkg == Module {
		exe = filepath.Join(builds.dir, "secrets-init")
	}
	flags := strings.Fields(os.Getenv("SECRETS_INIT_TEST_BUILDFLAGS"))
	if pkg == Module && Split() {
		// The release build's two steps: the resolver, then the
		// supervisor that embeds it (as scripts/build.sh does).
		resolver := filepath.Join(builds.dir, "secrets-init-resolver")
		goBuild(t, resolver, flags, Resolver)
		overlay := filepath.Join(builds.dir, "overlay.json")
		src := filepath.Join(moduleDir(t), "internal", "resolver", "bin", "secrets-init-resolver")
		if err := os.WriteFile(overlay, fmt.Appendf(nil, `{"Replace":{%q:%q}}`, src, resolver), 0o644); err != nil {
			t.Fatal(err)
		}
		flags = append(withTags(flags, append(buildTags(flags), "embedresolver")), "-overlay="+overlay)
	}
	goBuild(t, exe, flags, pkg)
	builds.done[pkg] = exe
	return exe
}

// goBuild runs go build -o exe flags pkg.
func goBuild(t testing.TB, exe string, flags []string, pkg string) {
	t.Helper()
	cmd := exec.Command(goTool(), append(append([]string{"build", "-o", exe}, flags...), pkg)...)
	cmd.Env = os.Environ()
	if !slices.Contains(flags, "-race") {
		cmd.Env = append(cmd.Env, "CGO_ENABLED=0")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(cmd.Args[1:], " "), err, out)
	}
}

// moduleDir is the module's root directory.
func moduleDir(t testing.TB) string {
	t.Helper()
	out, err := exec.Command(goTool(), "list", "-m", "-f", "{{.Dir}}", Module).Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// Cleanup removes what Build built. TestMain may call it after m.Run; a
// later run removes the builds of runs that are gone anyway.
func Cleanup() {
	builds.Lock()
	defer builds.Unlock()
	if builds.dir != "" {
		os.RemoveAll(builds.dir)
		builds.dir, builds.done = "", nil
	}
}

// removeStale removes the build directories of test runs whose process is
// gone.
func removeStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, d := range dirs {
		pid, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(d), dirPrefix), "-")
		if _, err := os.Stat("/proc/" + pid); errors.Is(err, os.ErrNotExist) {
			os.RemoveAll(d)
		}
	}
}

// goTool finds the go command: on PATH, else in GOROOT (go test sets it).
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := os.Getenv("GOROOT"); root != "" {
		return filepath.Join(root, "bin", "go")
	}
	return "go"
}
