package adapter

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/exportbridge/exportbridge/internal/store"
	"github.com/exportbridge/exportbridge/internal/version"
	"github.com/exportbridge/exportbridge/publish"
)

// Metrics are exportbridge's Prometheus metrics, registered on an injected
// registry. The names are a contract for dashboards: do not rename.
type Metrics struct {
	polls      *prometheus.CounterVec
	runs       *prometheus.CounterVec
	packages   *prometheus.CounterVec
	records    *prometheus.CounterVec
	bytes      *prometheus.CounterVec
	events     *prometheus.CounterVec
	deliveries *prometheus.CounterVec
	circuit    *prometheus.GaugeVec
	latency    prometheus.Histogram
	raised     *prometheus.CounterVec
	streams    *prometheus.GaugeVec
	dropped    *prometheus.CounterVec
	lastOK     *prometheus.GaugeVec
	reg        prometheus.Registerer
}

// NewMetrics registers the metrics on reg; counts reads delivery states at
// scrape time for exportbridge_deliveries{state}.
func NewMetrics(reg prometheus.Registerer, counts func(context.Context) (map[string]int, error)) *Metrics {
	m := &Metrics{
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "exportbridge_polls_total",
			Help: "FinOps polls (dequeue calls, export status polls) by result: message, empty, ok, error."}, []string{"job", "result"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "exportbridge_runs_total",
			Help: "Job runs by result: ok, error, environment_fault (disk full, I/O error, store gone: nothing acknowledged), cancelled."}, []string{"job", "result"}),
		packages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "exportbridge_packages_total",
			Help: "Packages handled by result: committed, duplicate, quarantined, failed."}, []string{"job", "result"}),
		records: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "exportbridge_records_converted_total",
			Help: "Records converted to JSON."}, []string{"job"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "exportbridge_bytes_converted_total",
			Help: "Bytes of converted files written (as stored)."}, []string{"job"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "exportbridge_events_total",
			Help: "Events committed by type."}, []string{"job", "type"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "exportbridge_deliveries_total",
			Help: "Delivery attempts by outcome: delivered, retry, dead."}, []string{"subscription", "outcome"}),
		circuit: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "exportbridge_subscription_circuit_open",
			Help: "1 while a subscription's circuit breaker is open (its target keeps failing; only probes go out), else 0."}, []string{"subscription"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "exportbridge_delivery_latency_seconds",
			Help: "Time from an event's commit to its successful delivery.", Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 12)}),
		raised: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "exportbridge_events_raised_total",
			Help: "Events raised through the hub, by token."}, []string{"token"}),
		streams: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "exportbridge_stream_clients",
			Help: "Connected stream clients by kind: sse, websocket."}, []string{"kind"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "exportbridge_stream_disconnects_total",
			Help: "Stream clients the server disconnected, by kind and reason: behind, slow, pings."}, []string{"kind", "reason"}),
		lastOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "exportbridge_job_last_success_timestamp_seconds",
			Help: "When the job last ran without error (Unix seconds); alert when it grows stale."}, []string{"job"}),
		reg: reg,
	}
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "exportbridge_build_info",
		Help: "The running version (always 1)."}, []string{"version"})
	build.WithLabelValues(version.String()).Set(1)
	reg.MustRegister(build, m.lastOK)
	reg.MustRegister(m.polls, m.runs, m.packages, m.records, m.bytes, m.events, m.deliveries, m.circuit, m.latency, m.raised, m.streams, m.dropped,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if counts != nil {
		reg.MustRegister(&stateCollector{counts: counts, desc: prometheus.NewDesc("exportbridge_deliveries",
			"Deliveries by state: pending, in_flight, dead, superseded.", []string{"state"}, nil)})
	}
	return m
}

// The helpers are nil-safe so components can run without metrics.

// Raised implements hub.Observer.
func (m *Metrics) Raised(token string, events int) {
	if m != nil {
		m.raised.WithLabelValues(token).Add(float64(events))
	}
}

// StreamOpened implements hub.Observer.
func (m *Metrics) StreamOpened(kind string) {
	if m != nil {
		m.streams.WithLabelValues(kind).Inc()
	}
}

// StreamClosed implements hub.Observer; dropped is the reason the server
// disconnected the client ("" when the client left).
func (m *Metrics) StreamClosed(kind, dropped string) {
	if m != nil {
		m.streams.WithLabelValues(kind).Dec()
		if dropped != "" {
			m.dropped.WithLabelValues(kind, dropped).Inc()
		}
	}
}

// Poll counts a source's poll (the sources report them).
func (m *Metrics) Poll(job, result string) {
	if m != nil {
		m.polls.WithLabelValues(job, result).Inc()
	}
}

// Run implements pipeline.Observer.
func (m *Metrics) Run(job, result string) {
	if m != nil {
		m.runs.WithLabelValues(job, result).Inc()
		if result == "ok" {
			m.lastOK.WithLabelValues(job).SetToCurrentTime()
		}
	}
}

// LastSuccess sets a job's last success from the run history (at start,
// so the gauge survives restarts).
func (m *Metrics) LastSuccess(job string, at time.Time) {
	if m != nil && !at.IsZero() {
		m.lastOK.WithLabelValues(job).Set(float64(at.Unix()))
	}
}

// Subscription states.
const (
	SubscriptionActive = "active"
	SubscriptionPaused = "paused"
	SubscriptionOpen   = "open" // its circuit is open
)

// SubscriptionStates registers exportbridge_subscription_state: states
// returns each subscription's state at scrape time.
func (m *Metrics) SubscriptionStates(states func(context.Context) (map[string]string, error)) {
	if m == nil {
		return
	}
	m.reg.MustRegister(&subscriptionCollector{states: states, desc: prometheus.NewDesc("exportbridge_subscription_state",
		"1 for each subscription's current state (active, paused, open: its circuit is open), 0 for the others.",
		[]string{"subscription", "state"}, nil)})
}

type subscriptionCollector struct {
	states func(context.Context) (map[string]string, error)
	desc   *prometheus.Desc
}

func (c *subscriptionCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *subscriptionCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	states, err := c.states(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for sub, cur := range states {
		for _, st := range []string{SubscriptionActive, SubscriptionPaused, SubscriptionOpen} {
			v := 0.0
			if st == cur {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, sub, st)
		}
	}
}

// Package implements pipeline.Observer.
func (m *Metrics) Package(job, result string) {
	if m != nil {
		m.packages.WithLabelValues(job, result).Inc()
	}
}

// Converted implements pipeline.Observer.
func (m *Metrics) Converted(job string, records, bytes int64) {
	if m != nil {
		m.records.WithLabelValues(job).Add(float64(records))
		m.bytes.WithLabelValues(job).Add(float64(bytes))
	}
}

// Event implements pipeline.Observer.
func (m *Metrics) Event(job, typ string) {
	if m != nil {
		m.events.WithLabelValues(job, typ).Inc()
	}
}

// Attempted implements publish.Observer. A traced attempt's latency
// carries its trace id as an exemplar, so a slow bucket leads to a trace.
func (m *Metrics) Attempted(subscription, outcome string, latency time.Duration, traceID string) {
	if m == nil {
		return
	}
	m.deliveries.WithLabelValues(subscription, outcome).Inc()
	if outcome != "delivered" {
		return
	}
	if eo, ok := m.latency.(prometheus.ExemplarObserver); ok && traceID != "" {
		eo.ObserveWithExemplar(latency.Seconds(), prometheus.Labels{"trace_id": traceID})
		return
	}
	m.latency.Observe(latency.Seconds())
}

// CircuitChanged implements publish.Observer.
func (m *Metrics) CircuitChanged(subscription, state string) {
	if m == nil {
		return
	}
	v := 0.0
	if state == publish.CircuitOpen {
		v = 1
	}
	m.circuit.WithLabelValues(subscription).Set(v)
}

// stateCollector reads delivery counts from the store at scrape time, so
// the gauge is right after a restart too.
type stateCollector struct {
	counts func(context.Context) (map[string]int, error)
	desc   *prometheus.Desc
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	counts, err := c.counts(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for _, st := range []string{store.StatePending, store.StateInFlight, store.StateDead, store.StateSuperseded} {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(counts[st]), st)
	}
}
