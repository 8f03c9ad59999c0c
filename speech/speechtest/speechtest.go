// Package speechtest is the conformance kit of the speech interfaces: every
// engine's tests call TestSynthesizer, TestRecognizer or TestVAD, so all
// engines honour the same contract (frame sizes, end of stream, Close and
// cancellation, concurrent use, and that they actually work on speech).
//
// The kit renders its test speech with a speech.Synthesizer the caller
// passes (the embedded espeak engine in this repository), so it needs no
// audio files.
package speechtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/speech"
)

// Render synthesizes req to the end and returns the samples.
func Render(t testing.TB, s speech.Synthesizer, req speech.SynthRequest) []int16 {
	t.Helper()
	pcm, err := Synthesize(s, req)
	if err != nil {
		t.Fatal(err)
	}
	return pcm
}

// Synthesize synthesizes req to the end and returns the samples (Render
// for a program that is not a test: ivrbench's callers).
func Synthesize(s speech.Synthesizer, req speech.SynthRequest) ([]int16, error) {
	a, err := s.Synthesize(context.Background(), req)
	if err != nil {
		return nil, fmt.Errorf("Synthesize(%q): %w", req.Text, err)
	}
	defer a.Close()
	frame := make([]int16, audio.SamplesPerFrame(req.Rate))
	var out []int16
	for {
		err := a.ReadFrame(frame)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("ReadFrame(%q): %w", req.Text, err)
		}
		out = append(out, frame...)
	}
}

// Frames splits pcm into 20 ms frames at rate, padding the last with
// silence. The frames share pcm's storage when no padding is needed.
func Frames(pcm []int16, rate int) [][]int16 {
	n := audio.SamplesPerFrame(rate)
	var out [][]int16
	for i := 0; i < len(pcm); i += n {
		if i+n <= len(pcm) {
			out = append(out, pcm[i:i+n])
		} else {
			f := make([]int16, n)
			copy(f, pcm[i:])
			out = append(out, f)
		}
	}
	return out
}

// Silence returns d of digital silence at rate.
func Silence(rate int, d time.Duration) []int16 {
	return make([]int16, int(int64(rate)*int64(d)/int64(time.Second)))
}

// TestSynthesizer checks s against the speech.Synthesizer contract in
// language lang.
func TestSynthesizer(t *testing.T, s speech.Synthesizer, lang string) {
	text := map[string]string{
		"ro": "Bună ziua. Ați sunat la linia de asistență.",
		"en": "Hello. You have reached the support line.",
	}[lang]
	if text == "" {
		text = "Hello."
	}
	ctx := context.Background()
	for _, rate := range speech.Rates {
		t.Run("speech-"+itoa(rate), func(t *testing.T) {
			pcm := Render(t, s, speech.SynthRequest{Text: text, Lang: lang, Rate: rate})
			if d := time.Duration(len(pcm)) * time.Second / time.Duration(rate); d < 500*time.Millisecond || d > 20*time.Second {
				t.Fatalf("%q lasts %v; want a plausible spoken length", text, d)
			}
			if len(pcm)%audio.SamplesPerFrame(rate) != 0 {
				t.Fatalf("%d samples: not whole frames", len(pcm))
			}
			if db := audio.DBFS(pcm); db < -40 {
				t.Fatalf("speech level %.1f dBFS: too quiet to be speech", db)
			}
		})
	}
	t.Run("eof-repeats", func(t *testing.T) {
		a, err := s.Synthesize(ctx, speech.SynthRequest{Text: "Da.", Lang: lang, Rate: 8000})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		f := make([]int16, 160)
		for i := 0; ; i++ {
			err := a.ReadFrame(f)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil || i > 1000 {
				t.Fatalf("frame %d: %v", i, err)
			}
		}
		if err := a.ReadFrame(f); !errors.Is(err, io.EOF) {
			t.Fatalf("ReadFrame after EOF: %v, want io.EOF", err)
		}
	})
	t.Run("bad-input", func(t *testing.T) {
		if _, err := s.Synthesize(ctx, speech.SynthRequest{Text: "x", Lang: lang, Rate: 11025}); !errors.Is(err, speech.ErrUnsupported) {
			t.Errorf("rate 11025: %v, want ErrUnsupported", err)
		}
		if _, err := s.Synthesize(ctx, speech.SynthRequest{Text: "x", Lang: "xx-klingon", Rate: 8000}); !errors.Is(err, speech.ErrUnsupported) {
			t.Errorf("unknown language: %v, want ErrUnsupported", err)
		}
		a, err := s.Synthesize(ctx, speech.SynthRequest{Text: "Da.", Lang: lang, Rate: 8000})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		if err := a.ReadFrame(make([]int16, 100)); !errors.Is(err, speech.ErrFrameSize) {
			t.Errorf("100-sample frame: %v, want ErrFrameSize", err)
		}
	})
	long := text + " " + text + " " + text + " " + text
	t.Run("close-stops", func(t *testing.T) {
		a, err := s.Synthesize(ctx, speech.SynthRequest{Text: long, Lang: lang, Rate: 8000})
		if err != nil {
			t.Fatal(err)
		}
		f := make([]int16, 160)
		if err := a.ReadFrame(f); err != nil {
			t.Fatalf("first frame: %v", err)
		}
		if err := a.Close(); err != nil {
			t.Fatal(err)
		}
		if err := a.ReadFrame(f); !errors.Is(err, speech.ErrClosed) {
			t.Fatalf("ReadFrame after Close: %v, want ErrClosed", err)
		}
		if err := a.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
	t.Run("close-from-other-goroutine", func(t *testing.T) {
		a, err := s.Synthesize(ctx, speech.SynthRequest{Text: long, Lang: lang, Rate: 8000})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			f := make([]int16, 160)
			for {
				if err := a.ReadFrame(f); err != nil {
					done <- err
					return
				}
			}
		}()
		a.Close()
		select {
		case err := <-done:
			if !errors.Is(err, speech.ErrClosed) && !errors.Is(err, io.EOF) {
				t.Fatalf("reader ended with %v, want ErrClosed", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("reader still blocked 10 s after Close")
		}
	})
	t.Run("cancel", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		a, err := s.Synthesize(cctx, speech.SynthRequest{Text: long, Lang: lang, Rate: 16000})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		cancel()
		f := make([]int16, 320)
		if err := a.ReadFrame(f); !errors.Is(err, context.Canceled) {
			t.Fatalf("ReadFrame after cancel: %v, want context.Canceled", err)
		}
	})
	t.Run("concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		lens := make([]int, 4)
		for i := range lens {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pcm := Render(t, s, speech.SynthRequest{Text: text, Lang: lang, Rate: 8000})
				lens[i] = len(pcm)
			}()
		}
		wg.Wait()
		for i, n := range lens {
			if n < 4000 {
				t.Errorf("goroutine %d got %d samples", i, n)
			}
		}
	})
}

// RecognizerCase is one utterance the recognizer must get right.
type RecognizerCase struct {
	Lang    string
	Grammar *speech.Grammar
	Say     string // rendered by the kit's synthesizer
	WantTag string
	// Partials says the engine streams partial results: the kit then
	// requires at least one while the audio goes in.
	Partials bool
	// SynthLang, when set, is the synthesizer language for Say (e.g.
	// "en-us" for a US English model); Lang otherwise.
	SynthLang string
}

// TestRecognizer checks r against the speech.Recognizer contract. syn
// renders the cases' utterances; the cases must be ones the engine gets
// right on clean audio at both rates (the accuracy on harder audio is
// measured elsewhere).
func TestRecognizer(t *testing.T, r speech.Recognizer, syn speech.Synthesizer, cases []RecognizerCase) {
	if len(cases) == 0 {
		t.Fatal("speechtest: no cases")
	}
	ctx := context.Background()
	recognize := func(t *testing.T, c RecognizerCase, rate int, pcm []int16) (speech.Result, int) {
		st, err := r.NewStream(ctx, speech.StreamOptions{Lang: c.Lang, Rate: rate, Grammar: c.Grammar})
		if err != nil {
			t.Fatalf("NewStream: %v", err)
		}
		partials := 0
		for _, f := range Frames(pcm, rate) {
			if err := st.Write(f); err != nil {
				t.Fatalf("Write: %v", err)
			}
			if p, changed := st.Partial(); changed {
				if p.Final {
					t.Errorf("partial result marked Final: %+v", p)
				}
				partials++
			}
		}
		// Network engines get their partials asynchronously, and the kit
		// writes faster than real time: give them a moment.
		for deadline := time.Now().Add(2 * time.Second); c.Partials && partials == 0 && time.Now().Before(deadline); {
			if _, changed := st.Partial(); changed {
				partials++
			}
			time.Sleep(5 * time.Millisecond)
		}
		res, err := st.Finish(ctx)
		if err != nil {
			t.Fatalf("Finish: %v", err)
		}
		if !res.Final {
			t.Errorf("final result not marked Final: %+v", res)
		}
		if res.Confidence < 0 || res.Confidence > 1 {
			t.Errorf("confidence %v outside 0..1", res.Confidence)
		}
		return res, partials
	}
	for _, rate := range speech.Rates {
		for _, c := range cases {
			t.Run(c.Lang+"-"+itoa(rate)+"-"+c.Say, func(t *testing.T) {
				sl := c.SynthLang
				if sl == "" {
					sl = c.Lang
				}
				pcm := append(Silence(rate, 300*time.Millisecond), Render(t, syn, speech.SynthRequest{Text: c.Say, Lang: sl, Rate: rate})...)
				pcm = append(pcm, Silence(rate, 300*time.Millisecond)...)
				res, partials := recognize(t, c, rate, pcm)
				if res.Tag != c.WantTag {
					t.Fatalf("said %q, recognized %q (tag %q), want tag %q", c.Say, res.Text, res.Tag, c.WantTag)
				}
				if c.Partials && partials == 0 {
					t.Errorf("no partial result while %v of audio streamed", time.Duration(len(pcm))*time.Second/time.Duration(rate))
				}
				for i, w := range res.Words {
					if w.End < w.Start || (i > 0 && w.Start < res.Words[i-1].Start) {
						t.Errorf("word timings out of order: %+v", res.Words)
						break
					}
				}
			})
		}
	}
	c := cases[0]
	t.Run("silence", func(t *testing.T) {
		res, _ := recognize(t, c, 8000, Silence(8000, time.Second))
		if res.Tag != "" {
			t.Fatalf("silence recognized as %q (tag %q)", res.Text, res.Tag)
		}
	})
	t.Run("contract", func(t *testing.T) {
		if _, err := r.NewStream(ctx, speech.StreamOptions{Lang: c.Lang, Rate: 44100, Grammar: c.Grammar}); !errors.Is(err, speech.ErrUnsupported) {
			t.Errorf("rate 44100: %v, want ErrUnsupported", err)
		}
		st, err := r.NewStream(ctx, speech.StreamOptions{Lang: c.Lang, Rate: 8000, Grammar: c.Grammar})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Write(make([]int16, 320)); !errors.Is(err, speech.ErrFrameSize) {
			t.Errorf("320 samples at 8 kHz: %v, want ErrFrameSize", err)
		}
		if _, err := st.Finish(ctx); err != nil {
			t.Fatalf("Finish: %v", err)
		}
		if err := st.Write(make([]int16, 160)); !errors.Is(err, speech.ErrClosed) {
			t.Errorf("Write after Finish: %v, want ErrClosed", err)
		}
		if _, err := st.Finish(ctx); !errors.Is(err, speech.ErrClosed) {
			t.Errorf("second Finish: %v, want ErrClosed", err)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		st, err := r.NewStream(cctx, speech.StreamOptions{Lang: c.Lang, Rate: 8000, Grammar: c.Grammar})
		if err != nil {
			t.Fatal(err)
		}
		st.Write(make([]int16, 160))
		cancel()
		start := time.Now()
		if _, err := st.Finish(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Finish after the stream's context was cancelled: %v, want context.Canceled", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Finish took %v after cancel", d)
		}
	})
	t.Run("concurrent", func(t *testing.T) {
		pcm := Render(t, syn, speech.SynthRequest{Text: c.Say, Lang: c.Lang, Rate: 16000})
		pcm = append(pcm, Silence(16000, 300*time.Millisecond)...)
		var wg sync.WaitGroup
		tags := make([]string, 3)
		for i := range tags {
			wg.Add(1)
			go func() {
				defer wg.Done()
				st, err := r.NewStream(ctx, speech.StreamOptions{Lang: c.Lang, Rate: 16000, Grammar: c.Grammar})
				if err != nil {
					t.Error(err)
					return
				}
				for _, f := range Frames(pcm, 16000) {
					if err := st.Write(f); err != nil {
						t.Error(err)
						return
					}
					st.Partial()
				}
				res, err := st.Finish(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				tags[i] = res.Tag
			}()
		}
		wg.Wait()
		for i, tag := range tags {
			if tag != c.WantTag {
				t.Errorf("stream %d: tag %q, want %q", i, tag, c.WantTag)
			}
		}
	})
}

// TestVAD checks VADs made by newVAD against the speech.VAD contract,
// with speech rendered by syn.
func TestVAD(t *testing.T, newVAD func(rate int) (speech.VAD, error), syn speech.Synthesizer) {
	for _, rate := range speech.Rates {
		t.Run(itoa(rate), func(t *testing.T) {
			v, err := newVAD(rate)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.Process(make([]int16, audio.SamplesPerFrame(rate)+1)); !errors.Is(err, speech.ErrFrameSize) {
				t.Errorf("wrong frame size: %v, want ErrFrameSize", err)
			}
			words := Render(t, syn, speech.SynthRequest{Text: "Vreau să vorbesc cu un operator, vă rog.", Lang: "ro", Rate: rate})
			pcm := Silence(rate, time.Second)
			pcm = append(pcm, words...)
			pcm = append(pcm, Silence(rate, 1500*time.Millisecond)...)
			// The frames that carry sound (the synthesizer pads with
			// silence of its own).
			speechFrom, speechTo := -1, 0
			for i, f := range Frames(pcm, rate) {
				if audio.DBFS(f) > -50 {
					if speechFrom < 0 {
						speechFrom = i
					}
					speechTo = i + 1
				}
			}
			for round := 0; round < 2; round++ { // the second after Reset
				var starts, ends []int
				speechFrames := 0
				for i, f := range Frames(pcm, rate) {
					a, err := v.Process(f)
					if err != nil {
						t.Fatal(err)
					}
					if a.Probability < 0 || a.Probability > 1 {
						t.Fatalf("probability %v", a.Probability)
					}
					switch a.Event {
					case speech.SpeechStart:
						starts = append(starts, i)
					case speech.SpeechEnd:
						ends = append(ends, i)
					}
					if a.Speech {
						speechFrames++
						if i < speechFrom-5 {
							t.Fatalf("round %d: speech in the leading silence at frame %d", round, i)
						}
					}
				}
				if len(starts) == 0 || len(ends) != len(starts) {
					t.Fatalf("round %d: starts %v ends %v: want matching start and end events", round, starts, ends)
				}
				if starts[0] < speechFrom-5 || starts[0] > speechFrom+25 {
					t.Errorf("round %d: speech starts at frame %d, reported at %d", round, speechFrom, starts[0])
				}
				if last := ends[len(ends)-1]; last < speechTo || last > speechTo+75 {
					t.Errorf("round %d: speech ends at frame %d, reported at %d", round, speechTo, last)
				}
				if min := (speechTo - speechFrom) / 2; speechFrames < min {
					t.Errorf("round %d: %d speech frames of %d", round, speechFrames, speechTo-speechFrom)
				}
				v.Reset()
			}
		})
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
