package ivr

import (
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
)

// Metrics are the engine-wide counters served at /metrics in the Prometheus
// text format. All fields are safe for concurrent use; the hot path (RTP
// packets) touches only atomics.
type Metrics struct {
	ActiveCalls     atomic.Int64
	RTPPacketsIn    atomic.Uint64
	RTPPacketsOut   atomic.Uint64
	RTPPacketsLost  atomic.Uint64
	RTPPacketsLate  atomic.Uint64
	RecordingErrors atomic.Uint64
	PacerSkips      atomic.Uint64
	SlowTeardowns   atomic.Uint64
	MalformedSIP    atomic.Uint64

	mu        sync.Mutex
	outcomes  map[EndReason]uint64
	dtmf      map[string]uint64 // by source
	sipMethod map[string]uint64 // requests received by method
}

// NewMetrics returns zeroed metrics.
func NewMetrics() *Metrics {
	return &Metrics{
		outcomes:  map[EndReason]uint64{},
		dtmf:      map[string]uint64{},
		sipMethod: map[string]uint64{},
	}
}

// CallEnded counts a finished call by outcome.
func (m *Metrics) CallEnded(r EndReason) {
	m.mu.Lock()
	m.outcomes[r]++
	m.mu.Unlock()
}

// DTMF counts one received digit by source.
func (m *Metrics) DTMF(source string) {
	m.mu.Lock()
	m.dtmf[source]++
	m.mu.Unlock()
}

// SIPRequest counts one received SIP request by method.
func (m *Metrics) SIPRequest(method string) {
	m.mu.Lock()
	m.sipMethod[method]++
	m.mu.Unlock()
}

// Outcome returns the number of calls that ended for reason r.
func (m *Metrics) Outcome(r EndReason) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.outcomes[r]
}

// WritePrometheus writes every metric in the Prometheus text exposition
// format (version 0.0.4).
func (m *Metrics) WritePrometheus(w io.Writer) error {
	var err error
	p := func(format string, a ...any) {
		if err == nil {
			_, err = fmt.Fprintf(w, format, a...)
		}
	}
	gauge := func(name, help string, v int64) {
		p("# HELP %s %s\n# TYPE %s gauge\n%s %d\n", name, help, name, name, v)
	}
	counter := func(name, help string, v uint64) {
		p("# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	labelled := func(name, help, label string, vals map[string]uint64) {
		p("# HELP %s %s\n# TYPE %s counter\n", name, help, name)
		keys := make([]string, 0, len(vals))
		for k := range vals {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p("%s{%s=%q} %d\n", name, label, k, vals[k])
		}
	}

	gauge("ivr_active_calls", "Calls currently in progress.", m.ActiveCalls.Load())
	m.mu.Lock()
	outcomes := make(map[string]uint64, len(m.outcomes))
	for k, v := range m.outcomes {
		outcomes[string(k)] = v
	}
	dtmf := make(map[string]uint64, len(m.dtmf))
	for k, v := range m.dtmf {
		dtmf[k] = v
	}
	methods := make(map[string]uint64, len(m.sipMethod))
	for k, v := range m.sipMethod {
		methods[k] = v
	}
	m.mu.Unlock()
	labelled("ivr_calls_total", "Calls ended, by outcome.", "outcome", outcomes)
	counter("ivr_rtp_packets_in_total", "RTP packets received from callers.", m.RTPPacketsIn.Load())
	counter("ivr_rtp_packets_out_total", "RTP packets sent to callers.", m.RTPPacketsOut.Load())
	counter("ivr_rtp_packets_lost_total", "Inbound RTP packets never received (sequence gaps).", m.RTPPacketsLost.Load())
	counter("ivr_rtp_packets_late_total", "Inbound RTP packets that arrived after their playout slot.", m.RTPPacketsLate.Load())
	labelled("ivr_dtmf_digits_total", "DTMF digits received, by source.", "source", dtmf)
	labelled("ivr_sip_requests_total", "SIP requests received, by method.", "method", methods)
	counter("ivr_sip_malformed_total", "SIP datagrams or requests rejected as malformed.", m.MalformedSIP.Load())
	counter("ivr_recording_errors_total", "Recordings stopped by a write error (the call went on).", m.RecordingErrors.Load())
	counter("ivr_pacer_skips_total", "Outbound RTP schedule resets after the sender fell behind.", m.PacerSkips.Load())
	counter("ivr_slow_teardowns_total", "Call teardowns that took longer than their limit.", m.SlowTeardowns.Load())
	return err
}
