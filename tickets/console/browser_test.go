package console

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/govline/ivr/internal/testenv"
	"github.com/govline/ivr/tickets"
)

// chromium finds Debian's chromium (package chromium; chromium-driver is
// installed with it for other drivers). Without it the test fails under CI
// and make, whose DEBS list installs it, and skips elsewhere (testenv).
func chromium(t *testing.T) string {
	return testenv.Tool(t, "chromium (with chromium-driver)", "chromium", "chromium-browser", "google-chrome")
}

// TestBrowser drives the console in headless chromium: a wrong password is
// refused and audited; an operator signs in, the ticket of a call bridged
// to her pops up by itself, she escalates it, is refused the dashboard and
// signs out; a supervisor sees the dashboard.
func TestBrowser(t *testing.T) {
	exe := chromium(t)
	e := newEnv(t)
	profile, err := os.MkdirTemp("", "ivr-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	// Chromium's helper processes may still write the profile for a moment
	// after the browser is cancelled: remove it with retries, not through
	// t.TempDir (whose cleanup fails the test on a race with them).
	t.Cleanup(func() {
		for i := 0; i < 20; i++ {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	defer cancelA()
	ctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	u := e.srv.URL

	run := func(what string, tasks ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, tasks...); err != nil {
			var loc string
			_ = chromedp.Run(ctx, chromedp.Location(&loc))
			t.Fatalf("%s: %v (at %s)", what, err, loc)
		}
	}
	signIn := func(name, password string) chromedp.Tasks {
		return chromedp.Tasks{
			chromedp.Navigate(u + "/login"),
			chromedp.WaitVisible("#name", chromedp.ByID),
			chromedp.SendKeys("#name", name, chromedp.ByID),
			chromedp.SendKeys("#password", password, chromedp.ByID),
			chromedp.Click("#signin", chromedp.ByID),
		}
	}

	// A wrong password is refused, and audited.
	var msg string
	run("wrong password", signIn("ana", "not the password"), chromedp.WaitVisible("#error", chromedp.ByID),
		chromedp.Text("#error", &msg, chromedp.ByID))
	if !strings.Contains(msg, "Wrong user name or password") {
		t.Fatalf("wrong password: %q", msg)
	}
	if got := e.auditRows(tickets.AuditQuery{Action: "login_failed", User: "ana"}); len(got) != 1 || got[0].Address != "127.0.0.1" {
		t.Fatalf("failed sign-in audit: %+v", got)
	}

	// The operator signs in and sees the queue.
	var rows string
	run("sign in", signIn("ana", pw), chromedp.WaitVisible("#tickets", chromedp.ByID), chromedp.Text("#tickets", &rows, chromedp.ByID))
	if !strings.Contains(rows, e.ticket) {
		t.Fatalf("queue without the ticket %s: %q", e.ticket, rows)
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
	if !strings.Contains(transcript, "mai sunt acolo?") {
		t.Fatalf("live turn missing: %q", transcript)
	}

	// Escalate to level II.
	var level string
	run("escalate", chromedp.Click("#escalate-2", chromedp.ByID),
		chromedp.WaitVisible(`#escalate-2[disabled]`, chromedp.ByQuery), chromedp.Text("#level", &level, chromedp.ByID))
	if level != "level II" {
		t.Fatalf("level shown %q", level)
	}
	tk, err := e.st.Ticket(ctx, e.ticket)
	if err != nil || tk.Level != 2 || tk.Status != tickets.StatusEscalated {
		t.Fatalf("ticket after escalation: %+v %v", tk, err)
	}
	if got := e.auditRows(tickets.AuditQuery{Action: "ticket_escalate", User: "ana"}); len(got) != 1 || !got[0].OK {
		t.Fatalf("escalation audit: %+v", got)
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

	// Sign out.
	run("sign out", chromedp.Click("#signout", chromedp.ByID), chromedp.WaitVisible("#signin", chromedp.ByID))
	var loc string
	run("after sign-out", chromedp.Navigate(u+"/"), chromedp.WaitVisible("#signin", chromedp.ByID), chromedp.Location(&loc))
	if !strings.Contains(loc, "/login") {
		t.Fatalf("after sign-out at %s", loc)
	}

	// The supervisor sees the dashboard.
	var total string
	run("supervisor", signIn("sue", pw), chromedp.WaitVisible("#tickets", chromedp.ByID),
		chromedp.Click("#nav-dashboard", chromedp.ByID), chromedp.WaitVisible("#indicators", chromedp.ByID),
		chromedp.Text("#total-requests", &total, chromedp.ByID))
	if total != "2" {
		t.Fatalf("dashboard total requests %q, want 2", total)
	}
	run("supervisor sign out", chromedp.Click("#signout", chromedp.ByID), chromedp.WaitVisible("#signin", chromedp.ByID))
	if got := e.auditRows(tickets.AuditQuery{Action: "logout"}); len(got) != 2 {
		t.Fatalf("logout audit rows: %d", len(got))
	}
}
