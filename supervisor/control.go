package supervisor

import (
	"errors"
	"sync/atomic"
	"syscall"
)

// Control lets the refresh loop act on the command that Run supervises:
// restart it with a new environment, signal it, or stop it for good. Its
// methods may be called from any goroutine; each returns once Run has
// done what it asks (or has returned).
type Control struct {
	// CheckSignal is consumed by Run, not forwarded: each one asks for a
	// check on the channel CheckNow returns (--refresh-signal). 0: none.
	CheckSignal syscall.Signal

	orders   chan Order
	checkNow chan struct{}
	ended    chan struct{}
	first    chan struct{} // closed when the command first started
	pid      atomic.Int64
}

// Order is one request to Run. Exactly one of Env (restart), Signal or
// Stop is set.
type Order struct {
	Env    []string       // restart the command with this environment
	Signal syscall.Signal // send this signal (after the files switched)
	Stop   int            // stop the command, then Run returns this code
	done   chan error
}

func (o *Order) reply(err error) {
	if o.done != nil {
		o.done <- err
		o.done = nil
	}
}

// errStopped answers an order to stop for good.
var errStopped = errors.New("the command was stopped")

// NewControl returns a Control for Command.Control.
func NewControl(checkSignal syscall.Signal) *Control {
	return &Control{CheckSignal: checkSignal, orders: make(chan Order), checkNow: make(chan struct{}, 1), ended: make(chan struct{}), first: make(chan struct{})}
}

// CheckNow receives once for each CheckSignal that Run consumed (merged
// while one is pending).
func (c *Control) CheckNow() <-chan struct{} { return c.checkNow }

// Ended is closed when Run has returned.
func (c *Control) Ended() <-chan struct{} { return c.ended }

// PID is the pid of the command running now (0 before it started).
func (c *Control) PID() int { return int(c.pid.Load()) }

// Started is closed once the command has first started.
func (c *Control) Started() <-chan struct{} { return c.first }

func (c *Control) started(pid int) {
	if c != nil {
		if c.pid.Swap(int64(pid)) == 0 {
			close(c.first)
		}
	}
}

// Restart stops the command (its stop signal: SIGTERM after --rewrite;
// SIGKILL to its group after the stop timeout), reaps it, and starts it
// again with env.
func (c *Control) Restart(env []string) error { return c.do(Order{Env: env}) }

// Signal sends sig to the command, or its group (as --forward-to says).
func (c *Control) Signal(sig syscall.Signal) error { return c.do(Order{Signal: sig}) }

// Stop stops the command as Restart does, and makes Run return code.
func (c *Control) Stop(code int) { c.do(Order{Stop: code}) }

func (c *Control) do(o Order) error {
	o.done = make(chan error, 1)
	select {
	case c.orders <- o:
	case <-c.ended:
		return errors.New("the command has exited")
	}
	select {
	case err := <-o.done:
		return err
	case <-c.ended:
		return errors.New("the command has exited")
	}
}
