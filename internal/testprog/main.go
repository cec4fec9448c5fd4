// Command testprog is the child side of the process-behaviour tests of
// secrets-init (init_test.go): small, scriptable behaviours that the tests
// observe from outside. It is not part of secrets-init.
//
// Every line it prints is a space-separated record whose first word names
// it, so that a test can pick its records out of a shared stream.
//
//	testprog sleep                    block forever
//	testprog exit N                   print "pid PID PPID", exit with code N
//	testprog kill-self SIG            die by signal SIG (name or number)
//	testprog touch FILE               create FILE, exit 0
//	testprog env                      copy /proc/self/environ to stdout, byte for byte
//	testprog stdio                    report fds 0-2 on stderr, copy stdin to stdout, exit 0
//	testprog trap ROLE [spawn]        record signals; with spawn, first start a
//	                                  "trap grandchild" in the same process group
//	testprog orphans N MODE           make N orphans (MODE cat: exit when released;
//	                                  sleep: sleep forever), then obey stdin
//	testprog tty                      report the terminal, then record signals
//	testprog inspect [parent]         report what this process (and, with parent,
//	                                  what it can read of its parent) looks like,
//	                                  then wait for EOF on stdin
//	testprog record LOG [FLAG...] VAR...
//	                                  append "start PID VAR=VALUE..." to LOG, then
//	                                  "sig PID NAME" for each signal; on SIGHUP also
//	                                  "read PID VAR=VALUE..." (a VAR whose value is
//	                                  a file's path shows the file's content); exit
//	                                  N once LOG.exit holds N. Flags: --ignore-term
//	                                  (and its grandchild, in its group, too);
//	                                  --hold-term (on TERM, exit 0 only once
//	                                  LOG.release exists)
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fatalf("usage: testprog COMMAND [ARG...]")
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "sleep":
		for {
			time.Sleep(time.Hour)
		}
	case "exit":
		fmt.Printf("pid %d %d\n", os.Getpid(), os.Getppid())
		os.Exit(atoi(arg(args, 0)))
	case "kill-self":
		killSelf(arg(args, 0))
	case "touch":
		if err := os.WriteFile(arg(args, 0), []byte("started\n"), 0o644); err != nil {
			fatalf("%v", err)
		}
	case "env":
		b, err := os.ReadFile("/proc/self/environ")
		if err != nil {
			fatalf("%v", err)
		}
		os.Stdout.Write(b)
	case "stdio":
		stdio()
	case "trap":
		trap(arg(args, 0), len(args) > 1 && args[1] == "spawn")
	case "middle":
		middle(atoi(arg(args, 0)), arg(args, 1))
	case "orphans":
		orphans(atoi(arg(args, 0)), arg(args, 1))
	case "tty":
		tty()
	case "inspect":
		inspect(len(args) > 0 && args[0] == "parent")
	case "record":
		record(arg(args, 0), args[1:])
	default:
		fatalf("unknown command %q", os.Args[1])
	}
}

func fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "testprog: "+format+"\n", a...)
	os.Exit(100)
}

func arg(args []string, i int) string {
	if i >= len(args) {
		fatalf("missing argument %d", i+1)
	}
	return args[i]
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		fatalf("%v", err)
	}
	return n
}

func parseSignal(s string) syscall.Signal {
	if n, err := strconv.Atoi(s); err == nil {
		return syscall.Signal(n)
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	sig := unix.SignalNum(name)
	if sig == 0 {
		fatalf("unknown signal %q", s)
	}
	return sig
}

func killSelf(s string) {
	sig := parseSignal(s)
	signal.Reset(sig)
	syscall.Kill(os.Getpid(), sig)
	time.Sleep(time.Minute) // the signal kills us first
	fatalf("still alive after %v", sig)
}

// stdio tells on stderr what fds 0, 1 and 2 are, copies stdin to stdout
// until EOF, then writes a last line on stderr.
func stdio() {
	for fd := 0; fd < 3; fd++ {
		link, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
		if err != nil {
			link = "error:" + err.Error()
		}
		fmt.Fprintf(os.Stderr, "fd%d %s\n", fd, link)
	}
	n, err := io.Copy(os.Stdout, os.Stdin)
	if err != nil {
		fatalf("copy: %v", err)
	}
	fmt.Fprintf(os.Stderr, "copied %d\n", n)
}

// out serialises whole lines on stdout: a child and its grandchild share
// the pipe, and each line is written with one write(2).
var outMu sync.Mutex

func say(format string, a ...any) {
	outMu.Lock()
	defer outMu.Unlock()
	os.Stdout.WriteString(fmt.Sprintf(format, a...) + "\n")
}

// trap records every signal it gets as "sig ROLE PID PGID NAME". It says
// "ready ROLE PID PGID PPID" once its handlers are in place (and, with
// spawn, once its grandchild is ready). It exits 0 at EOF on stdin, except
// in the role "grandchild", which never exits by itself.
func trap(role string, spawn bool) {
	c := make(chan os.Signal, 64)
	signal.Notify(c)
	if spawn {
		g := exec.Command("/proc/self/exe", "trap", "grandchild")
		g.Stdout = os.Stdout
		g.Stderr = os.Stderr
		ready := make(chan struct{})
		r, w, err := os.Pipe()
		if err != nil {
			fatalf("%v", err)
		}
		g.ExtraFiles = []*os.File{w} // fd 3: closed by the grandchild when ready
		if err := g.Start(); err != nil {
			fatalf("start grandchild: %v", err)
		}
		w.Close()
		go func() { io.Copy(io.Discard, r); close(ready) }()
		<-ready
	}
	if role == "grandchild" {
		os.NewFile(3, "ready").Close()
	}
	pid := os.Getpid()
	say("ready %s %d %d %d", role, pid, syscall.Getpgrp(), os.Getppid())
	if role == "grandchild" {
		for s := range c {
			recordSignal(role, pid, s)
		}
	}
	go func() {
		for s := range c {
			recordSignal(role, pid, s)
		}
	}()
	io.Copy(io.Discard, os.Stdin)
	say("bye %s %d", role, pid)
}

func recordSignal(role string, pid int, s os.Signal) {
	sig := s.(syscall.Signal)
	if sig == unix.SIGURG || sig == unix.SIGCHLD {
		return // the Go runtime's preemption; our own children
	}
	name := unix.SignalName(sig)
	if name == "" {
		name = fmt.Sprintf("SIG%d", sig) // a real-time signal
	}
	say("sig %s %d %d %s", role, pid, syscall.Getpgrp(), name)
}

// orphans starts a middle process that starts n orphans and exits at
// once, so that they are re-parented. MODE cat: each orphan is cat(1)
// reading a pipe whose only writer is this process, so all of them exit
// together on "release". MODE sleep: each orphan is "testprog sleep".
//
// It says "orphan PID" for each orphan (as the middle process sees it),
// then "ready N". Then it obeys lines on stdin: "release" closes the pipe
// and says "released"; "exit N" exits with code N; EOF exits 0.
func orphans(n int, mode string) {
	r, w, err := os.Pipe()
	if err != nil {
		fatalf("%v", err)
	}
	m := exec.Command("/proc/self/exe", "middle", strconv.Itoa(n), mode)
	m.ExtraFiles = []*os.File{r} // fd 3
	m.Stdout = os.Stdout
	m.Stderr = os.Stderr
	if err := m.Run(); err != nil {
		fatalf("middle: %v", err)
	}
	r.Close()
	say("ready %d", n)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		switch {
		case len(f) == 1 && f[0] == "release":
			w.Close()
			say("released")
		case len(f) == 2 && f[0] == "exit":
			os.Exit(atoi(f[1]))
		default:
			fatalf("unknown order %q", in.Text())
		}
	}
}

// middle starts the orphans and exits without waiting for them.
func middle(n int, mode string) {
	var path string
	var argv []string
	switch mode {
	case "cat":
		p, err := exec.LookPath("cat")
		if err != nil {
			fatalf("%v", err)
		}
		path, argv = p, []string{"cat"}
	case "sleep":
		path, argv = "/proc/self/exe", []string{"testprog", "sleep"}
	default:
		fatalf("unknown orphan mode %q", mode)
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		fatalf("%v", err)
	}
	stdin := null.Fd()
	if mode == "cat" {
		stdin = 3
	}
	attr := &syscall.ProcAttr{Env: os.Environ(), Files: []uintptr{stdin, null.Fd(), null.Fd()}}
	for i := 0; i < n; i++ {
		pid, err := syscall.ForkExec(path, argv, attr)
		if err != nil {
			fatalf("orphan %d: %v", i, err)
		}
		if n <= 10 {
			say("orphan %d", pid)
		}
	}
}

// tty reports on the terminal on stdin as "tty ISATTY PID PGID FG ROWS
// COLS", then records signals as "sig NAME ROWS COLS". SIGTSTP, SIGTTIN and
// SIGTTOU keep their default action (stop). A line "quit" on stdin, or
// EOF, exits 0.
func tty() {
	c := make(chan os.Signal, 64)
	signal.Notify(c, unix.SIGWINCH, unix.SIGINT, unix.SIGQUIT, unix.SIGTERM, unix.SIGHUP,
		unix.SIGUSR1, unix.SIGUSR2, unix.SIGCONT)
	isatty := 0
	if _, err := unix.IoctlGetTermios(0, unix.TCGETS); err == nil {
		isatty = 1
	}
	fg, err := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	if err != nil {
		fg = -1
	}
	rows, cols := size()
	say("tty %d %d %d %d %d %d", isatty, os.Getpid(), syscall.Getpgrp(), fg, rows, cols)
	go func() {
		for s := range c {
			rows, cols := size()
			say("sig %s %d %d", unix.SignalName(s.(syscall.Signal)), rows, cols)
		}
	}()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if strings.TrimSpace(in.Text()) == "quit" {
			break
		}
	}
	say("bye")
}

func size() (int, int) {
	ws, err := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ)
	if err != nil {
		return -1, -1
	}
	return int(ws.Row), int(ws.Col)
}

// inspect reports, as records whose data is hex ("-" when empty):
//
//	self UID EUID DUMPABLE ENVIRON       this process; ENVIRON is /proc/self/environ
//	parent-environ ok DATA | error ERRNO /proc/PPID/environ
//	parent-cmdline ok DATA | error ERRNO /proc/PPID/cmdline
//	parent-envrange START END            env_start, env_end of /proc/PPID/stat (0 0: not shown)
//	parent-mem ok DATA | error ERRNO     /proc/PPID/mem between them
//	ready
//
// then waits for EOF on stdin, so that its parent can be looked at from
// outside meanwhile.
func inspect(parent bool) {
	dumpable, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	if err != nil {
		fatalf("PR_GET_DUMPABLE: %v", err)
	}
	environ, err := os.ReadFile("/proc/self/environ")
	if err != nil {
		fatalf("%v", err)
	}
	say("self %d %d %d %s", os.Getuid(), os.Geteuid(), dumpable, hexOrDash(environ))
	if parent {
		dir := fmt.Sprintf("/proc/%d/", os.Getppid())
		b, err := os.ReadFile(dir + "environ")
		say("parent-environ %s", outcome(b, err))
		b, err = os.ReadFile(dir + "cmdline")
		say("parent-cmdline %s", outcome(b, err))
		var start, end uint64
		if stat, err := os.ReadFile(dir + "stat"); err == nil {
			if i := strings.LastIndexByte(string(stat), ')'); i >= 0 {
				if f := strings.Fields(string(stat[i+1:])); len(f) > 48 {
					start, _ = strconv.ParseUint(f[47], 10, 64) // field 50
					end, _ = strconv.ParseUint(f[48], 10, 64)   // field 51
				}
			}
		}
		say("parent-envrange %d %d", start, end)
		say("parent-mem %s", readMem(dir+"mem", start, end))
	}
	say("ready")
	io.Copy(io.Discard, os.Stdin)
}

// readMem reads the range [start, end) of the memory file mem; it opens
// the file first, since opening is what the kernel checks.
func readMem(mem string, start, end uint64) string {
	f, err := os.Open(mem)
	if err != nil {
		return outcome(nil, err)
	}
	defer f.Close()
	if start == 0 || end < start {
		return "error no-range"
	}
	b := make([]byte, end-start)
	_, err = f.ReadAt(b, int64(start))
	return outcome(b, err)
}

func outcome(b []byte, err error) string {
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno):
		return "error " + unix.ErrnoName(errno)
	case err != nil:
		return "error other"
	}
	return "ok " + hexOrDash(b)
}

func hexOrDash(b []byte) string {
	if len(b) == 0 {
		return "-"
	}
	return fmt.Sprintf("%x", b)
}

// record is the child of the refresh tests: see the package comment.
func record(log string, args []string) {
	ignoreTerm, holdTerm, leaf := false, false, false
	var vars []string
	for _, a := range args {
		switch a {
		case "--ignore-term":
			ignoreTerm = true
		case "--hold-term":
			holdTerm = true
		case "--leaf": // the grandchild of --ignore-term
			ignoreTerm, leaf = true, true
		default:
			vars = append(vars, a)
		}
	}
	pid := os.Getpid()
	appendLine := func(line string) {
		f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			fatalf("%v", err)
		}
		f.WriteString(line + "\n") // one write(2): lines do not interleave
		f.Close()
	}
	values := func() string {
		var b strings.Builder
		for _, v := range vars {
			val := os.Getenv(v)
			if content, err := os.ReadFile(val); err == nil && strings.HasPrefix(val, "/") {
				val = string(content)
			}
			fmt.Fprintf(&b, " %s=%s", v, val)
		}
		return b.String()
	}
	c := make(chan os.Signal, 64)
	signal.Notify(c)
	if ignoreTerm {
		signal.Ignore(unix.SIGTERM)
	}
	if ignoreTerm && !leaf {
		g := exec.Command("/proc/self/exe", "record", log+".grandchild", "--leaf")
		if err := g.Start(); err != nil {
			fatalf("grandchild: %v", err)
		}
		appendLine(fmt.Sprintf("grandchild %d %d", pid, g.Process.Pid))
	}
	appendLine(fmt.Sprintf("start %d%s", pid, values()))
	go func() {
		for range time.Tick(5 * time.Millisecond) {
			// An empty file is one being written: wait for its code.
			if b, err := os.ReadFile(log + ".exit"); err == nil && strings.TrimSpace(string(b)) != "" {
				os.Exit(atoi(strings.TrimSpace(string(b))))
			}
		}
	}()
	terminating := false
	for s := range c {
		sig := s.(syscall.Signal)
		if sig == unix.SIGURG || sig == unix.SIGCHLD {
			continue
		}
		name := unix.SignalName(sig)
		if name == "" {
			name = fmt.Sprintf("SIG%d", sig)
		}
		appendLine(fmt.Sprintf("sig %d %s", pid, name))
		switch {
		case sig == unix.SIGHUP:
			appendLine(fmt.Sprintf("read %d%s", pid, values()))
		case sig == unix.SIGTERM && holdTerm && !terminating:
			terminating = true
			go func() {
				for range time.Tick(5 * time.Millisecond) {
					if _, err := os.Stat(log + ".release"); err == nil {
						os.Exit(0)
					}
				}
			}()
		case sig == unix.SIGTERM && !holdTerm && !ignoreTerm:
			os.Exit(0)
		}
	}
}
