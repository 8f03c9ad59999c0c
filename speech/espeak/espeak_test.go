package espeak

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/speech"
	"github.com/govline/ivr/speech/speechtest"
)

func newSynth(t testing.TB, o Options) *Synth {
	t.Helper()
	s, err := New(o)
	if err != nil {
		t.Fatalf("espeak (make deps installs libespeak-ng-dev): %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	for _, lang := range []string{"ro", "en"} {
		t.Run(lang, func(t *testing.T) {
			speechtest.TestSynthesizer(t, newSynth(t, Options{CacheBytes: -1}), lang)
		})
	}
	t.Run("cached", func(t *testing.T) {
		speechtest.TestSynthesizer(t, newSynth(t, Options{}), "ro")
	})
	t.Run("isolated", func(t *testing.T) {
		speechtest.TestSynthesizer(t, newSynth(t, Options{CacheBytes: -1, Isolated: true}), "ro")
	})
}

// An isolated Synth renders a text the same whatever was rendered before
// it, in this process or in another; the shared renderer does not (the
// reason Isolated exists: a test caller's "nu" was heard differently
// after different histories).
func TestIsolatedRendersAlike(t *testing.T) {
	iso := newSynth(t, Options{CacheBytes: -1, Isolated: true})
	shared := newSynth(t, Options{CacheBytes: -1})
	nu := speech.SynthRequest{Text: "nu", Lang: "ro", Rate: 8000}
	other := speech.SynthRequest{Text: "Bună ziua! Spuneți pe scurt cu ce vă putem ajuta.", Lang: "ro", Rate: 8000}
	a, s1 := speechtest.Render(t, iso, nu), speechtest.Render(t, shared, nu)
	speechtest.Render(t, iso, other)
	speechtest.Render(t, shared, other)
	b, s2 := speechtest.Render(t, iso, nu), speechtest.Render(t, shared, nu)
	if len(a) < 8000/5 {
		t.Fatalf("isolated \"nu\" is %d samples", len(a))
	}
	if !slices.Equal(a, b) {
		t.Errorf("isolated renderings of the same text differ (%d and %d samples)", len(a), len(b))
	}
	if slices.Equal(s1, s2) {
		t.Logf("the shared renderer rendered \"nu\" alike twice: its carried-over state did not show this time")
	}
	// The same voice either way: lengths within 10 ms.
	if d := len(a) - len(s1); d > 80 || d < -80 {
		t.Errorf("isolated \"nu\" %d samples, shared %d", len(a), len(s1))
	}
}

// The cache returns the same samples as a fresh rendering, and a hit costs
// no rendering.
func TestCache(t *testing.T) {
	s := newSynth(t, Options{})
	req := speech.SynthRequest{Text: "Vă mulțumim pentru apel.", Lang: "ro", Rate: 8000}
	first := speechtest.Render(t, s, req)
	if n, _ := s.CacheStats(); n != 1 {
		t.Fatalf("%d cache entries after one rendering", n)
	}
	start := time.Now()
	second := speechtest.Render(t, s, req)
	hit := time.Since(start)
	if len(first) != len(second) {
		t.Fatalf("cached rendering has %d samples, first %d", len(second), len(first))
	}
	for i := range first {
		if first[i] != second[i] {
			t.Fatalf("sample %d differs: %d vs %d", i, first[i], second[i])
		}
	}
	t.Logf("cache hit: %v for %d samples", hit, len(second))
	// A closed rendering is not cached (it is incomplete).
	a, err := s.Synthesize(context.Background(), speech.SynthRequest{Text: "Alt text.", Lang: "ro", Rate: 8000})
	if err != nil {
		t.Fatal(err)
	}
	a.ReadFrame(make([]int16, 160))
	a.Close()
	if n, _ := s.CacheStats(); n != 1 {
		t.Fatalf("%d cache entries: an abandoned rendering was cached", n)
	}
	// Bounded: a tiny cache keeps at most what fits.
	small := newSynth(t, Options{CacheBytes: 64 << 10})
	for _, text := range []string{"Unu doi trei patru.", "Cinci șase șapte opt.", "Nouă zece unsprezece doisprezece."} {
		speechtest.Render(t, small, speech.SynthRequest{Text: text, Lang: "ro", Rate: 16000})
	}
	if _, b := small.CacheStats(); b > 64<<10 {
		t.Fatalf("cache holds %d bytes, bound 64 KiB", b)
	}
}

// Romanian and English voices sound different from each other and voice
// variants change the rendering.
func TestVoices(t *testing.T) {
	s := newSynth(t, Options{CacheBytes: -1})
	base := speechtest.Render(t, s, speech.SynthRequest{Text: "operator", Lang: "ro", Rate: 16000})
	f2 := speechtest.Render(t, s, speech.SynthRequest{Text: "operator", Lang: "ro", Voice: "f2", Rate: 16000})
	fast := speechtest.Render(t, s, speech.SynthRequest{Text: "operator", Lang: "ro", Speed: 190, Rate: 16000})
	if same(base, f2) {
		t.Error("voice f2 renders the same samples as the default voice")
	}
	if len(fast) >= len(base) {
		t.Errorf("speed 190 gives %d samples, default %d: not faster", len(fast), len(base))
	}
	if _, err := s.Synthesize(context.Background(), speech.SynthRequest{Text: "x", Lang: "ro", Voice: "m3;rm -rf", Rate: 8000}); err == nil {
		t.Error("a voice variant with odd characters was accepted")
	}
}

func same(a, b []int16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// BenchmarkFirstFrame measures the time from Synthesize to the first frame
// of a two-sentence prompt (uncached), and the real-time factor of the
// whole rendering.
func BenchmarkFirstFrame(b *testing.B) {
	s := newSynth(b, Options{CacheBytes: -1})
	req := speech.SynthRequest{Text: "Bună ziua. Ați sunat la linia de asistență pentru acte de identitate; vă rugăm să spuneți pe scurt cu ce vă putem ajuta.", Lang: "ro", Rate: 8000}
	f := make([]int16, 160)
	var first, total time.Duration
	var samples int
	b.ReportAllocs()
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
		samples += 160
		for a.ReadFrame(f) == nil {
			samples += 160
		}
		total += time.Since(start)
		a.Close()
	}
	n := float64(b.N)
	b.ReportMetric(float64(first.Microseconds())/n, "us-first-frame")
	audioSec := float64(samples) / 8000
	b.ReportMetric(total.Seconds()/audioSec, "rtf")
}

// BenchmarkCached is the cost of a cached prompt (whole prompt read).
func BenchmarkCached(b *testing.B) {
	s := newSynth(b, Options{})
	req := speech.SynthRequest{Text: "Vă rugăm să așteptați, vă transferăm la un operator.", Lang: "ro", Rate: 8000}
	speechtest.Render(b, s, req)
	f := make([]int16, audio.SamplesPerFrame(8000))
	b.ReportAllocs()
	for b.Loop() {
		a, _ := s.Synthesize(context.Background(), req)
		for a.ReadFrame(f) == nil {
		}
		a.Close()
	}
}
