package resolver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/secrets-init/secrets-init/internal/options"
	"github.com/secrets-init/secrets-init/provider"
)

// Serve is the resolver's side of a connection: it reads the supervisor's
// greeting and settings from in, then answers every request with the
// Results of stores, concurrently, until in ends. Logs go to logw, in the
// format the settings name. It returns nil when the supervisor closed the
// connection; requests still in flight are abandoned.
func Serve(in io.Reader, out io.Writer, stores map[provider.Kind]func(*options.Options) provider.Opener, logw io.Writer) error {
	r := bufio.NewReaderSize(in, 64<<10)
	if err := readHello(r); err != nil {
		return err
	}
	w := bufio.NewWriter(out)
	if err := writeHello(w); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	typ, body, err := readFrame(r)
	if err != nil {
		return noEOF(err)
	}
	if typ != frameSettings {
		return protoErr("frame type %d before the settings", typ)
	}
	set, err := decodeSettings(body)
	if err != nil {
		return err
	}
	o := &options.Options{LogFormat: set.LogFormat, LogLevel: set.LogLevel, GoogleProject: set.GoogleProject, Concurrency: set.Concurrency}
	openers := make(map[provider.Kind]provider.Opener, len(stores))
	for kind, opener := range stores {
		// One store per kind for the resolver's life: with refresh,
		// checks, re-reads and lease renewals share its client and
		// token (a Vault lease ends with the token that read it).
		openers[kind] = provider.Keep(opener(o))
	}
	s := provider.Settings{
		Log:   o.Logger(logw),
		Limit: provider.NewLimiter(set.Concurrency),
	}
	if err := serve(r, w, openers, s); err != nil {
		// In the supervisor's format, as its own lines are.
		s.Log.Error("resolver", "err", err)
		return ErrReported
	}
	return nil
}

// ErrReported is Serve's error once it has logged why it stopped.
var ErrReported = errors.New("resolver stopped (reported)")

// serve answers requests until r ends.
func serve(r *bufio.Reader, w *bufio.Writer, openers map[provider.Kind]provider.Opener, s provider.Settings) error {
	var wmu sync.Mutex
	var werr error
	for {
		typ, body, err := readFrame(r)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if typ != frameFetch {
			return protoErr("unexpected frame type %d", typ)
		}
		req, err := decodeRequest(body)
		if err != nil {
			return err
		}
		go func() {
			rs, versioner := fetch(openers[req.kind], s, req)
			frame, err := encodeResponse(response{id: req.id, versioner: versioner, results: rs})
			if err != nil { // too large for one frame: say so instead
				frame, _ = encodeResponse(response{id: req.id, results: provider.Failed(answers(req), err)})
			}
			wmu.Lock()
			defer wmu.Unlock()
			if werr == nil {
				if _, werr = w.Write(frame); werr == nil {
					werr = w.Flush()
				}
			}
		}()
	}
}

// answers is how many results req is answered with: one per target, and
// one for a lease or token operation (which has none).
func answers(req request) int {
	if req.op >= opRenewLease {
		return 1
	}
	return len(req.targets)
}

func noEOF(err error) error {
	if err == io.EOF {
		return protoErr("no settings")
	}
	return err
}

// fetch opens the request's store and fetches its targets (or their
// versions), as the engine does in-process: whatever the store does, one
// Result per target. It also reports whether the store is a Versioner.
func fetch(open provider.Opener, s provider.Settings, req request) (rs []provider.Result, versioner bool) {
	n := answers(req)
	if open == nil {
		return provider.Failed(n, fmt.Errorf("the resolver was built without the %s store", req.kind)), false
	}
	ctx := context.Background()
	if req.deadline > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(min(req.deadline, 1<<62)))
		defer cancel()
	}
	defer func() {
		if recover() != nil {
			rs = provider.Failed(n, fmt.Errorf("internal error in the %s store", req.kind))
		}
	}()
	st, err := open(ctx, s)
	if err != nil {
		return provider.Failed(n, err), false
	}
	v, versioner := st.(provider.Versioner)
	lr, leaser := st.(provider.Leaser)
	switch {
	case req.op >= opRenewLease && !leaser:
		return provider.Failed(n, fmt.Errorf("the %s store has no leases", req.kind)), versioner
	case req.op == opRenewLease:
		rs = []provider.Result{leaseResult(lr.RenewLease(ctx, req.lease, time.Duration(min(req.number, 1<<62))))}
	case req.op == opRevokeLease:
		rs = []provider.Result{{Err: lr.RevokeLease(ctx, req.lease)}}
	case req.op == opToken:
		rs = []provider.Result{leaseResult(lr.Token(ctx, provider.TokenOp(req.number)))}
	case req.op == opFetch:
		rs = st.Fetch(ctx, req.targets)
	case versioner:
		rs = v.Versions(ctx, req.targets)
	default:
		return provider.Failed(n, fmt.Errorf("the %s store has no version check: %w", req.kind, provider.ErrUnversioned)), false
	}
	if len(rs) != n {
		return provider.Failed(n, fmt.Errorf("internal error: the %s store answered %d of %d targets", req.kind, len(rs), n)), versioner
	}
	return rs, versioner
}

// errClosed is the error of requests the connection ended under.
var errClosed = errors.New("the resolver closed the connection")

// loginWord is the Version of a token answer whose store can log in again.
const loginWord = "login"

// leaseResult carries a LeaseState as a Result: TTL as Lease, Renewable,
// and Login as the Version "login".
func leaseResult(ls provider.LeaseState) provider.Result {
	r := provider.Result{Lease: max(ls.TTL, 0), Renewable: ls.Renewable, Err: ls.Err}
	if ls.Login {
		r.Version = loginWord
	}
	return r
}

// leaseState is leaseResult undone.
func leaseState(r provider.Result) provider.LeaseState {
	return provider.LeaseState{TTL: r.Lease, Renewable: r.Renewable, Login: r.Version == loginWord, Err: r.Err}
}
