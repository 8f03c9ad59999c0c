package sherpa

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	so "github.com/k2-fsa/sherpa-onnx-go-linux"

	"github.com/govline/ivr/internal/testenv"
	"github.com/govline/ivr/speech"
	"github.com/govline/ivr/speech/espeak"
	"github.com/govline/ivr/speech/speechtest"
)

// fakeWhisper is a Recognizer over a whisper-shaped folder that the real
// sherpa-onnx loads (graphs without weights: it must never decode), for
// the parts of the contract that come before a decode.
func fakeWhisper(t *testing.T) *Recognizer {
	t.Helper()
	d := whisperDir(t, "en", "ro")
	r, err := NewRecognizer(Config{ASR: map[string]string{"ro": d, "en": d}, Instances: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestRecognizerContractWithoutDecoding(t *testing.T) {
	r := fakeWhisper(t)
	ctx := context.Background()
	if got := r.Languages(); !reflect.DeepEqual(got, []string{"en", "ro"}) {
		t.Errorf("languages %v", got)
	}
	if _, err := r.NewStream(ctx, speech.StreamOptions{Lang: "ro", Rate: 44100}); !errors.Is(err, speech.ErrUnsupported) {
		t.Errorf("44.1 kHz: %v", err)
	}
	if _, err := r.NewStream(ctx, speech.StreamOptions{Lang: "hu", Rate: 8000}); !errors.Is(err, speech.ErrUnsupported) {
		t.Errorf("hu: %v", err)
	}
	st, err := r.NewStream(ctx, speech.StreamOptions{Lang: "ro", Rate: 8000, Grammar: speech.YesNo("ro")})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Write(make([]int16, 320)); !errors.Is(err, speech.ErrFrameSize) {
		t.Errorf("320 samples at 8 kHz: %v", err)
	}
	for range 50 { // a second of digital silence
		if err := st.Write(make([]int16, 160)); err != nil {
			t.Fatal(err)
		}
	}
	if _, changed := st.Partial(); changed {
		t.Error("a partial from an utterance recognizer")
	}
	// Silence is not decoded (whisper would invent words): empty result.
	res, err := st.Finish(ctx)
	if err != nil || res.Text != "" || res.Tag != "" || !res.Final {
		t.Fatalf("silence: %+v, %v", res, err)
	}
	if err := st.Write(make([]int16, 160)); !errors.Is(err, speech.ErrClosed) {
		t.Errorf("Write after Finish: %v", err)
	}
	if _, err := st.Finish(ctx); !errors.Is(err, speech.ErrClosed) {
		t.Errorf("second Finish: %v", err)
	}

	// Whisper takes 30 s at most.
	st, _ = r.NewStream(ctx, speech.StreamOptions{Lang: "en", Rate: 16000})
	var werr error
	for i := 0; i < 30*50+1 && werr == nil; i++ {
		werr = st.Write(make([]int16, 320))
	}
	if !errors.Is(werr, speech.ErrUnsupported) || !strings.Contains(werr.Error(), "30s") {
		t.Errorf("31 s utterance: %v", werr)
	}
	st.Finish(ctx)

	// A cancelled stream context ends Finish with its error, at once.
	cctx, cancel := context.WithCancel(ctx)
	st, _ = r.NewStream(cctx, speech.StreamOptions{Lang: "ro", Rate: 8000})
	loud := make([]int16, 160)
	for i := range loud {
		loud[i] = int16(8000 * (i%2*2 - 1))
	}
	st.Write(loud)
	cancel()
	if _, err := st.Finish(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Finish after cancel: %v", err)
	}
	if err := st.Write(loud); !errors.Is(err, speech.ErrClosed) {
		t.Errorf("Write after cancelled Finish: %v", err)
	}

	// With its one instance taken, a stream waits for it only as long as
	// Finish's context lasts.
	inst, err := r.langs["ro"].pool.get(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, _ = r.NewStream(ctx, speech.StreamOptions{Lang: "ro", Rate: 8000})
	st.Write(loud)
	tctx, tcancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer tcancel()
	start := time.Now()
	if _, err := st.Finish(tctx); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Errorf("Finish with every instance busy: %v after %v", err, time.Since(start))
	}
	r.langs["ro"].pool.put(inst)

	r.Close()
	if _, err := r.NewStream(ctx, speech.StreamOptions{Lang: "ro", Rate: 8000}); !errors.Is(err, speech.ErrClosed) {
		t.Errorf("NewStream after Close: %v", err)
	}
}

func TestNewRecognizerErrors(t *testing.T) {
	if _, err := NewRecognizer(Config{}); !errors.Is(err, ErrModelDir) {
		t.Errorf("no folders: %v", err)
	}
	en := whisperDir(t)
	_, err := NewRecognizer(Config{ASR: map[string]string{"ro": en}})
	if !errors.Is(err, speech.ErrUnsupported) || !strings.Contains(err.Error(), "English-only") {
		t.Errorf("tiny.en for ro: %v", err)
	}
	multi := whisperDir(t, "en", "de")
	if _, err := NewRecognizer(Config{ASR: map[string]string{"ro": multi}}); !errors.Is(err, speech.ErrUnsupported) {
		t.Errorf("ro missing from the model's languages: %v", err)
	}
	// A truncated encoder: an error naming the file, and the process
	// lives on (sherpa-onnx alone aborts it).
	cut := whisperDir(t, "ro")
	p := filepath.Join(cut, "tiny-encoder.int8.onnx")
	b, _ := os.ReadFile(p)
	os.WriteFile(p, b[:len(b)-10], 0o644)
	_, err = NewRecognizer(Config{ASR: map[string]string{"ro": cut}})
	if !errors.Is(err, ErrBadModel) || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), `recognizer for "ro"`) {
		t.Errorf("truncated encoder: %v", err)
	}
}

func TestResultMapping(t *testing.T) {
	u := &utterance{o: speech.StreamOptions{Lang: "ro", Grammar: speech.YesNo("ro")}}
	res := u.result(&so.OfflineRecognizerResult{Text: " Da, sigur."})
	if res.Text != "da sigur" || res.Tag != "" || !res.Final {
		t.Errorf("%+v", res)
	}
	if res := u.result(&so.OfflineRecognizerResult{Text: " Da."}); res.Text != "da" || res.Tag != "yes" {
		t.Errorf("%+v", res)
	}
	if res := u.result(&so.OfflineRecognizerResult{Text: "[BLANK_AUDIO] (muzică) Nu. ♪"}); res.Text != "nu" || res.Tag != "no" {
		t.Errorf("whisper's sound marks: %+v", res)
	}
	if res := u.result(nil); res.Text != "" || !res.Final {
		t.Errorf("no result: %+v", res)
	}
	// Transducer tokens with times become words.
	res = u.result(&so.OfflineRecognizerResult{
		Text:       "da vă rog",
		Tokens:     []string{"▁da", "▁vă", "▁r", "og"},
		Timestamps: []float32{0.40, 0.80, 1.04, 1.20},
		Durations:  []float32{0.16, 0.16, 0.08, 0.16},
	})
	want := []speech.Word{
		{Text: "da", Start: 400 * time.Millisecond, End: 800 * time.Millisecond},
		{Text: "vă", Start: 800 * time.Millisecond, End: 1040 * time.Millisecond},
		{Text: "rog", Start: 1040 * time.Millisecond, End: 1360 * time.Millisecond},
	}
	if !wordsNear(res.Words, want) {
		t.Errorf("words %+v, want %+v", res.Words, want)
	}
	// Whisper gives no times: no words.
	if w := words([]string{" Da", "."}, nil, nil); w != nil {
		t.Errorf("words without times: %+v", w)
	}
}

func wordsNear(a, b []speech.Word) bool {
	if len(a) != len(b) {
		return false
	}
	near := func(x, y time.Duration) bool { return x-y < time.Millisecond && y-x < time.Millisecond }
	for i := range a {
		if a[i].Text != b[i].Text || !near(a[i].Start, b[i].Start) || !near(a[i].End, b[i].End) {
			return false
		}
	}
	return true
}

// Whisper writes digits read one by one as numerals: they answer a digit
// question (speech.Grammar.Match).
func TestMatchGrammarNumerals(t *testing.T) {
	g := &speech.Grammar{Digits: 4, MinDigits: 4}
	for _, c := range []struct{ lang, text, want string }{
		{"ro", "0721", "0721"},
		{"ro", "0 7 2 1", "0721"},
		{"ro", "zero șapte doi unu", "0721"},
		{"en", "4 2 1 7", "4217"},
		{"ro", "072", ""}, // too short for a 4-digit PIN
		{"ro", "0721 da", ""},
	} {
		if got := g.Match(c.lang, c.text); got != c.want {
			t.Errorf("%s %q: %q, want %q", c.lang, c.text, got, c.want)
		}
	}
	if got := speech.YesNo("en").Match("en", "yes"); got != "yes" {
		t.Errorf("plain phrase: %q", got)
	}
}

func TestPoolBounds(t *testing.T) {
	made := 0
	var mu sync.Mutex
	p, err := newPool("test", 2, slogDiscard(), func() (int, error) {
		mu.Lock()
		defer mu.Unlock()
		made++
		return made, nil
	}, func(int) {})
	if err != nil || made != 1 {
		t.Fatalf("eager first instance: made %d, %v", made, err)
	}
	ctx := context.Background()
	a, _ := p.get(ctx, nil)
	b, _ := p.get(ctx, nil)
	if a == b || made != 2 {
		t.Fatalf("two instances in use: %d %d (made %d)", a, b, made)
	}
	tctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := p.get(tctx, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third get: %v", err)
	}
	stop := make(chan struct{})
	close(stop)
	if _, err := p.get(ctx, stop); err != errClosedEngine {
		t.Fatalf("get after stop: %v", err)
	}
	p.put(a)
	if c, _ := p.get(ctx, nil); c != a || made != 2 {
		t.Fatalf("reuse: got %d (made %d)", c, made)
	}
	mkErr := errors.New("no memory")
	if _, err := newPool("bad", 1, slogDiscard(), func() (int, error) { return 0, mkErr }, func(int) {}); err != mkErr {
		t.Fatalf("failing model: %v", err)
	}
}

// Real models, when the operator's folders are given:
//
//	IVR_TEST_SHERPA_ASR=var/models/sherpa-onnx-whisper-base go test ./speech/sherpa/
//	IVR_TEST_SHERPA_TTS_RO=var/models/vits-piper-ro_RO-mihai-medium IVR_TEST_SHERPA_TTS_EN=... go test ...

func TestRealRecognizer(t *testing.T) {
	dir := os.Getenv("IVR_TEST_SHERPA_ASR")
	if dir == "" {
		t.Skip("IVR_TEST_SHERPA_ASR not set: no recognition model folder (model files cannot be downloaded here; see docs/speech.md)")
	}
	m, err := DetectASR(dir, KindAuto, false)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{ASR: map[string]string{}}
	var cases []speechtest.RecognizerCase
	for _, lang := range []string{"ro", "en"} {
		if !m.Supports(lang) {
			continue
		}
		cfg.ASR[lang] = dir
		if lang == "ro" {
			cases = append(cases,
				speechtest.RecognizerCase{Lang: "ro", Grammar: speech.YesNo("ro"), Say: "da", WantTag: "yes"},
				speechtest.RecognizerCase{Lang: "ro", Grammar: speech.YesNo("ro"), Say: "nu", WantTag: "no"})
		} else {
			cases = append(cases, speechtest.RecognizerCase{Lang: "en", Grammar: speech.YesNo("en"), Say: "yes", WantTag: "yes", SynthLang: "en"})
		}
	}
	r, err := NewRecognizer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	syn, err := espeak.New(espeak.Options{})
	testenv.Need(t, "espeak-ng (it renders the test speech)", "Debian packages espeak-ng libespeak-ng-dev (make deps)", err)
	speechtest.TestRecognizer(t, r, syn, cases)
}

func TestRealSynthesizer(t *testing.T) {
	for _, lang := range []string{"ro", "en"} {
		t.Run(lang, func(t *testing.T) {
			env := "IVR_TEST_SHERPA_TTS_" + strings.ToUpper(lang)
			dir := os.Getenv(env)
			if dir == "" {
				t.Skip(env + " not set: no piper voice folder (model files cannot be downloaded here; see docs/speech.md)")
			}
			s, err := NewSynthesizer(Config{TTS: map[string]string{lang: dir}})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			speechtest.TestSynthesizer(t, s, lang)
		})
	}
}

// loudThreshold separates speech from quiet noise for the loudness
// whisper (measured: espeak's "da" at -22 dBFS gives a log-mel peak above
// 1, white noise at -47 dBFS one below 0.5).
const loudThreshold = 0.75

// TestRecognizerConformance runs the speechtest kit through the real
// sherpa-onnx whisper decoding with the loudness whisper: every rate,
// silence, the contract, cancellation, and three concurrent streams on
// two model instances.
func TestRecognizerConformance(t *testing.T) {
	r, err := NewRecognizer(Config{ASR: map[string]string{"ro": loudnessWhisperDir(t, loudThreshold)}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	syn, err := espeak.New(espeak.Options{})
	testenv.Need(t, "espeak-ng (it renders the test speech)", "Debian packages espeak-ng libespeak-ng-dev (make deps)", err)
	speechtest.TestRecognizer(t, r, syn, []speechtest.RecognizerCase{
		{Lang: "ro", Grammar: speech.YesNo("ro"), Say: "da", WantTag: "yes"},
	})
}

// TestRecognizerHearsTheAudio: what the model decodes is the audio
// written, at both rates: quiet noise (above the silence gate) gives the
// other word than loud speech.
func TestRecognizerHearsTheAudio(t *testing.T) {
	r, err := NewRecognizer(Config{ASR: map[string]string{"ro": loudnessWhisperDir(t, loudThreshold)}, Logger: slogDiscard()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	for _, rate := range speech.Rates {
		noise := make([]int16, rate)
		rng := rand.New(rand.NewPCG(1, uint64(rate)))
		for i := range noise {
			noise[i] = int16(rng.NormFloat64() * 150) // about -47 dBFS
		}
		st, err := r.NewStream(ctx, speech.StreamOptions{Lang: "ro", Rate: rate, Grammar: speech.YesNo("ro")})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range speechtest.Frames(noise, rate) {
			st.Write(f)
		}
		res, err := st.Finish(ctx)
		if err != nil || res.Text != "nu" || res.Tag != "no" {
			t.Errorf("%d Hz, quiet noise: %+v, %v; want the model's \"nu\"", rate, res, err)
		}
	}
	// Below the gate nothing reaches the model.
	r.silence = -40
	st, _ := r.NewStream(ctx, speech.StreamOptions{Lang: "ro", Rate: 8000})
	for range 50 {
		f := make([]int16, 160)
		f[0] = 300
		st.Write(f)
	}
	if res, err := st.Finish(ctx); err != nil || res.Text != "" {
		t.Errorf("below the gate: %+v, %v", res, err)
	}
}

// TestRecognizerCloseJoins: Close waits for a decode under way, and a
// stream finished after Close gets ErrClosed.
func TestRecognizerCloseJoins(t *testing.T) {
	r, err := NewRecognizer(Config{ASR: map[string]string{"ro": loudnessWhisperDir(t, loudThreshold)}, Logger: slogDiscard(), Instances: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	loud := make([]int16, 320)
	for i := range loud {
		loud[i] = int16(8000 * (i%2*2 - 1))
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		st, err := r.NewStream(ctx, speech.StreamOptions{Lang: "ro", Rate: 16000})
		if err != nil {
			t.Fatal(err)
		}
		for range 25 {
			st.Write(loud)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = st.Finish(ctx)
		}()
	}
	r.Close()
	wg.Wait()
	for i, err := range errs {
		if err != nil && !errors.Is(err, speech.ErrClosed) {
			t.Errorf("stream %d: %v, want a result or ErrClosed", i, err)
		}
	}
}

// BenchmarkWrite is the per-frame cost of a stream at 8 kHz (resampling
// to 16 kHz, level, conversion): what the media loop pays while a caller
// speaks.
func BenchmarkWrite(b *testing.B) {
	d := b.TempDir()
	enc, dec := loudnessWhisper(loudThreshold)
	writeFile(b, d, "loud-encoder.onnx", enc)
	writeFile(b, d, "loud-decoder.onnx", dec)
	writeFile(b, d, "loud-tokens.txt", []byte("IQ== 0\n"))
	r, err := NewRecognizer(Config{ASR: map[string]string{"ro": d}, Logger: slogDiscard()})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	frame := make([]int16, 160)
	for i := range frame {
		frame[i] = int16(4000 * (i % 7))
	}
	st, _ := r.NewStream(context.Background(), speech.StreamOptions{Lang: "ro", Rate: 8000})
	// Utterances are abandoned (Finish with a done context: no decode),
	// so only Write is measured.
	done, cancel := context.WithCancel(context.Background())
	cancel()
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		if n == 250 { // 5 s, a typical utterance
			st.Finish(done)
			st, _ = r.NewStream(context.Background(), speech.StreamOptions{Lang: "ro", Rate: 8000})
			n = 0
		}
		if err := st.Write(frame); err != nil {
			b.Fatal(err)
		}
		n++
	}
}

// BenchmarkFinish is one 2-second utterance through the whole whisper
// path of sherpa-onnx (features, encoder, token loop) with the loudness
// whisper: the engine's overhead per utterance, without a real model's
// network (a real whisper adds its own time on top).
func BenchmarkFinish(b *testing.B) {
	r, err := NewRecognizer(Config{ASR: map[string]string{"ro": loudnessWhisperDir(b, loudThreshold)}, Logger: slogDiscard()})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	frame := make([]int16, 160)
	for i := range frame {
		frame[i] = int16(4000 * (i % 7))
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		st, _ := r.NewStream(ctx, speech.StreamOptions{Lang: "ro", Rate: 8000})
		for range 100 {
			st.Write(frame)
		}
		if _, err := st.Finish(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRealFinish decodes a 2-second Romanian utterance (espeak-ng's
// "Vreau să vorbesc cu un operator.") with the operator's model in
// IVR_TEST_SHERPA_ASR.
func BenchmarkRealFinish(b *testing.B) {
	dir := os.Getenv("IVR_TEST_SHERPA_ASR")
	if dir == "" {
		b.Skip("IVR_TEST_SHERPA_ASR not set")
	}
	r, err := NewRecognizer(Config{ASR: map[string]string{"ro": dir}, Logger: slogDiscard()})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	syn, err := espeak.New(espeak.Options{})
	testenv.Need(b, "espeak-ng (it renders the test speech)", "Debian packages espeak-ng libespeak-ng-dev (make deps)", err)
	pcm := speechtest.Render(b, syn, speech.SynthRequest{Text: "Vreau să vorbesc cu un operator.", Lang: "ro", Rate: 8000})
	ctx := context.Background()
	for b.Loop() {
		st, _ := r.NewStream(ctx, speech.StreamOptions{Lang: "ro", Rate: 8000})
		for _, f := range speechtest.Frames(pcm, 8000) {
			st.Write(f)
		}
		if _, err := st.Finish(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Seconds())/float64(b.N)/(float64(len(pcm))/8000), "rtf")
}
