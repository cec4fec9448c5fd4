package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"sync"
	"time"

	"github.com/secrets-init/secrets-init/internal/options"
	"github.com/secrets-init/secrets-init/provider"
	"github.com/secrets-init/secrets-init/refresh"
	"github.com/secrets-init/secrets-init/supervisor"
)

// Refresh (SPEC §8, docs/refresh.md): the wiring between the resolution,
// the refresh loop and the supervisor.

// refreshOn reports whether --refresh is on.
func refreshOn(o *options.Options) bool { return o.Refresh > 0 || o.RefreshLeases }

// fingerprint is this process's keyed hash of values (its key never
// leaves the process).
var fingerprint = sync.OnceValue(refresh.NewFingerprint)

// refreshConfig prepares the resolution for refresh.
func refreshConfig(o *options.Options, cfg *provider.Config) {
	if refreshOn(o) && !cfg.DryRun {
		cfg.Refresh, cfg.Fingerprint = true, fingerprint().Of
	}
}

// keepVaultToken makes VAULT_REVOKE_TOKEN inert under refresh, with one
// warning: the token that read the leases must live to renew them, and
// revoking it revokes them (every renewal would then fail, and every
// re-read restart the command with credentials already dead). The token
// and the leases end with their TTL, as at any exit under refresh. It
// runs before the stores open (and before the resolver process starts,
// which inherits the environment); the command's own environment is
// already taken, so a passed-through VAULT_REVOKE_TOKEN is unchanged.
func keepVaultToken(o *options.Options, log *slog.Logger, dryRun bool) {
	if !refreshOn(o) || dryRun {
		return
	}
	if revoke, err := strconv.ParseBool(os.Getenv("VAULT_REVOKE_TOKEN")); err != nil || !revoke {
		return // an invalid value is the vault store's error
	}
	log.Warn("VAULT_REVOKE_TOKEN is ignored with --refresh: the token must live to renew the leases it read (revoking it revokes them); it ends with its TTL")
	os.Setenv("VAULT_REVOKE_TOKEN", "false")
}

// warnLeases warns, once per variable, about each value that came from a
// Vault lease when refresh is off entirely: nothing renews or re-reads it,
// so the command's credentials stop when the lease ends. The line names
// the variable, its reference and the end, never a value or lease id.
func warnLeases(o *options.Options, log *slog.Logger, report []provider.Status) {
	if refreshOn(o) {
		return
	}
	for _, s := range report {
		if s.Lease > 0 && s.Err == nil && !s.Missing {
			log.Warn("dynamic secret: its credentials stop when the lease ends; run with --refresh to renew it",
				"variable", s.Name, "reference", s.Reference, "expires", s.Expires.UTC().Format(time.RFC3339), "lease", s.Lease)
		}
	}
}

// refreshUsage reports references whose ?refresh= is a usage error (a
// signal without ?file), one line each, and returns exitUsage, or 0.
func refreshUsage(environ, skip []string) int {
	code := 0
	for _, f := range provider.UsageErrors(environ, skip) {
		fmt.Fprintf(os.Stderr, "secrets-init: %s: %s: %v\n", f.Name, f.Reference, f.Err)
		code = exitUsage
	}
	return code
}

// startRefresh makes cmd restartable and starts the refresh loop, which
// begins once the command has started. The function it returns ends the
// loop and waits for it, so that no file is being written when the
// private directory is removed.
func startRefresh(o *options.Options, log *slog.Logger, res *provider.Resolution, cmd *supervisor.Command) (stop func()) {
	if !refreshOn(o) {
		return func() {}
	}
	ctl := supervisor.NewControl(o.RefreshSignal)
	cmd.Control, cmd.StopTimeout = ctl, o.StopTimeout
	loop := refresh.New(refresh.Config{
		Interval:     o.Refresh,
		OnChange:     o.OnChange,
		OnFileChange: o.OnFileChange,
		Splay:        o.Splay,
		MaxStale:     o.MaxStale,
		StatusFile:   o.StatusFile,
		Timeout:      o.Timeout,
		Detectors:    detectors(o, log),
		Leasers:      map[provider.Kind]provider.Opener{provider.Vault: openers(o)[provider.Vault]},
		Clock:        refresh.RealClock{},
		Rand:         rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		Log:          log,
		Actor:        ctl,
		Idle:         returnMemory(idleFree),
	}, res)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-ctl.Started():
		case <-ctx.Done():
			return
		}
		loop.Run(ctx, ctl.CheckNow())
	}()
	return func() {
		cancel()
		<-done
	}
}

// idleFree is how much the refresh rounds may allocate before the memory
// is collected and returned to the system between two rounds.
const idleFree = 512 << 10

// returnMemory returns the refresh Loop's Idle: once the process has
// allocated every bytes since the last time (a round of 50 references
// allocates about 0.1 MiB in the supervisor of the split build, 1 MiB with
// the SDKs in the single-process build), it collects the garbage and
// returns the free memory to the system. Without it, the heap grows to the
// Go runtime's 4 MiB minimum before its first collection and is kept:
// RssAnon grew from 1.5 to 5.7 MiB (docs/performance.md). A collection
// costs about 2.6 ms of CPU, so it is not made every round.
func returnMemory(every uint64) func() {
	sample := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	var last uint64
	return func() {
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 || sample[0].Value.Uint64()-last < every {
			return
		}
		debug.FreeOSMemory()
		metrics.Read(sample)
		last = sample[0].Value.Uint64()
	}
}

// detectors are the change detections of the stores this binary has: a
// keyed hash of secretfile: contents, and each other store's cheap
// version call (with its fallback to reading values).
func detectors(o *options.Options, log *slog.Logger) map[provider.Kind]refresh.Detector {
	d := map[provider.Kind]refresh.Detector{provider.File: refresh.FileDetector{FP: fingerprint()}}
	limit := provider.NewLimiter(o.Concurrency)
	for kind, open := range openers(o) {
		if kind != provider.File && open != nil {
			d[kind] = &refresh.StoreDetector{Kind: kind, Open: open, FP: fingerprint(), Log: log,
				Settings: provider.Settings{Log: log, Limit: limit}}
		}
	}
	return d
}

// checkPlans are the refresh columns of `check --refresh D`.
type checkPlans struct {
	plans []refresh.Plan
	total int // store API calls per instance per month
	unimp int // of them, by stores not checked yet
}

func refreshPlans(o *options.Options, report []provider.Status) *checkPlans {
	if o.Refresh <= 0 {
		return nil
	}
	p := &checkPlans{}
	seen := map[provider.Target]bool{}
	var perKind = map[provider.Kind]float64{}
	for _, s := range report {
		if s.Kind == 0 {
			p.plans = append(p.plans, refresh.Plan{How: "-"})
			continue
		}
		if s.Lease > 0 && s.Ref.Opts.Refresh.Kind != provider.ActOff {
			plan := refresh.LeasePlan(s, seen[s.Ref.Target])
			p.total += plan.PerMonth
			seen[s.Ref.Target] = true
			p.plans = append(p.plans, plan)
			continue
		}
		plan := refresh.PlanOf(s.Ref, o.Refresh, seen[s.Ref.Target])
		if !seen[s.Ref.Target] && plan.PerMonth > 0 {
			perKind[s.Ref.Kind] += refresh.Methods[s.Ref.Kind].PerRound
		}
		seen[s.Ref.Target] = true
		p.plans = append(p.plans, plan)
	}
	for kind, perRound := range perKind {
		// Batches round up per round, not per reference.
		calls := int(math.Ceil(perRound) * refresh.Rounds(o.Refresh))
		p.total += calls
		if !refresh.Methods[kind].Implemented {
			p.unimp += calls
		}
	}
	return p
}

func (p *checkPlans) column(i int) string {
	if p == nil {
		return ""
	}
	plan := p.plans[i]
	calls := strconv.Itoa(plan.PerMonth)
	if !plan.Implemented && plan.PerMonth > 0 {
		calls = "0 (planned " + calls + ")"
	}
	return "\t" + calls + "\t" + plan.How
}

func (p *checkPlans) summary(o *options.Options) {
	if p == nil {
		return
	}
	fmt.Fprintf(os.Stderr, "secrets-init: --refresh %s: about %.0f rounds a month; %d store API calls per instance per month",
		o.Refresh, refresh.Rounds(o.Refresh), p.total-p.unimp)
	if p.unimp > 0 {
		fmt.Fprintf(os.Stderr, " (%d more once every store is checked)", p.unimp)
	}
	fmt.Fprintln(os.Stderr)
}
