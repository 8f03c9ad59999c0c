package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/govline/ivr/tickets"
)

func TestNextDaily(t *testing.T) {
	buc, err := time.LoadLocation("Europe/Bucharest")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ now, want time.Time }{
		{time.Date(2026, 12, 6, 2, 0, 0, 0, buc), time.Date(2026, 12, 6, 3, 30, 0, 0, buc)},
		{time.Date(2026, 12, 6, 3, 30, 0, 0, buc), time.Date(2026, 12, 7, 3, 30, 0, 0, buc)},
		{time.Date(2026, 12, 31, 23, 0, 0, 0, buc), time.Date(2027, 1, 1, 3, 30, 0, 0, buc)},
		// The night the clocks go forward (03:00 -> 04:00): 03:30 does not exist.
		{time.Date(2027, 3, 28, 1, 0, 0, 0, buc), time.Date(2027, 3, 28, 4, 30, 0, 0, buc)},
	} {
		if got := nextDaily(c.now, 3, 30); !got.Equal(c.want) {
			t.Errorf("nextDaily(%s) = %s, want %s", c.now, got, c.want)
		}
	}
}

// The daily job runs when its timer fires, on a real store, and stops
// with its context; the test's timer fires at once, twice.
func TestRetentionJobRuns(t *testing.T) {
	s, err := tickets.Open(filepath.Join(t.TempDir(), tickets.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	old := time.Now().Add(-200 * 24 * time.Hour)
	s.SetClock(func() time.Time { return old })
	tk, err := s.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr", Caller: "+37360000001"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Resolve(ctx, tk.Number, "ana", "done"); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseTicket(ctx, tk.Number, "ana"); err != nil {
		t.Fatal(err)
	}
	s.SetClock(time.Now)
	var mu sync.Mutex
	var reports []tickets.RetentionReport
	fired := make(chan time.Duration, 2)
	done := make(chan struct{})
	runs := 0
	job := retentionJob{store: s, policy: tickets.RetentionPolicy{Default: tickets.DefaultRetentionPeriods}, hour: 3, minute: 30,
		now: time.Now, log: slog.New(slog.DiscardHandler), opts: tickets.RetentionOptions{Actor: "retention"},
		after: func(d time.Duration) <-chan time.Time {
			select {
			case fired <- d:
			default:
			}
			c := make(chan time.Time, 1)
			if runs < 2 {
				c <- time.Now()
			}
			runs++
			return c
		},
		ran: func(r tickets.RetentionReport, err error) {
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			reports = append(reports, r)
			if len(reports) == 2 {
				close(done)
			}
			mu.Unlock()
		}}
	jctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { job.run(jctx) })
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the job did not run twice")
	}
	cancel()
	wg.Wait()
	if d := <-fired; d <= 0 || d > 24*time.Hour {
		t.Errorf("waits %s for the next 03:30", d)
	}
	if reports[0].Archived != 1 || len(reports[1].Items) != 0 {
		t.Errorf("runs: %s / %s", reports[0].Summary(), reports[1].Summary())
	}
	got, err := s.Ticket(ctx, tk.Number)
	if err != nil || got.Archived == nil {
		t.Errorf("not archived: %+v %v", got, err)
	}
}
