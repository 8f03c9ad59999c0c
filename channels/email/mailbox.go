package email

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/tickets"
)

// Mailbox reads the support mailbox and turns its messages into tickets.
// Run owns its goroutines: start it with go, stop it by cancelling its
// context, and wait for Run to return.
type Mailbox struct {
	cfg    Config
	imap   server
	st     Store
	domain string
	// TLSConfig is used for imaps:// and STARTTLS (nil: the system's
	// roots, the URL's host as the server name).
	TLSConfig *tls.Config
	// KB, when set, is searched with each new request's subject and the
	// start of its text: a confident first answer classifies the ticket
	// (its service, the article cited) and its text joins the
	// acknowledgement, the article named.
	KB Knowledge
	// Ingested, when set, is called after each message's ticket is
	// committed and marked processed (tests and the benchmark).
	Ingested func(uid uint32, res tickets.EmailIntakeResult)
	// AfterCommit, when set, is called between a message's commit and its
	// mark on the IMAP server (the crash test stops a process there).
	AfterCommit func(uid uint32)
	// Queued, when set, is called when a reply was queued (the mailer's
	// Kick).
	Queued func()
}

// NewMailbox checks cfg and returns the intake over st.
func NewMailbox(cfg Config, st Store) (*Mailbox, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Enabled() {
		return nil, errors.New("email: the channel is off (email.imap_url is empty)")
	}
	s, _ := parseServerURL(cfg.IMAPURL, "imap", "imaps")
	return &Mailbox{cfg: cfg, imap: s, st: st, domain: domainOf(cfg.Address)}, nil
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return "localhost"
}

// Run reads the mailbox until ctx is cancelled, reconnecting (after 1 s,
// doubling to 1 min) whenever the connection fails; it returns ctx's
// error.
func (m *Mailbox) Run(ctx context.Context) error {
	backoff := time.Second
	for {
		worked, err := m.session(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if worked {
			backoff = time.Second
		}
		m.cfg.Logger.Warn("email: IMAP connection ended; reconnecting", "server", m.imap.host, "in", backoff, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Minute)
	}
}

// session is one IMAP connection: it drains the unprocessed messages,
// then waits (IDLE or polling) for more, until the connection fails or
// ctx ends. worked says whether it got as far as the mailbox.
func (m *Mailbox) session(ctx context.Context) (worked bool, err error) {
	arrived := make(chan struct{}, 1)
	opts := &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				select {
				case arrived <- struct{}{}:
				default:
				}
			}
		},
	}}
	opts.TLSConfig = m.TLSConfig
	var c *imapclient.Client
	switch {
	case m.imap.tls:
		c, err = imapclient.DialTLS(m.imap.host, opts)
	case m.imap.starttls:
		c, err = imapclient.DialStartTLS(m.imap.host, opts)
	default:
		c, err = imapclient.DialInsecure(m.imap.host, opts)
	}
	if err != nil {
		return false, fmt.Errorf("dial: %w", err)
	}
	// The connection closes when ctx ends, which interrupts any command.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
		case <-stop:
		}
		c.Close()
	}()
	defer func() { close(stop); wg.Wait() }()

	if err := c.Login(m.imap.user, m.imap.password).Wait(); err != nil {
		return false, fmt.Errorf("login as %s: %w", m.imap.user, err)
	}
	sel, err := c.Select(m.imap.mailbox, nil).Wait()
	if err != nil {
		return false, fmt.Errorf("select %s: %w", m.imap.mailbox, err)
	}
	// The processed mark is a keyword: a mailbox that keeps none would
	// make the engine take every message again and again.
	if sel.PermanentFlags != nil && !slicesContains(flagNames(sel.PermanentFlags), string(imap.FlagWildcard)) &&
		!slicesContains(flagNames(sel.PermanentFlags), ProcessedKeyword) {
		return false, fmt.Errorf("select %s: the mailbox keeps no keywords (PERMANENTFLAGS %v): the processed mark %s cannot be set",
			m.imap.mailbox, sel.PermanentFlags, ProcessedKeyword)
	}
	m.cfg.Logger.Info("email: mailbox open", "server", m.imap.host, "mailbox", m.imap.mailbox, "idle", c.Caps().Has(imap.CapIdle))
	for {
		if err := m.drain(ctx, c); err != nil {
			return true, err
		}
		if c.Caps().Has(imap.CapIdle) {
			idle, err := c.Idle()
			if err != nil {
				return true, fmt.Errorf("idle: %w", err)
			}
			select {
			case <-ctx.Done():
			case <-arrived:
			case <-c.Closed():
			case <-time.After(DefaultIdleRefresh):
			}
			if err := idle.Close(); err != nil {
				return true, fmt.Errorf("idle: %w", err)
			}
			if err := idle.Wait(); err != nil {
				return true, fmt.Errorf("idle: %w", err)
			}
		} else {
			select {
			case <-ctx.Done():
			case <-arrived:
			case <-time.After(m.cfg.Poll):
			}
			if err := c.Noop().Wait(); err != nil {
				return true, fmt.Errorf("noop: %w", err)
			}
		}
		if ctx.Err() != nil {
			return true, ctx.Err()
		}
	}
}

// drain takes every message not yet marked processed, oldest first.
func (m *Mailbox) drain(ctx context.Context, c *imapclient.Client) error {
	for {
		data, err := c.UIDSearch(&imap.SearchCriteria{NotFlag: []imap.Flag{ProcessedKeyword}}, nil).Wait()
		if err != nil {
			return fmt.Errorf("search: %w", err)
		}
		uids := data.AllUIDs()
		if len(uids) == 0 {
			return nil
		}
		const batch = 200
		if len(uids) > batch {
			uids = uids[:batch]
		}
		sizes, err := c.Fetch(imap.UIDSetNum(uids...), &imap.FetchOptions{UID: true, RFC822Size: true}).Collect()
		if err != nil {
			return fmt.Errorf("fetch sizes: %w", err)
		}
		for _, s := range sizes {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err := m.take(ctx, c, s.UID, s.RFC822Size); err != nil {
				return err
			}
		}
	}
}

// take reads one message, commits its ticket, then marks it processed.
func (m *Mailbox) take(ctx context.Context, c *imapclient.Client, uid imap.UID, size int64) error {
	section := &imap.FetchItemBodySection{Peek: true}
	tooLarge := size > m.cfg.MaxSize
	if tooLarge {
		section = &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Peek: true}
	}
	msgs, err := c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		return fmt.Errorf("fetch uid %d: %w", uid, err)
	}
	if len(msgs) == 0 {
		return nil // expunged meanwhile
	}
	raw := msgs[0].FindBodySection(section)
	if raw == nil {
		// Nothing to take: trying again later beats a ticket of nothing.
		return fmt.Errorf("fetch uid %d: the server returned no body", uid)
	}
	var p Parsed
	if tooLarge {
		p = ParseHeader(raw, m.cfg.Address)
		p.addFlag("too_large")
		raw = nil
	} else {
		p = Parse(raw, m.cfg.Address)
	}
	res, err := m.st.IngestEmail(ctx, m.intake(p, raw, size, m.answer(ctx, p)))
	if err != nil {
		return fmt.Errorf("uid %d: %w", uid, err)
	}
	if m.AfterCommit != nil {
		m.AfterCommit(uint32(uid))
	}
	// Only now, with the ticket committed, is the message marked.
	if err := c.Store(imap.UIDSetNum(uid), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true,
		Flags: []imap.Flag{ProcessedKeyword}}, nil).Close(); err != nil {
		return fmt.Errorf("mark uid %d processed: %w", uid, err)
	}
	m.cfg.Logger.Info("email: message taken", "uid", uint32(uid), "ticket", res.Ticket.Number, "follow_up", res.FollowUp,
		"reopened", res.Reopened, "survey_answer", res.SurveyAnswer, "rated", res.Rated, "duplicate", res.Duplicate, "size", size, "flags", p.Flags, "automatic", p.Automatic,
		"attachments", len(p.Attachments), "acknowledged", res.Queued != nil)
	if res.Queued != nil && m.Queued != nil {
		m.Queued()
	}
	if m.Ingested != nil {
		m.Ingested(uint32(uid), res)
	}
	return nil
}

// Knowledge is the knowledge base's search (flows.Knowledge). Safe for
// concurrent use.
type Knowledge interface {
	Search(ctx context.Context, lang, query string, o flows.SearchOptions) ([]flows.Answer, error)
}

// kbQuery is how much of a message the knowledge base is asked with.
const kbQuery = 300

// answer asks the knowledge base about p; nil when it has no confident
// answer (or fails: the ticket is opened all the same).
func (m *Mailbox) answer(ctx context.Context, p Parsed) *flows.Answer {
	if m.KB == nil || p.Automatic != "" {
		return nil
	}
	q := strings.TrimSpace(p.Subject + ". " + p.Text)
	if len(q) > kbQuery {
		q = strings.ToValidUTF8(q[:kbQuery], "")
	}
	hits, err := m.KB.Search(ctx, "ro", q, flows.SearchOptions{Limit: 1})
	if err != nil {
		m.cfg.Logger.Warn("email: knowledge base search failed", "err", err)
		return nil
	}
	if len(hits) == 0 || !hits[0].Confident {
		return nil
	}
	return &hits[0]
}

// maxDescription is the length of the ticket's description taken from a
// message (the whole text stays in the thread).
const maxDescription = 4000

func (m *Mailbox) intake(p Parsed, raw []byte, size int64, kb *flows.Answer) tickets.EmailIntake {
	msg := tickets.EmailMessage{MessageID: p.MessageID, Address: p.From, Subject: p.Subject, InReplyTo: p.InReplyTo,
		References: p.References, Text: p.Text, Raw: raw, Size: size, Flags: p.Flags}
	for _, a := range p.Attachments {
		msg.Attachments = append(msg.Attachments, tickets.EmailAttachment{Filename: a.Filename, ContentType: a.ContentType,
			Size: int64(len(a.Data)), SHA256: a.SHA256, Flagged: a.Flagged, Data: a.Data})
	}
	desc := p.Subject
	if p.Text != "" {
		desc += "\n\n" + p.Text
	}
	if slicesContains(p.Flags, "too_large") {
		desc += fmt.Sprintf("\n\n[The message of %.1f MB is over the limit of %.1f MB: only its header was taken; it stays in the mailbox.]",
			float64(size)/(1<<20), float64(m.cfg.MaxSize)/(1<<20))
	}
	if len(desc) > maxDescription {
		desc = strings.ToValidUTF8(desc[:maxDescription], "") + "…"
	}
	in := tickets.EmailIntake{Message: msg,
		New: tickets.NewTicket{Actor: tickets.EmailActor, Caller: p.From, Description: desc, Provider: m.cfg.Provider}}
	svc, prio := classify(m.cfg.Rules, p.Subject+"\n"+p.Text)
	in.New.Service, in.New.Priority = svc, prio
	if kb != nil {
		in.New.Articles = []string{kb.ID}
		if slicesContains(serviceNames(), kb.Service) {
			in.New.Service = tickets.Service(kb.Service)
		}
	}
	if p.Automatic == "" && p.From != "" {
		// A rating counts only as the answer to the ticket's survey by
		// e-mail (the store checks): otherwise it is a reply as any.
		in.Rating = RatingReply(p.Text)
		in.Reply = func(t tickets.Ticket, followUp bool, acks int) *tickets.EmailMessage {
			if followUp || acks >= m.cfg.AcksPerHour {
				return nil
			}
			return m.ack(t, p, kb)
		}
	}
	return in
}

// ack is the acknowledgement of message p that opened ticket t.
func (m *Mailbox) ack(t tickets.Ticket, p Parsed, kb *flows.Answer) *tickets.EmailMessage {
	refs := append(append([]string{}, p.References...), p.MessageID)
	if len(refs) > 20 {
		refs = refs[len(refs)-20:]
	}
	text := fmt.Sprintf(ackRO, t.Number, t.Number) + "\n\n---\n\n" + fmt.Sprintf(ackEN, t.Number, t.Number)
	if kb != nil {
		text = fmt.Sprintf(kbRO, kb.Title, kb.ID, kb.Spoken) + "\n\n" + text
	}
	if slicesContains(p.Flags, "too_large") {
		mb := float64(m.cfg.MaxSize) / (1 << 20)
		text = fmt.Sprintf(tooLargeRO, mb) + "\n\n" + fmt.Sprintf(tooLargeEN, mb) + "\n\n" + text
	}
	return &tickets.EmailMessage{MessageID: m.newMessageID(t.Number), Kind: tickets.EmailAck, Address: p.From,
		Subject: ThreadSubject(p.Subject, t.Number), InReplyTo: p.MessageID, References: refs, Text: text}
}

const (
	ackRO = "Bună ziua,\n\nAm primit mesajul dumneavoastră și am deschis solicitarea nr. %s. Vă vom răspunde în cel mai scurt timp.\n" +
		"Dacă ne scrieți din nou despre aceeași solicitare, răspundeți la acest mesaj sau păstrați [#%s] în subiect.\n\n" +
		"Acesta este un mesaj automat."
	ackEN = "Hello,\n\nWe received your message and opened request no. %s. We will answer you as soon as possible.\n" +
		"If you write to us again about this request, reply to this message or keep [#%s] in the subject.\n\n" +
		"This is an automatic message."
	kbRO       = "Răspuns din baza de cunoștințe (articolul „%s”, %s):\n\n%s\n\nUn operator vă va răspunde dacă aveți nevoie de mai mult."
	tooLargeRO = "Mesajul dumneavoastră depășește limita de %.0f MB: am primit doar antetul lui. Vă rugăm să trimiteți atașamentele în mesaje mai mici."
	tooLargeEN = "Your message is over the limit of %.0f MB: we received only its header. Please send the attachments in smaller messages."
)

// ThreadSubject is the subject of a message in ticket number's thread:
// "Re: " and "[#NUMBER]" added when missing.
func ThreadSubject(subject, number string) string {
	s := strings.TrimSpace(subject)
	if !strings.Contains(s, "[#"+number+"]") {
		s = strings.TrimSpace(s + " [#" + number + "]")
	}
	low := strings.ToLower(s)
	if !strings.HasPrefix(low, "re:") && !strings.HasPrefix(low, "re :") {
		s = "Re: " + s
	}
	return s
}

func (m *Mailbox) newMessageID(number string) string { return newMessageID(number, m.domain) }

func newMessageID(number, domain string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "ivr." + number + "." + hex.EncodeToString(b[:]) + "@" + domain
}

func flagNames(fs []imap.Flag) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = string(f)
	}
	return out
}

func serviceNames() []string {
	out := make([]string, len(tickets.Services))
	for i, s := range tickets.Services {
		out[i] = string(s)
	}
	return out
}

func slicesContains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
