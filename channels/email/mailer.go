package email

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime/quotedprintable"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/govline/ivr/tickets"
)

// Mailer sends the queued e-mails (acknowledgements, agents' answers) over
// SMTP. Several engines may run one each over a shared database: each
// e-mail is claimed before it is sent. Run owns its work: start it with
// go, stop it by cancelling its context, and wait for Run to return.
type Mailer struct {
	cfg  Config
	smtp server
	st   Store
	wake chan struct{}
	// Lease is how long a claimed e-mail is left to this mailer (default
	// 2 min); Retry the first delay after a failed send, doubling to 1 h
	// (default 30 s).
	Lease, Retry time.Duration
	// TLSConfig is used for smtps:// and STARTTLS (nil: the system's).
	TLSConfig *tls.Config
}

// NewMailer checks cfg and returns a mailer over st.
func NewMailer(cfg Config, st Store) (*Mailer, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s, err := parseServerURL(cfg.SMTPURL, "smtp", "smtps")
	if err != nil {
		return nil, fmt.Errorf("email.smtp_url: %w", err)
	}
	return &Mailer{cfg: cfg, smtp: s, st: st, wake: make(chan struct{}, 1), Lease: 2 * time.Minute, Retry: 30 * time.Second}, nil
}

// Kick asks the mailer to look at the queue now. It never blocks.
func (m *Mailer) Kick() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Run sends due e-mails until ctx is cancelled (checking every 2 s and
// at each Kick), then returns ctx's error.
func (m *Mailer) Run(ctx context.Context) error {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		for ctx.Err() == nil {
			sent, err := m.SendDue(ctx)
			if err != nil && ctx.Err() == nil {
				m.cfg.Logger.Warn("email: mailer", "err", err)
			}
			if sent == 0 || err != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-m.wake:
		}
	}
}

// Notices is the part of the store (*tickets.Store) that turns the
// outbox's "email.resolved" notifications into e-mails in the thread.
type Notices interface {
	EmailResolved(ctx context.Context, compose func(t tickets.Ticket, thread []tickets.EmailMessage, resolution string) (tickets.EmailMessage, error)) (bool, error)
}

var _ Notices = (*tickets.Store)(nil)

// SurveyNotices is Notices that may ask for a rating in the notice
// (*tickets.Store): Config.Survey uses it when the store has it.
type SurveyNotices interface {
	EmailResolvedSurvey(ctx context.Context, period time.Duration,
		compose func(t tickets.Ticket, thread []tickets.EmailMessage, resolution string, survey bool) (tickets.EmailMessage, error)) (bool, error)
}

var _ SurveyNotices = (*tickets.Store)(nil)

// SendDue queues the notices of resolved tickets, then sends what is due
// (at most 100) and returns how many it tried.
func (m *Mailer) SendDue(ctx context.Context) (int, error) {
	sn, survey := m.st.(SurveyNotices)
	survey = survey && m.cfg.Survey
	if n, ok := m.st.(Notices); ok || survey {
		for range 100 {
			var more bool
			var err error
			if survey {
				more, err = sn.EmailResolvedSurvey(ctx, m.cfg.SurveyPeriod, m.resolvedNotice)
			} else {
				more, err = n.EmailResolved(ctx, func(t tickets.Ticket, thread []tickets.EmailMessage, resolution string) (tickets.EmailMessage, error) {
					return m.resolvedNotice(t, thread, resolution, false)
				})
			}
			if err != nil {
				return 0, err
			}
			if !more {
				break
			}
		}
	}
	for i := range 100 {
		msg, ok, err := m.st.ClaimEmail(ctx, m.Lease)
		if err != nil || !ok {
			return i, err
		}
		sendErr := m.send(ctx, msg)
		retry := m.Retry
		for a := 0; a < msg.Attempts && retry < time.Hour; a++ {
			retry *= 2
		}
		retry = min(retry, time.Hour)
		if err := m.st.EmailSent(ctx, msg.ID, sendErr, retry); err != nil {
			return i + 1, err
		}
		if sendErr != nil {
			m.cfg.Logger.Warn("email: send failed; will retry", "ticket", msg.Ticket, "kind", msg.Kind, "id", msg.ID,
				"attempt", msg.Attempts+1, "retry_in", retry, "err", sendErr)
		} else {
			m.cfg.Logger.Info("email: sent", "ticket", msg.Ticket, "kind", msg.Kind, "id", msg.ID)
		}
	}
	return 100, nil
}

func (m *Mailer) send(ctx context.Context, msg tickets.EmailMessage) error {
	if msg.Address == "" {
		return errors.New("no recipient")
	}
	c, err := m.dial()
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.CommandTimeout = time.Until(dl)
	} else {
		c.CommandTimeout = time.Minute
	}
	c.SubmissionTimeout = 2 * time.Minute
	if m.smtp.user != "" {
		if err := c.Auth(sasl.NewPlainClient("", m.smtp.user, m.smtp.password)); err != nil {
			return fmt.Errorf("auth as %s: %w", m.smtp.user, err)
		}
	}
	// An automatic reply goes with a null return path (RFC 3834): a
	// bounce of it comes back to nobody.
	from := m.cfg.Address
	if msg.Kind == tickets.EmailAck {
		from = ""
	}
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	if err := c.Rcpt(msg.Address, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(Compose(m.cfg.Address, msg, time.Now())); err != nil {
		w.Close()
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// dial connects to the SMTP server: TLS for smtps://; on smtp:// STARTTLS
// when the server offers it (or always, with ?starttls=1).
func (m *Mailer) dial() (*smtp.Client, error) {
	cfg := m.TLSConfig
	if cfg == nil {
		cfg = &tls.Config{ServerName: strings.Split(m.smtp.host, ":")[0]}
	}
	if m.smtp.tls {
		c, err := smtp.DialTLS(m.smtp.host, cfg)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", m.smtp.host, err)
		}
		return c, c.Hello(domainOf(m.cfg.Address))
	}
	starttls := m.smtp.starttls
	if !starttls {
		c, err := smtp.Dial(m.smtp.host)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", m.smtp.host, err)
		}
		if err := c.Hello(domainOf(m.cfg.Address)); err != nil {
			c.Close()
			return nil, err
		}
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return c, nil
		}
		c.Close()
	}
	c, err := smtp.DialStartTLS(m.smtp.host, cfg)
	if err != nil {
		return nil, fmt.Errorf("dial %s with STARTTLS: %w", m.smtp.host, err)
	}
	return c, nil
}

// Compose writes msg as an RFC 5322 message from the line's address:
// threaded (In-Reply-To, References, the ticket number in the subject),
// an acknowledgement marked Auto-Submitted: auto-replied.
func Compose(from string, msg tickets.EmailMessage, date time.Time) []byte {
	var b bytes.Buffer
	h := func(k, v string) {
		v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
		fmt.Fprintf(&b, "%s: %s\r\n", k, v)
	}
	h("From", from)
	h("To", msg.Address)
	h("Subject", mimeWord(msg.Subject))
	h("Date", date.Format(time.RFC1123Z))
	h("Message-ID", "<"+msg.MessageID+">")
	if msg.InReplyTo != "" {
		h("In-Reply-To", "<"+msg.InReplyTo+">")
	}
	if len(msg.References) > 0 {
		h("References", "<"+strings.Join(msg.References, "> <")+">")
	}
	if msg.Kind == tickets.EmailAck {
		h("Auto-Submitted", "auto-replied")
		h("X-Auto-Response-Suppress", "All")
		h("Precedence", "auto_reply")
	}
	h("X-Loop", from)
	h("X-IVR-Ticket", msg.Ticket)
	h("MIME-Version", "1.0")
	h("Content-Type", "text/plain; charset=utf-8")
	h("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	_, _ = qp.Write([]byte(strings.ReplaceAll(msg.Text, "\n", "\r\n")))
	_ = qp.Close()
	b.WriteString("\r\n")
	return b.Bytes()
}

// Answer returns the composer of an agent's answer for
// tickets.Store.AnswerByEmail: to the citizen, in reply to the thread's
// last message from them, with the ticket number in the subject.
func Answer(cfg Config, text string) func(t tickets.Ticket, thread []tickets.EmailMessage) (tickets.EmailMessage, error) {
	domain := domainOf(cfg.Address)
	return func(t tickets.Ticket, thread []tickets.EmailMessage) (tickets.EmailMessage, error) {
		out := tickets.EmailMessage{MessageID: newMessageID(t.Number, domain), Kind: tickets.EmailAnswer, Address: t.Caller, Text: text}
		var last *tickets.EmailMessage
		for i := len(thread) - 1; i >= 0; i-- {
			if thread[i].Direction == tickets.EmailIn {
				last = &thread[i]
				break
			}
		}
		if last == nil {
			out.Subject = ThreadSubject("", t.Number)
			return out, nil
		}
		if last.Address != "" {
			out.Address = last.Address
		}
		out.Subject = ThreadSubject(last.Subject, t.Number)
		out.InReplyTo = last.MessageID
		out.References = append(append([]string{}, last.References...), last.MessageID)
		if len(out.References) > 20 {
			out.References = out.References[len(out.References)-20:]
		}
		if out.Address == "" {
			return out, errors.New("the ticket has no citizen's address to answer")
		}
		return out, nil
	}
}

// resolvedNotice tells the citizen that their ticket was resolved, in
// the ticket's thread, with the resolution note; with survey, it asks for
// a rating from 1 to 5, in each language.
func (m *Mailer) resolvedNotice(t tickets.Ticket, thread []tickets.EmailMessage, resolution string, survey bool) (tickets.EmailMessage, error) {
	ro, en := fmt.Sprintf(resolvedRO, t.Number, resolution, t.Number), fmt.Sprintf(resolvedEN, t.Number, resolution, t.Number)
	if survey {
		ro += "\n\n" + surveyRO
		en += "\n\n" + surveyEN
	}
	text := ro + "\n\n---\n\n" + en
	out, err := Answer(m.cfg, text)(t, thread)
	out.Kind = tickets.EmailResolvedNotice
	return out, err
}

const (
	resolvedRO = "Bună ziua,\n\nSolicitarea nr. %s a fost rezolvată:\n\n%s\n\nDacă mai aveți întrebări, răspundeți la acest mesaj (păstrați [#%s] în subiect) și solicitarea se redeschide."
	resolvedEN = "Hello,\n\nRequest no. %s was resolved:\n\n%s\n\nIf you have more questions, reply to this message (keep [#%s] in the subject) and the request reopens."
)

// AnswerStore is what an Answerer needs of the ticket store
// (*tickets.Store): the answer recorded in the history and queued in the
// thread in one transaction.
type AnswerStore interface {
	AnswerByEmail(ctx context.Context, number, actor, text string,
		compose func(t tickets.Ticket, thread []tickets.EmailMessage) (tickets.EmailMessage, error)) (tickets.EmailMessage, error)
}

var _ AnswerStore = (*tickets.Store)(nil)

// Answerer sends agents' answers from the ticket screen (the console's
// EmailAnswerer): queued in the ticket's thread, then the mailer is
// kicked. Safe for concurrent use.
type Answerer struct {
	cfg    Config
	st     AnswerStore
	mailer *Mailer
}

// NewAnswerer returns the answerer over st; mailer (may be nil) is kicked
// after each answer.
func NewAnswerer(cfg Config, st AnswerStore, mailer *Mailer) *Answerer {
	return &Answerer{cfg: cfg.WithDefaults(), st: st, mailer: mailer}
}

// AnswerByEmail records the answer and queues it to the citizen.
func (a *Answerer) AnswerByEmail(ctx context.Context, number, actor, text string) error {
	if _, err := a.st.AnswerByEmail(ctx, number, actor, text, Answer(a.cfg, text)); err != nil {
		return err
	}
	if a.mailer != nil {
		a.mailer.Kick()
	}
	return nil
}
