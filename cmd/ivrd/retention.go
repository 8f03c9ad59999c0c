package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/govline/ivr/tickets"
)

// retentionJob runs the retention job (docs/retention.md) every day at
// hour:minute, local time, until its context ends. Every engine of a line
// runs it: each deletes the recordings on its own disk, and the tickets'
// marks make the second engine's run find nothing left of the rest.
type retentionJob struct {
	store        *tickets.Store
	policy       tickets.RetentionPolicy
	opts         tickets.RetentionOptions
	hour, minute int
	// now and after are the clock and the timer (time.Now, time.After);
	// tests give their own.
	now   func() time.Time
	after func(time.Duration) <-chan time.Time
	log   *slog.Logger
	// ran, when set, receives each run's report (tests).
	ran func(tickets.RetentionReport, error)
}

// run loops until ctx ends; its owner joins it (watchers).
func (j retentionJob) run(ctx context.Context) {
	for {
		next := nextDaily(j.now(), j.hour, j.minute)
		j.log.Info("next retention run", "at", next)
		select {
		case <-ctx.Done():
			return
		case <-j.after(next.Sub(j.now())):
		}
		began := time.Now()
		rep, err := j.store.RunRetention(ctx, j.policy, j.opts)
		if err != nil && ctx.Err() == nil {
			j.log.Error("retention run failed", "err", err, "summary", rep.Summary())
		} else if err == nil {
			j.log.Info("retention run", "summary", rep.Summary(), "took", time.Since(began).Round(time.Millisecond))
		}
		if j.ran != nil {
			j.ran(rep, err)
		}
	}
}

// nextDaily is the first hour:minute strictly after now, in now's zone
// (a day's time that a DST change skips runs at the next valid time).
func nextDaily(now time.Time, hour, minute int) time.Time {
	y, m, d := now.Date()
	t := time.Date(y, m, d, hour, minute, 0, 0, now.Location())
	if !t.After(now) {
		t = time.Date(y, m, d+1, hour, minute, 0, 0, now.Location())
	}
	return t
}
