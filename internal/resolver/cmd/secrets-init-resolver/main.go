// Command secrets-init-resolver is the resolver of the split build: the
// supervisor embeds this executable, starts it when a reference needs an
// SDK store, and talks to it on its stdin and stdout (see package
// resolver). It is not meant to be run by hand.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/secrets-init/secrets-init/internal/encrypt"
	"github.com/secrets-init/secrets-init/internal/resolver"
	"github.com/secrets-init/secrets-init/internal/stores"
	"github.com/secrets-init/secrets-init/policy"
	"golang.org/x/sys/unix"
)

func main() {
	// The split build's supervisor runs its subcommands that need more
	// than it links here (see tools_split.go).
	if len(os.Args) > 1 {
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
	out := os.NewFile(uintptr(fd), "protocol")
	if err := resolver.Serve(os.Stdin, out, stores.Openers, os.Stderr); err != nil {
		if !errors.Is(err, resolver.ErrReported) { // before the settings said how to log
			fmt.Fprintf(os.Stderr, "secrets-init: resolver: %v\n", err)
		}
		os.Exit(1)
	}
}
