package ivr

import (
	"bytes"
	"testing"
	"time"

	"github.com/govline/ivr/internal/promtest"
)

// knownMetrics sets every engine metric to a value of its own.
func knownMetrics() *Metrics {
	m := NewMetrics()
	m.ActiveCalls.Add(3)
	for i, p := range []interface{ Add(uint64) uint64 }{
		&m.RTPPacketsIn, &m.RTPPacketsOut, &m.RTPPacketsLost, &m.RTPPacketsLate, &m.RecordingErrors, &m.PacerSkips,
		&m.SlowTeardowns, &m.MalformedSIP, &m.Panics, &m.SIPUnacked, &m.SIPNewAddress, &m.SIPDialsRefused, &m.SIPDNSRefused,
		&m.LogSuppressed, &m.SpeechTurns, &m.SpeechBargeIns, &m.SpeechFramesDropped, &m.SpeechVADFrames, &m.SynthFallbacks,
		&m.SpeechTypeAhead, &m.SpeechUnanswered, &m.TranscriptLost, &m.SpeechBusy,
	} {
		p.Add(uint64(1000 + i))
	}
	for _, r := range []EndReason{EndCallerHangup, EndCallerHangup, EndRTPTimeout, EndRejected} {
		m.CallEnded(r)
	}
	m.DTMF("rfc4733")
	m.DTMF("rfc4733")
	m.DTMF("sip-info")
	m.SIPRequest("INVITE")
	m.SIPRequest("BYE")
	m.SIPRequest("INVITE")
	m.SpeechFallback("finish")
	m.SpeechEngineFallback("start")
	m.SpeechEngineFallback("start")
	m.SIPRefused.Add("missing_header")
	m.SIPRefused.Add("max_calls")
	m.SIPRegisterFailures.Add("bad_credentials")
	m.SIPLockouts.Add("agent")
	m.SIPLockouts.Add("address")
	for _, d := range []time.Duration{100 * time.Microsecond, 300 * time.Microsecond, 3 * time.Millisecond, 80 * time.Millisecond} {
		m.PacingDeviation.Observe(d)
	}
	m.CallSetup.Observe(1500 * time.Microsecond)
	m.CallSetup.Observe(2 * time.Second)
	m.BargeInLatency.Observe(120 * time.Millisecond)
	m.BargeInLatency.Observe(450 * time.Millisecond)
	m.RecognizerNs.Add(uint64(1500 * time.Millisecond))
	m.RecognizerFrames.Add(75)
	return m
}

// runtimeFamilies are the Go runtime figures: their values change from
// run to run.
var runtimeFamilies = []string{"ivr_go_heap_objects_bytes", "ivr_go_memory_total_bytes", "ivr_go_goroutines", "ivr_go_gc_cycles_total"}

// The exposition keeps the names, types, labels, help and values it had
// when it was written by hand (testdata/metrics.prom was written then).
func TestMetricsGolden(t *testing.T) {
	var b bytes.Buffer
	if err := knownMetrics().WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	promtest.Golden(t, "testdata/metrics.prom", b.Bytes(), runtimeFamilies, "go_", "process_")
}
