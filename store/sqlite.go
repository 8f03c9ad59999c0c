package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/mattn/go-sqlite3" // SQLite driver (cgo), registered as "sqlite3"

	_ "github.com/govline/ivr/internal/sqlitefts5" // FTS5 in every build, no build tag needed
)

// BusyTimeout is how long a SQLite statement waits for a lock held by
// another connection or process before it fails with SQLITE_BUSY.
const BusyTimeout = 5 * time.Second

// sqliteConns bounds SQLite's connection pool. Readers run in parallel
// (WAL); writers are serialized in the process by DB.wmu, so more
// connections would only add lock contention.
const sqliteConns = 4

func openSQLite(path string, o Options) (*DB, error) {
	q := url.Values{}
	q.Set("_foreign_keys", "on")
	q.Set("_busy_timeout", strconv.Itoa(int(BusyTimeout/time.Millisecond)))
	if o.ReadOnly {
		fi, err := os.Stat(path)
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w at %s", ErrNoDatabase, path)
		}
		if err != nil {
			return nil, fmt.Errorf("store: open %s: %w", path, err)
		}
		if fi.IsDir() {
			return nil, fmt.Errorf("store: open %s: is a directory, want a database file", path)
		}
		q.Set("mode", "ro")
		return openSQLiteURI(path, q, true)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("store: open %s: create directory: %w", path, err)
		}
	}
	sync := o.Synchronous
	if sync == "" {
		sync = "NORMAL"
	}
	q.Set("mode", "rwc")
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", sync)
	// BEGIN IMMEDIATE: a transaction takes the write lock when it starts, so
	// it never has to upgrade a read lock (which fails at once with BUSY).
	q.Set("_txlock", "immediate")
	q.Set("_stmt_cache_size", "32")
	// Two processes opening a new file at once (ivrd and ivrctl kb import)
	// can find it locked while the other switches it to WAL, before any
	// busy handler applies: try again for up to BusyTimeout.
	for wait, start := 10*time.Millisecond, time.Now(); ; wait = min(2*wait, 500*time.Millisecond) {
		db, err := openSQLiteURI(path, q, false)
		if err == nil || !isBusy(err) || time.Since(start) > BusyTimeout {
			return db, err
		}
		time.Sleep(wait)
	}
}

func openSQLiteURI(path string, q url.Values, readOnly bool) (*DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	// A file: URI so that mode= is honoured; url.URL escapes ?, # and % in
	// the path, which SQLite decodes.
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	sdb, err := sql.Open("sqlite3", u.String())
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	sdb.SetMaxOpenConns(sqliteConns)
	sdb.SetMaxIdleConns(sqliteConns)
	sdb.SetConnMaxLifetime(0)
	if err := sdb.Ping(); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if !readOnly {
		var mode string
		if err := sdb.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
			sdb.Close()
			return nil, fmt.Errorf("store: open %s: read journal mode: %w", path, err)
		}
		if mode != "wal" {
			sdb.Close()
			return nil, fmt.Errorf("store: open %s: journal mode is %q, want wal (is the file system local?)", path, mode)
		}
	}
	return &DB{sql: sdb, backend: SQLite, where: path, readOnly: readOnly, wmu: make(chan struct{}, 1)}, nil
}

// isBusy reports whether err is SQLite's "database is locked" or "busy".
func isBusy(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && (se.Code == sqlite3.ErrBusy || se.Code == sqlite3.ErrLocked)
}

// Path is the SQLite file ("" on PostgreSQL).
func (db *DB) Path() string {
	if db.backend != SQLite {
		return ""
	}
	return db.where
}

// Backup writes a consistent copy of a SQLite database to path with VACUUM
// INTO, while the engine keeps writing (readers and the writer are not
// blocked). path must not exist yet. On PostgreSQL it fails with
// ErrUnsupported: back up with pg_dump (docs/operations.md).
func (db *DB) Backup(ctx context.Context, path string) error {
	if db.backend != SQLite {
		return fmt.Errorf("store: backup of %s: %w: use pg_dump (docs/operations.md)", db.where, ErrUnsupported)
	}
	if path == "" {
		return errors.New("store: backup: empty path")
	}
	if _, err := db.sql.ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		return fmt.Errorf("store: backup to %s: %w", path, err)
	}
	return nil
}

// IntegrityCheck runs SQLite's integrity check and returns an error that
// quotes its first complaint. On PostgreSQL, whose pages carry their own
// checks, it only asks the server to answer.
func (db *DB) IntegrityCheck(ctx context.Context) error {
	if db.backend != SQLite {
		if err := db.sql.PingContext(ctx); err != nil {
			return fmt.Errorf("store: %s: %w", db.where, err)
		}
		return nil
	}
	var res string
	if err := db.sql.QueryRowContext(ctx, `PRAGMA integrity_check(1)`).Scan(&res); err != nil {
		return fmt.Errorf("store: integrity check: %w", err)
	}
	if res != "ok" {
		return fmt.Errorf("store: integrity check failed: %s", res)
	}
	return nil
}
