package ari

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/dialplan/ari/aritest"
	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/ivr/amd"
	"github.com/govline/ivr/ivr/amd/amdtest"
	"github.com/govline/ivr/ivr/survey"
	"github.com/govline/ivr/tickets"
)

// Answering machine detection on survey calls through Asterisk: the fake
// Asterisk's far end answers and, once bridged, sends what espeak-ng
// renders for a person ("Alo?" and silence) or a voicemail (a long
// greeting and a beep) as ExternalMedia RTP; the engine listens with the
// shared silero detector before the survey flow speaks.

// machineLine is surveyLine with machine detection on (when on) and the
// silero detector, and one resolved ticket of 0722123456.
func machineLine(t *testing.T, on bool) (*line, survey.Config) {
	t.Helper()
	vad := amdtest.NewVAD(t)
	l, _, cfg := surveyLineWith(t, func(o *OutboundConfig) { o.Machine = amd.Config{Enabled: on} }, "0722123456")
	l.eng.Speech = &ivr.SpeechConfig{NewVAD: vad} // before any call
	return l, cfg
}

// farAnswer makes the far end of the originates say what answer renders
// (at 8 kHz, the line's ulaw) once bridged, and starts fn (the survey
// round). It returns the far end of the first originate, what it says and
// when it was bridged (when it started to say it, within 10 ms).
func farAnswer(t *testing.T, l *line, answer func(t testing.TB, rate int) amdtest.Answer, fn func()) (*aritest.Caller, amdtest.Answer, time.Time) {
	t.Helper()
	a := answer(t, 8000)
	l.ast.SetGreeting(func(int) []int16 { return a.PCM })
	go fn()
	var far *aritest.Caller
	if !waitFor(10*time.Second, func() bool {
		if o := l.ast.Originated(); len(o) > 0 {
			far = o[0]
		}
		return far != nil && far.Bridged()
	}) {
		t.Fatal("no originate answered and bridged")
	}
	return far, a, time.Now()
}

// loudest is the RMS of the loudest 20 ms c heard of the engine.
func loudest(c *aritest.Caller) float64 {
	heard, n, m := c.Heard(), max(c.Rate()/50, 1), 0.0
	for off := 0; off+n <= len(heard); off += n {
		m = math.Max(m, audio.RMS(heard[off:off+n]))
	}
	return m
}

// amdEvent is the ari.amd event of the call id.
func amdEvent(t *testing.T, l *line, id string) string {
	t.Helper()
	var detail string
	waitFor(5*time.Second, func() bool {
		for _, e := range l.events(id) {
			if e.Kind == "ari.amd" {
				detail = e.Detail
			}
		}
		return detail != ""
	})
	return detail
}

// TestSurveyCallMachineThroughARI: a voicemail answers the survey call;
// the engine hangs up during its greeting without a word, the survey's
// result is machine (as on the SIP line), not counted as answered, and
// the call's trace has the ari.amd event.
func TestSurveyCallMachineThroughARI(t *testing.T) {
	l, cfg := machineLine(t, true)
	done := make(chan int, 1)
	far, vm, began := farAnswer(t, l, amdtest.Voicemail, func() {
		n, _ := survey.Round(context.Background(), l.srv, cfg, l.eng.Metrics, discard())
		done <- n
	})
	var gone time.Time
	select {
	case <-far.Gone():
		gone = time.Now()
	case <-time.After(20 * time.Second):
		t.Fatal("the engine did not hang up on the voicemail")
	}
	select {
	case n := <-done:
		if n != 1 {
			t.Fatalf("Round placed %d calls, want 1", n)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the survey round did not end")
	}
	ev := amdEvent(t, l, far.ID)
	greetingEnd := began.Add(time.Duration(vm.SpeechTo) * time.Second / time.Duration(vm.Rate))
	t.Logf("the greeting lasts %s; hung up %s after it started, %s before its end; ari.amd: %s",
		vm.Speech(), gone.Sub(began).Round(time.Millisecond), greetingEnd.Sub(gone).Round(time.Millisecond), ev)
	if !strings.HasPrefix(ev, "machine: ") {
		t.Errorf("ari.amd event %q, want machine", ev)
	}
	if !gone.Before(greetingEnd) {
		t.Errorf("hung up %s after the greeting ended: the engine would have reached the beep", gone.Sub(greetingEnd))
	}
	if m := loudest(far); m > 300 {
		t.Errorf("the voicemail heard the engine: loudest 20 ms at RMS %.0f", m)
	}
	if got := l.eng.Metrics.Surveys(survey.Machine); got != 1 {
		t.Errorf("surveys counted machine: %d, want 1", got)
	}
	if got := l.eng.Metrics.OutboundAttempts(survey.Machine); got != 1 {
		t.Errorf("outbound attempts counted machine: %d, want 1", got)
	}
	c, err := l.store.SurveyReport(context.Background(), time.Now().Add(-time.Hour), time.Now().Add(time.Minute))
	if err != nil || c.Placed != 1 || c.Answered != 0 {
		t.Errorf("survey report %+v (%v), want 1 placed, none answered", c, err)
	}
	if rec := l.record(far.ID); rec.EndReason != "outbound_machine" {
		t.Errorf("call record ends %q, want outbound_machine", rec.EndReason)
	}
	l.clean()
}

// TestSurveyCallPersonThroughARI: a citizen answers the survey call with
// "Alo?" and waits; the engine takes them for a person and the survey
// flow speaks about a second after their word; they press 4 and the
// ticket is rated.
func TestSurveyCallPersonThroughARI(t *testing.T) {
	l, cfg := machineLine(t, true)
	done := make(chan int, 1)
	far, p, began := farAnswer(t, l, amdtest.Person, func() {
		n, _ := survey.Round(context.Background(), l.srv, cfg, l.eng.Metrics, discard())
		done <- n
	})
	var spoke time.Time
	if !waitFor(20*time.Second, func() bool {
		if spoke.IsZero() && loudest(far) > 1000 {
			spoke = time.Now()
		}
		return loudSeconds(far) >= 1
	}) {
		t.Fatalf("the citizen who said Alo heard %.2f s of the survey", loudSeconds(far))
	}
	wordEnd := began.Add(time.Duration(p.SpeechTo) * time.Second / time.Duration(p.Rate))
	ev := amdEvent(t, l, far.ID)
	t.Logf("\"Alo?\" lasted %s; the survey spoke %s after its end; ari.amd: %s", p.Speech(), spoke.Sub(wordEnd).Round(time.Millisecond), ev)
	if !strings.HasPrefix(ev, "human: a greeting of") {
		t.Errorf("ari.amd event %q, want a person after their greeting", ev)
	}
	if after := spoke.Sub(wordEnd); after < 500*time.Millisecond || after > 3*time.Second {
		t.Errorf("the survey spoke %s after the citizen's word, want about 1 s", after)
	}
	far.Press("4")
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the survey round did not end")
	}
	if got := l.eng.Metrics.Surveys(tickets.SurveyRated); got != 1 {
		t.Errorf("rated surveys counted %d, want 1", got)
	}
	if got := l.eng.Metrics.OutboundAttempts(survey.Answered); got != 1 {
		t.Errorf("outbound attempts counted answered: %d, want 1", got)
	}
}
