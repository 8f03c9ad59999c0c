package audio

import (
	"context"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// FrameSender is one outbound stream that a Sender paces. SendFrame sends
// the stream's next packet (its queued frame, or silence); now is the time
// of the send on the Sender's clock. The Sender calls it from one of its
// goroutines, every FrameDuration, never concurrently with itself, and no
// more once Remove has returned; it must not block, since the other
// streams of its shard wait for it.
type FrameSender interface {
	SendFrame(now time.Time)
}

// SendPanicHandler is implemented by a FrameSender that wants its panics
// back: a panic in its SendFrame is recovered by the Sender, the stream is
// taken off its shard (the other streams of the shard go on), and
// SendPanicked receives the panic's value and stack, on the shard's
// goroutine; it must not block. A FrameSender without it panics on.
type SendPanicHandler interface {
	SendPanicked(v any, stack []byte)
}

// Sender paces the outbound RTP of every call of an adapter. Instead of a
// timer and a goroutine per call (50 wake-ups a second each), a few
// shards, one goroutine each, wake every 20 ms on an absolute schedule
// (Pacer) and send one packet for each of their streams. A stream's packets
// keep their place in its shard's round, so the interval between two
// packets of a stream stays 20 ms; a round that runs late (a starved
// machine) restarts the schedule instead of bursting, and counts a skip.
//
// Shards start their rounds at staggered phases so that the packets of all
// streams are spread over the 20 ms.
//
// Add, Remove and Close are safe for concurrent use; Close stops and joins
// the shards' goroutines.
type Sender struct {
	clock  Clock
	shards []*senderShard
	next   atomic.Uint32
	skips  *atomic.Uint64
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// senderShard is one goroutine's set of streams.
type senderShard struct {
	mu      sync.Mutex // held for a whole round: Remove waits for the round
	streams []FrameSender
}

// SenderSlot is a stream's place on a Sender, from Add to Remove.
type SenderSlot struct {
	s  FrameSender
	sh *senderShard // nil once removed
}

// NewSender starts a sender with the given number of shards (0: one per
// core, GOMAXPROCS) on clock c (SystemClock{} in production). It adds the
// pacers' skips to skips when that is not nil.
func NewSender(c Clock, shards int, skips *atomic.Uint64) *Sender {
	if shards <= 0 {
		// One shard per core: measured with 1000 calls on 2 cores, four
		// per core cost 20% more CPU and paced no better (bench/README.md).
		shards = runtime.GOMAXPROCS(0)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Sender{clock: c, skips: skips, cancel: cancel}
	for i := range shards {
		sh := &senderShard{}
		s.shards = append(s.shards, sh)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.run(ctx, sh, time.Duration(i)*FrameDuration/time.Duration(shards))
		}()
	}
	return s
}

// Add puts a stream on the least recently chosen shard; its first packet
// goes out in that shard's next round.
func (s *Sender) Add(f FrameSender) *SenderSlot {
	sh := s.shards[int(s.next.Add(1))%len(s.shards)]
	slot := &SenderSlot{s: f, sh: sh}
	sh.mu.Lock()
	sh.streams = append(sh.streams, f)
	sh.mu.Unlock()
	return slot
}

// Remove takes a stream off its shard; when it returns, the shard no
// longer touches the stream. A nil slot, or one already removed, is a
// no-op. One slot is not removed from two goroutines at once.
func (s *Sender) Remove(slot *SenderSlot) {
	if slot == nil || slot.sh == nil {
		return
	}
	sh := slot.sh
	sh.mu.Lock()
	for i, x := range sh.streams {
		if x == slot.s {
			last := len(sh.streams) - 1
			sh.streams[i], sh.streams[last] = sh.streams[last], nil
			sh.streams = sh.streams[:last]
			break
		}
	}
	slot.sh = nil
	sh.mu.Unlock()
}

// Close stops the shards and waits for their goroutines.
func (s *Sender) Close() {
	s.cancel()
	s.wg.Wait()
}

func (s *Sender) run(ctx context.Context, sh *senderShard, phase time.Duration) {
	if s.clock.Sleep(ctx, phase) != nil {
		return
	}
	pacer := NewPacer(s.clock)
	var skips uint64
	for {
		if err := pacer.Wait(ctx); err != nil {
			return
		}
		if n := pacer.Skips(); n != skips {
			if s.skips != nil {
				s.skips.Add(n - skips)
			}
			skips = n
		}
		sh.mu.Lock()
		for i := 0; i < len(sh.streams); {
			if send(sh.streams[i], s.clock.Now()) {
				i++
				continue
			}
			// It panicked: off the shard (Remove finds it gone).
			last := len(sh.streams) - 1
			sh.streams[i], sh.streams[last] = sh.streams[last], nil
			sh.streams = sh.streams[:last]
		}
		sh.mu.Unlock()
	}
}

// send sends one stream's packet; false when SendFrame panicked and its
// SendPanicHandler took the panic.
func send(f FrameSender, now time.Time) (ok bool) {
	defer func() {
		if ok {
			return
		}
		v := recover()
		h, handles := f.(SendPanicHandler)
		if !handles {
			panic(v)
		}
		h.SendPanicked(v, debug.Stack())
	}()
	f.SendFrame(now)
	return true
}
