package audio

import "context"

// FrameQueue is a bounded queue of 20 ms frames between two goroutines of
// a call (the caller's audio from the RTP reader to the session, the
// engine's audio from the session to the sender), with a free list: it
// owns all its buffers, allocated once, so nothing on the per-frame path
// allocates. Safe for concurrent use.
//
// Buffers never leave the queue for good: Read and Write copy; Take lends
// one that the taker gives back with Return.
type FrameQueue struct {
	full chan []int16 // queued frames, oldest first
	free chan []int16 // buffers not queued
}

// NewFrameQueue returns a queue of at most depth frames of samples each.
func NewFrameQueue(depth, samples int) *FrameQueue {
	// Each channel can hold every buffer, so moving a buffer from one to
	// the other never blocks.
	q := &FrameQueue{full: make(chan []int16, depth), free: make(chan []int16, depth)}
	for range depth {
		q.free <- make([]int16, samples)
	}
	return q
}

// Write queues a copy of frame (zero-padded, or cut, to the frame size),
// waiting for a free place until ctx or end is done: it returns ctx.Err(),
// or end's cause.
func (q *FrameQueue) Write(ctx, end context.Context, frame []int16) error {
	var f []int16
	select {
	case f = <-q.free:
	case <-ctx.Done():
		return ctx.Err()
	case <-end.Done():
		return context.Cause(end)
	}
	n := copy(f, frame)
	clear(f[n:])
	q.full <- f // never blocks: a buffer taken from free has a place in full
	return nil
}

// Read copies the oldest queued frame into dst and returns how many samples
// it copied, waiting for one until ctx or end is done: it returns
// ctx.Err(), or end's cause.
func (q *FrameQueue) Read(ctx, end context.Context, dst []int16) (int, error) {
	select {
	case f := <-q.full:
		n := copy(dst, f)
		q.free <- f
		return n, nil
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-end.Done():
		return 0, context.Cause(end)
	}
}

// Offer queues a copy of frame without waiting: when the queue is full it
// drops the oldest frame to make room (a reader that falls behind hears
// the newest audio).
func (q *FrameQueue) Offer(frame []int16) {
	var f []int16
	select {
	case f = <-q.free:
	default:
		select {
		case f = <-q.full: // drop the oldest
		default:
			return // the other side holds every buffer for a moment
		}
	}
	copy(f, frame)
	q.full <- f
}

// Take lends the oldest queued frame without waiting, or returns nil when
// none is queued. The taker gives it back with Return once done with it.
func (q *FrameQueue) Take() []int16 {
	select {
	case f := <-q.full:
		return f
	default:
		return nil
	}
}

// Return gives back a frame lent by Take.
func (q *FrameQueue) Return(f []int16) { q.free <- f }

// Flush drops every queued frame.
func (q *FrameQueue) Flush() {
	for {
		select {
		case f := <-q.full:
			q.free <- f
		default:
			return
		}
	}
}
