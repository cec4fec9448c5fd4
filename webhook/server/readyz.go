package server

import "net/http"

// Readiness is GET /readyz: "ok" once every check passes, else 503 with
// the first failing check's Waiting.
type Readiness []ReadyCheck

// ReadyCheck is one condition of the webhook's readiness.
type ReadyCheck struct {
	Ready   func() bool
	Waiting string // what is awaited, the 503's body while Ready is false
}

// ServeHTTP answers /readyz.
func (r Readiness) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	for _, c := range r {
		if !c.Ready() {
			http.Error(w, c.Waiting, http.StatusServiceUnavailable)
			return
		}
	}
	w.Write([]byte("ok\n"))
}
