package audio

import (
	"context"
	"errors"
	"testing"
	"time"
)

func frameOf(v int16, n int) []int16 {
	f := make([]int16, n)
	for i := range f {
		f[i] = v
	}
	return f
}

// The writer waits when the queue is full, until the reader frees a place
// or the call ends (with the call's cause); a short frame is zero-padded.
func TestFrameQueueWriteWaitsAndEnds(t *testing.T) {
	q := NewFrameQueue(2, 4)
	ctx := context.Background()
	call, end := context.WithCancelCause(ctx)
	if err := q.Write(ctx, call, []int16{1, 1}); err != nil {
		t.Fatal(err)
	}
	if err := q.Write(ctx, call, frameOf(2, 4)); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := q.Write(short, call, frameOf(3, 4)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("write to a full queue: %v, want the caller's deadline", err)
	}
	dst := frameOf(9, 4)
	if n, err := q.Read(ctx, call, dst); err != nil || n != 4 || dst[0] != 1 || dst[1] != 1 || dst[2] != 0 || dst[3] != 0 {
		t.Fatalf("read %d %v %v, want the first frame zero-padded", n, dst, err)
	}
	hungUp := errors.New("caller hung up")
	end(hungUp)
	if err := q.Write(ctx, call, frameOf(3, 4)); err != nil && !errors.Is(err, hungUp) {
		t.Fatalf("write after the end: %v", err) // a free place may still win the race
	}
	q.Flush()
	if _, err := q.Read(ctx, call, dst); !errors.Is(err, hungUp) {
		t.Fatalf("read of an empty queue after the end: %v, want the call's cause", err)
	}
}

// Offer never waits: a full queue drops its oldest frame, so a reader
// that fell behind gets the newest audio; Take lends frames in order.
func TestFrameQueueOfferDropsOldest(t *testing.T) {
	q := NewFrameQueue(3, 2)
	for v := int16(1); v <= 5; v++ {
		q.Offer(frameOf(v, 2))
	}
	for _, want := range []int16{3, 4, 5} {
		f := q.Take()
		if f == nil || f[0] != want {
			t.Fatalf("took %v, want frame %d", f, want)
		}
		q.Return(f)
	}
	if f := q.Take(); f != nil {
		t.Fatalf("took %v from an empty queue", f)
	}
	q.Offer(frameOf(6, 2))
	q.Flush()
	if f := q.Take(); f != nil {
		t.Fatalf("took %v after Flush", f)
	}
}

// One frame through the queue each way, as a call moves it every 20 ms:
// no allocation.
func BenchmarkFrameQueue(b *testing.B) {
	q := NewFrameQueue(3, 320)
	ctx := context.Background()
	frame := make([]int16, 320)
	b.ReportAllocs()
	for b.Loop() {
		if err := q.Write(ctx, ctx, frame); err != nil {
			b.Fatal(err)
		}
		f := q.Take()
		q.Return(f)
		q.Offer(frame)
		if _, err := q.Read(ctx, ctx, frame); err != nil {
			b.Fatal(err)
		}
	}
}
