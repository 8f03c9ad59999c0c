package audio

import (
	"context"
	"sync"
	"time"
)

// Clock is the time source of the Pacer (and of anything else here that
// waits), injectable so tests run without sleeping.
//
// Now returns the current time; for SystemClock it carries Go's monotonic
// reading, so differences are immune to wall-clock steps. Sleep blocks for
// d or until ctx is done, whichever comes first, and returns ctx.Err() in
// the second case (nil otherwise); d <= 0 returns at once. Implementations
// must be safe for concurrent use.
type Clock interface {
	Now() time.Time
	Sleep(ctx context.Context, d time.Duration) error
}

// SystemClock is the real Clock: time.Now and a timer.
type SystemClock struct{}

var _ Clock = SystemClock{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// Sleep waits for d on a timer, or until ctx is done.
func (SystemClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// FakeClock is a manual Clock for tests. Time moves only with Advance, or,
// in auto-advance mode, by exactly the duration of each Sleep. Safe for
// concurrent use.
type FakeClock struct {
	mu       sync.Mutex
	now      time.Time
	auto     bool
	sleepers []*fakeSleeper
	changed  chan struct{} // closed and replaced when sleepers change
}

type fakeSleeper struct {
	until time.Time
	wake  chan struct{}
}

var _ Clock = (*FakeClock)(nil)

// NewFakeClock returns a FakeClock that reads start.
func NewFakeClock(start time.Time) *FakeClock {
	return &FakeClock{now: start, changed: make(chan struct{})}
}

// SetAutoAdvance makes every Sleep(d) advance the clock by d and return at
// once (single-goroutine tests of schedules).
func (c *FakeClock) SetAutoAdvance(on bool) {
	c.mu.Lock()
	c.auto = on
	c.mu.Unlock()
}

// Now returns the fake time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Sleep blocks until Advance has moved the clock d past the time of the
// call, or ctx is done.
func (c *FakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil || d <= 0 {
		return err
	}
	c.mu.Lock()
	if c.auto {
		c.now = c.now.Add(d)
		c.mu.Unlock()
		return nil
	}
	s := &fakeSleeper{until: c.now.Add(d), wake: make(chan struct{})}
	c.sleepers = append(c.sleepers, s)
	c.notifyLocked()
	c.mu.Unlock()
	select {
	case <-s.wake:
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		for i, o := range c.sleepers {
			if o == s {
				c.sleepers = append(c.sleepers[:i], c.sleepers[i+1:]...)
				c.notifyLocked()
				break
			}
		}
		c.mu.Unlock()
		return ctx.Err()
	}
}

// Advance moves the clock forward by d and wakes the sleepers whose time
// has come.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.sleepers[:0]
	for _, s := range c.sleepers {
		if !s.until.After(c.now) {
			close(s.wake)
		} else {
			kept = append(kept, s)
		}
	}
	clear(c.sleepers[len(kept):])
	c.sleepers = kept
	c.notifyLocked()
}

// Sleepers returns how many goroutines are blocked in Sleep.
func (c *FakeClock) Sleepers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.sleepers)
}

// WaitForSleepers blocks until at least n goroutines are blocked in Sleep,
// or ctx is done.
func (c *FakeClock) WaitForSleepers(ctx context.Context, n int) error {
	for {
		c.mu.Lock()
		k, ch := len(c.sleepers), c.changed
		c.mu.Unlock()
		if k >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *FakeClock) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Pacer gives the send times of an outbound stream: the first Wait returns
// at once and fixes the start; the n-th later Wait returns at start +
// n×FrameDuration, an absolute schedule, so there is no drift however long
// the call. If the sender has fallen behind by more than one interval (a GC
// pause, a slow disk), Wait returns at once and reschedules from now instead
// of returning immediately again and again to catch up (a burst the far
// end's jitter buffer would drop); Skips counts these. Not safe for
// concurrent use: one sending goroutine owns it.
type Pacer struct {
	c       Clock
	start   time.Time
	n       int64
	started bool
	skips   uint64
}

// NewPacer returns a pacer on clock c (SystemClock{} in production).
func NewPacer(c Clock) *Pacer { return &Pacer{c: c} }

// Wait blocks until the next send time. It returns ctx.Err() if ctx is done
// first (use context.Cause for why).
func (p *Pacer) Wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := p.c.Now()
	if !p.started {
		p.started, p.start, p.n = true, now, 0
		return nil
	}
	p.n++
	late := now.Sub(p.start.Add(time.Duration(p.n) * FrameDuration))
	switch {
	case late > FrameDuration:
		p.skips++
		p.start, p.n = now, 0
		return nil
	case late >= 0:
		return nil
	}
	return p.c.Sleep(ctx, -late)
}

// Reset forgets the schedule: the next Wait returns at once and starts a
// new one (use it when a stream resumes after a pause).
func (p *Pacer) Reset() { p.started = false }

// Skips returns how many times the pacer skipped ahead.
func (p *Pacer) Skips() uint64 { return p.skips }
