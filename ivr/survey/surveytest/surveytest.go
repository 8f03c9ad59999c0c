// Package surveytest is the conformance table every survey.Caller (a
// telephony adapter: dialplan/sip, dialplan/ari, dialplan/esl) passes, as
// testing/slogtest is for slog handlers: an answered call runs the flow
// once and SurveyCall returns after it; busy, unanswered, answered by a
// machine, not a number and a stopped round are named the same on every
// telephony and run no flow.
package surveytest

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/ivr/survey"
)

// How the far end of the calls answers.
const (
	Answer   = "answer"   // answers; the call lasts until the line hangs up
	Busy     = "busy"     // refuses as busy (SIP 486, Q.850 17, USER_BUSY)
	NoAnswer = "noanswer" // rings until the ring timeout (keep it short)
	// Machine answers with a voicemail's long greeting (as
	// ivr/amd/amdtest.Voicemail renders it), on a line with answering
	// machine detection on.
	Machine = "machine"
)

// NewLine starts an adapter whose far end answers every call as how says,
// on loopback, stopped by t.Cleanup, and returns it as a survey.Caller.
type NewLine func(t *testing.T, how string) survey.Caller

// flow is a survey flow that lets the call settle (300 ms, as a prompt
// would) and ends; it notes that it ran and returned.
type flow struct {
	runs     atomic.Int32
	returned atomic.Bool
}

func (f *flow) Run(ctx context.Context, facts flows.Facts, ch flows.Channel, svc flows.Services) flows.Outcome {
	f.runs.Add(1)
	defer f.returned.Store(true)
	t := time.NewTimer(300 * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	return flows.Outcome{Reason: "no rating"}
}

var _ ivr.FlowRunner = (*flow)(nil)

// Run runs the table on lines newLine starts.
func Run(t *testing.T, newLine NewLine) {
	t.Run("answered", func(t *testing.T) {
		c := newLine(t, Answer)
		f := &flow{}
		if got := c.SurveyCall(context.Background(), "0722123456", f); got != survey.Answered {
			t.Fatalf("SurveyCall: %q, want %s", got, survey.Answered)
		}
		if n := f.runs.Load(); n != 1 {
			t.Errorf("the flow ran %d times, want once", n)
		}
		if !f.returned.Load() {
			t.Error("SurveyCall returned before the flow did")
		}
	})
	for _, c := range []struct{ how, want string }{{Busy, survey.Busy}, {NoAnswer, survey.NoAnswer}, {Machine, survey.Machine}} {
		t.Run(c.how, func(t *testing.T) {
			line := newLine(t, c.how)
			f := &flow{}
			if got := line.SurveyCall(context.Background(), "0722123456", f); got != c.want {
				t.Errorf("SurveyCall: %q, want %s", got, c.want)
			}
			if f.runs.Load() != 0 {
				t.Error("the flow ran on a call nobody answered")
			}
		})
	}
	t.Run("not a number, a stopped round", func(t *testing.T) {
		line := newLine(t, Answer)
		f := &flow{}
		for _, n := range []string{"0722;123", "12", ""} {
			if got := line.SurveyCall(context.Background(), n, f); got == survey.Answered {
				t.Errorf("SurveyCall(%q) answered", n)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if got := line.SurveyCall(ctx, "0722123456", f); got != survey.Cancelled {
			t.Errorf("SurveyCall of a stopped round: %q, want %s", got, survey.Cancelled)
		}
		if f.runs.Load() != 0 {
			t.Error("the flow ran")
		}
	})
}
