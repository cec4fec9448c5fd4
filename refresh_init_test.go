package main

// Refresh (SPEC §8) on the real binary as PID 1, with testprog record as
// the command: it appends a line per start and per signal to a log file,
// which the tests read. Rounds are made short with the test-only
// SECRETS_INIT_TEST_REFRESH_FLOOR, or made on demand with
// --refresh-signal; every wait is for an event, under patience.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/secrets-init/secrets-init/internal/options"
	"github.com/secrets-init/secrets-init/provider/aws/awsfake"
	"github.com/secrets-init/secrets-init/refresh"
)

const refreshCanary = "CANARY-d41d8c-refresh"

// quiet is an interval whose first, random, check practically never comes
// during a test: tests that check on demand (--refresh-signal) use it.
const quiet = "8760h"

type refreshRun struct {
	*proc
	dir, log, status string
}

// runRefresh writes files into a new directory, then starts secrets-init
// as PID 1 with flags, the references in refs (DIR stands for the
// directory), and testprog record LOG recordArgs... as the command.
func runRefresh(t *testing.T, files map[string]string, refs []string, flags []string, recordArgs ...string) *refreshRun {
	t.Helper()
	return runRefreshNS(t, true, files, refs, flags, recordArgs...)
}

// runRefreshNS is runRefresh, as PID 1 of a namespace when ns is set,
// else as an ordinary process (the laptop case).
func runRefreshNS(t *testing.T, ns bool, files map[string]string, refs []string, flags []string, recordArgs ...string) *refreshRun {
	t.Helper()
	return runRefreshEnv(t, ns, nil, files, refs, flags, recordArgs...)
}

// runRefreshEnv is runRefreshNS with more variables in the environment.
func runRefreshEnv(t *testing.T, ns bool, extra []string, files map[string]string, refs []string, flags []string, recordArgs ...string) *refreshRun {
	t.Helper()
	prog := buildTestprog(t)
	r := &refreshRun{dir: t.TempDir()}
	r.log, r.status = filepath.Join(r.dir, "record.log"), filepath.Join(r.dir, "status.json")
	for name, content := range files {
		r.write(name, content)
	}
	env := append([]string{stdPath, options.TestRefreshFloor + "=1ms"}, extra...)
	for _, ref := range refs {
		env = append(env, strings.ReplaceAll(ref, "DIR", r.dir))
	}
	args := append([]string{"--log-level", "debug", "--status-file", r.status}, flags...)
	args = append(args, "--", prog, "record", r.log)
	r.proc = startInit(t, ns, env, append(args, recordArgs...)...)
	t.Cleanup(func() {
		for _, out := range []*lineLog{r.stdout, r.stderr} {
			if strings.Contains(out.String(), refreshCanary) {
				t.Errorf("secrets-init's output holds a value:\n%s", out)
			}
		}
		if b, _ := os.ReadFile(r.status); strings.Contains(string(b), refreshCanary) {
			t.Errorf("the status file holds a value:\n%s", b)
		}
	})
	return r
}

// write replaces a file of the directory atomically, as a store would.
func (r *refreshRun) write(name, content string) {
	path := filepath.Join(r.dir, name)
	if err := os.WriteFile(path+".tmp", []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		r.t.Fatal(err)
	}
}

// records returns the log's lines of kind, split into words.
func (r *refreshRun) records(kind string) [][]string {
	b, _ := os.ReadFile(r.log)
	var out [][]string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == kind {
			out = append(out, f)
		}
	}
	return out
}

func (r *refreshRun) logText() fmt.Stringer {
	return lazy(func() string { b, _ := os.ReadFile(r.log); return "record log:\n" + string(b) })
}

// waitRecords waits for n records of kind and returns them all.
func (r *refreshRun) waitRecords(what string, n int, kind string) [][]string {
	r.t.Helper()
	var got [][]string
	waitFor(r.t, what, func() bool { got = r.records(kind); return len(got) >= n }, r.logText(), stringer("stderr:"), r.stderr)
	return got
}

func (r *refreshRun) readStatus() (refresh.Status, bool) {
	var s refresh.Status
	b, err := os.ReadFile(r.status)
	return s, err == nil && json.Unmarshal(b, &s) == nil
}

// waitStatus waits until the status file satisfies cond.
func (r *refreshRun) waitStatus(what string, cond func(refresh.Status) bool) refresh.Status {
	r.t.Helper()
	var s refresh.Status
	waitFor(r.t, what, func() bool {
		var ok bool
		s, ok = r.readStatus()
		return ok && cond(s)
	}, lazy(func() string { b, _ := os.ReadFile(r.status); return "status:\n" + string(b) }), stringer("stderr:"), r.stderr)
	return s
}

func checksAtLeast(n int) func(refresh.Status) bool {
	return func(s refresh.Status) bool { return s.Counters.Checks >= n }
}

// One restart per change, with the new environment; none over many quiet
// rounds.
func TestRefreshRestartsOncePerChange(t *testing.T) {
	t.Parallel()
	r := runRefresh(t, map[string]string{"db": "pw1-" + refreshCanary}, []string{"DB=secretfile:DIR/db", "PLAIN=x"},
		[]string{"--refresh", "20ms"}, "DB", "PLAIN")
	first := r.waitRecords("the first start", 1, "start")[0]
	if first[2] != "DB=pw1-"+refreshCanary || first[3] != "PLAIN=x" {
		t.Fatalf("first start: %v", first)
	}
	r.waitStatus("30 quiet checks", checksAtLeast(30))
	r.write("db", "pw2-"+refreshCanary)
	starts := r.waitRecords("a restart", 2, "start")
	if starts[1][2] != "DB=pw2-"+refreshCanary || starts[1][1] == first[1] {
		t.Fatalf("restart: %v", starts)
	}
	if !hasRecord(r.records("sig"), "sig", first[1], "SIGTERM") {
		t.Errorf("the old command got no SIGTERM: %v", r.records("sig"))
	}
	s := r.waitStatus("30 more quiet checks", checksAtLeast(r.waitStatus("", checksAtLeast(0)).Counters.Checks+30))
	if n := len(r.records("start")); n != 2 || s.Counters.Restarts != 1 || s.Counters.Changes != 1 || s.Generation != 2 {
		t.Errorf("%d starts; status %+v", n, s)
	}
	if s.PID != atoi(t, starts[1][1]) || len(s.Variables) != 1 || s.Variables[0].State != "ok" || !strings.HasPrefix(s.Variables[0].Version, "hmac:") {
		t.Errorf("status: %+v", s)
	}
	if !strings.Contains(r.stderr.String(), "restarting the command") {
		t.Errorf("no log line for the restart:\n%s", r.stderr)
	}
}

// ?file&refresh=HUP: the files switch, then the command gets SIGHUP and
// reads them: the new pair, and no restart. --refresh-signal is consumed.
func TestRefreshSignalAfterFilesSwitched(t *testing.T) {
	t.Parallel()
	r := runRefresh(t, map[string]string{"tls": `{"cert":"c1","key":"k1-` + refreshCanary + `"}`},
		[]string{"CERT=secretfile:DIR/tls#cert?file&refresh=HUP", "KEY=secretfile:DIR/tls#key?file&refresh=HUP"},
		[]string{"--refresh", quiet, "--refresh-signal", "USR2"}, "CERT", "KEY")
	start := r.waitRecords("the start", 1, "start")[0]
	if start[2] != "CERT=c1" || start[3] != "KEY=k1-"+refreshCanary {
		t.Fatalf("start: %v", start)
	}
	for i := 2; i <= 5; i++ {
		r.write("tls", fmt.Sprintf(`{"cert":"c%d","key":"k%d-%s"}`, i, i, refreshCanary))
		r.signal(syscall.SIGUSR2)
		reads := r.waitRecords("a read on SIGHUP", i-1, "read")
		if got := reads[i-2]; got[2] != fmt.Sprintf("CERT=c%d", i) || got[3] != fmt.Sprintf("KEY=k%d-%s", i, refreshCanary) {
			t.Fatalf("on SIGHUP %d the command read %v", i-1, got)
		}
	}
	if n := len(r.records("start")); n != 1 {
		t.Errorf("%d starts, want 1", n)
	}
	for _, s := range r.records("sig") {
		if s[2] != "SIGHUP" {
			t.Errorf("the command got %s (--refresh-signal is not forwarded)", s[2])
		}
	}
}

// No torn certificate/key pair: a reader that resolves the private
// directory once always sees a pair of one generation.
func TestRefreshNoTornPair(t *testing.T) {
	t.Parallel()
	r := runRefresh(t, map[string]string{"tls": `{"cert":"0","key":"0"}`},
		[]string{"CERT=secretfile:DIR/tls#cert?file", "KEY=secretfile:DIR/tls#key?file"},
		[]string{"--refresh", quiet, "--refresh-signal", "USR2", "--on-file-change", "none"}, "CERT")
	start := r.waitRecords("the start", 1, "start")[0]
	// The file's path, from the command's environment.
	environ, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", r.hostPid(atoi(t, start[1]))))
	if err != nil {
		t.Fatal(err)
	}
	var certPath string
	for _, kv := range strings.Split(string(environ), "\x00") {
		if p, ok := strings.CutPrefix(kv, "CERT="); ok {
			certPath = p
		}
	}
	if link, err := os.Readlink(certPath); err != nil || link != "..data/CERT" {
		t.Fatalf("CERT=%s -> %q, %v; want a symlink to ..data/CERT", certPath, link, err)
	}
	var stop atomic.Bool
	var reads, torn atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for !stop.Load() {
			real, err := filepath.EvalSymlinks(certPath)
			if err != nil {
				continue
			}
			c, err1 := os.ReadFile(real)
			k, err2 := os.ReadFile(filepath.Join(filepath.Dir(real), "KEY"))
			if err1 == nil && err2 == nil {
				reads.Add(1)
				if string(c) != string(k) {
					torn.Add(1)
				}
			}
		}
	})
	const switches = 200
	for i := 1; i <= switches; i++ {
		r.write("tls", fmt.Sprintf(`{"cert":"%d","key":"%d"}`, i, i))
		r.signal(syscall.SIGUSR2)
		r.waitStatus("a switch", func(s refresh.Status) bool { return s.Generation == i+1 })
	}
	stop.Store(true)
	wg.Wait()
	if torn.Load() > 0 || reads.Load() == 0 {
		t.Errorf("%d torn pairs in %d reads", torn.Load(), reads.Load())
	}
	t.Logf("%d consistent reads across %d switches", reads.Load(), switches)
}

// A command that ignores SIGTERM is killed with its whole group after
// --stop-timeout, reaped, and started again.
func TestRefreshStopTimeoutKillsGroup(t *testing.T) {
	t.Parallel()
	r := runRefresh(t, map[string]string{"db": "1"}, []string{"DB=secretfile:DIR/db"},
		[]string{"--refresh", quiet, "--refresh-signal", "USR2", "--stop-timeout", "100ms"}, "--ignore-term", "DB")
	g := r.waitRecords("the grandchild", 1, "grandchild")[0]
	r.waitRecords("the start", 1, "start")
	child, err1 := readProc(r.hostPid(atoi(t, g[1])))
	grand, err2 := readProc(r.hostPid(atoi(t, g[2])))
	if err1 != nil || err2 != nil || child.pgrp != grand.pgrp {
		t.Fatalf("child %+v %v, grandchild %+v %v: want one group", child, err1, grand, err2)
	}
	r.write("db", "2")
	r.signal(syscall.SIGUSR2)
	starts := r.waitRecords("the restart", 2, "start")
	if starts[1][2] != "DB=2" {
		t.Errorf("restart: %v", starts[1])
	}
	waitFor(t, "the old command and its grandchild to be gone and reaped", func() bool { return !exists(child) && !exists(grand) })
	if !strings.Contains(r.stderr.String(), "did not stop within --stop-timeout") {
		t.Errorf("no log line for the kill:\n%s", r.stderr)
	}
}

func hasRecord(records [][]string, want ...string) bool {
	for _, r := range records {
		if slices.Equal(r, want) {
			return true
		}
	}
	return false
}

// exists reports whether the process is still there, even as a zombie.
func exists(info procInfo) bool {
	now, err := readProc(info.pid)
	return err == nil && now.start == info.start
}

// SIGTERM between the stop and the new start: exit 143, nothing started.
func TestRefreshTermDuringRestart(t *testing.T) {
	t.Parallel()
	r := runRefresh(t, map[string]string{"db": "1"}, []string{"DB=secretfile:DIR/db"},
		[]string{"--refresh", quiet, "--refresh-signal", "USR2"}, "--hold-term", "DB")
	start := r.waitRecords("the start", 1, "start")[0]
	r.write("db", "2")
	r.signal(syscall.SIGUSR2)
	r.waitRecords("the stop signal", 1, "sig")
	r.signal(syscall.SIGTERM)
	// The forwarded SIGTERM shows secrets-init has taken it in.
	r.waitRecords("the forwarded SIGTERM", 2, "sig")
	if err := os.WriteFile(r.log+".release", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(); code != 143 {
		t.Errorf("exit code %d, want 143\nstderr:\n%v", code, r.stderr)
	}
	if starts := r.records("start"); len(starts) != 1 || starts[0][1] != start[1] {
		t.Errorf("starts: %v, want only the first", starts)
	}
}

// A command that exits on its own ends secrets-init with its code.
func TestRefreshCommandExitsOnItsOwn(t *testing.T) {
	t.Parallel()
	r := runRefresh(t, map[string]string{"db": "1"}, []string{"DB=secretfile:DIR/db"}, []string{"--refresh", "20ms"}, "DB")
	r.waitRecords("the start", 1, "start")
	r.waitStatus("a few checks", checksAtLeast(3))
	if err := os.WriteFile(r.log+".exit", []byte("7"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(); code != 7 {
		t.Errorf("exit code %d, want 7\nstderr:\n%v", code, r.stderr)
	}
	if n := len(r.records("start")); n != 1 {
		t.Errorf("%d starts", n)
	}
}

// A deleted file keeps its value: no restart, state deleted.
func TestRefreshDeletedKeepsValue(t *testing.T) {
	t.Parallel()
	r := runRefresh(t, map[string]string{"db": refreshCanary}, []string{"DB=secretfile:DIR/db"}, []string{"--refresh", "20ms"}, "DB")
	r.waitRecords("the start", 1, "start")
	os.Remove(filepath.Join(r.dir, "db"))
	s := r.waitStatus("the deletion", func(s refresh.Status) bool { return s.Variables[0].State == "deleted" })
	r.waitStatus("more checks", checksAtLeast(s.Counters.Checks+20))
	if n := len(r.records("start")); n != 1 {
		t.Errorf("%d starts after a deletion", n)
	}
	if strings.Count(r.stderr.String(), "was deleted") != 1 {
		t.Errorf("want one log line for the deletion:\n%s", r.stderr)
	}
}

// --max-stale: no check succeeds (the file became a directory), so the
// command is stopped and secrets-init exits 125.
func TestRefreshMaxStale(t *testing.T) {
	t.Parallel()
	r := runRefresh(t, map[string]string{"db": "1"}, []string{"DB=secretfile:DIR/db"}, []string{"--refresh", "20ms", "--max-stale", "1s"}, "DB")
	start := r.waitRecords("the start", 1, "start")[0]
	os.Remove(filepath.Join(r.dir, "db"))
	if err := os.Mkdir(filepath.Join(r.dir, "db"), 0o755); err != nil {
		t.Fatal(err)
	}
	if code := r.wait(); code != 125 {
		t.Errorf("exit code %d, want 125\nstderr:\n%v", code, r.stderr)
	}
	if !hasRecord(r.records("sig"), "sig", start[1], "SIGTERM") {
		t.Errorf("the command was not stopped: %v", r.records("sig"))
	}
	if !strings.Contains(r.stderr.String(), "max-stale") || !strings.Contains(r.stderr.String(), "keeping the last good values") {
		t.Errorf("stderr:\n%s", r.stderr)
	}
}

// 200 restarts leave no fd and no zombie behind.
func TestRefreshManyRestartsLeakNothing(t *testing.T) {
	t.Parallel()
	r := runRefresh(t, map[string]string{"db": "0"}, []string{"DB=secretfile:DIR/db"},
		[]string{"--refresh", quiet, "--refresh-signal", "USR2"}, "DB")
	r.waitRecords("the start", 1, "start")
	init := r.initPid()
	fdLinks := func() []string {
		e, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", init))
		var links []string
		for _, f := range e {
			l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", init, f.Name()))
			links = append(links, f.Name()+" "+l)
		}
		return links
	}
	fds := func() int { return len(fdLinks()) }
	r.waitStatus("the first status", func(s refresh.Status) bool { return s.PID != 0 })
	before := fdLinks()
	t.Logf("fds before: %q", before)
	const restarts = 200
	for i := 1; i <= restarts; i++ {
		r.write("db", fmt.Sprint(i))
		r.signal(syscall.SIGUSR2)
		r.waitRecords("a restart", i+1, "start")
	}
	starts := r.records("start")
	if last := starts[len(starts)-1]; last[2] != fmt.Sprintf("DB=%d", restarts) || len(starts) != restarts+1 {
		t.Fatalf("%d starts, last %v", len(starts), last)
	}
	waitFor(t, "one child, no zombie", func() bool {
		kids := childrenOf(init)
		if len(kids) != 1 {
			return false
		}
		info, err := readProc(kids[0])
		return err == nil && info.state != 'Z'
	})
	// A status file being written holds one more for a moment.
	waitFor(t, "as many open fds as before the restarts", func() bool { return fds() <= len(before) },
		stringer(fmt.Sprintf("before: %q", before)), lazy(func() string { return fmt.Sprintf("now: %q", fdLinks()) }))
}

// A change that fails validation (the selected key is gone) keeps the
// command running with its last good values, logs one value-free line a
// round, and recovers once the secret is valid again.
func TestRefreshFailureKeepsValues(t *testing.T) {
	t.Parallel()
	r := runRefresh(t, map[string]string{"db": `{"pw":"1-` + refreshCanary + `"}`}, []string{"PW=secretfile:DIR/db#pw"},
		[]string{"--refresh", quiet, "--refresh-signal", "USR2"}, "PW")
	r.waitRecords("the start", 1, "start")
	r.write("db", `{"other":"`+refreshCanary+`"}`)
	for i := 1; i <= 3; i++ {
		r.signal(syscall.SIGUSR2)
		r.waitStatus("a failed check", func(s refresh.Status) bool { return s.ConsecutiveFailures == i })
	}
	s, _ := r.readStatus()
	if s.Variables[0].State != "error" || s.Counters.Failures != 3 || len(r.records("start")) != 1 {
		t.Errorf("after 3 failed rounds: %+v, %d starts", s, len(r.records("start")))
	}
	if n := strings.Count(r.stderr.String(), `JSON key \"pw\" not in secret`); n != 3 {
		t.Errorf("%d log lines for 3 failed rounds:\n%s", n, r.stderr)
	}
	r.write("db", `{"pw":"2-`+refreshCanary+`"}`)
	r.signal(syscall.SIGUSR2)
	if got := r.waitRecords("the restart", 2, "start")[1]; got[2] != "PW=2-"+refreshCanary {
		t.Errorf("restart: %v", got)
	}
	r.waitStatus("recovery", func(s refresh.Status) bool { return s.ConsecutiveFailures == 0 && s.Variables[0].State == "ok" })
}

// The stop signal is SIGTERM after --rewrite; and restarts work when
// secrets-init is not PID 1 (a subreaper on a laptop).
func TestRefreshStopSignalRewrittenAsSubreaper(t *testing.T) {
	t.Parallel()
	r := runRefreshNS(t, false, map[string]string{"db": "1"}, []string{"DB=secretfile:DIR/db"},
		[]string{"--refresh", quiet, "--refresh-signal", "USR2", "--rewrite", "TERM:INT", "--stop-timeout", "100ms"}, "DB")
	first := r.waitRecords("the start", 1, "start")[0]
	r.write("db", "2")
	r.signal(syscall.SIGUSR2)
	starts := r.waitRecords("the restart", 2, "start")
	if starts[1][2] != "DB=2" {
		t.Errorf("restart: %v", starts[1])
	}
	if !hasRecord(r.records("sig"), "sig", first[1], "SIGINT") || hasRecord(r.records("sig"), "sig", first[1], "SIGTERM") {
		t.Errorf("the old command got %v; want SIGINT (TERM rewritten), then SIGKILL", r.records("sig"))
	}
	info, err := readProc(atoi(t, starts[1][1]))
	if err != nil || info.ppid != r.initPid() {
		t.Errorf("the new command %+v (%v): want secrets-init (%d) as its parent", info, err, r.initPid())
	}
}

// A Secrets Manager rotation on the wire-level AWS fake: one DescribeSecret
// per check, and a restart with the new value.
func TestRefreshAWSRotation(t *testing.T) {
	t.Parallel()
	f := awsfake.New()
	t.Cleanup(f.Close)
	f.PutSecret("eu-west-1", "db", awsfake.Secret{String: `{"password":"one-` + refreshCanary + `"}`})
	extra := []string{"AWS_REGION=eu-west-1"}
	for k, v := range f.Env() {
		extra = append(extra, k+"="+v)
	}
	r := runRefreshEnv(t, true, extra, nil, []string{"PW=aws:secretsmanager:db:password"},
		[]string{"--refresh", quiet, "--refresh-signal", "USR2"}, "PW")
	if got := r.waitRecords("the start", 1, "start")[0]; got[2] != "PW=one-"+refreshCanary {
		t.Fatalf("start: %v", got)
	}
	for i := 1; i <= 3; i++ {
		r.signal(syscall.SIGUSR2)
		r.waitStatus("a check", checksAtLeast(i))
	}
	if n := f.Count("DescribeSecret"); n != 3 {
		t.Errorf("%d DescribeSecret calls in 3 checks", n)
	}
	f.Rotate("eu-west-1", "db", awsfake.Secret{String: `{"password":"two-` + refreshCanary + `"}`})
	r.signal(syscall.SIGUSR2)
	if got := r.waitRecords("the restart", 2, "start")[1]; got[2] != "PW=two-"+refreshCanary {
		t.Errorf("restart: %v", got)
	}
	s := r.waitStatus("the status after the restart", func(s refresh.Status) bool { return s.Counters.Restarts == 1 })
	if v := s.Variables[0]; v.Store != "aws-secretsmanager" || v.State != "ok" || v.Version == "" || strings.HasPrefix(v.Version, "hmac:") {
		t.Errorf("status: %+v", v)
	}
}
