package tickets

import (
	"context"
	"fmt"
	"time"
)

// FeedItem is one line of the live feed of every call: a call event or a
// transcript turn, as `ivrctl calls tail` follows them.
type FeedItem struct {
	CallID string     `json:"call_id"`
	At     time.Time  `json:"at"`
	Event  *CallEvent `json:"event,omitempty"`
	Turn   *Turn      `json:"turn,omitempty"`
}

// FeedCursor is where a reader of the feed stands: the last call event
// and transcript turn it has seen.
type FeedCursor struct {
	Event, Turn int64
}

// FeedStart returns the cursor at the end of the feed now: a reader that
// starts there sees only what happens next.
func (s *Store) FeedStart(ctx context.Context) (FeedCursor, error) {
	var c FeedCursor
	err := s.db.QueryRowContext(ctx,
		`SELECT (SELECT COALESCE(MAX(seq), 0) FROM call_events), (SELECT COALESCE(MAX(seq), 0) FROM transcript_turns)`).Scan(&c.Event, &c.Turn)
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
	rows, err := s.db.QueryContext(ctx,
		`SELECT seq, call_id, at_ns, kind, detail FROM call_events WHERE seq > ? ORDER BY seq LIMIT ?`, cur.Event, limit)
	if err != nil {
		return nil, cur, fmt.Errorf("tickets: feed: %w", err)
	}
	for rows.Next() {
		var e CallEvent
		var it FeedItem
		var at int64
		if err := rows.Scan(&cur.Event, &it.CallID, &at, &e.Kind, &e.Detail); err != nil {
			rows.Close()
			return nil, cur, fmt.Errorf("tickets: feed: %w", err)
		}
		e.At = fromNanos(at)
		it.At, it.Event = e.At, &e
		items = append(items, it)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, cur, fmt.Errorf("tickets: feed: %w", err)
	}
	rows, err = s.db.QueryContext(ctx,
		`SELECT seq, call_id, at_ns, speaker, text, mode, confidence, interrupted, cut FROM transcript_turns WHERE seq > ? ORDER BY seq LIMIT ?`, cur.Turn, limit)
	if err != nil {
		return nil, cur, fmt.Errorf("tickets: feed: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t Turn
		var it FeedItem
		var at int64
		var interrupted int
		if err := rows.Scan(&cur.Turn, &it.CallID, &at, &t.Speaker, &t.Text, &t.Mode, &t.Confidence, &interrupted, &t.Cut); err != nil {
			return nil, cur, fmt.Errorf("tickets: feed: %w", err)
		}
		t.At, t.Interrupted = fromNanos(at), interrupted != 0
		it.At, it.Turn = t.At, &t
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, cur, fmt.Errorf("tickets: feed: %w", err)
	}
	sortFeed(items)
	return items, cur, nil
}

// sortFeed orders items by time, keeping the order of insertion for ties.
func sortFeed(items []FeedItem) {
	for i := 1; i < len(items); i++ {
		for j := i; j > 0 && items[j].At.Before(items[j-1].At); j-- {
			items[j], items[j-1] = items[j-1], items[j]
		}
	}
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
