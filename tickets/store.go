// Package tickets persists everything of a call that must not be lost: call
// records and their event log; tickets, with their append-only history
// (the truth) and their materialized current state; transcripts written
// turn by turn; console users and the audit log; the notification outbox;
// and the indicators computed from them. The working-hours calendar and the
// deadline table live here too (docs/tickets.md).
//
// The Store keeps these in the line's database (package store): a SQLite
// file (see [DBFile] and [DBPath]) in WAL mode, the embedded default, or
// PostgreSQL, which several engines share. The same code and the same rules
// run on both: the append-only history and transcripts (the only change
// they allow is the anonymization of retention and erasure,
// docs/retention.md), the corrections
// that supersede, unique ticket numbers, a resolve's notification in the
// resolve's own transaction (the conformance kit tickets/storetest proves
// each on both backends). Package tickets is the only package that runs SQL
// on its tables (calls, call_events, tickets, ticket_events, the roll-ups,
// transcript_turns, users, sessions, audit, outbox, the providers:
// providers, provider_services, provider_numbers; docs/providers.md, and
// the e-mails of tickets' threads: email_messages, email_attachments;
// docs/email.md; the tamper-evident chain of the audit log and the
// history: chain_links, chain_backfill; chain.go).
//
// Times are stored as nanoseconds since the Unix epoch and returned in UTC.
// A zero time.Time passed to a write method means "now".
//
// Caller numbers are personal data: they are stored, because the service
// needs them, but never logged raw. Wrap them in [Phone] (or log a
// [CallRecord], whose LogValue masks them) before they reach a log line.
package tickets

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/govline/ivr/store"
)

// DBFile is the name of the SQLite database file inside the data directory.
const DBFile = "ivr.db"

// DBPath returns the path of the SQLite database inside dataDir.
func DBPath(dataDir string) string { return filepath.Join(dataDir, DBFile) }

// BusyTimeout is how long a SQLite statement waits for a lock held by
// another process before it fails with SQLITE_BUSY.
const BusyTimeout = store.BusyTimeout

var (
	// ErrNotFound is returned (wrapped) when a call, ticket or user does
	// not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists is returned (wrapped) by StartCall and AddUser when the id
	// or name is taken.
	ErrExists = errors.New("already exists")
	// ErrNoDatabase is returned (wrapped) by OpenReadOnly when the file
	// does not exist.
	ErrNoDatabase = store.ErrNoDatabase
	// ErrSchemaTooNew is returned (wrapped) when the database has a schema
	// version this binary does not know: it was written by a newer binary.
	ErrSchemaTooNew = store.ErrSchemaTooNew
	// ErrReadOnly is returned (wrapped) by write methods of a store opened
	// read-only.
	ErrReadOnly = store.ErrReadOnly
)

// Store keeps tickets, calls, transcripts, users, the audit log and the
// outbox in the line's database. Its methods are safe for concurrent use
// by many goroutines, and on PostgreSQL by many engines: a change of a
// ticket locks its row until it commits, so two engines changing one ticket
// take turns and the row always equals its history replayed.
type Store struct {
	db  *store.DB
	own bool // Close closes db
	// policy holds the ticket deadlines and clock (SetDeadlines, SetClock);
	// nil means the defaults.
	policy atomic.Pointer[ticketPolicy]
	// turns holds the transcript turns waiting for a group commit.
	turns turnQueue
	// engine names this engine in the calls it records (SetEngine).
	engine atomic.Pointer[string]
	// chained is set once the rows written before the audit chain existed
	// are linked (linkExisting, before the first write).
	chained atomic.Bool
}

// SetEngine names the engine whose calls this store records: each call
// record carries it, and CloseOrphans and OpenCalls see only this engine's
// calls (and those written before engines had names), so an engine
// starting after a crash never closes the live calls of another engine
// sharing the database. "" (the default) suits a line of one engine.
func (s *Store) SetEngine(name string) { s.engine.Store(&name) }

// Engine is the name SetEngine gave ("" by default).
func (s *Store) Engine() string {
	if p := s.engine.Load(); p != nil {
		return *p
	}
	return ""
}

// New returns the store over db, an open line's database (store.Open).
// Closing the Store does not close db.
func New(db *store.DB) *Store {
	s := &Store{db: db}
	s.turns.committer = make(chan struct{}, 1)
	return s
}

// Open opens (creating it and its parent directory if needed) the SQLite
// database at path for reading and writing, and applies the pending schema
// migrations. It fails with ErrSchemaTooNew if the database was migrated by
// a newer binary. Close closes the database.
func Open(path string) (*Store, error) { return openSync(path, "NORMAL") }

// openSync is Open with the given synchronous setting (NORMAL or FULL);
// the benchmarks compare them (docs/tickets.md).
func openSync(path, synchronous string) (*Store, error) {
	if path == "" {
		return nil, errors.New("tickets: open: empty database path")
	}
	db, err := store.Open(context.Background(), store.SQLiteURL(path), store.Options{Synchronous: synchronous})
	if err != nil {
		return nil, fmt.Errorf("tickets: %w", err)
	}
	s := New(db)
	s.own = true
	return s, nil
}

// OpenReadOnly opens an existing SQLite database for reading only, as
// ivrctl does while ivrd runs. It does not migrate; it fails with
// ErrNoDatabase if the file does not exist, and with ErrSchemaTooNew if a
// newer binary wrote it. Close closes the database.
func OpenReadOnly(path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("tickets: open: empty database path")
	}
	db, err := store.Open(context.Background(), store.SQLiteURL(path), store.Options{ReadOnly: true})
	if errors.Is(err, store.ErrNoDatabase) {
		return nil, fmt.Errorf("%w at %s: run ivrd first, or pass --data DIR (or set IVR_DATA_DIR) to the directory that holds %s", ErrNoDatabase, path, DBFile)
	}
	if err != nil {
		return nil, fmt.Errorf("tickets: %w", err)
	}
	s := New(db)
	s.own = true
	return s, nil
}

// Path names the database: the SQLite file, or the PostgreSQL URL without
// its password.
func (s *Store) Path() string { return s.db.String() }

// Close closes the database when the store opened it (Open,
// OpenReadOnly); a store made by New leaves its database open. Pending
// writes have been committed when their method returned.
func (s *Store) Close() error {
	if !s.own {
		return nil
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("tickets: %w", err)
	}
	return nil
}

// inTx runs fn in one write transaction of the database (store.DB.Write)
// and commits it, or rolls it back when fn fails. The database's own errors
// (the write lock, the commit) are wrapped with op; fn's come back as they
// are.
func (s *Store) inTx(ctx context.Context, op string, fn func(*store.Tx) error) error {
	if err := s.linkExisting(ctx); err != nil {
		return err
	}
	var fnErr error
	err := s.db.Write(ctx, func(tx *store.Tx) error {
		fnErr = fn(tx)
		return fnErr
	})
	if err != nil && err != fnErr {
		return fmt.Errorf("tickets: %s: %w", op, err)
	}
	return err
}

func wrapOp(op string, err error) error {
	if strings.HasPrefix(err.Error(), "tickets: ") {
		return err
	}
	return fmt.Errorf("tickets: %s: %w", op, err)
}

// opErr is wrapOp that passes nil through.
func opErr(op string, err error) error {
	if err == nil {
		return nil
	}
	return wrapOp(op, err)
}

// b2i is a flag as both backends store it (0 or 1).
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
