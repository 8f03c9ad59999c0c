package tickets

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/govline/ivr/internal/latency"
	"github.com/govline/ivr/internal/pgtest"
	"github.com/govline/ivr/store"
)

// benchStore opens a store for a benchmark: SQLite with the given
// synchronous setting, or ("postgres") a new database on the test
// binary's PostgreSQL, with fsync on for the benchmark (a commit is on
// disk when it returns, as in production).
func benchStore(b *testing.B, mode string) *Store {
	b.Helper()
	if mode != "postgres" {
		s, err := openSync(filepath.Join(b.TempDir(), DBFile), mode)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	}
	srv := pgtest.Start(b)
	if err := srv.SetFsync(true); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.SetFsync(false) })
	db, err := store.Open(context.Background(), srv.NewDatabase(b), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return New(db)
}

// benchModes are the stores the write benchmarks compare.
var benchModes = []string{"NORMAL", "FULL", "postgres"}

func modeName(mode string) string {
	if mode == "postgres" {
		return "postgres"
	}
	return "synchronous=" + mode
}

// BenchmarkOpenTicket: one ticket (created event + row + roll-up) per
// transaction, on SQLite (NORMAL, FULL) and PostgreSQL.
func BenchmarkOpenTicket(b *testing.B) {
	for _, mode := range benchModes {
		b.Run(modeName(mode), func(b *testing.B) {
			s := benchStore(b, mode)
			ctx := context.Background()
			var lat latency.Recorder
			nt := NewTicket{Actor: "ivr", Caller: "+40721123456", Service: ServicePassport, CallID: "c",
				Description: "Pașaportul meu expiră luna viitoare și am nevoie de o programare."}
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				t0 := time.Now()
				if _, err := s.OpenTicket(ctx, nt); err != nil {
					b.Fatal(err)
				}
				lat.Add(time.Since(t0))
			}
			lat.Report(b, time.Since(start), "tickets/s")
		})
	}
}

// BenchmarkAppendTurn: one durable transcript turn per call, acknowledged
// once committed, from one call and from 32 and 100 calls at once (the
// group commit shares a transaction among the calls waiting).
func BenchmarkAppendTurn(b *testing.B) {
	turn := Turn{Speaker: SpeakerCaller, Text: "buletinul meu a expirat și nu știu ce acte îmi trebuie", Mode: ModeSpeech, Confidence: 0.87}
	for _, mode := range benchModes {
		b.Run(modeName(mode), func(b *testing.B) {
			s := benchStore(b, mode)
			ctx := context.Background()
			var lat latency.Recorder
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				t0 := time.Now()
				if err := s.AppendTurn(ctx, "call-1", turn); err != nil {
					b.Fatal(err)
				}
				lat.Add(time.Since(t0))
			}
			lat.Report(b, time.Since(start), "turns/s")
		})
		for _, calls := range []int{32, 100} {
			b.Run(fmt.Sprintf("%s/calls=%d", modeName(mode), calls), func(b *testing.B) {
				s := benchStore(b, mode)
				ctx := context.Background()
				var lat latency.Recorder
				b.SetParallelism(calls / runtime.GOMAXPROCS(0))
				var next sync.Mutex
				id := 0
				b.ResetTimer()
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					next.Lock()
					call := fmt.Sprint("call-", id)
					id++
					next.Unlock()
					for pb.Next() {
						t0 := time.Now()
						if err := s.AppendTurn(ctx, call, turn); err != nil {
							b.Error(err)
							return
						}
						lat.Add(time.Since(t0))
					}
				})
				lat.Report(b, time.Since(start), "turns/s")
			})
		}
	}
}

// BenchmarkIndicators1M: the indicators of a year holding 1,000,000
// tickets and 1,000,000 calls (half of them queued).
func BenchmarkIndicators1M(b *testing.B) {
	const n = 1_000_000
	s := benchStore(b, "NORMAL")
	ctx := context.Background()
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	year := 365 * 24 * time.Hour
	t0 := time.Now()
	if err := s.FillSynthetic(ctx, n, from, year); err != nil {
		b.Fatal(err)
	}
	b.Logf("generated %d tickets and %d calls in %s", n, n, time.Since(t0).Round(time.Millisecond))
	period := func(name string, from, to time.Time, rollup bool, check func(Report)) {
		b.Run(name, func(b *testing.B) {
			var r Report
			var err error
			cpu0 := cpuTime()
			for b.Loop() {
				if r, err = s.indicators(ctx, "", from, to, rollup); err != nil {
					b.Fatal(err)
				}
			}
			// CPU time of the process per query: on a shared machine the
			// wall time (ns/op) includes waiting for a core.
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
			check(r)
		})
	}
	whole := func(r Report) {
		if r.Total.Requests != n || r.Total.Resolved != n*8/10 || r.Total.QueuedCalls != n/2 {
			b.Fatalf("indicators counted %d requests, %d resolved, %d queued calls", r.Total.Requests, r.Total.Resolved, r.Total.QueuedCalls)
		}
	}
	month := func(r Report) {
		if r.Total.Requests < n/13 || r.Total.Requests > n/11 {
			b.Fatalf("a month holds %d requests", r.Total.Requests)
		}
	}
	// Whole hours come from the roll-up; a period starting and ending inside
	// an hour also scans those two partial hours; "scan" counts every row.
	period("year", from, from.Add(year), true, whole)
	period("year-unaligned", from.Add(-17*time.Minute), from.Add(year+23*time.Minute), true, whole)
	period("year-scan", from, from.Add(year), false, whole)
	period("month-unaligned", from.AddDate(0, 5, 0).Add(17*time.Minute), from.AddDate(0, 6, 0).Add(17*time.Minute), true, month)
	period("month-scan", from.AddDate(0, 5, 0).Add(17*time.Minute), from.AddDate(0, 6, 0).Add(17*time.Minute), false, month)
}

// cpuTime returns the user and system CPU time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkChain: the cost of the tamper-evident chain (chain.go) on
// history events (a note per transaction, each writer on a ticket of its
// own): without and with the chain, from one writer and from 16 at once,
// the 16 on one provider's chain (their appends take turns) or spread over
// four providers' chains. SQLite (NORMAL) and PostgreSQL (fsync on).
func BenchmarkChain(b *testing.B) {
	for _, mode := range []string{"NORMAL", "postgres"} {
		for _, writers := range []int{1, 16} {
			for _, providers := range []int{1, 4} {
				if writers == 1 && providers > 1 {
					continue
				}
				for _, chain := range []bool{false, true} {
					name := fmt.Sprintf("%s/writers=%d/providers=%d/chain=%v", modeName(mode), writers, providers, chain)
					b.Run(name, func(b *testing.B) { benchChain(b, mode, writers, providers, chain) })
				}
			}
		}
	}
}

func benchChain(b *testing.B, mode string, writers, providers int, chain bool) {
	s := benchStore(b, mode)
	ctx := context.Background()
	if !chain {
		ctx = withoutChain(ctx)
	}
	numbers := make([]string, writers)
	for i := range writers {
		p := DefaultProvider
		if i%providers > 0 {
			p = fmt.Sprintf("p%d", i%providers)
			if err := s.AddProvider(ctx, "bench", p, p); err != nil && !errors.Is(err, ErrExists) {
				b.Fatal(err)
			}
		}
		t, err := s.OpenTicket(ctx, NewTicket{Actor: "ivr", Caller: "+40721123456", Service: ServicePassport, Provider: p, Description: "d"})
		if err != nil {
			b.Fatal(err)
		}
		numbers[i] = t.Number
	}
	var lat latency.Recorder
	var mu sync.Mutex
	next := 0
	b.SetParallelism(max(1, writers/runtime.GOMAXPROCS(0)))
	if writers == 1 {
		b.SetParallelism(1)
	}
	b.ResetTimer()
	start := time.Now()
	run := func(number string, more func() bool) {
		for more() {
			t0 := time.Now()
			if err := s.AddNote(ctx, number, "ana", "the citizen called back about the passport"); err != nil {
				b.Error(err)
				return
			}
			lat.Add(time.Since(t0))
		}
	}
	if writers == 1 {
		run(numbers[0], b.Loop)
	} else {
		b.RunParallel(func(pb *testing.PB) {
			mu.Lock()
			number := numbers[next%writers]
			next++
			mu.Unlock()
			run(number, pb.Next)
		})
	}
	lat.Report(b, time.Since(start), "events/s")
	if chain {
		v, err := s.VerifyChains(context.Background(), VerifyOptions{})
		if err != nil || !v.OK() {
			b.Fatalf("verify after the benchmark: %v %+v", err, v.Findings)
		}
	}
}

// BenchmarkVerifyChains: ivrctl audit verify over 100,000 history events
// and 10,000 audit rows on two providers' chains and the line's.
func BenchmarkVerifyChains(b *testing.B) {
	const events, audits = 100_000, 10_000
	for _, mode := range []string{"NORMAL", "postgres"} {
		b.Run(modeName(mode), func(b *testing.B) {
			s := benchStore(b, mode)
			ctx := context.Background()
			if err := s.AddProvider(ctx, "bench", "p1", "p1"); err != nil {
				b.Fatal(err)
			}
			var numbers []string
			for _, p := range []string{DefaultProvider, "p1"} {
				t, err := s.OpenTicket(ctx, NewTicket{Actor: "ivr", Caller: "+40721123456", Service: ServicePassport, Provider: p, Description: "d"})
				if err != nil {
					b.Fatal(err)
				}
				numbers = append(numbers, t.Number)
			}
			t0 := time.Now()
			for i := 0; i < events; i += 10_000 {
				err := s.inTx(ctx, "fill", func(tx *store.Tx) error {
					for j := range 10_000 {
						p := []string{DefaultProvider, "p1"}[j%2]
						ev := TicketEvent{Ticket: numbers[j%2], At: time.Now(), Actor: "ana", Kind: EventNote, Data: EventData{Text: "the citizen called back"}}
						if _, err := insertEvent(ctx, tx, p, ev); err != nil {
							return err
						}
						if j%10 == 0 {
							if err := insertAudit(ctx, tx, AuditEntry{At: time.Now(), User: "ivrctl", Action: "ticket_view", Target: numbers[j%2], OK: true}); err != nil {
								return err
							}
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.Logf("wrote %d events and %d audit rows with their links in %s", events, audits, time.Since(t0).Round(time.Millisecond))
			b.ResetTimer()
			for b.Loop() {
				v, err := s.VerifyChains(ctx, VerifyOptions{})
				if err != nil || !v.OK() {
					b.Fatal(err, v.Findings)
				}
			}
			b.ReportMetric(float64(events+audits+2)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
