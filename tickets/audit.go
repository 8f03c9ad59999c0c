package tickets

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/govline/ivr/store"
)

// AuditEntry is one line of the audit log: who did what, when, from where.
// It never holds a password; Detail holds no personal data of citizens.
type AuditEntry struct {
	ID      int64     `json:"id"`
	At      time.Time `json:"at"`
	User    string    `json:"user"`   // for a failed sign-in, the name as typed
	Action  string    `json:"action"` // login, login_failed, ticket_view, ticket_escalate...
	Target  string    `json:"target"` // a ticket number, a page, a user
	Detail  string    `json:"detail"`
	Address string    `json:"address"` // the client's address
	OK      bool      `json:"ok"`      // false for refused actions
}

var _ slog.LogValuer = AuditEntry{}

// AuditRegisterNewAddress is the action of an agent's SIP registration
// from a new address while its registration from another was active: that
// address now gets the agent's calls. The agent console shows these.
const AuditRegisterNewAddress = "sip_register_new_address"

// LogValue logs the entry without its detail.
func (e AuditEntry) LogValue() slog.Value {
	return slog.GroupValue(slog.String("user", e.User), slog.String("action", e.Action),
		slog.String("target", e.Target), slog.Bool("ok", e.OK))
}

// insertAudit appends e to the audit log and links it into its chain
// (chain.go), in the caller's transaction.
func insertAudit(ctx context.Context, tx *store.Tx, e AuditEntry) error {
	chain, err := auditChain(ctx, tx, e.User)
	if err != nil {
		return err
	}
	// The chain's lock before the insert: its rows' ids grow with its links.
	if err := lockChain(ctx, tx, chain); err != nil {
		return err
	}
	var id int64
	at, ok := e.At.UnixNano(), int64(b2i(e.OK))
	err = tx.QueryRowContext(ctx, `INSERT INTO audit (at_ns, "user", action, target, detail, address, ok) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		at, e.User, e.Action, e.Target, e.Detail, e.Address, ok).Scan(&id)
	if err != nil {
		return err
	}
	return link(ctx, tx, chain, sourceAudit, id, auditRow(id, at, e.User, e.Action, e.Target, e.Detail, e.Address, ok))
}

// Audit appends e to the audit log (a zero At means now). The log is
// append-only: the database refuses updates and deletes.
func (s *Store) Audit(ctx context.Context, e AuditEntry) error {
	if e.Action == "" {
		return fmt.Errorf("tickets: audit: %w", invalid("action", "empty"))
	}
	if e.At.IsZero() {
		e.At = s.now()
	}
	return opErr("audit", s.inTx(ctx, "audit", func(tx *store.Tx) error { return insertAudit(ctx, tx, e) }))
}

// AuditQuery selects audit entries. Zero fields do not filter.
type AuditQuery struct {
	User   string
	Action string
	Target string
	Since  time.Time
	Limit  int // newest this many; 0 or less means 1000
}

// AuditLog returns the entries selected by q, newest first.
func (s *Store) AuditLog(ctx context.Context, q AuditQuery) ([]AuditEntry, error) {
	query := `SELECT id, at_ns, "user", action, target, detail, address, ok FROM audit WHERE at_ns >= ?`
	args := []any{q.Since.UnixNano()}
	if q.Since.IsZero() {
		args[0] = 0
	}
	if q.User != "" {
		query, args = query+` AND "user" = ?`, append(args, q.User)
	}
	if q.Action != "" {
		query, args = query+` AND action = ?`, append(args, q.Action)
	}
	if q.Target != "" {
		query, args = query+` AND target = ?`, append(args, q.Target)
	}
	if q.Limit <= 0 {
		q.Limit = 1000
	}
	query, args = query+` ORDER BY id DESC LIMIT ?`, append(args, q.Limit)
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("tickets: audit log: %w", err)
	}
	defer rows.Close()
	out := []AuditEntry{}
	for rows.Next() {
		var e AuditEntry
		var at int64
		var ok int
		if err := rows.Scan(&e.ID, &at, &e.User, &e.Action, &e.Target, &e.Detail, &e.Address, &ok); err != nil {
			return nil, fmt.Errorf("tickets: audit log: %w", err)
		}
		e.At, e.OK = fromNanos(at), ok != 0
		out = append(out, e)
	}
	return out, rows.Err()
}

// Backup writes a consistent copy of a SQLite database to path (VACUUM
// INTO) while the engine keeps writing; path must not exist yet. On
// PostgreSQL it fails: back up with pg_dump (docs/operations.md).
func (s *Store) Backup(ctx context.Context, path string) error {
	if path == "" {
		return fmt.Errorf("tickets: backup: %w", invalid("path", "empty"))
	}
	if err := s.db.Backup(ctx, path); err != nil {
		return fmt.Errorf("tickets: %w", err)
	}
	return nil
}

// IntegrityCheck runs SQLite's integrity check and returns an error that
// quotes its first complaint (on PostgreSQL: that the server answers).
func (s *Store) IntegrityCheck(ctx context.Context) error {
	if err := s.db.IntegrityCheck(ctx); err != nil {
		return fmt.Errorf("tickets: %w", err)
	}
	return nil
}
