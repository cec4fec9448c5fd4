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

// SecretsInit builds secrets-init; see Build.
func SecretsInit(t testing.TB) string { return Build(t, Module) }

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
	cmd := exec.Command(goTool(), append(append([]string{"build", "-o", exe}, flags...), pkg)...)
	cmd.Env = os.Environ()
	if !slices.Contains(flags, "-race") {
		cmd.Env = append(cmd.Env, "CGO_ENABLED=0")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(cmd.Args[1:], " "), err, out)
	}
	builds.done[pkg] = exe
	return exe
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
