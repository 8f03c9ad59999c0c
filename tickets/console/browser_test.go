package console

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/govline/ivr/internal/browsertest"
	"github.com/govline/ivr/tickets"
)

// browser starts headless chromium for the console of e: its context
// (90 s), run (which fails the test with where the browser was) and the
// steps of a sign-in. The browser stops when the test ends.
func browser(t *testing.T, e *env) (ctx context.Context, run func(what string, tasks ...chromedp.Action), signIn func(name, password string) chromedp.Tasks) {
	t.Helper()
	ctx = browsertest.Start(t, 90*time.Second)
	u := e.srv.URL
	run = func(what string, tasks ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, tasks...); err != nil {
			var loc string
			_ = chromedp.Run(ctx, chromedp.Location(&loc))
			t.Fatalf("%s: %v (at %s)", what, err, loc)
		}
	}
	signIn = func(name, password string) chromedp.Tasks {
		return chromedp.Tasks{
			chromedp.Navigate(u + "/login"),
			chromedp.WaitVisible("#name", chromedp.ByID),
			chromedp.SendKeys("#name", name, chromedp.ByID),
			chromedp.SendKeys("#password", password, chromedp.ByID),
			chromedp.Click("#signin", chromedp.ByID),
		}
	}
	return ctx, run, signIn
}

// TestBrowser drives the console in headless chromium: the console speaks
// Romanian to a user who has not chosen; a wrong password is refused and
// audited; an operator signs in, the ticket of a call bridged to her pops
// up by itself, she escalates it, opens a recorded call's ticket and
// clicks a transcript line (the player moves to that turn's moment),
// switches to English, is refused the dashboard and signs out (the
// sign-in page now in English); a supervisor sees the dashboard in
// Romanian.
func TestBrowser(t *testing.T) {
	e := newEnv(t)
	ctx, run, signIn := browser(t, e)
	u := e.srv.URL

	// Romanian by default: the sign-in page, its button and its language.
	var button, lang string
	run("sign-in page", chromedp.Navigate(u+"/login"), chromedp.WaitVisible("#signin", chromedp.ByID),
		chromedp.Text("#signin", &button, chromedp.ByID), chromedp.Evaluate(`document.documentElement.lang`, &lang))
	if button != "Autentificare" || lang != "ro" {
		t.Fatalf("sign-in page: button %q, lang %q; want Autentificare, ro", button, lang)
	}
	// A wrong password is refused, and audited.
	var msg string
	run("wrong password", signIn("ana", "not the password"), chromedp.WaitVisible("#error", chromedp.ByID),
		chromedp.Text("#error", &msg, chromedp.ByID))
	if msg != "Nume de utilizator sau parolă greșită." {
		t.Fatalf("wrong password: %q", msg)
	}
	if got := e.auditRows(tickets.AuditQuery{Action: "login_failed", User: "ana"}); len(got) != 1 || got[0].Address != "127.0.0.1" {
		t.Fatalf("failed sign-in audit: %+v", got)
	}

	// The operator signs in and sees the queue.
	var rows string
	run("sign in", signIn("ana", pw), chromedp.WaitVisible("#tickets", chromedp.ByID), chromedp.Text("#tickets", &rows, chromedp.ByID))
	if !strings.Contains(rows, e.ticket) || !strings.Contains(rows, "Număr") || !strings.Contains(rows, "pașaport") {
		t.Fatalf("queue without the ticket %s in Romanian: %q", e.ticket, rows)
	}
	var status string
	run("status in the queue", chromedp.Text(`#tickets tbody tr[data-href="/tickets/`+e.ticket+`"] td.st`, &status, chromedp.ByQuery))
	if status != "nouă" {
		t.Fatalf("the ticket's status in the queue %q, want nouă", status)
	}
	// Keyboard: "/" goes to the search box.
	var active string
	run("slash", chromedp.KeyEvent("/"), chromedp.Evaluate(`document.activeElement.id`, &active))
	if active != "search" {
		t.Fatalf("'/' focused %q", active)
	}
	run("blur", chromedp.Evaluate(`document.activeElement.blur()`, nil))

	// The call is bridged to ana: her console pops the ticket by itself
	// (live events). Give the event stream a moment to start first.
	time.Sleep(300 * time.Millisecond)
	if err := e.st.AddEvent(ctx, "call-1", tickets.CallEvent{Kind: BridgedEvent, Detail: `{"agent":"ana"}`}); err != nil {
		t.Fatal(err)
	}
	var title, transcript string
	run("screen pop", chromedp.WaitVisible("#ticket-title", chromedp.ByID), chromedp.Text("#ticket-title", &title, chromedp.ByID),
		chromedp.Text("#transcript", &transcript, chromedp.ByID))
	if !strings.Contains(title, e.ticket) || !strings.Contains(transcript, "pașaportul meu a expirat") {
		t.Fatalf("popped ticket: %q / %q", title, transcript)
	}
	// A turn said now appears without reloading.
	if err := e.st.AppendTurn(ctx, "call-1", tickets.Turn{Speaker: tickets.SpeakerCaller, Text: "mai sunt acolo?", Mode: tickets.ModeSpeech, Confidence: 0.9}); err != nil {
		t.Fatal(err)
	}
	run("live turn", chromedp.WaitVisible(`#transcript li.new`, chromedp.ByQuery), chromedp.Text("#transcript", &transcript, chromedp.ByID))
	var who string
	run("live turn's speaker", chromedp.Text(`#transcript li.new b`, &who, chromedp.ByQuery))
	if !strings.Contains(transcript, "mai sunt acolo?") || who != "apelant" {
		t.Fatalf("live turn missing or its speaker not in Romanian (%q): %q", who, transcript)
	}

	// Escalate to level II.
	var level string
	run("escalate", chromedp.Click("#escalate-2", chromedp.ByID),
		chromedp.WaitVisible(`#escalate-2[disabled]`, chromedp.ByQuery), chromedp.Text("#level", &level, chromedp.ByID))
	run("escalated status", chromedp.Text("#status", &status, chromedp.ByID))
	if level != "nivelul II" || status != "escaladată" {
		t.Fatalf("level shown %q, status %q; want nivelul II, escaladată", level, status)
	}
	tk, err := e.st.Ticket(ctx, e.ticket)
	if err != nil || tk.Level != 2 || tk.Status != tickets.StatusEscalated {
		t.Fatalf("ticket after escalation: %+v %v", tk, err)
	}
	if got := e.auditRows(tickets.AuditQuery{Action: "ticket_escalate", User: "ana"}); len(got) != 1 || !got[0].OK {
		t.Fatalf("escalation audit: %+v", got)
	}

	// A recorded call's ticket: a click on a transcript line moves the
	// player to that turn's moment (its time from the call's answer, when
	// the recording starts).
	number := e.recordedCall(ctx, 7*time.Second)
	var offset string
	var at float64
	run("recorded ticket", chromedp.Navigate(u+"/tickets/"+number), chromedp.WaitVisible("#recording", chromedp.ByID),
		chromedp.AttributeValue(`#transcript li:nth-child(2)`, "data-offset", &offset, nil, chromedp.ByQuery),
		chromedp.Click(`#transcript li:nth-child(2) b`, chromedp.ByQuery),
		chromedp.WaitVisible(`#transcript li.playing`, chromedp.ByQuery),
		chromedp.Evaluate(`document.getElementById("recording").currentTime`, &at))
	if offset != "7.000" || at < 6.9 || at > 8.5 {
		t.Fatalf("transcript line at 7 s: data-offset %q, the player at %.3f s", offset, at)
	}
	// The player streams it through the audited endpoint.
	for i := 0; len(e.auditRows(tickets.AuditQuery{Action: "recording_play", User: "ana"})) == 0; i++ {
		if i == 50 {
			t.Fatal("the click did not play the recording (no recording_play audited)")
		}
		time.Sleep(100 * time.Millisecond)
	}
	var label string
	run("seek button", chromedp.AttributeValue(`#transcript li:nth-child(2) button.seek`, "aria-label", &label, nil, chromedp.ByQuery))
	if label != "Ascultați de la 0:07" {
		t.Fatalf("the line's button says %q", label)
	}

	// She switches to English: the same page, in English, and so on.
	var title2 string
	run("to English", chromedp.Click("#lang-switch", chromedp.ByID), chromedp.WaitVisible(`html[lang="en"]`, chromedp.ByQuery),
		chromedp.Text("#ticket-title", &title2, chromedp.ByID), chromedp.Text("#status", &status, chromedp.ByID),
		chromedp.Text("#signout", &button, chromedp.ByID))
	if !strings.HasPrefix(title2, "Ticket "+number) || status != "new" || button != "Sign out" {
		t.Fatalf("in English: title %q, status %q, button %q", title2, status, button)
	}

	// An operator cannot open the dashboard.
	run("operator dashboard", chromedp.Navigate(u+"/dashboard"), chromedp.WaitVisible("#error", chromedp.ByID), chromedp.Text("#error", &msg, chromedp.ByID))
	if !strings.Contains(msg, "may not open this page") {
		t.Fatalf("operator on the dashboard: %q", msg)
	}
	var navDash int
	run("no dashboard link", chromedp.Navigate(u+"/"), chromedp.WaitVisible("#tickets", chromedp.ByID),
		chromedp.Evaluate(`document.querySelectorAll("#nav-dashboard").length`, &navDash))
	if navDash != 0 {
		t.Fatal("the operator's menu links the dashboard")
	}

	// Sign out: the sign-in page speaks her language now.
	run("sign out", chromedp.Click("#signout", chromedp.ByID), chromedp.WaitVisible("#signin", chromedp.ByID),
		chromedp.Text("#signin", &button, chromedp.ByID))
	if button != "Sign in" {
		t.Fatalf("sign-in page after an English session: %q", button)
	}
	var loc string
	run("after sign-out", chromedp.Navigate(u+"/"), chromedp.WaitVisible("#signin", chromedp.ByID), chromedp.Location(&loc))
	if !strings.Contains(loc, "/login") {
		t.Fatalf("after sign-out at %s", loc)
	}

	// The supervisor sees the dashboard.
	var total string
	run("supervisor", signIn("sue", pw), chromedp.WaitVisible("#tickets", chromedp.ByID),
		chromedp.Click("#nav-dashboard", chromedp.ByID), chromedp.WaitVisible("#indicators", chromedp.ByID),
		chromedp.Text("#total-requests", &total, chromedp.ByID), chromedp.Evaluate(`document.documentElement.lang`, &lang))
	if total != "3" || lang != "ro" {
		t.Fatalf("dashboard total requests %q, want 3; lang %q, want ro (sue's own)", total, lang)
	}
	run("supervisor sign out", chromedp.Click("#signout", chromedp.ByID), chromedp.WaitVisible("#signin", chromedp.ByID))
	if got := e.auditRows(tickets.AuditQuery{Action: "logout"}); len(got) != 2 {
		t.Fatalf("logout audit rows: %d", len(got))
	}
}

// recordedCall opens a ticket of a new call answered a minute ago, with a
// recording of 12 s (a quiet tone, 8 kHz) and two turns: the ivr's at 2 s
// and the caller's at second. It returns the ticket's number.
func (e *env) recordedCall(ctx context.Context, second time.Duration) string {
	t := e.t
	t.Helper()
	path := filepath.Join(t.TempDir(), "call-rec.wav")
	writeWAV(t, path, 8000, 12*time.Second)
	answer := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	if err := e.st.StartCall(ctx, tickets.CallRecord{ID: "call-rec", Telephony: "sip", Caller: "+40721000111", Called: "1919", Start: answer.Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.AnswerCall(ctx, "call-rec", answer, "PCMU", path); err != nil {
		t.Fatal(err)
	}
	for _, tu := range []tickets.Turn{
		{Speaker: tickets.SpeakerIVR, Text: "Cu ce vă pot ajuta?", At: answer.Add(2 * time.Second), Mode: tickets.ModeNone},
		{Speaker: tickets.SpeakerCaller, Text: "vreau să-mi schimb buletinul", At: answer.Add(second), Mode: tickets.ModeSpeech, Confidence: 0.9},
	} {
		if err := e.st.AppendTurn(ctx, "call-rec", tu); err != nil {
			t.Fatal(err)
		}
	}
	tk, err := e.st.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr", Caller: "+40721000111", CallID: "call-rec", Service: tickets.ServiceIdentityCard,
		Description: "buletin nou", Recording: path})
	if err != nil {
		t.Fatal(err)
	}
	return tk.Number
}

// writeWAV writes a mono 16-bit PCM WAV file of a 440 Hz tone.
func writeWAV(t *testing.T, path string, rate int, d time.Duration) {
	t.Helper()
	n := int(int64(rate) * int64(d) / int64(time.Second))
	b := make([]byte, 44+2*n)
	copy(b[0:], "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+2*n))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], 1) // PCM
	binary.LittleEndian.PutUint16(b[22:], 1) // mono
	binary.LittleEndian.PutUint32(b[24:], uint32(rate))
	binary.LittleEndian.PutUint32(b[28:], uint32(2*rate))
	binary.LittleEndian.PutUint16(b[32:], 2)
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(2*n))
	for i := range n {
		v := int16(2000 * math.Sin(2*math.Pi*440*float64(i)/float64(rate)))
		binary.LittleEndian.PutUint16(b[44+2*i:], uint16(v))
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(fmt.Errorf("wav: %w", err))
	}
}
