package email_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	gomail "github.com/emersion/go-message/mail"

	"github.com/govline/ivr/channels/email"
	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/flows/kb"
	"github.com/govline/ivr/internal/imaptest"
	"github.com/govline/ivr/internal/smtptest"
	"github.com/govline/ivr/tickets"
)

const line = "support@line.example"

// rig is the e-mail channel between a real Dovecot (the support mailbox
// and the citizens' mailboxes) and a real SMTP server that delivers into
// the citizens' mailboxes on that Dovecot.
type rig struct {
	imap   *imaptest.Server
	sink   *smtptest.Server
	st     *tickets.Store
	cfg    email.Config
	mb     *email.Mailbox
	mailer *email.Mailer
	logs   *lockedWriter

	mu    sync.Mutex
	taken []tickets.EmailIntakeResult
	read  int // how many of taken next returned
	ch    chan struct{}
}

func newRig(t *testing.T, cfg email.Config, adjust ...func(*email.Mailbox)) *rig {
	t.Helper()
	r := &rig{imap: imaptest.Start(t), logs: &lockedWriter{w: &bytes.Buffer{}}, ch: make(chan struct{}, 1000)}
	r.imap.AddUser(t, "support", "s3cret")
	for _, u := range []string{"ion", "maria", "mallory"} {
		r.imap.AddUser(t, u, "pw-"+u)
	}
	r.sink = smtptest.Start(t, func(m smtptest.Message) error {
		for _, to := range m.To {
			user := strings.Split(to, "@")[0]
			if user != "ion" && user != "maria" && user != "mallory" {
				continue // no such mailbox: dropped, as a relay's bounce would go nowhere
			}
			if err := r.imap.DeliverErr(user, m.Data); err != nil {
				return err
			}
		}
		return nil
	})
	r.sink.Auth("line", "smtp-pw")
	st, err := tickets.Open(filepath.Join(t.TempDir(), tickets.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r.st = st
	cfg.IMAPURL = r.imap.URL("support", "s3cret")
	cfg.SMTPURL = strings.Replace(r.sink.URL(), "smtp://", "smtp://line:smtp-pw@", 1)
	cfg.Address = line
	cfg.Logger = slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r.cfg = cfg
	if r.mb, err = email.NewMailbox(cfg, st); err != nil {
		t.Fatal(err)
	}
	if r.mailer, err = email.NewMailer(cfg, st); err != nil {
		t.Fatal(err)
	}
	for _, a := range adjust {
		a(r.mb)
	}
	r.mailer.Retry = 200 * time.Millisecond
	r.mb.Queued = r.mailer.Kick
	r.mb.Ingested = func(_ uint32, res tickets.EmailIntakeResult) {
		r.mu.Lock()
		r.taken = append(r.taken, res)
		r.mu.Unlock()
		r.ch <- struct{}{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = r.mb.Run(ctx) }()
	go func() { defer wg.Done(); _ = r.mailer.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return r
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.String()
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// next waits for the next message the mailbox takes.
func (r *rig) next(t *testing.T) tickets.EmailIntakeResult {
	t.Helper()
	select {
	case <-r.ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("no message taken in 30 s\n%s\n%s", r.logs.String(), r.imap.Log())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.read++
	return r.taken[r.read-1]
}

// inbox reads a citizen's mailbox over IMAP, as their mail program would.
func (r *rig) inbox(t *testing.T, user string, want int) [][]byte {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := imapclient.DialInsecure(r.imap.Addr(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Login(user, "pw-"+user).Wait(); err != nil {
			t.Fatal(err)
		}
		d, err := c.Select("INBOX", nil).Wait()
		if err != nil {
			t.Fatal(err)
		}
		var out [][]byte
		if d.NumMessages > 0 {
			sec := &imap.FetchItemBodySection{Peek: true}
			var all imap.SeqSet
			all.AddRange(1, d.NumMessages)
			ms, err := c.Fetch(all, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{sec}}).Collect()
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range ms {
				out = append(out, m.FindBodySection(sec))
			}
		}
		c.Close()
		if len(out) >= want || time.Now().After(deadline) {
			if len(out) < want {
				t.Fatalf("%s's mailbox has %d messages, want %d\n%s", user, len(out), want, r.logs.String())
			}
			return out
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func header(t *testing.T, raw []byte) gomail.Header {
	t.Helper()
	mr, err := gomail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return mr.Header
}

func body(t *testing.T, raw []byte) string {
	t.Helper()
	return email.Parse(raw, "").Text
}

func msg(from, id, subject, extra, text string) []byte {
	return []byte(fmt.Sprintf("From: %s\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s>\r\nDate: Sun, 06 Dec 2026 10:00:00 +0000\r\n%sMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n",
		from, line, subject, id, extra, text))
}

// The acceptance test: a citizen's message becomes a ticket with
// the acknowledgement in their mailbox; their reply threads into the same
// ticket; an agent's answer goes out in the thread; a reply to a resolved
// ticket reopens it; an auto-reply gets no reply.
func TestMessageBecomesTicketAcknowledgedAndRepliesThread(t *testing.T) {
	r := newRig(t, email.Config{})
	ctx := context.Background()
	r.imap.Deliver(t, "support", msg("Ion Popescu <ion@example.org>", "c1@example.org", "Pașaport pierdut", "",
		"Bună ziua, mi-am pierdut pașaportul. Ce trebuie să fac?"))
	res := r.next(t)
	tk := res.Ticket
	if res.FollowUp || tk.Channel != tickets.ChannelEmail || tk.Caller != "ion@example.org" ||
		!strings.Contains(tk.Description, "mi-am pierdut pașaportul") {
		t.Fatalf("ticket %+v", res)
	}
	acks := r.inbox(t, "ion", 1)
	h := header(t, acks[0])
	subj, _ := h.Subject()
	if h.Get("Auto-Submitted") != "auto-replied" || h.Get("In-Reply-To") != "<c1@example.org>" ||
		!strings.Contains(h.Get("References"), "<c1@example.org>") || !strings.Contains(subj, "[#"+tk.Number+"]") ||
		!strings.HasPrefix(subj, "Re: Pașaport pierdut") {
		t.Fatalf("acknowledgement header:\n%s", acks[0])
	}
	if b := body(t, acks[0]); !strings.Contains(b, tk.Number) || !strings.Contains(b, "solicitarea nr.") {
		t.Fatalf("acknowledgement body: %q", b)
	}
	if m := r.sink.Messages(); len(m) != 1 || m[0].From != "" {
		t.Fatalf("the acknowledgement's return path is %q, want the null one", m[0].From)
	}
	ackID := strings.Trim(h.Get("Message-Id"), "<>")

	// The citizen answers the acknowledgement (subject without the number).
	r.imap.Deliver(t, "support", msg("ion@example.org", "c2@example.org", "Re: altceva", "In-Reply-To: <"+ackID+">\r\nReferences: <c1@example.org> <"+ackID+">\r\n",
		"Am și o fotografie."))
	res = r.next(t)
	if !res.FollowUp || res.Ticket.Number != tk.Number || res.Queued != nil {
		t.Fatalf("reply: %+v", res)
	}

	// An agent answers from the ticket screen: the answer goes out in the thread.
	ans, err := r.st.AnswerByEmail(ctx, tk.Number, "ana", "Vă rugăm să veniți luni cu buletinul.", email.Answer(r.cfg, "Vă rugăm să veniți luni cu buletinul."))
	if err != nil {
		t.Fatal(err)
	}
	r.mailer.Kick()
	got := r.inbox(t, "ion", 2)
	h = header(t, got[1])
	if h.Get("In-Reply-To") != "<c2@example.org>" || h.Get("Auto-Submitted") != "" || strings.Trim(h.Get("Message-Id"), "<>") != ans.MessageID {
		t.Fatalf("answer:\n%s", got[1])
	}
	if b := body(t, got[1]); !strings.Contains(b, "veniți luni") {
		t.Fatalf("answer body %q", b)
	}
	if m := r.sink.Messages(); m[1].From != line {
		t.Fatalf("answer's return path %q", m[1].From)
	}

	// Resolved; the citizen's reply by the number in the subject reopens it.
	if err := r.st.Resolve(ctx, tk.Number, "ana", "programare făcută"); err != nil {
		t.Fatal(err)
	}
	r.mailer.Kick()
	got = r.inbox(t, "ion", 3)
	if h := header(t, got[2]); h.Get("In-Reply-To") != "<c2@example.org>" || !strings.Contains(body(t, got[2]), "programare făcută") {
		t.Fatalf("resolved notice:\n%s", got[2])
	}
	r.imap.Deliver(t, "support", msg("ion@example.org", "c3@example.org", "Încă o întrebare [#"+tk.Number+"]", "", "Și pentru copil?"))
	res = r.next(t)
	if !res.FollowUp || !res.Reopened || res.Ticket.Number != tk.Number || res.Ticket.Status == tickets.StatusResolved {
		t.Fatalf("reply to a resolved ticket: %+v", res)
	}

	// An out-of-office answer to our acknowledgement, a mailing list, a
	// bounce and our own address: none is answered.
	r.imap.Deliver(t, "support", msg("maria@example.org", "auto1@example.org", "Out of office", "Auto-Submitted: auto-replied\r\n", "I am away"))
	r.imap.Deliver(t, "support", msg("maria@example.org", "list1@example.org", "Newsletter", "List-Id: <news.example.org>\r\nPrecedence: list\r\n", "news"))
	r.imap.Deliver(t, "support", msg("MAILER-DAEMON@example.org", "b1@example.org", "Undelivered", "Return-Path: <>\r\n", "bounce"))
	r.imap.Deliver(t, "support", msg(line, "own1@line.example", "loop", "", "our own"))
	for range 4 {
		if res := r.next(t); res.Queued != nil || res.FollowUp {
			t.Fatalf("an automatic message answered: %+v", res)
		}
	}
	time.Sleep(300 * time.Millisecond)
	if n := len(r.sink.Messages()); n != 3 {
		t.Fatalf("%d e-mails sent, want 3 (the acknowledgement, the answer, the resolved notice)", n)
	}
	th, err := r.st.EmailThread(ctx, tk.Number)
	if err != nil {
		t.Fatal(err)
	}
	if len(th) != 6 { // c1, ack, c2, answer, resolved, c3
		t.Fatalf("thread of %d messages", len(th))
	}
	for _, m := range th {
		if m.Direction == tickets.EmailOut && m.Sent == nil {
			t.Fatalf("not sent: %+v", m)
		}
	}
	// The indicators count the requests that came by e-mail: the
	// citizen's and the four automatic messages (each opened a ticket).
	rep, err := r.st.Indicators(ctx, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if got := rep.Total.Channels[tickets.ChannelEmail]; got != 5 {
		t.Fatalf("indicators: %d requests by e-mail, want 5 (%+v)", got, rep.Total.Channels)
	}
	// No address nor body in the logs.
	for _, secret := range []string{"ion@example.org", "maria@example.org", "pașaportul", "fotografie", "s3cret", "smtp-pw"} {
		if strings.Contains(r.logs.String(), secret) {
			t.Fatalf("the log holds %q:\n%s", secret, r.logs.String())
		}
	}
}

// At most acks_per_hour acknowledgements go to one sender.
func TestAcknowledgementsRateLimitedPerSender(t *testing.T) {
	r := newRig(t, email.Config{AcksPerHour: 2})
	for i := range 4 {
		r.imap.Deliver(t, "support", msg("mallory@example.org", fmt.Sprintf("flood%d@example.org", i), fmt.Sprintf("req %d", i), "", "x"))
	}
	queued := 0
	for range 4 {
		if r.next(t).Queued != nil {
			queued++
		}
	}
	if queued != 2 {
		t.Fatalf("%d acknowledgements queued, want 2", queued)
	}
	r.inbox(t, "mallory", 2)
}

// unprocessed counts the support mailbox's messages not marked processed.
func unprocessed(t *testing.T, srv *imaptest.Server) int {
	t.Helper()
	c, err := imapclient.DialInsecure(srv.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("support", "s3cret").Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	d, err := c.UIDSearch(&imap.SearchCriteria{NotFlag: []imap.Flag{email.ProcessedKeyword}}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	return len(d.AllUIDs())
}

// The IMAP server restarted while the mailbox takes 200 messages: every
// message has exactly one ticket, none is left unmarked.
func TestIMAPServerRestartMidFetch(t *testing.T) {
	const total = 200
	r := newRig(t, email.Config{})
	for i := range total {
		r.imap.Deliver(t, "support", msg(fmt.Sprintf("c%d@example.org", i), fmt.Sprintf("r%d@example.org", i), "req", "", "x"))
	}
	seen := map[string]int{}
	for i := 0; len(seen) < total; i++ {
		res := r.next(t)
		seen[res.Ticket.Number]++
		if i == 60 {
			if err := r.imap.Restart(); err != nil {
				t.Fatal(err)
			}
		}
	}
	time.Sleep(200 * time.Millisecond)
	all, err := r.st.ListTickets(context.Background(), tickets.TicketQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != total {
		t.Fatalf("%d tickets for %d messages", len(all), total)
	}
	if n := unprocessed(t, r.imap); n != 0 {
		t.Fatalf("%d messages unmarked", n)
	}
}

// With the knowledge base, a request it answers with confidence is
// classified by the article's service, cites the article, and its
// acknowledgement carries the answer with the article named.
func TestAcknowledgementAnswersFromKnowledgeBase(t *testing.T) {
	ix, err := kb.Open(filepath.Join(t.TempDir(), "kb.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	if _, err := ix.ImportDir(context.Background(), filepath.Join("..", "..", "flows", "kb")); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, email.Config{}, func(mb *email.Mailbox) { mb.KB = flows.KBIndex{Index: ix} })
	r.imap.Deliver(t, "support", msg("ion@example.org", "kb1@example.org", "Mi-am pierdut pașaportul", "", "Ce fac dacă mi-am pierdut pașaportul?"))
	res := r.next(t)
	if res.Ticket.Service != tickets.ServicePassport || len(res.Ticket.Articles) != 1 || res.Ticket.Articles[0] != "passport-lost" {
		t.Fatalf("ticket %+v", res.Ticket)
	}
	got := r.inbox(t, "ion", 1)
	if b := body(t, got[0]); !strings.Contains(b, "passport-lost") || !strings.Contains(b, "baza de cunoștințe") {
		t.Fatalf("acknowledgement without the answer: %q", b)
	}
}

// Configured rules classify a request: the first rule that matches sets
// the service, the first with a priority sets it.
func TestRulesClassifyRequests(t *testing.T) {
	r := newRig(t, email.Config{Rules: []email.Rule{
		{Match: "(?i)urgen", Priority: "urgent"},
		{Match: "(?i)permis", Service: "driving_licence", Priority: "low"},
	}})
	r.imap.Deliver(t, "support", msg("ion@example.org", "rule1@example.org", "URGENT: permisul meu", "", "x"))
	if tk := r.next(t).Ticket; tk.Service != tickets.ServiceDrivingLicence || tk.Priority != tickets.PriorityUrgent {
		t.Fatalf("ticket %+v", tk)
	}
	r.imap.Deliver(t, "support", msg("ion@example.org", "rule2@example.org", "altceva", "", "nimic"))
	if tk := r.next(t).Ticket; tk.Service != tickets.ServiceOther || tk.Priority != tickets.PriorityNormal {
		t.Fatalf("ticket %+v", tk)
	}
	if err := (email.Config{IMAPURL: "imap://u:p@h:143/INBOX", SMTPURL: "smtp://h:587", Address: "s@example.gov",
		Rules: []email.Rule{{Match: "(", Service: "x"}}}).Validate(); err == nil || !strings.Contains(err.Error(), "email.rules[0].match") ||
		!strings.Contains(err.Error(), "email.rules[0].service") {
		t.Fatalf("bad rules: %v", err)
	}
}

// The mailbox over implicit TLS (imaps://) and over STARTTLS
// (imap://...?starttls=1), the server's certificate checked.
func TestMailboxOverTLS(t *testing.T) {
	srv := imaptest.Start(t)
	srv.AddUser(t, "support", "s3cret")
	st, err := tickets.Open(filepath.Join(t.TempDir(), tickets.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i, u := range []string{
		"imaps://support:s3cret@" + srv.TLSAddr() + "/INBOX",
		"imap://support:s3cret@" + srv.Addr() + "/INBOX?starttls=1",
	} {
		mb, err := email.NewMailbox(email.Config{IMAPURL: u, SMTPURL: "smtp://127.0.0.1:1", Address: line}, st)
		if err != nil {
			t.Fatal(err)
		}
		mb.TLSConfig = &tls.Config{RootCAs: srv.CertPool(), ServerName: "127.0.0.1"}
		got := make(chan tickets.EmailIntakeResult, 1)
		mb.Ingested = func(_ uint32, res tickets.EmailIntakeResult) { got <- res }
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = mb.Run(ctx) }()
		srv.Deliver(t, "support", msg("ion@example.org", fmt.Sprintf("tls%d@example.org", i), "tls", "", "x"))
		select {
		case res := <-got:
			if res.Duplicate {
				t.Fatalf("%s: %+v", u, res)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("%s: nothing taken\n%s", strings.Replace(u, "s3cret", "***", 1), srv.Log())
		}
		cancel()
		<-done
	}
	// An untrusted certificate is refused.
	mb, _ := email.NewMailbox(email.Config{IMAPURL: "imaps://support:s3cret@" + srv.TLSAddr() + "/INBOX", SMTPURL: "smtp://127.0.0.1:1",
		Address: line, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, st)
	taken := make(chan struct{}, 1)
	mb.Ingested = func(uint32, tickets.EmailIntakeResult) { taken <- struct{}{} }
	srv.Deliver(t, "support", msg("ion@example.org", "tls-untrusted@example.org", "tls", "", "x"))
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	_ = mb.Run(ctx)
	select {
	case <-taken:
		t.Fatal("a message taken over TLS with an untrusted certificate")
	default:
	}
}
