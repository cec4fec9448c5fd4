package main

// The split build's resolver, seen from outside: the init tests again with
// a reference that needs it, what it leaves behind (nothing), how it is
// started, and signals while it runs.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/secrets-init/secrets-init/internal/testbin"
	"github.com/secrets-init/secrets-init/policy"
	"github.com/secrets-init/secrets-init/provider/aws/awsfake"
)

// resolvedValue is what the reference that TestWithResolver adds
// resolves to.
const resolvedValue = "resolved-by-the-resolver"

// awsFake serves that reference, for every test of the run.
var awsFake = sync.OnceValue(func() *awsfake.Server {
	f := awsfake.New()
	f.PutSecret("us-east-1", "forced", awsfake.Secret{String: resolvedValue})
	return f
})

// awsEnv points the AWS SDK at f, with nothing taken from the machine.
func awsEnv(f *awsfake.Server) []string {
	env := []string{"AWS_REGION=us-east-1", "HOME=/nonexistent"}
	for k, v := range f.Env() {
		env = append(env, k+"="+v)
	}
	slices.Sort(env)
	return env
}

// resolverVars returns, under TestWithResolver, the variables that
// startInit adds to a run (an AWS reference and what its SDK needs), and
// what the command then sees of them; else nothing.
func resolverVars(t testing.TB) (given, seen []string) {
	if !strings.HasPrefix(t.Name(), "TestWithResolver/") {
		return nil, nil
	}
	env := awsEnv(awsFake())
	given = append(slices.Clone(env), "RESOLVED=aws:secretsmanager:forced")
	seen = append(slices.Clone(env), "RESOLVED="+resolvedValue)
	return given, seen
}

// TestWithResolver runs the init tests again with one reference to a
// store that needs an SDK: in the split build every run starts the
// resolver, which must come and go without a trace: the tests that count
// processes under PID 1 fail on a resolver or a zombie left behind.
func TestWithResolver(t *testing.T) {
	t.Parallel()
	before := awsFake().Count("BatchGetSecretValue") + awsFake().Count("GetSecretValue")
	for name, test := range map[string]func(*testing.T){
		"InitExitCodes":                     TestInitExitCodes,
		"InitForwardsSignals":               TestInitForwardsSignals,
		"InitForwardToChild":                TestInitForwardToChild,
		"InitRewrite":                       TestInitRewrite,
		"InitReapsOrphans":                  TestInitReapsOrphans,
		"InitExitsWithoutWaitingForOrphans": TestInitExitsWithoutWaitingForOrphans,
		"SubreaperReapsOrphans":             TestSubreaperReapsOrphans,
		"InitStartErrors":                   TestInitStartErrors,
		"InitEnvironmentPassesThrough":      TestInitEnvironmentPassesThrough,
		"InitStdio":                         TestInitStdio,
		"ExecReplacesProcess":               TestExecReplacesProcess,
		"InitSignalDuringResolution":        TestInitSignalDuringResolution,
		"TTY":                               TestTTY,
		"TTYJobControl":                     TestTTYJobControl,
	} {
		t.Run(name, test)
	}
	t.Cleanup(func() {
		if after := awsFake().Count("BatchGetSecretValue") + awsFake().Count("GetSecretValue"); after == before && !t.Skipped() {
			t.Errorf("no run resolved the AWS reference")
		}
	})
}

// resolverOf returns the pids of secrets-init's children that are a
// resolver.
func resolverOf(pid int) []int {
	var out []int
	for _, c := range childrenOf(pid) {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", c)); strings.HasPrefix(string(b), "secrets-init-resolver\x00") {
			out = append(out, c)
		}
	}
	return out
}

// fds lists the open file descriptors of process pid and what they are.
func fds(t *testing.T, pid int) map[string]string {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		out[e.Name()], _ = os.Readlink(filepath.Join(dir, e.Name()))
	}
	return out
}

// inheritedFDs are the descriptors above 2 that this process holds
// without close-on-exec: what the machine running the tests gave it, and
// which every process it starts inherits.
func inheritedFDs(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for fd, link := range fds(t, os.Getpid()) {
		info, err := os.ReadFile("/proc/self/fdinfo/" + fd)
		if err != nil || atoi(t, fd) <= 2 {
			continue
		}
		for _, line := range strings.Split(string(info), "\n") {
			if v, ok := strings.CutPrefix(line, "flags:"); ok {
				if flags, err := strconv.ParseUint(strings.TrimSpace(v), 8, 64); err == nil && flags&unix.O_CLOEXEC == 0 {
					out[fd] = link
				}
			}
		}
	}
	return out
}

// TestResolverLeavesNothing: once the command runs, the resolver has come
// and gone: secrets-init's only child is the command, which holds
// nothing but stdin, stdout and stderr, and secrets-init itself keeps
// neither the memfd nor a pipe to the resolver. The value reached the
// command, and nothing of it reached stderr. With each start path.
func TestResolverLeavesNothing(t *testing.T) {
	t.Parallel()
	if !testbin.Split() {
		t.Skip("the single-process build has no resolver")
	}
	prog := buildTestprog(t)
	for _, mode := range []string{"memfd", "file"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			env := append(awsEnv(awsFake()), stdPath, "RESOLVED=aws:secretsmanager:forced")
			if mode == "file" {
				env = append(env, "SECRETS_INIT_TEST_RESOLVER_START=file")
			}
			p := startInit(t, true, env, "--log-level", "debug", "--", prog, "env")
			if code := p.wait(); code != 0 {
				t.Fatalf("exit code %d\nstderr:\n%v", code, p.stderr)
			}
			p.waitOutput()
			if !slices.Contains(strings.Split(string(p.stdout.bytes()), "\x00"), "RESOLVED="+resolvedValue) {
				t.Errorf("the command did not get the value")
			}
			if strings.Contains(p.stderr.String(), resolvedValue) {
				t.Errorf("stderr holds the value:\n%v", p.stderr)
			}
			// The debug line on the resolver's start tells the way it
			// took, and that the embedded executable was copied by the
			// kernel from the file.
			if want := `msg="resolver started" pid=`; !strings.Contains(p.stderr.String(), want) ||
				!strings.Contains(p.stderr.String(), " from="+mode+" ") || !strings.Contains(p.stderr.String(), " sendfile=true ") {
				t.Errorf("stderr lacks the resolver's start from %s with sendfile:\n%v", mode, p.stderr)
			}

			// sleep(1) opens no file of its own, unlike a Go program.
			p = startInit(t, true, env, "--", "sleep", "1000")
			init := p.initPid()
			var kids []int
			waitFor(t, "the command to start", func() bool {
				kids = childrenOf(init)
				if len(kids) != 1 {
					return false
				}
				b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", kids[0]))
				return string(b) == "sleep\x001000\x00"
			}, lazy(func() string { return fmt.Sprintf("children of secrets-init: %v", kids) }))
			if info := must(readProc(kids[0])); info.state == 'Z' {
				t.Fatalf("the only child is a zombie: %+v", info)
			}
			// Beyond 0, 1 and 2, only what this test process was itself
			// given without close-on-exec may reach the command.
			given := inheritedFDs(t)
			for fd, link := range fds(t, kids[0]) {
				if atoi(t, fd) > 2 && given[fd] != link {
					t.Errorf("the command holds fd %s: %s", fd, link)
				}
			}
			// secrets-init lets go of the resolver's pipe once it has
			// exited, which the command does not wait for.
			var held []string
			waitFor(t, "secrets-init to close the resolver's pipe and memfd", func() bool {
				held = held[:0]
				for fd, link := range fds(t, init) {
					if strings.Contains(link, "memfd:") || (strings.HasPrefix(link, "pipe:") && atoi(t, fd) > 2 && given[fd] != link) {
						held = append(held, fd+" "+link)
					}
				}
				return len(held) == 0
			}, lazy(func() string { return fmt.Sprintf("secrets-init holds %v", held) }))
		})
	}
}

// TestResolverCannotStart: where neither a memfd nor a private directory
// may be executed, secrets-init exits 125 with one line that says so and
// names the fix, in text and in JSON; the command never starts.
func TestResolverCannotStart(t *testing.T) {
	t.Parallel()
	if !testbin.Split() {
		t.Skip("the single-process build has no resolver")
	}
	prog := buildTestprog(t)
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			marker := filepath.Join(t.TempDir(), "started")
			env := append(awsEnv(awsFake()), stdPath, "RESOLVED=aws:secretsmanager:forced", "OTHER=aws:ssm:/x", "SECRETS_INIT_TEST_RESOLVER_START=none")
			p := startInit(t, false, env, "--log-format", format, "--", prog, "touch", marker)
			if code := p.wait(); code != 125 {
				t.Errorf("exit code %d, want 125\nstderr:\n%v", code, p.stderr)
			}
			p.waitOutput()
			lines := strings.Split(strings.TrimSpace(p.stderr.String()), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], "cannot start the resolver") || !strings.Contains(lines[0], "memfd") ||
				!strings.Contains(lines[0], "single-process build") {
				t.Errorf("stderr, want one line naming the problem and its fix:\n%v", p.stderr)
			}
			if format == "json" && !strings.HasPrefix(lines[0], `{"time":`) {
				t.Errorf("not a JSON line: %s", lines[0])
			}
			if _, err := os.Stat(marker); err == nil {
				t.Errorf("the command ran")
			}
		})
	}
}

// TestSignalKillsResolver: SIGTERM, SIGINT or SIGHUP while the resolver
// waits on a server that never answers: exit 128+N, the command never
// started, and no resolver is left. Sent to the whole group, as a
// terminal does, the signal is still secrets-init's to act on (and
// SIGQUIT makes the resolver dump nothing).
func TestSignalKillsResolver(t *testing.T) {
	t.Parallel()
	if !testbin.Split() {
		t.Skip("the single-process build has no resolver")
	}
	prog := buildTestprog(t)
	f := awsfake.New()
	t.Cleanup(f.Close)
	f.PutSecret("us-east-1", "slow", awsfake.Secret{String: "never-delivered"})
	f.Hang()
	for _, tc := range []struct {
		sig   syscall.Signal
		group bool // sent to secrets-init's process group, as a terminal's Ctrl-C is
	}{{unix.SIGTERM, false}, {unix.SIGINT, false}, {unix.SIGHUP, false}, {unix.SIGINT, true}, {unix.SIGQUIT, true}} {
		sig := tc.sig
		name := unix.SignalName(sig)
		if tc.group {
			name += " to the group"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			marker := filepath.Join(t.TempDir(), "started")
			env := append(awsEnv(f), stdPath, "SLOW=aws:secretsmanager:slow")
			p := startInit(t, false, env, "--", prog, "touch", marker)
			init := p.initPid()
			var resolvers []int
			waitFor(t, "the resolver to start", func() bool {
				resolvers = resolverOf(init)
				return len(resolvers) == 1
			}, p.stderr)
			info := must(readProc(resolvers[0]))
			if tc.group {
				if sig == unix.SIGQUIT { // not one secrets-init aborts on: ends the run by SIGTERM
					syscall.Kill(-p.cmd.Process.Pid, sig)
					p.signal(unix.SIGTERM)
					sig = unix.SIGTERM
				} else {
					syscall.Kill(-p.cmd.Process.Pid, sig)
				}
			} else {
				p.signal(sig)
			}
			if code := p.wait(); code != 128+int(sig) {
				t.Errorf("exit code %d, want %d\nstderr:\n%v", code, 128+int(sig), p.stderr)
			}
			if alive(info) {
				t.Errorf("the resolver %d is still running", info.pid)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Errorf("the command ran")
			}
			p.waitOutput()
			if !strings.Contains(p.stderr.String(), "resolution aborted") || strings.Contains(p.stderr.String(), "goroutine") {
				t.Errorf("stderr %q does not say why it stopped, or holds more", p.stderr)
			}
		})
	}
}

// TestSplitLinksNoSDK: the supervisor of the split build links no SDK
// module: they are all in the resolver it embeds.
func TestSplitLinksNoSDK(t *testing.T) {
	t.Parallel()
	if !testbin.Split() {
		t.Skip("the single-process build links the SDKs")
	}
	out, err := exec.Command("go", "version", "-m", buildBinary(t)).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "dep" {
			continue
		}
		for _, sdk := range []string{"github.com/aws/", "cloud.google.com/", "github.com/Azure/", "github.com/hashicorp/vault/", "google.golang.org/grpc"} {
			if strings.HasPrefix(f[1], sdk) {
				t.Errorf("the supervisor links %s", f[1])
			}
		}
	}
	if !strings.Contains(string(out), "embedresolver") {
		t.Errorf("not built with the embedresolver tag:\n%s", out)
	}
}

// TestPolicyInResolver: the split build runs `policy` in its embedded
// resolver, with the very output and exit code of the in-process one.
func TestPolicyInResolver(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	for _, args := range [][]string{
		{"-f", "policy/testdata/manifests/workloads.yaml", "--format", "aws"},
		{"-f", "policy/testdata/manifests/app.env"},
		{"--no-such-flag"},
	} {
		var wantOut, wantErr bytes.Buffer
		wantCode := policy.Main(args, strings.NewReader(""), &wantOut, &wantErr)
		cmd := exec.Command(bin, append([]string{"policy"}, args...)...)
		cmd.Env = []string{stdPath}
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		cmd.Run()
		if code := cmd.ProcessState.ExitCode(); code != wantCode || out.String() != wantOut.String() || errOut.String() != wantErr.String() {
			t.Errorf("policy %v: exit %d, stdout %q, stderr %q\nwant exit %d, stdout %q, stderr %q",
				args, code, trunc(out.String()), errOut.String(), wantCode, trunc(wantOut.String()), wantErr.String())
		}
	}
}
