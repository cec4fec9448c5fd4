package resolver

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/secrets-init/secrets-init/provider"
)

// frames reads the frames of a stream after its greeting.
func frame(t *testing.T, b []byte) (byte, []byte) {
	t.Helper()
	typ, body, err := readFrame(bufio.NewReader(bytes.NewReader(b)))
	if err != nil {
		t.Fatal(err)
	}
	return typ, body
}

func TestRoundTrip(t *testing.T) {
	s := Settings{LogFormat: "json", LogLevel: slog.LevelDebug, GoogleProject: "proj", Concurrency: 32}
	b, err := encodeSettings(s)
	if err != nil {
		t.Fatal(err)
	}
	typ, body := frame(t, b)
	got, err := decodeSettings(body)
	if typ != frameSettings || err != nil || got != s {
		t.Errorf("settings: %c %+v %v, want %+v", typ, got, err, s)
	}

	req := request{id: 1 << 40, kind: provider.SecretsManager, op: opVersions, deadline: 59e9, targets: []provider.Target{
		{Kind: provider.SecretsManager, Partition: "aws", Region: "eu-west-1", Name: "arn:aws:secretsmanager:eu-west-1:1:secret:db", Version: "v1", Stage: "AWSPREVIOUS"},
		{Kind: provider.SecretsManager, Name: "short"},
		{Kind: provider.SecretsManager, Project: "p", Location: "l", Vault: "https://v.vault.azure.net", Name: "ünï\x00code"},
	}}
	b, err = encodeRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	typ, body = frame(t, b)
	gotReq, err := decodeRequest(body)
	if typ != frameFetch || err != nil || !reflect.DeepEqual(gotReq, req) {
		t.Errorf("request: %c %+v %v, want %+v", typ, gotReq, err, req)
	}
	for _, req := range []request{
		{id: 2, kind: provider.Vault, op: opRenewLease, deadline: 1e9, targets: []provider.Target{}, lease: "database/creds/app/x1", number: uint64(time.Hour)},
		{id: 3, kind: provider.Vault, op: opRevokeLease, targets: []provider.Target{}, lease: "database/creds/app/x1"},
		{id: 4, kind: provider.Vault, op: opToken, targets: []provider.Target{}, number: uint64(provider.TokenLogin)},
	} {
		b, _ := encodeRequest(req)
		_, body := frame(t, b)
		if got, err := decodeRequest(body); err != nil || !reflect.DeepEqual(got, req) {
			t.Errorf("lease request: %+v %v, want %+v", got, err, req)
		}
	}

	deadline := fmt.Errorf("calling: %w", context.DeadlineExceeded)
	resp := response{id: 7, versioner: true, results: []provider.Result{
		{Value: []byte("v\x00\xff\n"), Version: "3"},
		{Value: []byte{}},
		{Value: []byte(`{"username":"u"}`), Lease: 90 * time.Minute},
		{Value: []byte(`{"username":"u"}`), Lease: time.Hour, LeaseID: "database/creds/app/x1", Renewable: true},
		{Lease: time.Minute, Version: loginWord},
		{Value: []byte{1, 2}, Binary: true, FileValue: []byte("decoded")},
		{Err: fmt.Errorf("secret db: %w", provider.ErrNotFound)},
		{Err: deadline},
		{Err: context.Canceled},
		{Err: errors.New("access denied")},
		{Err: fmt.Errorf("DescribeSecret: %w", provider.ErrDenied)},
		{Err: fmt.Errorf("kv v1: %w", provider.ErrUnversioned)},
	}}
	b, err = encodeResponse(resp)
	if err != nil {
		t.Fatal(err)
	}
	typ, body = frame(t, b)
	gotResp, err := decodeResponse(body)
	if typ != frameResults || err != nil || gotResp.id != 7 || !gotResp.versioner || len(gotResp.results) != len(resp.results) {
		t.Fatalf("response: %c %+v %v", typ, gotResp, err)
	}
	for i, want := range resp.results {
		got := gotResp.results[i]
		if !bytes.Equal(got.Value, want.Value) || (got.Value == nil) != (want.Value == nil) ||
			got.Version != want.Version || got.Binary != want.Binary || !bytes.Equal(got.FileValue, want.FileValue) || got.Lease != want.Lease ||
			got.LeaseID != want.LeaseID || got.Renewable != want.Renewable ||
			(got.FileValue == nil) != (want.FileValue == nil) {
			t.Errorf("result %d: %+v, want %+v", i, got, want)
		}
		if (got.Err == nil) != (want.Err == nil) || (got.Err != nil && got.Err.Error() != want.Err.Error()) {
			t.Errorf("result %d: error %v, want %v", i, got.Err, want.Err)
		}
		for _, class := range []error{provider.ErrNotFound, context.DeadlineExceeded, context.Canceled, provider.ErrDenied, provider.ErrUnversioned} {
			if errors.Is(got.Err, class) != errors.Is(want.Err, class) {
				t.Errorf("result %d: errors.Is(%v, %v) = %v", i, got.Err, class, errors.Is(got.Err, class))
			}
		}
	}
}

// TestDecodeRejects: truncated, oversized and inconsistent input is an
// error that quotes none of it, never a panic or a huge allocation.
func TestDecodeRejects(t *testing.T) {
	const canary = "CANARY-7f3a"
	good, _ := encodeResponse(response{id: 1, results: []provider.Result{{Value: []byte(canary), Version: canary}}})
	for n := 0; n < len(good); n++ {
		_, body, err := readFrame(bufio.NewReader(bytes.NewReader(good[:n])))
		if err == nil {
			_, err = decodeResponse(body)
		}
		if err == nil || err == io.EOF && n != 0 {
			t.Errorf("%d of %d bytes: err %v", n, len(good), err)
		}
		if err != nil && strings.Contains(err.Error(), canary) {
			t.Errorf("the error quotes the input: %v", err)
		}
	}
	for _, body := range [][]byte{
		{1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},        // a count of 4G results in 7 bytes
		{1, 0, 1, hasValue, 0xff, 0xff, 0xff, 0x7f}, // a value longer than the frame
		{1, 0, 1, 0x80, 0, 0},                       // unknown result flags
		{1, 0, 1, 0, 0, errNotFound},                // a class without an error
		{1, 0, 1, hasLease, 0, 0, 0},                // a lease of 0
		{1, 0, 1, hasLease, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0}, // a lease past time.Duration
		{1, 0, 1, 0, 0, 1 << 7}, // an unknown class
		{1, 2, 0},               // unknown response flags
		{1, 0, 0, 0},            // trailing bytes
	} {
		if _, err := decodeResponse(body); !errors.Is(err, ErrProtocol) {
			t.Errorf("decodeResponse(%x): %v, want a protocol error", body, err)
		}
	}
	huge := []byte{0x7f, 0xff, 0xff, 0xff, frameResults}
	if _, _, err := readFrame(bufio.NewReader(bytes.NewReader(huge))); !errors.Is(err, ErrProtocol) {
		t.Errorf("a 2 GiB frame: %v", err)
	}
	for _, hello := range []string{"", "SIR", "XXXX\x02", "SIRP\x01", "SIRP\x03"} {
		if err := readHello(strings.NewReader(hello)); !errors.Is(err, ErrProtocol) {
			t.Errorf("greeting %q: %v", hello, err)
		}
	}
}

// FuzzDecode: whatever the bytes, decoding returns an error or a message
// that encodes back to the same bytes.
func FuzzDecode(f *testing.F) {
	s, _ := encodeSettings(Settings{LogFormat: "text", LogLevel: slog.LevelWarn, Concurrency: 4})
	q, _ := encodeRequest(request{id: 3, kind: provider.Vault, deadline: 1e9, targets: []provider.Target{{Kind: provider.Vault, Name: "kv/app", Version: "2"}}})
	r, _ := encodeResponse(response{id: 3, results: []provider.Result{{Value: []byte("x"), Version: "2"}, {Err: provider.ErrNotFound}, {Value: []byte{0}, Binary: true, FileValue: []byte{}}, {Value: []byte("{}"), Lease: time.Hour}}})
	for _, b := range [][]byte{s, q, r} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		typ, body, err := readFrame(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			return
		}
		var again []byte
		switch typ {
		case frameSettings:
			v, err := decodeSettings(body)
			if err != nil {
				return
			}
			again, err = encodeSettings(v)
			if err != nil {
				t.Fatal(err)
			}
			if w, _ := decodeSettings(again[5:]); w != v {
				t.Fatalf("settings %+v became %+v", v, w)
			}
			return // varints have several encodings: compare values
		case frameFetch:
			v, err := decodeRequest(body)
			if err != nil {
				return
			}
			if again, err = encodeRequest(v); err != nil {
				t.Fatal(err)
			}
			if w, err := decodeRequest(again[5:]); err != nil || !reflect.DeepEqual(w, v) {
				t.Fatalf("request %+v became %+v (%v)", v, w, err)
			}
		case frameResults:
			v, err := decodeResponse(body)
			if err != nil {
				return
			}
			if again, err = encodeResponse(v); err != nil {
				t.Fatal(err)
			}
			w, err := decodeResponse(again[5:])
			if err != nil || len(w.results) != len(v.results) {
				t.Fatalf("response %+v became %+v (%v)", v, w, err)
			}
			for i := range v.results {
				a, b := v.results[i], w.results[i]
				if !bytes.Equal(a.Value, b.Value) || a.Version != b.Version || a.Binary != b.Binary || (a.Err == nil) != (b.Err == nil) ||
					a.Lease != b.Lease || a.LeaseID != b.LeaseID || a.Renewable != b.Renewable {
					t.Fatalf("result %d: %+v became %+v", i, a, b)
				}
			}
		}
	})
}

// TestServeReportsInFormat: once the settings have said how to log, the
// resolver reports a broken stream in that format, quoting none of it.
func TestServeReportsInFormat(t *testing.T) {
	set, _ := encodeSettings(Settings{LogFormat: "json"})
	in := append(append([]byte(Magic+"\x02"), set...), 0, 0, 0, 9, frameFetch, 'C', 'A', 'N', 'A', 'R', 'Y', 0xff, 0xff)
	var out, logs bytes.Buffer
	err := Serve(bytes.NewReader(in), &out, nil, &logs)
	if !errors.Is(err, ErrReported) {
		t.Fatalf("Serve: %v", err)
	}
	if !strings.HasPrefix(logs.String(), `{"time":`) || !strings.Contains(logs.String(), "resolver protocol") || strings.Contains(logs.String(), "CANARY") {
		t.Errorf("log %q: want one JSON line naming the protocol error, quoting nothing", logs.String())
	}
	if !bytes.HasPrefix(out.Bytes(), []byte(Magic+"\x02")) {
		t.Errorf("no greeting: %q", out.Bytes())
	}
}

// TestEveryTargetField: a request carries every field of a Target, so
// that a field added to provider.Target cannot be dropped on the way to
// the resolver (targets that differ only in it would then be fetched
// alike).
func TestEveryTargetField(t *testing.T) {
	var target provider.Target
	v := reflect.ValueOf(&target).Elem()
	for i := range v.NumField() {
		switch f := v.Field(i); f.Kind() {
		case reflect.String:
			f.SetString(v.Type().Field(i).Name + "-value")
		case reflect.Uint8: // Kind: the request's own
			f.SetUint(uint64(provider.JWE))
		default:
			t.Fatalf("Target.%s is a %s: the protocol encodes strings only", v.Type().Field(i).Name, f.Kind())
		}
	}
	b, err := encodeRequest(request{id: 1, kind: provider.JWE, targets: []provider.Target{target}})
	if err != nil {
		t.Fatal(err)
	}
	_, body := frame(t, b)
	got, err := decodeRequest(body)
	if err != nil || len(got.targets) != 1 || got.targets[0] != target {
		t.Errorf("sent %+v, received %+v (%v)", target, got.targets, err)
	}
}

// TestResultFields: a response carries these fields of a Result; a field
// added to provider.Result must be added to the protocol too.
func TestResultFields(t *testing.T) {
	var names []string
	for f := range reflect.TypeFor[provider.Result]().Fields() {
		names = append(names, f.Name)
	}
	if want := []string{"Value", "Version", "Binary", "FileValue", "Lease", "LeaseID", "Renewable", "Err"}; !reflect.DeepEqual(names, want) {
		t.Errorf("provider.Result has the fields %v; the protocol carries %v", names, want)
	}
}

// A lease or token operation has no target and one answer, also when its
// answer is the fallback of one too large to send.
func TestAnswers(t *testing.T) {
	for _, c := range []struct {
		req  request
		want int
	}{
		{request{op: opFetch, targets: make([]provider.Target, 3)}, 3},
		{request{op: opVersions, targets: make([]provider.Target, 2)}, 2},
		{request{op: opRenewLease}, 1},
		{request{op: opRevokeLease}, 1},
		{request{op: opToken}, 1},
	} {
		if got := answers(c.req); got != c.want {
			t.Errorf("answers(op %d, %d targets) = %d, want %d", c.req.op, len(c.req.targets), got, c.want)
		}
	}
}
