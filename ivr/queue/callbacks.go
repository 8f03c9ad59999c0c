package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/govline/ivr/redact"
	"github.com/govline/ivr/store"
)

// Callback is a caller who pressed 1 in a queue to keep their place and
// be called back (table callbacks; docs/queue.md, "Call me back").
type Callback struct {
	ID         int64     `json:"id"`
	Queue      string    `json:"queue"`
	Number     string    `json:"number"` // personal data: LogValue masks it
	Lang       string    `json:"lang"`
	Ticket     string    `json:"ticket"`
	CallID     string    `json:"call_id"` // the call that asked for it
	State      string    `json:"state"`   // CallbackPending, CallbackDone, CallbackFailed, CallbackCancelled
	Attempts   int       `json:"attempts"`
	LastReason string    `json:"last_reason,omitempty"` // the last attempt's result: busy, no_answer...
	Created    time.Time `json:"created"`
	Updated    time.Time `json:"updated"`
}

// Callback states.
const (
	CallbackPending   = "pending"
	CallbackDone      = "done"
	CallbackFailed    = "failed"
	CallbackCancelled = "cancelled"
)

// LogValue keeps the number out of log lines.
func (c Callback) LogValue() slog.Value {
	return slog.GroupValue(slog.Int64("id", c.ID), slog.String("queue", c.Queue), slog.Any("number", redact.Phone(c.Number)),
		slog.String("ticket", c.Ticket), slog.String("state", c.State), slog.Int("attempts", c.Attempts))
}

// ErrUnknownCallback is returned for a callback id that is not pending.
var ErrUnknownCallback = errors.New("no such pending callback")

// Callbacks keeps the callbacks in the line's database. Safe for
// concurrent use; two handles on one database see each other's writes.
type Callbacks struct {
	DB *store.DB
}

// Add records a pending callback and returns its id. Created, when zero,
// is now.
func (s Callbacks) Add(ctx context.Context, cb Callback) (int64, error) {
	if cb.Queue == "" || cb.Number == "" {
		return 0, fmt.Errorf("callback: want a queue and a number")
	}
	if cb.Created.IsZero() {
		cb.Created = time.Now()
	}
	var id int64
	err := s.DB.Write(ctx, func(tx *store.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO callbacks (queue, number, lang, ticket, call_id, state, created_ns, updated_ns)
VALUES (?, ?, ?, ?, ?, 'pending', ?, ?) RETURNING id`,
			cb.Queue, cb.Number, cb.Lang, cb.Ticket, cb.CallID, cb.Created.UnixNano(), time.Now().UnixNano()).Scan(&id)
	})
	return id, err
}

// Attempted records one attempt's result (reason) and the callback's
// state after it: CallbackPending (another attempt follows),
// CallbackDone or CallbackFailed. Only a pending callback changes.
func (s Callbacks) Attempted(ctx context.Context, id int64, reason, state string) error {
	switch state {
	case CallbackPending, CallbackDone, CallbackFailed, CallbackCancelled:
	default:
		return fmt.Errorf("callback %d: state %q is not pending, done, failed or cancelled", id, state)
	}
	return s.DB.Write(ctx, func(tx *store.Tx) error {
		inc := 1
		if reason == "" {
			inc = 0 // a state change without an attempt (cancelled)
		}
		res, err := tx.ExecContext(ctx, `UPDATE callbacks SET attempts = attempts + ?, last_reason = CASE WHEN ? = '' THEN last_reason ELSE ? END,
state = ?, updated_ns = ? WHERE id = ? AND state = 'pending'`, inc, reason, reason, state, time.Now().UnixNano(), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("callback %d: %w", id, ErrUnknownCallback)
		}
		return nil
	})
}

// List returns the callbacks in state (every state when ""), oldest
// first, at most limit (0: all).
func (s Callbacks) List(ctx context.Context, state string, limit int) ([]Callback, error) {
	q := `SELECT id, queue, number, lang, ticket, call_id, state, attempts, last_reason, created_ns, updated_ns FROM callbacks`
	var args []any
	if state != "" {
		q += ` WHERE state = ?`
		args = append(args, state)
	}
	q += ` ORDER BY created_ns, id`
	if limit > 0 {
		q += fmt.Sprintf(` LIMIT %d`, limit)
	}
	rows, err := s.DB.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Callback
	for rows.Next() {
		var cb Callback
		var created, updated int64
		if err := rows.Scan(&cb.ID, &cb.Queue, &cb.Number, &cb.Lang, &cb.Ticket, &cb.CallID, &cb.State, &cb.Attempts, &cb.LastReason, &created, &updated); err != nil {
			return nil, err
		}
		cb.Created, cb.Updated = time.Unix(0, created), time.Unix(0, updated)
		out = append(out, cb)
	}
	return out, rows.Err()
}
