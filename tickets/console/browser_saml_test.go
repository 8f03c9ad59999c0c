package console

import (
	"context"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/govline/ivr/tickets"
)

// TestBrowserSAML: in headless chromium, a member of staff clicks
// "Autentificare cu MPass" on the sign-in page, the identity provider (on
// another site: localhost, the console on 127.0.0.1) signs her in and its
// page posts the answer back by script, and she arrives signed in on the
// page she asked for, as a supervisor of her provider; the session's
// SameSite=Strict cookie is sent because the console goes on from a page
// of its own. A tampered answer, in the same browser, is refused with the
// page that says why.
func TestBrowserSAML(t *testing.T) {
	s := newSAMLEnvOn(t, "localhost")
	s.idp.set(func(p *testIdP) {
		p.name, p.roles, p.provider = "elena.rusu", []string{"MPASS_SUPERVISOR"}, "passports"
	})
	ctx, run, _ := browser(t, s.env)

	var button, me, loc string
	run("sign-in page", chromedp.Navigate(s.base+"/login?next=%2Fdashboard"), chromedp.WaitVisible("#mpass", chromedp.ByID),
		chromedp.Text("#mpass", &button, chromedp.ByID))
	if button != "Autentificare cu MPass" {
		t.Fatalf("the MPass button reads %q", button)
	}
	run("MPass", chromedp.Click("#mpass", chromedp.ByID), chromedp.WaitVisible("#me", chromedp.ByID),
		chromedp.Text("#me", &me, chromedp.ByID), chromedp.Location(&loc))
	if !strings.Contains(me, "elena.rusu") || !strings.Contains(me, "supervizor") || loc != s.base+"/dashboard" {
		t.Fatalf("after MPass: %q at %s, want elena.rusu, supervisor, on /dashboard", me, loc)
	}
	u, err := s.st.User(context.Background(), "elena.rusu")
	if err != nil || !u.External || u.Role != tickets.RoleSupervisor || u.Provider != "passports" {
		t.Fatalf("the account MPass made: %+v %v", u, err)
	}
	if e := s.lastAudit(t, "login"); e.User != "elena.rusu" || e.Detail != "saml" {
		t.Fatalf("the sign-in's audit entry: %+v", e)
	}

	// Signed out, then an answer changed on the way: refused, explained.
	var msg string
	run("sign out", chromedp.Click("#signout", chromedp.ByID), chromedp.WaitVisible("#mpass", chromedp.ByID))
	s.idp.set(func(p *testIdP) { p.mode = "tampered" })
	run("tampered", chromedp.Click("#mpass", chromedp.ByID), chromedp.WaitVisible("#error", chromedp.ByID),
		chromedp.Text("#error", &msg, chromedp.ByID))
	if want := s.console.cat[tickets.LangRomanian].T("saml.signature"); msg != want {
		t.Fatalf("the tampered answer's page says %q, want %q", msg, want)
	}
	_ = ctx
}
