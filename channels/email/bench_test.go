package email_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/govline/ivr/channels/email"
	"github.com/govline/ivr/internal/imaptest"
	"github.com/govline/ivr/tickets"
)

func benchMailbox(b *testing.B) (*imaptest.Server, *tickets.Store, *email.Mailbox) {
	srv := imaptest.Start(b)
	srv.AddUser(b, "support", "s3cret")
	st, err := tickets.Open(filepath.Join(b.TempDir(), tickets.DBFile))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	mb, err := email.NewMailbox(email.Config{IMAPURL: srv.URL("support", "s3cret"), SMTPURL: "smtp://127.0.0.1:1", Address: line,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, st)
	if err != nil {
		b.Fatal(err)
	}
	return srv, st, mb
}

// BenchmarkIngest10000 measures the messages ingested per second from a
// mailbox of 10,000 messages (SQLite, acknowledgements queued; the issue's
// target: at least 50 per second).
func BenchmarkIngest10000(b *testing.B) {
	const total = 10000
	for b.Loop() {
		b.StopTimer()
		srv, _, mb := benchMailbox(b)
		for i := range total {
			srv.Deliver(b, "support", msg(fmt.Sprintf("c%d@example.org", i%500), fmt.Sprintf("b%d@example.org", i),
				fmt.Sprintf("cerere %d", i), "", "Bună ziua, am o întrebare despre pașaport. Mulțumesc."))
		}
		done := make(chan struct{})
		var n int
		mb.Ingested = func(uint32, tickets.EmailIntakeResult) {
			if n++; n == total {
				close(done)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		b.StartTimer()
		start := time.Now()
		wg.Go(func() { _ = mb.Run(ctx) })
		select {
		case <-done:
		case <-time.After(10 * time.Minute):
			b.Fatalf("%d of %d messages in 10 min", n, total)
		}
		el := time.Since(start)
		b.StopTimer()
		cancel()
		wg.Wait()
		b.ReportMetric(float64(total)/el.Seconds(), "msgs/s")
		b.StartTimer()
	}
}

// BenchmarkArrivalToTicket measures the time from a message's arrival in
// the mailbox (the rename into the maildir's new/) to its ticket's commit
// and mark, with IDLE, for 300 messages arriving 20 a second.
func BenchmarkArrivalToTicket(b *testing.B) {
	const total = 300
	for b.Loop() {
		b.StopTimer()
		srv, _, mb := benchMailbox(b)
		var mu sync.Mutex
		sentAt := map[uint32]time.Time{}
		var lat []time.Duration
		done := make(chan struct{})
		arrived := make([]time.Time, total)
		mb.Ingested = func(uid uint32, _ tickets.EmailIntakeResult) {
			mu.Lock()
			defer mu.Unlock()
			sentAt[uid] = time.Now()
			if len(sentAt) == total {
				close(done)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Go(func() { _ = mb.Run(ctx) })
		time.Sleep(500 * time.Millisecond) // connected and idling
		b.StartTimer()
		for i := range total {
			arrived[i] = time.Now()
			srv.Deliver(b, "support", msg("ion@example.org", fmt.Sprintf("a%d@example.org", i), "cerere", "", "text"))
			time.Sleep(50 * time.Millisecond)
		}
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			b.Fatal("not all messages taken")
		}
		b.StopTimer()
		cancel()
		wg.Wait()
		// UIDs follow the order of arrival (1, 2, 3...).
		for i := range total {
			lat = append(lat, sentAt[uint32(i+1)].Sub(arrived[i]))
		}
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
		b.StartTimer()
	}
}
