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
	"time"

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

	// With refresh (SPEC §8): the orders of the refresh loop, and the time
	// a command being restarted gets between the stop signal and SIGKILL.
	Control     *Control
	StopTimeout time.Duration
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
//
// With c.Control (refresh), Run also obeys its orders: a restart sends the
// stop signal (SIGTERM after Rewrite), SIGKILLs the group after
// c.StopTimeout, reaps the command, kills what is left of its group and
// starts the command again with the order's environment; SIGTERM or SIGINT
// meanwhile makes Run return 128+N once the old command is gone, starting
// nothing. A command that exits by itself still ends Run with its status.
func Run(c Command, sigs chan os.Signal) (int, error) {
	path, err := lookPath(c.Args[0])
	if err != nil {
		return 0, err
	}
	if c.Control != nil {
		defer close(c.Control.ended)
	}
	tty := signals.Foreground(0)
	pid, err := start(path, c.Args, c.Env, tty)
	if err != nil {
		return 0, err
	}
	c.Env = nil // the values: the supervisor keeps none
	c.Log.Debug("started", "pid", pid, "command", c.Args[0], "tty", tty)
	c.Control.started(pid)
	exits := reaper.Watch(pid, tty)
	go func() {
		signal.Notify(sigs, signals.Realtime...)
		// Give the heap that start-up and resolution left behind back to
		// the OS, off the command's path, for the long wait.
		debug.FreeOSMemory()
	}()
	var orders <-chan Order
	if c.Control != nil {
		orders = c.Control.orders
	}
	var stopping *Order       // a restart or a stop under way (refresh)
	var kill <-chan time.Time // when to SIGKILL the group being stopped
	suspended := false        // stopped by a job-control signal, until SIGCONT
	for {
		select {
		case ws, ok := <-exits:
			if !ok {
				return 0, errors.New("lost track of the child")
			}
			if (ws.Exited() || ws.Signaled()) && stopping == nil {
				return reaper.ExitCode(ws), nil
			}
			if ws.Exited() || ws.Signaled() {
				// The command stopped for a restart (or --max-stale): what
				// is left of its group goes too, then the new one starts.
				signals.Forward(pid, unix.SIGKILL, true)
				o := stopping
				stopping, kill = nil, nil
				if o.Stop != 0 {
					o.reply(errStopped)
					return o.Stop, nil
				}
				tty = signals.Foreground(0)
				if pid, err = start(path, c.Args, o.Env, tty); err != nil {
					o.reply(err)
					return 0, err
				}
				o.Env = nil
				c.Log.Debug("restarted", "pid", pid, "command", c.Args[0])
				c.Control.started(pid)
				exits = reaper.Watch(pid, tty)
				o.reply(nil)
				continue
			}
			if ws.Stopped() && signals.IsJobControl(ws.StopSignal()) && !suspended && reaper.Stopped(pid) {
				// Ctrl-Z in the child: take the terminal back and stop
				// with it, so that the shell regains control.
				c.Log.Debug("child stopped; stopping too", "signal", signals.Name(ws.StopSignal()))
				signals.SetForeground(0, unix.Getpgrp(), sigs)
				suspended = true
				signals.Stop()
			}
		case <-kill:
			kill = nil
			c.Log.Warn("the command did not stop within --stop-timeout; killing its process group", "pid", pid, "stop_timeout", c.StopTimeout)
			signals.Forward(pid, unix.SIGKILL, true)
		case o := <-orders:
			switch {
			case stopping != nil:
				o.reply(errors.New("the command is being stopped"))
			case o.Signal != 0:
				c.Log.Debug("refresh: signalling", "signal", signals.Name(o.Signal), "group", !c.Child)
				o.reply(signals.Forward(pid, o.Signal, !c.Child))
			default:
				stopping = &o
				stop := c.Rewrite.Map(unix.SIGTERM)
				c.Log.Debug("stopping the command", "pid", pid, "signal", signals.Name(stop), "group", !c.Child)
				if err := signals.Forward(pid, stop, !c.Child); err != nil {
					c.Log.Warn("cannot signal the command", "signal", signals.Name(stop), "err", err)
				}
				kill = time.After(c.StopTimeout)
			}
		case s := <-sigs:
			sig, ok := s.(syscall.Signal)
			if !ok {
				continue
			}
			if c.Control != nil && sig == c.Control.CheckSignal && sig != 0 {
				select { // consumed: a check is asked for, not forwarded
				case c.Control.checkNow <- struct{}{}:
				default:
				}
				continue
			}
			if stopping != nil && (sig == unix.SIGTERM || sig == unix.SIGINT) && stopping.Stop == 0 {
				// Between the stop and the new start: start nothing.
				c.Log.Debug("terminated during a restart; the command will not start again", "signal", signals.Name(sig))
				stopping.Stop = 128 + int(sig)
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

// start starts the command in a process group of its own, with the
// terminal when tty is set.
func start(path string, args, env []string, tty bool) (int, error) {
	attr := &syscall.SysProcAttr{Setpgid: true, Foreground: tty, Ctty: 0}
	pid, err := syscall.ForkExec(path, args, &syscall.ProcAttr{
		Env:   env,
		Files: []uintptr{0, 1, 2},
		Sys:   attr,
	})
	if err != nil {
		return 0, startError(args[0], err)
	}
	return pid, nil
}
