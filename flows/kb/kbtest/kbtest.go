// Package kbtest is the conformance kit of the knowledge base's miss log
// (kb.MissLog) on every backend of the line's database: the backends'
// tests call TestMissLog with two handles on one empty database, as two
// engines adding to it at once would hold.
package kbtest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/govline/ivr/flows/kb"
)

// Opener returns two MissLogs on one new, empty database, closed when the
// test ends.
type Opener func(t *testing.T) (a, b kb.MissLog)

var ctx = context.Background()

// TestMissLog checks open's miss logs against the kb.MissLog contract.
func TestMissLog(t *testing.T, open Opener) {
	t.Run("counted once per language and query, by every engine at once", func(t *testing.T) { counted(t, open) })
	t.Run("order and since", func(t *testing.T) { orderAndSince(t, open) })
}

func counted(t *testing.T, open Opener) {
	a, b := open(t)
	base := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	const workers, each = 4, 25
	var wg sync.WaitGroup
	for w := range workers {
		log := []kb.MissLog{a, b}[w%2]
		wg.Go(func() {
			for i := range each {
				// Out of order across workers: the first and last asked
				// must still be the earliest and the latest.
				at := base.Add(time.Duration(i*workers+w) * time.Second)
				if err := log.RecordMiss(ctx, "ro", "cazier auto", at); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := a.RecordMiss(ctx, "en", "cazier auto", base); err != nil {
		t.Fatal(err)
	}
	ms, err := b.Misses(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 {
		t.Fatalf("misses %+v, want one per language", ms)
	}
	ro := ms[0]
	last := base.Add(time.Duration(workers*each-1) * time.Second)
	if ro.Lang != "ro" || ro.Query != "cazier auto" || ro.Count != workers*each || !ro.First.Equal(base) || !ro.Last.Equal(last) {
		t.Errorf("ro miss %+v, want count %d, first %s, last %s", ro, workers*each, base, last)
	}
	if en := ms[1]; en.Lang != "en" || en.Count != 1 {
		t.Errorf("en miss %+v, want counted apart", en)
	}
}

func orderAndSince(t *testing.T, open Opener) {
	a, b := open(t)
	day := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	record := func(log kb.MissLog, q string, at time.Time) {
		t.Helper()
		if err := log.RecordMiss(ctx, "ro", q, at); err != nil {
			t.Fatal(err)
		}
	}
	record(a, "old", day)
	record(b, "old", day.Add(time.Hour))
	record(a, "often", day.Add(48*time.Hour))
	record(b, "often", day.Add(49*time.Hour))
	record(a, "often", day.Add(50*time.Hour))
	record(b, "recent", day.Add(72*time.Hour))
	record(a, "once", day.Add(60*time.Hour))
	all, err := a.Misses(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if got := queries(all); got != "[often:3 old:2 recent:1 once:1]" {
		t.Errorf("all misses %s, want the most asked first, then the most recent", got)
	}
	since, err := b.Misses(ctx, day.Add(50*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if got := queries(since); got != "[often:3 recent:1 once:1]" {
		t.Errorf("misses since the third day %s, want those last asked then or later", got)
	}
}

func queries(ms []kb.Miss) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = fmt.Sprintf("%s:%d", m.Query, m.Count)
	}
	return fmt.Sprint(s)
}
