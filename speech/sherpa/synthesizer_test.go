package sherpa

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	so "github.com/k2-fsa/sherpa-onnx-go-linux"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/speech"
	"github.com/govline/ivr/speech/speechtest"
)

// toneSynth is a Synthesizer over the tone voice (toneVoiceModel): the
// real sherpa-onnx piper front end (its espeak-ng phonemizes the text with
// Debian's espeak-ng-data) and the real onnxruntime run a small graph in
// place of the weights that cannot be had here.
func toneSynth(t *testing.T, rate int) (*Synthesizer, string) {
	t.Helper()
	d := voiceDir(t, toneVoiceModel(rate), true)
	s, err := NewSynthesizer(Config{TTS: map[string]string{"ro": d, "en": d}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, d
}

func TestSynthesizerConformance(t *testing.T) {
	s, _ := toneSynth(t, 22050)
	speechtest.TestSynthesizer(t, s, "ro")
}

// TestSynthesizerResamples: the audio is the model's output converted to
// the call's rate (8 and 16 kHz from a 22.05 kHz voice), as long as the
// model's, at the same level.
func TestSynthesizerResamples(t *testing.T) {
	s, d := toneSynth(t, 22050)
	const text = "Bună ziua. Vă rugăm să spuneți numărul tichetului."
	m, err := DetectTTS(d, false)
	if err != nil {
		t.Fatal(err)
	}
	tts, err := newOfflineTts(m, 1)
	if err != nil {
		t.Fatal(err)
	}
	var native []int16
	for _, sent := range splitSentences(text) {
		native = floatToPCM(native, tts.Generate(sent, 0, 1).Samples)
	}
	so.DeleteOfflineTts(tts)
	for _, rate := range speech.Rates {
		pcm := speechtest.Render(t, s, speech.SynthRequest{Text: text, Lang: "ro", Rate: rate})
		want, err := audio.Resample(native, 22050, rate)
		if err != nil {
			t.Fatal(err)
		}
		// The stream is the whole signal through one resampler, late by
		// the filter's delay, padded to whole frames.
		rs, _ := audio.NewResampler(22050, rate)
		delay := rs.Delay()
		if extra := len(pcm) - delay - len(want); extra < 0 || extra > audio.SamplesPerFrame(rate)+rate/50 {
			t.Fatalf("%d Hz: %d samples, want %d + %d delay + the tail", rate, len(pcm), len(want), delay)
		}
		worst := 0
		for i, w := range want {
			worst = max(worst, abs(int(pcm[delay+i])-int(w)))
		}
		if worst > 1 {
			t.Errorf("%d Hz: differs from the model's audio resampled by up to %d", rate, worst)
		}
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func TestSynthesizerRequests(t *testing.T) {
	s, _ := toneSynth(t, 16000)
	ctx := context.Background()
	if _, err := s.Synthesize(ctx, speech.SynthRequest{Text: "x", Lang: "ro", Rate: 8000, Voice: "1"}); !errors.Is(err, speech.ErrUnsupported) || !strings.Contains(err.Error(), "speakers 0..0") {
		t.Errorf("speaker 1 of a one-speaker voice: %v", err)
	}
	if _, err := s.Synthesize(ctx, speech.SynthRequest{Text: "x", Lang: "ro", Rate: 8000, Voice: "m3"}); !errors.Is(err, speech.ErrUnsupported) {
		t.Errorf("espeak voice name: %v", err)
	}
	if pcm := speechtest.Render(t, s, speech.SynthRequest{Text: "Da.", Lang: "ro", Rate: 8000, Voice: "0", Speed: 200}); len(pcm) == 0 {
		t.Error("speaker 0 at 200 wpm gave no audio")
	}
	// Nothing to say: the audio ends at once.
	a, err := s.Synthesize(ctx, speech.SynthRequest{Text: " \n ", Lang: "ro", Rate: 8000})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.ReadFrame(make([]int16, 160)); !errors.Is(err, io.EOF) {
		t.Errorf("empty text: %v, want io.EOF", err)
	}
	a.Close()
	// After Close the engine refuses new work and has joined its
	// renderers.
	s.Close()
	if _, err := s.Synthesize(ctx, speech.SynthRequest{Text: "Da.", Lang: "ro", Rate: 8000}); !errors.Is(err, speech.ErrClosed) {
		t.Errorf("after Close: %v, want ErrClosed", err)
	}
}

// TestSynthesizerBadVoiceNoCrash: a truncated voice is an error at start,
// and the process lives on (sherpa-onnx alone would abort it).
func TestSynthesizerBadVoiceNoCrash(t *testing.T) {
	d := voiceDir(t, toneVoiceModel(16000), false)
	p := filepath.Join(d, "ro_RO-test-medium.onnx")
	b, _ := os.ReadFile(p)
	os.WriteFile(p, b[:len(b)/2], 0o644)
	_, err := NewSynthesizer(Config{TTS: map[string]string{"ro": d}})
	if !errors.Is(err, ErrBadModel) || !strings.Contains(err.Error(), `voice for "ro"`) || !strings.Contains(err.Error(), p) {
		t.Fatalf("truncated voice: %v", err)
	}
	if _, err := NewSynthesizer(Config{}); !errors.Is(err, ErrModelDir) {
		t.Errorf("no voices: %v", err)
	}
}

func TestSplitSentences(t *testing.T) {
	long := strings.Repeat("unu doi trei patru, ", 30)
	cases := []struct {
		in   string
		want []string
	}{
		{"Bună ziua. Ați sunat la linia de asistență!", []string{"Bună ziua.", "Ați sunat la linia de asistență!"}},
		{"Tichetul 12.345 e deschis; mulțumim…  Pa", []string{"Tichetul 12.345 e deschis;", "mulțumim…", "Pa"}},
		{"Linia unu\nLinia doi", []string{"Linia unu", "Linia doi"}},
		{"  ", nil},
		{"Da?", []string{"Da?"}},
	}
	for _, c := range cases {
		if got := splitSentences(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("splitSentences(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	parts := splitSentences(long)
	if len(parts) < 2 {
		t.Fatalf("a %d-rune sentence was not cut: %q", len([]rune(long)), parts)
	}
	for _, p := range parts {
		if n := len([]rune(p)); n > maxSentence || !strings.HasSuffix(p, ",") && p != parts[len(parts)-1] {
			t.Errorf("piece of %d runes %q: want at most %d, cut after a comma", n, p, maxSentence)
		}
	}
	if strings.Join(parts, " ") != strings.TrimSpace(long) {
		t.Error("cutting lost text")
	}
}

func TestFloatToPCMClips(t *testing.T) {
	got := floatToPCM(nil, []float32{0, 0.5, 1, 1.5, -1, -2})
	want := []int16{0, 16383, 32767, 32767, -32767, -32768}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%v, want %v", got, want)
	}
}

// BenchmarkSynthesize renders two sentences with the tone voice at 8 kHz:
// the engine's own cost (phonemes, onnxruntime call, resampling, frame
// hand-off) without a real voice's network.
func BenchmarkSynthesize(b *testing.B) {
	d := voiceDir(b, toneVoiceModel(22050), true)
	s, err := NewSynthesizer(Config{TTS: map[string]string{"ro": d}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	req := speech.SynthRequest{Text: "Bună ziua. Ați sunat la linia de asistență.", Lang: "ro", Rate: 8000}
	f := make([]int16, 160)
	b.ReportAllocs()
	for b.Loop() {
		a, err := s.Synthesize(context.Background(), req)
		if err != nil {
			b.Fatal(err)
		}
		for a.ReadFrame(f) == nil {
		}
		a.Close()
	}
}

// BenchmarkRealSynthesize renders a two-sentence prompt with the
// operator's Romanian voice in IVR_TEST_SHERPA_TTS_RO; first-frame is the
// time until the first 20 ms can play.
func BenchmarkRealSynthesize(b *testing.B) {
	dir := os.Getenv("IVR_TEST_SHERPA_TTS_RO")
	if dir == "" {
		b.Skip("IVR_TEST_SHERPA_TTS_RO not set")
	}
	s, err := NewSynthesizer(Config{TTS: map[string]string{"ro": dir}, Logger: slogDiscard()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	req := speech.SynthRequest{Text: "Bună ziua. Ați sunat la linia de asistență.", Lang: "ro", Rate: 8000}
	f := make([]int16, 160)
	var first time.Duration
	for b.Loop() {
		start := time.Now()
		a, err := s.Synthesize(context.Background(), req)
		if err != nil {
			b.Fatal(err)
		}
		if err := a.ReadFrame(f); err != nil {
			b.Fatal(err)
		}
		first += time.Since(start)
		for a.ReadFrame(f) == nil {
		}
		a.Close()
	}
	b.ReportMetric(float64(first.Microseconds())/float64(b.N)/1000, "ms-first-frame")
}
