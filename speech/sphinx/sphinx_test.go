package sphinx

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/govline/ivr/speech"
	"github.com/govline/ivr/speech/espeak"
	"github.com/govline/ivr/speech/speechtest"
)

func newRec(t testing.TB, o Options) *Recognizer {
	t.Helper()
	r, err := New(o)
	if err != nil {
		t.Fatalf("pocketsphinx (make deps installs libpocketsphinx-dev, pocketsphinx-en-us): %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func newSynth(t testing.TB) *espeak.Synth {
	s, err := espeak.New(espeak.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func menuRO() *speech.Grammar {
	g := &speech.Grammar{}
	g.Add("buletin", "buletin", "buletinul", "carte de identitate")
	g.Add("pașaport", "pașaport", "pașaportul")
	g.Add("cont", "cont", "contul")
	g.Add("operator", "operator", "vreau să vorbesc cu un operator")
	g.Add("english", "english")
	return g
}

func menuEN() *speech.Grammar {
	g := &speech.Grammar{}
	g.Add("id", "identity card", "id card")
	g.Add("passport", "passport")
	g.Add("account", "account")
	g.Add("operator", "operator", "agent", "talk to a person")
	return g
}

func TestConformance(t *testing.T) {
	speechtest.TestRecognizer(t, newRec(t, Options{}), newSynth(t), []speechtest.RecognizerCase{
		{Lang: "en", Grammar: speech.YesNo("en"), Say: "yes", WantTag: "yes", SynthLang: "en-us", Partials: true},
		{Lang: "en", Grammar: menuEN(), Say: "passport", WantTag: "passport", SynthLang: "en-us", Partials: true},
		{Lang: "ro", Grammar: speech.YesNo("ro"), Say: "da", WantTag: "yes", Partials: true},
		{Lang: "ro", Grammar: menuRO(), Say: "pașaportul", WantTag: "pașaport", Partials: true},
	})
}

// BenchmarkStream is the CPU cost of recognizing telephone audio (8 kHz,
// upsampled) with the main-menu grammar on a pooled decoder: ns/op is one
// 20 ms frame, so ns/op / 20e6 is the real-time factor of one call.
func BenchmarkStream(b *testing.B) {
	r := newRec(b, Options{})
	syn := newSynth(b)
	pcm := speechtest.Render(b, syn, speech.SynthRequest{Text: "vreau să vorbesc cu un operator", Lang: "ro", Rate: 8000})
	frames := speechtest.Frames(pcm, 8000)
	ctx := context.Background()
	b.ReportAllocs()
	var st speech.Stream
	i := 0
	for b.Loop() {
		if i%len(frames) == 0 {
			if st != nil {
				st.Finish(ctx)
			}
			st, _ = r.NewStream(ctx, speech.StreamOptions{Lang: "ro", Rate: 8000, Grammar: menuRO()})
		}
		st.Write(frames[i%len(frames)])
		i++
	}
	if st != nil {
		st.Finish(ctx)
	}
}

// The same utterance decoded again and again on one Recognizer (so on a
// pooled decoder that already heard it) gives the same answer: a caller's
// "nu" must not turn into "da" because of what the previous caller said.
func TestRepeatedUtteranceSameResult(t *testing.T) {
	r := newRec(t, Options{})
	syn := newSynth(t)
	ctx := context.Background()
	c := speechtest.Conditions()[1] // G.711 8 kHz
	for _, say := range []struct{ text, tag string }{{"nu", "no"}, {"da", "yes"}} {
		pcm := speechtest.Render(t, syn, speech.SynthRequest{Text: say.text, Lang: "ro", Rate: c.Rate})
		pcm = append(append(speechtest.Silence(c.Rate, 300*time.Millisecond), pcm...), speechtest.Silence(c.Rate, 400*time.Millisecond)...)
		pcm = speechtest.Channel(pcm, c, 1)
		for i := range 5 {
			st, err := r.NewStream(ctx, speech.StreamOptions{Lang: "ro", Rate: c.Rate, Grammar: speech.YesNo("ro")})
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range speechtest.Frames(pcm, c.Rate) {
				if err := st.Write(f); err != nil {
					t.Fatal(err)
				}
			}
			res, err := st.Finish(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if res.Tag != say.tag {
				t.Errorf("%q, decode %d of 5: heard %q (tag %q), want tag %q", say.text, i+1, res.Text, res.Tag, say.tag)
			}
		}
	}
}

// What one call taught the decoder (its line's cepstral mean) stays with
// that call: after another call said "da" three times, this caller's
// first "nu" is still heard as "nu".
func TestAdaptationStaysWithItsCall(t *testing.T) {
	r := newRec(t, Options{})
	syn := newSynth(t)
	ctx := context.Background()
	c := speechtest.Conditions()[1] // G.711 8 kHz
	decode := func(call, text string) speech.Result {
		pcm := speechtest.Render(t, syn, speech.SynthRequest{Text: text, Lang: "ro", Rate: c.Rate})
		pcm = append(append(speechtest.Silence(c.Rate, 300*time.Millisecond), pcm...), speechtest.Silence(c.Rate, 400*time.Millisecond)...)
		st, err := r.NewStream(ctx, speech.StreamOptions{Lang: "ro", Rate: c.Rate, Grammar: speech.YesNo("ro"), Call: call})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range speechtest.Frames(speechtest.Channel(pcm, c, 1), c.Rate) {
			if err := st.Write(f); err != nil {
				t.Fatal(err)
			}
		}
		res, err := st.Finish(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	for range 3 {
		if res := decode("call-a", "da"); res.Tag != "yes" {
			t.Errorf("call a: \"da\" heard as %q", res.Text)
		}
	}
	if res := decode("call-b", "nu"); res.Tag != "no" {
		t.Errorf("call b's first \"nu\" heard as %q (tag %q) after call a", res.Text, res.Tag)
	}
}

// BenchmarkDigitUtterance is the CPU cost of one spoken 4-digit string
// (about 2 s: NewStream, every frame, Finish) per front end: "plain"
// decodes digits like any grammar, "digits" adds the second pass at
// 16 kHz (Finish's extra time is that second decode; nothing at 8 kHz).
func BenchmarkDigitUtterance(b *testing.B) {
	syn := newSynth(b)
	for _, rate := range []int{8000, 16000} {
		pcm := speechtest.Render(b, syn, speech.SynthRequest{Text: "zero seven two one", Lang: "en-us", Rate: rate})
		pcm = append(append(speechtest.Silence(rate, 300*time.Millisecond), pcm...), speechtest.Silence(rate, 400*time.Millisecond)...)
		frames := speechtest.Frames(pcm, rate)
		for _, plain := range []bool{true, false} {
			name := fmt.Sprintf("%dHz/digits", rate)
			if plain {
				name = fmt.Sprintf("%dHz/plain", rate)
			}
			b.Run(name, func(b *testing.B) {
				r := newRec(b, Options{PlainDigits: plain})
				ctx := context.Background()
				g := &speech.Grammar{Digits: 4, MinDigits: 4}
				b.ReportAllocs()
				for b.Loop() {
					st, err := r.NewStream(ctx, speech.StreamOptions{Lang: "en", Rate: rate, Grammar: g})
					if err != nil {
						b.Fatal(err)
					}
					for _, f := range frames {
						st.Write(f)
					}
					if _, err := st.Finish(ctx); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
