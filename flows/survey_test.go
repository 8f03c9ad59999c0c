package flows_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/flows/sim"
)

// The shipped survey (survey.lua), as the engine runs it after an agent's
// call: one question; a key from 1 to 5 is stored with the ticket and
// thanked for; silence, speech or another key leave no rating and no
// thanks. The outcome's reason is what the call's events record.
func TestShippedSurvey(t *testing.T) {
	rt, err := flows.Load(".", flows.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if !rt.HasFlow("survey.lua") {
		t.Fatal("survey.lua not loaded")
	}
	cat := rt.Catalog()
	for _, c := range []struct {
		lang, input string
		rating      int
		reason      string
	}{
		{"ro", "#4\n", 4, "rating 4"},
		{"en", "#1\n", 1, "rating 1"},
		{"ro", "\n", 0, "no rating"},
		{"ro", "patru\n", 0, "no rating"},
		{"ro", "operator\n", 0, "no rating"},
		{"ro", "#7\n", 0, "no rating"},
		{"ro", "#0\n", 0, "no rating"},
	} {
		desk := sim.NewDesk()
		number, err := desk.Open(context.Background(), flows.TicketDraft{Caller: "+40722123456", Service: "passport", Priority: "normal", Level: 1, Description: "x"})
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		ch := sim.NewChannel(strings.NewReader(c.input), nil)
		ch.Lines = func(l string) { lines = append(lines, l) }
		out := rt.Run(context.Background(), flows.Facts{CallID: "s", Lang: c.lang, Flow: "survey.lua", Ticket: number}, ch,
			flows.Services{Desk: desk, Log: slog.New(slog.DiscardHandler)})
		said := strings.Join(lines, "\n")
		if out.Err != nil || out.Kind != flows.OutcomeHangup || out.Reason != c.reason || out.Ticket != number {
			t.Errorf("%s %q: outcome %+v, want a hang-up %q with ticket %s", c.lang, c.input, out, c.reason, number)
		}
		if got := desk.Opened()[0].Rating; got != c.rating {
			t.Errorf("%s %q: rating %d, want %d", c.lang, c.input, got, c.rating)
		}
		if !strings.HasPrefix(said, "ivr: "+cat.Text(c.lang, "survey.question")) {
			t.Errorf("%s %q: said %q, want the question first", c.lang, c.input, said)
		}
		thanked := strings.Contains(said, cat.Text(c.lang, "survey.thanks"))
		if thanked != (c.rating > 0) || strings.Count(said, "ivr: ") != 1+map[bool]int{true: 1}[thanked] {
			t.Errorf("%s %q: said %q; want the thanks only after a rating, nothing else", c.lang, c.input, said)
		}
	}

	// Without a ticket there is nothing to rate: nothing is said.
	var lines []string
	ch := sim.NewChannel(strings.NewReader("#4\n"), nil)
	ch.Lines = func(l string) { lines = append(lines, l) }
	out := rt.Run(context.Background(), flows.Facts{Flow: "survey.lua"}, ch, flows.Services{Desk: sim.NewDesk(), Log: slog.New(slog.DiscardHandler)})
	if out.Reason != "no ticket" || len(lines) != 0 {
		t.Errorf("no ticket: %+v, said %q", out, lines)
	}
}

// A survey call (the line calls the citizen after their request was
// resolved) says who calls and about which request, read digit by digit,
// then asks about the resolution, not about a conversation with an agent.
func TestShippedSurveyCall(t *testing.T) {
	rt, err := flows.Load(".", flows.Config{})
	if err != nil {
		t.Fatal(err)
	}
	cat := rt.Catalog()
	for _, lang := range []string{"ro", "en"} {
		desk := sim.NewDesk()
		number, err := desk.Open(context.Background(), flows.TicketDraft{Caller: "+40722123456", Service: "passport", Priority: "normal", Level: 1, Description: "x"})
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		ch := sim.NewChannel(strings.NewReader("#5\n"), nil)
		ch.Lines = func(l string) { lines = append(lines, l) }
		out := rt.Run(context.Background(), flows.Facts{CallID: "s", Lang: lang, Flow: "survey.lua", Ticket: number, SurveyCall: true}, ch,
			flows.Services{Desk: desk, Log: slog.New(slog.DiscardHandler)})
		said := strings.Join(lines, "\n")
		if out.Err != nil || out.Reason != "rating 5" || desk.Opened()[0].Rating != 5 {
			t.Errorf("%s: outcome %+v, rating %d; want rating 5", lang, out, desk.Opened()[0].Rating)
		}
		spaced := strings.Join(strings.Split(number, ""), " ")
		for _, want := range []string{cat.Text(lang, "survey.call_intro"), spaced, cat.Text(lang, "survey.call_resolved"),
			cat.Text(lang, "survey.call_question"), cat.Text(lang, "survey.thanks")} {
			if !strings.Contains(said, want) {
				t.Errorf("%s: said %q, want %q in it", lang, said, want)
			}
		}
		if !strings.HasPrefix(said, "ivr: "+cat.Text(lang, "survey.call_intro")) {
			t.Errorf("%s: said %q, want the introduction first", lang, said)
		}
		if strings.Contains(said, cat.Text(lang, "survey.question")) {
			t.Errorf("%s: said %q: the question after an agent's call", lang, said)
		}
	}
}

// A flow the engine runs by name that fails apologizes and ends the call:
// no ticket opened, no transfer (the caller has just been served).
func TestNamedFlowFailureEndsTheCall(t *testing.T) {
	rt := load(t, map[string]string{"main.lua": "hangup('main')", "after.lua": "say('x')\nlocal t = nil\nsay(t.x)\n"}, flows.Limits{})
	desk := sim.NewDesk()
	var lines []string
	ch := sim.NewChannel(strings.NewReader(""), nil)
	ch.Lines = func(l string) { lines = append(lines, l) }
	out := rt.Run(context.Background(), flows.Facts{Flow: "after.lua", Ticket: "10000004"}, ch, flows.Services{Desk: desk, Calendar: open(true), Log: slog.New(slog.DiscardHandler)})
	if out.Kind != flows.OutcomeHangup || out.Err == nil || len(desk.Opened()) != 0 {
		t.Errorf("outcome %+v, tickets %d; want a hang-up with the error and no ticket", out, len(desk.Opened()))
	}
	if want := "ivr: " + flows.DefaultCatalog().Text("ro", "failure.sorry"); lines[len(lines)-1] != want {
		t.Errorf("said %q, want the apology last", lines)
	}
}
