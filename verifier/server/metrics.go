package server

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Metrics is a small Prometheus text-format registry: counters and gauges
// with fixed label names. It exists so zest needs no metrics dependency; the
// exposition format is version 0.0.4.
type Metrics struct {
	mu     sync.Mutex
	series map[string]*family
}

type family struct {
	help, kind string
	labels     []string
	values     map[string]float64 // key: joined label values
}

// NewMetrics returns an empty registry with the server's own series.
func NewMetrics() *Metrics {
	m := &Metrics{series: map[string]*family{}}
	m.Declare("zest_http_requests_total", "counter", "HTTP requests by route and status code.", "route", "code")
	m.Declare("zest_http_request_seconds_total", "counter", "Time spent serving HTTP requests by route.", "route")
	m.Declare("zest_push_rounds_total", "counter", "Push-mode attestations by verdict.", "verdict")
	m.Declare("zest_evidence_total", "counter", "Stateless evidence verifications by verdict.", "verdict")
	return m
}

// Declare registers a series family. Redeclaring is a no-op.
func (m *Metrics) Declare(name, kind, help string, labels ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.series[name]; !ok {
		m.series[name] = &family{help: help, kind: kind, labels: labels, values: map[string]float64{}}
	}
}

// Add adds v to a counter (or gauge) for the given label values.
func (m *Metrics) Add(name string, v float64, labelValues ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.series[name]
	if !ok || len(labelValues) != len(f.labels) {
		return
	}
	f.values[strings.Join(labelValues, "\x00")] += v
}

// Set sets a gauge.
func (m *Metrics) Set(name string, v float64, labelValues ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.series[name]
	if !ok || len(labelValues) != len(f.labels) {
		return
	}
	f.values[strings.Join(labelValues, "\x00")] = v
}

// Value reads one series (tests and health checks).
func (m *Metrics) Value(name string, labelValues ...string) float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if f, ok := m.series[name]; ok {
		return f.values[strings.Join(labelValues, "\x00")]
	}
	return 0
}

func (m *Metrics) observeRequest(route string, code int, d time.Duration) {
	if code == 0 {
		code = http.StatusOK
	}
	m.Add("zest_http_requests_total", 1, route, strconv.Itoa(code))
	m.Add("zest_http_request_seconds_total", d.Seconds(), route)
}

// ServeHTTP writes the exposition text.
func (m *Metrics) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	_, _ = w.Write([]byte(m.Text()))
}

// Text renders every series, sorted, in Prometheus text format.
func (m *Metrics) Text() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	names := make([]string, 0, len(m.series))
	for n := range m.series {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		f := m.series[n]
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", n, f.help, n, f.kind)
		keys := make([]string, 0, len(f.values))
		for k := range f.values {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			b.WriteString(n)
			if len(f.labels) > 0 {
				vals := strings.Split(k, "\x00")
				b.WriteByte('{')
				for i, l := range f.labels {
					if i > 0 {
						b.WriteByte(',')
					}
					fmt.Fprintf(&b, "%s=%s", l, strconv.Quote(vals[i]))
				}
				b.WriteByte('}')
			}
			fmt.Fprintf(&b, " %s\n", strconv.FormatFloat(f.values[k], 'g', -1, 64))
		}
	}
	return b.String()
}
