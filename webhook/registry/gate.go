package registry

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// retryMissing is how long "no credential here" holds before a lookup
// starts the next probe (in the background: short, so that a probe that
// failed by accident on the cloud soon gives way).
const retryMissing = time.Minute

// firstProbeWait bounds how long the webhook's readiness waits for the
// first probe (see settled): where the metadata service drops packets, a
// probe can take seconds, and a webhook outside the clouds must become
// ready all the same.
const firstProbeWait = 10 * time.Second

// gate tells a cloud keychain whether its credential is there when only an
// instance metadata service could give it (an Azure managed identity, an
// EC2 instance role), from probes that run apart from the lookups: warm
// starts the first at the webhook's start, and a lookup waits for that
// first probe while it runs (where the metadata service drops packets,
// seconds). The webhook reports itself not ready until that first probe
// ended (settled, at most firstProbeWait), so that, deployed where the
// probe is slow, a replica takes no pod before it knows. Once a probe found
// nothing, lookups go on anonymously and one a minute later or more starts
// the next probe in the background without waiting for it.
type gate struct {
	probe   func(ctx context.Context) error
	now     func() time.Time
	log     *slog.Logger
	missing string // logged when a probe finds the credential missing
	found   string // logged when a probe finds it again

	mu          sync.Mutex
	warmed      time.Time     // when warm started the first probe (zero: not called)
	probed      bool          // a probe has ended
	done        chan struct{} // closed when the running probe ends; nil when none runs
	unavailable time.Time     // zero: the credential is there; else when to probe again
}

func (g *gate) clock() time.Time {
	if g.now != nil {
		return g.now()
	}
	return time.Now()
}

// warm starts the first probe unless one ran or runs.
func (g *gate) warm() {
	g.mu.Lock()
	if g.warmed.IsZero() {
		g.warmed = g.clock()
	}
	if !g.probed && g.done == nil {
		g.start()
	}
	g.mu.Unlock()
}

// settled reports whether the first probe has ended, or was started by
// warm firstProbeWait ago or more; true when warm was not called.
func (g *gate) settled() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.warmed.IsZero() || g.probed || !g.clock().Before(g.warmed.Add(firstProbeWait))
}

// start runs a probe in the background; g.mu is held.
func (g *gate) start() {
	done := make(chan struct{})
	g.done = done
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := g.probe(ctx)
		g.mu.Lock()
		wasThere := !g.probed || g.unavailable.IsZero()
		g.probed, g.done = true, nil
		g.unavailable = time.Time{}
		if err != nil {
			g.unavailable = g.clock().Add(retryMissing)
		}
		g.mu.Unlock()
		close(done)
		switch {
		case g.log == nil:
		case err != nil && wasThere: // logged when it changes, not at every probe
			g.log.Info(g.missing, "cause", firstLine(err))
		case err == nil && !wasThere:
			g.log.Info(g.found)
		}
	}()
}

// open reports whether the credential is there, waiting only for a first
// probe that is still running.
func (g *gate) open(ctx context.Context) (bool, error) {
	for {
		g.mu.Lock()
		switch {
		case g.done != nil && !g.probed:
			ch := g.done
			g.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return false, ctx.Err()
			}
		case !g.probed:
			g.start()
			g.mu.Unlock()
			continue
		case g.unavailable.IsZero():
			g.mu.Unlock()
			return true, nil
		case g.done == nil && !g.clock().Before(g.unavailable):
			g.start()
		}
		g.mu.Unlock()
		return false, nil
	}
}
