package main

import (
	"runtime/metrics"
	"testing"
)

var garbage []byte

// returnMemory collects (a forced collection) only once the process has
// allocated its threshold since the last time.
func TestReturnMemory(t *testing.T) {
	forced := func() uint64 {
		s := []metrics.Sample{{Name: "/gc/cycles/forced:gc-cycles"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	idle := returnMemory(4 << 20)
	idle() // everything the test binary allocated so far
	base := forced()
	idle()
	if n := forced() - base; n != 0 {
		t.Fatalf("%d collections with nothing allocated", n)
	}
	for range 3 {
		garbage = make([]byte, 1<<20)
	}
	idle()
	if n := forced() - base; n != 0 {
		t.Fatalf("%d collections after 3 MiB", n)
	}
	garbage = make([]byte, 2<<20)
	idle()
	if n := forced() - base; n != 1 {
		t.Fatalf("%d collections after 5 MiB, want 1", n)
	}
	idle()
	if n := forced() - base; n != 1 {
		t.Fatalf("%d collections, want still 1", n)
	}
}
