package ari

import (
	"io"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/govline/ivr/ivr"
)

// Metrics of the ARI adapter, served with the engine's at /metrics. All
// fields are safe for concurrent use.
type Metrics struct {
	Reconnects      atomic.Uint64 // WebSocket reconnect attempts
	Events          atomic.Uint64 // ARI events received and decoded
	EventsIgnored   atomic.Uint64 // events about no call of ours
	EventsMalformed atomic.Uint64 // messages that were not ARI events
	RequestErrors   atomic.Uint64 // requests without an answer or with a 5xx
	Reaped          atomic.Uint64 // orphan ExternalMedia channels and bridges removed
	Channels        atomic.Int64  // caller and ExternalMedia channels held
	Bridges         atomic.Int64  // mixing bridges held
	RTPPorts        atomic.Int64  // RTP ports open
	RequestLatency  *ivr.Histogram

	mu        sync.Mutex
	connected map[string]bool // by server host:port
}

func newMetrics() *Metrics {
	return &Metrics{
		RequestLatency: ivr.NewHistogram(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
		connected:      map[string]bool{},
	}
}

func (m *Metrics) addServer(label string) {
	m.mu.Lock()
	m.connected[label] = false
	m.mu.Unlock()
}

func (m *Metrics) setConnected(label string, up bool) {
	m.mu.Lock()
	m.connected[label] = up
	m.mu.Unlock()
}

// Connected reports whether the WebSocket to server (host:port) is up.
func (m *Metrics) Connected(server string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.connected[server]
}

var _ prometheus.Collector = (*Metrics)(nil)

// WritePrometheus writes the adapter's metrics in the Prometheus text
// format.
func (m *Metrics) WritePrometheus(w io.Writer) error { return ivr.WriteText(w, m) }

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(m, ch) }

// Collect implements prometheus.Collector: the adapter's metrics, served
// with the engine's at /metrics.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	c := ivr.NewConstMetrics(ch)
	m.mu.Lock()
	connected := make(map[string]uint64, len(m.connected))
	for s, up := range m.connected {
		if up {
			connected[s] = 1
		} else {
			connected[s] = 0
		}
	}
	m.mu.Unlock()
	c.Labelled(prometheus.GaugeValue, "ivr_ari_connected", "1 while the ARI WebSocket to the server is up.", "server", connected)
	counter, gauge := c.Counter, c.Gauge
	counter("ivr_ari_reconnects_total", "ARI WebSocket reconnect attempts.", m.Reconnects.Load())
	counter("ivr_ari_events_total", "ARI events received.", m.Events.Load())
	counter("ivr_ari_events_ignored_total", "ARI events about no call of the engine.", m.EventsIgnored.Load())
	counter("ivr_ari_events_malformed_total", "WebSocket messages that were not ARI events.", m.EventsMalformed.Load())
	counter("ivr_ari_request_errors_total", "ARI requests without an answer or answered 5xx.", m.RequestErrors.Load())
	counter("ivr_ari_orphans_removed_total", "ExternalMedia channels and bridges of the application that no call owned, removed.", m.Reaped.Load())
	gauge("ivr_ari_channels", "Asterisk channels held (callers and ExternalMedia).", m.Channels.Load())
	gauge("ivr_ari_bridges", "Mixing bridges held.", m.Bridges.Load())
	gauge("ivr_ari_rtp_ports", "ExternalMedia RTP ports open.", m.RTPPorts.Load())
	m.RequestLatency.Collect(c, "ivr_ari_request_seconds", "ARI request latency, request sent to answer read.")
}
