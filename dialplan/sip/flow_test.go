package sip_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/govline/ivr/dialplan/sip"
	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/tickets"
)

// flowFunc runs a flow written in Go, to drive the phone Channel directly.
type flowFunc func(ctx context.Context, f flows.Facts, ch flows.Channel, svc flows.Services) flows.Outcome

func (fn flowFunc) Run(ctx context.Context, f flows.Facts, ch flows.Channel, svc flows.Services) flows.Outcome {
	return fn(ctx, f, ch, svc)
}

// step is what the flow saw at one turn.
type step struct {
	played flows.Played
	input  flows.Input
	err    error
}

func text(lang, s string) flows.Prompt {
	return flows.Prompt{Lang: lang, Parts: []flows.Part{{Kind: flows.PartText, Value: s, Text: s}}}
}

// TestFlowChannelOnARealCall walks the phone Channel a flow uses: a prompt
// cut by a key (and what the caller heard of it), the key as the answer, a
// digit string ended by '#', a no-input turn, then a transfer that the
// embedded line (no agent queue) turns into "your request is registered
// with number ...".
func TestFlowChannelOnARealCall(t *testing.T) {
	steps := make(chan step, 8)
	var facts flows.Facts
	flow := flowFunc(func(ctx context.Context, f flows.Facts, ch flows.Channel, _ flows.Services) flows.Outcome {
		facts = f
		long := "Bună ziua. Ați sunat la linia de asistență pentru serviciile publice. Pentru cartea de identitate apăsați unu. Pentru pașaport apăsați doi. Pentru un operator apăsați zero."
		pl, err := ch.Say(ctx, flows.Prompt{Lang: "ro", BargeIn: true, Parts: []flows.Part{{Kind: flows.PartText, Value: long, Text: long}}})
		steps <- step{played: pl, err: err}
		in, err := ch.Listen(ctx, flows.Listen{Lang: "ro", Expect: flows.ExpectChoice, NoInput: 5 * time.Second})
		steps <- step{input: in, err: err}
		p := text("ro", "Introduceți numărul solicitării, urmat de diez.")
		p.Parts = append(p.Parts, flows.Part{Kind: flows.PartDigits, Value: "12", Text: "12"})
		pl, err = ch.Say(ctx, p)
		steps <- step{played: pl, err: err}
		in, err = ch.Listen(ctx, flows.Listen{Lang: "ro", Expect: flows.ExpectDigits, MaxDigits: 8, Terminator: '#', NoInput: 5 * time.Second, InterDigit: 3 * time.Second})
		steps <- step{input: in, err: err}
		in, err = ch.Listen(ctx, flows.Listen{Lang: "ro", Expect: flows.ExpectChoice, NoInput: 300 * time.Millisecond})
		steps <- step{input: in, err: err}
		return flows.Outcome{Kind: flows.OutcomeTransfer, Queue: "level1", Ticket: "40517263", Lang: "ro"}
	})
	l := startLine(t, func(_ *sip.Config, e *ivr.Engine) {
		e.Flow = flow
		e.Synth = &ivr.RenderCache{Dir: filepath.Join(promptCache, "tts")}
		e.Lang = "ro"
	})
	c := l.answered(t)

	next := func() step {
		t.Helper()
		select {
		case s := <-steps:
			if s.err != nil {
				t.Fatalf("flow step failed: %v", s.err)
			}
			return s
		case <-time.After(15 * time.Second):
			t.Fatal("the flow did not go on")
		}
		return step{}
	}
	// Interrupt the long prompt after about a second of it.
	if !waitFor(20*time.Second, func() bool { return c.heardSpeech(0) >= 50 }) {
		t.Fatal("no prompt heard")
	}
	c.dtmf('1')
	s := next()
	if !s.played.Interrupted {
		t.Fatal("a key during a barge-in prompt did not interrupt it")
	}
	if h := s.played.Heard; !strings.HasPrefix(h, "Bună") || strings.Contains(h, "zero") {
		t.Errorf("heard %q: want the beginning of the prompt, cut before its end", h)
	}
	if in := next().input; in.Mode != flows.InputDTMF || in.Text != "1" {
		t.Errorf("the interrupting key is not the answer: %+v", in)
	}
	if s := next(); s.played.Interrupted || !strings.HasSuffix(s.played.Heard, "12") {
		t.Errorf("prompt with digits: %+v", s.played)
	}
	for _, k := range "4051#" {
		c.dtmf(k)
	}
	if in := next().input; in.Mode != flows.InputDTMF || in.Text != "4051" {
		t.Errorf("digit string: %+v, want 4051 without the terminator", in)
	}
	if in := next().input; in.Mode != flows.InputNone {
		t.Errorf("silence: %+v, want no input", in)
	}
	from := c.heardLen()
	if !c.waitEnded(30 * time.Second) {
		t.Fatal("the line did not hang up after the transfer message")
	}
	if env := envelope(c.heardSince(from), c.rate); len(env) < 5*50 {
		t.Errorf("the registered-request message lasted %d frames, want several seconds", len(env))
	}
	if facts.Lang != "ro" || facts.Called != "1919" || facts.CallID == "" {
		t.Errorf("facts: %+v", facts)
	}
	waitFor(5*time.Second, func() bool {
		r, err := l.store.Call(context.Background(), facts.CallID)
		return err == nil && r.EndReason != ""
	})
	_ = l.eng.Calls.Flush(context.Background())
	ev, err := l.store.Events(context.Background(), facts.CallID)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range ev {
		kinds = append(kinds, e.Kind+" "+e.Detail)
	}
	all := strings.Join(kinds, "\n")
	for _, want := range []string{"flow.bargein", "flow.transfer queue level1 ticket 40517263"} {
		if !strings.Contains(all, want) {
			t.Errorf("call events lack %q:\n%s", want, all)
		}
	}
}

// shippedLine starts a line running flows/main.lua on the real knowledge
// base and store, operators always available, with speech sc (nil: keys).
func shippedLine(t testing.TB, sc *ivr.SpeechConfig) *line {
	t.Helper()
	return shippedLineWith(t, sc, &ivr.RenderCache{Dir: filepath.Join(promptCache, "tts")})
}

// shippedLineWith is shippedLine with its own prompt cache.
func shippedLineWith(t testing.TB, sc *ivr.SpeechConfig, synth *ivr.RenderCache) *line {
	t.Helper()
	return startLineStore(t, func(_ *sip.Config, e *ivr.Engine, store *tickets.Store) {
		if e.Flow != nil {
			return // a retry of the line's start: set up already
		}
		rt, err := flows.Load(filepath.Join("..", "..", "flows"), flows.Config{})
		if err != nil {
			t.Fatal(err)
		}
		ix, err := openKB(t, store)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ix.ImportDir(context.Background(), filepath.Join("..", "..", "flows", "kb")); err != nil {
			t.Fatal(err)
		}
		always := map[string]string{}
		for _, d := range []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"} {
			always[d] = "00:00-24:00"
		}
		cal, err := tickets.NewCalendar(tickets.CalendarConfig{Hours: always, Holidays: []string{}})
		if err != nil {
			t.Fatal(err)
		}
		e.Flow = rt
		e.Synth = synth
		e.Lang = "ro"
		e.Services = flows.Services{
			KB:         flows.KBIndex{Index: ix, RecordMisses: true},
			Desk:       flows.TicketDesk{Store: store},
			Transcript: flows.TicketTranscript{Store: store},
			Calendar:   cal,
		}
		e.Speech = sc
	})
}

// TestShippedFlowOnARealCall walks the line's default flow (flows/main.lua)
// from a SIP phone over loopback, with the real knowledge base and ticket
// store: the caller presses 1 (identity card) during the welcome, then 0
// (an operator) in the sub-menu; the key pressed ahead skips the menu
// prompt (type-ahead). The flow opens a ticket for the identity
// card service with the transcript so far, and the embedded line, which
// has no agent queue, tells the caller the ticket number and hangs up.
func TestShippedFlowOnARealCall(t *testing.T) {
	l := shippedLine(t, nil)
	store := l.store
	c := l.answered(t)
	if !waitFor(20*time.Second, func() bool { return c.heardSpeech(0) >= 50 }) {
		t.Fatal("no welcome heard")
	}
	c.dtmf('1')
	mark := c.heardLen()
	// A second of the answer (not of the silence while it renders).
	if !waitFor(20*time.Second, func() bool { return c.heardSpeech(mark) >= 50 }) {
		t.Fatal("nothing heard after 1")
	}
	c.dtmf('0')
	if !c.waitEnded(60 * time.Second) {
		t.Fatal("the line did not hang up after the operator request")
	}
	callID := c.d.InviteRequest.CallID().Value()
	ts, err := store.ListTickets(context.Background(), tickets.TicketQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 1 {
		t.Fatalf("%d tickets, want 1", len(ts))
	}
	tk := ts[0]
	if tk.Service != "identity_card" || tk.CallID != callID || tk.Level != 1 || !tickets.ValidNumber(tk.Number) {
		t.Errorf("ticket %+v: want identity_card, level 1, call %s, a valid number", tk, callID)
	}
	turns, err := store.Transcript(context.Background(), callID)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, tu := range turns {
		lines = append(lines, tu.Speaker+": "+tu.Text)
	}
	all := strings.Join(lines, "\n")
	for _, want := range []string{"ivr: Bună", "caller: 1\nivr: Ce doriți să aflați", "caller: 0\nivr: " + flows.DefaultCatalog().Text("ro", "ask.transfer")} {
		if !strings.Contains(all, want) {
			t.Errorf("transcript lacks %q:\n%s", want, all)
		}
	}
	_ = l.eng.Calls.Flush(context.Background())
	ev, err := store.Events(context.Background(), callID)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range ev {
		found = found || (e.Kind == "flow.transfer" && strings.Contains(e.Detail, tk.Number))
	}
	if !found {
		t.Errorf("no flow.transfer event naming ticket %s", tk.Number)
	}
}

// waitTurn waits until the call's transcript has a turn "speaker: text"
// that starts with prefix (a prompt's turn is written when it ends).
func (l *line) waitTurn(t *testing.T, callID, prefix string, or ...string) (found string) {
	t.Helper()
	ctx := context.Background()
	if !waitFor(60*time.Second, func() bool {
		turns, _ := l.store.Transcript(ctx, callID)
		for _, tu := range turns {
			for _, p := range append([]string{prefix}, or...) {
				if strings.HasPrefix(tu.Speaker+": "+tu.Text, p) {
					found = p
					return true
				}
			}
		}
		return false
	}) {
		turns, _ := l.store.Transcript(ctx, callID)
		t.Fatalf("no turn %q; transcript: %+v", prefix, turns)
	}
	return found
}

// The shipped flow by voice alone, as a caller on a softphone uses it: the
// caller says "pașaport" over the menu prompt (barge-in), confirms with
// "da" if the line asks (it does when the recognizer's confidence is below
// the threshold), hears the passport answer from the knowledge base, says
// "nu" to "did this help?", and is handed on with a ticket for the
// passport service. Every answer is spoken: no key is pressed.
func TestShippedFlowBySpeech(t *testing.T) {
	pool, rec, syn := speechEngines(t)
	l := shippedLine(t, speechConfig(pool, ivr.SerialStreams(rec)))
	c := l.answered(t)
	callID := c.d.InviteRequest.CallID().Value()
	ctx := context.Background()
	// waitTurn waits for the transcript turn that starts with prefix (or
	// one of or) and says which.
	waitTurn := func(prefix string, or ...string) string {
		t.Helper()
		return l.waitTurn(t, callID, prefix, or...)
	}
	waitTurn("ivr: Bună ziua")
	mark := c.heardLen()
	if !waitFor(20*time.Second, func() bool { return c.heardSpeech(mark) >= 50 }) {
		t.Fatal("the menu prompt is not heard")
	}
	c.speak(utterance(t, syn, "ro", "pașaport", c.rate))
	confirm := waitTurn("ivr: Am înțeles: pașaport", "ivr: V-a ajutat") != "ivr: V-a ajutat"
	if confirm {
		time.Sleep(300 * time.Millisecond)
		c.speak(utterance(t, syn, "ro", "da", c.rate))
		waitTurn("ivr: V-a ajutat")
	}
	time.Sleep(300 * time.Millisecond)
	c.speak(utterance(t, syn, "ro", "nu", c.rate))
	if !c.waitEnded(60 * time.Second) {
		t.Fatal("the line did not hand the call on")
	}
	turns, err := l.store.Transcript(ctx, callID)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, tu := range turns {
		lines = append(lines, tu.Speaker+": "+tu.Text)
	}
	all := strings.Join(lines, "\n")
	// at is the index of the first line that starts with p, case
	// and diacritics aside (the recognizer may spell "pașaport" as the
	// grammar's "pasaport"), or -1.
	at := func(p string) int { return slices.IndexFunc(lines, prefix(p)) }
	wants := []string{"ivr: Spuneți pe scurt", "caller: pașaport", "ivr: Pașaportul", "ivr: V-a ajutat", "caller: nu"}
	if confirm {
		wants = append(wants, "caller: da")
	}
	for _, want := range wants {
		if at(want) < 0 {
			t.Errorf("transcript lacks %q:\n%s", want, all)
		}
	}
	if i, j := at("caller: pașaport"), at("caller: nu"); i < 0 || j < i {
		t.Errorf("transcript out of order:\n%s", all)
	}
	// The menu's turn keeps only what was heard before the caller spoke.
	if i := at("ivr: Spuneți pe scurt"); i < 0 || i+1 >= len(lines) || !strings.HasSuffix(lines[i], " …") || at("caller: pașaport") != i+1 {
		t.Errorf("the menu prompt was not cut by the caller's speech:\n%s", all)
	}
	ts, err := l.store.ListTickets(ctx, tickets.TicketQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 1 || ts[0].Service != "passport" || ts[0].CallID != callID {
		t.Fatalf("tickets %+v, want one for passport on call %s", ts, callID)
	}
	if n, want := l.eng.Metrics.SpeechTurns.Load(), map[bool]uint64{true: 3, false: 2}[confirm]; n < want {
		t.Errorf("%d speech turns counted, want %d", n, want)
	}
	if n := l.eng.Metrics.SpeechBargeIns.Load(); n < 1 {
		t.Errorf("%d barge-ins counted, want the menu's", n)
	}
}
