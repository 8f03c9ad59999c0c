package sip_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/tickets"
)

// transcriptOf returns the call's transcript as "speaker: text" lines, an
// ivr turn cut short followed by " [cut: by]".
func transcriptOf(t *testing.T, l *line, callID string) []string {
	t.Helper()
	turns, err := l.store.Transcript(context.Background(), callID)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, tu := range turns {
		s := tu.Speaker + ": " + tu.Text
		if tu.Interrupted {
			s += " [cut: " + tu.Cut + "]"
		}
		lines = append(lines, s)
	}
	return lines
}

// waitTranscript waits until the call's transcript has a line for which ok
// is true.
func waitTranscript(t *testing.T, l *line, callID string, what string, ok func(string) bool) {
	t.Helper()
	if !waitFor(60*time.Second, func() bool {
		for _, s := range transcriptOf(t, l, callID) {
			if ok(s) {
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no transcript turn %s; transcript:\n%s", what, strings.Join(transcriptOf(t, l, callID), "\n"))
	}
}

// prefix matches a transcript line that starts with p, case,
// punctuation and diacritics aside: the recognizer writes the grammar
// phrase it heard, "pasaport" as well as "pașaport".
func prefix(p string) func(string) bool {
	p = flows.Normalize(p)
	return func(s string) bool { return strings.HasPrefix(flows.Normalize(s), p) }
}

// welcomeHeard waits until the phone has heard the start of the welcome
// (300 ms of it).
func welcomeHeard(t *testing.T, c *call) {
	t.Helper()
	if !waitFor(30*time.Second, func() bool { return c.heardSpeech(0) >= 15 }) {
		t.Fatal("no welcome heard")
	}
}

// Speech type-ahead on the shipped flow: a caller who asks for an operator
// while the welcome plays cuts it, never hears the menu, and is handed to
// the operators' queue with a ticket; the call's log says which prompt was
// cut, that the menu was skipped and which question the words answered.
func TestTypeAheadOperatorDuringWelcome(t *testing.T) {
	pool, rec, syn := speechEngines(t)
	l := shippedLine(t, speechConfig(pool, ivr.SerialStreams(rec)))
	c := l.answered(t)
	callID := c.d.InviteRequest.CallID().Value()
	welcomeHeard(t, c)
	c.speak(utterance(t, syn, "ro", "vreau să vorbesc cu un operator", c.rate))
	if !c.waitEnded(60 * time.Second) {
		t.Fatal("the line did not hand the call on")
	}
	lines := transcriptOf(t, l, callID)
	all := strings.Join(lines, "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "ivr: Bună") || !strings.HasSuffix(lines[0], "[cut: speech]") {
		t.Errorf("the welcome is not the first turn, cut by speech:\n%s", all)
	}
	if strings.Contains(all, "apăsați 1") || strings.Contains(all, "press 1") {
		t.Errorf("the caller heard the menu:\n%s", all)
	}
	if !strings.Contains(all, "caller: ") || !strings.Contains(all[strings.Index(all, "caller: "):], "operator") {
		t.Errorf("the caller's words are not in the transcript:\n%s", all)
	}
	ts, err := l.store.ListTickets(context.Background(), tickets.TicketQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 1 || ts[0].CallID != callID {
		t.Fatalf("tickets %+v, want one for call %s", ts, callID)
	}
	ev := callEvents(t, l)
	for _, want := range []string{
		`flow.bargein speech during prompt "Bună ziua!`,
		`flow.bargein speech ahead: prompt "`,
		`speech.result tag "operator"`,
		"flow.transfer queue level1 ticket " + ts[0].Number,
	} {
		if !strings.Contains(ev, want) {
			t.Errorf("call events lack %q:\n%s", want, ev)
		}
	}
	if n := l.eng.Metrics.SpeechTypeAhead.Load(); n < 1 {
		t.Errorf("%d prompts skipped by speech type-ahead, want at least the menu", n)
	}
}

// A caller who says "English" during the Romanian welcome hears the menu in
// English, not in Romanian.
func TestTypeAheadEnglishDuringWelcome(t *testing.T) {
	pool, rec, syn := speechEngines(t)
	l := shippedLine(t, speechConfig(pool, ivr.SerialStreams(rec)))
	c := l.answered(t)
	callID := c.d.InviteRequest.CallID().Value()
	welcomeHeard(t, c)
	c.speak(utterance(t, syn, "ro", "English", c.rate))
	waitTranscript(t, l, callID, "in English", prefix("ivr: Please tell us"))
	all := strings.Join(transcriptOf(t, l, callID), "\n")
	if strings.Contains(all, "ivr: Spuneți pe scurt") {
		t.Errorf("the caller heard the Romanian menu:\n%s", all)
	}
	c.hangup()
}

// Nothing is lost at hangup: the prompt playing when the caller hangs up is
// in the transcript with what was heard of it, marked as cut by the
// hangup; and what a caller was saying when they hung up is recognized and
// written too.
func TestHangupKeepsTheLastTurns(t *testing.T) {
	pool, rec, syn := speechEngines(t)
	t.Run("mid-prompt", func(t *testing.T) {
		l := shippedLine(t, speechConfig(pool, ivr.SerialStreams(rec)))
		c := l.answered(t)
		callID := c.d.InviteRequest.CallID().Value()
		welcomeHeard(t, c)
		c.hangup()
		waitTranscript(t, l, callID, "for the welcome cut by the hangup", func(s string) bool {
			return strings.HasPrefix(s, "ivr: Bună") && strings.HasSuffix(s, "[cut: hangup]")
		})
		if n := l.eng.Metrics.TranscriptLost.Load(); n != 0 {
			t.Errorf("%d transcript turns lost", n)
		}
	})
	t.Run("mid-sentence", func(t *testing.T) {
		l := shippedLine(t, speechConfig(pool, ivr.SerialStreams(rec)))
		c := l.answered(t)
		callID := c.d.InviteRequest.CallID().Value()
		welcomeHeard(t, c)
		words := utterance(t, syn, "ro", "pașaport", c.rate)
		c.speak(words)
		// Hang up as the last word leaves the phone: the line has not
		// heard the silence that ends a turn.
		time.Sleep(time.Duration(len(words)/(c.rate/50))*20*time.Millisecond + 100*time.Millisecond)
		c.hangup()
		waitTranscript(t, l, callID, "with the caller's last words", prefix("caller: pașaport"))
		waitTranscript(t, l, callID, "for the welcome cut by speech", func(s string) bool {
			return strings.HasPrefix(s, "ivr: Bună") && strings.HasSuffix(s, "[cut: speech]")
		})
		if ev := callEvents(t, l); !strings.Contains(ev, "speech.unanswered the call ended") {
			t.Errorf("call events lack the words said at hangup:\n%s", ev)
		}
	})
}
