package tickets

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/govline/ivr/store"
)

// FeedItem is one line of the live feed of every call: a call event or a
// transcript turn, as `ivrctl calls tail` follows them.
type FeedItem struct {
	CallID string     `json:"call_id"`
	At     time.Time  `json:"at"`
	Event  *CallEvent `json:"event,omitempty"`
	Turn   *Turn      `json:"turn,omitempty"`
}

// FeedCursor is where a reader of the feed stands in the call events and
// in the transcript turns. Keep it between reads; its zero value is the
// beginning of the feed.
type FeedCursor struct {
	Event, Turn LogCursor
}

// LogCursor is where a reader stands in one append-only log (call events,
// transcript turns, ticket events). On SQLite rows commit in the order of
// their ids, so the last id read is enough; on PostgreSQL, where engines
// commit at once and a row may commit after a row with a higher id, the
// reader takes only the rows of the transactions older than every
// transaction still running, and the cursor remembers that horizon, so no
// row is ever skipped.
type LogCursor struct {
	Xact int64 `json:"xact,omitempty"` // PostgreSQL: rows of transactions before this one were all read
	ID   int64 `json:"id"`             // the last row read (in Xact, on PostgreSQL)
}

// horizon is the oldest transaction still running: every row of an older
// transaction is committed (or never will be).
const horizon = `pg_snapshot_xmin(pg_current_snapshot())::text::bigint`

// logStart is the cursor at the end of log table (with id column idCol)
// now: a reader that starts there sees only what is written next.
func (s *Store) logStart(ctx context.Context, table, idCol string) (LogCursor, error) {
	var c LogCursor
	if s.db.Backend() == store.Postgres {
		return c, s.db.QueryRowContext(ctx, `SELECT `+horizon).Scan(&c.Xact)
	}
	return c, s.db.QueryRowContext(ctx, `SELECT coalesce(max(`+idCol+`), 0) FROM `+table).Scan(&c.ID)
}

// readLog reads the rows of log table written after cur, in commit order,
// at most limit: cols are selected after the row's id, dest gives the
// values to scan them into for the next row and add takes the row. It
// returns the cursor after what it read.
func (s *Store) readLog(ctx context.Context, table, idCol, cols string, cur LogCursor, limit int,
	dest func() []any, add func()) (LogCursor, error) {
	var rows *sql.Rows
	var err error
	if s.db.Backend() == store.Postgres {
		rows, err = s.db.QueryContext(ctx, `WITH h AS (SELECT `+horizon+` AS x)
			SELECT `+idCol+`, xid, h.x, `+cols+` FROM `+table+`, h
			WHERE xid < h.x AND (xid > ? OR (xid = ? AND `+idCol+` > ?))
			ORDER BY xid, `+idCol+` LIMIT ?`, cur.Xact, cur.Xact, cur.ID, limit)
	} else {
		rows, err = s.db.QueryContext(ctx, `SELECT `+idCol+`, 0, 0, `+cols+` FROM `+table+`
			WHERE `+idCol+` > ? ORDER BY `+idCol+` LIMIT ?`, cur.ID, limit)
	}
	if err != nil {
		return cur, err
	}
	defer rows.Close()
	n := 0
	var id, xact, x int64
	for rows.Next() {
		if err := rows.Scan(append([]any{&id, &xact, &x}, dest()...)...); err != nil {
			return cur, err
		}
		add()
		n++
		cur = LogCursor{Xact: xact, ID: id}
	}
	if err := rows.Err(); err != nil {
		return cur, err
	}
	if s.db.Backend() == store.Postgres && n < limit {
		// Everything before the horizon is read: start there next time.
		if n == 0 {
			if err := s.db.QueryRowContext(ctx, `SELECT `+horizon).Scan(&x); err != nil {
				return cur, err
			}
		}
		if x > cur.Xact {
			cur = LogCursor{Xact: x}
		}
	}
	return cur, nil
}

// FeedStart returns the cursor at the end of the feed now: a reader that
// starts there sees only what happens next.
func (s *Store) FeedStart(ctx context.Context) (FeedCursor, error) {
	var c FeedCursor
	var err error
	if c.Event, err = s.logStart(ctx, "call_events", "seq"); err == nil {
		c.Turn, err = s.logStart(ctx, "transcript_turns", "seq")
	}
	if err != nil {
		return c, fmt.Errorf("tickets: feed start: %w", err)
	}
	return c, nil
}

// Feed returns what was written after cur, at most limit events and limit
// turns, in time order, and the cursor after them.
func (s *Store) Feed(ctx context.Context, cur FeedCursor, limit int) ([]FeedItem, FeedCursor, error) {
	if limit <= 0 {
		limit = 1000
	}
	var items []FeedItem
	var (
		it FeedItem
		e  CallEvent
		at int64
	)
	next, err := s.readLog(ctx, "call_events", "seq", "call_id, at_ns, kind, detail", cur.Event, limit,
		func() []any { return []any{&it.CallID, &at, &e.Kind, &e.Detail} },
		func() {
			e.At = fromNanos(at)
			ev := e
			items = append(items, FeedItem{CallID: it.CallID, At: e.At, Event: &ev})
		})
	if err != nil {
		return nil, cur, fmt.Errorf("tickets: feed: %w", err)
	}
	cur.Event = next
	turns, next, err := s.readTurns(ctx, cur.Turn, limit)
	if err != nil {
		return nil, cur, fmt.Errorf("tickets: feed: %w", err)
	}
	items = append(items, turns...)
	cur.Turn = next
	sortFeed(items)
	return items, cur, nil
}

// TurnsStart returns the cursor at the end of every transcript now.
func (s *Store) TurnsStart(ctx context.Context) (LogCursor, error) {
	c, err := s.logStart(ctx, "transcript_turns", "seq")
	if err != nil {
		return c, fmt.Errorf("tickets: turns start: %w", err)
	}
	return c, nil
}

// Turns returns the transcript turns of every call written after cur, in
// commit order, at most limit (1000 when 0 or less), and the cursor after
// them: how the engine holding a web chat learns of the agents' messages
// written on another engine.
func (s *Store) Turns(ctx context.Context, cur LogCursor, limit int) ([]FeedItem, LogCursor, error) {
	if limit <= 0 {
		limit = 1000
	}
	items, next, err := s.readTurns(ctx, cur, limit)
	if err != nil {
		return nil, cur, fmt.Errorf("tickets: turns: %w", err)
	}
	return items, next, nil
}

func (s *Store) readTurns(ctx context.Context, cur LogCursor, limit int) ([]FeedItem, LogCursor, error) {
	var (
		items     []FeedItem
		callID    string
		t         Turn
		at, began int64
		interr    int
	)
	next, err := s.readLog(ctx, "transcript_turns", "seq", "call_id, at_ns, began_ns, speaker, text, mode, confidence, interrupted, cut", cur, limit,
		func() []any {
			return []any{&callID, &at, &began, &t.Speaker, &t.Text, &t.Mode, &t.Confidence, &interr, &t.Cut}
		},
		func() {
			t.At, t.Began, t.Interrupted = fromNanos(at), fromBeganNanos(began), interr != 0
			tu := t
			items = append(items, FeedItem{CallID: callID, At: t.At, Turn: &tu})
		})
	return items, next, err
}

// sortFeed orders items by time, keeping the order of insertion for ties.
func sortFeed(items []FeedItem) {
	for i := 1; i < len(items); i++ {
		for j := i; j > 0 && items[j].At.Before(items[j-1].At); j-- {
			items[j], items[j-1] = items[j-1], items[j]
		}
	}
}

// TicketChange is one entry of a ticket's history as the live views
// follow them: which ticket, what happened, who did it.
type TicketChange struct {
	ID     int64     `json:"id"`
	Ticket string    `json:"ticket"`
	Kind   EventKind `json:"kind"`
	Actor  string    `json:"actor"`
}

// TicketChangesStart returns the cursor at the end of every ticket's
// history now.
func (s *Store) TicketChangesStart(ctx context.Context) (LogCursor, error) {
	c, err := s.logStart(ctx, "ticket_events", "id")
	if err != nil {
		return c, fmt.Errorf("tickets: ticket changes start: %w", err)
	}
	return c, nil
}

// TicketChanges returns the ticket events written after cur, at most limit,
// and the cursor after them.
func (s *Store) TicketChanges(ctx context.Context, cur LogCursor, limit int) ([]TicketChange, LogCursor, error) {
	var out []TicketChange
	var c TicketChange
	next, err := s.readLog(ctx, "ticket_events", "id", "id, ticket, kind, actor", cur, limit,
		func() []any { return []any{&c.ID, &c.Ticket, &c.Kind, &c.Actor} },
		func() { out = append(out, c) })
	if err != nil {
		return nil, cur, fmt.Errorf("tickets: ticket changes: %w", err)
	}
	return out, next, nil
}

// TicketsOfCall returns the tickets a call opened, oldest first.
func (s *Store) TicketsOfCall(ctx context.Context, callID string) ([]Ticket, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT number FROM tickets WHERE call_id = ? ORDER BY created_ns, number`, callID)
	if err != nil {
		return nil, fmt.Errorf("tickets: tickets of call %q: %w", callID, err)
	}
	var numbers []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, fmt.Errorf("tickets: tickets of call %q: %w", callID, err)
		}
		numbers = append(numbers, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("tickets: tickets of call %q: %w", callID, err)
	}
	out := make([]Ticket, 0, len(numbers))
	for _, n := range numbers {
		t, err := s.Ticket(ctx, n)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}
