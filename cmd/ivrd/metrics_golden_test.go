package main

import (
	"testing"

	"github.com/govline/ivr/internal/promtest"
)

// A fresh daemon's /metrics keeps the families (names, types, help,
// labels) it had when the exposition was written by hand
// (testdata/metrics.prom was scraped then); the values differ from run to
// run, so only the families are compared. The process and Go collectors'
// families came with client_golang and are checked apart. Labelled
// counters that had no sample (only HELP and TYPE) now start at 0.
func TestMetricsFamiliesGolden(t *testing.T) {
	d := startDaemon(t)
	code, body := d.get(t, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	fams, err := promtest.Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for n := range fams {
		all = append(all, n)
	}
	promtest.Golden(t, "testdata/metrics.prom", []byte(body), all, "go_", "process_", "promhttp_")
	// The standard collectors of client_golang, new with it.
	for _, name := range []string{"process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds", "go_goroutines", "go_memstats_heap_alloc_bytes", "go_gc_duration_seconds"} {
		if fams[name] == nil {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}
