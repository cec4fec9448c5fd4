// Package gcp is the Google Secret Manager store: it resolves
// gcp:secretmanager: references with AccessSecretVersion over gRPC, global
// secrets through secretmanager.googleapis.com and regional ones through
// secretmanager.LOCATION.rep.googleapis.com, authenticated with Application
// Default Credentials, or in plaintext against SECRET_MANAGER_EMULATOR_HOST.
package gcp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/auth"
	"cloud.google.com/go/auth/credentials"
	"cloud.google.com/go/compute/metadata"
	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"github.com/googleapis/gax-go/v2"
	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/secrets-init/secrets-init/provider"
)

// EmulatorEnv names the variable that points the store at an emulator
// (host:port, plaintext gRPC, no authentication).
const EmulatorEnv = "SECRET_MANAGER_EMULATOR_HOST"

// Options are the store's settings from the command line.
type Options struct {
	Project string // --google-project: the project of references that name none
}

// Opener returns the store's Opener with o. The store is configured from
// the environment; opening it does no I/O: credentials, the default
// project and connections are looked up by Fetch.
func Opener(o Options) provider.Opener {
	return func(_ context.Context, s provider.Settings) (provider.Store, error) {
		st := &store{settings: s, project: o.Project, endpoint: regionalEndpoint}
		if host := os.Getenv(EmulatorEnv); host != "" {
			st.endpoint = func(string) string { return host }
			st.plaintext = true
		}
		return st, nil
	}
}

// Open opens the store with no Options.
func Open(ctx context.Context, s provider.Settings) (provider.Store, error) {
	return Opener(Options{})(ctx, s)
}

// regionalEndpoint is where Google serves a location's secrets ("" is
// global).
func regionalEndpoint(location string) string {
	if location == "" {
		return "secretmanager.googleapis.com:443"
	}
	return "secretmanager." + location + ".rep.googleapis.com:443"
}

type store struct {
	settings provider.Settings
	project  string           // Options.Project
	backoff  provider.Backoff // zero: the engine's (tests: shorter)
	// endpoint names the gRPC endpoint serving a location ("" is global).
	endpoint func(location string) string
	// plaintext: gRPC without TLS or credentials (an emulator).
	plaintext bool
	// extra are client options applied last (tests: trust a fake's TLS
	// certificate).
	extra []option.ClientOption
}

// quiet keeps the Google libraries' own logging (GOOGLE_SDK_GO_LOGGING_LEVEL
// can make them log responses, payloads included) out of the output.
var quiet = slog.New(slog.DiscardHandler)

// class tells whether a failed call is retried: Unavailable is a
// transient fault, ResourceExhausted throttling (a quota).
func class(err error) provider.Class {
	switch status.Code(err) {
	case codes.Unavailable:
		return provider.Transient
	case codes.ResourceExhausted:
		return provider.Throttled
	}
	return provider.Permanent
}

// A call is one target's request, and where to send it.
type call struct {
	index  int // in targets
	name   string
	where  string // project and location, for messages
	client *secretmanager.Client
}

// Fetch resolves every target with one AccessSecretVersion call each, run
// concurrently under the engine's limit over one connection per endpoint.
func (s *store) Fetch(ctx context.Context, targets []provider.Target) []provider.Result {
	return s.each(ctx, targets, access)
}

// each makes one call per target with do, concurrently under the engine's
// limit, over one client (connection) per endpoint, closed on return.
func (s *store) each(ctx context.Context, targets []provider.Target, do func(context.Context, provider.Backoff, call) provider.Result) []provider.Result {
	if len(targets) == 0 {
		return nil
	}
	opts := []option.ClientOption{option.WithLogger(quiet), option.WithTelemetryDisabled()}
	var creds *auth.Credentials
	if s.plaintext {
		opts = append(opts, option.WithoutAuthentication(),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	} else {
		var err error
		if creds, err = findCredentials(ctx); err != nil {
			return provider.Failed(len(targets), err)
		}
		opts = append(opts, option.WithAuthCredentials(creds))
	}
	opts = append(opts, s.extra...)
	var project string
	var projectErr error
	if slices.ContainsFunc(targets, func(t provider.Target) bool { return t.Project == "" }) {
		project, projectErr = s.defaultProject(ctx, creds)
	}

	rs := make([]provider.Result, len(targets))
	clients := map[string]*secretmanager.Client{}
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	var calls []call
	for i, t := range targets {
		c := call{index: i, where: "project " + t.Project}
		if t.Project == "" {
			if projectErr != nil {
				rs[i].Err = projectErr
				continue
			}
			c.where = "default project " + project
		}
		c.name = versionName(cmp.Or(t.Project, project), t)
		if t.Location != "" {
			c.where += ", location " + t.Location
		}
		ep := s.endpoint(t.Location)
		if c.client = clients[ep]; c.client == nil {
			client, err := secretmanager.NewClient(ctx, append(slices.Clip(opts), option.WithEndpoint(ep))...)
			if err != nil {
				rs[i].Err = fmt.Errorf("creating a Secret Manager client for %s: %v", ep, err)
				continue
			}
			clients[ep], c.client = client, client
		}
		calls = append(calls, c)
	}
	s.settings.Limit.Each(ctx, len(calls), func(j int) {
		rs[calls[j].index] = do(ctx, s.backoff, calls[j])
	})
	return rs
}

// versionName is the resource name of a target's version in project.
func versionName(project string, t provider.Target) string {
	name := "projects/" + project + "/"
	if t.Location != "" {
		name += "locations/" + t.Location + "/"
	}
	return name + "secrets/" + t.Name + "/versions/" + cmp.Or(t.Version, "latest")
}

// access fetches one version and checks its payload's checksum.
func access(ctx context.Context, b provider.Backoff, c call) provider.Result {
	r := &retryer{backoff: b}
	resp, err := c.client.AccessSecretVersion(ctx,
		&secretmanagerpb.AccessSecretVersionRequest{Name: c.name},
		gax.WithRetry(func() gax.Retryer { return r }))
	if err != nil {
		return provider.Result{Err: describe(ctx, err, r.last, c.where)}
	}
	data := resp.GetPayload().GetData()
	if sum := resp.GetPayload().DataCrc32C; sum != nil && int64(crc32.Checksum(data, castagnoli())) != *sum {
		return provider.Result{Err: errors.New("the payload failed its CRC32C check (corrupted in transit); try again")}
	}
	name := resp.GetName() // projects/NUMBER/[locations/L/]secrets/S/versions/N
	return provider.Result{
		Value:   append([]byte{}, data...), // non-nil when empty
		Version: name[strings.LastIndexByte(name, '/')+1:],
	}
}

// castagnoli is the CRC32C table, built on first use, not at start.
var castagnoli = sync.OnceValue(func() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) })

// A retryer is the engine's Backoff as gax's Retryer, for one call. It
// remembers the last failure it retried, to say what was going on when the deadline
// ended the retries.
type retryer struct {
	backoff provider.Backoff
	n       int // retries so far
	last    error
}

func (r *retryer) Retry(err error) (time.Duration, bool) {
	c := class(err)
	if c == provider.Permanent {
		return 0, false
	}
	r.last = err
	r.n++
	return r.backoff.Delay(r.n, c), true
}

// describe turns a failed call into a one-line reason a user can act on.
// Server messages name resources, never payloads.
func describe(ctx context.Context, err, last error, where string) error {
	st, _ := status.FromError(err)
	if ctx.Err() != nil || st.Code() == codes.DeadlineExceeded { // the server may see the deadline first
		cause := cmp.Or(ctx.Err(), context.DeadlineExceeded)
		if last != nil {
			return fmt.Errorf("%w (the last attempt failed: %s)", cause, statusText(last))
		}
		return cause
	}
	switch st.Code() {
	case codes.NotFound:
		return fmt.Errorf("%w in %s", provider.ErrNotFound, where)
	case codes.PermissionDenied:
		switch reason(err) {
		case "SERVICE_DISABLED":
			return fmt.Errorf("the Secret Manager API is not enabled in %s (enable secretmanager.googleapis.com)", where)
		case "CONSUMER_INVALID":
			return fmt.Errorf("%s does not exist, or the caller cannot see it", where)
		}
		return fmt.Errorf("permission denied in %s: the caller needs secretmanager.versions.access on the secret (role roles/secretmanager.secretAccessor); Google also answers this when the secret does not exist", where)
	case codes.FailedPrecondition:
		switch msg := st.Message(); {
		case strings.Contains(msg, "DISABLED"):
			return errors.New("the version is disabled: enable it or name another version")
		case strings.Contains(msg, "DESTROYED"):
			return errors.New("the version is destroyed: name another version")
		}
	}
	return errors.New(statusText(err))
}

// reason is the ErrorInfo reason of a Google API error, if any.
func reason(err error) string {
	var ae *apierror.APIError
	if errors.As(err, &ae) {
		return ae.Reason()
	}
	return ""
}

// statusText is a gRPC error as "Code: message".
func statusText(err error) string {
	st, _ := status.FromError(err)
	return st.Code().String() + ": " + st.Message()
}

// metadataHost is where the Google libraries reach the metadata server.
func metadataHost() string {
	return cmp.Or(os.Getenv("GCE_METADATA_HOST"), "169.254.169.254")
}

// findCredentials looks up Application Default Credentials and gets a first
// access token (which the clients then share), within ctx.
func findCredentials(ctx context.Context) (*auth.Credentials, error) {
	tried := "tried GOOGLE_APPLICATION_CREDENTIALS, gcloud's application default credentials, the metadata server at " + metadataHost()
	invalid := "none found, or gcloud's credentials file is not valid"
	if os.Getenv("GOOGLE_APPLICATION_CREDENTIALS") != "" { // ADC looks no further
		tried, invalid = "from the file in GOOGLE_APPLICATION_CREDENTIALS", "the file is not a valid credentials file"
	}
	type found struct {
		creds *auth.Credentials
		err   error
	}
	ch := make(chan found, 1)
	go func() { // DetectDefault probes the metadata server without a context
		c, err := credentials.DetectDefault(&credentials.DetectOptions{
			Scopes:           secretmanager.DefaultAuthScopes(),
			UseSelfSignedJWT: true,
			Logger:           quiet,
		})
		ch <- found{c, err}
	}()
	var f found
	select {
	case f = <-ch:
	case <-ctx.Done():
		return nil, fmt.Errorf("looking for Google credentials (%s): %w", tried, ctx.Err())
	}
	if f.err != nil { // its message can quote a credentials file: keep only file-system errors
		var pe *fs.PathError
		if errors.As(f.err, &pe) {
			return nil, fmt.Errorf("no Google credentials (%s): %v", tried, pe)
		}
		return nil, fmt.Errorf("no Google credentials (%s): %s", tried, invalid)
	}
	if _, err := f.creds.Token(ctx); err != nil {
		return nil, fmt.Errorf("getting a Google access token (%s): %w", tried, err)
	}
	return f.creds, nil
}

// defaultProject finds the project of targets that name none: from
// --google-project, GOOGLE_CLOUD_PROJECT, GOOGLE_PROJECT, the credentials,
// then the metadata server.
func (s *store) defaultProject(ctx context.Context, creds *auth.Credentials) (string, error) {
	for _, p := range []string{s.project, os.Getenv("GOOGLE_CLOUD_PROJECT"), os.Getenv("GOOGLE_PROJECT")} {
		if p != "" {
			return p, nil
		}
	}
	tried := "tried --google-project, GOOGLE_CLOUD_PROJECT, GOOGLE_PROJECT, the credentials, the metadata server at " + metadataHost()
	if creds != nil {
		p, err := creds.ProjectID(ctx)
		if err != nil {
			return "", fmt.Errorf("no default project (%s): %w", tried, err)
		}
		if p != "" {
			return p, nil
		}
	}
	if !metadata.OnGCEWithContext(ctx) {
		return "", fmt.Errorf("no default project (%s): set --google-project or GOOGLE_CLOUD_PROJECT, or name the project in the reference", tried)
	}
	// Not metadata.ProjectIDWithContext: it caches in package state.
	p, err := metadata.NewWithOptions(&metadata.Options{Logger: quiet}).GetWithContext(ctx, "project/project-id")
	if err != nil {
		return "", fmt.Errorf("no default project (%s): %w", tried, err)
	}
	return strings.TrimSpace(p), nil
}
