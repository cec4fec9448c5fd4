package main

// What the command can read of secrets-init's auth inputs (SPEC §4,
// docs/security.md), seen from the command's side: internal/testprog
// "inspect parent" reads /proc/<secrets-init>/environ, cmdline, stat and
// mem, as root, as another user, as the same unprivileged user as
// secrets-init, and as root without CAP_SYS_PTRACE; the test itself reads
// /proc/<secrets-init>/environ from the host as well. No Vault server: the
// auth inputs are stripped whether or not a reference needs them.

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// scrubFixture is an environment with every auth input set, two of them
// passed through, and a secretfile: reference.
type scrubFixture struct {
	env      []string          // secrets-init's environment, in order
	stripped map[string]string // auth input → its value (a canary)
	passed   map[string]string // passed-through auth input → its value
	args     []string          // flags for secrets-init
	dir      string            // world-readable: the binaries and the secret file
	bin      string            // secrets-init, copied into dir
	prog     string            // testprog, copied into dir
}

func newScrubFixture(t *testing.T) *scrubFixture {
	t.Helper()
	f := &scrubFixture{stripped: map[string]string{}, passed: map[string]string{}}
	// t.TempDir is private to root; the binaries must be reachable for
	// uid 65534 too.
	dir, err := os.MkdirTemp("", "secrets-init-envscrub-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f.dir = dir
	f.bin = copyExecutable(t, buildBinary(t), dir)
	f.prog = copyExecutable(t, buildTestprog(t), dir)
	secret := filepath.Join(dir, "db-password")
	if err := os.WriteFile(secret, []byte("resolved-db-password"), 0o644); err != nil {
		t.Fatal(err)
	}
	canary := func(name string) string {
		b := make([]byte, 8)
		rand.Read(b)
		return "canary-" + strings.ToLower(name) + "-" + hex.EncodeToString(b)
	}
	f.env = []string{stdPath, "PLAIN=plain value=with=equals", "SECRET=secretfile:" + secret}
	for _, name := range authInputs {
		value := canary(name)
		switch name {
		case "VAULT_ENV_PASSTHROUGH":
			value = "VAULT_ROLE"
		case "VAULT_ROLE":
			f.passed[name] = value // through VAULT_ENV_PASSTHROUGH
		case "VAULT_PATH":
			f.passed[name] = value // through --passthrough
		}
		if _, ok := f.passed[name]; !ok {
			f.stripped[name] = value
		}
		f.env = append(f.env, name+"="+value)
	}
	for _, want := range []string{"VAULT_TOKEN", "VAULT_SECRET_ID", "VAULT_ROLE_ID", "VAULT_JWT"} {
		if _, ok := f.stripped[want]; !ok {
			t.Fatalf("%s is not among authInputs", want)
		}
	}
	f.env = append(f.env, "AFTER=the last one")
	f.args = []string{"--passthrough", "VAULT_PATH"}
	return f
}

func copyExecutable(t *testing.T, src, dir string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, filepath.Base(src))
	// No fork may inherit the file open for writing: a child of another
	// parallel test that has not exec'd yet would make executing dst
	// fail with "text file busy" (ETXTBSY).
	syscall.ForkLock.Lock()
	defer syscall.ForkLock.Unlock()
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

// parentBlock is what /proc/<secrets-init>/environ must hold: the block
// it was started with, each stripped value overwritten with NULs.
func (f *scrubFixture) parentBlock() []byte {
	var b []byte
	for _, kv := range f.env {
		name, value, _ := strings.Cut(kv, "=")
		if _, ok := f.stripped[name]; ok {
			kv = name + "=" + strings.Repeat("\x00", len(value))
		}
		b = append(append(b, kv...), 0)
	}
	return b
}

// childBlock is the command's own environment: no stripped input, the
// reference resolved.
func (f *scrubFixture) childBlock() []byte {
	var b []byte
	for _, kv := range f.env {
		name, _, _ := strings.Cut(kv, "=")
		if _, ok := f.stripped[name]; ok {
			continue
		}
		if name == "SECRET" {
			kv = "SECRET=resolved-db-password"
		}
		b = append(append(b, kv...), 0)
	}
	return b
}

// noCanary fails the test if data holds any stripped value.
func (f *scrubFixture) noCanary(t *testing.T, what string, data []byte) {
	t.Helper()
	for _, name := range authInputs {
		if value, ok := f.stripped[name]; ok && name != "VAULT_ENV_PASSTHROUGH" && bytes.Contains(data, []byte(value)) {
			t.Errorf("%s holds the value of %s", what, name)
		}
	}
}

// record returns the fields of the one record of kind on p's stdout,
// decoding the hex data of "ok DATA" and of self's environ.
func record(t *testing.T, p *proc, kind string) (fields []string, data []byte) {
	t.Helper()
	r := p.stdout.records(kind)
	if len(r) != 1 {
		t.Fatalf("%d %q records, want 1\nstdout:\n%v\nstderr:\n%v", len(r), kind, p.stdout, p.stderr)
	}
	fields = r[0][1:]
	if len(fields) > 0 {
		last := fields[len(fields)-1]
		if last != "-" {
			data, _ = hex.DecodeString(last)
		}
	}
	return fields, data
}

// TestScrubbedAuthInputs: whoever the command runs as, it cannot read a
// stripped auth input from secrets-init; a passed-through one stays
// visible, and ps still shows the command line.
func TestScrubbedAuthInputs(t *testing.T) {
	t.Parallel()
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv(1) is not installed (util-linux)")
	}
	if os.Geteuid() != 0 {
		t.Skip("changes uid and capabilities: needs root")
	}
	nobody := []string{setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups"}
	noPtrace := []string{setpriv, "--bounding-set", "-sys_ptrace"}
	for _, tc := range []struct {
		name    string
		wrap    []string // runs secrets-init
		as      []string // runs the command
		environ string   // the command's read of the parent's environ: ok, denied or any
		mem     bool     // the command can read the parent's memory
	}{
		{"root", nil, nil, "ok", true},
		{"command as another user", nil, nobody, "denied", false},
		// The case PR_SET_DUMPABLE is for: same uid, no CAP_SYS_PTRACE.
		{"both as the same unprivileged user", nobody, nil, "denied", false},
		// Docker's default root. Linux lets it read environ (whatever
		// the dumpable flag) but not mem.
		{"command as root without CAP_SYS_PTRACE", nil, noPtrace, "any", false},
	} {
		for _, ns := range []bool{true, false} {
			name := tc.name + map[bool]string{true: ", PID 1", false: ", subreaper"}[ns]
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				f := newScrubFixture(t)
				command := append(slices.Clone(tc.as), f.prog, "inspect", "parent")
				args := append(append(slices.Clone(f.args), "--"), command...)
				p := startInitWith(t, ns, f.bin, tc.wrap, f.env, args...)
				p.waitRecord("the command's report", 1, "ready", nil)

				// The command's own environment.
				self, env := record(t, p, "self")
				if !bytes.Equal(env, f.childBlock()) {
					t.Errorf("the command's environment is\n%q\nwant\n%q", env, f.childBlock())
				}
				if self[2] != "1" {
					t.Errorf("the command is not dumpable (PR_GET_DUMPABLE %s): execve should have reset it", self[2])
				}

				// What the command reads of secrets-init.
				environ, envData := record(t, p, "parent-environ")
				mem, memData := record(t, p, "parent-mem")
				rng, _ := record(t, p, "parent-envrange")
				switch {
				case environ[0] == "ok" && tc.environ == "denied":
					t.Errorf("the command could read /proc/<secrets-init>/environ")
				case environ[0] != "ok" && tc.environ == "ok":
					t.Errorf("the command could not read /proc/<secrets-init>/environ: %v", environ)
				case environ[0] == "ok" && !bytes.Equal(envData, f.parentBlock()):
					t.Errorf("the command reads from /proc/<secrets-init>/environ\n%q\nwant\n%q", envData, f.parentBlock())
				}
				switch {
				case tc.mem && (mem[0] != "ok" || !bytes.Equal(memData, f.parentBlock())):
					t.Errorf("the command reads %.40v… from /proc/<secrets-init>/mem (range %v), want the scrubbed block", mem, rng)
				case !tc.mem && mem[0] != "error":
					t.Errorf("the command could read /proc/<secrets-init>/mem")
				case !tc.mem && (rng[0] != "0" || rng[1] != "0"):
					t.Errorf("/proc/<secrets-init>/stat shows the command the environment's address: %v", rng)
				}
				cmdline, cmdData := record(t, p, "parent-cmdline")
				wantCmdline := strings.Join(append([]string{f.bin}, args...), "\x00") + "\x00"
				if cmdline[0] != "ok" || string(cmdData) != wantCmdline {
					t.Errorf("/proc/<secrets-init>/cmdline: %v %q, want %q", cmdline[0], cmdData, wantCmdline)
				}
				f.noCanary(t, "the command's report", slices.Concat(p.stdout.bytes(), env, envData, memData, cmdData))

				// What root on the host reads.
				host, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p.initPid()))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(host, f.parentBlock()) {
					t.Errorf("/proc/<secrets-init>/environ from the host:\n%q\nwant\n%q", host, f.parentBlock())
				}
				f.noCanary(t, "/proc/<secrets-init>/environ", host)

				p.stdin.Close()
				if code := p.wait(); code != 0 {
					t.Errorf("exit code %d\nstderr:\n%v", code, p.stderr)
				}
				p.waitOutput()
				if s := p.stderr.bytes(); len(s) != 0 {
					t.Errorf("stderr: %s", s)
				}
			})
		}
	}
}

// TestExecSanitisedEnvironment: with --exec, the command is the process
// that was secrets-init: its /proc/<pid>/environ is the sanitised
// environment, and it is dumpable again.
func TestExecSanitisedEnvironment(t *testing.T) {
	t.Parallel()
	f := newScrubFixture(t)
	args := append(slices.Clone(f.args), "--exec", "--", f.prog, "inspect")
	p := startInitWith(t, false, f.bin, nil, f.env, args...)
	p.waitRecord("the command's report", 1, "ready", nil)
	self, env := record(t, p, "self")
	if !bytes.Equal(env, f.childBlock()) {
		t.Errorf("the command's environment is\n%q\nwant\n%q", env, f.childBlock())
	}
	if self[2] != "1" {
		t.Errorf("the command is not dumpable (PR_GET_DUMPABLE %s)", self[2])
	}
	host, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p.initPid()))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(host, f.childBlock()) {
		t.Errorf("/proc/<pid>/environ from the host:\n%q\nwant\n%q", host, f.childBlock())
	}
	f.noCanary(t, "/proc/<pid>/environ", host)
	p.stdin.Close()
	if code := p.wait(); code != 0 {
		t.Errorf("exit code %d\nstderr:\n%v", code, p.stderr)
	}
	p.waitOutput()
}

// TestScrubWithoutProc: where /proc is not mounted (here a tmpfs hides it)
// the block cannot be rewritten: secrets-init says so in one warning, with
// no value in it, and runs the command all the same; with no auth input
// set there is nothing to hide and nothing to say.
func TestScrubWithoutProc(t *testing.T) {
	t.Parallel()
	unshare := requireUnshare(t)
	if os.Geteuid() != 0 {
		t.Skip("mounts a tmpfs on /proc: needs root")
	}
	bin, prog := buildBinary(t), buildTestprog(t)
	canary := "canary-token-" + rand.Text()
	for _, tc := range []struct {
		name string
		env  []string
		warn bool
	}{
		{"VAULT_TOKEN set", []string{stdPath, "VAULT_TOKEN=" + canary, "VAULT_SECRET_ID=" + canary}, true},
		{"no auth input", []string{stdPath, "PLAIN=x"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(unshare, "--mount", "--propagation", "private", "sh", "-c",
				`mount -t tmpfs none /proc && exec "$@"`, "sh", bin, "--", prog, "exit", "3")
			cmd.Env = tc.env
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if code := cmd.ProcessState.ExitCode(); code != 3 {
				t.Fatalf("exit code %d (%v), want the command's 3\nstderr:\n%s", code, err, stderr.Bytes())
			}
			if !strings.HasPrefix(string(out), "pid ") {
				t.Errorf("the command did not run: stdout %q", out)
			}
			// A -race build's runtime complains on its own that /proc is gone.
			var lines []string
			for _, l := range strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n") {
				if l != "" && !strings.HasPrefix(l, "==") {
					lines = append(lines, l)
				}
			}
			switch {
			case bytes.Contains(stderr.Bytes(), []byte(canary)):
				t.Errorf("stderr holds the token:\n%s", stderr.Bytes())
			case !tc.warn && len(lines) != 0:
				t.Errorf("stderr: %s", stderr.Bytes())
			case tc.warn && (len(lines) != 1 || !strings.Contains(lines[0], "level=WARN") || !strings.Contains(lines[0], "/proc/self/stat")):
				t.Errorf("stderr %q: want one warning naming /proc/self/stat", stderr.Bytes())
			}
		})
	}
}
