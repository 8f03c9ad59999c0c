// Package amdtest is what the far end of an answered outbound call says
// in the answering machine detection tests of every telephony adapter
// (dialplan/sip, dialplan/ari, dialplan/esl): a person's "Alo?" and a
// voicemail's long greeting and beep, rendered by espeak-ng as a real
// voice, and the shared silero voice activity detector the engine uses
// (ivrd's default). Without espeak-ng or the model a test skips, or fails
// under CI and make (internal/testenv).
package amdtest

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/internal/testenv"
	"github.com/govline/ivr/ivr/amd"
	"github.com/govline/ivr/speech"
	"github.com/govline/ivr/speech/espeak"
	"github.com/govline/ivr/speech/silero"
)

// What the far ends say (Romanian).
const (
	Alo      = "Alo?"
	Greeting = "Bună ziua, ați sunat la Ion Popescu. Nu pot răspunde acum, vă rog lăsați un mesaj după semnal."
)

// The engines, loaded once for the test binary.
var (
	once      sync.Once
	talker    *espeak.Synth
	vadModel  *silero.Model
	enginesEr error
)

func engines(t testing.TB) (*espeak.Synth, *silero.Model) {
	t.Helper()
	once.Do(func() {
		// The far end renders each utterance alone (Isolated): what it
		// says does not depend on what was rendered before.
		if talker, enginesEr = espeak.New(espeak.Options{Isolated: true}); enginesEr != nil {
			return
		}
		vadModel, enginesEr = silero.NewModel(silero.ModelOptions{Options: silero.Options{MinSpeech: 64 * time.Millisecond, MinSilence: 100 * time.Millisecond}})
	})
	if enginesEr != nil {
		testenv.Missing(t, "espeak-ng and the VAD model", "Debian packages espeak-ng libespeak-ng-dev and the VAD model (make deps models)", enginesEr)
	}
	return talker, vadModel
}

// Speech renders text (ro) at rate without the synthesizer's own
// silences before and after it.
func Speech(t testing.TB, text string, rate int) []int16 {
	t.Helper()
	syn, _ := engines(t)
	a, err := syn.Synthesize(context.Background(), speech.SynthRequest{Text: text, Lang: "ro", Rate: rate})
	if err != nil {
		t.Fatal(err)
	}
	pcm, err := speech.ReadAll(a, rate)
	if err != nil {
		t.Fatal(err)
	}
	n := audio.SamplesPerFrame(rate)
	first, last := -1, 0
	for i := 0; i+n <= len(pcm); i += n {
		if audio.RMS(pcm[i:i+n]) > 300 {
			if first < 0 {
				first = i
			}
			last = i + n
		}
	}
	if first < 0 {
		t.Fatalf("espeak rendered nothing audible for %q", text)
	}
	return pcm[first:last]
}

// Answer is what a far end sends from the answer on, at Rate; after PCM
// it is silent.
type Answer struct {
	PCM  []int16
	Rate int
	// SpeechFrom and SpeechTo are the samples of PCM that are speech (the
	// rest is the phone's silence, or a beep after it).
	SpeechFrom, SpeechTo int
}

// NewAnswer is lead of silence, text (nothing when empty), then, when
// beep is not zero, 300 ms of silence and beep of a 1 kHz tone.
func NewAnswer(t testing.TB, text string, lead, beep time.Duration, rate int) Answer {
	t.Helper()
	a := Answer{Rate: rate, PCM: make([]int16, int(lead.Seconds()*float64(rate)))}
	a.SpeechFrom = len(a.PCM)
	if text != "" {
		a.PCM = append(a.PCM, Speech(t, text, rate)...)
	}
	a.SpeechTo = len(a.PCM)
	if beep > 0 {
		a.PCM = append(a.PCM, make([]int16, rate*3/10)...) // the machine's pause before its beep
		for i := range int(beep.Seconds() * float64(rate)) {
			a.PCM = append(a.PCM, int16(8000*math.Sin(2*math.Pi*1000*float64(i)/float64(rate))))
		}
	}
	return a
}

// Voicemail is a voicemail's answer: 200 ms, the long Greeting, a beep.
func Voicemail(t testing.TB, rate int) Answer {
	return NewAnswer(t, Greeting, 200*time.Millisecond, 600*time.Millisecond, rate)
}

// Person is a person's answer: 300 ms, "Alo?", then they wait.
func Person(t testing.TB, rate int) Answer {
	return NewAnswer(t, Alo, 300*time.Millisecond, 0, rate)
}

// Speech is how long the speech lasts.
func (a Answer) Speech() time.Duration {
	return time.Duration(a.SpeechTo-a.SpeechFrom) * time.Second / time.Duration(a.Rate)
}

// NewVAD is ivr.SpeechConfig.NewVAD with the shared silero model.
func NewVAD(t testing.TB) amd.NewVAD {
	t.Helper()
	_, m := engines(t)
	return func(rate int) (speech.VAD, func(), error) {
		s, err := m.NewStream(rate)
		if err != nil {
			return nil, nil, err
		}
		return s, func() { s.Close() }, nil
	}
}
