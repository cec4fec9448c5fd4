// Package signals names and rewrites signals, forwards them to the child,
// and hands the terminal to the child's process group.
package signals

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Subscribing to a signal costs a round trip to the Go runtime's
// signal-mask thread (some 30 µs), so the standard signals, which would
// kill secrets-init if they came unsubscribed, are subscribed before the
// command starts, and the real-time ones, which the runtime ignores until
// then, after.

// Standard lists the standard signals that are forwarded: all but SIGKILL
// and SIGSTOP (which cannot be caught), SIGCHLD (secrets-init's own
// business) and SIGURG and SIGPROF (the Go runtime's).
var Standard = func() []os.Signal {
	var sigs []os.Signal
	for n := syscall.Signal(1); n < 32; n++ {
		switch n {
		case unix.SIGKILL, unix.SIGSTOP, unix.SIGCHLD, unix.SIGURG, unix.SIGPROF:
		default:
			sigs = append(sigs, n)
		}
	}
	return sigs
}()

// Realtime lists the real-time signals, SIGRTMIN (34) to SIGRTMAX (64).
var Realtime = func() []os.Signal {
	var sigs []os.Signal
	for n := syscall.Signal(34); n <= 64; n++ {
		sigs = append(sigs, n)
	}
	return sigs
}()

// Parse reads a signal given as a name (TERM or SIGTERM, any case) or a
// number (15).
func Parse(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 || n > 64 {
			return 0, fmt.Errorf("signal number %d out of range", n)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

// Name returns a signal's name, such as SIGTERM.
func Name(sig syscall.Signal) string {
	if n := unix.SignalName(sig); n != "" {
		return n
	}
	return "signal " + strconv.Itoa(int(sig))
}

// Rewrite maps received signals to the signals forwarded, as dumb-init's
// --rewrite does. A signal mapped to 0 is not forwarded.
type Rewrite map[syscall.Signal]syscall.Signal

// Set parses one FROM:TO rule; it makes Rewrite a flag.Value.
func (r Rewrite) Set(rule string) error {
	from, to, ok := strings.Cut(rule, ":")
	if !ok {
		return fmt.Errorf("rewrite %q: want FROM:TO, such as TERM:QUIT or 15:3", rule)
	}
	f, err := Parse(from)
	if err == nil && f == 0 {
		err = fmt.Errorf("cannot rewrite signal 0")
	}
	if err != nil {
		return fmt.Errorf("rewrite %q: %w", rule, err)
	}
	t, err := Parse(to)
	if err != nil {
		return fmt.Errorf("rewrite %q: %w", rule, err)
	}
	r[f] = t
	return nil
}

func (r Rewrite) String() string {
	var rules []string
	for f, t := range r {
		rules = append(rules, fmt.Sprintf("%d:%d", f, t))
	}
	return strings.Join(rules, ",")
}

// Map returns the signal to forward for a received one.
func (r Rewrite) Map(sig syscall.Signal) syscall.Signal {
	if to, ok := r[sig]; ok {
		return to
	}
	return sig
}

// Forward sends sig to the process group led by pid, or to pid alone when
// group is false. A group that is already gone is not an error.
func Forward(pid int, sig syscall.Signal, group bool) error {
	if sig == 0 {
		return nil
	}
	target := pid
	if group {
		target = -pid
	}
	err := unix.Kill(target, sig)
	if err == unix.ESRCH {
		return nil
	}
	return err
}

// IsJobControl reports whether sig is one that stops a process from the
// terminal: SIGTSTP, SIGTTIN or SIGTTOU.
func IsJobControl(sig syscall.Signal) bool {
	return sig == unix.SIGTSTP || sig == unix.SIGTTIN || sig == unix.SIGTTOU
}

// Foreground reports whether fd is a terminal whose foreground process
// group is this process's own, so that it can be handed to a child.
func Foreground(fd int) bool {
	pgrp, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	return err == nil && pgrp == unix.Getpgrp()
}

// SetForeground makes pgid the foreground process group of the terminal
// fd. It ignores SIGTTOU meanwhile, so that a background caller is not
// stopped, then restores delivery of SIGTTOU to c.
func SetForeground(fd, pgid int, c chan<- os.Signal) error {
	signal.Ignore(unix.SIGTTOU)
	defer signal.Notify(c, unix.SIGTTOU)
	return unix.IoctlSetPointerInt(fd, unix.TIOCSPGRP, pgid)
}

// Stop stops the calling process until it receives SIGCONT.
func Stop() error { return unix.Kill(os.Getpid(), unix.SIGSTOP) }
