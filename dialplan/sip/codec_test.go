package sip_test

import (
	"context"
	"testing"
	"time"

	"github.com/emiago/diago/media"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/speech/speechtest"
)

// What the line hears does not depend on the caller's codec: the same
// recordings, said after several seconds of line silence (as callers do,
// while they listen to the line), sent as PCMA, PCMU and Opus over real
// SIP calls, are heard as the same answers at the shipped main menu (the
// same words over both G.711 laws, the same menu option over Opus, whose
// call the line decodes at 16 kHz). Before the decoder's beams and phone
// insertion penalty were set (docs/speech.md), "pașaportul" came out
// "contul" over PCMA and "pasaportul" over PCMU.
func TestSameAnswersWhateverTheCodec(t *testing.T) {
	_, rec, syn := speechEngines(t)
	var phrases []string
	for _, o := range speechtest.ShippedMenu {
		phrases = append(phrases, o.Phrases...)
	}
	says := []struct{ text, option string }{
		{"pașaportul", "passport"},
		{"buletinul", "identity_card"},
		{"contul de pe portal", "portal_account"},
	}
	var recordings [][]int16 // one rendering of each, at 8 kHz
	for _, s := range says {
		recordings = append(recordings, utterance(t, syn, "ro", s.text, 8000))
	}
	option := func(text string) string {
		n := flows.Normalize(text)
		for _, o := range speechtest.ShippedMenu {
			for _, p := range o.Phrases {
				if flows.Normalize(p) == n {
					return o.ID
				}
			}
		}
		return ""
	}
	heard := map[string][]string{}
	t.Run("codecs", func(t *testing.T) {
		for _, codec := range []media.Codec{media.CodecAudioAlaw, media.CodecAudioUlaw, media.CodecAudioOpus} {
			texts := make([]string, len(says))
			heard[codec.Name] = texts
			t.Run(codec.Name, func(t *testing.T) {
				t.Parallel()
				steps := make(chan step, len(says))
				flow := flowFunc(func(ctx context.Context, f flows.Facts, ch flows.Channel, _ flows.Services) flows.Outcome {
					for range says {
						in, err := ch.Listen(ctx, flows.Listen{Lang: "ro", Expect: flows.ExpectChoice, Phrases: phrases, MaxDigits: 1, NoInput: 20 * time.Second})
						steps <- step{input: in, err: err}
						if err != nil {
							break
						}
					}
					return flows.Outcome{Kind: flows.OutcomeHangup}
				})
				l := speechLine(t, flow, rec)
				c := l.answered(t, codec, media.CodecTelephoneEvent8000)
				for i, pcm := range recordings {
					c.speak(silence(c.rate, 6*time.Second-3*time.Second*time.Duration(min(i, 1))))
					if c.rate != 8000 {
						pcm = resample(t, pcm, 8000, c.rate)
					}
					c.speak(pcm)
					in := nextStep(t, steps).input
					texts[i] = in.Text
					if in.Mode != flows.InputSpeech || option(in.Text) != says[i].option {
						t.Errorf("%s: said %q, heard %+v (option %q), want option %s", codec.Name, says[i].text, in, option(in.Text), says[i].option)
					}
				}
			})
		}
	})
	t.Logf("heard: %v", heard)
}

// silence is d of digital silence at rate (the phone encodes it in its
// codec: A-law silence decodes to +8, not 0).
func silence(rate int, d time.Duration) []int16 {
	return make([]int16, int(int64(rate)*int64(d)/int64(time.Second)))
}

// resample converts pcm from one rate to another.
func resample(t testing.TB, pcm []int16, from, to int) []int16 {
	t.Helper()
	rs, err := audio.NewResampler(from, to)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int16, len(pcm)*to/from+to/50)
	return out[:rs.Process(out, pcm)]
}
