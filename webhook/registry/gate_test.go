package registry

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// settle waits for a running probe: tests wait for the background probe
// they started before they look at its outcome.
func (g *gate) settle() {
	g.mu.Lock()
	ch := g.done
	g.mu.Unlock()
	if ch != nil {
		<-ch
	}
}

// TestGateSettled: readiness waits for the first probe warm starts, and
// at most firstProbeWait of the gate's clock; it does not wait when warm
// was not called. The probe is held until the test lets it end.
func TestGateSettled(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	release := make(chan struct{})
	g := &gate{now: func() time.Time { return time.Unix(0, clock.Load()) },
		probe: func(ctx context.Context) error {
			select {
			case <-release:
				return errors.New("no credential here")
			case <-ctx.Done():
				return ctx.Err()
			}
		}}
	if !g.settled() {
		t.Error("not warmed, yet not settled")
	}
	g.warm()
	if g.settled() {
		t.Error("settled while the first probe runs")
	}
	clock.Add(int64(firstProbeWait - time.Second))
	if g.settled() {
		t.Error("settled before firstProbeWait")
	}
	clock.Add(int64(time.Second))
	if !g.settled() {
		t.Error("not settled after firstProbeWait")
	}

	// Another gate: the probe ends before the bound.
	clock.Store(time.Now().UnixNano())
	g2 := &gate{now: g.now, probe: g.probe}
	g2.warm()
	if g2.settled() {
		t.Error("second gate settled while its probe runs")
	}
	close(release)
	g2.settle()
	if !g2.settled() {
		t.Error("not settled after the probe ended")
	}
	if ok, err := g2.open(context.Background()); ok || err != nil {
		t.Errorf("after a failed probe: %v %v", ok, err)
	}
	g.settle()
}
