package espeak

import (
	"container/list"
	"context"
	"sync"
	"sync/atomic"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/speech"
)

// resamplers holds idle 22050 Hz -> rate resamplers (their filters are
// large to build: about 21000 taps).
var resamplers = map[int]*sync.Pool{
	8000:  {New: func() any { r, _ := audio.NewResampler(nativeRate, 8000); return r }},
	16000: {New: func() any { r, _ := audio.NewResampler(nativeRate, 16000); return r }},
}

// liveAudio is an Audio fed by the renderer while the reader reads: the
// renderer pushes samples at nativeRate, the reader's FrameBuffer
// resamples them to the call's rate.
type liveAudio struct {
	*speech.BufferedAudio
	ctx    context.Context
	live   *speech.Live
	rate   int
	closed atomic.Bool

	// reader side only
	rs     *audio.Resampler
	all    []int16 // every sample returned, for the cache
	onDone func([]int16)
}

var _ speech.Audio = (*liveAudio)(nil)

func newLiveAudio(ctx context.Context, rate int) *liveAudio {
	a := &liveAudio{ctx: ctx, rate: rate, rs: resamplers[rate].Get().(*audio.Resampler)}
	a.live = speech.NewLive(ctx, func() { a.closed.Store(true) })
	a.BufferedAudio = speech.NewBufferedAudio(ctx, rate, a.live)
	a.Buffer().Resample(a.rs, 256) // the tail pushes the filter's last samples out
	a.OnEnd(a.end)
	return a
}

// stopped says whether the reader gave up (Close or its context).
func (a *liveAudio) stopped() bool { return a.closed.Load() || a.ctx.Err() != nil }

// push is called by the renderer with samples it owns: they are copied.
func (a *liveAudio) push(s []int16) { a.live.Push(s) }

// finish is called once by the renderer when the text is done (err nil) or
// failed.
func (a *liveAudio) finish(err error) { a.live.Finish(err) }

func (a *liveAudio) ReadFrame(frame []int16) error {
	err := a.BufferedAudio.ReadFrame(frame)
	if err == nil && a.onDone != nil {
		a.all = append(a.all, frame...)
	}
	return err
}

// end runs when the audio was read to its end: the resampler goes back to
// its pool (only from the reader: Close may run on another goroutine
// while the reader still uses it), the rendering to the cache.
func (a *liveAudio) end() {
	a.rs.Reset()
	resamplers[a.rate].Put(a.rs)
	a.rs = nil
	if a.onDone != nil {
		a.onDone(a.all)
		a.onDone, a.all = nil, nil
	}
}

// newCachedAudio replays a rendering from the cache (pcm is shared with
// the cache: read only).
func newCachedAudio(ctx context.Context, pcm []int16, rate int) speech.Audio {
	return speech.NewPCMAudio(ctx, pcm, rate)
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
