package email_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/govline/ivr/channels/email"
	"github.com/govline/ivr/tickets"
)

const (
	surveyQuestionRO = "Răspundeți la acest mesaj cu o cifră de la 1 (foarte nemulțumit) la 5 (foarte mulțumit)"
	surveyQuestionEN = "Reply to this message with one digit from 1 (very dissatisfied) to 5 (very satisfied)"
)

// htmlMsg is a citizen's HTML-only message.
func htmlMsg(from, id, subject, extra, html string) []byte {
	return []byte(fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s>\r\nDate: Sun, 06 Dec 2026 10:00:00 +0000\r\n%sMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n%s\r\n",
		from, line, subject, id, extra, html))
}

// resolveAndRead resolves ticket number and returns the notice that
// arrives in user's mailbox as its want-th message: its Message-ID,
// subject and text.
func (r *rig) resolveAndRead(t *testing.T, number, user string, want int) (id, subject, text string) {
	t.Helper()
	if err := r.st.Resolve(context.Background(), number, "ana", "programare făcută"); err != nil {
		t.Fatal(err)
	}
	r.mailer.Kick()
	got := r.inbox(t, user, want)
	h := header(t, got[want-1])
	subject, _ = h.Subject()
	if !strings.Contains(subject, "[#"+number+"]") {
		t.Fatalf("notice's subject %q", subject)
	}
	return strings.Trim(h.Get("Message-Id"), "<>"), subject, body(t, got[want-1])
}

func (r *rig) ratingOf(t *testing.T, number string) (tickets.Ticket, []tickets.TicketEvent) {
	t.Helper()
	ctx := context.Background()
	tk, err := r.st.Ticket(ctx, number)
	if err != nil {
		t.Fatal(err)
	}
	h, err := r.st.History(ctx, number)
	if err != nil {
		t.Fatal(err)
	}
	var rs []tickets.TicketEvent
	for _, e := range h {
		if e.Kind == tickets.EventRating {
			rs = append(rs, e)
		}
	}
	return tk, rs
}

// Issue 17, item 3, by e-mail: the notice of a resolved ticket asks for a
// rating; a reply that is the rating alone (plain with the original quoted
// under it, or HTML only) is the ticket's rating and does not reopen it; a
// later rating changes nothing; a reply with a question reopens as before;
// the same address is not surveyed again in the period; the survey
// indicators count the surveys by e-mail.
func TestSurveyByEmail(t *testing.T) {
	r := newRig(t, email.Config{Survey: true})
	ctx := context.Background()

	// Ion writes; the ticket is resolved: the notice asks for a rating.
	r.imap.Deliver(t, "support", msg("Ion Popescu <ion@example.org>", "c1@example.org", "Pașaport pierdut", "", "Mi-am pierdut pașaportul."))
	tk := r.next(t).Ticket
	r.inbox(t, "ion", 1)
	noticeID, subj, text := r.resolveAndRead(t, tk.Number, "ion", 2)
	if !strings.Contains(text, "programare făcută") || !strings.Contains(text, surveyQuestionRO) || !strings.Contains(text, surveyQuestionEN) {
		t.Fatalf("the resolved notice asks for no rating:\n%s", text)
	}

	// Ion answers "4" above the quoted notice, as a mail program replies.
	quoted := "> " + strings.ReplaceAll(text, "\n", "\n> ")
	r.imap.Deliver(t, "support", msg("ion@example.org", "c2@example.org", "Re: "+subj,
		"In-Reply-To: <"+noticeID+">\r\nReferences: <c1@example.org> <"+noticeID+">\r\n",
		"4\r\n\r\nOn Sun, 6 Dec 2026 at 10:00, Linia <"+line+"> wrote:\r\n"+strings.ReplaceAll(quoted, "\n", "\r\n")))
	res := r.next(t)
	if !res.FollowUp || !res.SurveyAnswer || !res.Rated || res.Reopened || res.Ticket.Number != tk.Number || res.Queued != nil {
		t.Fatalf("the rating reply: %+v", res)
	}
	got, rs := r.ratingOf(t, tk.Number)
	if got.Rating != 4 || got.Status != tickets.StatusResolved || len(rs) != 1 || rs[0].Data.Rating != 4 || rs[0].Actor != tickets.EmailActor {
		t.Fatalf("after the rating: ticket %+v, rating events %+v", got, rs)
	}
	// The dashboard's ratings count it.
	tot, _, err := r.st.RatingsReport(ctx, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if tot.Count != 1 || tot.Average != 4 {
		t.Fatalf("ratings report %+v", tot)
	}

	// A second rating: the first one stands, the ticket stays resolved.
	r.imap.Deliver(t, "support", msg("ion@example.org", "c3@example.org", "Re: "+subj, "", "5/5"))
	res = r.next(t)
	if !res.SurveyAnswer || res.Rated || res.Reopened {
		t.Fatalf("the second rating: %+v", res)
	}
	if got, rs := r.ratingOf(t, tk.Number); got.Rating != 4 || got.Status != tickets.StatusResolved || len(rs) != 1 {
		t.Fatalf("after a second rating: ticket %+v, rating events %+v", got, rs)
	}

	// A real question reopens, as before.
	r.imap.Deliver(t, "support", msg("ion@example.org", "c4@example.org", "Re: "+subj, "",
		"Mulțumesc, dar mai am o întrebare: ce fac pentru copil?\r\n\r\n> "+surveyQuestionRO))
	res = r.next(t)
	if res.SurveyAnswer || !res.Reopened || res.Ticket.Status == tickets.StatusResolved {
		t.Fatalf("a question after the survey: %+v", res)
	}

	// Ion's next request, resolved within the period: no survey.
	r.imap.Deliver(t, "support", msg("ion@example.org", "c5@example.org", "Buletin", "", "Și buletinul a expirat."))
	tk2 := r.next(t).Ticket
	r.inbox(t, "ion", 3)
	_, subj2, text := r.resolveAndRead(t, tk2.Number, "ion", 4)
	if !strings.Contains(text, "programare făcută") || strings.Contains(text, surveyQuestionRO) || strings.Contains(text, surveyQuestionEN) {
		t.Fatalf("a second survey to the same address in the period:\n%s", text)
	}
	// Unasked, a "5" is a reply as any: it reopens.
	r.imap.Deliver(t, "support", msg("ion@example.org", "c6@example.org", "Re: "+subj2, "", "5"))
	if res := r.next(t); res.SurveyAnswer || !res.Reopened {
		t.Fatalf("a rating nobody asked for: %+v", res)
	}
	if got, rs := r.ratingOf(t, tk2.Number); got.Rating != 0 || len(rs) != 0 {
		t.Fatalf("a rating nobody asked for was recorded: %+v %+v", got, rs)
	}

	// Maria answers the survey with an HTML-only reply, as web mail writes.
	r.imap.Deliver(t, "support", msg("maria@example.org", "m1@example.org", "Permis", "", "Permisul meu?"))
	tk3 := r.next(t).Ticket
	r.inbox(t, "maria", 1)
	noticeID, subj3, text := r.resolveAndRead(t, tk3.Number, "maria", 2)
	if !strings.Contains(text, surveyQuestionRO) {
		t.Fatalf("maria's notice asks for no rating:\n%s", text)
	}
	// Someone else's "1" in maria's thread is no answer to her survey.
	r.imap.Deliver(t, "support", msg("mallory@example.org", "x1@example.org", "Re: "+subj3, "", "1"))
	if res := r.next(t); res.SurveyAnswer || !res.Reopened {
		t.Fatalf("a rating from another address: %+v", res)
	}
	if err := r.st.Resolve(ctx, tk3.Number, "ana", "din nou"); err != nil {
		t.Fatal(err)
	}
	r.imap.Deliver(t, "support", htmlMsg("maria@example.org", "m2@example.org", "Re: "+subj3, "In-Reply-To: <"+noticeID+">\r\n",
		`<div dir="ltr">4</div><br><div class="gmail_quote"><div dir="ltr" class="gmail_attr">În dum., 6 dec. 2026 la 10:00, &lt;`+line+
			`&gt; a scris:<br></div><blockquote class="gmail_quote">Bună ziua,<br>`+surveyQuestionRO+`</blockquote></div>`))
	res = r.next(t)
	if !res.SurveyAnswer || !res.Rated || res.Reopened {
		t.Fatalf("the HTML-only rating reply: %+v", res)
	}
	if got, rs := r.ratingOf(t, tk3.Number); got.Rating != 4 || got.Status != tickets.StatusResolved || len(rs) != 1 {
		t.Fatalf("after the HTML-only rating: ticket %+v, rating events %+v", got, rs)
	}

	// The survey indicators: two surveys by e-mail, both rated.
	sc, err := r.st.SurveyReport(ctx, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if sc.Placed != 2 || sc.Answered != 2 || sc.Rated != 2 {
		t.Fatalf("survey report %+v", sc)
	}
	// The thread keeps every reply, ratings included.
	th, err := r.st.EmailThread(ctx, tk.Number)
	if err != nil {
		t.Fatal(err)
	}
	if len(th) != 6 { // c1, ack, resolved, c2 (4), c3 (5/5), c4
		t.Fatalf("thread of %d messages", len(th))
	}
	for _, secret := range []string{"ion@example.org", "maria@example.org"} {
		if strings.Contains(r.logs.String(), secret) {
			t.Fatalf("the log holds %q", secret)
		}
	}
}

// Without email.survey the notice asks nothing and a "4" reopens, as
// before.
func TestNoSurveyByEmailWhenOff(t *testing.T) {
	r := newRig(t, email.Config{})
	r.imap.Deliver(t, "support", msg("ion@example.org", "c1@example.org", "Pașaport", "", "Pierdut."))
	tk := r.next(t).Ticket
	r.inbox(t, "ion", 1)
	_, subj, text := r.resolveAndRead(t, tk.Number, "ion", 2)
	if strings.Contains(text, surveyQuestionRO) {
		t.Fatalf("a survey with the survey off:\n%s", text)
	}
	r.imap.Deliver(t, "support", msg("ion@example.org", "c2@example.org", "Re: "+subj, "", "4"))
	if res := r.next(t); res.SurveyAnswer || !res.Reopened {
		t.Fatalf("a 4 with the survey off: %+v", res)
	}
}
