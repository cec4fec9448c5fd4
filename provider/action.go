package provider

import (
	"errors"
	"fmt"
	"strconv"
	"syscall"

	"github.com/secrets-init/secrets-init/signals"
)

// An Action is what refresh does when a delivered value changes: restart
// the command, send it a signal, or nothing. On a reference (?refresh=) it
// may also be Off: the reference is never checked.
type Action struct {
	Kind   ActionKind
	Signal syscall.Signal // with ActSignal
}

// ActionKind orders actions by strength: in one round the strongest wins.
type ActionKind uint8

const (
	ActDefault ActionKind = iota // not given: the flags decide
	ActOff                       // ?refresh=off: never checked
	ActNone                      // log and status only
	ActSignal                    // send Signal
	ActRestart                   // stop the command and start it again
)

// ParseAction reads restart, none, off (when allowOff) or a signal (HUP,
// SIGUSR1, a number; when allowSignal).
func ParseAction(s string, allowSignal, allowOff bool) (Action, error) {
	switch s {
	case "restart":
		return Action{Kind: ActRestart}, nil
	case "none":
		return Action{Kind: ActNone}, nil
	case "off":
		if allowOff {
			return Action{Kind: ActOff}, nil
		}
	}
	want := "restart or none"
	switch {
	case allowSignal && allowOff:
		want = "restart, a signal (such as HUP), none or off"
	case allowSignal:
		want = "restart, a signal (such as HUP) or none"
	}
	if !allowSignal || s == "" || s == "off" {
		return Action{}, fmt.Errorf("want %s", want)
	}
	sig, err := signals.Parse(s)
	if err != nil {
		return Action{}, fmt.Errorf("%w (want %s)", err, want)
	}
	if err := SignalAllowed(sig); err != nil {
		return Action{}, err
	}
	return Action{Kind: ActSignal, Signal: sig}, nil
}

// SignalAllowed reports why sig cannot be sent or consumed as a refresh
// signal: 0, SIGKILL and SIGSTOP cannot be caught, SIGCHLD is the
// supervisor's own.
func SignalAllowed(sig syscall.Signal) error {
	switch sig {
	case 0, syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGCHLD:
		return fmt.Errorf("signal %s cannot be used for refresh", signalWord(sig))
	}
	return nil
}

// String is the word ParseAction reads back.
func (a Action) String() string {
	switch a.Kind {
	case ActRestart:
		return "restart"
	case ActNone:
		return "none"
	case ActOff:
		return "off"
	case ActSignal:
		return signalWord(a.Signal)
	}
	return ""
}

// signalWord names a signal as ParseAction reads it back: HUP, or a
// number for one without a name.
func signalWord(sig syscall.Signal) string {
	if n := signals.Name(sig); len(n) > 3 && n[:3] == "SIG" {
		return n[3:]
	}
	return strconv.Itoa(int(sig))
}

// ErrSignalNeedsFile is wrapped by the parse error of a reference that
// asks for a signal on change without ?file: its value lives in the
// environment, which a running process cannot be given again. secrets-init
// reports it as a usage error.
var ErrSignalNeedsFile = errors.New("refresh=SIGNAL needs ?file: a value in the environment changes only with a restart")
