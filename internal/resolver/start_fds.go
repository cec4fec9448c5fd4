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
// reads: it records only that a line began as the runtime's crash reports
// begin (crashReport). Other writes on fd 2 (GODEBUG traces, print) are
// dropped too, and are no crash.
func (c *Client) drainCrash(r *os.File) {
	defer close(c.crashEnd)
	defer r.Close()
	var line crashReport
	io.Copy(&line, r)
	if line.found {
		c.crashed.Store(true)
	}
}

// crashReport is an io.Writer that finds a line beginning as the Go
// runtime's report of a crash does, keeping no more of the text than the
// start of the current line.
type crashReport struct {
	start []byte // the current line's first bytes
	found bool
}

// crashPrefixes begin the runtime's crash reports: a panic nothing
// recovered, a fatal error, a fatal signal.
var crashPrefixes = []string{"panic: ", "fatal error: ", "fatal: ", "SIG"}

func (w *crashReport) Write(p []byte) (int, error) {
	for _, b := range p {
		if b == '\n' {
			w.start = w.start[:0]
			continue
		}
		if len(w.start) < len("fatal error: ") {
			w.start = append(w.start, b)
			for _, pre := range crashPrefixes {
				if string(w.start) == pre {
					w.found = true
				}
			}
		}
	}
	return len(p), nil
}

// crashErr is ErrCrashed when the resolver whose connection just ended
// unasked had written on its crash channel, else nil. Bytes there alone
// are no crash: GODEBUG traces and print also write on fd 2 of a resolver
// that goes on serving.
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
	if c.crashed.Load() {
		c.died.Store(true)
	}
	return c.Crashed()
}

// Crashed returns ErrCrashed if the resolver crashed, else nil.
func (c *Client) Crashed() error {
	if c.died.Load() {
		return ErrCrashed
	}
	return nil
}
