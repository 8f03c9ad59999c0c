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
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/flows"
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
	pending map[cacheKey]*renderCall // recorded prompts being loaded
	jobs    map[string]*renderJob    // texts being rendered, by key source
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
// that asked hangs up: the calls saying it at the same moment, and the
// next ones, get it).
const renderTimeout = 30 * time.Second

// renderVersion changes the disk cache's keys when what a render holds
// changes (v2: the trailing silence trimmed to tailKeep).
const renderVersion = "v2\x00"

// textKey is the cache key of a text at rate and its file on disk.
func (c *RenderCache) textKey(lang, text string, rate int) (cacheKey, string) {
	sum := sha256.Sum256([]byte(renderVersion + c.Name + "\x00" + lang + "\x00" + text))
	h := hex.EncodeToString(sum[:12])
	return cacheKey{src: "tts:" + lang + ":" + h, rate: rate}, filepath.Join(c.Dir, SafeFileName(lang), h+".wav")
}

// Synthesize returns the text spoken in lang at rate, whole: from memory,
// from disk, or once its render (shared with any call streaming it) is
// over.
func (c *RenderCache) Synthesize(ctx context.Context, lang, text string, rate int) ([]int16, error) {
	if err := speech.CheckRate(rate); err != nil {
		return nil, err
	}
	k, wav := c.textKey(lang, text, rate)
	if pcm, ok := c.memory(k); ok {
		return pcm, nil
	}
	j := c.job(k.src)
	if j == nil {
		if pcm, ok := c.fromDisk(k, wav); ok {
			return pcm, nil
		}
		j, _ = c.startJob(k.src, lang, text, wav)
	}
	c.keepRate(j, rate)
	select {
	case <-j.stored:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
	if j.err != nil {
		return nil, j.err
	}
	if pcm, ok := c.memory(k); ok {
		return pcm, nil
	}
	// Not kept (a fallback spoke it, or the rate came too late).
	return audio.Resample(j.all(), renderRate, rate)
}

// fromDisk loads k's rendering from the disk cache into memory.
func (c *RenderCache) fromDisk(k cacheKey, wav string) ([]int16, bool) {
	if _, err := os.Stat(wav); err != nil {
		return nil, false
	}
	pcm, err := audio.LoadWAVFile(wav, k.rate)
	if err != nil {
		return nil, false
	}
	c.keep(k, pcm)
	return pcm, true
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

// Stream returns the text's audio at rate, to play while it renders:
//   - a text in memory comes whole, at once;
//   - a text being rendered (for another call, or by Warm) comes frame by
//     frame from that same render, as far as it has gone: calls that need
//     a prompt at the same moment share one render and none waits for it
//     to finish;
//   - a text on disk is read from there;
//   - any other starts a render, which goes on to its end whoever hangs
//     up, and is then kept on disk and in memory.
//
// When Engine fails before its first frame, Fallback renders the text;
// when it fails in the middle, Fallback speaks the text again from its
// start; neither is cached (the next call asks Engine again).
// ReadFrame and Close are called from one goroutine.
func (c *RenderCache) Stream(ctx context.Context, lang, text string, rate int) (speech.Audio, error) {
	if err := speech.CheckRate(rate); err != nil {
		return nil, err
	}
	k, wav := c.textKey(lang, text, rate)
	if pcm, ok := c.memory(k); ok {
		return newPCMAudio(pcm, rate), nil
	}
	if j := c.job(k.src); j != nil {
		return j.reader(ctx, rate), nil
	}
	// The disk is looked at outside the cache's lock.
	if pcm, ok := c.fromDisk(k, wav); ok {
		return newPCMAudio(pcm, rate), nil
	}
	j, _ := c.startJob(k.src, lang, text, wav)
	c.keepRate(j, rate)
	return j.reader(ctx, rate), nil
}

// memory returns the PCM of k kept in memory.
func (c *RenderCache) memory(k cacheKey) ([]int16, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.initMaps()
	if el, ok := c.mem[k]; ok {
		c.lru.MoveToFront(el)
		return el.Value.(*cacheEntry).pcm, true
	}
	return nil, false
}

// job returns the render of the text src in progress, if any.
func (c *RenderCache) job(src string) *renderJob {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.initMaps()
	return c.jobs[src]
}

// startJob starts rendering a text, unless a render of it is already in
// progress (then that one is returned, started false).
func (c *RenderCache) startJob(src, lang, text, wav string) (j *renderJob, started bool) {
	c.mu.Lock()
	c.initMaps()
	if j := c.jobs[src]; j != nil {
		c.mu.Unlock()
		return j, false
	}
	j = &renderJob{src: src, wake: make(chan struct{}), stored: make(chan struct{}), rates: map[int]bool{}}
	c.jobs[src] = j
	c.mu.Unlock()
	go c.render(j, lang, text, wav)
	return j, true
}

// keepRate asks that the finished render be kept in memory at rate too.
func (c *RenderCache) keepRate(j *renderJob, rate int) {
	j.mu.Lock()
	j.rates[rate] = true
	j.mu.Unlock()
}

// render runs one job to its end: the engine's frames are published as
// they come; the finished render goes to disk and to memory (at the
// rates the calls asked for), unless a fallback spoke it.
func (c *RenderCache) render(j *renderJob, lang, text, wav string) {
	// A panic in the engine fails this render (the calls playing it hear
	// the fallback or an error), not the process.
	defer Recover(c.Metrics, c.logger(), "prompt render", func(v any) {
		j.mu.Lock()
		done := j.done
		j.mu.Unlock()
		if !done {
			j.finish(PanicError(v))
		}
		c.mu.Lock()
		if c.jobs[j.src] == j {
			delete(c.jobs, j.src)
		}
		c.mu.Unlock()
		select {
		case <-j.stored:
		default:
			close(j.stored) // only this goroutine closes it
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), renderTimeout)
	defer cancel()
	keep, err := c.renderInto(ctx, j, lang, text)
	j.finish(err) // the calls playing it go on before the disk is touched
	defer close(j.stored)
	defer func() {
		// Kept in memory first: a call coming after this finds the
		// text there, or still finds the job.
		c.mu.Lock()
		delete(c.jobs, j.src)
		c.mu.Unlock()
	}()
	if err != nil || !keep {
		return
	}
	pcm := j.all()
	if err := writeWAVFile(wav, pcm, renderRate); err != nil {
		c.logger().Warn("rendered prompt not kept on disk", "err", err)
	}
	j.mu.Lock()
	rates := slices.Collect(maps.Keys(j.rates))
	j.keptRates = true
	j.mu.Unlock()
	for _, r := range rates {
		if out, err := audio.Resample(pcm, renderRate, r); err == nil {
			k, _ := c.textKey(lang, text, r)
			c.keep(k, out)
		}
	}
}

// renderInto feeds the job from Engine (or Fallback); keep reports
// whether the result may be cached.
func (c *RenderCache) renderInto(ctx context.Context, j *renderJob, lang, text string) (keep bool, err error) {
	eng, err := c.engine()
	var src speech.Audio
	if err == nil {
		src, err = eng.Synthesize(ctx, speech.SynthRequest{Text: text, Lang: lang, Rate: renderRate})
	}
	if err == nil {
		defer src.Close()
		frame := make([]int16, audio.SamplesPerFrame(renderRate))
		for {
			err = src.ReadFrame(frame)
			if err != nil {
				break
			}
			j.publish(frame)
		}
		if errors.Is(err, io.EOF) {
			if j.len() == 0 {
				return false, fmt.Errorf("%w: the synthesizer gave no audio", speech.ErrEngine)
			}
			j.trimTail()
			return true, nil
		}
	}
	// The engine failed, before its first frame or in the middle: the
	// fallback says the text (again from its start).
	pcm, ferr := c.fallback(ctx, lang, text, renderRate, err)
	if ferr != nil {
		return false, ferr
	}
	j.publish(pcm)
	return false, nil
}

func (c *RenderCache) logger() *slog.Logger {
	if c.Log != nil {
		return c.Log
	}
	return slog.Default()
}

// keep puts pcm in the memory cache under k.
func (c *RenderCache) keep(k cacheKey, pcm []int16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.initMaps()
	if el, ok := c.mem[k]; ok {
		c.lru.MoveToFront(el)
		return
	}
	c.mem[k] = c.lru.PushFront(&cacheEntry{key: k, pcm: pcm})
	c.trim()
}

// Warm renders the texts that are not on disk yet, one at a time (so a
// live call's new prompt waits for at most one of them), into the disk
// cache: a call that needs one later reads it from there (about a
// millisecond) instead of waiting for its render. Memory is left to the
// calls (the LRU keeps what they use). It returns when all are on disk or
// ctx ends, with the number rendered and the first error.
func (c *RenderCache) Warm(ctx context.Context, texts []flows.Text) (rendered int, err error) {
	for _, t := range texts {
		if ctx.Err() != nil {
			return rendered, context.Cause(ctx)
		}
		k, wav := c.textKey(t.Lang, t.Text, renderRate)
		if _, serr := os.Stat(wav); serr == nil {
			continue
		}
		j, started := c.startJob(k.src, t.Lang, t.Text, wav)
		if started {
			rendered++
		}
		select {
		case <-j.stored:
		case <-ctx.Done():
			return rendered, context.Cause(ctx)
		}
		if j.err != nil && err == nil {
			err = fmt.Errorf("prompt %q (%s): %w", t.Text, t.Lang, j.err)
		}
	}
	return rendered, err
}

// renderJob is one text being rendered: the frames rendered so far (at
// renderRate), shared by every call playing it.
type renderJob struct {
	src       string
	stored    chan struct{} // closed once the render is over and kept (or not)
	mu        sync.Mutex
	pcm       []int16       // grows as the engine renders
	done      bool          // no more frames
	err       error         // the render failed (set before done)
	wake      chan struct{} // closed (and replaced) when pcm grows or the job ends
	rates     map[int]bool  // rates to keep the finished render at
	keptRates bool          // rates were read: later ones are not kept
}

func (j *renderJob) publish(pcm []int16) {
	j.mu.Lock()
	j.pcm = append(j.pcm, pcm...)
	close(j.wake)
	j.wake = make(chan struct{})
	j.mu.Unlock()
}

func (j *renderJob) finish(err error) {
	j.mu.Lock()
	j.done, j.err = true, err
	close(j.wake)
	j.wake = make(chan struct{})
	j.mu.Unlock()
}

// tailKeep is the silence a rendered text keeps at its end. Engines end a
// text with a sentence's pause (espeak-ng: about 400 ms); between two
// prompts the next one's own start is pause enough, and after a question
// the caller is listened to sooner.
const tailKeep = renderRate / 5 // 200 ms

// quietSample is the level (16-bit units, about -50 dBFS) under which the
// end of a render counts as silence.
const quietSample = 100

// trimTail drops the render's trailing silence beyond tailKeep. A call that
// has already played into it plays on to its end as if it were there
// (since never returns past the end).
func (j *renderJob) trimTail() {
	j.mu.Lock()
	defer j.mu.Unlock()
	n := len(j.pcm)
	for n > 0 && j.pcm[n-1] < quietSample && j.pcm[n-1] > -quietSample {
		n--
	}
	if keep := n + tailKeep; keep < len(j.pcm) {
		j.pcm = j.pcm[:keep:keep]
	}
}

func (j *renderJob) len() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.pcm)
}

// all is the whole render (once done): pcm is never changed once
// appended, so the slice is shared.
func (j *renderJob) all() []int16 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.pcm
}

// since returns the samples from off on, whether the job is over, its
// error, and a channel closed when there is more.
func (j *renderJob) since(off int) ([]int16, bool, error, <-chan struct{}) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.pcm[min(off, len(j.pcm)):], j.done, j.err, j.wake
}

// reader plays the job at rate for one call.
func (j *renderJob) reader(ctx context.Context, rate int) speech.Audio {
	a := speech.NewBufferedAudio(nil, rate, &jobReader{j: j, ctx: ctx})
	if rate != renderRate {
		// Resampled as audio.Resample gives it whole: what the cache
		// keeps, sample for sample.
		rs, _ := audio.NewResampler(renderRate, rate)
		a.Buffer().ResampleExact(rs)
	}
	return a
}

// jobReader is the Source of one call's playback of a renderJob: it gives
// what has been rendered and waits (for at most ctx) for more.
type jobReader struct {
	j   *renderJob
	ctx context.Context
	off int // samples of j.pcm consumed
}

// Fill implements speech.Source.
func (r *jobReader) Fill(b *speech.FrameBuffer) error {
	more, done, err, wake := r.j.since(r.off)
	switch {
	case len(more) > 0:
		r.off += len(more)
		b.Write(more)
	case done && err != nil:
		return err
	case done:
		b.End()
		return io.EOF
	default:
		select {
		case <-wake:
		case <-r.ctx.Done():
			return context.Cause(r.ctx)
		}
	}
	return nil
}

// Stop implements speech.Source: this call's playback stops (Close is
// called from the reader's goroutine); the render goes on for the others
// and for the cache.
func (r *jobReader) Stop() {}

// newPCMAudio plays a whole PCM frame by frame, padded with silence to a
// whole frame; its Remaining says where it ends.
func newPCMAudio(pcm []int16, rate int) speech.Audio { return speech.PCMAudio(pcm, rate) }

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
		c.jobs = map[string]*renderJob{}
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
		c.trim()
	}
	c.mu.Unlock()
	close(rc.done)
}

// trim drops the least recently used entries past MaxMem; c.mu is held.
func (c *RenderCache) trim() {
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
