package server

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
)

// Metrics is a small set of counters in the Prometheus text format: the
// webhook needs no histogram, and the client library would be its largest
// dependency after client-go.
type Metrics struct {
	mu       sync.Mutex
	counters map[string]map[string]uint64 // metric -> label set -> value
	help     map[string]string
	gauges   map[string]func() float64
}

// NewMetrics returns the webhook's metrics, all at zero.
func NewMetrics() *Metrics {
	m := &Metrics{counters: map[string]map[string]uint64{}, help: map[string]string{}, gauges: map[string]func() float64{}}
	m.define("secrets_init_webhook_admissions_total", "AdmissionReviews answered, by result (mutated, skipped, denied, ignored, invalid).")
	for _, r := range []string{"mutated", "skipped", "denied", "ignored", "invalid"} {
		m.counters["secrets_init_webhook_admissions_total"][`result="`+r+`"`] = 0
	}
	m.define("secrets_init_webhook_secret_reviews_total", "AdmissionReviews of Secrets (POST /secrets) answered, by result (decrypted, skipped, denied, ignored, invalid).")
	for _, r := range []string{"decrypted", "skipped", "denied", "ignored", "invalid"} {
		m.counters["secrets_init_webhook_secret_reviews_total"][`result="`+r+`"`] = 0
	}
	m.define("secrets_init_webhook_registry_lookups_total", "Image configuration lookups, by result (hit, miss, error).")
	for _, r := range []string{"hit", "miss", "error"} {
		m.counters["secrets_init_webhook_registry_lookups_total"][`result="`+r+`"`] = 0
	}
	m.define("secrets_init_webhook_forbidden_total", "Secrets or ConfigMaps that RBAC did not let the webhook read (not inspected), by kind.")
	m.define("secrets_init_webhook_tls_reloads_total", "Serving certificates loaded.")
	m.counters["secrets_init_webhook_tls_reloads_total"][""] = 0
	return m
}

func (m *Metrics) define(name, help string) {
	m.counters[name] = map[string]uint64{}
	m.help[name] = help
}

// Inc counts an admission result.
func (m *Metrics) Inc(result string) {
	m.Add("secrets_init_webhook_admissions_total", `result="`+result+`"`)
}

// IncSecret counts the result of a Secret's review.
func (m *Metrics) IncSecret(result string) {
	m.Add("secrets_init_webhook_secret_reviews_total", `result="`+result+`"`)
}

// Add increments a counter by one; labels is the Prometheus label set
// without braces.
func (m *Metrics) Add(name, labels string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.counters[name]
	if !ok {
		c = map[string]uint64{}
		m.counters[name] = c
	}
	c[labels]++
}

// Get returns a counter's value (for tests).
func (m *Metrics) Get(name, labels string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.counters[name][labels]
}

// Gauge registers a value read at each scrape.
func (m *Metrics) Gauge(name, help string, f func() float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.help[name] = help
	m.gauges[name] = f
}

// ServeHTTP is GET /metrics.
func (m *Metrics) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	m.mu.Lock()
	var b strings.Builder
	names := make([]string, 0, len(m.counters))
	for n := range m.counters {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s counter\n", n, m.help[n], n)
		labels := make([]string, 0, len(m.counters[n]))
		for l := range m.counters[n] {
			labels = append(labels, l)
		}
		sort.Strings(labels)
		for _, l := range labels {
			if l == "" {
				fmt.Fprintf(&b, "%s %d\n", n, m.counters[n][l])
			} else {
				fmt.Fprintf(&b, "%s{%s} %d\n", n, l, m.counters[n][l])
			}
		}
	}
	gnames := make([]string, 0, len(m.gauges))
	for n := range m.gauges {
		gnames = append(gnames, n)
	}
	sort.Strings(gnames)
	gauges := make([]func() float64, len(gnames))
	for i, n := range gnames {
		gauges[i] = m.gauges[n]
	}
	help := make([]string, len(gnames))
	for i, n := range gnames {
		help[i] = m.help[n]
	}
	m.mu.Unlock()
	for i, n := range gnames {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n%s %g\n", n, help[i], n, n, gauges[i]())
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Write([]byte(b.String()))
}
