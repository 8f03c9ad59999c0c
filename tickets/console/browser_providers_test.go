package console

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/govline/ivr/tickets"
)

// TestBrowserProviders drives the console in headless chromium on a line
// of three providers: an operator of provider "pass" works her ticket in
// the Romanian console (a note, takes it), cannot open provider "social"'s
// ticket by its URL, by the API (from the page's own session) or by a
// search of its number or caller, and transfers her ticket to "social"
// with a reason; she then reads it without actions, and social's operator
// finds it in his queue with the transfer in its history.
func TestBrowserProviders(t *testing.T) {
	e, a, a2, b := providersEnv(t)
	ctx, run, signIn := browser(t, e)
	u := e.srv.URL

	var rows, lang string
	run("sign in", signIn("pavel", pw), chromedp.WaitVisible("#tickets", chromedp.ByID),
		chromedp.Text("#tickets", &rows, chromedp.ByID), chromedp.Evaluate(`document.documentElement.lang`, &lang))
	if lang != "ro" || !strings.Contains(rows, a.Number) || !strings.Contains(rows, a2.Number) ||
		strings.Contains(rows, b.Number) || strings.Contains(rows, e.ticket) {
		t.Fatalf("pass's queue (lang %q): %q", lang, rows)
	}

	// She works her ticket: a note, then she takes it.
	var provider, history, assignee string
	run("her ticket", chromedp.Navigate(u+"/tickets/"+a.Number), chromedp.WaitVisible("#note", chromedp.ByID),
		chromedp.Text("#provider", &provider, chromedp.ByID),
		chromedp.SendKeys("#note", "am verificat dosarul", chromedp.ByID), chromedp.Click("#add-note", chromedp.ByID),
		chromedp.WaitVisible(`#history tbody tr:nth-child(2)`, chromedp.ByQuery), chromedp.Click("#take", chromedp.ByID),
		chromedp.WaitVisible(`#history tbody tr:nth-child(3)`, chromedp.ByQuery),
		chromedp.Text("#history", &history, chromedp.ByID), chromedp.Text("#assignee", &assignee, chromedp.ByID))
	if provider != "Agenția Servicii Publice" || !strings.Contains(history, "notă: am verificat dosarul") ||
		!strings.Contains(history, "atribuită lui pavel") || assignee != "pavel" {
		t.Fatalf("after the note and take: provider %q, assignee %q, history %q", provider, assignee, history)
	}

	// social's ticket: by its URL...
	var msg string
	run("other provider's URL", chromedp.Navigate(u+"/tickets/"+b.Number), chromedp.WaitVisible("#error", chromedp.ByID),
		chromedp.Text("#error", &msg, chromedp.ByID))
	if msg != "Nu există solicitarea "+b.Number+"." {
		t.Fatalf("another provider's ticket by URL: %q", msg)
	}
	// ... by the API, with the page's own session ...
	var status int
	run("other provider's API", chromedp.Evaluate(`(() => { const x = new XMLHttpRequest();
		x.open("GET", "/api/tickets/`+b.Number+`", false); x.send(); return x.status })()`, &status))
	if status != 404 {
		t.Fatalf("another provider's ticket by the API: %d", status)
	}
	var listed string
	run("the API's list", chromedp.Evaluate(`(() => { const x = new XMLHttpRequest();
		x.open("GET", "/api/tickets?q=`+b.Number+`", false); x.send(); return x.responseText })()`, &listed))
	if strings.Contains(listed, `"number":"`+b.Number+`"`) {
		t.Fatalf("another provider's ticket in the API's search: %s", listed)
	}
	// ... by a search of its number or its caller's.
	for _, q := range []string{b.Number, "+37369000111", "pensia"} {
		run("search "+q, chromedp.Navigate(u+"/"), chromedp.WaitVisible("#search", chromedp.ByID),
			chromedp.SendKeys("#search", q+"\n", chromedp.ByID), chromedp.WaitVisible("#tickets td.empty", chromedp.ByQuery),
			chromedp.Text("#tickets", &rows, chromedp.ByID))
		if strings.Contains(rows, b.Number) || !strings.Contains(rows, "Nicio solicitare nu corespunde.") {
			t.Fatalf("search %q shows: %q", q, rows)
		}
	}
	if got := e.auditRows(tickets.AuditQuery{User: "pavel", Action: "ticket_other_provider", Target: b.Number}); len(got) < 2 {
		t.Fatalf("the attempts on social's ticket: %d audited", len(got))
	}

	// She transfers her ticket to social, with the reason.
	var notice string
	run("transfer", chromedp.Navigate(u+"/tickets/"+a.Number), chromedp.WaitVisible("#transfer-to", chromedp.ByID),
		chromedp.SetValue("#transfer-to", "social", chromedp.ByID),
		chromedp.SendKeys("#transfer-reason", "întrebare despre pensie", chromedp.ByID),
		chromedp.Click("#transfer", chromedp.ByID), chromedp.WaitVisible("#read-only", chromedp.ByID),
		chromedp.Text("#read-only", &notice, chromedp.ByID), chromedp.Text("#history", &history, chromedp.ByID))
	var forms int
	run("no actions", chromedp.Evaluate(`document.querySelectorAll("#add-note, #transfer, #take").length`, &forms))
	if !strings.Contains(notice, "Casa Națională de Asigurări Sociale") || forms != 0 ||
		!strings.Contains(history, "transmisă de la prestatorul pass la social: întrebare despre pensie") {
		t.Fatalf("after the transfer: notice %q, %d action forms, history %q", notice, forms, history)
	}
	tk, err := e.st.Ticket(ctx, a.Number)
	if err != nil || tk.Provider != "social" {
		t.Fatalf("the ticket after the transfer: %+v %v", tk, err)
	}
	run("sign out", chromedp.Click("#signout", chromedp.ByID), chromedp.WaitVisible("#signin", chromedp.ByID))

	// social's operator has it, with its history.
	run("social's operator", signIn("sorin", pw), chromedp.WaitVisible("#tickets", chromedp.ByID),
		chromedp.Text("#tickets", &rows, chromedp.ByID))
	if !strings.Contains(rows, a.Number) || !strings.Contains(rows, b.Number) || strings.Contains(rows, a2.Number) {
		t.Fatalf("social's queue: %q", rows)
	}
	run("the transferred ticket", chromedp.Navigate(u+"/tickets/"+a.Number), chromedp.WaitVisible("#add-note", chromedp.ByID),
		chromedp.Text("#history", &history, chromedp.ByID))
	if !strings.Contains(history, "am verificat dosarul") || !strings.Contains(history, "întrebare despre pensie") {
		t.Fatalf("the history for social: %q", history)
	}
}
