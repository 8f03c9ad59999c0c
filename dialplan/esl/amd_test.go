package esl

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/ivr/amd"
	"github.com/govline/ivr/ivr/amd/amdtest"
	"github.com/govline/ivr/ivr/survey"
	"github.com/govline/ivr/tickets"
)

// Answering machine detection on survey calls through FreeSWITCH: the
// answered channel's media leg (a real SIP UA) sends what espeak-ng
// renders for a person ("Alo?" and silence) or a voicemail (a long
// greeting and a beep); the engine listens with the shared silero
// detector before the survey flow speaks.

// machineEngine is surveyEngine with machine detection on (when on), the
// silero detector, a far end that says answer, and one resolved ticket
// of 0722123456.
func machineEngine(t *testing.T, on bool, answer amdtest.Answer) (*engine, *dialingFS, survey.Config) {
	t.Helper()
	vad := amdtest.NewVAD(t)
	e, fs, _, cfg := surveyEngineWith(t, func(o *Outbound) { o.Machine = amd.Config{Enabled: on} }, func(string) string { return "answer" }, "0722123456")
	fs.setSays(answer.PCM)
	e.eng.Speech = &ivr.SpeechConfig{NewVAD: vad} // before any call
	return e, fs, cfg
}

// loudest is the RMS of the loudest 20 ms p heard of the engine.
func (p *legPhone) loudest() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := 0.0
	for off := 0; off+160 <= len(p.heard); off += 160 {
		m = math.Max(m, audio.RMS(p.heard[off:off+160]))
	}
	return m
}

func (p *legPhone) started() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.began
}

// esl.amd is the event of the answering machine detection.
func amdEvent(ev []tickets.CallEvent) string {
	for _, e := range ev {
		if e.Kind == "esl.amd" {
			return e.Detail
		}
	}
	return ""
}

// roundAnswered runs a survey round in the background and returns the
// channel the fake FreeSWITCH answered, and where the round's count of
// calls placed arrives.
func roundAnswered(t *testing.T, e *engine, fs *dialingFS, cfg survey.Config) (*fakeFS, <-chan int) {
	t.Helper()
	done := make(chan int, 1)
	go func() {
		n, _ := survey.Round(context.Background(), e.srv, cfg, e.eng.Metrics, nil)
		done <- n
	}()
	select {
	case ch := <-fs.answered:
		return ch, done
	case <-time.After(10 * time.Second):
		t.Fatal("no originate answered")
	}
	return nil, nil
}

// TestSurveyCallMachineThroughEventSocket: a voicemail answers the survey
// call; the engine hangs the channel up during its greeting without a
// word, the survey's result is machine (as on the SIP line), not counted
// as answered, and the call's trace has the esl.amd event.
func TestSurveyCallMachineThroughEventSocket(t *testing.T) {
	vm := amdtest.Voicemail(t, 8000)
	e, fs, cfg := machineEngine(t, true, vm)
	ch, done := roundAnswered(t, e, fs, cfg)
	leg := ch.waitLeg()
	var gone time.Time
	if !waitFor(20*time.Second, func() bool {
		ch.mu.Lock()
		defer ch.mu.Unlock()
		return ch.hungup != ""
	}) {
		t.Fatal("the engine did not hang up on the voicemail")
	}
	gone = time.Now()
	select {
	case n := <-done:
		if n != 1 {
			t.Fatalf("Round placed %d calls, want 1", n)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the survey round did not end")
	}
	rec, ev := e.record(t, ch.uuid)
	began := leg.started()
	greetingEnd := began.Add(time.Duration(vm.SpeechTo) * time.Second / time.Duration(vm.Rate))
	t.Logf("the greeting lasts %s; hung up %s after it started, %s before its end; esl.amd: %s",
		vm.Speech(), gone.Sub(began).Round(time.Millisecond), greetingEnd.Sub(gone).Round(time.Millisecond), amdEvent(ev))
	if !strings.HasPrefix(amdEvent(ev), "machine: ") {
		t.Errorf("esl.amd event %q, want machine\n%s", amdEvent(ev), eventLog(ev))
	}
	if !gone.Before(greetingEnd) {
		t.Errorf("hung up %s after the greeting ended: the engine would have reached the beep", gone.Sub(greetingEnd))
	}
	if m := leg.loudest(); m > 300 {
		t.Errorf("the voicemail heard the engine: loudest 20 ms at RMS %.0f", m)
	}
	if rec.EndReason != "outbound_machine" {
		t.Errorf("call record ends %q, want outbound_machine", rec.EndReason)
	}
	if got := e.eng.Metrics.Surveys(survey.Machine); got != 1 {
		t.Errorf("surveys counted machine: %d, want 1", got)
	}
	if got := e.eng.Metrics.OutboundAttempts(survey.Machine); got != 1 {
		t.Errorf("outbound attempts counted machine: %d, want 1", got)
	}
	c, err := e.store.SurveyReport(context.Background(), time.Now().Add(-time.Hour), time.Now().Add(time.Minute))
	if err != nil || c.Placed != 1 || c.Answered != 0 {
		t.Errorf("survey report %+v (%v), want 1 placed, none answered", c, err)
	}
	if !ch.waitClosed(10 * time.Second) {
		t.Error("the engine kept the channel's socket")
	}
}

// TestSurveyCallPersonThroughEventSocket: a citizen answers the survey
// call with "Alo?" and waits; the engine takes them for a person and the
// survey flow speaks about a second after their word; they press 4 and
// the ticket is rated.
func TestSurveyCallPersonThroughEventSocket(t *testing.T) {
	p := amdtest.Person(t, 8000)
	e, fs, cfg := machineEngine(t, true, p)
	ch, done := roundAnswered(t, e, fs, cfg)
	leg := ch.waitLeg()
	var spoke time.Time
	if !waitFor(20*time.Second, func() bool {
		if spoke.IsZero() && leg.loudest() > 1000 {
			spoke = time.Now()
		}
		return leg.heardLoud() > 50
	}) {
		t.Fatalf("the citizen who said Alo heard %d loud frames of the survey", leg.heardLoud())
	}
	wordEnd := leg.started().Add(time.Duration(p.SpeechTo) * time.Second / time.Duration(p.Rate))
	ch.dtmf('4')
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the survey round did not end")
	}
	_, ev := e.record(t, ch.uuid)
	t.Logf("\"Alo?\" lasted %s; the survey spoke %s after its end; esl.amd: %s", p.Speech(), spoke.Sub(wordEnd).Round(time.Millisecond), amdEvent(ev))
	if !strings.HasPrefix(amdEvent(ev), "human: a greeting of") {
		t.Errorf("esl.amd event %q, want a person after their greeting", amdEvent(ev))
	}
	if after := spoke.Sub(wordEnd); after < 500*time.Millisecond || after > 3*time.Second {
		t.Errorf("the survey spoke %s after the citizen's word, want about 1 s", after)
	}
	if got := e.eng.Metrics.Surveys(tickets.SurveyRated); got != 1 {
		t.Errorf("rated surveys counted %d, want 1", got)
	}
	if got := e.eng.Metrics.OutboundAttempts(survey.Answered); got != 1 {
		t.Errorf("outbound attempts counted answered: %d, want 1", got)
	}
}
