package ivr

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/internal/testenv"
	"github.com/govline/ivr/speech"
	"github.com/govline/ivr/speech/espeak"
	"github.com/govline/ivr/speech/openai"
)

// The embedded engine renders a text once: the second call gets the same
// audio from memory, another rate from the disk copy.
func TestRenderCacheEmbedded(t *testing.T) {
	c := &RenderCache{Dir: t.TempDir()}
	ctx := context.Background()
	a, err := c.Synthesize(ctx, "ro", "Bună ziua.", 8000)
	testenv.Need(t, "espeak-ng", "Debian packages espeak-ng libespeak-ng-dev (make deps)", err)
	if len(a) < 8000/4 {
		t.Fatalf("%d samples for a greeting at 8 kHz", len(a))
	}
	b, _ := c.Synthesize(ctx, "ro", "Bună ziua.", 8000)
	if &a[0] != &b[0] {
		t.Error("the second request rendered the text again instead of using the cache")
	}
	wide, err := c.Synthesize(ctx, "ro", "Bună ziua.", 16000)
	if err != nil || len(wide) != 2*len(a) {
		t.Errorf("16 kHz: %d samples (%v), want %d", len(wide), err, 2*len(a))
	}
	files, _ := filepath.Glob(filepath.Join(c.Dir, "ro", "*.wav"))
	if len(files) != 1 {
		t.Errorf("disk cache holds %v, want one WAV", files)
	}
	// espeak-ng ends a text with about 400 ms of silence: 200 ms are kept.
	quiet := 0
	for i := len(a) - 1; i >= 0 && a[i] < quietSample && a[i] > -quietSample; i-- {
		quiet++
	}
	if ms := quiet * 1000 / 8000; ms > 210 || ms < 150 {
		t.Errorf("the render ends with %d ms of silence, want 200", ms)
	}
}

// A network synthesizer (the OpenAI-compatible /v1/audio/speech) that fails
// is replaced by the fallback for that prompt, which is not cached: once
// the server is back, the prompt is its again.
func TestRenderCacheFallsBack(t *testing.T) {
	var up atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/audio/speech" {
			http.NotFound(w, r)
			return
		}
		if !up.Load() {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte(`{"error":{"message":"out of memory","type":"server_error"}}`))
			return
		}
		// One second of a 440 Hz tone, raw 16-bit PCM at 24 kHz.
		pcm := make([]byte, 2*24000)
		for i := range 24000 {
			binary.LittleEndian.PutUint16(pcm[2*i:], uint16(int16(8000*math.Sin(2*math.Pi*440*float64(i)/24000))))
		}
		w.Header().Set("Content-Type", "audio/pcm")
		w.Write(pcm)
	}))
	defer srv.Close()
	network, err := openai.NewSynthesizer(openai.Config{BaseURL: srv.URL + "/v1", Model: "tts-1"})
	if err != nil {
		t.Fatal(err)
	}
	fb, err := espeak.New(espeak.Options{})
	testenv.Need(t, "espeak-ng", "Debian packages espeak-ng libespeak-ng-dev (make deps)", err)
	m := NewMetrics()
	c := &RenderCache{Dir: t.TempDir(), Engine: network, Name: "openai/tts-1", Fallback: fb, Metrics: m}
	ctx := context.Background()
	pcm, err := c.Synthesize(ctx, "ro", "Vă rugăm să așteptați.", 8000)
	if err != nil || len(pcm) == 0 {
		t.Fatalf("with the network synthesizer down: %d samples, %v; want the fallback's audio", len(pcm), err)
	}
	if n := m.SynthFallbacks.Load(); n != 1 {
		t.Errorf("%d synthesis fallbacks counted, want 1", n)
	}
	if files, _ := filepath.Glob(filepath.Join(c.Dir, "ro", "*.wav")); len(files) != 0 {
		t.Errorf("the fallback's render was kept on disk: %v", files)
	}
	up.Store(true)
	pcm, err = c.Synthesize(ctx, "ro", "Vă rugăm să așteptați.", 8000)
	// 1 s, padded to whole 20 ms frames after the resampler's tail.
	if err != nil || len(pcm) < 8000 || len(pcm) > 8000+160 {
		t.Fatalf("with the server back: %d samples (%v), want its 1 s tone at 8 kHz", len(pcm), err)
	}
	if n := m.SynthFallbacks.Load(); n != 1 {
		t.Errorf("%d synthesis fallbacks counted after the server came back, want still 1", n)
	}
	files, _ := filepath.Glob(filepath.Join(c.Dir, "ro", "*.wav"))
	if len(files) != 1 {
		t.Fatalf("disk cache %v, want the server's render", files)
	}
	if fi, _ := os.Stat(files[0]); fi.Size() < 44+2*16000 || fi.Size() > 44+2*(16000+320) {
		t.Errorf("cached render is %d bytes, want a 1 s 16 kHz WAV", fi.Size())
	}
}

// A text the cache does not hold plays while the engine renders it, and
// calls that need it at the same moment share that one render: the second
// call's first frames come at once, not after the render. The render goes
// on to its end when the first caller hangs up, and joins the cache.
func TestRenderCacheStreams(t *testing.T) {
	release := make(chan struct{})
	var requests atomic.Int32
	tone := func(n int) []byte {
		b := make([]byte, 2*n)
		for i := range n {
			binary.LittleEndian.PutUint16(b[2*i:], uint16(int16(8000*math.Sin(2*math.Pi*440*float64(i)/24000))))
		}
		return b
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		w.Header().Set("Content-Type", "audio/pcm")
		w.Write(tone(12000)) // the first half second
		w.(http.Flusher).Flush()
		select { // the rest when the test says so
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Write(tone(12000))
	}))
	defer srv.Close()
	network, err := openai.NewSynthesizer(openai.Config{BaseURL: srv.URL + "/v1", Model: "tts-1"})
	if err != nil {
		t.Fatal(err)
	}
	c := &RenderCache{Dir: t.TempDir(), Engine: network, Name: "openai"}
	ctx := context.Background()
	frame := make([]int16, 160)
	read := func(a speech.Audio, n int, what string) {
		t.Helper()
		for i := range n {
			if err := a.ReadFrame(frame); err != nil {
				t.Fatalf("%s: frame %d while the server still renders: %v", what, i, err)
			}
		}
	}

	first, err := c.Stream(ctx, "ro", "Un răspuns lung.", 8000)
	if err != nil {
		t.Fatal(err)
	}
	read(first, 10, "first call")
	second, err := c.Stream(ctx, "ro", "Un răspuns lung.", 8000)
	if err != nil {
		t.Fatal(err)
	}
	read(second, 20, "second call") // 400 ms of the first half second
	first.Close()                   // the first caller hangs up
	close(release)
	n := 20
	for {
		err := second.ReadFrame(frame)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			break
		}
		n++
	}
	second.Close()
	if n < 50 || n > 52 {
		t.Errorf("%d frames played, want the 1 s the server rendered (50)", n)
	}
	if r := requests.Load(); r != 1 {
		t.Errorf("%d renders for two calls saying the same text at once, want 1", r)
	}
	if !waitUntil(5*time.Second, func() bool {
		files, _ := filepath.Glob(filepath.Join(c.Dir, "ro", "*.wav"))
		return len(files) == 1
	}) {
		t.Error("the finished render is not on disk")
	}
	pcm, err := c.Synthesize(ctx, "ro", "Un răspuns lung.", 8000)
	if err != nil || len(pcm) < 8000 || len(pcm) > 8000+160 || requests.Load() != 1 {
		t.Errorf("after the shared render: %d samples, %v, %d requests; want 1 s from the cache", len(pcm), err, requests.Load())
	}
}

func waitUntil(limit time.Duration, cond func() bool) bool {
	end := time.Now().Add(limit)
	for time.Now().Before(end) {
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cond()
}

// toneSynth renders any text as a 1.23 s chirp at the asked rate, frame
// by frame (a synthesizer under the test's control).
type toneSynth struct{ renders atomic.Int32 }

func (s *toneSynth) Synthesize(ctx context.Context, req speech.SynthRequest) (speech.Audio, error) {
	s.renders.Add(1)
	n := req.Rate * 123 / 100
	pcm := make([]int16, n)
	for i := range pcm {
		f := 300 + 2000*float64(i)/float64(n)
		pcm[i] = int16(6000 * math.Sin(2*math.Pi*f*float64(i)/float64(req.Rate)))
	}
	return speech.PCMAudio(pcm, req.Rate), nil
}

// What a call hears of a text while it renders is, sample for sample, what
// the cache keeps of it and what later calls hear (the streamed resampling
// drops the filter's delay and ends where the whole one does).
func TestRenderCacheStreamMatchesCache(t *testing.T) {
	for _, rate := range []int{8000, 16000} {
		eng := &toneSynth{}
		c := &RenderCache{Dir: t.TempDir(), Engine: eng, Name: "tone"}
		a, err := c.Stream(context.Background(), "ro", "Un text.", rate)
		if err != nil {
			t.Fatal(err)
		}
		streamed, err := speech.ReadAll(a, rate)
		if err != nil {
			t.Fatal(err)
		}
		whole, err := c.Synthesize(context.Background(), "ro", "Un text.", rate)
		if err != nil {
			t.Fatal(err)
		}
		if eng.renders.Load() != 1 {
			t.Errorf("%d Hz: %d renders, want 1", rate, eng.renders.Load())
		}
		n := audio.SamplesPerFrame(rate)
		if len(streamed) != (len(whole)+n-1)/n*n {
			t.Fatalf("%d Hz: streamed %d samples, cached %d", rate, len(streamed), len(whole))
		}
		for i := range whole {
			if streamed[i] != whole[i] {
				t.Fatalf("%d Hz: sample %d streamed %d, cached %d", rate, i, streamed[i], whole[i])
			}
		}
	}
}
