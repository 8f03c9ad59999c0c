package sip

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/ivr"
)

// sender paces the outbound RTP of every call of the endpoint. Instead of
// a timer and a goroutine per call (50 wake-ups a second each), a few
// shards, one goroutine each, wake every 20 ms on an absolute schedule from
// the monotonic clock and send one packet for each of their calls. A
// call's packets keep their place in its shard's round, so the interval
// between two packets of a call stays 20 ms; a round that runs late (a
// starved machine) restarts the schedule instead of bursting (Pacer).
//
// Shards start their rounds at staggered phases so that the packets of all
// calls are spread over the 20 ms.
type sender struct {
	shards  []*shard
	next    atomic.Uint32
	metrics *ivr.Metrics
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// shard is one goroutine's set of calls.
type shard struct {
	mu    sync.Mutex // held for a whole round: remove waits for the round
	calls []*call
}

func newSender(metrics *ivr.Metrics, shards int) *sender {
	if shards <= 0 {
		// One shard per core: measured with 1000 calls on 2 cores, four
		// per core cost 20% more CPU and paced no better (bench/README.md).
		shards = runtime.GOMAXPROCS(0)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &sender{metrics: metrics, cancel: cancel}
	for i := range shards {
		sh := &shard{}
		s.shards = append(s.shards, sh)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.run(ctx, sh, time.Duration(i)*audio.FrameDuration/time.Duration(shards))
		}()
	}
	return s
}

// add puts a call on the least recently chosen shard.
func (s *sender) add(c *call) {
	sh := s.shards[int(s.next.Add(1))%len(s.shards)]
	sh.mu.Lock()
	sh.calls = append(sh.calls, c)
	c.shard = sh
	sh.mu.Unlock()
}

// remove takes a call off its shard; when it returns, the shard no longer
// touches the call.
func (s *sender) remove(c *call) {
	sh := c.shard
	if sh == nil {
		return
	}
	sh.mu.Lock()
	for i, x := range sh.calls {
		if x == c {
			last := len(sh.calls) - 1
			sh.calls[i] = sh.calls[last]
			sh.calls[last] = nil
			sh.calls = sh.calls[:last]
			break
		}
	}
	c.shard = nil
	sh.mu.Unlock()
}

// close stops the shards.
func (s *sender) close() {
	s.cancel()
	s.wg.Wait()
}

func (s *sender) run(ctx context.Context, sh *shard, phase time.Duration) {
	clock := audio.SystemClock{}
	if clock.Sleep(ctx, phase) != nil {
		return
	}
	pacer := audio.NewPacer(clock)
	var skips uint64
	for {
		if err := pacer.Wait(ctx); err != nil {
			return
		}
		if n := pacer.Skips(); n != skips {
			s.metrics.PacerSkips.Add(n - skips)
			skips = n
		}
		sh.mu.Lock()
		for _, c := range sh.calls {
			c.sendFrame(time.Now())
		}
		sh.mu.Unlock()
	}
}
