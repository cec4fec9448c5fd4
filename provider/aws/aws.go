// Package aws resolves references to AWS Secrets Manager secrets and SSM
// Parameter Store parameters with aws-sdk-go-v2.
//
// Both stores share one SDK configuration per process, loaded from the
// default chain (env, shared profile, web identity, EKS Pod Identity, ECS,
// IMDS) the first time either store is opened. Calls go to the region of
// the reference's ARN (short references use the configured region), are
// batched (BatchGetSecretValue, GetParameters) and are retried under the
// engine's backoff policy until the context's deadline.
package aws

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/smithy-go/logging"

	"github.com/secrets-init/secrets-init/provider"
)

// isThrottle recognises the SDK's throttling errors.
var isThrottle = retry.IsErrorThrottles(retry.DefaultThrottles)

// An env is what both stores share: the SDK configuration and the one
// HTTP transport of all their clients, whose idle connections are closed
// when a Fetch ends.
type env struct {
	cfg aws.Config
	tr  *http.Transport
}

// processEnv loads the process's env once, when a store is first opened,
// with that store's logger for the SDK's own log lines. Loading reads
// environment variables and files only: no network.
func processEnv(s provider.Settings) (*env, error) {
	envOnce.Do(func() { envOnce.e, envOnce.err = loadEnv(context.Background(), logger(s)) })
	return envOnce.e, envOnce.err
}

var envOnce struct {
	sync.Once
	e   *env
	err error
}

// loadEnv loads the SDK configuration from the process environment. With
// a retryer of its own, the SDK leaves AWS_MAX_ATTEMPTS and AWS_RETRY_MODE
// (and a profile's max_attempts) to the application, which gets AWS_*.
func loadEnv(ctx context.Context, log *slog.Logger) (*env, error) {
	log = cmp.Or(log, slog.New(slog.DiscardHandler))
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRetryer(newRetryer), config.WithHTTPClient(awshttp.NewBuildableClient()),
		config.WithLogger(sdkLogger{log}))
	if err != nil {
		return nil, fmt.Errorf("loading the AWS configuration: %w", err)
	}
	// The BuildableClient has AWS_CA_BUNDLE applied. Each service client
	// would clone its transport, leaving pools that nobody can close:
	// share one transport instead.
	tr := cfg.HTTPClient.(*awshttp.BuildableClient).GetTransport()
	cfg.HTTPClient = &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // as the SDK's own client
		},
	}
	return &env{cfg: cfg, tr: tr}, nil
}

// newRetryer returns the retry strategy of every client: standard mode
// with the engine's backoff (provider.DefaultBackoff), no retry quota and
// no attempt limit, so that only the context's deadline ends the retries
// of a throttled or unreachable call. Not adaptive mode: its client-side
// limiter drops to 0.5 requests/s after a throttle, which for a one-shot
// burst of calls turns a brief throttle into tens of seconds. Not the
// SDK's backoff: it stops jittering at its cap, so a fleet would retry in
// step. Which errors are retried stays the SDK's (retry.DefaultRetryables).
func newRetryer() aws.Retryer {
	standard := retry.NewStandard(func(o *retry.StandardOptions) {
		o.RateLimiter = ratelimit.None
		o.Backoff = backoff{provider.DefaultBackoff}
	})
	return retry.AddWithMaxAttempts(standard, 0)
}

// backoff is the engine's Backoff as the SDK's BackoffDelayer: the SDK's
// throttling errors (retry.DefaultThrottles) are Throttled, the other
// retryable ones Transient. attempt is the attempt that failed, from 1.
type backoff struct{ provider.Backoff }

func (b backoff) BackoffDelay(attempt int, err error) (time.Duration, error) {
	c := provider.Transient
	if isThrottle.IsErrorThrottle(err) == aws.TrueTernary {
		c = provider.Throttled
	}
	return b.Delay(attempt, c), nil
}

// OpenSecretsManager opens the AWS Secrets Manager store.
func OpenSecretsManager(_ context.Context, s provider.Settings) (provider.Store, error) {
	e, err := processEnv(s)
	if err != nil {
		return nil, err
	}
	return newSecretsManager(e, s), nil
}

// OpenSSM opens the AWS SSM Parameter Store store.
func OpenSSM(_ context.Context, s provider.Settings) (provider.Store, error) {
	e, err := processEnv(s)
	if err != nil {
		return nil, err
	}
	return newSSM(e, s), nil
}

// regionClients holds one client per region, each created on first use.
type regionClients[C any] struct {
	newClient func(region string) *C

	mu      sync.Mutex
	clients map[string]*C
}

func newRegionClients[C any](newClient func(region string) *C) *regionClients[C] {
	return &regionClients[C]{newClient: newClient, clients: map[string]*C{}}
}

// get returns the client that sends to region and signs for it.
func (rc *regionClients[C]) get(region string) *C {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	c := rc.clients[region]
	if c == nil {
		c = rc.newClient(region)
		rc.clients[region] = c
	}
	return c
}

// A call is the targets of one API call, all bound for one region: their
// indices in the targets of a Fetch.
type call struct {
	region string
	idx    []int
}

// A batcher is the part of a store that differs between Secrets Manager
// and SSM.
type batcher interface {
	// batchable tells whether t can share a batch call with others.
	batchable(t provider.Target) bool
	// batch fetches the targets of c in one call, sets their results and
	// returns those it could not answer, to be fetched one by one.
	batch(ctx context.Context, c call, targets []provider.Target, res []provider.Result) (left []int)
	// single fetches one target.
	single(ctx context.Context, region string, t provider.Target) provider.Result
}

// fetch resolves targets with b: batch calls of up to size targets per
// region first (a target that is not batchable gets a call of its own),
// then single calls for whatever a batch left unanswered. Every call goes
// through limit.
func fetch(ctx context.Context, e *env, limit *provider.Limiter, b batcher, size int, targets []provider.Target) []provider.Result {
	defer e.tr.CloseIdleConnections()
	if err := e.checkCredentials(ctx); err != nil {
		return provider.Failed(len(targets), err)
	}
	res := make([]provider.Result, len(targets))
	var calls []call
	groups := map[string][]int{}
	for i, t := range targets {
		region := cmp.Or(t.Region, e.cfg.Region)
		switch {
		case region == "":
			res[i].Err = errNoRegion
		case b.batchable(t):
			groups[region] = append(groups[region], i)
		default:
			calls = append(calls, call{region, []int{i}})
		}
	}
	for region, idx := range groups {
		calls = append(calls, split(region, idx, size)...)
	}

	var mu sync.Mutex
	var left []call
	err := limit.Each(ctx, len(calls), func(k int) {
		c := calls[k]
		rest := b.batch(ctx, c, targets, res)
		mu.Lock()
		defer mu.Unlock()
		for _, i := range rest {
			left = append(left, call{c.region, []int{i}})
		}
	})
	if err == nil { // else the engine gives the targets left unset ctx's error
		limit.Each(ctx, len(left), func(k int) {
			i := left[k].idx[0]
			res[i] = b.single(ctx, left[k].region, targets[i])
		})
	}
	return res
}

// pending tells whether r is still unset.
func pending(r provider.Result) bool {
	return r.Value == nil && r.Err == nil
}

// unanswered returns the indices in idx whose results are pending.
func unanswered(idx []int, res []provider.Result) []int {
	var left []int
	for _, i := range idx {
		if pending(res[i]) {
			left = append(left, i)
		}
	}
	return left
}

// answer sets the result of the first pending target among those named
// by keys (a batch may name one secret by name and by ARN).
func answer(want map[string]int, res []provider.Result, r provider.Result, keys ...string) {
	for _, k := range keys {
		if i, ok := want[k]; ok && pending(res[i]) {
			res[i] = r
			return
		}
	}
}

// sdkLogger takes the SDK's own log lines (warnings of its clients and
// credential providers, such as a response without a checksum it could
// validate) into secrets-init's log, in its format, instead of the SDK's
// plain "SDK <time> WARN" lines on stderr.
// With ClientLogMode off, as here, the SDK logs no request or response
// content.
type sdkLogger struct{ log *slog.Logger }

func (l sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	level := slog.LevelDebug
	if c == logging.Warn {
		level = slog.LevelWarn
	}
	l.log.Log(context.Background(), level, "AWS SDK: "+strings.Join(strings.Fields(fmt.Sprintf(format, v...)), " "))
}

// logger returns the settings' logger, or one that discards.
func logger(s provider.Settings) *slog.Logger {
	return cmp.Or(s.Log, slog.New(slog.DiscardHandler))
}

// split cuts idx into the fewest calls of at most size targets, of even
// sizes.
func split(region string, idx []int, size int) []call {
	n := (len(idx) + size - 1) / size
	per := (len(idx) + n - 1) / n
	calls := make([]call, 0, n)
	for len(idx) > 0 {
		k := min(per, len(idx))
		calls = append(calls, call{region, idx[:k]})
		idx = idx[k:]
	}
	return calls
}
