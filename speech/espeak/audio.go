package espeak

import (
	"container/list"
	"context"
	"io"
	"sync"
	"sync/atomic"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/speech"
)

var errEOF = io.EOF

// resamplers holds idle 22050 Hz -> rate resamplers (their filters are
// large to build: about 21000 taps).
var resamplers = map[int]*sync.Pool{
	8000:  {New: func() any { r, _ := audio.NewResampler(nativeRate, 8000); return r }},
	16000: {New: func() any { r, _ := audio.NewResampler(nativeRate, 16000); return r }},
}

// liveAudio is an Audio fed by the renderer while the reader reads.
type liveAudio struct {
	ctx    context.Context
	rate   int
	closed atomic.Bool
	wake   chan struct{} // 1-buffered: "something changed"

	mu      sync.Mutex
	pending []int16 // rendered at nativeRate, not yet resampled
	done    bool
	err     error

	// reader side only
	rs      *audio.Resampler
	out     []int16 // resampled, not yet returned
	tmp     []int16
	flushed bool
	all     []int16 // every sample returned, for the cache
	onDone  func([]int16)
	ended   bool
}

var _ speech.Audio = (*liveAudio)(nil)

func newLiveAudio(ctx context.Context, rate int) *liveAudio {
	return &liveAudio{ctx: ctx, rate: rate, wake: make(chan struct{}, 1),
		rs: resamplers[rate].Get().(*audio.Resampler)}
}

func (a *liveAudio) signal() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// stopped says whether the reader gave up (Close or its context).
func (a *liveAudio) stopped() bool { return a.closed.Load() || a.ctx.Err() != nil }

// push is called by the renderer with samples it owns: they are copied.
func (a *liveAudio) push(s []int16) {
	a.mu.Lock()
	a.pending = append(a.pending, s...)
	a.mu.Unlock()
	a.signal()
}

// finish is called once by the renderer when the text is done (err nil) or
// failed.
func (a *liveAudio) finish(err error) {
	a.mu.Lock()
	if !a.done {
		a.done, a.err = true, err
	}
	a.mu.Unlock()
	a.signal()
}

func (a *liveAudio) ReadFrame(frame []int16) error {
	if err := speech.CheckFrame(frame, a.rate); err != nil {
		return err
	}
	n := len(frame)
	for {
		if a.closed.Load() {
			return speech.ErrClosed
		}
		if err := a.ctx.Err(); err != nil {
			return err
		}
		if a.ended {
			return io.EOF
		}
		if len(a.out) >= n {
			copy(frame, a.out[:n])
			a.out = a.out[n:]
			if a.onDone != nil {
				a.all = append(a.all, frame...)
			}
			return nil
		}
		a.mu.Lock()
		pending, done, err := a.pending, a.done, a.err
		a.pending = nil
		a.mu.Unlock()
		if err != nil {
			return err
		}
		if len(pending) > 0 {
			a.resample(pending)
			continue
		}
		if done {
			if !a.flushed {
				a.flushed = true
				a.resample(make([]int16, 256)) // push the filter's tail out
				continue
			}
			if len(a.out) > 0 {
				copy(frame, a.out)
				clear(frame[len(a.out):])
				a.out = a.out[:0]
				if a.onDone != nil {
					a.all = append(a.all, frame...)
				}
				return nil
			}
			a.ended = true
			a.rs.Reset()
			resamplers[a.rate].Put(a.rs)
			a.rs = nil
			if a.onDone != nil {
				a.onDone(a.all)
				a.onDone, a.all = nil, nil
			}
			return io.EOF
		}
		select {
		case <-a.wake:
		case <-a.ctx.Done():
		}
	}
}

func (a *liveAudio) resample(src []int16) {
	need := a.rs.OutLen(len(src))
	if cap(a.tmp) < need {
		a.tmp = make([]int16, need)
	}
	k := a.rs.Process(a.tmp[:need], src)
	// compact out before appending so it does not grow without bound
	if len(a.out) == 0 {
		a.out = a.out[:0]
	}
	a.out = append(a.out, a.tmp[:k]...)
}

// Close stops the rendering (the renderer aborts at its next buffer).
func (a *liveAudio) Close() error {
	if a.closed.Swap(true) {
		return nil
	}
	a.signal()
	// The resampler goes back to its pool only from the reader, at the
	// end of a stream read to the end (Close may run on another goroutine
	// while the reader still uses it).
	return nil
}

// cachedAudio replays a rendering from the cache.
type cachedAudio struct {
	ctx    context.Context
	pcm    []int16 // shared with the cache: read only
	pos    int
	rate   int
	closed atomic.Bool
}

func newCachedAudio(ctx context.Context, pcm []int16, rate int) *cachedAudio {
	return &cachedAudio{ctx: ctx, pcm: pcm, rate: rate}
}

func (a *cachedAudio) ReadFrame(frame []int16) error {
	if err := speech.CheckFrame(frame, a.rate); err != nil {
		return err
	}
	if a.closed.Load() {
		return speech.ErrClosed
	}
	if err := a.ctx.Err(); err != nil {
		return err
	}
	if a.pos >= len(a.pcm) {
		return io.EOF
	}
	n := copy(frame, a.pcm[a.pos:])
	clear(frame[n:])
	a.pos += n
	return nil
}

func (a *cachedAudio) Close() error {
	a.closed.Store(true)
	return nil
}

// lru is a byte-bounded least-recently-used cache of renderings. Safe for
// concurrent use; the slices it hands out must not be modified.
type lru struct {
	mu    sync.Mutex
	max   int
	size  int
	ll    *list.List
	items map[cacheKey]*list.Element
}

type lruEntry struct {
	key cacheKey
	pcm []int16
}

func newLRU(max int) *lru {
	return &lru{max: max, ll: list.New(), items: map[cacheKey]*list.Element{}}
}

func (c *lru) get(k cacheKey) ([]int16, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*lruEntry).pcm, true
	}
	return nil, false
}

func (c *lru) put(k cacheKey, pcm []int16) {
	sz := 2*len(pcm) + len(k.text) + 64
	c.mu.Lock()
	defer c.mu.Unlock()
	if sz > c.max {
		return
	}
	if e, ok := c.items[k]; ok {
		c.ll.MoveToFront(e)
		return
	}
	c.items[k] = c.ll.PushFront(&lruEntry{k, pcm})
	c.size += sz
	for c.size > c.max {
		e := c.ll.Back()
		ent := e.Value.(*lruEntry)
		c.ll.Remove(e)
		delete(c.items, ent.key)
		c.size -= 2*len(ent.pcm) + len(ent.key.text) + 64
	}
}

func (c *lru) stats() (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items), c.size
}
