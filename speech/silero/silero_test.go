package silero

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/internal/testenv"
	"github.com/govline/ivr/speech"
	"github.com/govline/ivr/speech/espeak"
	"github.com/govline/ivr/speech/speechtest"
)

// modelPath finds the model; a missing model fails the test under CI and
// make (which fetch it first) and skips it elsewhere (testenv).
func modelPath(t testing.TB) string {
	t.Helper()
	p, err := FindModel()
	if err != nil {
		if errors.Is(err, ErrNoModel) {
			testenv.Missing(t, "the silero VAD model", "model with make models", err)
		}
		t.Fatal(err)
	}
	return p
}

func synth(t testing.TB) *espeak.Synth {
	s, err := espeak.New(espeak.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	model := modelPath(t)
	var made []*Detector
	t.Cleanup(func() {
		for _, d := range made {
			d.Close()
		}
	})
	speechtest.TestVAD(t, func(rate int) (speech.VAD, error) {
		d, err := New(rate, Options{Model: model})
		if err == nil {
			made = append(made, d)
		}
		return d, err
	}, synth(t))
}

// Noise alone (white noise at two levels, and telephone-band hum) never
// starts a speech segment: no false barge-in.
func TestNoiseIsNotSpeech(t *testing.T) {
	model := modelPath(t)
	for _, rate := range speech.Rates {
		d, err := New(rate, Options{Model: model})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		rng := rand.New(rand.NewPCG(1, 2))
		n := audio.SamplesPerFrame(rate)
		frame := make([]int16, n)
		for i := 0; i < 250; i++ { // 5 s
			for j := range frame {
				amp := 300.0
				if i > 125 {
					amp = 3000
				}
				hum := 800 * math.Sin(2*math.Pi*50*float64(i*n+j)/float64(rate))
				frame[j] = int16(rng.NormFloat64()*amp + hum)
			}
			a, err := d.Process(frame)
			if err != nil {
				t.Fatal(err)
			}
			if a.Speech {
				t.Fatalf("%d Hz: noise taken for speech at %v", rate, time.Duration(i)*20*time.Millisecond)
			}
		}
	}
}

func TestMissingModel(t *testing.T) {
	model := modelPath(t) // found before $IVR_MODELS_DIR points elsewhere
	t.Setenv(EnvModelsDir, t.TempDir())
	if _, err := New(8000, Options{}); !errors.Is(err, ErrNoModel) {
		t.Fatalf("New without a model: %v, want ErrNoModel", err)
	}
	if _, err := New(8000, Options{Model: "/nonexistent/x.onnx"}); !errors.Is(err, ErrNoModel) {
		t.Fatalf("New with a missing file: %v, want ErrNoModel", err)
	}
	d, err := New(8000, Options{Model: model})
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	if _, err := d.Process(make([]int16, 160)); !errors.Is(err, speech.ErrClosed) {
		t.Fatalf("Process after Close: %v", err)
	}
}

// BenchmarkProcess is the cost of one 20 ms frame at 8 kHz (the
// real-time factor is ns/op / 20e6).
func BenchmarkProcess(b *testing.B) {
	d, err := New(8000, Options{Model: modelPath(b)})
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	pcm := speechtest.Render(b, synth(b), speech.SynthRequest{Text: "Vreau să vorbesc cu un operator.", Lang: "ro", Rate: 8000})
	frames := speechtest.Frames(pcm, 8000)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d.Process(frames[i%len(frames)])
		i++
	}
}

// BenchmarkNew is the cost of a Detector per call.
func BenchmarkNew(b *testing.B) {
	model := modelPath(b)
	b.ReportAllocs()
	for b.Loop() {
		d, err := New(8000, Options{Model: model})
		if err != nil {
			b.Fatal(err)
		}
		d.Close()
	}
}

// A pooled detector comes back reset: speech at the end of one call does
// not leak into the next.
func TestPool(t *testing.T) {
	p, err := NewPool(Options{Model: modelPath(t)}, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	syn := synth(t)
	pcm := speechtest.Render(t, syn, speech.SynthRequest{Text: "Da, vă rog.", Lang: "ro", Rate: 8000})
	d, err := p.Get(8000)
	if err != nil {
		t.Fatal(err)
	}
	inSpeech := false
	for _, f := range speechtest.Frames(pcm[:len(pcm)*2/3], 8000) { // cut mid-word
		a, _ := d.Process(f)
		inSpeech = a.Speech
	}
	if !inSpeech {
		t.Fatal("not in speech mid-word")
	}
	p.Put(d)
	d2, err := p.Get(8000)
	if err != nil {
		t.Fatal(err)
	}
	if d2 != d {
		t.Fatal("pool did not reuse the detector")
	}
	a, _ := d2.Process(make([]int16, 160))
	if a.Speech || a.Event != speech.NoEvent {
		t.Fatalf("reused detector starts with %+v", a)
	}
	p.Put(d2)
}
