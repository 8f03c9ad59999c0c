// Package latency collects the times of operations in a benchmark and
// reports throughput, p50 and p99 as benchmark metrics, so benchmarks of
// different packages (the ticket store, the shared queue) report alike.
package latency

import (
	"slices"
	"sync"
	"testing"
	"time"
)

// Recorder collects durations; Add is safe for concurrent use.
type Recorder struct {
	mu sync.Mutex
	d  []time.Duration
}

// Add records one operation's time.
func (r *Recorder) Add(d time.Duration) { r.mu.Lock(); r.d = append(r.d, d); r.mu.Unlock() }

// Percentile returns the p-th fraction (0.5, 0.99) of the times recorded,
// 0 without any.
func (r *Recorder) Percentile(p float64) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.d) == 0 {
		return 0
	}
	slices.Sort(r.d)
	return r.d[int(p*float64(len(r.d)-1))]
}

// Report adds p50_us, p99_us and the operations per second over elapsed
// (named unit, e.g. "turns/s") to b's metrics.
func (r *Recorder) Report(b *testing.B, elapsed time.Duration, unit string) {
	r.mu.Lock()
	n := len(r.d)
	r.mu.Unlock()
	if n == 0 {
		return
	}
	b.ReportMetric(float64(r.Percentile(0.50).Microseconds()), "p50_us")
	b.ReportMetric(float64(r.Percentile(0.99).Microseconds()), "p99_us")
	b.ReportMetric(float64(n)/elapsed.Seconds(), unit)
}
