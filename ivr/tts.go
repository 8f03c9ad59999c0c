package ivr

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/speech"
	"github.com/govline/ivr/speech/espeak"
)

// Synthesizer renders what a flow says into PCM for a call. Implementations
// are safe for concurrent use; the returned slice is shared and read-only.
type Synthesizer interface {
	Synthesize(ctx context.Context, lang, text string, rate int) ([]int16, error)
}

// RenderCache is the line's Synthesizer: a speech engine renders each
// distinct text once into Dir/LANG/HASH.wav (16 kHz), and the PCM of recent
// texts stays in memory at each rate asked, so a fixed prompt costs a map
// lookup after its first call. It also loads recorded WAV prompts (Load)
// through the same memory cache.
//
// Engine is the first rung of the synthesis ladder; when it fails, Fallback
// renders the text (not cached: the next call asks Engine again), and only
// when that fails too does the prompt fail.
type RenderCache struct {
	Dir    string // disk cache of rendered texts
	MaxMem int    // entries kept in memory; 0 means 512
	// Engine renders texts; nil means the embedded espeak-ng
	// (speech/espeak, in process).
	Engine speech.Synthesizer
	// Name tells Engine's renders apart in the disk cache ("" for the
	// embedded espeak-ng): change it when the engine or its voice changes.
	Name string
	// Fallback renders a text Engine failed on; nil: none.
	Fallback speech.Synthesizer
	Log      *slog.Logger // nil: slog.Default()
	Metrics  *Metrics     // counts fallbacks; may be nil

	initOnce sync.Once
	initErr  error

	mu      sync.Mutex
	mem     map[cacheKey]*list.Element
	lru     *list.List
	pending map[cacheKey]*renderCall
}

type cacheKey struct {
	src  string // "tts:LANG:HASH" or "wav:PATH:MTIME"
	rate int
}

type cacheEntry struct {
	key cacheKey
	pcm []int16
}

type renderCall struct {
	done chan struct{}
	pcm  []int16
	err  error
}

var _ Synthesizer = (*RenderCache)(nil)

// renderRate is the rate texts are rendered and kept on disk at.
const renderRate = 16000

// renderTimeout bounds one text's rendering (it goes on after the call
// that asked hangs up: the next call saying it gets it from the cache).
const renderTimeout = 30 * time.Second

// textKey is the cache key of a text at rate and its file on disk.
func (c *RenderCache) textKey(lang, text string, rate int) (cacheKey, string) {
	sum := sha256.Sum256([]byte(c.Name + "\x00" + lang + "\x00" + text))
	h := hex.EncodeToString(sum[:12])
	return cacheKey{src: "tts:" + lang + ":" + h, rate: rate}, filepath.Join(c.Dir, SafeFileName(lang), h+".wav")
}

// Synthesize returns the text spoken in lang at rate.
func (c *RenderCache) Synthesize(ctx context.Context, lang, text string, rate int) ([]int16, error) {
	k, wav := c.textKey(lang, text, rate)
	return c.get(ctx, k, func() ([]int16, bool, error) {
		if _, err := os.Stat(wav); err == nil {
			pcm, err := audio.LoadWAVFile(wav, rate)
			return pcm, err == nil, err
		}
		rctx, cancel := context.WithTimeout(context.Background(), renderTimeout)
		defer cancel()
		pcm, fellBack, err := c.render(rctx, lang, text)
		if err != nil {
			return nil, false, err
		}
		if fellBack {
			// Not cached: the next call asks Engine again.
			pcm, err = audio.Resample(pcm, renderRate, rate)
			return pcm, false, err
		}
		if err := writeWAVFile(wav, pcm, renderRate); err != nil {
			return nil, false, err
		}
		pcm, err = audio.Resample(pcm, renderRate, rate)
		return pcm, err == nil, err
	})
}

// engine returns Engine, the embedded espeak-ng when none was set.
func (c *RenderCache) engine() (speech.Synthesizer, error) {
	c.initOnce.Do(func() {
		if c.Engine == nil {
			c.Engine, c.initErr = espeak.New(espeak.Options{CacheBytes: -1})
		}
	})
	if c.initErr != nil {
		return nil, fmt.Errorf("speech synthesis: %w", c.initErr)
	}
	return c.Engine, nil
}

// render speaks text through Engine, or Fallback when Engine fails.
func (c *RenderCache) render(ctx context.Context, lang, text string) (pcm []int16, fellBack bool, err error) {
	eng, err := c.engine()
	if err != nil {
		return nil, false, err
	}
	req := speech.SynthRequest{Text: text, Lang: lang, Rate: renderRate}
	pcm, err = synthesizeAll(ctx, eng, req)
	if err == nil || c.Fallback == nil {
		return pcm, false, err
	}
	pcm, err = c.fallback(ctx, lang, text, renderRate, err)
	return pcm, true, err
}

// fallback renders text with Fallback at rate after Engine failed with
// cause, and counts it.
func (c *RenderCache) fallback(ctx context.Context, lang, text string, rate int, cause error) ([]int16, error) {
	if c.Fallback == nil {
		return nil, cause
	}
	log := c.Log
	if log == nil {
		log = slog.Default()
	}
	log.Warn("speech synthesis failed: the fallback synthesizer speaks this prompt", "lang", lang, "err", cause)
	if c.Metrics != nil {
		c.Metrics.SynthFallbacks.Add(1)
	}
	return synthesizeAll(ctx, c.Fallback, speech.SynthRequest{Text: text, Lang: lang, Rate: rate})
}

// errRerender tells the callers waiting for a streamed render that it was
// abandoned: they render the text themselves.
var errRerender = errors.New("streamed render abandoned")

// Stream returns the text's audio at rate, to play while it renders. A
// text in the cache (memory or disk), or that another call is rendering,
// comes whole as Synthesize gives it; any other comes frame by frame as
// the engine renders it, so a long answer starts playing after the
// engine's first frames, and joins the cache once it was read to its end.
// When Engine fails before the first frame, Fallback renders the text
// whole; when it fails in the middle, Fallback speaks the text again from
// its start. Neither is cached. ReadFrame and Close are called from one
// goroutine.
func (c *RenderCache) Stream(ctx context.Context, lang, text string, rate int) (speech.Audio, error) {
	k, wav := c.textKey(lang, text, rate)
	var rc *renderCall
	c.mu.Lock()
	c.initMaps()
	if _, cached := c.mem[k]; !cached && speech.CheckRate(rate) == nil {
		if _, busy := c.pending[k]; !busy {
			if _, err := os.Stat(wav); err != nil {
				rc = &renderCall{done: make(chan struct{})}
				c.pending[k] = rc
			}
		}
	}
	c.mu.Unlock()
	if rc == nil {
		pcm, err := c.Synthesize(ctx, lang, text, rate)
		if err != nil {
			return nil, err
		}
		return speech.PCMAudio(pcm, rate), nil
	}
	eng, err := c.engine()
	var src speech.Audio
	if err == nil {
		src, err = eng.Synthesize(ctx, speech.SynthRequest{Text: text, Lang: lang, Rate: renderRate})
	}
	if err != nil {
		c.resolve(k, rc, nil, false, errRerender)
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		pcm, err := c.fallback(ctx, lang, text, rate, err)
		if err != nil {
			return nil, err
		}
		return speech.PCMAudio(pcm, rate), nil
	}
	st := &streamAudio{c: c, ctx: ctx, k: k, wav: wav, rc: rc, src: src, lang: lang, text: text, rate: rate,
		in: make([]int16, audio.SamplesPerFrame(renderRate))}
	if rate != renderRate {
		st.rs, _ = audio.NewResampler(renderRate, rate)
	}
	return st, nil
}

// streamAudio plays a text while Engine renders it (RenderCache.Stream).
type streamAudio struct {
	c          *RenderCache
	ctx        context.Context
	k          cacheKey
	wav        string
	rc         *renderCall // resolved once: cached, or abandoned
	src        speech.Audio
	lang, text string
	rate       int
	rs         *audio.Resampler // nil at renderRate
	in, tmp    []int16
	all        []int16 // every sample rendered, at renderRate
	out        []int16 // samples at rate not yet played
	eof        bool    // no more from src (or the fallback's audio is in out)
	closed     bool
}

func (a *streamAudio) ReadFrame(frame []int16) error {
	if err := speech.CheckFrame(frame, a.rate); err != nil {
		return err
	}
	if a.closed {
		return speech.ErrClosed
	}
	for len(a.out) < len(frame) && !a.eof {
		err := a.src.ReadFrame(a.in)
		switch {
		case err == nil:
			a.all = append(a.all, a.in...)
			a.push(a.in)
		case errors.Is(err, io.EOF):
			a.eof = true
			if a.rs != nil {
				a.push(make([]int16, 256)) // the resampler's tail
			}
			a.cache()
		case a.ctx.Err() != nil:
			return context.Cause(a.ctx)
		default:
			// The engine failed in the middle of the text: the
			// fallback says it again from its start.
			a.src.Close()
			a.c.resolve(a.k, a.rc, nil, false, errRerender)
			pcm, ferr := a.c.fallback(a.ctx, a.lang, a.text, a.rate, err)
			if ferr != nil {
				return ferr
			}
			a.out, a.eof = pcm, true
		}
	}
	if len(a.out) == 0 {
		return io.EOF
	}
	n := copy(frame, a.out)
	clear(frame[n:])
	a.out = a.out[n:]
	return nil
}

// push appends src (at renderRate) to out at the call's rate.
func (a *streamAudio) push(src []int16) {
	if a.rs == nil {
		a.out = append(a.out, src...)
		return
	}
	need := a.rs.OutLen(len(src))
	if cap(a.tmp) < need {
		a.tmp = make([]int16, need)
	}
	k := a.rs.Process(a.tmp[:need], src)
	a.out = append(a.out, a.tmp[:k]...)
}

// cache keeps the whole rendering: on disk at renderRate, in memory at the
// call's rate (resampled whole, as Synthesize would give it).
func (a *streamAudio) cache() {
	if len(a.all) == 0 {
		a.c.resolve(a.k, a.rc, nil, false, fmt.Errorf("%w: the synthesizer gave no audio", speech.ErrEngine))
		return
	}
	pcm, err := audio.Resample(a.all, renderRate, a.rate)
	if err == nil {
		err = writeWAVFile(a.wav, a.all, renderRate)
	}
	if err != nil {
		a.c.resolve(a.k, a.rc, nil, false, errRerender)
		return
	}
	a.c.resolve(a.k, a.rc, pcm, true, nil)
}

// Close stops the rendering; a text not read to its end is not cached.
func (a *streamAudio) Close() error {
	if a.closed {
		return nil
	}
	a.closed = true
	a.c.resolve(a.k, a.rc, nil, false, errRerender)
	return a.src.Close()
}

func synthesizeAll(ctx context.Context, s speech.Synthesizer, req speech.SynthRequest) ([]int16, error) {
	a, err := s.Synthesize(ctx, req)
	if err != nil {
		return nil, err
	}
	pcm, err := speech.ReadAll(a, req.Rate)
	if err == nil && len(pcm) == 0 {
		err = fmt.Errorf("%w: the synthesizer gave no audio", speech.ErrEngine)
	}
	return pcm, err
}

// writeWAVFile writes pcm to path atomically (a reader never sees half a
// file).
func writeWAVFile(path string, pcm []int16, rate int) error {
	if err := ensureDir(path); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".render-*.wav")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := audio.WriteWAV(f, pcm, rate, 1); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// Load returns a recorded WAV file at rate, cached until the file changes.
func (c *RenderCache) Load(ctx context.Context, path string, rate int) ([]int16, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("recorded prompt: %w", err)
	}
	key := cacheKey{src: fmt.Sprintf("wav:%s:%d:%d", path, fi.ModTime().UnixNano(), fi.Size()), rate: rate}
	return c.get(ctx, key, func() ([]int16, bool, error) {
		pcm, err := audio.LoadWAVFile(path, rate)
		return pcm, err == nil, err
	})
}

// get returns the cached PCM for k or renders it once, however many calls
// ask for it at the same moment. render says whether its result may be
// kept.
func (c *RenderCache) get(ctx context.Context, k cacheKey, render func() ([]int16, bool, error)) ([]int16, error) {
	for {
		c.mu.Lock()
		c.initMaps()
		if el, ok := c.mem[k]; ok {
			c.lru.MoveToFront(el)
			pcm := el.Value.(*cacheEntry).pcm
			c.mu.Unlock()
			return pcm, nil
		}
		if rc, ok := c.pending[k]; ok {
			c.mu.Unlock()
			select {
			case <-rc.done:
				if errors.Is(rc.err, errRerender) {
					continue // a streamed render was abandoned: render it here
				}
				return rc.pcm, rc.err
			case <-ctx.Done():
				return nil, context.Cause(ctx)
			}
		}
		rc := &renderCall{done: make(chan struct{})}
		c.pending[k] = rc
		c.mu.Unlock()

		// The render goes on even if this caller hangs up: the next call
		// saying the same text gets it from the cache.
		pcm, keep, err := render()
		if err == nil && len(pcm) == 0 {
			err = fmt.Errorf("rendered prompt holds no audio")
		}
		c.resolve(k, rc, pcm, keep, err)
		return pcm, err
	}
}

func (c *RenderCache) initMaps() {
	if c.mem == nil {
		c.mem = map[cacheKey]*list.Element{}
		c.lru = list.New()
		c.pending = map[cacheKey]*renderCall{}
	}
}

// resolve ends the render rc of k (once: later calls do nothing), keeping
// pcm in memory when keep.
func (c *RenderCache) resolve(k cacheKey, rc *renderCall, pcm []int16, keep bool, err error) {
	c.mu.Lock()
	if c.pending[k] != rc {
		c.mu.Unlock()
		return
	}
	delete(c.pending, k)
	rc.pcm, rc.err = pcm, err
	if err == nil && keep {
		c.mem[k] = c.lru.PushFront(&cacheEntry{key: k, pcm: pcm})
		max := c.MaxMem
		if max <= 0 {
			max = 512
		}
		for c.lru.Len() > max {
			old := c.lru.Back()
			c.lru.Remove(old)
			delete(c.mem, old.Value.(*cacheEntry).key)
		}
	}
	c.mu.Unlock()
	close(rc.done)
}
