package refresh

import (
	"context"
	"testing"
)

// Run calls Idle each time it goes to sleep: before the first round, and
// after each check.
func TestRunCallsIdle(t *testing.T) {
	h := start(t, Config{}, map[string]string{"db": "one-" + canary}, "DB=secretfile:DIR/db")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	checkNow := make(chan struct{}, 2)
	checkNow <- struct{}{}
	checkNow <- struct{}{}
	var idle []int // the checks made when Idle was called
	h.loop.cfg.Idle = func() {
		idle = append(idle, h.loop.counters.Checks)
		if len(idle) == 3 {
			cancel()
		}
	}
	h.loop.Run(ctx, checkNow)
	if len(idle) != 3 || idle[0] != 0 || idle[1] != 1 || idle[2] != 2 {
		t.Errorf("Idle called at checks %v, want [0 1 2]", idle)
	}
}
