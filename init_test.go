package main

// Process-behaviour tests of the real secrets-init binary: built once per
// run, started as PID 1 of a new PID namespace (unshare --pid --fork
// --mount-proc) or, where a test says so, as an ordinary process (the
// laptop case), with internal/testprog as the child. Everything is observed
// from outside: exit codes, what the child records on its stdout, and
// /proc seen from the host.
//
// Waits are polls against a deadline, never fixed sleeps; the deadline is
// generous (a loaded 2-core CI machine) and only matters when a test fails.

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/secrets-init/secrets-init/internal/testbin"
)

// patience bounds every wait: long enough for a loaded CI machine, short
// enough that a broken build fails instead of hanging.
const patience = 30 * time.Second

// stdPath is the only ambient variable the processes under test get.
const stdPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// buildBinary builds secrets-init (see testbin.Build).
func buildBinary(t testing.TB) string { return testbin.SecretsInit(t) }

// buildTestprog builds internal/testprog, the child side of these tests.
func buildTestprog(t testing.TB) string {
	return testbin.Build(t, testbin.Module+"/internal/testprog")
}

var unshareCheck struct {
	once   sync.Once
	path   string
	reason string
}

// requireUnshare skips the test when this machine does not let us create a
// PID namespace, and returns the path of unshare(1).
func requireUnshare(t testing.TB) string {
	t.Helper()
	unshareCheck.once.Do(func() {
		p, err := exec.LookPath("unshare")
		if err != nil {
			unshareCheck.reason = "unshare(1) is not installed (util-linux)"
			return
		}
		cmd := exec.Command(p, "--pid", "--fork", "--mount-proc", "--kill-child", "true")
		cmd.Env = []string{stdPath}
		if out, err := cmd.CombinedOutput(); err != nil {
			unshareCheck.reason = fmt.Sprintf("`unshare --pid --fork --mount-proc` is not permitted here (%v: %s); the PID-1 tests need root or user namespaces", err, bytes.TrimSpace(out))
			return
		}
		unshareCheck.path = p
	})
	if unshareCheck.reason != "" {
		t.Skip(unshareCheck.reason)
	}
	return unshareCheck.path
}

// lineLog collects what a process writes on one stream: the raw bytes and
// the lines (without "\r", for terminals).
type lineLog struct {
	mu    sync.Mutex
	raw   bytes.Buffer
	lines []string
	part  []byte
	eof   bool
}

func (l *lineLog) consume(r io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		l.mu.Lock()
		l.raw.Write(buf[:n])
		l.part = append(l.part, buf[:n]...)
		for {
			i := bytes.IndexByte(l.part, '\n')
			if i < 0 {
				break
			}
			l.lines = append(l.lines, strings.TrimRight(string(l.part[:i]), "\r"))
			l.part = l.part[i+1:]
		}
		if err != nil {
			if len(l.part) > 0 {
				l.lines = append(l.lines, strings.TrimRight(string(l.part), "\r"))
			}
			l.eof = true
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
	}
}

// records returns the lines whose first word is kind, split into words.
func (l *lineLog) records(kind string) [][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out [][]string
	for _, line := range l.lines {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == kind {
			out = append(out, f)
		}
	}
	return out
}

func (l *lineLog) bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.raw.Bytes())
}

func (l *lineLog) done() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.eof
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// waitFor polls cond until it holds, or fails the test after patience.
func waitFor(t testing.TB, what string, cond func() bool, context ...fmt.Stringer) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for delay := time.Millisecond; !cond(); delay = min(2*delay, 20*time.Millisecond) {
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, c := range context {
				fmt.Fprintf(&b, "\n%v", c)
			}
			t.Fatalf("gave up after %v waiting for %s%s", patience, what, b.String())
		}
		time.Sleep(delay)
	}
}

// proc is secrets-init under test, with its three standard streams.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	ns     bool     // PID 1 of its own namespace, under unshare
	bin    string   // the secrets-init executable ("": buildBinary's)
	stdin  *os.File // the write end of its stdin
	stdout *lineLog
	stderr *lineLog
	exited chan struct{}
	inodes [3]uint64 // of the pipes given as fds 0, 1 and 2
	pidMu  sync.Mutex
	pid    int // secrets-init's pid as the host sees it
}

// startInit starts secrets-init with args and exactly env as environment,
// as PID 1 of a new PID namespace when ns is set.
func startInit(t *testing.T, ns bool, env []string, args ...string) *proc {
	t.Helper()
	return startInitWith(t, ns, buildBinary(t), nil, env, args...)
}

// startInitWith is startInit with the binary bin, started through wrap
// when wrap is not empty: a command that execs its arguments, such as
// setpriv(1), so that bin keeps its pid.
func startInitWith(t *testing.T, ns bool, bin string, wrap []string, env []string, args ...string) *proc {
	t.Helper()
	argv := append(append(slices.Clone(wrap), bin), args...)
	given, _ := resolverVars(t)
	env = append(slices.Clone(env), given...)
	if ns {
		argv = append([]string{requireUnshare(t), "--pid", "--fork", "--mount-proc", "--kill-child"}, argv...)
	}
	p := &proc{t: t, ns: ns, bin: bin, stdout: &lineLog{}, stderr: &lineLog{}, exited: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Env = env
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	inR, inW := mustPipe(t)
	outR, outW := mustPipe(t)
	errR, errW := mustPipe(t)
	p.cmd.Stdin, p.cmd.Stdout, p.cmd.Stderr = inR, outW, errW
	for i, f := range []*os.File{inR, outW, errW} {
		st, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		p.inodes[i] = st.Sys().(*syscall.Stat_t).Ino
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", argv, err)
	}
	inR.Close()
	outW.Close()
	errW.Close()
	p.stdin = inW
	go p.stdout.consume(outR)
	go p.stderr.consume(errR)
	go func() {
		p.cmd.Wait()
		close(p.exited)
	}()
	if !ns {
		p.pid = p.cmd.Process.Pid
	}
	t.Cleanup(p.kill)
	return p
}

func mustPipe(t testing.TB) (*os.File, *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	return r, w
}

// kill ends whatever is left of the run: the child's group, secrets-init
// and unshare. (Under unshare, the namespace dies with its PID 1.)
func (p *proc) kill() {
	p.stdin.Close()
	select {
	case <-p.exited:
		return
	default:
	}
	p.pidMu.Lock()
	pid := p.pid
	p.pidMu.Unlock()
	if pid > 0 && !p.ns {
		for _, c := range childrenOf(pid) {
			syscall.Kill(-c, syscall.SIGKILL)
			syscall.Kill(c, syscall.SIGKILL)
		}
	}
	if pid > 0 {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.exited:
	case <-time.After(patience):
		p.t.Errorf("process %d did not die", p.cmd.Process.Pid)
	}
}

// initPid is secrets-init's pid as the host sees it: under unshare, the
// child of unshare once it has exec'd the binary.
func (p *proc) initPid() int {
	p.t.Helper()
	p.pidMu.Lock()
	defer p.pidMu.Unlock()
	if p.pid > 0 {
		return p.pid
	}
	path := p.bin
	if path == "" {
		path = buildBinary(p.t)
	}
	bin, err := os.Stat(path)
	if err != nil {
		p.t.Fatal(err)
	}
	waitFor(p.t, "secrets-init to start under unshare", func() bool {
		for _, c := range childrenOf(p.cmd.Process.Pid) {
			if exe, err := os.Stat(fmt.Sprintf("/proc/%d/exe", c)); err == nil && os.SameFile(exe, bin) {
				p.pid = c
				return true
			}
		}
		return false
	}, p.stderr)
	return p.pid
}

// signal sends sig to secrets-init from the host.
func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := syscall.Kill(p.initPid(), sig); err != nil {
		p.t.Fatalf("kill(%d, %v): %v", p.initPid(), sig, err)
	}
}

func (p *proc) send(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		p.t.Fatalf("writing %q to stdin: %v", line, err)
	}
}

// wait waits for secrets-init (or unshare, which passes its status on) to
// exit and returns the exit code.
func (p *proc) wait() int {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(patience):
		p.t.Fatalf("secrets-init did not exit within %v\nstdout:\n%v\nstderr:\n%v", patience, p.stdout, p.stderr)
	}
	ws := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		p.t.Fatalf("%s was killed by %v\nstderr:\n%v", filepath.Base(p.cmd.Path), ws.Signal(), p.stderr)
	}
	return ws.ExitStatus()
}

// waitOutput waits for EOF on stdout and stderr: every writer is gone.
func (p *proc) waitOutput() {
	p.t.Helper()
	waitFor(p.t, "EOF on stdout and stderr", func() bool { return p.stdout.done() && p.stderr.done() })
}

// waitRecord waits until n records of kind on stdout satisfy match, and
// returns the first.
func (p *proc) waitRecord(what string, n int, kind string, match func(f []string) bool) []string {
	p.t.Helper()
	var found [][]string
	waitFor(p.t, what, func() bool {
		found = found[:0]
		for _, f := range p.stdout.records(kind) {
			if match == nil || match(f) {
				found = append(found, f)
			}
		}
		return len(found) >= n
	}, stringer("stdout:\n"), p.stdout, stringer("stderr:\n"), p.stderr)
	return found[0]
}

type stringer string

func (s stringer) String() string { return string(s) }

// lazy is context for a failure message, computed when it is printed.
type lazy func() string

func (l lazy) String() string { return l() }

// procInfo is what /proc/PID/stat and status tell about a process.
type procInfo struct {
	pid, ppid, pgrp int
	state           byte
	start           uint64 // start time in clock ticks since boot, against pid reuse
	nspid           int    // the pid in its innermost namespace
}

func readProc(pid int) (procInfo, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procInfo{}, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return procInfo{}, fmt.Errorf("odd /proc/%d/stat: %q", pid, s)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3, the state
	if len(f) < 20 {
		return procInfo{}, fmt.Errorf("odd /proc/%d/stat: %q", pid, s)
	}
	info := procInfo{pid: pid, state: f[0][0]}
	info.ppid, _ = strconv.Atoi(f[1])
	info.pgrp, _ = strconv.Atoi(f[2])
	info.start, _ = strconv.ParseUint(f[19], 10, 64)
	info.nspid = pid
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(st), "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "NSpid:" {
				info.nspid, _ = strconv.Atoi(f[len(f)-1])
			}
		}
	}
	return info, nil
}

// allProcs lists every process the host's /proc shows.
func allProcs() []procInfo {
	entries, _ := os.ReadDir("/proc")
	var out []procInfo
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if info, err := readProc(pid); err == nil {
			out = append(out, info)
		}
	}
	return out
}

func childrenOf(pid int) []int {
	var out []int
	for _, p := range allProcs() {
		if p.ppid == pid {
			out = append(out, p.pid)
		}
	}
	return out
}

func pidNS(pid int) string {
	link, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	return link
}

// hostPid maps the pid of a process in secrets-init's namespace to its
// pid as the host sees it.
func (p *proc) hostPid(nspid int) int {
	p.t.Helper()
	if !p.ns {
		return nspid
	}
	ns := pidNS(p.initPid())
	for _, info := range allProcs() {
		if info.nspid == nspid && pidNS(info.pid) == ns {
			return info.pid
		}
	}
	p.t.Fatalf("no process %d in the namespace %s", nspid, ns)
	return 0
}

// alive reports whether the process that had info still runs (it exists,
// is the same process, and is not a zombie).
func alive(info procInfo) bool {
	now, err := readProc(info.pid)
	return err == nil && now.start == info.start && now.state != 'Z'
}

func atoi(t testing.TB, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestInitExitCodes: the child's exit code passes through; a death by
// signal N is 128+N.
func TestInitExitCodes(t *testing.T) {
	t.Parallel()
	prog := buildTestprog(t)
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"exit 0", []string{"exit", "0"}, 0},
		{"exit 1", []string{"exit", "1"}, 1},
		{"exit 3", []string{"exit", "3"}, 3},
		{"exit 255", []string{"exit", "255"}, 255},
		{"SIGKILL", []string{"kill-self", "KILL"}, 137},
		{"SIGTERM", []string{"kill-self", "TERM"}, 143},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := startInit(t, true, []string{stdPath}, append([]string{"--", prog}, tc.args...)...)
			if got := p.wait(); got != tc.want {
				t.Errorf("exit code %d, want %d\nstderr:\n%v", got, tc.want, p.stderr)
			}
			if tc.args[0] == "exit" {
				// The child ran under secrets-init as PID 1.
				p.waitOutput()
				if r := p.stdout.records("pid"); len(r) != 1 || r[0][2] != "1" {
					t.Errorf("child's pid and parent: %v, want the parent to be 1", r)
				}
			}
		})
	}
}

// trapRun starts secrets-init as PID 1 with args before "--", and testprog
// trap with a grandchild in its group; it returns once both trap signals.
func trapRun(t *testing.T, args ...string) (p *proc, child, grandchild []string) {
	t.Helper()
	prog := buildTestprog(t)
	p = startInit(t, true, []string{stdPath}, append(args, "--", prog, "trap", "child", "spawn")...)
	child = p.waitRecord("the child to be ready", 1, "ready", func(f []string) bool { return f[1] == "child" })
	grandchild = p.waitRecord("the grandchild to be ready", 1, "ready", func(f []string) bool { return f[1] == "grandchild" })
	// ready ROLE PID PGID PPID
	if child[3] != child[2] || child[4] != "1" {
		t.Fatalf("child: %v: want it to lead its own process group, under PID 1", child)
	}
	if grandchild[3] != child[2] || grandchild[4] != child[2] {
		t.Fatalf("grandchild: %v: want it in the child's group %s, under the child", grandchild, child[2])
	}
	return p, child, grandchild
}

func gotSignal(role, name string) func(f []string) bool {
	return func(f []string) bool { return f[1] == role && f[4] == name }
}

func countSignals(p *proc, role, name string) int {
	n := 0
	for _, f := range p.stdout.records("sig") {
		if gotSignal(role, name)(f) {
			n++
		}
	}
	return n
}

// TestInitForwardsSignals: signals sent to PID 1 reach the child and a
// grandchild in its process group.
func TestInitForwardsSignals(t *testing.T) {
	t.Parallel()
	p, _, _ := trapRun(t)
	for _, sig := range []syscall.Signal{unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH} {
		name := unix.SignalName(sig)
		p.signal(sig)
		p.waitRecord("the child to get "+name, 1, "sig", gotSignal("child", name))
		p.waitRecord("the grandchild to get "+name, 1, "sig", gotSignal("grandchild", name))
	}
	// A real-time signal: the supervisor subscribes to those as the child
	// starts (the runtime ignores them until then), so send it until it
	// comes through.
	waitFor(t, "the child and the grandchild to get SIGRTMIN+2", func() bool {
		p.signal(36)
		return countSignals(p, "child", "SIG36") > 0 && countSignals(p, "grandchild", "SIG36") > 0
	}, stringer("stdout:\n"), p.stdout)
	p.stdin.Close()
	if code := p.wait(); code != 0 {
		t.Errorf("exit code %d after the child exited 0\nstderr:\n%v", code, p.stderr)
	}
}

// TestInitForwardToChild: --forward-to child signals the child alone.
func TestInitForwardToChild(t *testing.T) {
	t.Parallel()
	p, _, grandchild := trapRun(t, "--forward-to", "child")
	for _, sig := range []syscall.Signal{unix.SIGTERM, unix.SIGUSR1} {
		p.signal(sig)
		p.waitRecord("the child to get "+unix.SignalName(sig), 1, "sig", gotSignal("child", unix.SignalName(sig)))
	}
	// A signal sent to the grandchild directly, after those: once it has
	// arrived, a forwarded one would have too.
	if err := syscall.Kill(p.hostPid(atoi(t, grandchild[2])), unix.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	p.waitRecord("the grandchild to get SIGUSR2", 1, "sig", gotSignal("grandchild", "SIGUSR2"))
	for _, f := range p.stdout.records("sig") {
		if f[1] == "grandchild" && f[4] != "SIGUSR2" {
			t.Errorf("the grandchild got %s with --forward-to child", f[4])
		}
	}
	p.stdin.Close()
	if code := p.wait(); code != 0 {
		t.Errorf("exit code %d after the child exited 0\nstderr:\n%v", code, p.stderr)
	}
}

// TestInitRewrite: --rewrite maps signals by name or number; TO 0 drops.
func TestInitRewrite(t *testing.T) {
	t.Parallel()
	p, _, _ := trapRun(t, "--rewrite", "TERM:QUIT", "--rewrite", "10:12", "--rewrite", "SIGHUP:0")
	p.signal(unix.SIGTERM)
	p.waitRecord("SIGTERM to arrive as SIGQUIT", 1, "sig", gotSignal("child", "SIGQUIT"))
	p.waitRecord("SIGTERM to arrive as SIGQUIT in the group", 1, "sig", gotSignal("grandchild", "SIGQUIT"))
	p.signal(unix.SIGUSR1)
	p.waitRecord("SIGUSR1 (10) to arrive as SIGUSR2 (12)", 1, "sig", gotSignal("child", "SIGUSR2"))
	p.signal(unix.SIGHUP)
	p.signal(unix.SIGWINCH) // not rewritten: arrives after a forwarded SIGHUP would
	p.waitRecord("SIGWINCH, sent after the dropped SIGHUP", 1, "sig", gotSignal("child", "SIGWINCH"))
	p.stdin.Close()
	if code := p.wait(); code != 0 {
		t.Errorf("exit code %d after the child exited 0\nstderr:\n%v", code, p.stderr)
	}
	for _, f := range p.stdout.records("sig") {
		switch f[4] {
		case "SIGTERM", "SIGUSR1", "SIGHUP":
			t.Errorf("%s %s got %s, which is rewritten", f[1], f[2], f[4])
		}
	}
}

// TestInitReapsOrphans: 1000 orphans that exit at once leave no zombie.
func TestInitReapsOrphans(t *testing.T) {
	t.Parallel()
	const n = 1000
	prog := buildTestprog(t)
	p := startInit(t, true, []string{stdPath}, "--", prog, "orphans", strconv.Itoa(n), "cat")
	p.waitRecord("the orphans to be started", 1, "ready", nil)
	pid := p.initPid()
	if kids := childrenOf(pid); len(kids) != n+1 {
		t.Fatalf("PID 1 has %d children; want the child and %d orphans", len(kids), n)
	}
	p.send("release")
	p.waitRecord("the orphans to be released", 1, "released", nil)
	released := time.Now()
	// Only the main child is left: no orphan, running or zombie.
	var left []procInfo
	waitFor(t, "every orphan to be reaped", func() bool {
		left = left[:0]
		for _, info := range allProcs() {
			if info.ppid == pid {
				left = append(left, info)
			}
		}
		return len(left) == 1 && left[0].state != 'Z'
	}, lazy(func() string { return fmt.Sprintf("processes under PID 1: %+v", left) }))
	t.Logf("%d orphans reaped within %v of their release", n, time.Since(released).Round(time.Millisecond))
	p.stdin.Close()
	if code := p.wait(); code != 0 {
		t.Errorf("exit code %d after the child exited 0\nstderr:\n%v", code, p.stderr)
	}
}

// orphanRun starts secrets-init with testprog orphans n MODE and returns
// the orphans, checked to have been re-parented to secrets-init.
func orphanRun(t *testing.T, ns bool, n int, mode string) (*proc, []procInfo) {
	t.Helper()
	prog := buildTestprog(t)
	p := startInit(t, ns, []string{stdPath}, "--", prog, "orphans", strconv.Itoa(n), mode)
	p.waitRecord("the orphans to be started", 1, "ready", nil)
	var orphans []procInfo
	for _, f := range p.stdout.records("orphan") {
		info, err := readProc(p.hostPid(atoi(t, f[1])))
		if err != nil {
			t.Fatal(err)
		}
		if !ns {
			t.Cleanup(func() {
				if alive(info) {
					syscall.Kill(info.pid, syscall.SIGKILL)
				}
			})
		}
		if info.ppid != p.initPid() {
			t.Fatalf("orphan %d has parent %d, not secrets-init (%d)", info.pid, info.ppid, p.initPid())
		}
		orphans = append(orphans, info)
	}
	if len(orphans) != n {
		t.Fatalf("%d orphans reported, want %d\n%v", len(orphans), n, p.stdout)
	}
	return p, orphans
}

// TestInitExitsWithoutWaitingForOrphans: when the main child exits,
// secrets-init exits with its code while an orphan still sleeps.
func TestInitExitsWithoutWaitingForOrphans(t *testing.T) {
	t.Parallel()
	t.Run("PID 1", func(t *testing.T) {
		t.Parallel()
		p, orphans := orphanRun(t, true, 1, "sleep")
		p.send("exit 7")
		if code := p.wait(); code != 7 {
			t.Errorf("exit code %d, want the child's 7\nstderr:\n%v", code, p.stderr)
		}
		// The orphan sleeps forever, so secrets-init did not wait for
		// it; it died with the namespace.
		waitFor(t, "the orphan to die with the namespace", func() bool { return !alive(orphans[0]) })
	})
	t.Run("not PID 1", func(t *testing.T) {
		t.Parallel()
		p, orphans := orphanRun(t, false, 1, "sleep")
		p.send("exit 7")
		if code := p.wait(); code != 7 {
			t.Errorf("exit code %d, want the child's 7\nstderr:\n%v", code, p.stderr)
		}
		if !alive(orphans[0]) {
			t.Errorf("the orphan %d is gone; secrets-init should leave it be", orphans[0].pid)
		}
	})
}

// TestSubreaperReapsOrphans: not PID 1, secrets-init is a child subreaper,
// so orphans of the child come to it and are reaped.
func TestSubreaperReapsOrphans(t *testing.T) {
	t.Parallel()
	p, orphans := orphanRun(t, false, 3, "cat")
	p.send("release")
	p.waitRecord("the orphans to be released", 1, "released", nil)
	for _, o := range orphans {
		waitFor(t, fmt.Sprintf("orphan %d to be reaped", o.pid), func() bool {
			now, err := readProc(o.pid)
			return err != nil || now.start != o.start
		}, lazy(func() string { return fmt.Sprintf("orphan %d: %+v", o.pid, must(readProc(o.pid))) }))
	}
	p.stdin.Close()
	if code := p.wait(); code != 0 {
		t.Errorf("exit code %d after the child exited 0\nstderr:\n%v", code, p.stderr)
	}
}

func must[T any](v T, _ error) T { return v }

// TestInitStartErrors: 127 for a missing command, 126 for one that cannot
// be executed, each with one line naming it.
func TestInitStartErrors(t *testing.T) {
	t.Parallel()
	notExec := filepath.Join(t.TempDir(), "not-executable")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\nexit 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		command string
		want    int
	}{
		{"no-such-command-4f1c", 127},
		{"/no/such/dir/command", 127},
		{notExec, 126},
	} {
		t.Run(strconv.Itoa(tc.want)+" "+filepath.Base(tc.command), func(t *testing.T) {
			t.Parallel()
			p := startInit(t, true, []string{stdPath}, "--", tc.command, "arg")
			if got := p.wait(); got != tc.want {
				t.Errorf("exit code %d, want %d", got, tc.want)
			}
			p.waitOutput()
			msg := strings.TrimSuffix(string(p.stderr.bytes()), "\n")
			if msg == "" || strings.Contains(msg, "\n") || !strings.Contains(msg, tc.command) {
				t.Errorf("stderr %q: want one line naming %s", msg, tc.command)
			}
		})
	}
}

// TestInitEnvironmentPassesThrough: with no reference in it, the child's
// environment is secrets-init's, byte for byte.
func TestInitEnvironmentPassesThrough(t *testing.T) {
	t.Parallel()
	prog := buildTestprog(t)
	env := []string{
		stdPath,
		"SEVERAL=a=b==c=",
		"EMPTY=",
		"NON_UTF8=\xff\xfe\x80 \xc3\x28",
		"UNICODE=héllo wörld ✓",
		"SPACES=  padded  ",
		"NEWLINES=line1\nline2\n",
		"QUOTES='single' \"double\" `back` $HOME ${X}",
		"LOOKS_LIKE=secretfile", // a prefix without its colon is no reference
		"lower_case=1",
		"NOEQUALS",
		"BIG=" + strings.Repeat("x", 64<<10),
	}
	p := startInit(t, true, env, "--", prog, "env")
	if code := p.wait(); code != 0 {
		t.Fatalf("exit code %d\nstderr:\n%v", code, p.stderr)
	}
	p.waitOutput()
	got := strings.Split(strings.TrimSuffix(string(p.stdout.bytes()), "\x00"), "\x00")
	_, seen := resolverVars(t)
	want := append(slices.Clone(env), seen...)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		for _, kv := range want {
			if !slices.Contains(got, kv) {
				t.Errorf("the child lacks %q", trunc(kv))
			}
		}
		for _, kv := range got {
			if !slices.Contains(want, kv) {
				t.Errorf("the child has %q, which secrets-init was not given", trunc(kv))
			}
		}
	}
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// TestInitStdio: stdin, stdout and stderr are the child's own: the very
// pipes secrets-init was given, and 1 MiB of binary data goes through.
func TestInitStdio(t *testing.T) {
	t.Parallel()
	prog := buildTestprog(t)
	p := startInit(t, true, []string{stdPath}, "--", prog, "stdio")
	data := make([]byte, 1<<20)
	rand.Read(data)
	go func() {
		p.stdin.Write(data)
		p.stdin.Close()
	}()
	if code := p.wait(); code != 0 {
		t.Fatalf("exit code %d\nstderr:\n%v", code, p.stderr)
	}
	p.waitOutput()
	if got := p.stdout.bytes(); !bytes.Equal(got, data) {
		t.Errorf("stdout has %d bytes, not the %d bytes written to stdin", len(got), len(data))
	}
	for fd, ino := range p.inodes {
		want := fmt.Sprintf("pipe:[%d]", ino)
		r := p.stderr.records(fmt.Sprintf("fd%d", fd))
		if len(r) != 1 || r[0][1] != want {
			t.Errorf("the child's fd %d is %v, want %s, the one secrets-init was given", fd, r, want)
		}
	}
	if r := p.stderr.records("copied"); len(r) != 1 || r[0][1] != strconv.Itoa(len(data)) {
		t.Errorf("the child reports %v, want copied %d", r, len(data))
	}
}

// TestCopy: copy DIR puts a working copy of the binary in DIR, mode 0755.
func TestCopy(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	dir := filepath.Join(t.TempDir(), "helper", "bin")
	run := func(path string, args ...string) string {
		t.Helper()
		cmd := exec.Command(path, args...)
		cmd.Env = []string{stdPath}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", path, args, err, out)
		}
		return string(out)
	}
	run(bin, "copy", dir)
	dst := filepath.Join(dir, "secrets-init")
	st, err := os.Stat(dst)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode() != 0o755 {
		t.Errorf("mode %v, want -rwxr-xr-x", st.Mode())
	}
	a, _ := os.ReadFile(bin)
	b, _ := os.ReadFile(dst)
	if !bytes.Equal(a, b) {
		t.Errorf("the copy differs from the binary (%d bytes, want %d)", len(b), len(a))
	}
	if got, want := run(dst, "--version"), run(bin, "--version"); got != want || !strings.HasPrefix(got, "secrets-init ") {
		t.Errorf("the copy says %q to --version, the original %q", got, want)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("%s holds %d entries, want only secrets-init (no temporary file left)", dir, len(entries))
	}
	run(bin, "copy", dir) // again, over the first copy
}

// TestExecReplacesProcess: --exec leaves no supervisor: the command has
// secrets-init's pid, parent and exit code.
func TestExecReplacesProcess(t *testing.T) {
	t.Parallel()
	prog := buildTestprog(t)
	p := startInit(t, false, []string{stdPath}, "--exec", "--", prog, "exit", "5")
	if code := p.wait(); code != 5 {
		t.Errorf("exit code %d, want 5\nstderr:\n%v", code, p.stderr)
	}
	p.waitOutput()
	want := []string{"pid", strconv.Itoa(p.cmd.Process.Pid), strconv.Itoa(os.Getpid())}
	if r := p.stdout.records("pid"); len(r) != 1 || !slices.Equal(r[0], want) {
		t.Errorf("the command reports %v, want %v (secrets-init's pid and parent)", r, want)
	}
}

// TestInitSignalDuringResolution: SIGTERM or SIGINT while a reference is
// being resolved (here a FIFO nobody writes) exits 128+N, and the command
// never starts.
func TestInitSignalDuringResolution(t *testing.T) {
	t.Parallel()
	prog := buildTestprog(t)
	for _, sig := range []syscall.Signal{unix.SIGTERM, unix.SIGINT} {
		t.Run(unix.SignalName(sig), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			fifo := filepath.Join(dir, "fifo")
			if err := unix.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			marker := filepath.Join(dir, "started")
			p := startInit(t, true, []string{stdPath, "SECRET=secretfile:" + fifo}, "--", prog, "touch", marker)
			// A writer can open the FIFO without blocking only once a
			// reader has it open: secrets-init is then reading it. Keep
			// it open, writing nothing, so that the read hangs.
			var w int
			waitFor(t, "secrets-init to open the FIFO", func() bool {
				fd, err := unix.Open(fifo, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
				w = fd
				return err == nil
			}, p.stderr)
			defer unix.Close(w)
			select {
			case <-p.exited:
				t.Fatalf("secrets-init exited while the FIFO was still open\nstderr:\n%v", p.stderr)
			default:
			}
			p.signal(sig)
			if code := p.wait(); code != 128+int(sig) {
				t.Errorf("exit code %d, want %d\nstderr:\n%v", code, 128+int(sig), p.stderr)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Errorf("the command ran")
			}
			p.waitOutput()
			if !strings.Contains(p.stderr.String(), unix.SignalName(sig)) {
				t.Errorf("stderr %q does not say why it stopped", p.stderr)
			}
		})
	}
}

// TestTTY: with a terminal on stdin, the child's group is the terminal's
// foreground group: window-size changes, SIGWINCH sent to secrets-init and
// Ctrl-C reach it, as PID 1 or not.
func TestTTY(t *testing.T) {
	t.Parallel()
	for _, ns := range []bool{true, false} {
		name := map[bool]string{true: "PID 1", false: "not PID 1"}[ns]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := startTTY(t, ns)
			p.winch(50, 132)
			n := p.count("SIGWINCH")
			p.signal(unix.SIGWINCH)
			p.waitRecord("SIGWINCH sent to secrets-init to reach the child", n+1, "sig", func(f []string) bool { return f[1] == "SIGWINCH" })
			p.ctrlC()
			p.quit()
		})
	}
}

// TestTTYJobControl: not as PID 1 (which cannot stop itself), SIGTSTP sent
// to secrets-init stops it and the child, and SIGCONT resumes both; Ctrl-Z
// stops the child, then secrets-init, and SIGCONT resumes both with the
// terminal the child's again.
func TestTTYJobControl(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"SIGTSTP", "Ctrl-Z"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			p := startTTY(t, false)
			si := must(readProc(p.initPid()))
			state := func(info procInfo) byte { return must(readProc(info.pid)).state }
			states := lazy(func() string {
				return fmt.Sprintf("secrets-init %d: state %c; child %d: state %c", si.pid, state(si), p.child.pid, state(p.child))
			})
			stopped := func() bool { return state(si) == 'T' && state(p.child) == 'T' }
			// Running, and staying so: secrets-init must not stop again
			// on a stale report of the child's stop.
			running := func() bool { return state(si) != 'T' && state(p.child) != 'T' }
			for round := 0; round < 3; round++ {
				if how == "SIGTSTP" {
					p.signal(unix.SIGTSTP)
				} else {
					p.pty.Write([]byte{0x1a})
				}
				waitFor(t, how+" to stop secrets-init and the child", stopped, states, p.stdout)
				n := p.count("SIGCONT")
				p.signal(unix.SIGCONT)
				p.waitRecord("SIGCONT to reach the child", n+1, "sig", func(f []string) bool { return f[1] == "SIGCONT" })
				waitFor(t, "SIGCONT to resume secrets-init and the child", running, states, p.stdout)
				// The child has the terminal: a resize and Ctrl-C reach it.
				p.winch(30+round, 90+round)
				p.ctrlC()
				if !running() {
					t.Fatalf("stopped again after SIGCONT: %v", states)
				}
			}
			p.quit()
		})
	}
}

// ttyProc is secrets-init on a pseudo-terminal, with testprog tty.
type ttyProc struct {
	*proc
	pty   *os.File // the master
	child procInfo
}

func startTTY(t *testing.T, ns bool) *ttyProc {
	t.Helper()
	bin, prog := buildBinary(t), buildTestprog(t)
	argv := []string{bin, "--", prog, "tty"}
	if ns {
		argv = append([]string{requireUnshare(t), "--pid", "--fork", "--mount-proc", "--kill-child"}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	given, _ := resolverVars(t)
	cmd.Env = append([]string{stdPath, "TERM=dumb"}, given...)
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 80})
	if err != nil {
		t.Fatal(err)
	}
	// No echo: what the test types is not mixed with what the child says.
	// (On Linux, the termios of a pty master are its slave's.)
	if tio, err := unix.IoctlGetTermios(int(ptmx.Fd()), unix.TCGETS); err == nil {
		tio.Lflag &^= unix.ECHO | unix.ECHOCTL
		unix.IoctlSetTermios(int(ptmx.Fd()), unix.TCSETS, tio)
	}
	p := &ttyProc{
		proc: &proc{t: t, cmd: cmd, ns: ns, stdout: &lineLog{}, stderr: &lineLog{}, exited: make(chan struct{}), stdin: ptmx},
		pty:  ptmx,
	}
	if !ns {
		p.pid = cmd.Process.Pid
	}
	go p.stdout.consume(ptmx)
	go func() { cmd.Wait(); close(p.exited) }()
	t.Cleanup(p.kill)

	// tty ISATTY PID PGID FG ROWS COLS
	r := p.waitRecord("the child to report on its terminal", 1, "tty", nil)
	if r[1] != "1" || r[3] != r[2] || r[4] != r[3] || r[5] != "24" || r[6] != "80" {
		t.Fatalf("the child reports %v: want a terminal of 24x80 whose foreground group is the child's own", r)
	}
	p.child = must(readProc(p.hostPid(atoi(t, r[2]))))
	if si := must(readProc(p.initPid())); p.child.pgrp == si.pgrp {
		t.Fatalf("the child is in secrets-init's group %d", si.pgrp)
	}
	return p
}

// count is how many times the child reported signal name.
func (p *ttyProc) count(name string) int {
	n := 0
	for _, f := range p.stdout.records("sig") {
		if f[1] == name {
			n++
		}
	}
	return n
}

// winch resizes the terminal; the child must see SIGWINCH and the size.
func (p *ttyProc) winch(rows, cols int) {
	p.t.Helper()
	if err := pty.Setsize(p.pty, &pty.Winsize{Rows: uint16(rows), Cols: uint16(cols)}); err != nil {
		p.t.Fatal(err)
	}
	p.waitRecord(fmt.Sprintf("SIGWINCH for %dx%d", rows, cols), 1, "sig", func(f []string) bool {
		return f[1] == "SIGWINCH" && f[2] == strconv.Itoa(rows) && f[3] == strconv.Itoa(cols)
	})
}

// ctrlC types Ctrl-C; the child must get SIGINT.
func (p *ttyProc) ctrlC() {
	p.t.Helper()
	n := p.count("SIGINT")
	p.pty.Write([]byte{3})
	p.waitRecord("Ctrl-C to reach the child", n+1, "sig", func(f []string) bool { return f[1] == "SIGINT" })
}

// quit makes the child exit 0, which secrets-init must pass on.
func (p *ttyProc) quit() {
	p.t.Helper()
	io.WriteString(p.pty, "quit\n")
	if code := p.wait(); code != 0 {
		p.t.Errorf("exit code %d after the child exited 0\noutput:\n%v", code, p.stdout)
	}
}
