package console

import (
	"testing"

	"github.com/govline/ivr/speech"
	"github.com/govline/ivr/tickets"
)

// The console marks a spoken answer unsure exactly when the flows would
// have confirmed it: below speech.ConfirmBelow, never for keys.
func TestUnsureAtTheConfirmationThreshold(t *testing.T) {
	unsure := funcs["unsure"].(func(tickets.Turn) bool)
	for _, c := range []struct {
		mode string
		conf float64
		want bool
	}{
		{tickets.ModeSpeech, speech.ConfirmBelow - 0.01, true},
		{tickets.ModeSpeech, speech.ConfirmBelow, false},
		{tickets.ModeSpeech, 0.55, false}, // was "unsure" under the console's own 0.6
		{tickets.ModeSpeech, 0, true},     // an engine without a confidence
		{tickets.ModeDTMF, 0, false},
	} {
		if got := unsure(tickets.Turn{Speaker: tickets.SpeakerCaller, Mode: c.mode, Confidence: c.conf}); got != c.want {
			t.Errorf("%s answer at confidence %.2f: unsure %v, want %v", c.mode, c.conf, got, c.want)
		}
	}
}
