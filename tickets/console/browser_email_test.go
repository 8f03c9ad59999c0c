package console

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/govline/ivr/tickets"
)

// In headless chromium an operator opens a ticket that came by e-mail,
// reads the thread, types an answer and sends it: the screen shows it in
// the thread, waiting for the mailer.
func TestBrowserEmailAnswer(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Email = answerer{c.Store} })
	res, err := e.st.IngestEmail(context.Background(), tickets.EmailIntake{
		Message: tickets.EmailMessage{MessageID: "b1@example.org", Address: "ion@example.org", Subject: "Pașaport pierdut",
			Text: "Bună ziua, mi-am pierdut pașaportul.", Raw: []byte("raw"), Size: 3,
			Attachments: []tickets.EmailAttachment{{Filename: "declaratie.zip", ContentType: "application/zip", Size: 2, SHA256: "ab", Flagged: "archive", Data: []byte("PK")}}},
		New: tickets.NewTicket{Caller: "ion@example.org", Description: "Pașaport pierdut"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, run, signIn := browser(t, e)
	var thread string
	run("answer by e-mail",
		signIn("ana", pw),
		chromedp.WaitVisible("#tickets", chromedp.ByID),
		chromedp.Navigate(e.srv.URL+"/tickets/"+res.Ticket.Number),
		chromedp.WaitVisible("#emails", chromedp.ByID),
		chromedp.SendKeys("#email-answer", "Vă rugăm să veniți luni.", chromedp.ByID),
		chromedp.Click("#send-email", chromedp.ByID),
		chromedp.WaitVisible(`#emails li[data-kind="answer"]`, chromedp.ByQuery),
		chromedp.Text("#emails", &thread, chromedp.ByID),
	)
	for _, want := range []string{"mi-am pierdut pașaportul", "declaratie.zip", "Vă rugăm să veniți luni."} {
		if !strings.Contains(thread, want) {
			t.Errorf("the thread lacks %q: %s", want, thread)
		}
	}
	if dir := os.Getenv("IVR_TEST_SCREENSHOTS"); dir != "" {
		var png []byte
		run("screenshot", chromedp.FullScreenshot(&png, 100))
		_ = os.WriteFile(filepath.Join(dir, "email-ticket.png"), png, 0o644)
	}
	_ = ctx
}
