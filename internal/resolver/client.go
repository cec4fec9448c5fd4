package resolver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/secrets-init/secrets-init/provider"
)

// A Client is the supervisor's side: it starts the resolver on the first
// Open of a remote store, sends it each store's targets and hands the
// engine the Results. All remote stores share one resolver process.
type Client struct {
	image    string   // the resolver's executable
	embedded bool     // image is the embedded one: its pages can be dropped once copied
	settings Settings // sent once, first
	env      []string // the resolver's environment (nil: this process's, when it starts)

	// Stderr is the resolver's stderr: this process's unless set before
	// the first Open.
	Stderr *os.File
	// Log, when set, gets a debug line on the resolver's start.
	Log *slog.Logger

	startOnce sync.Once
	startErr  error

	mu      sync.Mutex
	closed  bool // Close or Kill was called: start nothing any more
	proc    *os.Process
	w       *os.File // requests; closing it tells the resolver to exit
	nextID  uint64
	pending map[uint64]pending
	// versioner records, per Kind, whether the resolver's store is a
	// provider.Versioner, as its answers say.
	versioner map[provider.Kind]bool
	broken    error         // the connection failed: every later request fails with it
	readEnd   chan struct{} // closed when the reader is done
	crashEnd  chan struct{} // closed when the crash channel is (start_fds.go)
	crashed   atomic.Bool   // the runtime wrote on the crash channel
	died      atomic.Bool   // ... and the connection then ended unasked: a crash

	wmu sync.Mutex // one frame at a time on w
}

type pending struct {
	ch   chan []provider.Result
	n    int
	kind provider.Kind
}

// NewClient returns a Client that starts image (a static executable whose
// main calls Serve) when a remote store is first opened. The resolver's
// environment is env, or this process's at that time when env is nil.
func NewClient(image string, s Settings, env []string) *Client {
	return &Client{image: image, settings: s, env: env, Stderr: os.Stderr, pending: map[uint64]pending{}, versioner: map[provider.Kind]bool{}}
}

// NewEmbeddedClient is NewClient for the executable this binary embeds.
// It returns nil when the binary embeds none.
func NewEmbeddedClient(s Settings) *Client {
	if Executable == "" {
		return nil
	}
	c := NewClient(Executable, s, nil)
	c.embedded = true
	return c
}

// Opener returns the Opener of a remote store of kind. Once the
// resolver has answered for kind, and its store has a cheap version check
// (provider.Versioner), the stores it opens have one too.
func (c *Client) Opener(kind provider.Kind) provider.Opener {
	return func(ctx context.Context, _ provider.Settings) (provider.Store, error) {
		if err := c.start(); err != nil {
			return nil, err
		}
		c.mu.Lock()
		versioner := c.versioner[kind]
		c.mu.Unlock()
		if versioner {
			return remoteVersioner{remote{c, kind}}, nil
		}
		return remote{c, kind}, nil
	}
}

// remote is a Store that asks the resolver.
type remote struct {
	c    *Client
	kind provider.Kind
}

func (r remote) Fetch(ctx context.Context, targets []provider.Target) []provider.Result {
	return r.c.fetch(ctx, r.kind, opFetch, targets)
}

// RenewLease, RevokeLease and Token are provider.Leaser's, made by the
// resolver's store of the kind (an error if it has no leases).
func (r remote) RenewLease(ctx context.Context, id provider.LeaseID, increment time.Duration) provider.LeaseState {
	return leaseState(r.c.call(ctx, request{kind: r.kind, op: opRenewLease, lease: id, number: uint64(max(increment, 0))}, 1)[0])
}

func (r remote) RevokeLease(ctx context.Context, id provider.LeaseID) error {
	return r.c.call(ctx, request{kind: r.kind, op: opRevokeLease, lease: id}, 1)[0].Err
}

func (r remote) Token(ctx context.Context, op provider.TokenOp) provider.LeaseState {
	return leaseState(r.c.call(ctx, request{kind: r.kind, op: opToken, number: uint64(op)}, 1)[0])
}

// remoteVersioner is a remote store whose resolver store is a Versioner.
type remoteVersioner struct{ remote }

func (r remoteVersioner) Versions(ctx context.Context, targets []provider.Target) []provider.Result {
	return r.c.fetch(ctx, r.kind, opVersions, targets)
}

// Started reports whether a resolver process was started.
func (c *Client) Started() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.proc != nil
}

// StartError returns the *StartError that kept the resolver from
// starting, if it was needed and could not start either way, else nil.
func (c *Client) StartError() error {
	var se *StartError
	if errors.As(c.startErr, &se) {
		return se
	}
	return nil
}

func (c *Client) start() error {
	c.startOnce.Do(func() { c.startErr = c.launch() })
	return c.startErr
}

// argv0 is the resolver's name in ps.
const argv0 = "secrets-init-resolver"

func (c *Client) launch() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errors.New("the resolution was aborted")
	}
	reqR, reqW, err := os.Pipe()
	if err != nil {
		return err
	}
	respR, respW, err := os.Pipe()
	if err != nil {
		reqR.Close()
		reqW.Close()
		return err
	}
	crashR, crashW, err := os.Pipe()
	if err != nil {
		reqR.Close()
		reqW.Close()
		respR.Close()
		respW.Close()
		return err
	}
	env := c.env
	if env == nil {
		env = os.Environ()
	}
	attr := &os.ProcAttr{
		Env:   env,
		Files: []*os.File{reqR, respW, crashW, c.Stderr}, // see start_fds.go
		// A process group of its own, so that the signals a terminal
		// sends to the foreground group (Ctrl-C, Ctrl-\) reach only the
		// supervisor, which acts on them (its main ignores them too,
		// once it runs); killed should the supervisor die without
		// closing the connection.
		Sys: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
	}
	var info startInfo
	proc, err := startImage(c.image, c.embedded, []string{argv0}, attr, os.Getenv(TestStartVariable), &info)
	reqR.Close()
	respW.Close()
	crashW.Close()
	if err != nil {
		reqW.Close()
		respR.Close()
		crashR.Close()
		return err
	}
	c.proc, c.w, c.readEnd, c.crashEnd = proc, reqW, make(chan struct{}), make(chan struct{})
	go c.drainCrash(crashR)
	if c.Log != nil {
		c.Log.Debug("resolver started", "pid", proc.Pid, "from", info.from, "bytes", len(c.image), "sendfile", info.sendfile,
			"copy", info.copied.Round(time.Microsecond), "exec", info.started.Round(time.Microsecond))
	}
	// The greeting and the settings go out at once; the resolver reads
	// them when it is up, with the first request right behind them.
	frame, err := encodeSettings(c.settings)
	if err == nil {
		_, err = reqW.Write(append([]byte{Magic[0], Magic[1], Magic[2], Magic[3], Version}, frame...))
	}
	go c.read(respR)
	if err != nil {
		c.failAll(fmt.Errorf("cannot write to the resolver: %w", err))
	}
	return nil
}

// read dispatches the resolver's answers until the connection ends.
func (c *Client) read(f *os.File) {
	defer close(c.readEnd)
	defer f.Close()
	r := bufio.NewReaderSize(f, 4<<10)
	err := readHello(r)
	for err == nil {
		var typ byte
		var body []byte
		typ, body, err = readFrame(r)
		if err != nil {
			break
		}
		if typ != frameResults {
			err = protoErr("unexpected frame type %d", typ)
			break
		}
		var resp response
		if resp, err = decodeResponse(body); err != nil {
			break
		}
		c.mu.Lock()
		p, ok := c.pending[resp.id]
		delete(c.pending, resp.id)
		if ok {
			c.versioner[p.kind] = resp.versioner
		}
		c.mu.Unlock()
		if !ok || len(resp.results) != p.n {
			err = protoErr("an answer to no request, or of the wrong size")
			break
		}
		p.ch <- resp.results
	}
	if errors.Is(err, os.ErrClosed) || err == nil || err == io.EOF {
		err = errClosed
	}
	if cerr := c.crashErr(); cerr != nil {
		err = cerr
	}
	c.failAll(fmt.Errorf("the resolver stopped: %w", err))
}

// failAll fails every request waiting for an answer, and every later one.
func (c *Client) failAll(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken == nil {
		c.broken = err
	}
	for id, p := range c.pending {
		p.ch <- provider.Failed(p.n, c.broken)
		delete(c.pending, id)
	}
}

func (c *Client) fetch(ctx context.Context, kind provider.Kind, op byte, targets []provider.Target) []provider.Result {
	return c.call(ctx, request{kind: kind, op: op, targets: targets}, len(targets))
}

// call sends req and waits for its n Results.
func (c *Client) call(ctx context.Context, req request, n int) []provider.Result {
	if dl, ok := ctx.Deadline(); ok {
		req.deadline = uint64(max(time.Until(dl), 1))
	}
	ch := make(chan []provider.Result, 1)
	c.mu.Lock()
	if c.broken != nil {
		defer c.mu.Unlock()
		return provider.Failed(n, c.broken)
	}
	c.nextID++
	req.id = c.nextID
	c.pending[req.id] = pending{ch, n, req.kind}
	c.mu.Unlock()

	frame, err := encodeRequest(req)
	if err == nil {
		c.wmu.Lock()
		_, err = c.w.Write(frame)
		c.wmu.Unlock()
		if err != nil {
			err = fmt.Errorf("cannot write to the resolver: %w", err)
		}
	}
	if err != nil {
		c.mu.Lock()
		_, waiting := c.pending[req.id]
		delete(c.pending, req.id)
		c.mu.Unlock()
		if waiting {
			return provider.Failed(n, err)
		}
	}
	// The resolver keeps the deadline itself and answers when it passes; a
	// resolver that does not is the engine's to give up on.
	return <-ch
}

// closeWait is how long Close lets the resolver take to exit once its
// connection is closed, before it kills it.
const closeWait = 2 * time.Second

// Close ends the resolver, if one was started: it closes the connection,
// which makes the resolver exit, and waits for it, so that no process of
// it is left when the command starts. It kills a resolver that does not
// exit within closeWait.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	proc, w := c.proc, c.w
	c.mu.Unlock()
	if proc == nil {
		return nil
	}
	w.Close()
	t := time.AfterFunc(closeWait, func() { proc.Kill() })
	st, err := proc.Wait()
	t.Stop()
	<-c.readEnd
	if err == nil && !st.Success() {
		err = fmt.Errorf("the resolver exited: %v", st)
	}
	return err
}

// Detach ends the resolver, if one was started, without waiting for it:
// it closes the connection, on which the resolver exits (its exit takes a
// few milliseconds: the command need not wait for them). Its exit status
// is left for the caller's reaper, which must collect every child: the
// supervisor's does. No resolver starts after Detach.
func (c *Client) Detach() {
	c.mu.Lock()
	c.closed = true
	proc, w := c.proc, c.w
	c.mu.Unlock()
	if proc == nil {
		return
	}
	w.Close()
	proc.Release()
}

// Kill ends the resolver at once, if one was started, and waits for it.
// No resolver starts after Kill.
func (c *Client) Kill() {
	c.mu.Lock()
	c.closed = true
	proc, w := c.proc, c.w
	c.mu.Unlock()
	if proc == nil {
		return
	}
	proc.Kill()
	proc.Wait()
	w.Close()
	<-c.readEnd
}

// Pid is the resolver's process id, or 0 when none was started.
func (c *Client) Pid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.proc == nil {
		return 0
	}
	return c.proc.Pid
}

// Run runs the embedded executable with argv (its argv[1] names what to
// do, such as "policy"), stdin, stdout and stderr this process's, and
// returns its exit code (128+N for a death by signal N). Signals from a
// terminal reach it as its own: it is in this process's group.
func Run(argv []string) (int, error) {
	if Executable == "" {
		return 0, errors.New("this binary embeds no resolver")
	}
	attr := &os.ProcAttr{
		Env:   os.Environ(),
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
		Sys:   &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
	}
	var info startInfo
	proc, err := startImage(Executable, true, argv, attr, os.Getenv(TestStartVariable), &info)
	if err != nil {
		return 0, err
	}
	st, err := proc.Wait()
	if err != nil {
		return 0, err
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return st.ExitCode(), nil
}
