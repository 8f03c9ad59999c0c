package ari

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/dialplan/ari/aritest"
	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/ivr/amd"
	"github.com/govline/ivr/ivr/amd/amdtest"
	"github.com/govline/ivr/ivr/survey"
	"github.com/govline/ivr/ivr/survey/surveytest"
	"github.com/govline/ivr/tickets"
)

// surveyLine is a line whose Asterisk dials PJSIP/{number}@trunk for the
// engine, with the shipped flows (survey.lua), the rendered voice and
// resolved tickets of the given callers.
func surveyLine(t *testing.T, callers ...string) (*line, []string, survey.Config) {
	t.Helper()
	return surveyLineWith(t, nil, callers...)
}

// surveyLineWith is surveyLine with the outbound configuration adjusted.
func surveyLineWith(t *testing.T, adjust func(*OutboundConfig), callers ...string) (*line, []string, survey.Config) {
	t.Helper()
	l := startLine(t, func(c *Config) {
		c.Outbound = OutboundConfig{Endpoint: "PJSIP/{number}@trunk", CallerID: "Linia de asistență <080012345>", RingTimeout: 20 * time.Second}
		if adjust != nil {
			adjust(&c.Outbound)
		}
	})
	for i := 0; i < 500 && !l.ast.Registered(); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	shipped, err := flows.Load(filepath.Join("..", "..", "flows"), flows.Config{})
	if err != nil {
		t.Fatal(err)
	}
	// Before any call: the calls' goroutines start after these writes.
	l.eng.Synth = &ivr.RenderCache{Dir: filepath.Join(promptCache, "tts")}
	l.eng.Lang = "ro"
	l.eng.Services = flows.Services{Desk: flows.TicketDesk{Store: l.store}}
	var numbers []string
	for _, caller := range callers {
		tkt, err := l.store.OpenTicket(context.Background(), tickets.NewTicket{Actor: "ivr", Channel: "phone", Caller: caller, Lang: "ro", Service: tickets.ServicePassport})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.store.Resolve(context.Background(), tkt.Number, "ana", "done"); err != nil {
			t.Fatal(err)
		}
		numbers = append(numbers, tkt.Number)
	}
	cfg := survey.Config{Store: l.store, Flow: shipped, Period: 30 * 24 * time.Hour, Since: time.Now().Add(-time.Hour)}
	return l, numbers, cfg
}

// loudSeconds is how much of what c heard was speech (20 ms frames above
// a whisper), in seconds.
func loudSeconds(c *aritest.Caller) float64 {
	rate := c.Rate()
	if rate == 0 {
		return 0
	}
	heard, n, loud := c.Heard(), rate/50, 0
	for off := 0; off+n <= len(heard); off += n {
		if audio.RMS(heard[off:off+n]) > 300 {
			loud++
		}
	}
	return float64(loud) / 50
}

// TestSurveyCallThroughARI: a resolved ticket gets its survey call through
// Asterisk: the fake receives POST /channels in ARI's documented form
// (endpoint from the dial string, app, callerId, timeout, channelId),
// answers, and the channel enters the application; the engine runs the
// survey flow on it as on an inbound channel; the citizen hears the
// question, presses 4 (a ChannelDtmfReceived event) and the rating 4 is
// on the ticket, the survey counted as rated.
func TestSurveyCallThroughARI(t *testing.T) {
	l, ticket, cfg := surveyLine(t, "0722123456")
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := survey.Round(context.Background(), l.srv, cfg, l.eng.Metrics, discard())
		done <- result{n, err}
	}()
	var far *aritest.Caller
	if !waitFor(10*time.Second, func() bool {
		o := l.ast.Originated()
		if len(o) > 0 {
			far = o[0]
		}
		return far != nil
	}) {
		t.Fatal("no originate answered")
	}
	q := originateRequest(t, l.ast).Query
	if q.Get("endpoint") != "PJSIP/0722123456@trunk" || q.Get("app") != "ivr" || q.Get("callerId") != "Linia de asistență <080012345>" ||
		q.Get("timeout") != "20" || q.Get("channelId") != far.ID {
		t.Errorf("POST /channels %v, want the documented form", q)
	}
	// The first loud second: the call's introduction; the key typed
	// during the prompts answers the question (as on the SIP line).
	if !waitFor(20*time.Second, func() bool { return loudSeconds(far) >= 1 }) {
		t.Fatalf("the citizen heard %.2f s of speech", loudSeconds(far))
	}
	far.Press("4")
	var r result
	select {
	case r = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the survey round did not end")
	}
	if r.err != nil || r.n != 1 {
		t.Fatalf("Round: %d calls, %v; want 1", r.n, r.err)
	}
	tkt, err := l.store.Ticket(context.Background(), ticket[0])
	if err != nil {
		t.Fatal(err)
	}
	if tkt.Rating != 4 {
		t.Fatalf("ticket %s rating %v, want 4", ticket[0], tkt.Rating)
	}
	if got := l.eng.Metrics.Surveys(tickets.SurveyRated); got != 1 {
		t.Errorf("rated surveys counted %d, want 1", got)
	}
	c, err := l.store.SurveyReport(context.Background(), time.Now().Add(-time.Hour), time.Now().Add(time.Minute))
	if err != nil || c.Placed != 1 || c.Rated != 1 {
		t.Errorf("survey report %+v (%v), want 1 placed, 1 rated", c, err)
	}
	select {
	case <-far.Gone():
	case <-time.After(5 * time.Second):
		t.Error("the engine did not hang up after the survey")
	}
	if !waitFor(5*time.Second, func() bool { return l.srv.ActiveCalls() == 0 }) {
		t.Errorf("%d calls held after the survey", l.srv.ActiveCalls())
	}
	rec := l.record(far.ID)
	if rec.Telephony != "ari" {
		t.Errorf("call record %+v, want an ARI call", rec)
	}
}

// A busy citizen (Q.850 cause 17) and one who does not answer (cause 19)
// are recorded as busy and no_answer, as on the SIP line, with no rating
// and no call served.
func TestSurveyCallThroughARINotAnswered(t *testing.T) {
	l, ticket, cfg := surveyLine(t, "0722000001", "0722000002")
	l.ast.SetDial(func(endpoint string) string {
		if endpoint == "PJSIP/0722000001@trunk" {
			return "busy"
		}
		return "noanswer"
	})
	n, err := survey.Round(context.Background(), l.srv, cfg, l.eng.Metrics, discard())
	if err != nil || n != 2 {
		t.Fatalf("Round: %d calls, %v; want 2", n, err)
	}
	for _, want := range []string{survey.Busy, survey.NoAnswer} {
		if got := l.eng.Metrics.Surveys(want); got != 1 {
			t.Errorf("%s surveys counted %d, want 1", want, got)
		}
	}
	for _, num := range ticket {
		tkt, err := l.store.Ticket(context.Background(), num)
		if err != nil {
			t.Fatal(err)
		}
		if tkt.Rating != 0 {
			t.Errorf("ticket %s rated %v without an answered call", num, tkt.Rating)
		}
	}
	c, err := l.store.SurveyReport(context.Background(), time.Now().Add(-time.Hour), time.Now().Add(time.Minute))
	if err != nil || c.Placed != 2 || c.Answered != 0 {
		t.Errorf("survey report %+v (%v), want 2 placed, none answered", c, err)
	}
	if len(l.ast.Originated()) != 0 {
		t.Error("an unanswered originate reached the application")
	}
}

// Without an outbound endpoint nothing is dialled; a bad dial string is
// refused at start.
func TestSurveyCallThroughARIConfig(t *testing.T) {
	if err := (Config{Servers: []ServerConfig{{URL: "http://127.0.0.1:8088", User: "u", Password: "p"}},
		Outbound: OutboundConfig{Endpoint: "PJSIP/trunk"}}).Validate(); err == nil {
		t.Error("an outbound endpoint without {number} was accepted")
	}
	l := startLine(t, nil)
	if got := l.srv.SurveyCall(context.Background(), "0722123456", nil); got != "no_trunk" {
		t.Errorf("SurveyCall without an endpoint: %q, want no_trunk", got)
	}
	for _, r := range l.ast.Requests() {
		if r.Method == "POST" && r.Path == "/channels" {
			t.Error("an originate was sent without an outbound endpoint")
		}
	}
}

// An originate the engine gave up on (Asterisk answered the request too
// late) and that Asterisk carries out later is hung up when its channel
// enters the application, not served with the line's flow: a citizen
// called for a survey never hears the main menu.
func TestSurveyCallGivenUpIsNotServed(t *testing.T) {
	l, _, _ := surveyLine(t)
	l.ast.SetDelayFor("POST /channels", 2500*time.Millisecond) // beyond the 2 s request timeout
	got := l.srv.SurveyCall(context.Background(), "0722123456", nil)
	l.ast.SetDelayFor("POST /channels", 0)
	if got != survey.Unreachable {
		t.Errorf("SurveyCall with no answer to the originate: %q, want %s", got, survey.Unreachable)
	}
	var far *aritest.Caller
	if !waitFor(5*time.Second, func() bool {
		if o := l.ast.Originated(); len(o) > 0 {
			far = o[0]
		}
		return far != nil
	}) {
		t.Fatal("the fake Asterisk did not carry out the late originate")
	}
	select {
	case <-far.Gone():
	case <-time.After(5 * time.Second):
		t.Fatal("the late channel was not hung up")
	}
	if far.HeardLen() != 0 || l.srv.ActiveCalls() != 0 {
		t.Errorf("the late channel was served: heard %d samples, %d calls", far.HeardLen(), l.srv.ActiveCalls())
	}
}

// The ARI adapter passes the survey.Caller conformance table against the
// fake Asterisk.
func TestSurveyCallerConformanceARI(t *testing.T) {
	surveytest.Run(t, func(t *testing.T, how string) survey.Caller {
		l := startLine(t, func(c *Config) {
			c.Outbound = OutboundConfig{Endpoint: "PJSIP/{number}@trunk", RingTimeout: time.Second,
				Machine: amd.Config{Enabled: how == surveytest.Machine}}
		})
		for i := 0; i < 500 && !l.ast.Registered(); i++ {
			time.Sleep(10 * time.Millisecond)
		}
		if how == surveytest.Machine {
			vm := amdtest.Voicemail(t, 8000).PCM // the line's ulaw
			l.ast.SetGreeting(func(int) []int16 { return vm })
			how = surveytest.Answer
		}
		l.ast.SetDial(func(string) string { return how }) // the fake's names are the table's
		return l.srv
	})
}
