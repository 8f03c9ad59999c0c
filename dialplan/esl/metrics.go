package esl

import (
	"io"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/govline/ivr/ivr"
)

// Metrics of the FreeSWITCH adapter, served with the engine's at /metrics
// (WritePrometheus). All fields are safe for concurrent use.
type Metrics struct {
	InboundConnected atomic.Int64  // 1 while the inbound event connection is up
	Reconnects       atomic.Uint64 // inbound connections re-established after a loss
	ActiveChannels   atomic.Int64  // outbound sessions (FreeSWITCH channels) in progress
	Sessions         atomic.Uint64 // outbound sessions accepted
	ProtocolErrors   atomic.Uint64 // frames or events that are not the protocol
	RudeRejections   atomic.Uint64 // text/rude-rejection received
	CommandTimeouts  atomic.Uint64
	EventsDropped    atomic.Uint64
	LegTimeouts      atomic.Uint64  // media legs that never arrived
	CommandLatency   *ivr.Histogram // command sent to its reply
	// Engine, when set, counts the panics recovered on the adapter's
	// goroutines (ivr_panics_total); New sets it to the engine's.
	Engine *ivr.Metrics
}

// NewMetrics returns zeroed metrics.
func NewMetrics() *Metrics {
	return &Metrics{CommandLatency: ivr.NewHistogram(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)}
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
	gauge, counter := c.Gauge, c.Counter
	gauge("ivr_esl_inbound_connected", "1 while the inbound event socket connection to FreeSWITCH is up.", m.InboundConnected.Load())
	counter("ivr_esl_reconnects_total", "Inbound event socket connections re-established after a loss.", m.Reconnects.Load())
	gauge("ivr_esl_active_channels", "FreeSWITCH channels under outbound socket control.", m.ActiveChannels.Load())
	counter("ivr_esl_sessions_total", "Outbound socket sessions accepted.", m.Sessions.Load())
	counter("ivr_esl_protocol_errors_total", "Frames or events from FreeSWITCH that are not the event socket protocol.", m.ProtocolErrors.Load())
	counter("ivr_esl_rude_rejections_total", "Connections FreeSWITCH refused by ACL (text/rude-rejection).", m.RudeRejections.Load())
	counter("ivr_esl_command_timeouts_total", "Commands FreeSWITCH did not answer in time.", m.CommandTimeouts.Load())
	counter("ivr_esl_events_dropped_total", "Events dropped because a session fell behind.", m.EventsDropped.Load())
	counter("ivr_esl_leg_timeouts_total", "Media legs FreeSWITCH did not bridge to the engine in time.", m.LegTimeouts.Load())
	m.CommandLatency.Collect(c, "ivr_esl_command_seconds", "Event socket command sent to its reply.")
}
