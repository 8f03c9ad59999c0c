package tickets

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/govline/ivr/store"
)

// ticketPolicy is what ticket writes need besides the database.
type ticketPolicy struct {
	deadlines *Deadlines
	now       func() time.Time
	numbers   func() (string, error) // draws a new ticket number
}

var defaultPolicy = func() *ticketPolicy {
	dl, err := NewDeadlines(DeadlineConfig{}, DefaultCalendar())
	if err != nil {
		panic("tickets: default deadlines: " + err.Error()) // the defaults are constants
	}
	return &ticketPolicy{deadlines: dl, now: time.Now, numbers: newNumber}
}()

func (s *Store) pol() *ticketPolicy {
	if p := s.policy.Load(); p != nil {
		return p
	}
	return defaultPolicy
}

// SetDeadlines sets the deadline table (and its calendar) used from now on
// for new tickets and priority or service changes. Deadlines already set
// stay as they were written.
func (s *Store) SetDeadlines(dl *Deadlines) {
	s.setPolicy(func(p *ticketPolicy) { p.deadlines = dl })
}

// setPolicy changes a copy of the policy and swaps it in.
func (s *Store) setPolicy(change func(*ticketPolicy)) {
	for {
		old := s.policy.Load()
		p := *defaultPolicy
		if old != nil {
			p = *old
		}
		change(&p)
		if s.policy.CompareAndSwap(old, &p) {
			return
		}
	}
}

// Deadlines returns the deadline table in use.
func (s *Store) Deadlines() *Deadlines { return s.pol().deadlines }

// SetClock replaces the clock that stamps ticket events (tests, imports of
// historical data). Transcript turns and calls carry their own times.
func (s *Store) SetClock(now func() time.Time) {
	s.setPolicy(func(p *ticketPolicy) { p.now = now })
}

// SetNumbers replaces how new ticket numbers are drawn (random by
// default): tests and the flow simulator give SequentialNumbers, so that
// the numbers a conversation says are the same on every run. next must
// return valid numbers (ValidNumber); a number already taken is drawn
// again, at most maxNumberDraws times.
func (s *Store) SetNumbers(next func() (string, error)) {
	s.setPolicy(func(p *ticketPolicy) { p.numbers = next })
}

// now returns the clock's time, rounded to what the store keeps.
func (s *Store) now() time.Time { return fromNanos(s.pol().now().UnixNano()) }

// maxNumberDraws is how many random numbers OpenTicket tries before it
// gives up (the space holds 9 million numbers; at a million tickets a draw
// collides one time in nine).
const maxNumberDraws = 20

// OpenTicket opens a ticket: it draws a number, computes the deadline and
// writes the "created" event and the ticket in one transaction.
func (s *Store) OpenTicket(ctx context.Context, nt NewTicket) (Ticket, error) {
	const op = "open ticket"
	nt = nt.WithDefaults()
	if err := nt.Validate(); err != nil {
		return Ticket{}, fmt.Errorf("tickets: %s: %w", op, err)
	}
	now := s.now()
	d := s.createdData(nt, now)
	var t Ticket
	err := s.inTx(ctx, op, func(tx *store.Tx) error {
		var err error
		t, err = s.openTx(ctx, tx, nt, d, now)
		return err
	})
	if err != nil {
		return Ticket{}, wrapOp(op, err)
	}
	return t, nil
}

// openTx is OpenTicket's work inside the caller's transaction (nt
// validated, d built from it).
func (s *Store) openTx(ctx context.Context, tx *store.Tx, nt NewTicket, d EventData, now time.Time) (Ticket, error) {
	var t Ticket
	err := func() error {
		if d.Provider == "" {
			var called string
			if nt.CallID != "" {
				err := tx.QueryRowContext(ctx, `SELECT called FROM calls WHERE id = ?`, nt.CallID).Scan(&called)
				if err != nil && !errors.Is(err, sql.ErrNoRows) {
					return err
				}
			}
			p, err := providerFor(ctx, tx, called, nt.Service)
			if err != nil {
				return err
			}
			d.Provider = p
		} else if err := providerExists(ctx, tx, d.Provider); err != nil {
			return invalid("provider", "%v", err)
		}
		draw := s.pol().numbers
		if nt.Number != "" {
			draw = func() (string, error) { return nt.Number, nil }
		}
		for range maxNumberDraws {
			number, err := draw()
			if err != nil {
				return err
			}
			ev := TicketEvent{Ticket: number, At: now, Actor: nt.Actor, Kind: EventCreated, Data: d}
			// A savepoint so that a number already taken undoes only this try.
			if _, err := tx.ExecContext(ctx, `SAVEPOINT draw`); err != nil {
				return err
			}
			id, err := insertEvent(ctx, tx, d.Provider, ev)
			if err != nil {
				return err
			}
			ev.ID = id
			t = Ticket{}
			apply(&t, ev.Kind, ev.Data, ev)
			err = writeTicket(ctx, tx, t, true)
			if store.IsUnique(err) {
				if nt.Number != "" {
					return invalid("number", "%s is taken", nt.Number)
				}
				if _, err := tx.ExecContext(ctx, `ROLLBACK TO draw`); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `RELEASE draw`)
			return err
		}
		return fmt.Errorf("no free ticket number after %d draws", maxNumberDraws)
	}()
	return t, err
}

// createdData is the data of a "created" event for nt (with defaults,
// validated) opened at now.
func (s *Store) createdData(nt NewTicket, now time.Time) EventData {
	return EventData{
		Channel: nt.Channel, Caller: nt.Caller, Lang: nt.Lang, Description: nt.Description,
		CallID: nt.CallID, Articles: dedup(nt.Articles), Service: nt.Service,
		Classification: nt.Classification, Priority: nt.Priority, Level: nt.Level,
		Recording: nt.Recording, Personal: maps.Clone(nt.Personal), Provider: nt.Provider,
		DeadlineNS: s.pol().deadlines.Deadline(now, nt.Service, nt.Priority).UnixNano(),
	}
}

func dedup(ss []string) []string {
	var out []string
	for _, s := range ss {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// action computes the event to append to ticket cur, or an error. A nil
// event with a nil error means "nothing changes".
type action func(ctx context.Context, tx *store.Tx, cur *Ticket, now time.Time) (*TicketEvent, error)

// act runs one change of a ticket: it reads the current state, lets fn
// validate it and build the event, appends the event and writes the new
// state, all in one transaction.
func (s *Store) act(ctx context.Context, op, number, actor string, fn action) error {
	op = op + " " + number
	if err := checkActor(actor); err != nil {
		return fmt.Errorf("tickets: %s: %w", op, err)
	}
	err := s.inTx(ctx, op, func(tx *store.Tx) error {
		_, err := s.actTx(ctx, tx, number, actor, fn)
		return err
	})
	if err != nil {
		return wrapOp(op, err)
	}
	return nil
}

// actTx is act's work inside the caller's transaction; it returns the
// ticket's state after the change.
func (s *Store) actTx(ctx context.Context, tx *store.Tx, number, actor string, fn action) (Ticket, error) {
	var next Ticket
	err := func() error {
		// The row stays locked until the commit: changes of one ticket,
		// from any engine, take turns.
		cur, err := scanTicket(tx.QueryRowContext(ctx, `SELECT `+ticketColumns+` FROM tickets WHERE number = ?`+s.db.ForUpdate(), number))
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("ticket %w", ErrNotFound)
		}
		if err != nil {
			return err
		}
		if p, ok := ctx.Value(providerKey{}).(string); ok && cur.Provider != p {
			// Checked under the row lock: a transfer that commits first wins.
			return fmt.Errorf("ticket of provider %s: %w", p, ErrNotFound)
		}
		now := s.now()
		ev, err := fn(ctx, tx, &cur, now)
		next = cur
		if err != nil || ev == nil {
			return err
		}
		ev.Ticket, ev.At, ev.Actor = number, now, actor
		id, err := insertEvent(ctx, tx, cur.Provider, *ev)
		if err != nil {
			return err
		}
		ev.ID = id
		if ev.Kind == EventCorrection {
			evs, err := loadEvents(ctx, tx, number)
			if err != nil {
				return err
			}
			next = Replay(evs)
		} else {
			apply(&next, ev.Kind, ev.Data, *ev)
		}
		next.Archived = cur.Archived
		if cur.Archived != nil && next.Status != StatusClosed {
			// A reopen (an agent's, an e-mail reply's) brings it back.
			next.Archived = nil
			if err := insertAudit(ctx, tx, AuditEntry{At: now, User: actor, Action: "ticket_unarchive", Target: number,
				Detail: "reopened: back from the archive", OK: true}); err != nil {
				return err
			}
		}
		return writeTicket(ctx, tx, next, false)
	}()
	return next, err
}

func event(kind EventKind, d EventData) *TicketEvent { return &TicketEvent{Kind: kind, Data: d} }

// open reports whether a ticket in status st is still being worked on.
func isOpen(st Status) bool { return st != StatusResolved && st != StatusClosed }

func notClosed(cur *Ticket, what string) error {
	if cur.Status == StatusClosed {
		return fmt.Errorf("%w: %s a closed ticket: reopen it first", ErrTransition, what)
	}
	return nil
}

// AddNote appends a note to the ticket's history (any status).
func (s *Store) AddNote(ctx context.Context, number, actor, text string) error {
	return s.act(ctx, "add note to", number, actor, func(_ context.Context, _ *store.Tx, _ *Ticket, _ time.Time) (*TicketEvent, error) {
		if strings.TrimSpace(text) == "" {
			return nil, invalid("text", "empty note")
		}
		return event(EventNote, EventData{Text: text}), nil
	})
}

// Classify sets the ticket's service and classification code; a change of
// service recomputes the deadline from the ticket's creation.
func (s *Store) Classify(ctx context.Context, number, actor string, svc Service, code string) error {
	return s.act(ctx, "classify", number, actor, func(_ context.Context, _ *store.Tx, cur *Ticket, _ time.Time) (*TicketEvent, error) {
		if err := checkEnum("service", svc, Services); err != nil {
			return nil, err
		}
		if err := notClosed(cur, "classify"); err != nil {
			return nil, err
		}
		if svc == cur.Service && code == cur.Classification {
			return nil, nil
		}
		d := EventData{Service: svc, Classification: code}
		if svc != cur.Service {
			d.DeadlineNS = s.pol().deadlines.Deadline(cur.Created, svc, cur.Priority).UnixNano()
		}
		return event(EventClassified, d), nil
	})
}

// SetPriority changes the priority and recomputes the deadline from the
// ticket's creation.
func (s *Store) SetPriority(ctx context.Context, number, actor string, p Priority) error {
	return s.act(ctx, "set priority of", number, actor, func(_ context.Context, _ *store.Tx, cur *Ticket, _ time.Time) (*TicketEvent, error) {
		if err := checkEnum("priority", p, Priorities); err != nil {
			return nil, err
		}
		if err := notClosed(cur, "change the priority of"); err != nil {
			return nil, err
		}
		if p == cur.Priority {
			return nil, nil
		}
		return event(EventPrioritized, EventData{Priority: p,
			DeadlineNS: s.pol().deadlines.Deadline(cur.Created, cur.Service, p).UnixNano()}), nil
	})
}

// Escalate hands the ticket to a higher support level (2 or 3); its status
// becomes escalated.
func (s *Store) Escalate(ctx context.Context, number, actor string, level int) error {
	return s.act(ctx, "escalate", number, actor, func(_ context.Context, _ *store.Tx, cur *Ticket, _ time.Time) (*TicketEvent, error) {
		if err := checkLevel("level", level); err != nil {
			return nil, err
		}
		if !isOpen(cur.Status) {
			return nil, fmt.Errorf("%w: escalate a %s ticket: reopen it first", ErrTransition, cur.Status)
		}
		if level <= cur.Level {
			return nil, fmt.Errorf("%w: escalate to level %d: the ticket is at level %d; escalation goes up", ErrTransition, level, cur.Level)
		}
		return event(EventEscalated, EventData{Level: level}), nil
	})
}

// Assign gives the ticket to an agent ("" unassigns it).
func (s *Store) Assign(ctx context.Context, number, actor, assignee string) error {
	return s.act(ctx, "assign", number, actor, func(_ context.Context, _ *store.Tx, cur *Ticket, _ time.Time) (*TicketEvent, error) {
		if err := notClosed(cur, "assign"); err != nil {
			return nil, err
		}
		if assignee == cur.Assignee {
			return nil, nil
		}
		return event(EventAssigned, EventData{Assignee: assignee}), nil
	})
}

// SetStatus moves an open ticket to in_progress or waiting (for the
// citizen). The other statuses have their own methods: Escalate, Resolve,
// Close, Reopen.
func (s *Store) SetStatus(ctx context.Context, number, actor string, st Status) error {
	return s.act(ctx, "set status of", number, actor, func(_ context.Context, _ *store.Tx, cur *Ticket, _ time.Time) (*TicketEvent, error) {
		if err := checkEnum("status", st, Statuses); err != nil {
			return nil, err
		}
		switch st {
		case StatusNew:
			return nil, fmt.Errorf("%w: %s -> new: a ticket is new only when opened", ErrTransition, cur.Status)
		case StatusEscalated, StatusResolved, StatusClosed:
			m := map[Status]string{StatusEscalated: "Escalate (with a level)", StatusResolved: "Resolve (with a note)", StatusClosed: "Close"}[st]
			return nil, fmt.Errorf("%w: %s -> %s: use %s", ErrTransition, cur.Status, st, m)
		}
		if !isOpen(cur.Status) {
			return nil, fmt.Errorf("%w: %s -> %s: reopen the ticket first", ErrTransition, cur.Status, st)
		}
		if st == cur.Status {
			return nil, nil
		}
		return event(EventStatus, EventData{Status: st}), nil
	})
}

// Resolve resolves an open ticket with a resolution note (required). The
// resolution counts as first contact when the ticket's call had not ended
// yet, it is at level 1 and was never escalated.
func (s *Store) Resolve(ctx context.Context, number, actor, note string) error {
	return s.act(ctx, "resolve", number, actor, func(ctx context.Context, tx *store.Tx, cur *Ticket, now time.Time) (*TicketEvent, error) {
		if !isOpen(cur.Status) {
			return nil, fmt.Errorf("%w: resolve a %s ticket", ErrTransition, cur.Status)
		}
		if strings.TrimSpace(note) == "" {
			return nil, fmt.Errorf("%w: resolve: a resolution needs a note saying what was done", ErrTransition)
		}
		d := EventData{Text: note}
		if cur.CallID != "" {
			var end sql.NullInt64
			err := tx.QueryRowContext(ctx, `SELECT end_ns FROM calls WHERE id = ?`, cur.CallID).Scan(&end)
			switch {
			case errors.Is(err, sql.ErrNoRows):
			case err != nil:
				return nil, err
			default:
				d.DuringCall = !end.Valid || now.UnixNano() <= end.Int64
			}
		}
		return event(EventResolved, d), nil
	})
}

// CloseTicket closes a resolved ticket. (Close closes the store.)
func (s *Store) CloseTicket(ctx context.Context, number, actor string) error {
	return s.act(ctx, "close", number, actor, func(_ context.Context, _ *store.Tx, cur *Ticket, _ time.Time) (*TicketEvent, error) {
		if cur.Status != StatusResolved {
			return nil, fmt.Errorf("%w: %s -> closed: only a resolved ticket closes", ErrTransition, cur.Status)
		}
		return event(EventClosed, EventData{}), nil
	})
}

// Reopen takes a resolved or closed ticket back to in_progress; the
// reason is required. Its earlier resolution no longer counts.
func (s *Store) Reopen(ctx context.Context, number, actor, reason string) error {
	return s.act(ctx, "reopen", number, actor, func(_ context.Context, _ *store.Tx, cur *Ticket, _ time.Time) (*TicketEvent, error) {
		if isOpen(cur.Status) {
			return nil, fmt.Errorf("%w: reopen a %s ticket: only resolved or closed tickets reopen", ErrTransition, cur.Status)
		}
		if strings.TrimSpace(reason) == "" {
			return nil, fmt.Errorf("%w: reopen: say why (reason)", ErrTransition)
		}
		return event(EventReopened, EventData{Text: reason}), nil
	})
}

// CiteArticle records a knowledge base article given to the caller. An
// article already cited is not added again.
func (s *Store) CiteArticle(ctx context.Context, number, actor, article string) error {
	return s.act(ctx, "cite article in", number, actor, func(_ context.Context, _ *store.Tx, cur *Ticket, _ time.Time) (*TicketEvent, error) {
		if strings.TrimSpace(article) == "" {
			return nil, invalid("article", "empty article id")
		}
		if slices.Contains(cur.Articles, article) {
			return nil, nil
		}
		return event(EventArticleCited, EventData{Article: article}), nil
	})
}

// AttachRecording links the call recording (a path under the data
// directory) to the ticket.
func (s *Store) AttachRecording(ctx context.Context, number, actor, path string) error {
	return s.act(ctx, "attach recording to", number, actor, func(_ context.Context, _ *store.Tx, cur *Ticket, _ time.Time) (*TicketEvent, error) {
		if strings.TrimSpace(path) == "" {
			return nil, invalid("recording", "empty path")
		}
		if path == cur.Recording {
			return nil, nil
		}
		return event(EventRecording, EventData{Recording: path}), nil
	})
}

// Rate records the citizen's satisfaction, 1 (worst) to 5 (best).
func (s *Store) Rate(ctx context.Context, number, actor string, rating int) error {
	return s.act(ctx, "rate", number, actor, func(_ context.Context, _ *store.Tx, _ *Ticket, _ time.Time) (*TicketEvent, error) {
		if rating < 1 || rating > 5 {
			return nil, invalid("rating", "%d, want 1 to 5", rating)
		}
		return event(EventRating, EventData{Rating: rating}), nil
	})
}

// Correction replaces the content of an earlier event. Which fields count
// depends on the kind of the event corrected:
//
//	created        Text (the description)
//	note           Text, or Retract
//	resolved       Text (the resolution note)
//	reopened       Text (the reason)
//	classified     Service and/or Classification
//	prioritized    Priority
//	assigned       Assignee
//	article_cited  Article, or Retract
//	recording      Recording
//	rating         Rating, or Retract
//
// Status changes (status, escalated, closed) are not corrected: the next
// status change is the correction.
type Correction struct {
	Reason         string // why; kept in the history
	Text           string
	Service        Service
	Classification string
	Priority       Priority
	Assignee       string
	Article        string
	Recording      string
	Rating         int
	Retract        bool
}

// Correct appends a correction that supersedes the event eventID of the
// ticket (an original event or an earlier correction of it). The event
// itself stays in the history; the ticket's state is replayed from the log
// with the correction in the place of the event it supersedes.
func (s *Store) Correct(ctx context.Context, number, actor string, eventID int64, c Correction) error {
	return s.act(ctx, "correct", number, actor, func(ctx context.Context, tx *store.Tx, cur *Ticket, _ time.Time) (*TicketEvent, error) {
		target, err := scanEvent(tx.QueryRowContext(ctx, `SELECT `+eventColumns+` FROM ticket_events WHERE id = ? AND ticket = ?`, eventID, cur.Number))
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("event %d of ticket %s: %w", eventID, cur.Number, ErrNotFound)
		}
		if err != nil {
			return nil, err
		}
		kind, d := target.Kind, target.Data
		if kind == EventCorrection {
			kind = d.Replaces
		}
		d.Replaces, d.Reason, d.Retracted = kind, c.Reason, false
		needText := func(field string) error {
			if strings.TrimSpace(c.Text) == "" {
				return invalid("text", "empty %s", field)
			}
			return nil
		}
		recompute := false
		switch kind {
		case EventCreated:
			if err := needText("description"); err != nil {
				return nil, err
			}
			d.Description = c.Text
		case EventNote:
			if d.Hold != "" {
				return nil, fmt.Errorf("%w: a legal hold is not corrected: lift it with Unhold (ivrctl tickets unhold)", ErrTransition)
			}
			if c.Retract {
				d.Retracted = true
			} else if err := needText("note"); err != nil {
				return nil, err
			} else {
				d.Text = c.Text
			}
		case EventResolved, EventReopened:
			if err := needText(string(kind) + " note"); err != nil {
				return nil, err
			}
			d.Text = c.Text
		case EventClassified:
			if c.Service == "" && c.Classification == "" {
				return nil, invalid("service", "give a service or a classification")
			}
			if c.Service != "" {
				if err := checkEnum("service", c.Service, Services); err != nil {
					return nil, err
				}
				d.Service, recompute = c.Service, true
			}
			if c.Classification != "" {
				d.Classification = c.Classification
			}
		case EventPrioritized:
			if err := checkEnum("priority", c.Priority, Priorities); err != nil {
				return nil, err
			}
			d.Priority, recompute = c.Priority, true
		case EventAssigned:
			d.Assignee = c.Assignee
		case EventArticleCited:
			if c.Retract {
				d.Retracted = true
			} else if strings.TrimSpace(c.Article) == "" {
				return nil, invalid("article", "empty article id")
			} else {
				d.Article = c.Article
			}
		case EventRecording:
			if strings.TrimSpace(c.Recording) == "" {
				return nil, invalid("recording", "empty path")
			}
			d.Recording = c.Recording
		case EventRating:
			if c.Retract {
				d.Retracted = true
			} else if c.Rating < 1 || c.Rating > 5 {
				return nil, invalid("rating", "%d, want 1 to 5", c.Rating)
			} else {
				d.Rating = c.Rating
			}
		default:
			return nil, fmt.Errorf("%w: a %s event is not corrected; the next status change corrects it", ErrTransition, kind)
		}
		if recompute {
			// The deadline of the corrected ticket: replay the log with
			// this correction, then count from the creation.
			evs, err := loadEvents(ctx, tx, cur.Number)
			if err != nil {
				return nil, err
			}
			trial := append(evs, TicketEvent{ID: 1 << 62, Kind: EventCorrection, Data: d, Supersedes: eventID, At: cur.Updated})
			t := Replay(trial)
			d.DeadlineNS = s.pol().deadlines.Deadline(t.Created, t.Service, t.Priority).UnixNano()
			d.Recomputed = true
		} else {
			d.Recomputed = false
			d.DeadlineNS = 0
			if kind == EventCreated || kind == EventClassified || kind == EventPrioritized {
				d.DeadlineNS = target.Data.DeadlineNS
			}
		}
		ev := event(EventCorrection, d)
		ev.Supersedes = eventID
		return ev, nil
	})
}

// apply folds one event into t. d is the event's effective data (the
// newest correction's, when it was corrected); ev gives its id and time.
func apply(t *Ticket, kind EventKind, d EventData, ev TicketEvent) {
	at := ev.At
	if !d.Retracted {
		switch kind {
		case EventCreated:
			*t = Ticket{
				Number: ev.Ticket, Channel: d.Channel, Caller: d.Caller, Lang: d.Lang,
				Service: d.Service, Classification: d.Classification, Priority: d.Priority,
				Level: d.Level, Status: StatusNew, Description: d.Description, CallID: d.CallID,
				Recording: d.Recording, Articles: slices.Clone(d.Articles), Created: at, Personal: maps.Clone(d.Personal),
				Provider: d.Provider,
			}
			if t.Provider == "" {
				t.Provider = DefaultProvider // opened before providers existed
			}
			if t.Articles == nil {
				t.Articles = []string{}
			}
		case EventNote:
			switch d.Hold {
			case HoldOn:
				t.Hold = true
			case HoldOff:
				t.Hold = false
			}
		case EventClassified:
			t.Service, t.Classification = d.Service, d.Classification
		case EventPrioritized:
			t.Priority = d.Priority
		case EventEscalated:
			t.Level, t.Status, t.Escalated = d.Level, StatusEscalated, true
		case EventAssigned:
			t.Assignee = d.Assignee
		case EventStatus:
			t.Status = d.Status
		case EventResolved:
			r := at
			t.Status, t.Resolved, t.ResolvedLevel = StatusResolved, &r, t.Level
			t.FirstContact = d.DuringCall && t.Level == Level1 && !t.Escalated && t.CallID != ""
		case EventClosed:
			c := at
			t.Status, t.Closed = StatusClosed, &c
		case EventReopened:
			t.Status, t.Resolved, t.ResolvedLevel, t.FirstContact, t.Closed = StatusInProgress, nil, 0, false, nil
		case EventArticleCited:
			if !slices.Contains(t.Articles, d.Article) {
				t.Articles = append(t.Articles, d.Article)
			}
		case EventRecording:
			t.Recording = d.Recording
		case EventRating:
			t.Rating = d.Rating
		case EventTransfer:
			// The new provider starts it over at level I, in its queue.
			t.Provider, t.Level, t.Status, t.Assignee = d.To, Level1, StatusNew, ""
		}
		if d.DeadlineNS != 0 {
			t.Deadline = fromNanos(d.DeadlineNS)
		}
	}
	t.Updated = ev.At
	t.LastEvent = ev.ID
}

// Replay derives a ticket's state from its history (events in id order):
// each event is folded in with the data of its newest correction (a
// retraction skips it), and a correction that recomputed the deadline sets
// it again at its own place. The tickets row must always equal it.
func Replay(evs []TicketEvent) Ticket {
	newest := map[int64]*TicketEvent{} // event id -> newest correction of it
	for i := range evs {
		if e := &evs[i]; e.Kind == EventCorrection {
			if c := newest[e.Supersedes]; c == nil || e.ID > c.ID {
				newest[e.Supersedes] = e
			}
		}
	}
	var t Ticket
	for _, e := range evs {
		if e.Kind == EventCorrection {
			// The correction's own place: its time, and the deadline it
			// recomputed from the whole corrected ticket (events between
			// the original and the correction had computed theirs from
			// the uncorrected service or priority).
			if e.Data.Recomputed {
				t.Deadline = fromNanos(e.Data.DeadlineNS)
			}
			t.Updated, t.LastEvent = e.At, e.ID
			continue
		}
		d := e.Data
		if end := chainEnd(newest, e.ID); end != e.ID {
			d = findEvent(evs, end).Data
		}
		apply(&t, e.Kind, d, e)
	}
	return t
}

// chainEnd follows the newest corrections from id to the last one.
func chainEnd(newest map[int64]*TicketEvent, id int64) int64 {
	for range len(newest) + 1 {
		c := newest[id]
		if c == nil {
			return id
		}
		id = c.ID
	}
	return id
}

func findEvent(evs []TicketEvent, id int64) TicketEvent {
	i, _ := slices.BinarySearchFunc(evs, id, func(e TicketEvent, id int64) int {
		switch {
		case e.ID < id:
			return -1
		case e.ID > id:
			return 1
		}
		return 0
	})
	return evs[i]
}

const eventColumns = `id, ticket, at_ns, actor, kind, data, supersedes`

// insertEvent appends e to the history and links it into the chain of
// provider, the ticket's provider before the event (chain.go), in the
// caller's transaction.
func insertEvent(ctx context.Context, tx *store.Tx, provider string, e TicketEvent) (int64, error) {
	data, err := json.Marshal(e.Data)
	if err != nil {
		return 0, err
	}
	var sup any
	var sup64 sql.NullInt64
	if e.Supersedes != 0 {
		sup, sup64 = e.Supersedes, sql.NullInt64{Int64: e.Supersedes, Valid: true}
	}
	chain := eventChain(provider)
	// The chain's lock before the insert: its rows' ids grow with its links.
	if err := lockChain(ctx, tx, chain); err != nil {
		return 0, err
	}
	var id int64
	at := e.At.UnixNano()
	err = tx.QueryRowContext(ctx, `INSERT INTO ticket_events (ticket, at_ns, actor, kind, data, supersedes) VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
		e.Ticket, at, e.Actor, string(e.Kind), string(data), sup).Scan(&id)
	if err != nil {
		return 0, err
	}
	err = link(ctx, tx, chain, sourceEvent, id, eventRow(id, e.Ticket, at, e.Actor, string(e.Kind), string(data), sup64))
	return id, err
}

func scanEvent(sc interface{ Scan(...any) error }) (TicketEvent, error) {
	var (
		e    TicketEvent
		at   int64
		kind string
		data string
		sup  sql.NullInt64
	)
	if err := sc.Scan(&e.ID, &e.Ticket, &at, &e.Actor, &kind, &data, &sup); err != nil {
		return TicketEvent{}, err
	}
	e.At, e.Kind, e.Supersedes = fromNanos(at), EventKind(kind), sup.Int64
	if err := json.Unmarshal([]byte(data), &e.Data); err != nil {
		return TicketEvent{}, fmt.Errorf("event %d: data: %w", e.ID, err)
	}
	return e, nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func loadEvents(ctx context.Context, q querier, number string) ([]TicketEvent, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+eventColumns+` FROM ticket_events WHERE ticket = ? ORDER BY id`, number)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	evs := []TicketEvent{}
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		evs = append(evs, e)
	}
	return evs, rows.Err()
}

const ticketColumns = `number, channel, caller, lang, service, classification, priority, level, status,
	assignee, deadline_ns, description, call_id, recording, articles, rating, created_ns, updated_ns,
	escalated, resolved_ns, resolved_level, first_contact, closed_ns, last_event, personal, provider,
	legal_hold, archived_ns`

func writeTicket(ctx context.Context, tx *store.Tx, t Ticket, insert bool) error {
	arts, err := json.Marshal(t.Articles)
	if err != nil {
		return err
	}
	if t.Articles == nil {
		arts = []byte("[]")
	}
	personal := []byte("{}")
	if len(t.Personal) > 0 {
		if personal, err = json.Marshal(t.Personal); err != nil {
			return err
		}
	}
	var rating, resolved, resolvedLevel, closed any
	if t.Rating != 0 {
		rating = t.Rating
	}
	if t.Resolved != nil {
		resolved, resolvedLevel = t.Resolved.UnixNano(), t.ResolvedLevel
	}
	if t.Closed != nil {
		closed = t.Closed.UnixNano()
	}
	args := []any{string(t.Channel), t.Caller, t.Lang, string(t.Service), t.Classification, string(t.Priority),
		t.Level, string(t.Status), t.Assignee, t.Deadline.UnixNano(), t.Description, t.CallID, t.Recording,
		string(arts), rating, t.Created.UnixNano(), t.Updated.UnixNano(), b2i(t.Escalated), resolved,
		resolvedLevel, b2i(t.FirstContact), closed, t.LastEvent, string(personal), t.Provider, b2i(t.Hold)}
	// (In an UPDATE the columns read are the old row's: the new status
	// comes as arguments.)
	closedNow, doneNow := b2i(t.Status == StatusClosed), b2i(!isOpen(t.Status))
	// An open ticket is never in the archive, and what retention removed
	// is looked at again after it closes anew: a reopen clears both.
	q := `UPDATE tickets SET channel = ?, caller = ?, lang = ?, service = ?, classification = ?, priority = ?,
		level = ?, status = ?, assignee = ?, deadline_ns = ?, description = ?, call_id = ?, recording = ?,
		articles = ?, rating = ?, created_ns = ?, updated_ns = ?, escalated = ?, resolved_ns = ?,
		resolved_level = ?, first_contact = ?, closed_ns = ?, last_event = ?, personal = ?, provider = ?, legal_hold = ?,
		archived_ns = CASE WHEN ? = 1 THEN archived_ns END,
		purged_recording_ns = CASE WHEN ? = 1 THEN purged_recording_ns END,
		purged_transcript_ns = CASE WHEN ? = 1 THEN purged_transcript_ns END,
		purged_personal_ns = CASE WHEN ? = 1 THEN purged_personal_ns END
		WHERE number = ?`
	if !insert {
		args = append(args, closedNow, doneNow, doneNow, doneNow, t.Number)
	} else {
		q = `INSERT INTO tickets (channel, caller, lang, service, classification, priority, level, status,
		assignee, deadline_ns, description, call_id, recording, articles, rating, created_ns, updated_ns,
		escalated, resolved_ns, resolved_level, first_contact, closed_ns, last_event, personal, provider, legal_hold, number)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
		args = append(args, t.Number)
	}
	_, err = tx.ExecContext(ctx, q, args...)
	return err
}

func scanTicket(sc interface{ Scan(...any) error }) (Ticket, error) {
	var (
		t                        Ticket
		channel, svc, prio, st   string
		deadline, created, upd   int64
		arts, personal           string
		rating, resolved, rlevel sql.NullInt64
		closed, archived         sql.NullInt64
	)
	err := sc.Scan(&t.Number, &channel, &t.Caller, &t.Lang, &svc, &t.Classification, &prio, &t.Level, &st,
		&t.Assignee, &deadline, &t.Description, &t.CallID, &t.Recording, &arts, &rating, &created, &upd,
		&t.Escalated, &resolved, &rlevel, &t.FirstContact, &closed, &t.LastEvent, &personal, &t.Provider,
		&t.Hold, &archived)
	if err != nil {
		return Ticket{}, err
	}
	t.Channel, t.Service, t.Priority, t.Status = Channel(channel), Service(svc), Priority(prio), Status(st)
	t.Deadline, t.Created, t.Updated = fromNanos(deadline), fromNanos(created), fromNanos(upd)
	t.Rating = int(rating.Int64)
	if resolved.Valid {
		r := fromNanos(resolved.Int64)
		t.Resolved, t.ResolvedLevel = &r, int(rlevel.Int64)
	}
	if closed.Valid {
		c := fromNanos(closed.Int64)
		t.Closed = &c
	}
	if archived.Valid {
		a := fromNanos(archived.Int64)
		t.Archived = &a
	}
	if err := json.Unmarshal([]byte(arts), &t.Articles); err != nil {
		return Ticket{}, fmt.Errorf("ticket %s: articles: %w", t.Number, err)
	}
	if t.Articles == nil {
		t.Articles = []string{}
	}
	if personal != "{}" {
		if err := json.Unmarshal([]byte(personal), &t.Personal); err != nil {
			return Ticket{}, fmt.Errorf("ticket %s: personal: %w", t.Number, err)
		}
	}
	return t, nil
}

// Ticket returns the current state of a ticket, or an error wrapping
// ErrNotFound.
func (s *Store) Ticket(ctx context.Context, number string) (Ticket, error) {
	t, err := scanTicket(s.db.QueryRowContext(ctx, `SELECT `+ticketColumns+` FROM tickets WHERE number = ?`, number))
	if errors.Is(err, sql.ErrNoRows) {
		return Ticket{}, fmt.Errorf("tickets: ticket %q: %w", number, ErrNotFound)
	}
	if err != nil {
		return Ticket{}, fmt.Errorf("tickets: ticket %q: %w", number, err)
	}
	return t, nil
}

// History returns the ticket's events in the order they were written, with
// SupersededBy set on the events a correction replaced. A missing ticket
// gives ErrNotFound.
func (s *Store) History(ctx context.Context, number string) ([]TicketEvent, error) {
	evs, err := loadEvents(ctx, s.db, number)
	if err != nil {
		return nil, fmt.Errorf("tickets: history of %q: %w", number, err)
	}
	if len(evs) == 0 {
		return nil, fmt.Errorf("tickets: history of %q: ticket %w", number, ErrNotFound)
	}
	idx := map[int64]int{}
	for i, e := range evs {
		idx[e.ID] = i
	}
	for _, e := range evs {
		if e.Kind == EventCorrection {
			if i, ok := idx[e.Supersedes]; ok && e.ID > evs[i].SupersededBy {
				evs[i].SupersededBy = e.ID
			}
		}
	}
	return evs, nil
}

// ReplayTicket derives the ticket's state from its history alone, without
// the materialized row: what an auditor checks the row against.
func (s *Store) ReplayTicket(ctx context.Context, number string) (Ticket, error) {
	evs, err := loadEvents(ctx, s.db, number)
	if err != nil {
		return Ticket{}, fmt.Errorf("tickets: replay %q: %w", number, err)
	}
	if len(evs) == 0 {
		return Ticket{}, fmt.Errorf("tickets: replay %q: ticket %w", number, ErrNotFound)
	}
	return Replay(evs), nil
}

// TicketQuery selects tickets for ListTickets. Zero fields do not filter.
type TicketQuery struct {
	// Provider, when set, keeps only that provider's tickets: what its
	// users are shown (the console always sets it).
	Provider string
	Status   Status
	Service  Service
	Caller   string    // exact caller number
	Since    time.Time // created at or after
	Limit    int       // at most this many; 0 or less means no limit
	// Archive searches the archive (the closed tickets the retention job
	// archived) instead of the working tickets; a list never mixes them.
	Archive bool
}

// ListTickets returns the tickets selected by q, newest first.
func (s *Store) ListTickets(ctx context.Context, q TicketQuery) ([]Ticket, error) {
	where := []string{`archived_ns IS NULL`}
	if q.Archive {
		where[0] = `archived_ns IS NOT NULL`
	}
	var args []any
	if q.Provider != "" {
		where, args = append(where, `provider = ?`), append(args, q.Provider)
	}
	if q.Status != "" {
		if err := checkEnum("status", q.Status, Statuses); err != nil {
			return nil, fmt.Errorf("tickets: list tickets: %w", err)
		}
		where, args = append(where, `status = ?`), append(args, string(q.Status))
	}
	if q.Service != "" {
		if err := checkEnum("service", q.Service, Services); err != nil {
			return nil, fmt.Errorf("tickets: list tickets: %w", err)
		}
		where, args = append(where, `service = ?`), append(args, string(q.Service))
	}
	if q.Caller != "" {
		where, args = append(where, `caller = ?`), append(args, q.Caller)
	}
	if !q.Since.IsZero() {
		where, args = append(where, `created_ns >= ?`), append(args, q.Since.UnixNano())
	}
	query := `SELECT ` + ticketColumns + ` FROM tickets WHERE ` + strings.Join(where, ` AND `)
	query += ` ORDER BY created_ns DESC, number`
	if q.Limit > 0 {
		query += ` LIMIT ?`
		args = append(args, q.Limit)
	}
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("tickets: list tickets: %w", err)
	}
	defer rows.Close()
	out := []Ticket{}
	for rows.Next() {
		t, err := scanTicket(rows)
		if err != nil {
			return nil, fmt.Errorf("tickets: list tickets: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("tickets: list tickets: %w", err)
	}
	return out, nil
}

// TicketsByCaller returns the caller's tickets, newest first, at most
// limit (all when limit <= 0): what an agent sees of the caller's past.
func (s *Store) TicketsByCaller(ctx context.Context, caller string, limit int) ([]Ticket, error) {
	if caller == "" {
		return []Ticket{}, nil
	}
	return s.ListTickets(ctx, TicketQuery{Caller: caller, Limit: limit})
}
