package ivr

import (
	"slices"
	"strings"
	"testing"

	"github.com/govline/ivr/flows"
)

func TestSpeechMetricsExposition(t *testing.T) {
	m := NewMetrics()
	m.SpeechTurns.Add(3)
	m.SpeechBargeIns.Add(2)
	m.SpeechFramesDropped.Add(7)
	m.SpeechVADFrames.Add(50)
	m.SpeechFallback("finish")
	m.SpeechFallback("finish")
	var b strings.Builder
	if err := m.WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"# TYPE ivr_speech_turns_total counter\nivr_speech_turns_total 3\n",
		"ivr_speech_bargeins_total 2\n",
		"ivr_speech_frames_dropped_total 7\n",
		"ivr_speech_vad_frames_total 50\n",
		"# TYPE ivr_speech_fallbacks_total counter\n",
		`ivr_speech_fallbacks_total{step="finish"} 2`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
	if m.SpeechFallbacks("finish") != 2 || m.SpeechFallbacks("write") != 0 {
		t.Error("fallback counts")
	}
}

// Each question's grammar holds what the flow asks, and "operator".
func TestGrammarFor(t *testing.T) {
	g := grammarFor(flows.Listen{Lang: "ro", Expect: flows.ExpectChoice, Phrases: []string{"Pașaport", "carte de identitate", "pașaport"}})
	var tags []string
	for _, p := range g.Phrases {
		tags = append(tags, p.Tag)
	}
	if !slices.Equal(tags[:2], []string{"pașaport", "carte de identitate"}) {
		t.Errorf("choice tags %v", tags)
	}
	if tag := g.Match("ro", "vreau să vorbesc cu un operator"); tag != "operator" {
		t.Errorf("operator phrase matched %q", tag)
	}
	yn := grammarFor(flows.Listen{Lang: "en", Expect: flows.ExpectYesNo})
	if yn.Match("en", "yeah") != "yes" || yn.Match("en", "nope") != "no" || yn.Match("en", "agent") != "operator" {
		t.Error("English yes/no grammar")
	}
	d := grammarFor(flows.Listen{Lang: "ro", Expect: flows.ExpectDigits, MinDigits: 4, MaxDigits: 4})
	if d.Digits != 4 || d.MinDigits != 4 || d.Match("ro", "unu doi trei patru") != "1234" || d.Match("ro", "unu doi") != "" {
		t.Errorf("digits grammar %+v", d)
	}
	if grammarFor(flows.Listen{Lang: "ro", Expect: flows.ExpectFree}) != nil {
		t.Error("free speech without phrases has a grammar")
	}
}
