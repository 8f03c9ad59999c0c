package ivr

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
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

// Synthesize returns the text spoken in lang at rate.
func (c *RenderCache) Synthesize(ctx context.Context, lang, text string, rate int) ([]int16, error) {
	sum := sha256.Sum256([]byte(c.Name + "\x00" + lang + "\x00" + text))
	h := hex.EncodeToString(sum[:12])
	wav := filepath.Join(c.Dir, SafeFileName(lang), h+".wav")
	return c.get(ctx, cacheKey{src: "tts:" + lang + ":" + h, rate: rate}, func() ([]int16, bool, error) {
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

// render speaks text through Engine, or Fallback when Engine fails.
func (c *RenderCache) render(ctx context.Context, lang, text string) (pcm []int16, fellBack bool, err error) {
	c.initOnce.Do(func() {
		if c.Engine == nil {
			c.Engine, c.initErr = espeak.New(espeak.Options{CacheBytes: -1})
		}
	})
	if c.initErr != nil {
		return nil, false, fmt.Errorf("speech synthesis: %w", c.initErr)
	}
	req := speech.SynthRequest{Text: text, Lang: lang, Rate: renderRate}
	pcm, err = synthesizeAll(ctx, c.Engine, req)
	if err == nil || c.Fallback == nil {
		return pcm, false, err
	}
	log := c.Log
	if log == nil {
		log = slog.Default()
	}
	log.Warn("speech synthesis failed: the fallback synthesizer speaks this prompt", "lang", lang, "err", err)
	if c.Metrics != nil {
		c.Metrics.SynthFallbacks.Add(1)
	}
	pcm, err = synthesizeAll(ctx, c.Fallback, req)
	return pcm, true, err
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
	c.mu.Lock()
	if c.mem == nil {
		c.mem = map[cacheKey]*list.Element{}
		c.lru = list.New()
		c.pending = map[cacheKey]*renderCall{}
	}
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
	var keep bool
	rc.pcm, keep, rc.err = render()
	if rc.err == nil && len(rc.pcm) == 0 {
		rc.err = fmt.Errorf("rendered prompt holds no audio")
	}
	c.mu.Lock()
	delete(c.pending, k)
	if rc.err == nil && keep {
		c.mem[k] = c.lru.PushFront(&cacheEntry{key: k, pcm: rc.pcm})
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
	return rc.pcm, rc.err
}
