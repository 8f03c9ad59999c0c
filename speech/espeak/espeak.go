// Package espeak is the embedded speech synthesizer: espeak-ng (the
// libespeak-ng library, through cgo) behind speech.Synthesizer, with
// Romanian ("ro") and English ("en") voices and a cache of rendered
// prompts.
//
// espeak-ng keeps global state and is not re-entrant, so the process has
// one renderer goroutine that owns the library (locked to its OS thread)
// and renders one request at a time; it never waits for a reader (rendered
// audio queues in the request's Audio), so a slow or abandoned reader
// cannot hold up other calls. At about 300 times real time one renderer
// serves many calls. The first frames reach the reader as soon as espeak-ng
// hands over its first 20 ms buffer, before the rest of the text is
// rendered.
//
// Finished renderings are kept in an LRU cache keyed by text, language,
// voice, speed and rate: a fixed prompt is rendered once (Prerender warms
// the cache at start) and costs only a copy afterwards.
//
// Build needs libespeak-ng-dev (Debian) for the headers; at run time the
// library is loaded with dlopen (libespeak-ng1 and espeak-ng-data).
package espeak

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>
#include <stdint.h>
#include <espeak-ng/espeak_ng.h>
#include <espeak-ng/speak_lib.h>

// libespeak-ng is opened with dlopen and RTLD_DEEPBIND rather than linked:
// libsherpa-onnx-c-api (speech/silero) exports its own copy of the
// espeak-ng symbols, and in a binary with both the dynamic linker would
// bind our calls to that copy (another version, another data path).

extern int goSynthCallback(short *wav, int n, espeak_EVENT *events);

static int synthCallback(short *wav, int n, espeak_EVENT *events) {
	return goSynthCallback(wav, n, events);
}

static espeak_ng_STATUS (*p_InitializePath)(const char *);
static espeak_ng_STATUS (*p_Initialize)(espeak_ng_ERROR_CONTEXT *);
static espeak_ng_STATUS (*p_InitializeOutput)(espeak_ng_OUTPUT_MODE, int, const char *);
static void (*p_SetSynthCallback)(t_espeak_callback *);
static int (*p_GetSampleRate)(void);
static espeak_ng_STATUS (*p_SetVoiceByName)(const char *);
static espeak_ng_STATUS (*p_SetParameter)(espeak_PARAMETER, int, int);
static espeak_ng_STATUS (*p_Synthesize)(const void *, size_t, unsigned int, espeak_POSITION_TYPE,
	unsigned int, unsigned int, unsigned int *, void *);

// espeakInit returns 0, -1 when the library is missing, -2 when a symbol
// is, or espeak-ng's error status.
static int espeakInit(void) {
	void *h = dlopen("libespeak-ng.so.1", RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
	if (!h) return -1;
#define SYM(p, name) if (!(*(void **)(&p) = dlsym(h, name))) return -2;
	SYM(p_InitializePath, "espeak_ng_InitializePath")
	SYM(p_Initialize, "espeak_ng_Initialize")
	SYM(p_InitializeOutput, "espeak_ng_InitializeOutput")
	SYM(p_SetSynthCallback, "espeak_SetSynthCallback")
	SYM(p_GetSampleRate, "espeak_ng_GetSampleRate")
	SYM(p_SetVoiceByName, "espeak_ng_SetVoiceByName")
	SYM(p_SetParameter, "espeak_ng_SetParameter")
	SYM(p_Synthesize, "espeak_ng_Synthesize")
#undef SYM
	p_InitializePath(NULL);
	espeak_ng_STATUS st = p_Initialize(NULL);
	if (st != ENS_OK) return (int)st;
	st = p_InitializeOutput(ENOUTPUT_MODE_SYNCHRONOUS, 20, NULL);
	if (st != ENS_OK) return (int)st;
	p_SetSynthCallback(synthCallback);
	return 0;
}

static int espeakRate(void) { return p_GetSampleRate(); }
static int espeakVoice(const char *name) { return (int)p_SetVoiceByName(name); }
static int espeakSpeed(int wpm) { return (int)p_SetParameter(espeakRATE, wpm, 0); }

static int espeakSynth(const char *text, size_t size, uintptr_t user) {
	return (int)p_Synthesize(text, size, 0, POS_CHARACTER, 0,
		espeakCHARS_UTF8 | espeakENDPAUSE, NULL, (void *)user);
}

static uintptr_t eventUser(espeak_EVENT *ev) { return (uintptr_t)ev->user_data; }
*/
import "C"

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/cgo"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/speech"
)

// nativeRate is espeak-ng's output rate (Hz).
const nativeRate = 22050

// DefaultSpeed is the speaking rate (words per minute) when a request does
// not set one: a little slower than espeak-ng's 175, for telephone callers.
const DefaultSpeed = 150

// DefaultCacheBytes bounds the prompt cache of New (about 25 minutes of
// audio at 8 kHz).
const DefaultCacheBytes = 24 << 20

// Options configure a Synth.
type Options struct {
	// CacheBytes bounds the memory of the rendered-prompt cache; 0 means
	// DefaultCacheBytes, negative disables the cache.
	CacheBytes int
	// Isolated renders each text in a process of its own (the espeak-ng
	// program of the Debian package of that name), so that a text always
	// renders the same: in one process espeak-ng's glottal phase and
	// pitch flutter carry over from each rendering to the next, and a
	// text sounds slightly different after every other text. Test callers
	// use it, so that what they say does not depend on what the line
	// rendered before; it costs a process start (about 20 ms) per text.
	Isolated bool
}

// Synth is the espeak-ng speech.Synthesizer. It is safe for concurrent
// use; all Synths of a process share the one renderer.
type Synth struct {
	cache    *lru // nil when disabled
	isolated bool
}

var _ speech.Synthesizer = (*Synth)(nil)

// New returns a Synth, starting the process's renderer on first use. It
// fails if the espeak-ng library or its data cannot be initialised.
func New(opts Options) (*Synth, error) {
	if err := startRenderer(); err != nil {
		return nil, err
	}
	s := &Synth{isolated: opts.Isolated}
	if opts.Isolated {
		if _, err := exec.LookPath("espeak-ng"); err != nil {
			return nil, fmt.Errorf("%w: Options.Isolated needs the espeak-ng program (apt-get install espeak-ng): %v", speech.ErrEngine, err)
		}
	}
	switch {
	case opts.CacheBytes == 0:
		s.cache = newLRU(DefaultCacheBytes)
	case opts.CacheBytes > 0:
		s.cache = newLRU(opts.CacheBytes)
	}
	return s, nil
}

// Voice returns the espeak-ng voice name for a language and a variant:
// Voice("ro", "") is "ro", Voice("en", "f2") is "en+f2".
func Voice(lang, variant string) (string, error) {
	var v string
	switch lang {
	case "ro":
		v = "ro"
	case "en":
		v = "en"
	case "en-us":
		v = "en-us"
	default:
		return "", fmt.Errorf("%w: language %q (espeak voices: ro, en, en-us)", speech.ErrUnsupported, lang)
	}
	if variant != "" {
		for _, r := range variant {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
				return "", fmt.Errorf("%w: voice variant %q", speech.ErrUnsupported, variant)
			}
		}
		v += "+" + variant
	}
	return v, nil
}

type cacheKey struct {
	text, voice string
	speed, rate int
}

// Synthesize starts rendering req (see speech.Synthesizer). An empty text
// (after trimming) gives an Audio that ends at once.
func (s *Synth) Synthesize(ctx context.Context, req speech.SynthRequest) (speech.Audio, error) {
	if err := speech.CheckRate(req.Rate); err != nil {
		return nil, err
	}
	voice, err := Voice(req.Lang, req.Voice)
	if err != nil {
		return nil, err
	}
	speed := req.Speed
	if speed == 0 {
		speed = DefaultSpeed
	}
	if speed < 80 || speed > 450 {
		return nil, fmt.Errorf("%w: speed %d words per minute (80..450)", speech.ErrUnsupported, speed)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	text := strings.TrimSpace(req.Text)
	if strings.ContainsRune(text, 0) {
		return nil, fmt.Errorf("%w: text contains a NUL byte", speech.ErrUnsupported)
	}
	key := cacheKey{text, voice, speed, req.Rate}
	if s.cache != nil {
		if pcm, ok := s.cache.get(key); ok {
			return newCachedAudio(ctx, pcm, req.Rate), nil
		}
	}
	a := newLiveAudio(ctx, req.Rate)
	if s.cache != nil {
		a.onDone = func(pcm []int16) { s.cache.put(key, pcm) }
	}
	if text == "" {
		a.finish(nil)
		return a, nil
	}
	j := &job{text: text, voice: voice, speed: speed, out: a}
	if s.isolated {
		go renderIsolated(ctx, j)
		return a, nil
	}
	select {
	case jobs <- j:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return a, nil
}

// Prerender renders each request into the cache (fixed prompts at start),
// so that later Synthesize calls for them cost nothing.
func (s *Synth) Prerender(ctx context.Context, reqs ...speech.SynthRequest) error {
	if s.cache == nil {
		return errors.New("espeak: prerender with the cache disabled")
	}
	for _, r := range reqs {
		a, err := s.Synthesize(ctx, r)
		if err != nil {
			return err
		}
		if _, err := speech.ReadAll(a, r.Rate); err != nil {
			return err
		}
	}
	return nil
}

// CacheStats reports the cache's entries and bytes.
func (s *Synth) CacheStats() (entries, bytes int) {
	if s.cache == nil {
		return 0, 0
	}
	return s.cache.stats()
}

// job is one rendering request for the renderer goroutine.
type job struct {
	text, voice string
	speed       int
	out         *liveAudio
}

var (
	startOnce sync.Once
	startErr  error
	jobs      = make(chan *job, 64)
)

// startRenderer initialises espeak-ng on a dedicated OS thread and starts
// the renderer goroutine. The renderer lives as long as the process (it
// owns the library's global state, which cannot be torn down and set up
// again safely); it is idle on an empty channel.
func startRenderer() error {
	startOnce.Do(func() {
		ready := make(chan error)
		go func() {
			runtime.LockOSThread()
			switch st := C.espeakInit(); st {
			case 0:
			case -1, -2:
				ready <- fmt.Errorf("%w: cannot load libespeak-ng.so.1 (apt-get install libespeak-ng1)", speech.ErrEngine)
				return
			default:
				ready <- fmt.Errorf("%w: espeak-ng initialisation failed (status %#x); is espeak-ng-data installed?", speech.ErrEngine, int(st))
				return
			}
			if r := int(C.espeakRate()); r != nativeRate {
				ready <- fmt.Errorf("%w: espeak-ng renders at %d Hz, want %d", speech.ErrEngine, r, nativeRate)
				return
			}
			ready <- nil
			for j := range jobs {
				render(j)
			}
		}()
		startErr = <-ready
	})
	return startErr
}

// render runs one job on the renderer thread.
func render(j *job) {
	if j.out.stopped() {
		j.out.finish(nil)
		return
	}
	cv := C.CString(j.voice)
	defer C.free(unsafe.Pointer(cv))
	if st := C.espeakVoice(cv); st != C.ENS_OK {
		j.out.finish(fmt.Errorf("%w: espeak-ng has no voice %q (status %#x)", speech.ErrUnsupported, j.voice, int(st)))
		return
	}
	C.espeakSpeed(C.int(j.speed))
	ct := C.CString(j.text)
	defer C.free(unsafe.Pointer(ct))
	h := cgo.NewHandle(j.out)
	defer h.Delete()
	st := C.espeakSynth(ct, C.size_t(len(j.text)+1), C.uintptr_t(h))
	if st != C.ENS_OK && !j.out.stopped() {
		j.out.finish(fmt.Errorf("%w: espeak-ng synthesis failed (status %#x)", speech.ErrEngine, int(st)))
		return
	}
	j.out.finish(nil)
}

// renderIsolated renders j with a new espeak-ng process, which writes a
// WAV file at nativeRate (read with audio.ReadWAV, so a broken file is a
// clear error); the samples are pushed as the library's callback pushes
// them. A file, not --stdout: on a pipe espeak-ng cannot go back to write
// the chunk sizes, and the header claims 2 GB of data.
func renderIsolated(ctx context.Context, j *job) {
	dir, err := os.MkdirTemp("", "ivr-espeak-")
	if err != nil {
		j.out.finish(fmt.Errorf("%w: espeak-ng: %v", speech.ErrEngine, err))
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "text.wav")
	cmd := exec.CommandContext(ctx, "espeak-ng", "-w", path, "-v", j.voice, "-s", strconv.Itoa(j.speed))
	cmd.Stdin = strings.NewReader(j.text)
	if out, err := cmd.CombinedOutput(); err != nil {
		j.out.finish(fmt.Errorf("%w: espeak-ng: %v %s", speech.ErrEngine, err, bytes.TrimSpace(out)))
		return
	}
	f, err := os.Open(path)
	if err != nil {
		j.out.finish(fmt.Errorf("%w: espeak-ng: %v", speech.ErrEngine, err))
		return
	}
	pcm, rate, err := audio.ReadWAV(f)
	f.Close()
	switch {
	case err != nil:
		j.out.finish(fmt.Errorf("%w: espeak-ng: %v", speech.ErrEngine, err))
		return
	case rate != nativeRate:
		j.out.finish(fmt.Errorf("%w: espeak-ng wrote %d Hz, want %d", speech.ErrEngine, rate, nativeRate))
		return
	}
	if len(pcm) > 0 && !j.out.stopped() {
		j.out.push(pcm)
	}
	j.out.finish(nil)
}

//export goSynthCallback
func goSynthCallback(wav *C.short, n C.int, events *C.espeak_EVENT) C.int {
	user := C.eventUser(events)
	if user == 0 {
		return 0
	}
	a := cgo.Handle(user).Value().(*liveAudio)
	if n > 0 && wav != nil {
		a.push(unsafe.Slice((*int16)(unsafe.Pointer(wav)), int(n)))
	}
	if a.stopped() {
		return 1 // abort the synthesis
	}
	return 0
}
