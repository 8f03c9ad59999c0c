package ari

import (
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"

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

// WritePrometheus writes the adapter's metrics in the Prometheus text
// format, to follow the engine's.
func (m *Metrics) WritePrometheus(w io.Writer) error {
	var err error
	p := func(format string, a ...any) {
		if err == nil {
			_, err = fmt.Fprintf(w, format, a...)
		}
	}
	m.mu.Lock()
	servers := make([]string, 0, len(m.connected))
	for k := range m.connected {
		servers = append(servers, k)
	}
	sort.Strings(servers)
	p("# HELP ivr_ari_connected 1 while the ARI WebSocket to the server is up.\n# TYPE ivr_ari_connected gauge\n")
	for _, s := range servers {
		v := 0
		if m.connected[s] {
			v = 1
		}
		p("ivr_ari_connected{server=%q} %d\n", s, v)
	}
	m.mu.Unlock()
	counter := func(name, help string, v uint64) {
		p("# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	gauge := func(name, help string, v int64) {
		p("# HELP %s %s\n# TYPE %s gauge\n%s %d\n", name, help, name, name, v)
	}
	counter("ivr_ari_reconnects_total", "ARI WebSocket reconnect attempts.", m.Reconnects.Load())
	counter("ivr_ari_events_total", "ARI events received.", m.Events.Load())
	counter("ivr_ari_events_ignored_total", "ARI events about no call of the engine.", m.EventsIgnored.Load())
	counter("ivr_ari_events_malformed_total", "WebSocket messages that were not ARI events.", m.EventsMalformed.Load())
	counter("ivr_ari_request_errors_total", "ARI requests without an answer or answered 5xx.", m.RequestErrors.Load())
	counter("ivr_ari_orphans_removed_total", "ExternalMedia channels and bridges of the application that no call owned, removed.", m.Reaped.Load())
	gauge("ivr_ari_channels", "Asterisk channels held (callers and ExternalMedia).", m.Channels.Load())
	gauge("ivr_ari_bridges", "Mixing bridges held.", m.Bridges.Load())
	gauge("ivr_ari_rtp_ports", "ExternalMedia RTP ports open.", m.RTPPorts.Load())
	if err != nil {
		return err
	}
	m.RequestLatency.Write(p, "ivr_ari_request_seconds", "ARI request latency, request sent to answer read.")
	return err
}
