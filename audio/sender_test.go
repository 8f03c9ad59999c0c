package audio

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// stream records when the Sender asked it for a packet.
type stream struct {
	mu    sync.Mutex
	sends []time.Time
}

func (s *stream) SendFrame(now time.Time) {
	s.mu.Lock()
	s.sends = append(s.sends, now)
	s.mu.Unlock()
}

func (s *stream) times() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.sends...)
}

// step advances the fake clock and waits until every shard is asleep
// again, so the rounds due by then have run.
func step(t *testing.T, c *FakeClock, d time.Duration, shards int) {
	t.Helper()
	c.Advance(d)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.WaitForSleepers(ctx, shards); err != nil {
		t.Fatalf("the shards did not go back to sleep: %v", err)
	}
}

// Every stream gets one packet every 20 ms, on its shard's staggered
// phase; a removed stream gets no more; a late round is counted as a skip
// instead of bursting.
func TestSenderPacesStreamsOnStaggeredShards(t *testing.T) {
	c := NewFakeClock(t0)
	var skips atomic.Uint64
	s := NewSender(c, 2, &skips)
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.WaitForSleepers(ctx, 2); err != nil {
		t.Fatal(err)
	}
	// Shard 0 started its schedule at t0, shard 1 sleeps until t0+10ms.
	a, b, d := &stream{}, &stream{}, &stream{}
	slotA := s.Add(a) // shard 1
	s.Add(b)          // shard 0
	s.Add(d)          // shard 1
	for range 10 {
		step(t, c, FrameDuration/2, 2)
	}
	// Now t0+100ms: shard 1 sent at 10, 30, 50, 70, 90; shard 0 at 20 .. 100.
	check := func(name string, got []time.Time, first time.Duration, n int) {
		t.Helper()
		if len(got) != n {
			t.Fatalf("%s: %d packets, want %d: %v", name, len(got), n, got)
		}
		for i, at := range got {
			if want := t0.Add(first + time.Duration(i)*FrameDuration); !at.Equal(want) {
				t.Errorf("%s: packet %d at %v, want %v", name, i, at.Sub(t0), want.Sub(t0))
			}
		}
	}
	check("a", a.times(), 10*time.Millisecond, 5)
	check("b", b.times(), 20*time.Millisecond, 5)
	check("d", d.times(), 10*time.Millisecond, 5)

	s.Remove(slotA)
	s.Remove(slotA) // twice is a no-op
	s.Remove(nil)
	for range 4 {
		step(t, c, FrameDuration/2, 2)
	}
	if n := len(a.times()); n != 5 {
		t.Errorf("a removed stream got %d packets, want to stay at 5", n)
	}
	if n := len(d.times()); n != 7 {
		t.Errorf("d: %d packets after two more rounds, want 7", n)
	}
	if skips.Load() != 0 {
		t.Errorf("%d skips on time", skips.Load())
	}

	// Both shards wake 100 ms late: the packet that was due, then one on a
	// new schedule, instead of the five missed ones in a burst.
	before := len(b.times())
	step(t, c, 100*time.Millisecond, 2)
	if got := len(b.times()) - before; got != 2 {
		t.Errorf("a round 100 ms late sent %d packets for one stream, want 2 (no burst)", got)
	}
	if skips.Load() != 2 {
		t.Errorf("skips %d, want 2 (one per shard)", skips.Load())
	}
}

// Close stops the shards' goroutines even while streams are on them.
func TestSenderCloseJoins(t *testing.T) {
	s := NewSender(SystemClock{}, 3, nil)
	a := &stream{}
	s.Add(a)
	deadline := time.Now().Add(5 * time.Second)
	for len(a.times()) < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	done := make(chan struct{})
	go func() {
		s.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	n := len(a.times())
	if n < 3 {
		t.Fatalf("%d packets in 5 s", n)
	}
	time.Sleep(3 * FrameDuration)
	if m := len(a.times()); m != n {
		t.Errorf("%d packets after Close", m-n)
	}
}

// buggy panics on its third packet and wants the panic back.
type buggy struct {
	stream
	n        int
	panicked chan any
}

func (b *buggy) SendFrame(now time.Time) {
	if b.n++; b.n == 3 {
		panic("a bug in SendFrame")
	}
	b.stream.SendFrame(now)
}

func (b *buggy) SendPanicked(v any, stack []byte) { b.panicked <- v }

// A stream whose SendFrame panics is taken off its shard and given the
// panic; the other streams of the shard keep their 20 ms.
func TestSenderRecoversAStreamsPanic(t *testing.T) {
	c := NewFakeClock(t0)
	s := NewSender(c, 1, nil)
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.WaitForSleepers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	bad := &buggy{panicked: make(chan any, 1)}
	good := &stream{}
	slot := s.Add(bad)
	s.Add(good)
	for range 10 {
		step(t, c, FrameDuration, 1)
	}
	select {
	case v := <-bad.panicked:
		if v != "a bug in SendFrame" {
			t.Errorf("SendPanicked got %v", v)
		}
	default:
		t.Fatal("the panic was not handed back")
	}
	if n := len(bad.times()); n != 2 {
		t.Errorf("the buggy stream sent %d packets, want 2 (then it was taken off)", n)
	}
	if n := len(good.times()); n < 9 {
		t.Errorf("the other stream sent %d packets in 10 rounds", n)
	}
	s.Remove(slot) // already off: a no-op
}
