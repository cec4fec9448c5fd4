// Package supervisor starts the command and stays with it as a small init:
// it forwards signals, reaps zombies and returns the command's exit status.
package supervisor

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/secrets-init/secrets-init/reaper"
	"github.com/secrets-init/secrets-init/signals"
	"golang.org/x/sys/unix"
)

// Command is what to run.
type Command struct {
	Args    []string        // Args[0] is looked up in PATH
	Env     []string        // the command's whole environment
	Child   bool            // forward signals to the child alone, not its group
	Rewrite signals.Rewrite // signals to forward as others
	Log     *slog.Logger
}

// A StartError is a command that could not be started; Code is the exit
// status a shell gives it: 127 not found, 126 not executable.
type StartError struct {
	Name string
	Code int
	Err  error
}

func (e *StartError) Error() string {
	if e.Code == 127 {
		return e.Name + ": command not found"
	}
	return fmt.Sprintf("%s: cannot execute: %v", e.Name, e.Err)
}

func (e *StartError) Unwrap() error { return e.Err }

// lookPath finds the command as a shell would, classifying failures.
func lookPath(name string) (string, error) {
	path, err := exec.LookPath(name)
	if err == nil {
		return path, nil
	}
	return "", startError(name, err)
}

func startError(name string, err error) *StartError {
	code := 126
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		code = 127
	}
	var ee *exec.Error
	if errors.As(err, &ee) {
		err = ee.Err
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return &StartError{Name: name, Code: code, Err: err}
}

// Exec replaces the process with the command, leaving no supervisor. It
// returns only on failure.
func Exec(c Command) error {
	path, err := lookPath(c.Args[0])
	if err != nil {
		return err
	}
	return startError(c.Args[0], syscall.Exec(path, c.Args, c.Env))
}

// Run starts the command in a process group of its own and supervises it
// until it exits: every signal on sigs (which must be subscribed to
// signals.Standard; Run adds signals.Realtime) is forwarded to the group,
// or to the child alone; orphans are reaped. It returns the command's exit
// code, or 128+N when signal N killed it.
//
// When stdin is a terminal whose foreground group is ours, the child's
// group takes the terminal. SIGTSTP, SIGTTIN and SIGTTOU are forwarded,
// then secrets-init stops itself, as dumb-init does; when the child stops
// from the terminal, secrets-init takes the terminal back and stops too,
// so that the shell sees the job stop, and SIGCONT hands the terminal to
// the child again.
func Run(c Command, sigs chan os.Signal) (int, error) {
	path, err := lookPath(c.Args[0])
	if err != nil {
		return 0, err
	}
	tty := signals.Foreground(0)
	attr := &syscall.SysProcAttr{Setpgid: true, Foreground: tty, Ctty: 0}
	pid, err := syscall.ForkExec(path, c.Args, &syscall.ProcAttr{
		Env:   c.Env,
		Files: []uintptr{0, 1, 2},
		Sys:   attr,
	})
	if err != nil {
		return 0, startError(c.Args[0], err)
	}
	c.Env = nil // the values: the supervisor keeps none
	c.Log.Debug("started", "pid", pid, "command", c.Args[0], "tty", tty)
	exits := reaper.Watch(pid, tty)
	go func() {
		signal.Notify(sigs, signals.Realtime...)
		// Give the heap that start-up and resolution left behind back to
		// the OS, off the command's path, for the long wait.
		debug.FreeOSMemory()
	}()
	suspended := false // stopped by a job-control signal, until SIGCONT
	for {
		select {
		case ws, ok := <-exits:
			if !ok {
				return 0, errors.New("lost track of the child")
			}
			if ws.Exited() || ws.Signaled() {
				return reaper.ExitCode(ws), nil
			}
			if ws.Stopped() && signals.IsJobControl(ws.StopSignal()) && !suspended && reaper.Stopped(pid) {
				// Ctrl-Z in the child: take the terminal back and stop
				// with it, so that the shell regains control.
				c.Log.Debug("child stopped; stopping too", "signal", signals.Name(ws.StopSignal()))
				signals.SetForeground(0, unix.Getpgrp(), sigs)
				suspended = true
				signals.Stop()
			}
		case s := <-sigs:
			sig, ok := s.(syscall.Signal)
			if !ok {
				continue
			}
			if sig == unix.SIGCONT {
				suspended = false
				if tty && signals.Foreground(0) {
					signals.SetForeground(0, pid, sigs)
				}
			}
			to := c.Rewrite.Map(sig)
			c.Log.Debug("forwarding", "signal", signals.Name(sig), "as", signals.Name(to), "group", !c.Child)
			if err := signals.Forward(pid, to, !c.Child); err != nil {
				c.Log.Warn("cannot forward signal", "signal", signals.Name(to), "err", err)
			}
			if signals.IsJobControl(sig) {
				suspended = true
				signals.Stop()
			}
		}
	}
}
