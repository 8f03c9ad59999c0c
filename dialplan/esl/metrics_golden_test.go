package esl

import (
	"bytes"
	"testing"
	"time"

	"github.com/govline/ivr/internal/promtest"
)

// The adapter's exposition keeps the names, types, labels, help and
// values it had when it was written by hand (testdata/metrics.prom).
func TestMetricsGolden(t *testing.T) {
	m := NewMetrics()
	m.InboundConnected.Store(1)
	m.ActiveChannels.Add(3)
	for i, c := range []interface{ Add(uint64) uint64 }{&m.Reconnects, &m.Sessions, &m.ProtocolErrors, &m.RudeRejections, &m.CommandTimeouts, &m.EventsDropped, &m.LegTimeouts} {
		c.Add(uint64(20 + i))
	}
	m.CommandLatency.Observe(2 * time.Millisecond)
	m.CommandLatency.Observe(40 * time.Millisecond)
	m.CommandLatency.Observe(9 * time.Second)
	var b bytes.Buffer
	if err := m.WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	promtest.Golden(t, "testdata/metrics.prom", b.Bytes(), nil)
}
