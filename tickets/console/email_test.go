package console

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/govline/ivr/tickets"
)

// answerer is the e-mail channel's answerer reduced to the store's part
// (the composing and the SMTP side are channels/email's, tested there
// through real servers).
type answerer struct{ st *tickets.Store }

func (a answerer) AnswerByEmail(ctx context.Context, number, actor, text string) error {
	_, err := a.st.AnswerByEmail(ctx, number, actor, text, func(t tickets.Ticket, th []tickets.EmailMessage) (tickets.EmailMessage, error) {
		return tickets.EmailMessage{MessageID: "answer-" + t.Number + "@line.example", Address: t.Caller,
			Subject: "Re: [#" + t.Number + "]", InReplyTo: th[len(th)-1].MessageID, Text: text}, nil
	})
	return err
}

// The screen of a ticket that came by e-mail: the thread with its
// attachments (served only as downloads, a flagged one as octet-stream),
// the answer form whose answer joins the thread and the history; the
// supervisor sees neither the address nor the text.
func TestEmailTicketThreadAndAnswer(t *testing.T) {
	var e *env
	e = newEnv(t, func(c *Config) { c.Email = answerer{c.Store} })
	ctx := context.Background()
	res, err := e.st.IngestEmail(ctx, tickets.EmailIntake{
		Message: tickets.EmailMessage{MessageID: "m1@example.org", Address: "ion.popescu@example.org", Subject: "pașaport <b>pierdut</b>",
			Text: "Am pierdut pașaportul <script>alert(1)</script>", Raw: []byte("raw"), Size: 3,
			Attachments: []tickets.EmailAttachment{
				{Filename: "poza.jpg", ContentType: "image/jpeg", Size: 4, SHA256: "aa", Data: []byte("JPEG")},
				{Filename: "factura.exe", ContentType: "image/jpeg", Size: 2, SHA256: "bb", Flagged: "executable", Data: []byte("MZ")},
			}},
		New: tickets.NewTicket{Caller: "ion.popescu@example.org", Description: "pașaport pierdut"}})
	if err != nil {
		t.Fatal(err)
	}
	number := res.Ticket.Number
	op := e.client()
	op.login("ana", pw)
	_, page := op.get("/tickets/" + number)
	for _, want := range []string{"ion.popescu@example.org", "Am pierdut pașaportul &lt;script&gt;", `id="email-answer"`, "factura.exe", "executable"} {
		if !strings.Contains(page, want) {
			t.Errorf("the operator's screen lacks %q", want)
		}
	}
	if strings.Contains(page, "<script>alert") {
		t.Fatal("the e-mail's HTML reached the page")
	}
	th, _ := e.st.EmailThread(ctx, number)
	for i, want := range []struct{ ct string }{{"image/jpeg"}, {"application/octet-stream"}} {
		code, body, h := op.do("GET", "/tickets/"+number+"/emails/"+itoa(th[0].ID)+"/attachments/"+itoa(int64(i)), nil, nil)
		if code != http.StatusOK || h.Get("Content-Type") != want.ct || !strings.HasPrefix(h.Get("Content-Disposition"), "attachment") ||
			h.Get("X-Content-Type-Options") != "nosniff" || body == "" {
			t.Errorf("attachment %d: %d %v", i, code, h)
		}
	}
	if code, body, h := op.do("GET", "/tickets/"+number+"/emails/"+itoa(th[0].ID)+"/raw", nil, nil); code != http.StatusOK || body != "raw" ||
		h.Get("Content-Type") != "application/octet-stream" || !strings.Contains(h.Get("Content-Disposition"), ".eml") {
		t.Errorf("raw message: %d %q %v", code, body, h)
	}
	if code, _ := op.post("/tickets/"+number+"/email", url.Values{"text": {"Veniți luni."}}); code != http.StatusSeeOther {
		t.Fatalf("answer: %d", code)
	}
	th, _ = e.st.EmailThread(ctx, number)
	if len(th) != 2 || th[1].Kind != tickets.EmailAnswer || th[1].Text != "Veniți luni." || th[1].InReplyTo != "m1@example.org" {
		t.Fatalf("thread after the answer: %+v", th)
	}
	if rows := e.auditRows(tickets.AuditQuery{Target: number}); !hasAction(rows, "ticket_email") {
		t.Errorf("the answer is not audited: %+v", rows)
	}
	sup := e.client()
	sup.login("sue", pw)
	_, page = sup.get("/tickets/" + number)
	_, api, _ := sup.do("GET", "/api/tickets/"+number, nil, nil)
	for where, body := range map[string]string{"page": page, "API": api} {
		// (The agent's answer is in the history as a note, shown as notes
		// are: masked by redact.Text.)
		for _, secret := range []string{"ion.popescu", "Am pierdut", "poza.jpg"} {
			if strings.Contains(body, secret) {
				t.Errorf("the supervisor's %s shows %q", where, secret)
			}
		}
	}
	if code, _, _ := sup.do("GET", "/tickets/"+number+"/emails/"+itoa(th[0].ID)+"/attachments/0", nil, nil); code != http.StatusForbidden && code != http.StatusNotFound {
		t.Errorf("the supervisor downloads an attachment: %d", code)
	}
	// A phone ticket is not answered by e-mail.
	if code, _ := op.post("/tickets/"+e.ticket+"/email", url.Values{"text": {"x"}}); code == http.StatusSeeOther {
		t.Error("a phone ticket answered by e-mail")
	}
}

func itoa(n int64) string { return formatInt(n) }

func formatInt(n int64) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}

func hasAction(rows []tickets.AuditEntry, action string) bool {
	for _, r := range rows {
		if r.Action == action && r.OK {
			return true
		}
	}
	return false
}
