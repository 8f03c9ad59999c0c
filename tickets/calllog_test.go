package tickets

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"
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
