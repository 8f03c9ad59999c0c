package sip_test

import (
	"testing"
	"time"

	"github.com/govline/ivr/dialplan/sip"
	"github.com/govline/ivr/ivr/survey"
	"github.com/govline/ivr/ivr/survey/surveytest"
)

// The embedded line passes the survey.Caller conformance table against a
// real SIP trunk on loopback.
func TestSurveyCallerConformanceSIP(t *testing.T) {
	modes := map[string]trunkMode{surveytest.Answer: trunkAnswer, surveytest.Busy: trunkBusy, surveytest.NoAnswer: trunkRing, surveytest.Machine: trunkAnswer}
	surveytest.Run(t, func(t *testing.T, how string) survey.Caller {
		tk := newTestTrunk(t, modes[how], trunkPass)
		if how == surveytest.Machine {
			tk.answered = newAnswerer(t, voicemailGreeting, 200*time.Millisecond, 600*time.Millisecond).serve
		}
		l := startOutboundLine(t, tk, func(o *sip.OutboundConfig) {
			o.RingTimeout = 700 * time.Millisecond
			o.Machine.Enabled = how == surveytest.Machine
		})
		return l.srv
	})
}
