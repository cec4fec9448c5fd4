// Command secrets-init-resolver is the resolver of the split build: the
// supervisor embeds this executable, starts it when a reference needs an
// SDK store, and talks to it on its stdin and stdout (see package
// resolver). It is not meant to be run by hand.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/secrets-init/secrets-init/internal/encrypt"
	"github.com/secrets-init/secrets-init/internal/resolver"
	"github.com/secrets-init/secrets-init/internal/stores"
	"github.com/secrets-init/secrets-init/policy"
	"golang.org/x/sys/unix"
)

func main() {
	gcOn := gcOff()
	// The split build's supervisor runs its subcommands that need more
	// than it links here (see tools_split.go).
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "policy", "encrypt":
			gcOn()
		}
		switch os.Args[1] {
		case "policy":
			os.Exit(policy.Main(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
		case "encrypt":
			os.Exit(encrypt.Main(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
		}
	}
	// Signals are the supervisor's to handle: it kills the resolver when
	// the resolution is aborted. Those a terminal sends to the whole
	// foreground group must not end it first (the supervisor would see
	// its stores fail, not the signal), nor make it dump its goroutines.
	signal.Ignore(syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU)
	// fd 1 carries the protocol; whatever else would print to stdout goes
	// to stderr, where it cannot corrupt it.
	fd, err := unix.FcntlInt(1, unix.F_DUPFD_CLOEXEC, 3)
	if err == nil {
		err = unix.Dup2(2, 1)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "secrets-init: resolver: %v\n", err)
		os.Exit(1)
	}
	out := &afterFirstAnswer{w: os.NewFile(uintptr(fd), "protocol"), f: gcOn}
	if err := resolver.Serve(os.Stdin, out, stores.Openers, os.Stderr); err != nil {
		if !errors.Is(err, resolver.ErrReported) { // before the settings said how to log
			fmt.Fprintf(os.Stderr, "secrets-init: resolver: %v\n", err)
		}
		os.Exit(1)
	}
}

// gcOff undoes what the supervisor set in this process's environment to
// start it with the garbage collector off (resolver.GCVariable): the
// variables go, so that no process the SDKs start (a credential_process)
// inherits them. The function it returns turns the collector on, once.
func gcOff() func() {
	if os.Getenv(resolver.GCVariable) != "1" {
		return func() {}
	}
	os.Unsetenv(resolver.GCVariable)
	os.Unsetenv("GOGC")
	var once sync.Once
	return func() { once.Do(func() { debug.SetGCPercent(100) }) }
}

// afterFirstAnswer calls f once the first answer is written: the write
// after the greeting. The collector stays off while the first request is
// served (the resolver then exits, unless refresh keeps it).
type afterFirstAnswer struct {
	w      io.Writer
	writes atomic.Int32
	f      func()
}

func (a *afterFirstAnswer) Write(p []byte) (int, error) {
	n, err := a.w.Write(p)
	if a.writes.Add(1) == 2 {
		a.f()
	}
	return n, err
}
