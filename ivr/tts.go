package ivr

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/govline/ivr/audio"
)

// Synthesizer renders what a flow says into PCM for a call. Implementations
// are safe for concurrent use; the returned slice is shared and read-only.
type Synthesizer interface {
	Synthesize(ctx context.Context, lang, text string, rate int) ([]int16, error)
}

// RenderCache is the Synthesizer of the embedded line until the speech
// engines replace it: espeak-ng renders each distinct text once into
// Dir/LANG/HASH.wav (16 kHz), and the PCM of recent texts stays in memory at
// each rate asked, so a fixed prompt costs a map lookup after its first call.
// It also loads recorded WAV prompts (Load) through the same memory cache.
type RenderCache struct {
	Dir     string // disk cache of rendered texts
	MaxMem  int    // entries kept in memory; 0 means 512
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

// Synthesize returns the text spoken in lang at rate.
func (c *RenderCache) Synthesize(ctx context.Context, lang, text string, rate int) ([]int16, error) {
	sum := sha256.Sum256([]byte(lang + "\x00" + text))
	h := hex.EncodeToString(sum[:12])
	wav := filepath.Join(c.Dir, SafeFileName(lang), h+".wav")
	return c.get(ctx, cacheKey{src: "tts:" + lang + ":" + h, rate: rate}, func() ([]int16, error) {
		if _, err := os.Stat(wav); err != nil {
			txt := wav + ".txt"
			if err := ensureDir(txt); err != nil {
				return nil, err
			}
			if err := os.WriteFile(txt, []byte(text), 0o640); err != nil {
				return nil, err
			}
			defer os.Remove(txt)
			if err := renderPrompt(txt, wav, lang); err != nil {
				return nil, err
			}
		}
		return audio.LoadWAVFile(wav, rate)
	})
}

// Load returns a recorded WAV file at rate, cached until the file changes.
func (c *RenderCache) Load(ctx context.Context, path string, rate int) ([]int16, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("recorded prompt: %w", err)
	}
	key := cacheKey{src: fmt.Sprintf("wav:%s:%d:%d", path, fi.ModTime().UnixNano(), fi.Size()), rate: rate}
	return c.get(ctx, key, func() ([]int16, error) { return audio.LoadWAVFile(path, rate) })
}

// get returns the cached PCM for k or renders it once, however many calls
// ask for it at the same moment.
func (c *RenderCache) get(ctx context.Context, k cacheKey, render func() ([]int16, error)) ([]int16, error) {
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
	rc.pcm, rc.err = render()
	if rc.err == nil && len(rc.pcm) == 0 {
		rc.err = fmt.Errorf("rendered prompt holds no audio")
	}
	c.mu.Lock()
	delete(c.pending, k)
	if rc.err == nil {
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
