package audio

import (
	"context"
	"errors"
	"math/rand"
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

// Thirty minutes of frames, with the sender doing a random amount of work
// (less than a frame) between sends: every send time is exactly on the
// absolute schedule, so there is no drift.
func TestPacerNoDriftOver30Minutes(t *testing.T) {
	c := NewFakeClock(t0)
	c.SetAutoAdvance(true)
	p := NewPacer(c)
	ctx := context.Background()
	rng := rand.New(rand.NewSource(1))
	const ticks = 90000
	for n := 0; n < ticks; n++ {
		if err := p.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		if want := t0.Add(time.Duration(n) * FrameDuration); !c.Now().Equal(want) {
			t.Fatalf("tick %d at %v, want %v (drift %v)", n, c.Now(), want, c.Now().Sub(want))
		}
		c.Advance(time.Duration(rng.Int63n(int64(19 * time.Millisecond))))
	}
	if end := c.Now().Sub(t0); end < 30*time.Minute-FrameDuration || end > 30*time.Minute {
		t.Errorf("90000 ticks took %v", end)
	}
	if p.Skips() != 0 {
		t.Errorf("%d skips with work shorter than a frame", p.Skips())
	}
}

func TestPacerSkipsAheadInsteadOfBursting(t *testing.T) {
	c := NewFakeClock(t0)
	c.SetAutoAdvance(true)
	p := NewPacer(c)
	ctx := context.Background()
	for range 5 {
		p.Wait(ctx)
	}
	// Sent at t0+80ms. A 100 ms stall (GC pause): the next send was due at
	// t0+100ms, now it is t0+180ms.
	c.Advance(100 * time.Millisecond)
	stall := c.Now()
	p.Wait(ctx)
	if !c.Now().Equal(stall) || p.Skips() != 1 {
		t.Fatalf("after the stall: sent at +%v, skips %d; want at once and 1 skip", c.Now().Sub(stall), p.Skips())
	}
	// No burst: the following sends are 20 ms apart again, from the stall.
	for i := 1; i <= 3; i++ {
		p.Wait(ctx)
		if want := stall.Add(time.Duration(i) * FrameDuration); !c.Now().Equal(want) {
			t.Fatalf("send %d after the stall at +%v, want +%v", i, c.Now().Sub(stall), want.Sub(stall))
		}
	}
	// A small delay (under one frame) is caught up without a skip.
	c.Advance(15 * time.Millisecond)
	before := c.Now()
	p.Wait(ctx)
	if !c.Now().Equal(before.Add(5*time.Millisecond)) || p.Skips() != 1 {
		t.Errorf("small delay: waited %v, skips %d", c.Now().Sub(before), p.Skips())
	}
}

func TestPacerBlocksAndCancels(t *testing.T) {
	c := NewFakeClock(t0)
	p := NewPacer(c)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := p.Wait(ctx); err != nil { // first: at once
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Wait(ctx) }()
	if err := c.WaitForSleepers(ctx, 1); err != nil {
		t.Fatal(err)
	}
	c.Advance(19 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Wait returned %v after 19 ms", err)
	case <-time.After(10 * time.Millisecond):
	}
	c.Advance(time.Millisecond)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	go func() { done <- p.Wait(ctx) }()
	c.WaitForSleepers(ctx, 1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Wait: %v", err)
	}
	if c.Sleepers() != 0 {
		t.Errorf("%d sleepers left after cancel", c.Sleepers())
	}
}

func TestSystemClockPacer(t *testing.T) {
	p := NewPacer(SystemClock{})
	ctx := context.Background()
	start := time.Now()
	for range 6 {
		if err := p.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if el := time.Since(start); el < 100*time.Millisecond || el > 500*time.Millisecond {
		t.Errorf("6 waits (5 intervals) took %v, want about 100 ms", el)
	}
	ctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := p.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait on a cancelled context: %v", err)
	}
}
