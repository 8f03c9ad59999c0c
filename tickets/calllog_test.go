package tickets

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/govline/ivr/internal/pgtest"
	"github.com/govline/ivr/store"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Writes from many calls at once land in order per call, all of them, and a
// refused write (an event for an unknown call) loses nothing else.
func TestCallLogWritesEverythingInOrder(t *testing.T) {
	s := openTemp(t)
	l := s.NewCallLog(0, quietLog())
	const calls, digits = 40, 12
	var wg sync.WaitGroup
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("call-%d", i)
			t0 := time.Now()
			l.Start(CallRecord{ID: id, Telephony: "sip", Caller: "0722000111", Called: "1919", Start: t0})
			l.Answer(id, t0.Add(time.Millisecond), "PCMU", "/rec/"+id+".wav")
			for d := range digits {
				l.DTMF(id, rune("0123456789*#"[d]))
				l.Event(id, CallEvent{At: t0.Add(time.Duration(d+2) * time.Millisecond), Kind: "dtmf", Detail: fmt.Sprint(d)})
			}
			l.End(id, t0.Add(time.Second), EndCallerHangup, PacketStats{In: 50, Out: 49})
		}()
	}
	l.Event("no-such-call", CallEvent{Kind: "x"})
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range calls {
		id := fmt.Sprintf("call-%d", i)
		r, err := s.Call(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if r.DTMF != "0123456789*#" || r.End == nil || r.EndReason != EndCallerHangup || r.Codec != "PCMU" || r.Stats.In != 50 {
			t.Fatalf("%s: %+v", id, r)
		}
		ev, err := s.Events(ctx, id)
		if err != nil || len(ev) != digits {
			t.Fatalf("%s: %d events, %v", id, len(ev), err)
		}
	}
	if l.Failed() != 1 || l.Dropped() != 0 {
		t.Errorf("failed %d (want 1: the unknown call), dropped %d", l.Failed(), l.Dropped())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
}

// Close commits what is queued; a full queue drops and counts instead of
// blocking the caller.
func TestCallLogCloseFlushesAndFullQueueDrops(t *testing.T) {
	s := openTemp(t)
	l := s.NewCallLog(4, quietLog())
	// Hold the write lock so the writer cannot commit while we overfill.
	unlock := holdWriteLock(t, s)
	l.Start(CallRecord{ID: "a", Start: time.Now()})
	time.Sleep(50 * time.Millisecond) // the writer takes "a" and waits for the lock
	done := make(chan struct{})
	go func() {
		for i := range 20 {
			l.DTMF("a", rune('0'+i%10))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("a full call log blocked its caller")
	}
	unlock()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if l.Dropped() == 0 {
		t.Error("nothing counted as dropped")
	}
	r, err := s.Call(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	if got := uint64(len(r.DTMF)) + l.Dropped(); got != 20 {
		t.Errorf("stored %d digits + dropped %d != 20", len(r.DTMF), l.Dropped())
	}
}

func BenchmarkCallLogEvent(b *testing.B) {
	s := openTemp(b)
	l := s.NewCallLog(0, quietLog())
	l.Start(CallRecord{ID: "bench", Start: time.Now()})
	ev := CallEvent{Kind: "dtmf", Detail: "rfc4733 5"}
	b.ReportAllocs()
	for b.Loop() {
		ev.At = time.Now()
		l.Event("bench", ev)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := l.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	l.Close()
}

// PostgreSQL away for longer than the store's retry time: the call log
// holds its writes and commits them, in order, once the server is back;
// none is counted failed or dropped.
func TestCallLogHoldsWritesWhilePostgresIsAway(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	db, err := store.Open(ctx, srv.NewDatabase(t), store.Options{RetryFor: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s := New(db)
	l := s.NewCallLog(0, quietLog())
	defer l.Close()
	t0 := time.Now()
	l.Start(CallRecord{ID: "before", Telephony: "sip", Caller: "0722000111", Called: "1919", Start: t0})
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := l.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	running := false
	defer func() {
		if !running {
			_ = srv.Start()
		}
	}()
	l.DTMF("before", '1')
	l.Start(CallRecord{ID: "during", Telephony: "sip", Caller: "0722000222", Called: "1919", Start: t0.Add(time.Second)})
	l.Event("during", CallEvent{At: t0.Add(time.Second), Kind: "dtmf", Detail: "rfc4733 2"})
	l.DTMF("during", '2')
	time.Sleep(1500 * time.Millisecond) // five times the store's retry time
	l.DTMF("before", '3')
	l.End("before", t0.Add(2*time.Second), EndCallerHangup, PacketStats{In: 100, Out: 100})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	running = true
	fctx, cancel = context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := l.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	if l.Failed() != 0 || l.Dropped() != 0 {
		t.Errorf("failed %d, dropped %d: writes lost while PostgreSQL was away", l.Failed(), l.Dropped())
	}
	b, err := s.Call(ctx, "before")
	if err != nil {
		t.Fatal(err)
	}
	if b.DTMF != "13" || b.EndReason != EndCallerHangup || b.Stats.In != 100 {
		t.Errorf("call before the outage: %+v, want keys 13 and its end", b)
	}
	d, err := s.Call(ctx, "during")
	if err != nil {
		t.Fatalf("call started during the outage: %v", err)
	}
	ev, err := s.Events(ctx, "during")
	if d.DTMF != "2" || err != nil || len(ev) != 1 {
		t.Errorf("call started during the outage: %+v, events %v (%v)", d, ev, err)
	}
}
