package ari

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govline/ivr/audio"
)

// sender paces the outbound RTP of every call, as the SIP endpoint does:
// instead of a goroutine and a timer per call (50 wake-ups a second each),
// one goroutine per core wakes every 20 ms on an absolute schedule and
// sends one packet for each of its calls. Shards start at staggered phases
// so the packets of all calls spread over the 20 ms. It runs while Serve
// runs; add and remove are safe for concurrent use.
type sender struct {
	shards []*shard
	next   atomic.Uint32
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type shard struct {
	mu    sync.Mutex // held for a whole round: remove waits for the round
	calls []*call
}

func newSender(s *Server) *sender {
	n := runtime.GOMAXPROCS(0)
	ctx, cancel := context.WithCancel(context.Background())
	snd := &sender{cancel: cancel}
	for i := range n {
		sh := &shard{}
		snd.shards = append(snd.shards, sh)
		snd.wg.Add(1)
		go func() {
			defer snd.wg.Done()
			snd.run(ctx, s, sh, time.Duration(i)*audio.FrameDuration/time.Duration(n))
		}()
	}
	return snd
}

func (snd *sender) add(c *call) {
	sh := snd.shards[int(snd.next.Add(1))%len(snd.shards)]
	sh.mu.Lock()
	sh.calls = append(sh.calls, c)
	c.shard = sh
	sh.mu.Unlock()
}

// remove takes a call off its shard; when it returns, the shard no longer
// touches the call.
func (snd *sender) remove(c *call) {
	sh := c.shard
	if sh == nil {
		return
	}
	sh.mu.Lock()
	for i, x := range sh.calls {
		if x == c {
			last := len(sh.calls) - 1
			sh.calls[i], sh.calls[last] = sh.calls[last], nil
			sh.calls = sh.calls[:last]
			break
		}
	}
	c.shard = nil
	sh.mu.Unlock()
}

func (snd *sender) close() {
	snd.cancel()
	snd.wg.Wait()
}

func (snd *sender) run(ctx context.Context, s *Server, sh *shard, phase time.Duration) {
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
			s.eng.Metrics.PacerSkips.Add(n - skips)
			skips = n
		}
		sh.mu.Lock()
		for _, c := range sh.calls {
			c.sendFrame(time.Now())
		}
		sh.mu.Unlock()
	}
}
