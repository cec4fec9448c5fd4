package resolver

import (
	"errors"
	"io"
	"log"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// The resolver's file descriptors, as the supervisor starts it: 0 carries
// the requests, 1 the answers, 2 is the crash channel and 3 the
// supervisor's stderr, where the resolver's log lines go. Only the Go
// runtime writes to fd 2: the report of a panic nothing recovered or of a
// fatal error, whose text can hold values (a panic's value, a goroutine's
// arguments). The supervisor reads it, drops it and reports the crash as
// one of its own log lines (ErrCrashed).
const stderrFd = 3

// ErrCrashed is the error of the requests a resolver crash ended: the Go
// runtime reported a panic or a fatal error on its crash channel.
var ErrCrashed = errors.New("the resolver crashed (a panic or a fatal error in its Go runtime); its report was dropped, because it can hold secret values")

// SupervisorStderr is the first thing the resolver's main does: it makes
// os.Stderr, and the log package's output, the supervisor's stderr (fd 3)
// and returns it, leaving fd 2 to the runtime's crash reports. When fd 3
// is not open (the resolver run some other way), nothing changes.
func SupervisorStderr() *os.File {
	if _, err := unix.FcntlInt(stderrFd, unix.F_GETFD, 0); err != nil {
		return os.Stderr
	}
	unix.CloseOnExec(stderrFd) // the SDKs pass os.Stderr on explicitly
	os.Stderr = os.NewFile(stderrFd, "/dev/stderr")
	log.SetOutput(os.Stderr)
	return os.Stderr
}

// TestPanicVariable, for tests only, makes the resolver's stores panic
// where nothing recovers them, with the variable's value in the panic's
// text (cmd/secrets-init-resolver).
const TestPanicVariable = "SECRETS_INIT_TEST_RESOLVER_PANIC"

// crashWait bounds how long the end of a connection waits for the crash
// channel to close: it closes when the resolver exits, unless a process
// it started holds it.
const crashWait = time.Second

// drainCrash reads the crash channel until it closes, and drops what it
// reads: it records only that the runtime wrote a report.
func (c *Client) drainCrash(r *os.File) {
	defer close(c.crashEnd)
	defer r.Close()
	if n, _ := io.Copy(io.Discard, r); n > 0 {
		c.crashed.Store(true)
	}
}

// crashErr is ErrCrashed when the resolver whose connection just ended
// unasked had reported a crash, else nil.
func (c *Client) crashErr() error {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed { // Close, Detach or Kill ended it
		return nil
	}
	select {
	case <-c.crashEnd:
	case <-time.After(crashWait):
	}
	return c.Crashed()
}

// Crashed returns ErrCrashed if the resolver crashed, else nil.
func (c *Client) Crashed() error {
	if c.crashed.Load() {
		return ErrCrashed
	}
	return nil
}
