package ari

import (
	"bytes"
	"testing"
	"time"

	"github.com/govline/ivr/internal/promtest"
)

// The adapter's exposition keeps the names, types, labels, help and
// values it had when it was written by hand (testdata/metrics.prom).
func TestMetricsGolden(t *testing.T) {
	m := newMetrics()
	m.addServer("127.0.0.1:8088")
	m.addServer("10.0.0.2:8088")
	m.setConnected("127.0.0.1:8088", true)
	for i, c := range []interface{ Add(uint64) uint64 }{&m.Reconnects, &m.Events, &m.EventsIgnored, &m.EventsMalformed, &m.RequestErrors, &m.Reaped} {
		c.Add(uint64(10 + i))
	}
	m.Channels.Add(4)
	m.Bridges.Add(2)
	m.RTPPorts.Add(2)
	m.RequestLatency.Observe(3 * time.Millisecond)
	m.RequestLatency.Observe(700 * time.Millisecond)
	var b bytes.Buffer
	if err := m.WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	promtest.Golden(t, "testdata/metrics.prom", b.Bytes(), nil)
}
