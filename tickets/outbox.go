package tickets

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/govline/ivr/store"
)

// Notification is one row of the outbox: a message to the citizen's
// notification gateway. A resolved ticket enqueues one ("ticket.resolved")
// in the same transaction as its resolve event, so none is lost.
type Notification struct {
	ID        int64      `json:"id"`
	Kind      string     `json:"kind"`
	Ticket    string     `json:"ticket"`
	Payload   string     `json:"payload"` // JSON; holds the caller number: never logged
	Created   time.Time  `json:"created"`
	Attempts  int        `json:"attempts"`
	Next      time.Time  `json:"next"`
	Sent      *time.Time `json:"sent,omitempty"`
	LastError string     `json:"last_error,omitempty"`
}

// Outbox returns the notifications of a ticket ("" for all), oldest first.
func (s *Store) Outbox(ctx context.Context, ticket string, pendingOnly bool) ([]Notification, error) {
	q := `SELECT id, kind, ticket, payload, created_ns, attempts, next_ns, sent_ns, last_error FROM outbox WHERE (? = '' OR ticket = ?)`
	if pendingOnly {
		q += ` AND sent_ns IS NULL`
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY id`, ticket, ticket)
	if err != nil {
		return nil, fmt.Errorf("tickets: outbox: %w", err)
	}
	defer rows.Close()
	out := []Notification{}
	for rows.Next() {
		var n Notification
		var created, next int64
		var sent sql.NullInt64
		if err := rows.Scan(&n.ID, &n.Kind, &n.Ticket, &n.Payload, &created, &n.Attempts, &next, &sent, &n.LastError); err != nil {
			return nil, fmt.Errorf("tickets: outbox: %w", err)
		}
		n.Created, n.Next = fromNanos(created), fromNanos(next)
		if sent.Valid {
			t := fromNanos(sent.Int64)
			n.Sent = &t
		}
		out = append(out, n)
	}
	return out, rows.Err()
}

// SignatureHeader carries the hex HMAC-SHA256 of "TIMESTAMP.BODY" under
// the shared secret, as "t=TIMESTAMP,v1=HEX" (TIMESTAMP in Unix seconds),
// so the gateway can check both origin and freshness.
const SignatureHeader = "X-IVR-Signature"

// PurgeOutbox deletes the notifications delivered before before and
// returns how many; pending ones stay whatever their age.
func (s *Store) PurgeOutbox(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := s.inTx(ctx, "outbox purge", func(tx *store.Tx) error {
		r, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE sent_ns IS NOT NULL AND sent_ns < ?`, before.UnixNano())
		if err == nil {
			n, err = r.RowsAffected()
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("tickets: outbox purge: %w", err)
	}
	return n, nil
}

// Sign returns the SignatureHeader value for body sent at t.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

// WebhookConfig configures the Sender.
type WebhookConfig struct {
	URL    string // http(s) endpoint of the gateway; required
	Secret []byte // HMAC key; required
	// Client sends the requests; nil means a client with a 10 s timeout.
	Client *http.Client
	// Poll is how often the outbox is checked when idle (default 2 s).
	Poll time.Duration
	// MinBackoff doubles after each failure up to MaxBackoff
	// (defaults 5 s and 1 h).
	MinBackoff, MaxBackoff time.Duration
	// Keep is how long a delivered notification stays in the outbox (its
	// payload holds the caller's number): older ones are deleted once an
	// hour. 0 means 30 days; pending ones are never deleted.
	Keep time.Duration
	// Logger receives send failures (never the payload); nil means
	// slog.Default().
	Logger *slog.Logger
}

// Sender posts the outbox's notifications to a webhook. Run owns its one
// goroutine's work: start it with go, stop it by cancelling its context,
// and wait for Run to return. The outbox rows survive restarts: a
// notification not confirmed by a 2xx answer is sent again later.
type Sender struct {
	st  *Store
	cfg WebhookConfig
	// wake is signalled by Kick.
	wake chan struct{}
}

// NewSender checks cfg and returns a sender over st.
func NewSender(st *Store, cfg WebhookConfig) (*Sender, error) {
	if cfg.URL == "" {
		return nil, errors.New("tickets: webhook: empty url")
	}
	if len(cfg.URL) < 8 || (cfg.URL[:7] != "http://" && cfg.URL[:8] != "https://") {
		return nil, fmt.Errorf("tickets: webhook: url %q: want http:// or https://", cfg.URL)
	}
	if len(cfg.Secret) < 16 {
		return nil, errors.New("tickets: webhook: secret: want at least 16 bytes")
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 2 * time.Second
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 5 * time.Second
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(time.Hour, cfg.MinBackoff)
	}
	if cfg.Keep <= 0 {
		cfg.Keep = 30 * 24 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Sender{st: st, cfg: cfg, wake: make(chan struct{}, 1)}, nil
}

// Kick asks the sender to look at the outbox now (after a resolve). It
// never blocks.
func (s *Sender) Kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run sends due notifications until ctx is cancelled, then returns
// ctx's error.
func (s *Sender) Run(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Poll)
	defer t.Stop()
	var purged time.Time
	for {
		if now := s.st.now(); now.Sub(purged) >= time.Hour {
			purged = now
			if n, err := s.st.PurgeOutbox(ctx, now.Add(-s.cfg.Keep)); err != nil && ctx.Err() == nil {
				s.cfg.Logger.Warn("webhook outbox purge", "err", err)
			} else if n > 0 {
				s.cfg.Logger.Info("webhook outbox: delivered notifications deleted", "rows", n, "older_than", s.cfg.Keep)
			}
		}
		for {
			n, err := s.SendDue(ctx)
			if err != nil && ctx.Err() == nil {
				s.cfg.Logger.Warn("webhook outbox", "err", err)
			}
			if n == 0 || err != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-s.wake:
		}
	}
}

// backoff is the delay after the attempts-th failed attempt.
func (s *Sender) backoff(attempts int) time.Duration {
	d := s.cfg.MinBackoff
	for i := 1; i < attempts && d < s.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, s.cfg.MaxBackoff)
}

// SendDue sends the notifications that are due now (at most 100), one at a
// time, and returns how many it tried. Engines sharing a database each run
// a Sender: each notification is claimed before it is sent (its next
// attempt moved past the send's longest time, the row skipped by the other
// engines' claims meanwhile), so one engine sends it; an engine that
// stops or dies mid-send leaves it due again once that time has passed.
func (s *Sender) SendDue(ctx context.Context) (int, error) {
	for i := range 100 {
		if ctx.Err() != nil {
			return i, ctx.Err()
		}
		n, ok, err := s.claim(ctx)
		if err != nil || !ok {
			return i, err
		}
		sendErr := s.post(ctx, n)
		if ctx.Err() != nil {
			return i, ctx.Err() // stopping: the row stays pending, due again after its claim
		}
		at := s.st.now()
		err = s.st.inTx(ctx, "outbox", func(tx *store.Tx) error {
			if sendErr == nil {
				_, err := tx.ExecContext(ctx, `UPDATE outbox SET attempts = attempts + 1, sent_ns = ?, last_error = '' WHERE id = ?`, at.UnixNano(), n.ID)
				return err
			}
			next := at.Add(s.backoff(n.Attempts + 1))
			msg := sendErr.Error()
			if len(msg) > 300 {
				msg = msg[:300]
			}
			_, err := tx.ExecContext(ctx, `UPDATE outbox SET attempts = attempts + 1, next_ns = ?, last_error = ? WHERE id = ?`, next.UnixNano(), msg, n.ID)
			return err
		})
		if err != nil {
			return i + 1, fmt.Errorf("tickets: outbox: %w", err)
		}
		if sendErr != nil {
			s.cfg.Logger.Warn("webhook: send failed; will retry", "id", n.ID, "ticket", n.Ticket, "kind", n.Kind,
				"attempt", n.Attempts+1, "retry_in", s.backoff(n.Attempts+1), "err", sendErr)
		}
	}
	return 100, nil
}

// claim takes the next due notification of the gateway ("ticket.resolved";
// "email.resolved" is the e-mail channel's, tickets.Store.EmailResolved): its next attempt moves to after
// the longest a send may take, so that no other engine's Sender takes it
// meanwhile (on PostgreSQL a row being claimed is skipped, not waited for).
func (s *Sender) claim(ctx context.Context) (Notification, bool, error) {
	now := s.st.now()
	lease := now.Add(s.cfg.Client.Timeout + time.Minute)
	if s.cfg.Client.Timeout <= 0 {
		lease = now.Add(10 * time.Minute)
	}
	var n Notification
	found := false
	err := s.st.inTx(ctx, "outbox claim", func(tx *store.Tx) error {
		err := tx.QueryRowContext(ctx, `UPDATE outbox SET next_ns = ? WHERE id = (SELECT id FROM outbox
			WHERE kind = 'ticket.resolved' AND sent_ns IS NULL AND next_ns <= ? ORDER BY next_ns, id LIMIT 1`+s.st.db.SkipLocked()+`)
			RETURNING id, kind, ticket, payload, attempts`, lease.UnixNano(), now.UnixNano()).
			Scan(&n.ID, &n.Kind, &n.Ticket, &n.Payload, &n.Attempts)
		found = err == nil
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		return err
	})
	if err != nil {
		return n, false, fmt.Errorf("tickets: outbox: %w", err)
	}
	return n, found, nil
}

func (s *Sender) post(ctx context.Context, n Notification) error {
	body := []byte(n.Payload)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-IVR-Event", n.Kind)
	// The delivery id lets the gateway drop a duplicate (a 2xx lost on
	// the way back makes the sender try again).
	req.Header.Set("X-IVR-Delivery", strconv.FormatInt(n.ID, 10))
	req.Header.Set(SignatureHeader, Sign(s.cfg.Secret, s.st.now(), body))
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("gateway answered %s", resp.Status)
	}
	return nil
}
