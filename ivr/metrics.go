package ivr

import (
	"io"
	"maps"
	"math"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
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
	Panics          atomic.Uint64

	// The SIP endpoint under attack (docs/operations.md, "Limits").
	SIPRefused          *Counters     // requests refused before the SIP library's dialog code, by reason
	SIPUnacked          atomic.Uint64 // answered INVITEs whose ACK never came (cleaned up)
	SIPRegisterFailures *Counters     // agent REGISTERs refused, by reason
	SIPLockouts         *Counters     // agents and addresses locked out, by kind
	SIPNewAddress       atomic.Uint64 // agents registered from a new address while registered elsewhere
	SIPDialsRefused     atomic.Uint64 // TCP connections the endpoint refused to open (not to a known peer)
	SIPDNSRefused       atomic.Uint64 // name lookups the SIP stack attempted (a Via's or a Contact's host), all refused
	LogSuppressed       atomic.Uint64 // log lines dropped by the rate limit on refusal and library lines

	// Speech turn-taking (see SpeechConfig).
	SpeechTurns         atomic.Uint64 // caller turns recognized
	SpeechBargeIns      atomic.Uint64 // prompts stopped by caller speech
	SpeechFramesDropped atomic.Uint64 // caller frames the turn-taking stage could not take in time
	SpeechVADFrames     atomic.Uint64 // caller frames the VAD ran on (quiet frames skip it)
	SynthFallbacks      atomic.Uint64 // prompts the fallback synthesizer spoke because the first one failed
	SpeechTypeAhead     atomic.Uint64 // prompts skipped because the caller had already answered by voice
	SpeechUnanswered    atomic.Uint64 // utterances no question took, transcribed on their own
	TranscriptLost      atomic.Uint64 // transcript turns that could not be written
	SpeechBusy          atomic.Uint64 // calls that answered with keys because SpeechConfig.MaxCalls calls answered by voice, or the turn-taking had just fallen behind
	SpeechDroppedAt     atomic.Int64  // when a call's turn-taking last dropped a frame (Unix ns; 0: never)
	RecognizerNs        atomic.Uint64 // wall time in the recognizer's Write and Finish
	RecognizerFrames    atomic.Uint64 // caller frames written to a recognizer

	// PacingDeviation is |interval between two outbound RTP packets of a
	// call - 20 ms|; CallSetup is INVITE received to the ACK of our 200 OK (without
	// any configured ring time).
	PacingDeviation *Histogram
	CallSetup       *Histogram
	// BargeInLatency: the first loud frame of caller speech during a
	// barge-in prompt reaching the turn-taking to that prompt going silent.
	BargeInLatency *Histogram

	mu        sync.Mutex
	outcomes  map[EndReason]uint64
	dtmf      map[string]uint64 // by source
	sipMethod map[string]uint64 // requests received by method
	fallback  map[string]uint64 // speech fallbacks to keys, by step
	// moves from the first recognizer to the fallback one, by step
	engineFallback map[string]uint64
	outbound       map[string]uint64 // outbound call attempts by result (dialplan/sip OutboundReason)
	callbacks      map[string]uint64 // queued callbacks by event
	surveys        map[string]uint64 // survey calls by result
}

// NewMetrics returns zeroed metrics.
func NewMetrics() *Metrics {
	return &Metrics{
		PacingDeviation: NewHistogram(0.00025, 0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.02, 0.05),
		CallSetup:       NewHistogram(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
		BargeInLatency:  NewHistogram(0.05, 0.1, 0.12, 0.14, 0.16, 0.18, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1, 2),
		outcomes:        map[EndReason]uint64{},
		dtmf:            map[string]uint64{},
		sipMethod:       map[string]uint64{},
		fallback:        map[string]uint64{},
		engineFallback:  map[string]uint64{},
		outbound:        map[string]uint64{},
		callbacks:       map[string]uint64{},
		surveys:         map[string]uint64{},

		SIPRefused:          &Counters{},
		SIPRegisterFailures: &Counters{},
		SIPLockouts:         &Counters{},
	}
}

// Counters is a counter with one label: safe for concurrent use, the
// zero value is ready.
type Counters struct {
	mu sync.Mutex
	m  map[string]uint64
}

// Add counts one event with label value v.
func (c *Counters) Add(v string) {
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]uint64{}
	}
	c.m[v]++
	c.mu.Unlock()
}

// Get returns the count of label value v.
func (c *Counters) Get(v string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[v]
}

// Total returns the count over every label value.
func (c *Counters) Total() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n uint64
	for _, v := range c.m {
		n += v
	}
	return n
}

func (c *Counters) snapshot() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]uint64, len(c.m))
	for k, v := range c.m {
		out[k] = v
	}
	return out
}

// CallEnded counts a finished call by outcome.
func (m *Metrics) CallEnded(r EndReason) {
	m.mu.Lock()
	m.outcomes[r]++
	m.mu.Unlock()
}

// Outbound counts one outbound call attempt by its result ("answered",
// "busy", "no_answer", ...: dialplan/sip.OutboundReason).
func (m *Metrics) Outbound(result string) {
	m.mu.Lock()
	m.outbound[result]++
	m.mu.Unlock()
}

// Callback counts one event of the queued callbacks: "offered" (the
// queue's announcement offered it), "accepted" (a caller pressed 1 and
// keeps their place), "completed" (the citizen answered the callback),
// "failed" (its attempts ran out).
func (m *Metrics) Callback(event string) {
	m.mu.Lock()
	m.callbacks[event]++
	m.mu.Unlock()
}

// Survey counts one satisfaction survey call by its result: "rated",
// "no_rating", or why it was not answered ("busy", "no_answer", ...).
func (m *Metrics) Survey(result string) {
	m.mu.Lock()
	m.surveys[result]++
	m.mu.Unlock()
}

// Surveys is the number of survey calls with result.
func (m *Metrics) Surveys(result string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.surveys[result]
}

// Callbacks is the number of callback events of a kind.
func (m *Metrics) Callbacks(event string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.callbacks[event]
}

// OutboundAttempts is the number of outbound attempts with result.
func (m *Metrics) OutboundAttempts(result string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.outbound[result]
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

// SpeechFallback counts one call whose recognizer failed at step ("start",
// "write", "finish", "vad") and that went on with keys only.
func (m *Metrics) SpeechFallback(step string) {
	m.mu.Lock()
	m.fallback[step]++
	m.mu.Unlock()
}

// SpeechEngineFallback counts one call whose first recognizer failed at
// step and that went on with the fallback recognizer.
func (m *Metrics) SpeechEngineFallback(step string) {
	m.mu.Lock()
	m.engineFallback[step]++
	m.mu.Unlock()
}

// SpeechEngineFallbacks returns the moves to the fallback recognizer
// counted at step.
func (m *Metrics) SpeechEngineFallbacks(step string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.engineFallback[step]
}

// SpeechFallbacks returns the fallbacks to keys counted at step.
func (m *Metrics) SpeechFallbacks(step string) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fallback[step]
}

// Outcome returns the number of calls that ended for reason r.
func (m *Metrics) Outcome(r EndReason) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.outcomes[r]
}

// Label values the engine's labelled counters start with at 0, so that a
// rate or an alert works from the first scrape (the other values appear
// with their first event): every end reason, every DTMF source, and the
// documented reasons of refusals, REGISTER failures, lockouts and speech
// fallbacks (docs/operations.md).
var (
	endReasons          = []EndReason{EndCallerHangup, EndEngineHangup, EndCancelled, EndRTPTimeout, EndNoCommonCodec, EndRejected, EndShutdown, EndError, EndEngineRestart, EndTransferred}
	dtmfSources         = []string{"rfc4733", "sip-info", "inband"}
	sipRefusedReasons   = []string{"missing_header", "duplicate_header", "cseq_method", "version", "uri_scheme", "uri_headers", "require", "content_type", "accept", "unknown_dialog", "max_calls", "max_calls_per_source", "max_pending", "max_pending_per_source"}
	registerFailReasons = []string{"bad_credentials", "unknown_agent", "backoff", "locked", "bad_request"}
	lockoutKinds        = []string{"agent", "address"}
	speechSteps         = []string{"start", "write", "finish", "vad"}
	surveyResults       = []string{"rated", "no_rating", "busy", "no_answer", "machine"}
	callbackEvents      = []string{"offered", "accepted", "completed", "failed"}
	outboundResults     = []string{"answered", "busy", "no_answer", "auth_refused", "rejected", "unreachable", "outside_hours", "no_trunk", "cancelled", "bad_number", "machine"}
)

var _ prometheus.Collector = (*Metrics)(nil)

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(m, ch) }

// Collect implements prometheus.Collector: every engine metric, read from
// its atomic at scrape time (the hot path never touches client_golang).
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	c := NewConstMetrics(ch)
	c.Gauge("ivr_active_calls", "Calls currently in progress.", m.ActiveCalls.Load())
	m.mu.Lock()
	outcomes := make(map[string]uint64, len(m.outcomes))
	for k, v := range m.outcomes {
		outcomes[string(k)] = v
	}
	dtmf := maps.Clone(m.dtmf)
	methods := maps.Clone(m.sipMethod)
	fallback := maps.Clone(m.fallback)
	engineFallback := maps.Clone(m.engineFallback)
	outbound := maps.Clone(m.outbound)
	callbacks := maps.Clone(m.callbacks)
	surveys := maps.Clone(m.surveys)
	m.mu.Unlock()
	for _, r := range endReasons {
		outcomes[string(r)] += 0
	}
	counter := c.Counter
	labelled := func(name, help, label string, vals map[string]uint64, known []string) {
		for _, k := range known {
			vals[k] += 0
		}
		c.Labelled(prometheus.CounterValue, name, help, label, vals)
	}
	labelled("ivr_calls_total", "Calls ended, by outcome.", "outcome", outcomes, nil)
	counter("ivr_rtp_packets_in_total", "RTP packets received from callers.", m.RTPPacketsIn.Load())
	counter("ivr_rtp_packets_out_total", "RTP packets sent to callers.", m.RTPPacketsOut.Load())
	counter("ivr_rtp_packets_lost_total", "Inbound RTP packets never received (sequence gaps).", m.RTPPacketsLost.Load())
	counter("ivr_rtp_packets_late_total", "Inbound RTP packets that arrived after their playout slot.", m.RTPPacketsLate.Load())
	labelled("ivr_dtmf_digits_total", "DTMF digits received, by source.", "source", dtmf, dtmfSources)
	labelled("ivr_sip_requests_total", "SIP requests received, by method.", "method", methods, nil)
	counter("ivr_sip_malformed_total", "SIP datagrams or requests rejected as malformed.", m.MalformedSIP.Load())
	labelled("ivr_sip_refused_total", "SIP requests refused before the dialog code (bad requests, limits), by reason.", "reason", m.SIPRefused.snapshot(), sipRefusedReasons)
	counter("ivr_sip_unacked_invites_total", "Answered INVITEs whose ACK never came; the call was cleaned up.", m.SIPUnacked.Load())
	labelled("ivr_sip_register_failures_total", "Agent REGISTERs refused, by reason.", "reason", m.SIPRegisterFailures.snapshot(), registerFailReasons)
	labelled("ivr_sip_register_lockouts_total", "Agents and source addresses locked out after failed REGISTERs, by kind.", "kind", m.SIPLockouts.snapshot(), lockoutKinds)
	counter("ivr_sip_register_new_address_total", "Agents registered from a new address while registered from another.", m.SIPNewAddress.Load())
	counter("ivr_sip_tcp_dials_refused_total", "TCP connections the SIP endpoint refused to open to an address that is no known peer.", m.SIPDialsRefused.Load())
	counter("ivr_sip_dns_refused_total", "Name lookups the SIP stack attempted for a host a request named (a Via, a Contact); the endpoint does none.", m.SIPDNSRefused.Load())
	counter("ivr_log_lines_suppressed_total", "Log lines dropped by the rate limit on refused requests and SIP library messages.", m.LogSuppressed.Load())
	counter("ivr_recording_errors_total", "Recordings stopped by a write error (the call went on).", m.RecordingErrors.Load())
	counter("ivr_pacer_skips_total", "Outbound RTP schedule resets after the sender fell behind.", m.PacerSkips.Load())
	counter("ivr_panics_total", "Panics recovered while handling a request or a call (each one a bug to report).", m.Panics.Load())
	counter("ivr_slow_teardowns_total", "Call teardowns that took longer than their limit.", m.SlowTeardowns.Load())
	counter("ivr_speech_turns_total", "Caller turns answered by voice (recognizer final results).", m.SpeechTurns.Load())
	counter("ivr_speech_bargeins_total", "Prompts stopped because the caller spoke.", m.SpeechBargeIns.Load())
	counter("ivr_speech_frames_dropped_total", "Caller frames the turn-taking stage dropped because it fell behind.", m.SpeechFramesDropped.Load())
	counter("ivr_speech_vad_frames_total", "Caller frames the voice activity detector ran on (quiet frames skip it).", m.SpeechVADFrames.Load())
	counter("ivr_speech_typeahead_total", "Prompts skipped because the caller had already answered by voice (speech type-ahead).", m.SpeechTypeAhead.Load())
	counter("ivr_speech_unanswered_total", "Caller utterances no question took (the call ended, a key answered), transcribed on their own.", m.SpeechUnanswered.Load())
	c.ch <- prometheus.MustNewConstMetric(prometheus.NewDesc("ivr_speech_recognizer_seconds_total", "Wall time spent in the recognizer's streams (writing caller frames and finishing utterances).", nil, nil),
		prometheus.CounterValue, float64(m.RecognizerNs.Load())/1e9)
	counter("ivr_speech_recognizer_frames_total", "Caller frames written to a recognizer stream.", m.RecognizerFrames.Load())
	counter("ivr_speech_busy_total", "Calls that answered with keys because speech.max_calls calls already answered by voice, or a call's turn-taking had just dropped caller audio.", m.SpeechBusy.Load())
	counter("ivr_transcript_lost_total", "Transcript turns that could not be written (each is also logged as an error).", m.TranscriptLost.Load())
	counter("ivr_speech_synth_fallbacks_total", "Prompts the fallback synthesizer spoke because the first one failed.", m.SynthFallbacks.Load())
	labelled("ivr_callbacks_total", "Queued callbacks: offered (announced), accepted (1 pressed, or asked by voice and confirmed), completed (answered), failed (attempts ran out).", "event", callbacks, callbackEvents)
	labelled("ivr_survey_calls_total", "Satisfaction survey calls after a resolved ticket, by result: rated, no_rating, or why not answered.", "result", surveys, surveyResults)
	labelled("ivr_outbound_calls_total", "Outbound call attempts through the SIP trunk, by result.", "result", outbound, outboundResults)
	labelled("ivr_speech_engine_fallbacks_total", "Calls whose first recognizer failed and that went on with the fallback recognizer, by the step that failed.", "step", engineFallback, speechSteps)
	labelled("ivr_speech_fallbacks_total", "Calls that fell back from speech to keys, by the step that failed.", "step", fallback, speechSteps)
	collectRuntime(c)
	m.PacingDeviation.Collect(c, "ivr_rtp_send_interval_deviation_seconds", "Deviation of the interval between two outbound RTP packets of a call from 20 ms.")
	m.CallSetup.Collect(c, "ivr_call_setup_seconds", "INVITE received to the ACK of the 200 OK, not counting the configured ring time.")
	m.BargeInLatency.Collect(c, "ivr_speech_bargein_seconds", "Caller speech during a prompt that allows barge-in: its first loud frame reaching the turn-taking to the prompt going silent.")
}

// WritePrometheus writes every metric in the Prometheus text exposition
// format (what GET /metrics serves, without the process and Go
// collectors).
func (m *Metrics) WritePrometheus(w io.Writer) error { return WriteText(w, m) }

// WriteText writes what the collectors collect in the Prometheus text
// exposition format (version 0.0.4), through a registry of their own.
func WriteText(w io.Writer, cs ...prometheus.Collector) error {
	reg := prometheus.NewPedanticRegistry()
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	fams, err := reg.Gather()
	if err != nil {
		return err
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range fams {
		if err := enc.Encode(f); err != nil {
			return err
		}
	}
	return nil
}

// ConstMetrics sends the values of a Collect call as constant metrics,
// for the engine and the adapters alike: counters and gauges read from
// atomics, labelled counters from maps, histograms (Histogram.Collect).
type ConstMetrics struct{ ch chan<- prometheus.Metric }

// NewConstMetrics returns a ConstMetrics sending to ch (Collect's).
func NewConstMetrics(ch chan<- prometheus.Metric) ConstMetrics { return ConstMetrics{ch: ch} }

// Counter sends one counter.
func (c ConstMetrics) Counter(name, help string, v uint64) {
	c.ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(name, help, nil, nil), prometheus.CounterValue, float64(v))
}

// Gauge sends one gauge.
func (c ConstMetrics) Gauge(name, help string, v int64) {
	c.ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(name, help, nil, nil), prometheus.GaugeValue, float64(v))
}

// Labelled sends one sample per value of label (a counter or a gauge).
func (c ConstMetrics) Labelled(typ prometheus.ValueType, name, help, label string, vals map[string]uint64) {
	d := prometheus.NewDesc(name, help, []string{label}, nil)
	for k, v := range vals {
		c.ch <- prometheus.MustNewConstMetric(d, typ, float64(v), k)
	}
}

// Histogram counts observations into fixed buckets (upper bounds in
// seconds, ascending). Observe is lock-free and allocation-free.
type Histogram struct {
	bounds []float64
	counts []atomic.Uint64 // one per bound, plus +Inf
	sumNs  atomic.Int64
	total  atomic.Uint64
}

// NewHistogram returns a histogram with the given bucket bounds in seconds.
func NewHistogram(bounds ...float64) *Histogram {
	return &Histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

// Observe records one duration.
func (h *Histogram) Observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(h.bounds) && s > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNs.Add(int64(d))
	h.total.Add(1)
}

// Quantile estimates the q-quantile (0..1) as the upper bound of the
// bucket that holds it; +Inf when it falls past the last bound.
func (h *Histogram) Quantile(q float64) float64 {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	want := uint64(math.Ceil(q * float64(n)))
	var acc uint64
	for i := range h.counts {
		acc += h.counts[i].Load()
		if acc >= want {
			if i < len(h.bounds) {
				return h.bounds[i]
			}
			return math.Inf(1)
		}
	}
	return math.Inf(1)
}

// Count is the number of observations.
func (h *Histogram) Count() uint64 { return h.total.Load() }

// Collect sends the histogram as name, with its cumulative buckets, count
// and sum (in seconds). Adapters use it for their own histograms.
func (h *Histogram) Collect(c ConstMetrics, name, help string) {
	buckets := make(map[float64]uint64, len(h.bounds))
	var acc uint64
	for i, b := range h.bounds {
		acc += h.counts[i].Load()
		buckets[b] = acc
	}
	acc += h.counts[len(h.bounds)].Load()
	c.ch <- prometheus.MustNewConstHistogram(prometheus.NewDesc(name, help, nil, nil), acc, float64(h.sumNs.Load())/1e9, buckets)
}

// runtimeSamples are the Go runtime figures exported with the engine's.
var runtimeSamples = []struct{ metric, name, help, typ string }{
	{"/memory/classes/heap/objects:bytes", "ivr_go_heap_objects_bytes", "Bytes of live and not yet swept heap objects.", "gauge"},
	{"/memory/classes/total:bytes", "ivr_go_memory_total_bytes", "All memory mapped by the Go runtime.", "gauge"},
	{"/sched/goroutines:goroutines", "ivr_go_goroutines", "Goroutines alive.", "gauge"},
	{"/gc/cycles/total:gc-cycles", "ivr_go_gc_cycles_total", "Completed GC cycles.", "counter"},
}

func collectRuntime(c ConstMetrics) {
	samples := make([]metrics.Sample, len(runtimeSamples))
	for i, r := range runtimeSamples {
		samples[i].Name = r.metric
	}
	metrics.Read(samples)
	for i, r := range runtimeSamples {
		if samples[i].Value.Kind() != metrics.KindUint64 {
			continue
		}
		v := samples[i].Value.Uint64()
		if r.typ == "counter" {
			c.Counter(r.name, r.help, v)
		} else {
			c.Gauge(r.name, r.help, int64(v))
		}
	}
}
