// Package tickets persists everything of a call that must not be lost: call
// records and their event log; tickets, with their append-only history
// (the truth) and their materialized current state; transcripts written
// turn by turn; and the indicators computed from them. The working-hours
// calendar and the deadline table live here too (docs/tickets.md).
//
// The store is one SQLite file (see [DBFile] and [DBPath]) in WAL mode, so the
// engine (ivrd) writes while administrators read it with ivrctl. The schema
// grows by numbered migrations embedded in the binary (migrations/NNNN_*.sql)
// and applied by [Open]; a database written by a newer binary is refused
// rather than misread.
//
// Times are stored as INTEGER nanoseconds since the Unix epoch and returned
// in UTC. A zero time.Time passed to a write method means "now".
//
// Caller numbers are personal data: they are stored, because the service
// needs them, but never logged raw. Wrap them in [Phone] (or log a
// [CallRecord], whose LogValue masks them) before they reach a log line.
package tickets

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/mattn/go-sqlite3" // SQLite driver (cgo), registered as "sqlite3"

	_ "github.com/govline/ivr/internal/sqlitefts5" // FTS5 in every build, no build tag needed
)

// DBFile is the name of the database file inside the data directory.
const DBFile = "ivr.db"

// DBPath returns the path of the database inside dataDir.
func DBPath(dataDir string) string { return filepath.Join(dataDir, DBFile) }

// BusyTimeout is how long a statement waits for a lock held by another
// connection or process before it fails with SQLITE_BUSY.
const BusyTimeout = 5 * time.Second

// maxOpenConns bounds the connection pool. Readers run in parallel (WAL);
// writers are serialized in the process by Store.wmu, so more connections
// would only add lock contention.
const maxOpenConns = 4

var (
	// ErrNotFound is returned (wrapped) when a call does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists is returned (wrapped) by StartCall when the id is taken.
	ErrExists = errors.New("already exists")
	// ErrNoDatabase is returned (wrapped) by OpenReadOnly when the file
	// does not exist.
	ErrNoDatabase = errors.New("no database")
	// ErrSchemaTooNew is returned (wrapped) when the database has a schema
	// version this binary does not know: it was written by a newer binary.
	ErrSchemaTooNew = errors.New("database schema is newer than this program")
	// ErrReadOnly is returned (wrapped) by write methods of a store opened
	// with OpenReadOnly.
	ErrReadOnly = errors.New("store is read-only")
)

// Store is the persistent store. Its methods are safe for concurrent use by
// many goroutines: writes are serialized inside the process (one writer at a
// time, waiting honours the context), reads run in parallel, and other
// processes are waited for up to BusyTimeout.
type Store struct {
	db       *sql.DB
	path     string
	readOnly bool
	// wmu is a one-slot semaphore held by the writer; a channel rather than
	// a sync.Mutex so that waiting for it can be cancelled by the context.
	wmu chan struct{}
	// policy holds the ticket deadlines and clock (SetDeadlines, SetClock);
	// nil means the defaults.
	policy atomic.Pointer[ticketPolicy]
	// turns holds the transcript turns waiting for a group commit.
	turns turnQueue
}

// Open opens (creating it and its parent directory if needed) the database
// at path for reading and writing, and applies the pending schema
// migrations. It fails with ErrSchemaTooNew if the database was migrated by
// a newer binary.
func Open(path string) (*Store, error) { return openSync(path, "NORMAL") }

// openSync is Open with the given synchronous setting (NORMAL or FULL);
// the benchmarks compare them (docs/tickets.md).
func openSync(path, synchronous string) (*Store, error) {
	if path == "" {
		return nil, errors.New("tickets: open: empty database path")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("tickets: open %s: create directory: %w", path, err)
		}
	}
	q := url.Values{}
	q.Set("mode", "rwc")
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", synchronous)
	q.Set("_foreign_keys", "on")
	q.Set("_busy_timeout", strconv.Itoa(int(BusyTimeout/time.Millisecond)))
	// BEGIN IMMEDIATE: a transaction takes the write lock when it starts, so
	// it never has to upgrade a read lock (which fails at once with BUSY).
	q.Set("_txlock", "immediate")
	q.Set("_stmt_cache_size", "32")
	// Two processes opening a new file at once (ivrd and ivrctl kb import)
	// can find it locked while the other switches it to WAL, before any
	// busy handler applies: try again for up to BusyTimeout.
	var s *Store
	var err error
	for wait, start := 10*time.Millisecond, time.Now(); ; wait = min(2*wait, 500*time.Millisecond) {
		s, err = open(path, q, false)
		if err == nil || !isBusy(err) || time.Since(start) > BusyTimeout {
			break
		}
		time.Sleep(wait)
	}
	if err != nil {
		return nil, err
	}
	ms, err := embeddedMigrations()
	if err == nil {
		err = migrate(context.Background(), s.db, ms)
	}
	if err != nil {
		s.db.Close()
		return nil, fmt.Errorf("tickets: open %s: %w", path, err)
	}
	return s, nil
}

// OpenReadOnly opens an existing database for reading only, as ivrctl does
// while ivrd runs. It does not migrate; it fails with ErrNoDatabase if the
// file does not exist, and with ErrSchemaTooNew if a newer binary wrote it.
func OpenReadOnly(path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("tickets: open: empty database path")
	}
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w at %s: run ivrd first, or pass --data DIR (or set IVR_DATA_DIR) to the directory that holds %s", ErrNoDatabase, path, DBFile)
	}
	if err != nil {
		return nil, fmt.Errorf("tickets: open %s: %w", path, err)
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("tickets: open %s: is a directory, want the database file %s inside it", path, DBFile)
	}
	q := url.Values{}
	q.Set("mode", "ro")
	q.Set("_foreign_keys", "on")
	q.Set("_busy_timeout", strconv.Itoa(int(BusyTimeout/time.Millisecond)))
	s, err := open(path, q, true)
	if err != nil {
		return nil, err
	}
	ms, err := embeddedMigrations()
	if err == nil {
		err = checkVersion(context.Background(), s.db, ms)
	}
	if err != nil {
		s.db.Close()
		return nil, fmt.Errorf("tickets: open %s: %w", path, err)
	}
	return s, nil
}

func open(path string, q url.Values, readOnly bool) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("tickets: open %s: %w", path, err)
	}
	// A file: URI so that mode= is honoured; url.URL escapes ?, # and % in
	// the path, which SQLite decodes.
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	db, err := sql.Open("sqlite3", u.String())
	if err != nil {
		return nil, fmt.Errorf("tickets: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(maxOpenConns)
	db.SetMaxIdleConns(maxOpenConns)
	db.SetConnMaxLifetime(0)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("tickets: open %s: %w", path, err)
	}
	if !readOnly {
		var mode string
		if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
			db.Close()
			return nil, fmt.Errorf("tickets: open %s: read journal mode: %w", path, err)
		}
		if mode != "wal" {
			db.Close()
			return nil, fmt.Errorf("tickets: open %s: journal mode is %q, want wal (is the file system local?)", path, mode)
		}
	}
	return &Store{db: db, path: path, readOnly: readOnly, wmu: make(chan struct{}, 1)}, nil
}

// Path returns the path the store was opened with.
func (s *Store) Path() string { return s.path }

// Close closes the database. Pending writes have been committed when their
// method returned; Close does not wait for methods still running.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("tickets: close %s: %w", s.path, err)
	}
	return nil
}

// lockWrite takes the in-process write lock, or fails when ctx ends first or
// the store is read-only. op names the operation for the error.
func (s *Store) lockWrite(ctx context.Context, op string) (unlock func(), err error) {
	if s.readOnly {
		return nil, fmt.Errorf("tickets: %s: %s: %w", op, s.path, ErrReadOnly)
	}
	select {
	case s.wmu <- struct{}{}:
		return func() { <-s.wmu }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("tickets: %s: waiting for the write lock: %w", op, context.Cause(ctx))
	}
}

// inTx runs fn in one write transaction under the write lock and commits
// it, or rolls it back when fn fails.
func (s *Store) inTx(ctx context.Context, op string, fn func(*sql.Tx) error) error {
	unlock, err := s.lockWrite(ctx, op)
	if err != nil {
		return err
	}
	defer unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("tickets: %s: %w", op, err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("tickets: %s: commit: %w", op, err)
	}
	return nil
}

// DB returns the database handle for packages that keep their own tables in
// the store (the knowledge base index). Reads may use it directly; writes go
// through [Store.Tx] so that they share the store's single writer.
func (s *Store) DB() *sql.DB { return s.db }

// Tx runs fn in one write transaction under the store's write lock and
// commits it, or rolls it back when fn returns an error. op names the
// operation in errors.
func (s *Store) Tx(ctx context.Context, op string, fn func(*sql.Tx) error) error {
	return s.inTx(ctx, op, fn)
}

// isBusy reports whether err is SQLite's "database is locked" or "busy".
func isBusy(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && (se.Code == sqlite3.ErrBusy || se.Code == sqlite3.ErrLocked)
}
