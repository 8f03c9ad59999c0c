package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Q returns query in the database's dialect: its ? placeholders become $1,
// $2... on PostgreSQL (a ? inside a quoted string or identifier, or a
// comment, stays).
func (db *DB) Q(query string) string {
	if db.backend != Postgres {
		return query
	}
	if q, ok := db.rebound.Load(query); ok {
		return q.(string)
	}
	q := rebind(query)
	db.rebound.Store(query, q)
	return q
}

func rebind(query string) string {
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(query) && query[j] != c {
				j++
			}
			b.WriteString(query[i:min(j+1, len(query))])
			i = j
		case c == '-' && i+1 < len(query) && query[i+1] == '-':
			j := strings.IndexByte(query[i:], '\n')
			if j < 0 {
				j = len(query) - i
			}
			b.WriteString(query[i : i+j])
			i += j - 1
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// QueryContext runs a read (a query in ? form).
func (db *DB) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return db.sql.QueryContext(ctx, db.Q(query), args...)
}

// QueryRowContext runs a read that returns at most one row.
func (db *DB) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return db.sql.QueryRowContext(ctx, db.Q(query), args...)
}

// Tx is a write transaction of Write. Its queries take ? placeholders.
type Tx struct {
	tx *sql.Tx
	db *DB
}

// ExecContext runs a statement in the transaction.
func (tx *Tx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return tx.tx.ExecContext(ctx, tx.db.Q(query), args...)
}

// QueryContext runs a query in the transaction.
func (tx *Tx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return tx.tx.QueryContext(ctx, tx.db.Q(query), args...)
}

// QueryRowContext runs a query that returns at most one row.
func (tx *Tx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return tx.tx.QueryRowContext(ctx, tx.db.Q(query), args...)
}

// PrepareContext prepares a statement for repeated use in the transaction.
func (tx *Tx) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	return tx.tx.PrepareContext(ctx, tx.db.Q(query))
}

// Backend is the transaction's database's kind.
func (tx *Tx) Backend() Backend { return tx.db.backend }

// Write runs fn in one write transaction and commits it, or rolls it back
// when fn returns an error (which Write returns as it is); its own errors
// (waiting for the write slot, begin, commit) name no operation: the
// caller's error wrapping does.
//
// On SQLite, Write first takes the process's one write slot (or fails when
// ctx ends first). On PostgreSQL, a failure that left nothing behind (a
// serialization failure or deadlock; a connection refused, or lost before
// the commit was sent) runs fn again, for up to Options.RetryFor: fn must
// compute everything it writes from what it reads in the transaction. A
// commit whose answer was lost is looked up on the same server (by its
// transaction id): committed, Write returns nil; not committed, fn runs
// again. When the server restarted meanwhile, or none answers, nobody can
// tell: the error wraps ErrCommitUnknown and fn is not run again.
func (db *DB) Write(ctx context.Context, fn func(*Tx) error) error {
	if db.readOnly {
		return fmt.Errorf("%s: %w", db.where, ErrReadOnly)
	}
	if db.backend == SQLite {
		select {
		case db.wmu <- struct{}{}:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the write lock: %w", context.Cause(ctx))
		}
		defer func() { <-db.wmu }()
		return db.try(ctx, fn, time.Time{})
	}
	start := time.Now()
	wait := 20 * time.Millisecond
	for {
		err := db.try(ctx, fn, start.Add(db.retryFor))
		if err == nil || !Transient(err) || errors.Is(err, ErrCommitUnknown) || ctx.Err() != nil ||
			time.Since(start)+wait > db.retryFor {
			db.countFailure(err)
			return err
		}
		select {
		case <-ctx.Done():
			db.countFailure(err)
			return err
		case <-time.After(wait):
		}
		db.retries.Add(1)
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// countFailure counts a PostgreSQL write that ends with err because the
// server could not be reached (given up, its commit's answer lost, or no
// answer before the context's deadline: a server that hangs).
func (db *DB) countFailure(err error) {
	if err != nil && (Transient(err) || errors.Is(err, ErrCommitUnknown) || errors.Is(err, context.DeadlineExceeded)) {
		db.failures.Add(1)
	}
}

// WriteStats counts what Write did about a PostgreSQL server that could
// not be reached (a restart, a network cut) since the store was opened.
type WriteStats struct {
	// Retries is the number of times a write ran again after a failure
	// that left nothing behind.
	Retries uint64
	// Failures is the number of writes that returned such a failure: the
	// server still unreachable after Options.RetryFor (or the caller's
	// context ended first), no answer before the context's deadline (a
	// server that hangs), or a commit whose answer was lost
	// (ErrCommitUnknown). Each is also an error to its caller.
	Failures uint64
}

// WriteStats returns the counts since Open (always zero on SQLite, which
// has no server to lose). Safe for concurrent use.
func (db *DB) WriteStats() WriteStats {
	return WriteStats{Retries: db.retries.Load(), Failures: db.failures.Load()}
}

func (db *DB) try(ctx context.Context, fn func(*Tx) error, deadline time.Time) error {
	stx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(&Tx{tx: stx, db: db}); err != nil {
		_ = stx.Rollback()
		return err
	}
	// PostgreSQL: the transaction's id and the server's start, to ask the
	// server whether it committed should the answer to the commit be lost.
	var tx pgTx
	if db.backend == Postgres {
		if err := stx.QueryRowContext(ctx, `SELECT pg_current_xact_id()::text, pg_postmaster_start_time()`).Scan(&tx.xid, &tx.server); err != nil {
			_ = stx.Rollback()
			return fmt.Errorf("transaction id: %w", err)
		}
	}
	if err := stx.Commit(); err != nil {
		if db.backend == Postgres && !isServerError(err) {
			// The connection failed while the commit was on its way.
			return db.commitOutcome(ctx, tx, deadline, err)
		}
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// pgTx identifies a PostgreSQL transaction: its id and the start of the
// server that ran it.
type pgTx struct {
	xid    string
	server time.Time
}

// commitOutcome asks PostgreSQL what became of transaction tx, whose
// commit was sent on a connection that failed (cerr) before the answer
// came (a network cut, a proxy, a terminated backend): nil when it
// committed; cerr (transient: Write runs the transaction again) when it
// did not. It returns ErrCommitUnknown when the server restarted since
// (after a crash, the id of a transaction the server lost before writing
// it may be given to another, so the server's answer would not be about
// this one), or when no server answers before deadline or ctx ends.
func (db *DB) commitOutcome(ctx context.Context, tx pgTx, deadline time.Time, cerr error) error {
	wait := 20 * time.Millisecond
	for {
		var status sql.NullString
		var server time.Time
		err := db.sql.QueryRowContext(ctx, `SELECT pg_xact_status($1::xid8), pg_postmaster_start_time()`, tx.xid).Scan(&status, &server)
		switch {
		case err == nil && !server.Equal(tx.server):
			return fmt.Errorf("commit: %w (the server restarted): %w", ErrCommitUnknown, cerr)
		case err == nil && status.String == "committed":
			return nil
		case err == nil && status.String == "aborted":
			return fmt.Errorf("commit: %w", cerr)
		case err == nil && status.String == "in progress":
			// The server has not yet seen the connection end.
		case err == nil || !Transient(err):
			// Too old to tell (NULL), or an error that is no outage.
			return fmt.Errorf("commit: %w: %w", ErrCommitUnknown, cerr)
		}
		if ctx.Err() != nil || time.Now().Add(wait).After(deadline) {
			return fmt.Errorf("commit: %w: %w", ErrCommitUnknown, cerr)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("commit: %w: %w", ErrCommitUnknown, cerr)
		case <-time.After(wait):
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// ErrCommitUnknown is wrapped by a PostgreSQL write whose commit was sent
// but whose answer never came, when no server could say afterwards
// whether it committed (within Options.RetryFor): it may or may not have
// been committed, so it is not retried.
var ErrCommitUnknown = errors.New("commit outcome unknown (connection lost)")

// The constructs the two dialects spell differently.

// ForUpdate is the clause that locks the rows a SELECT in a write
// transaction reads, until the commit (" FOR UPDATE" on PostgreSQL; on
// SQLite the one writer holds the whole database already).
func (db *DB) ForUpdate() string {
	if db.backend == Postgres {
		return " FOR UPDATE"
	}
	return ""
}

// SkipLocked ends a SELECT (in a subquery of a write) that claims rows: on
// PostgreSQL it locks the rows it returns and passes over those another
// transaction has locked (" FOR UPDATE SKIP LOCKED"), so engines claiming
// at once take different rows without waiting; SQLite's one writer needs
// nothing.
func (db *DB) SkipLocked() string {
	if db.backend == Postgres {
		return " FOR UPDATE SKIP LOCKED"
	}
	return ""
}

// Greatest is the name of the function that returns the largest of its
// arguments (SQLite's scalar max, PostgreSQL's greatest).
func (db *DB) Greatest() string {
	if db.backend == Postgres {
		return "greatest"
	}
	return "max"
}

// Least is the name of the function that returns the smallest of its
// arguments (SQLite's scalar min, PostgreSQL's least).
func (db *DB) Least() string {
	if db.backend == Postgres {
		return "least"
	}
	return "min"
}

// FloatSum is a sum of expr as a floating-point number that cannot
// overflow, 0 over no rows (SQLite's total).
func (db *DB) FloatSum(expr string) string {
	if db.backend == Postgres {
		return "CAST(coalesce(sum(" + expr + "), 0) AS double precision)"
	}
	return "total(" + expr + ")"
}

// IndexedBy tells SQLite's planner which index a query must use (after the
// table name); PostgreSQL plans by statistics.
func (db *DB) IndexedBy(index string) string {
	if db.backend == Postgres {
		return ""
	}
	return " INDEXED BY " + index
}
