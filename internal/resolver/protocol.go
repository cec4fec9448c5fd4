// Package resolver runs the stores that need an SDK in a process of their
// own, so that the supervisor that stays as PID 1 links none of them.
//
// The supervisor keeps the whole engine (package provider): parsing,
// de-duplication, the deadline, selectors, ?file, the child's environment.
// For each SDK Kind it registers a Store (Client.Opener) whose Fetch sends
// its targets to the resolver, a short-lived child process started from an
// executable embedded in the supervisor, and reads back the Results. The
// resolver (Serve) runs the real Openers and Stores and answers.
//
// The wire format is described in docs/resolver-protocol.md; this file is
// its only encoder and decoder.
package resolver

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"time"

	"github.com/secrets-init/secrets-init/provider"
)

// Magic and Version open each direction of a connection.
const (
	Magic   = "SIRP"
	Version = 2 // 2: lease ids and the lease operations
)

// MaxFrame bounds a frame's length, so that a corrupt length cannot make
// the reader allocate without limit.
const MaxFrame = 64 << 20

// Frame types.
const (
	frameSettings = 'S' // supervisor → resolver, once, first
	frameFetch    = 'F' // supervisor → resolver: a request
	frameResults  = 'R' // resolver → supervisor: the answer to one request
)

// Settings are what the supervisor tells the resolver once, before any
// request: how to log and what the stores are opened with.
type Settings struct {
	LogFormat     string     // text or json, as --log-format
	LogLevel      slog.Level // --log-level
	GoogleProject string     // --google-project
	Concurrency   int        // --concurrency: the resolver's own bound on concurrent calls
}

// Request operations.
const (
	opFetch       = 0 // Store.Fetch
	opVersions    = 1 // provider.Versioner.Versions
	opRenewLease  = 2 // provider.Leaser.RenewLease: lease, number = the increment in ns
	opRevokeLease = 3 // provider.Leaser.RevokeLease: lease
	opToken       = 4 // provider.Leaser.Token: number = the provider.TokenOp
)

// request asks for the targets of one Kind.
type request struct {
	id       uint64
	kind     provider.Kind
	op       byte   // opFetch … opToken
	deadline uint64 // nanoseconds left when it was sent; 0: none
	targets  []provider.Target
	// The lease operations' arguments (op >= opRenewLease); they answer
	// one Result.
	lease  provider.LeaseID
	number uint64
}

// response answers the request with the same id, one Result per target.
type response struct {
	id        uint64
	versioner bool // the resolver's store of the kind is a provider.Versioner
	results   []provider.Result
}

// Result flags.
const (
	hasValue     = 1 << 0
	isBinary     = 1 << 1
	hasFileValue = 1 << 2
	hasLease     = 1 << 3
	hasLeaseID   = 1 << 4
	isRenewable  = 1 << 5
	resultFlags  = hasValue | isBinary | hasFileValue | hasLease | hasLeaseID | isRenewable
)

// Error classes: what the engine asks of an error with errors.Is.
const (
	errPresent  = 1 << 0
	errNotFound = 1 << 1 // provider.ErrNotFound
	errDeadline = 1 << 2 // context.DeadlineExceeded
	errCanceled = 1 << 3 // context.Canceled
	errDenied   = 1 << 4 // provider.ErrDenied
	errNoVers   = 1 << 5 // provider.ErrUnversioned
	errClasses  = errPresent | errNotFound | errDeadline | errCanceled | errDenied | errNoVers
)

// RemoteError is a store's error as it crossed the pipe: its text, and
// the classes the engine tests for, so that errors.Is still answers.
type RemoteError struct {
	Msg   string
	class byte
}

func (e *RemoteError) Error() string { return e.Msg }

// Is reports the classes the error had in the resolver.
func (e *RemoteError) Is(target error) bool {
	switch target {
	case provider.ErrNotFound:
		return e.class&errNotFound != 0
	case context.DeadlineExceeded:
		return e.class&errDeadline != 0
	case context.Canceled:
		return e.class&errCanceled != 0
	case provider.ErrDenied:
		return e.class&errDenied != 0
	case provider.ErrUnversioned:
		return e.class&errNoVers != 0
	}
	return false
}

func errorClass(err error) byte {
	if err == nil {
		return 0
	}
	c := byte(errPresent)
	if errors.Is(err, provider.ErrNotFound) {
		c |= errNotFound
	}
	if errors.Is(err, context.DeadlineExceeded) {
		c |= errDeadline
	}
	if errors.Is(err, context.Canceled) {
		c |= errCanceled
	}
	if errors.Is(err, provider.ErrDenied) {
		c |= errDenied
	}
	if errors.Is(err, provider.ErrUnversioned) {
		c |= errNoVers
	}
	return c
}

// ErrProtocol is wrapped by every decoding error. Decoding errors never
// quote the bytes they read: they may be a value.
var ErrProtocol = errors.New("resolver protocol")

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrProtocol}, args...)...)
}

// writeHello writes the opening of a direction.
func writeHello(w io.Writer) error {
	_, err := w.Write([]byte{Magic[0], Magic[1], Magic[2], Magic[3], Version})
	return err
}

// readHello reads and checks the opening of a direction.
func readHello(r io.Reader) error {
	var b [5]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return protoErr("no greeting (%v)", err)
		}
		return err
	}
	if string(b[:4]) != Magic {
		return protoErr("bad greeting")
	}
	if b[4] != Version {
		return protoErr("version %d, want %d", b[4], Version)
	}
	return nil
}

// encoder builds one frame.
type encoder struct{ b []byte }

func newFrame(typ byte) *encoder {
	return &encoder{b: append(make([]byte, 4, 256), typ)}
}

func (e *encoder) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) byte(v byte)      { e.b = append(e.b, v) }
func (e *encoder) bytes(v []byte)   { e.uvarint(uint64(len(v))); e.b = append(e.b, v...) }
func (e *encoder) string(v string)  { e.uvarint(uint64(len(v))); e.b = append(e.b, v...) }

// finish fills in the length and returns the frame.
func (e *encoder) finish() ([]byte, error) {
	n := len(e.b) - 4
	if n > MaxFrame {
		return nil, protoErr("frame of %d bytes exceeds %d", n, MaxFrame)
	}
	binary.BigEndian.PutUint32(e.b, uint32(n))
	return e.b, nil
}

func encodeSettings(s Settings) ([]byte, error) {
	e := newFrame(frameSettings)
	e.string(s.LogFormat)
	e.varint(int64(s.LogLevel))
	e.string(s.GoogleProject)
	e.uvarint(uint64(max(s.Concurrency, 0)))
	return e.finish()
}

func encodeRequest(r request) ([]byte, error) {
	e := newFrame(frameFetch)
	e.uvarint(r.id)
	e.byte(byte(r.kind))
	e.byte(r.op)
	e.uvarint(r.deadline)
	e.uvarint(uint64(len(r.targets)))
	for _, t := range r.targets {
		for _, s := range [...]string{t.Partition, t.Region, t.Project, t.Location, t.Vault, t.Name, t.Version, t.Stage, t.KeyURI, t.Body} {
			e.string(s)
		}
	}
	if r.op >= opRenewLease {
		e.string(r.lease.Reveal())
		e.uvarint(r.number)
	}
	return e.finish()
}

func encodeResponse(r response) ([]byte, error) {
	e := newFrame(frameResults)
	e.uvarint(r.id)
	if r.versioner {
		e.byte(1)
	} else {
		e.byte(0)
	}
	e.uvarint(uint64(len(r.results)))
	for _, res := range r.results {
		var flags byte
		if res.Value != nil {
			flags |= hasValue
		}
		if res.Binary {
			flags |= isBinary
		}
		if res.FileValue != nil {
			flags |= hasFileValue
		}
		if res.Lease > 0 {
			flags |= hasLease
		}
		if res.LeaseID != "" {
			flags |= hasLeaseID
		}
		if res.Renewable {
			flags |= isRenewable
		}
		e.byte(flags)
		if res.Value != nil {
			e.bytes(res.Value)
		}
		e.string(res.Version)
		if res.FileValue != nil {
			e.bytes(res.FileValue)
		}
		if res.Lease > 0 {
			e.uvarint(uint64(res.Lease))
		}
		if res.LeaseID != "" {
			e.string(res.LeaseID.Reveal())
		}
		class := errorClass(res.Err)
		e.byte(class)
		if class != 0 {
			e.string(res.Err.Error())
		}
	}
	return e.finish()
}

// readFrame reads one frame: its type and body.
func readFrame(r *bufio.Reader) (byte, []byte, error) {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, protoErr("truncated frame length")
		}
		return 0, nil, err // io.EOF: the peer closed between frames
	}
	n := binary.BigEndian.Uint32(h[:])
	if n == 0 || n > MaxFrame {
		return 0, nil, protoErr("bad frame length %d", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, protoErr("truncated frame")
	}
	return body[0], body[1:], nil
}

// decoder reads the fields of one frame's body.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = protoErr("truncated or malformed %s", what)
	}
	d.b = nil
}

func (d *decoder) uvarint(what string) uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte(what string) byte {
	if len(d.b) < 1 {
		d.fail(what)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) bytes(what string) []byte {
	n := d.uvarint(what)
	if n > uint64(len(d.b)) {
		d.fail(what)
		return nil
	}
	v := make([]byte, n)
	copy(v, d.b)
	d.b = d.b[n:]
	return v
}

func (d *decoder) string(what string) string {
	n := d.uvarint(what)
	if n > uint64(len(d.b)) {
		d.fail(what)
		return ""
	}
	v := string(d.b[:n])
	d.b = d.b[n:]
	return v
}

// count reads a number of items, each at least min bytes long, so that a
// count can never make the decoder allocate more than the frame holds.
func (d *decoder) count(what string, min int) int {
	n := d.uvarint(what)
	if n > uint64(len(d.b)/min) {
		d.fail(what)
		return 0
	}
	return int(n)
}

func (d *decoder) end(what string) error {
	if d.err == nil && len(d.b) != 0 {
		d.err = protoErr("%d bytes after the %s", len(d.b), what)
	}
	return d.err
}

func decodeSettings(body []byte) (Settings, error) {
	d := &decoder{b: body}
	var s Settings
	s.LogFormat = d.string("log format")
	level, n := binary.Varint(d.b)
	if n <= 0 || level < -1<<16 || level > 1<<16 {
		d.fail("log level")
	} else {
		d.b = d.b[n:]
	}
	s.LogLevel = slog.Level(level)
	s.GoogleProject = d.string("google project")
	c := d.uvarint("concurrency")
	if c > 1<<20 {
		d.fail("concurrency")
	}
	s.Concurrency = int(c)
	return s, d.end("settings")
}

func decodeRequest(body []byte) (request, error) {
	d := &decoder{b: body}
	var r request
	r.id = d.uvarint("request id")
	r.kind = provider.Kind(d.byte("kind"))
	if r.op = d.byte("operation"); r.op > opToken {
		d.fail("operation")
	}
	r.deadline = d.uvarint("deadline")
	n := d.count("target count", 10)
	r.targets = make([]provider.Target, n)
	for i := range r.targets {
		t := &r.targets[i]
		t.Kind = r.kind
		for _, s := range [...]*string{&t.Partition, &t.Region, &t.Project, &t.Location, &t.Vault, &t.Name, &t.Version, &t.Stage, &t.KeyURI, &t.Body} {
			*s = d.string("target")
		}
	}
	if r.op >= opRenewLease {
		r.lease = provider.LeaseID(d.string("lease id"))
		r.number = d.uvarint("lease argument")
	}
	return r, d.end("request")
}

func decodeResponse(body []byte) (response, error) {
	d := &decoder{b: body}
	var r response
	r.id = d.uvarint("response id")
	switch d.byte("response flags") {
	case 0:
	case 1:
		r.versioner = true
	default:
		d.fail("response flags")
	}
	n := d.count("result count", 3)
	r.results = make([]provider.Result, n)
	for i := range r.results {
		res := &r.results[i]
		flags := d.byte("result flags")
		if flags&^resultFlags != 0 {
			d.fail("result flags")
		}
		if flags&hasValue != 0 {
			res.Value = d.bytes("value")
		}
		res.Binary = flags&isBinary != 0
		res.Version = d.string("version")
		if flags&hasFileValue != 0 {
			res.FileValue = d.bytes("file value")
		}
		if flags&hasLease != 0 {
			lease := d.uvarint("lease")
			if lease == 0 || lease > math.MaxInt64 {
				d.fail("lease")
			}
			res.Lease = time.Duration(lease)
		}
		if flags&hasLeaseID != 0 {
			if res.LeaseID = provider.LeaseID(d.string("lease id")); res.LeaseID == "" {
				d.fail("lease id")
			}
		}
		res.Renewable = flags&isRenewable != 0
		class := d.byte("error class")
		switch {
		case class&^errClasses != 0 || (class != 0 && class&errPresent == 0):
			d.fail("error class")
		case class != 0:
			res.Err = &RemoteError{Msg: d.string("error"), class: class}
		}
	}
	return r, d.end("response")
}
