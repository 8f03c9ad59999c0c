package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/govline/ivr/tickets"
)

// emailThreads: a message opens a ticket with its acknowledgement queued
// in the same transaction; the same message again (fetched twice after a
// crash, by two engines at once) makes nothing twice; a reply threads by
// the number in its subject or by In-Reply-To and reopens a resolved
// ticket; one engine sends each queued e-mail.
func emailThreads(t *testing.T, open Opener) {
	hs := engines(t, open(t), 2)
	ack := func(tk tickets.Ticket, followUp bool, acks int) *tickets.EmailMessage {
		if followUp || acks >= 2 {
			return nil
		}
		return &tickets.EmailMessage{MessageID: "ack-" + tk.Number + "@line.example", Address: "ion@example.org",
			Subject: "Re: passport [#" + tk.Number + "]", Text: "ticket " + tk.Number}
	}
	first := tickets.EmailIntake{
		Message: tickets.EmailMessage{MessageID: "m1@example.org", Address: "ion@example.org", Subject: "passport",
			Text: "I lost my passport", Raw: []byte("raw message"), Size: 11,
			Attachments: []tickets.EmailAttachment{{Filename: "a.exe", ContentType: "application/octet-stream", Size: 3,
				SHA256: "abc", Flagged: "executable", Data: []byte("MZ!")}}},
		New:   tickets.NewTicket{Caller: "ion@example.org", Description: "passport\n\nI lost my passport"},
		Reply: ack,
	}
	var wg sync.WaitGroup
	res := make([]tickets.EmailIntakeResult, 2)
	errs := make([]error, 2)
	for i, h := range hs {
		wg.Add(1)
		go func() { defer wg.Done(); res[i], errs[i] = h.st.IngestEmail(ctx, first) }()
	}
	wg.Wait()
	for _, err := range errs {
		must(t, err)
	}
	if res[0].Ticket.Number != res[1].Ticket.Number || res[0].Duplicate == res[1].Duplicate {
		t.Fatalf("one message taken by two engines: %+v / %+v", res[0], res[1])
	}
	tk := res[0].Ticket
	if tk.Channel != tickets.ChannelEmail || tk.Caller != "ion@example.org" {
		t.Fatalf("ticket %+v", tk)
	}
	all, err := hs[0].st.ListTickets(ctx, tickets.TicketQuery{})
	must(t, err)
	if len(all) != 1 {
		t.Fatalf("%d tickets for one message", len(all))
	}
	th, err := hs[0].st.EmailThread(ctx, tk.Number)
	must(t, err)
	if len(th) != 2 || th[0].Kind != tickets.EmailRequest || th[1].Kind != tickets.EmailAck || th[1].Sent != nil ||
		len(th[0].Attachments) != 1 || th[0].Attachments[0].Flagged != "executable" {
		t.Fatalf("thread %+v", th)
	}
	raw, err := hs[0].st.EmailRaw(ctx, th[0].ID)
	must(t, err)
	if string(raw) != "raw message" {
		t.Fatalf("raw %q", raw)
	}
	a, err := hs[1].st.EmailAttachmentData(ctx, th[0].ID, 0)
	must(t, err)
	if string(a.Data) != "MZ!" {
		t.Fatalf("attachment %+v", a)
	}

	// One engine sends the acknowledgement.
	var claimed int
	for _, h := range hs {
		m, ok, err := h.st.ClaimEmail(ctx, time.Minute)
		must(t, err)
		if ok {
			claimed++
			must(t, h.st.EmailSent(ctx, m.ID, nil, 0))
		}
	}
	if claimed != 1 {
		t.Fatalf("the acknowledgement claimed %d times", claimed)
	}

	must(t, hs[0].st.Resolve(ctx, tk.Number, "ana", "done"))
	// The resolve's "email.resolved" notification becomes an e-mail in
	// the thread, once, whichever engine takes it.
	notice := func(t tickets.Ticket, th []tickets.EmailMessage, resolution string) (tickets.EmailMessage, error) {
		return tickets.EmailMessage{MessageID: "resolved-" + t.Number + "@line.example", Address: t.Caller,
			Subject: "resolved [#" + t.Number + "]", InReplyTo: th[0].MessageID, Text: resolution}, nil
	}
	var notices int
	for _, h := range hs {
		ok, err := h.st.EmailResolved(ctx, notice)
		must(t, err)
		if ok {
			notices++
		}
	}
	if notices != 1 {
		t.Fatalf("the resolve's notice queued %d times", notices)
	}
	th, err = hs[1].st.EmailThread(ctx, tk.Number)
	must(t, err)
	if last := th[len(th)-1]; last.Kind != tickets.EmailResolvedNotice || last.Text != "done" || last.Address != "ion@example.org" {
		t.Fatalf("resolved notice %+v", last)
	}
	if ns := pending(t, hs[0].st, tk.Number); len(ns) != 1 || ns[0].Kind != "ticket.resolved" {
		t.Fatalf("pending notifications after the notice: %+v", ns)
	}
	// A reply by In-Reply-To, then one by the number in the subject.
	r1, err := hs[1].st.IngestEmail(ctx, tickets.EmailIntake{
		Message: tickets.EmailMessage{MessageID: "m2@example.org", Address: "ion@example.org", Subject: "Re: hello",
			InReplyTo: "ack-" + tk.Number + "@line.example", Text: "still lost"},
		New: tickets.NewTicket{Caller: "ion@example.org"}, Reply: ack})
	must(t, err)
	if !r1.FollowUp || !r1.Reopened || r1.Ticket.Number != tk.Number || r1.Ticket.Status == tickets.StatusResolved || r1.Queued != nil {
		t.Fatalf("reply by In-Reply-To: %+v", r1)
	}
	r2, err := hs[0].st.IngestEmail(ctx, tickets.EmailIntake{
		Message: tickets.EmailMessage{MessageID: "m3@example.org", Address: "ion@example.org", Subject: "again [#" + tk.Number + "]"},
		New:     tickets.NewTicket{Caller: "ion@example.org"}})
	must(t, err)
	if !r2.FollowUp || r2.Reopened || r2.Ticket.Number != tk.Number {
		t.Fatalf("reply by subject: %+v", r2)
	}

	// An agent's answer goes into the history and the thread.
	ans, err := hs[0].st.AnswerByEmail(ctx, tk.Number, "ana", "Come Monday", func(t tickets.Ticket, th []tickets.EmailMessage) (tickets.EmailMessage, error) {
		last := th[len(th)-1]
		return tickets.EmailMessage{MessageID: "answer-1@line.example", Address: t.Caller, Subject: "Re: x [#" + t.Number + "]",
			InReplyTo: last.MessageID, Text: "Come Monday"}, nil
	})
	must(t, err)
	if ans.InReplyTo != "m3@example.org" || ans.Kind != tickets.EmailAnswer {
		t.Fatalf("answer %+v", ans)
	}
	var claimedIDs []string
	for {
		m, ok, err := hs[1].st.ClaimEmail(ctx, time.Minute)
		must(t, err)
		if !ok {
			break
		}
		claimedIDs = append(claimedIDs, m.MessageID)
	}
	if len(claimedIDs) != 2 || claimedIDs[0] != "resolved-"+tk.Number+"@line.example" || claimedIDs[1] != "answer-1@line.example" {
		t.Fatalf("claimed %v", claimedIDs)
	}
	h, err := hs[0].st.History(ctx, tk.Number)
	must(t, err)
	if n := len(h); n != 6 { // created, resolved, reopened, note, note, note
		t.Fatalf("history of %d events: %+v", n, h)
	}
	phone, err := hs[0].st.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr"})
	must(t, err)
	if _, err := hs[0].st.AnswerByEmail(ctx, phone.Number, "ana", "x", nil); err == nil {
		t.Fatal("a phone ticket answered by e-mail")
	}
}

// emailSurveys: the notice of a resolved e-mail ticket asks for a rating
// once per ticket and once per address in the period (recorded in
// surveys, counted by SurveyReport), whichever engine queues it; a reply
// of the surveyed address that is a rating rates the ticket without
// reopening it, once (the first rating stands); the same rating from
// another address, or with no survey, is a reply as any (it reopens).
func emailSurveys(t *testing.T, open Opener) {
	hs := engines(t, open(t), 2)
	intake := func(id, subject string, rating int) tickets.EmailIntake {
		return tickets.EmailIntake{Message: tickets.EmailMessage{MessageID: id, Address: "ion@example.org", Subject: subject, Text: "x"},
			New: tickets.NewTicket{Caller: "ion@example.org", Description: "x"}, Rating: rating}
	}
	var surveyed []bool
	var mu sync.Mutex
	notice := func(t tickets.Ticket, th []tickets.EmailMessage, resolution string, survey bool) (tickets.EmailMessage, error) {
		if survey {
			mu.Lock()
			surveyed = append(surveyed, true)
			mu.Unlock()
		}
		return tickets.EmailMessage{MessageID: fmt.Sprintf("resolved-%s-%v@line.example", t.Number, survey), Address: "Ion@Example.org",
			Subject: "resolved [#" + t.Number + "]", Text: resolution}, nil
	}
	resolve := func(number string) (notices int) {
		must(t, hs[0].st.Resolve(ctx, number, "ana", "done"))
		var wg sync.WaitGroup
		oks := make([]bool, len(hs))
		for i, h := range hs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := h.st.EmailResolvedSurvey(ctx, 24*time.Hour, notice)
				if err != nil {
					t.Error(err)
				}
				oks[i] = ok
			}()
		}
		wg.Wait()
		for _, ok := range oks {
			if ok {
				notices++
			}
		}
		return notices
	}
	r, err := hs[0].st.IngestEmail(ctx, intake("s1@example.org", "passport", 0))
	must(t, err)
	tk := r.Ticket
	if n := resolve(tk.Number); n != 1 || len(surveyed) != 1 {
		t.Fatalf("%d notices, %d surveys for one resolve", n, len(surveyed))
	}
	th, err := hs[1].st.EmailThread(ctx, tk.Number)
	must(t, err)
	if last := th[len(th)-1]; last.Kind != tickets.EmailResolvedNotice || last.MessageID != "resolved-"+tk.Number+"-true@line.example" {
		t.Fatalf("the notice %+v", last)
	}
	// The surveyed address answers "4" (in another case).
	in := intake("s2@example.org", "Re: [#"+tk.Number+"]", 4)
	in.Message.Address = "ION@example.org"
	r, err = hs[1].st.IngestEmail(ctx, in)
	must(t, err)
	if !r.FollowUp || !r.SurveyAnswer || !r.Rated || r.Reopened || r.Ticket.Rating != 4 || r.Ticket.Status != tickets.StatusResolved {
		t.Fatalf("the rating reply: %+v", r)
	}
	r, err = hs[0].st.IngestEmail(ctx, intake("s3@example.org", "Re: [#"+tk.Number+"]", 2))
	must(t, err)
	if !r.SurveyAnswer || r.Rated || r.Reopened || r.Ticket.Rating != 4 {
		t.Fatalf("a second rating: %+v", r)
	}
	hist, err := hs[0].st.History(ctx, tk.Number)
	must(t, err)
	var ratings []int
	for _, e := range hist {
		if e.Kind == tickets.EventRating {
			ratings = append(ratings, e.Data.Rating)
		}
	}
	if len(ratings) != 1 || ratings[0] != 4 {
		t.Fatalf("rating events %v", ratings)
	}
	sc, err := hs[1].st.SurveyReport(ctx, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	must(t, err)
	if sc.Placed != 1 || sc.Answered != 1 || sc.Rated != 1 {
		t.Fatalf("survey report %+v", sc)
	}
	// Another address's rating in the thread reopens.
	other := intake("s4@example.org", "Re: [#"+tk.Number+"]", 5)
	other.Message.Address = "mallory@example.org"
	r, err = hs[0].st.IngestEmail(ctx, other)
	must(t, err)
	if r.SurveyAnswer || !r.Reopened || r.Ticket.Rating != 4 {
		t.Fatalf("a rating from another address: %+v", r)
	}
	// Resolved again: no second survey of the ticket. A second ticket of
	// the same address in the period: none either; with a period of a
	// nanosecond, it gets one.
	if n := resolve(tk.Number); n != 1 || len(surveyed) != 1 {
		t.Fatalf("resolved again: %d notices, %d surveys", n, len(surveyed))
	}
	r, err = hs[0].st.IngestEmail(ctx, intake("s5@example.org", "id card", 0))
	must(t, err)
	tk2 := r.Ticket
	if n := resolve(tk2.Number); n != 1 || len(surveyed) != 1 {
		t.Fatalf("the address surveyed twice in the period: %d notices, %d surveys", n, len(surveyed))
	}
	r, err = hs[1].st.IngestEmail(ctx, intake("s6@example.org", "Re: [#"+tk2.Number+"]", 5))
	must(t, err)
	if r.SurveyAnswer || !r.Reopened || r.Ticket.Rating != 0 {
		t.Fatalf("a rating nobody asked for: %+v", r)
	}
	must(t, hs[0].st.Resolve(ctx, tk2.Number, "ana", "done"))
	ok, err := hs[1].st.EmailResolvedSurvey(ctx, time.Nanosecond, notice)
	must(t, err)
	if !ok || len(surveyed) != 2 {
		t.Fatalf("after the period: notice %v, %d surveys", ok, len(surveyed))
	}
}
