package tickets

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/govline/ivr/store"
)

// E-mails of a ticket's thread (tables email_messages, email_attachments;
// docs/email.md). Package channels/email turns a mailbox into calls of
// these methods; the store decides, in one transaction, whether a message
// opens a ticket or follows one up, so a message fetched twice (a crash
// before the engine marked it processed on the IMAP server) is recognised
// by its Message-ID and makes nothing twice.

// Directions of an e-mail.
const (
	EmailIn  = "in"
	EmailOut = "out"
)

// Kinds of e-mail.
const (
	EmailRequest        = "request"  // in: a citizen's message that opened a ticket
	EmailReply          = "reply"    // in: a message that followed a ticket up
	EmailAck            = "ack"      // out: the automatic acknowledgement
	EmailAnswer         = "answer"   // out: an agent's answer
	EmailResolvedNotice = "resolved" // out: the notice that the ticket was resolved
)

// EmailActor is the actor of the ticket events the mailbox writes.
const EmailActor = "email"

// EmailMessage is one e-mail of a ticket's thread. Address (the citizen's
// address), Text and Raw are personal data: never logged.
type EmailMessage struct {
	ID         int64      `json:"id"`
	Ticket     string     `json:"ticket"`
	MessageID  string     `json:"message_id"` // without angle brackets
	Direction  string     `json:"direction"`
	Kind       string     `json:"kind"`
	Address    string     `json:"address"`
	Subject    string     `json:"subject"`
	InReplyTo  string     `json:"in_reply_to,omitempty"`
	References []string   `json:"references,omitempty"`
	Text       string     `json:"text"`
	Raw        []byte     `json:"-"` // nil when over the size limit (Flags says so)
	Size       int64      `json:"size"`
	Flags      []string   `json:"flags,omitempty"`
	At         time.Time  `json:"at"`
	Sent       *time.Time `json:"sent,omitempty"`
	Attempts   int        `json:"attempts,omitempty"`
	LastError  string     `json:"last_error,omitempty"`
	// Attachments of a received message (Data left out by EmailThread).
	Attachments []EmailAttachment `json:"attachments,omitempty"`
}

// EmailAttachment is one attachment of a received message. Flagged says
// why it must never be served inline ("" when it may).
type EmailAttachment struct {
	Index       int    `json:"index"`
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
	Flagged     string `json:"flagged,omitempty"`
	Data        []byte `json:"-"`
}

// EmailIntake is what the mailbox asks of the store for one received
// message.
type EmailIntake struct {
	Message EmailMessage // Direction, Kind, Ticket and At are set by the store
	// New is the ticket to open when the message follows none up
	// (Channel, Caller and Description filled by the mailbox).
	New NewTicket
	// Reply, when set, is called inside the transaction with the ticket
	// the message opened or followed up and the number of acknowledgements
	// sent to the sender in the last hour; the message it returns (nil for
	// none) is queued to be sent, so it is never lost nor sent without its
	// ticket. The ticket number it needs is known only there.
	Reply func(t Ticket, followUp bool, acksLastHour int) *EmailMessage
	// Rating is the satisfaction rating (1 to 5) the message's new text
	// consists of (0: it is no rating; channels/email's RatingReply). It
	// counts only in a follow-up of a resolved or closed ticket whose
	// resolution asked this sender for a rating (a survey by e-mail, see
	// EmailResolvedSurvey); then the message answers the survey and does
	// not reopen the ticket.
	Rating int
}

// EmailIntakeResult says what became of a received message.
type EmailIntakeResult struct {
	Ticket    Ticket
	FollowUp  bool // appended to an existing ticket's history
	Reopened  bool // the follow-up reopened a resolved or closed ticket
	Duplicate bool // the message was already taken (fetched again after a crash)
	Queued    *EmailMessage
	// SurveyAnswer: the follow-up answered the ticket's survey by e-mail
	// with a rating (the ticket stays resolved or closed); Rated: that
	// rating was recorded (false when the ticket had one already: the
	// first one stands).
	SurveyAnswer, Rated bool
}

var subjectNumber = regexp.MustCompile(`\[#([0-9]{8})\]`)

// TicketInSubject returns the ticket number a subject carries as
// "[#NUMBER]" (with a valid check digit), or "".
func TicketInSubject(subject string) string {
	for _, m := range subjectNumber.FindAllStringSubmatch(subject, -1) {
		if ValidNumber(m[1]) {
			return m[1]
		}
	}
	return ""
}

// IngestEmail takes one received message: a duplicate of one already
// taken changes nothing; one whose subject carries a ticket's number or
// whose In-Reply-To/References name a message of a ticket's thread is
// appended to that ticket's history (reopening it when it was resolved or
// closed); any other opens a ticket. The message, its attachments, the
// ticket's change and the reply to send are written in one transaction.
func (s *Store) IngestEmail(ctx context.Context, in EmailIntake) (EmailIntakeResult, error) {
	const op = "ingest e-mail"
	if in.Message.MessageID == "" {
		return EmailIntakeResult{}, fmt.Errorf("tickets: %s: %w", op, invalid("message_id", "empty"))
	}
	nt := in.New.WithDefaults()
	nt.Channel = ChannelEmail
	if nt.Actor == "" {
		nt.Actor = EmailActor
	}
	if err := nt.Validate(); err != nil {
		return EmailIntakeResult{}, fmt.Errorf("tickets: %s: %w", op, err)
	}
	var res EmailIntakeResult
	for try := 0; ; try++ {
		res = EmailIntakeResult{}
		err := s.ingestTx(ctx, op, in, nt, &res)
		// Another engine took the same message at the same time: its
		// commit won, and the next try finds it.
		if err != nil && store.IsUnique(err) && try < 2 {
			continue
		}
		if err != nil {
			return EmailIntakeResult{}, wrapOp(op, err)
		}
		return res, nil
	}
}

func (s *Store) ingestTx(ctx context.Context, op string, in EmailIntake, nt NewTicket, res *EmailIntakeResult) error {
	m := in.Message
	return s.inTx(ctx, op, func(tx *store.Tx) error {
		var dup string
		err := tx.QueryRowContext(ctx, `SELECT ticket FROM email_messages WHERE message_id = ?`, m.MessageID).Scan(&dup)
		if err == nil {
			t, err := scanTicket(tx.QueryRowContext(ctx, `SELECT `+ticketColumns+` FROM tickets WHERE number = ?`, dup))
			res.Ticket, res.Duplicate = t, true
			return err
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		number, err := threadOf(ctx, tx, m)
		if err != nil {
			return err
		}
		now := s.now()
		m.Direction, m.At = EmailIn, now
		if number != "" {
			res.FollowUp = true
			m.Kind = EmailReply
			// The text stays in the thread (hidden from the roles that do
			// not see personal data); the history says that it came.
			// Language-neutral: the console shows it in either language.
			note := "e-mail ←"
			surveyed, err := surveyedBy(ctx, tx, number, m.Address, in.Rating)
			if err != nil {
				return err
			}
			t, err := s.actTx(ctx, tx, number, EmailActor, func(_ context.Context, _ *store.Tx, cur *Ticket, _ time.Time) (*TicketEvent, error) {
				if isOpen(cur.Status) {
					return nil, nil
				}
				if surveyed {
					// The answer to the survey: a rating, not a new question.
					res.SurveyAnswer = true
					if cur.Rating != 0 {
						return nil, nil // the first rating stands
					}
					res.Rated = true
					return event(EventRating, EventData{Rating: in.Rating}), nil
				}
				res.Reopened = true
				return event(EventReopened, EventData{Text: "e-mail ←"}), nil
			})
			if err != nil {
				return err
			}
			if res.Rated {
				if _, err := tx.ExecContext(ctx, `UPDATE surveys SET result = ?, updated_ns = ? WHERE ticket = ?`,
					SurveyRated, now.UnixNano(), number); err != nil {
					return err
				}
			}
			if t, err = s.actTx(ctx, tx, number, EmailActor, func(context.Context, *store.Tx, *Ticket, time.Time) (*TicketEvent, error) {
				return event(EventNote, EventData{Text: note}), nil
			}); err != nil {
				return err
			}
			res.Ticket = t
		} else {
			m.Kind = EmailRequest
			t, err := s.openTx(ctx, tx, nt, s.createdData(nt, now), now)
			if err != nil {
				return err
			}
			res.Ticket = t
		}
		m.Ticket = res.Ticket.Number
		if _, err := insertEmail(ctx, tx, m); err != nil {
			return err
		}
		if in.Reply != nil {
			var acks int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM email_messages WHERE direction = 'out' AND kind = ? AND address = ? AND at_ns > ?`,
				EmailAck, m.Address, now.Add(-time.Hour).UnixNano()).Scan(&acks); err != nil {
				return err
			}
			if r := in.Reply(res.Ticket, res.FollowUp, acks); r != nil {
				out := *r
				out.Ticket, out.Direction, out.At = res.Ticket.Number, EmailOut, now
				if out.Kind == "" {
					out.Kind = EmailAck
				}
				id, err := insertEmail(ctx, tx, out)
				if err != nil {
					return err
				}
				out.ID = id
				res.Queued = &out
			}
		}
		return nil
	})
}

// surveyedBy reports whether rating (1 to 5) answers a survey by e-mail
// of ticket number sent to address (the same address, in any case).
func surveyedBy(ctx context.Context, tx *store.Tx, number, address string, rating int) (bool, error) {
	if rating < 1 || rating > 5 || address == "" {
		return false, nil
	}
	var to string
	err := tx.QueryRowContext(ctx, `SELECT number FROM surveys WHERE ticket = ?`, number).Scan(&to)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return strings.EqualFold(to, address), nil
}

// threadOf finds the ticket a received message follows up, or "".
func threadOf(ctx context.Context, tx *store.Tx, m EmailMessage) (string, error) {
	if n := TicketInSubject(m.Subject); n != "" {
		var found string
		err := tx.QueryRowContext(ctx, `SELECT number FROM tickets WHERE number = ?`, n).Scan(&found)
		if err == nil {
			return found, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return "", err
		}
	}
	ids := append([]string{}, m.References...)
	if m.InReplyTo != "" {
		ids = append(ids, m.InReplyTo)
	}
	// The newest reference first: the message it answers.
	for i := len(ids) - 1; i >= 0 && i >= len(ids)-50; i-- {
		if ids[i] == "" {
			continue
		}
		var t string
		err := tx.QueryRowContext(ctx, `SELECT ticket FROM email_messages WHERE message_id = ?`, ids[i]).Scan(&t)
		if err == nil {
			return t, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return "", err
		}
	}
	return "", nil
}

func insertEmail(ctx context.Context, tx *store.Tx, m EmailMessage) (int64, error) {
	var raw any
	if m.Raw != nil {
		raw = m.Raw
	}
	var id int64
	err := tx.QueryRowContext(ctx, `INSERT INTO email_messages (ticket, message_id, direction, kind, address, subject,
		in_reply_to, refs, text, raw, size, flags, at_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		m.Ticket, m.MessageID, m.Direction, m.Kind, m.Address, m.Subject, m.InReplyTo, strings.Join(m.References, " "),
		m.Text, raw, m.Size, strings.Join(m.Flags, " "), m.At.UnixNano()).Scan(&id)
	if err != nil {
		return 0, err
	}
	for i, a := range m.Attachments {
		if _, err := tx.ExecContext(ctx, `INSERT INTO email_attachments (message, idx, filename, content_type, size, sha256, flagged, data)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, id, i, a.Filename, a.ContentType, a.Size, a.SHA256, a.Flagged, nonNil(a.Data)); err != nil {
			return 0, err
		}
	}
	return id, nil
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// AnswerByEmail records an agent's answer in the ticket's history and
// queues it to be sent to the citizen in the ticket's thread, in one
// transaction. compose builds the message from the ticket and the thread
// so far (oldest first); the store sets its ticket, direction and time.
func (s *Store) AnswerByEmail(ctx context.Context, number, actor, text string,
	compose func(t Ticket, thread []EmailMessage) (EmailMessage, error)) (EmailMessage, error) {
	op := "answer by e-mail " + number
	if strings.TrimSpace(text) == "" {
		return EmailMessage{}, fmt.Errorf("tickets: %s: %w", op, invalid("text", "empty answer"))
	}
	var out EmailMessage
	err := s.inTx(ctx, op, func(tx *store.Tx) error {
		t, err := s.actTx(ctx, tx, number, actor, func(_ context.Context, _ *store.Tx, cur *Ticket, _ time.Time) (*TicketEvent, error) {
			if cur.Channel != ChannelEmail {
				return nil, fmt.Errorf("%w: answer by e-mail: the ticket came by %s", ErrTransition, cur.Channel)
			}
			if err := notClosed(cur, "answer"); err != nil {
				return nil, err
			}
			return event(EventNote, EventData{Text: "e-mail → " + text}), nil
		})
		if err != nil {
			return err
		}
		thread, err := emailThread(ctx, tx, number)
		if err != nil {
			return err
		}
		if out, err = compose(t, thread); err != nil {
			return err
		}
		out.Ticket, out.Direction, out.At = number, EmailOut, s.now()
		if out.Kind == "" {
			out.Kind = EmailAnswer
		}
		out.ID, err = insertEmail(ctx, tx, out)
		return err
	})
	if err != nil {
		return EmailMessage{}, wrapOp(op, err)
	}
	return out, nil
}

const emailColumns = `id, ticket, message_id, direction, kind, address, subject, in_reply_to, refs, text, size, flags,
	at_ns, sent_ns, attempts, last_error`

func scanEmail(sc interface{ Scan(...any) error }) (EmailMessage, error) {
	var m EmailMessage
	var refs, flags string
	var at int64
	var sent sql.NullInt64
	if err := sc.Scan(&m.ID, &m.Ticket, &m.MessageID, &m.Direction, &m.Kind, &m.Address, &m.Subject, &m.InReplyTo,
		&refs, &m.Text, &m.Size, &flags, &at, &sent, &m.Attempts, &m.LastError); err != nil {
		return m, err
	}
	m.References, m.Flags = strings.Fields(refs), strings.Fields(flags)
	m.At = fromNanos(at)
	if sent.Valid {
		t := fromNanos(sent.Int64)
		m.Sent = &t
	}
	return m, nil
}

func emailThread(ctx context.Context, q querier, number string) ([]EmailMessage, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+emailColumns+` FROM email_messages WHERE ticket = ? ORDER BY id`, number)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []EmailMessage
	for rows.Next() {
		m, err := scanEmail(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		arows, err := q.QueryContext(ctx, `SELECT idx, filename, content_type, size, sha256, flagged FROM email_attachments
			WHERE message = ? ORDER BY idx`, out[i].ID)
		if err != nil {
			return nil, err
		}
		for arows.Next() {
			var a EmailAttachment
			if err := arows.Scan(&a.Index, &a.Filename, &a.ContentType, &a.Size, &a.SHA256, &a.Flagged); err != nil {
				arows.Close()
				return nil, err
			}
			out[i].Attachments = append(out[i].Attachments, a)
		}
		arows.Close()
		if err := arows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// EmailThread returns the e-mails of a ticket, oldest first, with their
// attachments' descriptions (not their data, nor the raw messages).
func (s *Store) EmailThread(ctx context.Context, number string) ([]EmailMessage, error) {
	out, err := emailThread(ctx, s.db, number)
	if err != nil {
		return nil, fmt.Errorf("tickets: e-mail thread %s: %w", number, err)
	}
	return out, nil
}

// EmailRaw returns a received message as it arrived (nil when it was over
// the size limit).
func (s *Store) EmailRaw(ctx context.Context, id int64) ([]byte, error) {
	var raw []byte
	err := s.db.QueryRowContext(ctx, `SELECT raw FROM email_messages WHERE id = ?`, id).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("tickets: e-mail %d: %w", id, ErrNotFound)
	}
	return raw, err
}

// EmailAttachmentData returns one attachment with its data.
func (s *Store) EmailAttachmentData(ctx context.Context, message int64, idx int) (EmailAttachment, error) {
	var a EmailAttachment
	err := s.db.QueryRowContext(ctx, `SELECT idx, filename, content_type, size, sha256, flagged, data FROM email_attachments
		WHERE message = ? AND idx = ?`, message, idx).Scan(&a.Index, &a.Filename, &a.ContentType, &a.Size, &a.SHA256, &a.Flagged, &a.Data)
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("tickets: attachment %d/%d: %w", message, idx, ErrNotFound)
	}
	return a, err
}

// ClaimEmail takes the next e-mail due to be sent: its next attempt moves
// lease ahead, so no other engine's mailer takes it meanwhile (on
// PostgreSQL a row being claimed is skipped). ok is false when none is due.
func (s *Store) ClaimEmail(ctx context.Context, lease time.Duration) (m EmailMessage, ok bool, err error) {
	now := s.now()
	err = s.inTx(ctx, "e-mail claim", func(tx *store.Tx) error {
		var id int64
		err := tx.QueryRowContext(ctx, `UPDATE email_messages SET next_ns = ? WHERE id = (SELECT id FROM email_messages
			WHERE direction = 'out' AND sent_ns IS NULL AND next_ns <= ? ORDER BY next_ns, id LIMIT 1`+s.db.SkipLocked()+`)
			RETURNING id`, now.Add(lease).UnixNano(), now.UnixNano()).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		m, err = scanEmail(tx.QueryRowContext(ctx, `SELECT `+emailColumns+` FROM email_messages WHERE id = ?`, id))
		ok = err == nil
		return err
	})
	if err != nil {
		return m, false, fmt.Errorf("tickets: e-mail claim: %w", err)
	}
	return m, ok, nil
}

// EmailSent records the outcome of sending a claimed e-mail: sendErr nil
// marks it sent; otherwise it is due again after retry.
func (s *Store) EmailSent(ctx context.Context, id int64, sendErr error, retry time.Duration) error {
	now := s.now()
	err := s.inTx(ctx, "e-mail sent", func(tx *store.Tx) error {
		if sendErr == nil {
			_, err := tx.ExecContext(ctx, `UPDATE email_messages SET attempts = attempts + 1, sent_ns = ?, last_error = '' WHERE id = ?`, now.UnixNano(), id)
			return err
		}
		msg := sendErr.Error()
		if len(msg) > 300 {
			msg = msg[:300]
		}
		_, err := tx.ExecContext(ctx, `UPDATE email_messages SET attempts = attempts + 1, next_ns = ?, last_error = ? WHERE id = ?`,
			now.Add(retry).UnixNano(), msg, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("tickets: e-mail sent: %w", err)
	}
	return nil
}

// EmailResolved turns the next due "email.resolved" notification of the
// outbox (written by the resolve of a ticket that came by e-mail, in its
// transaction) into an e-mail queued in the ticket's thread, marking the
// notification sent, in one transaction: a crash leaves either both or
// neither. compose builds the e-mail from the ticket, its thread and the
// resolution note. ok is false when none is due.
func (s *Store) EmailResolved(ctx context.Context, compose func(t Ticket, thread []EmailMessage, resolution string) (EmailMessage, error)) (ok bool, err error) {
	return s.EmailResolvedSurvey(ctx, 0, func(t Ticket, thread []EmailMessage, resolution string, _ bool) (EmailMessage, error) {
		return compose(t, thread, resolution)
	})
}

// EmailResolvedSurvey is EmailResolved that also decides whether the
// notice asks the citizen for a satisfaction rating (a survey by e-mail,
// issue 17): with period > 0, when the ticket has no rating and had no
// survey (by call or e-mail), and the notice's address had no survey in
// the period before now. The survey is recorded in the table surveys
// (the address in its number column; result "" until a rating comes, then
// "rated"), in the same transaction as the queued notice. compose is
// called with survey false first, then, if the survey goes, once more
// with survey true (the address is the one compose chose).
func (s *Store) EmailResolvedSurvey(ctx context.Context, period time.Duration,
	compose func(t Ticket, thread []EmailMessage, resolution string, survey bool) (EmailMessage, error)) (ok bool, err error) {
	now := s.now()
	err = s.inTx(ctx, "e-mail resolved", func(tx *store.Tx) error {
		var id int64
		var number, payload string
		err := tx.QueryRowContext(ctx, `SELECT id, ticket, payload FROM outbox WHERE kind = 'email.resolved' AND sent_ns IS NULL
			AND next_ns <= ? ORDER BY next_ns, id LIMIT 1`+s.db.SkipLocked(), now.UnixNano()).Scan(&id, &number, &payload)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		var p struct {
			Resolution string `json:"resolution"`
		}
		_ = json.Unmarshal([]byte(payload), &p)
		t, err := scanTicket(tx.QueryRowContext(ctx, `SELECT `+ticketColumns+` FROM tickets WHERE number = ?`, number))
		if err != nil {
			return err
		}
		thread, err := emailThread(ctx, tx, number)
		if err != nil {
			return err
		}
		out, err := compose(t, thread, p.Resolution, false)
		if err == nil && period > 0 && t.Rating == 0 && out.Address != "" {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM surveys WHERE ticket = ? OR (number = ? AND created_ns > ?)`,
				number, strings.ToLower(out.Address), now.Add(-period).UnixNano()).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				if out, err = compose(t, thread, p.Resolution, true); err == nil {
					if _, err := tx.ExecContext(ctx, `INSERT INTO surveys (ticket, number, result, created_ns, updated_ns) VALUES (?, ?, '', ?, ?)`,
						number, strings.ToLower(out.Address), now.UnixNano(), now.UnixNano()); err != nil {
						return err
					}
				}
			}
		}
		if err == nil {
			out.Ticket, out.Direction, out.At = number, EmailOut, now
			if out.Kind == "" {
				out.Kind = EmailResolvedNotice
			}
			if _, err = insertEmail(ctx, tx, out); err != nil {
				return err
			}
		}
		// Sent: the e-mail is queued (or, with no address to write to,
		// there is nothing to send: the reason is kept).
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		_, err = tx.ExecContext(ctx, `UPDATE outbox SET attempts = attempts + 1, sent_ns = ?, last_error = ? WHERE id = ?`, now.UnixNano(), msg, id)
		ok = err == nil
		return err
	})
	if err != nil {
		return false, fmt.Errorf("tickets: e-mail resolved: %w", err)
	}
	return ok, nil
}
