package refresh

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkQuietRound is one round with 50 secretfile: references and no
// change: 50 reads and hashes (no status file).
func BenchmarkQuietRound(b *testing.B) {
	files := map[string]string{}
	var environ []string
	for i := range 50 {
		files[fmt.Sprint("s", i)] = fmt.Sprintf(`{"password":"value-%d"}`, i)
		environ = append(environ, fmt.Sprintf("V%d=secretfile:DIR/s%d#password", i, i))
	}
	h := start(b, Config{}, files, environ...)
	h.loop.cfg.StatusFile = ""
	b.ResetTimer()
	for range b.N {
		h.loop.check(context.Background())
	}
	if h.loop.counters.Failures != 0 || len(h.actor.restarts) != 0 {
		b.Fatal("a quiet round failed or acted")
	}
}
