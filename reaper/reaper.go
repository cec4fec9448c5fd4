// Package reaper collects the exit status of every child, so that no
// zombie is left behind: as PID 1 it inherits orphans, and elsewhere
// Subreaper makes orphans come to it too.
package reaper

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Subreaper makes the calling process a child subreaper
// (PR_SET_CHILD_SUBREAPER) unless it is PID 1, which inherits orphans
// anyway. Orphaned descendants are then re-parented to it, to be reaped.
func Subreaper() error {
	if os.Getpid() == 1 {
		return nil
	}
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// Watch reaps every child, orphans included, from now until the child
// pid has exited, and sends pid's wait statuses on the channel it returns:
// its stops too when stopped is true (for job control), then its exit.
// It waits in a goroutine of its own, so no SIGCHLD can be missed; no
// other code of the process may wait for children meanwhile.
func Watch(pid int, stopped bool) <-chan unix.WaitStatus {
	flags := 0
	if stopped {
		flags |= unix.WUNTRACED
	}
	c := make(chan unix.WaitStatus, 1)
	go func() {
		for {
			var ws unix.WaitStatus
			got, err := unix.Wait4(-1, &ws, flags, nil)
			switch {
			case err == unix.EINTR:
				continue
			case err != nil:
				// ECHILD: pid is not our child (or was reaped by someone
				// else); nothing will ever report it.
				close(c)
				return
			case got != pid:
				continue
			}
			c <- ws
			if ws.Exited() || ws.Signaled() {
				return
			}
		}
	}()
	return c
}

// ExitCode is the shell's view of a wait status: the exit code, or 128+N
// for a death by signal N.
func ExitCode(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// Stopped reports whether process pid is stopped now. A stop that Watch
// reports may already be over: SIGCONT can come before it is read.
func Stopped(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the command name, which is in parentheses and may
	// itself hold any byte.
	i := strings.LastIndexByte(string(stat), ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'T'
}
