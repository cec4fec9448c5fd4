// Command secrets-init-resolver is the resolver of the split build: the
// supervisor embeds this executable, starts it when a reference needs an
// SDK store, and talks to it on its stdin and stdout (see package
// resolver). It is not meant to be run by hand.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/secrets-init/secrets-init/internal/encrypt"
	"github.com/secrets-init/secrets-init/internal/options"
	"github.com/secrets-init/secrets-init/internal/resolver"
	"github.com/secrets-init/secrets-init/internal/stores"
	"github.com/secrets-init/secrets-init/policy"
	"github.com/secrets-init/secrets-init/provider"
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
	// From here on os.Stderr is the supervisor's stderr (fd 3); fd 2 is
	// left to the runtime's crash reports (resolver.SupervisorStderr).
	stderr := resolver.SupervisorStderr()
	// Signals are the supervisor's to handle: it kills the resolver when
	// the resolution is aborted. Those a terminal sends to the whole
	// foreground group must not end it first (the supervisor would see
	// its stores fail, not the signal), nor make it dump its goroutines.
	signal.Ignore(syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU)
	// fd 1 carries the protocol; whatever else would print to stdout goes
	// to stderr, where it cannot corrupt it.
	fd, err := unix.FcntlInt(1, unix.F_DUPFD_CLOEXEC, 3)
	if err == nil {
		err = unix.Dup2(int(stderr.Fd()), 1)
	}
	if err != nil {
		fmt.Fprintf(stderr, "secrets-init: resolver: %v\n", err)
		os.Exit(1)
	}
	out := &afterFirstAnswer{w: os.NewFile(uintptr(fd), "protocol"), f: gcOn}
	if err := resolver.Serve(os.Stdin, out, openers(), stderr); err != nil {
		if !errors.Is(err, resolver.ErrReported) { // before the settings said how to log
			fmt.Fprintf(stderr, "secrets-init: resolver: %v\n", err)
		}
		os.Exit(1)
	}
}

// openers are the stores this resolver serves. Under
// resolver.TestPanicVariable, for tests, each panics where nothing
// recovers, on its first request, with the variable's value in the
// panic's text.
func openers() map[provider.Kind]func(*options.Options) provider.Opener {
	v := os.Getenv(resolver.TestPanicVariable)
	if v == "" {
		return stores.Openers
	}
	m := map[provider.Kind]func(*options.Options) provider.Opener{}
	for kind := range stores.Openers {
		m[kind] = func(*options.Options) provider.Opener {
			return func(context.Context, provider.Settings) (provider.Store, error) {
				go panic("test panic: " + v)
				select {}
			}
		}
	}
	return m
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
	os.Unsetenv("GOMEMLIMIT")
	var once sync.Once
	return func() {
		once.Do(func() {
			debug.SetGCPercent(100)
			debug.SetMemoryLimit(math.MaxInt64)
		})
	}
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
