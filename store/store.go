// Package store opens the line's database on one of two backends and gives
// the packages that keep data in it one way to read and write: SQLite, the
// embedded default (one file, nothing to configure), or PostgreSQL, the
// database several engines share (through github.com/jackc/pgx/v5).
//
// A database is named by a URL, the engine's store.url:
//
//	postgres://USER:PASSWORD@HOST:PORT/DB?sslmode=disable   PostgreSQL
//	sqlite:PATH                                              a SQLite file
//
// The store knows no table. Each domain owns its tables and is the only
// package that runs SQL on them (docs/tickets.md lists who owns what):
// package tickets the tickets, calls, transcripts, users, audit and
// outbox; package ivr/queue the SIP agents, lockouts and the shared
// queue's board; package flows/kb the knowledge base's misses. They write
// their SQL once, with ? placeholders, and the store rewrites it for
// PostgreSQL ($1, $2...); the few constructs the two dialects spell
// differently are methods of DB (ForUpdate, Greatest, FloatSum,
// IndexedBy).
//
// The schema of each backend grows by numbered migrations embedded in the
// binary (migrations/sqlite, migrations/postgres), applied by Open in
// order, once, under a lock that makes two engines starting together
// safe; a database migrated by a newer binary is refused (ErrSchemaTooNew)
// rather than misread.
//
// Writes go through DB.Write: one transaction, retried on PostgreSQL when
// it failed for a reason that left nothing behind (a serialization failure
// or deadlock, a connection lost or refused before the commit: a server
// restarting), and when the answer to its commit was lost but the same
// server says it did not commit; never when the commit itself may have
// happened. DB.WriteStats counts those retries and the writes that failed
// all the same. On SQLite
// the process has one writer at a time (waiting for it honours the
// context) and other processes are waited for up to BusyTimeout.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// Backend is a kind of database.
type Backend string

// Backends.
const (
	SQLite   Backend = "sqlite"
	Postgres Backend = "postgres"
)

var (
	// ErrNoDatabase is returned (wrapped) by a read-only open of a SQLite
	// file that does not exist.
	ErrNoDatabase = errors.New("no database")
	// ErrSchemaTooNew is returned (wrapped) when the database has a schema
	// version this binary does not know: a newer binary migrated it.
	ErrSchemaTooNew = errors.New("database schema is newer than this program")
	// ErrReadOnly is returned (wrapped) by Write on a store opened
	// read-only.
	ErrReadOnly = errors.New("store is read-only")
	// ErrUnsupported is returned (wrapped) by an operation the backend
	// does not offer (a SQLite file copy on PostgreSQL: use pg_dump).
	ErrUnsupported = errors.New("not available on this backend")
)

// Options change how Open opens a database. The zero value opens the
// line's database (Main) for reading and writing.
type Options struct {
	// Schema is the database's tables; nil means Main.
	Schema *Schema
	// ReadOnly opens without migrating (the schema must not be newer than
	// the binary) and refuses writes: what ivrctl does next to a running
	// engine. A SQLite file must exist.
	ReadOnly bool
	// Synchronous is SQLite's synchronous setting, "NORMAL" (default: a
	// process crash loses nothing committed) or "FULL" (nor does a power
	// cut); see docs/tickets.md.
	Synchronous string
	// MaxConns bounds the connection pool (PostgreSQL; default 16).
	MaxConns int
	// RetryFor is how long a PostgreSQL write keeps retrying a failure
	// that left nothing behind (default 10 s; the context may end it
	// sooner).
	RetryFor time.Duration
}

// DB is an open database. Its methods are safe for concurrent use.
type DB struct {
	sql      *sql.DB
	backend  Backend
	where    string // the file, or the URL without its password
	readOnly bool
	retryFor time.Duration
	// wmu is SQLite's one writer in the process: a one-slot semaphore, so
	// that waiting for it can be cancelled by the context.
	wmu chan struct{}
	// pgcfg is PostgreSQL's connection configuration (Listen dials with it).
	pgcfg *pgx.ConnConfig
	// rebound caches the PostgreSQL form of each query.
	rebound sync.Map
	// retries and failures are WriteStats.
	retries, failures atomic.Uint64
}

// SQLiteURL is the store URL of the SQLite file at path.
func SQLiteURL(path string) string { return "sqlite:" + path }

// ParseURL tells the backend a store URL names and its target: the file of
// a sqlite: URL, the URL itself for PostgreSQL. An empty URL is an error:
// the caller decides which file is the default.
func ParseURL(u string) (Backend, string, error) {
	switch {
	case strings.HasPrefix(u, "postgres://"), strings.HasPrefix(u, "postgresql://"):
		if _, err := pgx.ParseConfig(u); err != nil {
			return "", "", fmt.Errorf("store url %s: %w", Redact(u), err)
		}
		return Postgres, u, nil
	case strings.HasPrefix(u, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(u, "sqlite:"), "//")
		if path == "" {
			return "", "", errors.New("store url sqlite: names no file (want sqlite:PATH)")
		}
		return SQLite, path, nil
	case u == "":
		return "", "", errors.New("empty store url")
	}
	return "", "", fmt.Errorf("store url %q: want postgres://USER:PASSWORD@HOST:PORT/DB or sqlite:PATH", Redact(u))
}

// Redact returns a store URL without its password, for messages and logs.
func Redact(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.User == nil {
		if i := strings.Index(u, "@"); i >= 0 && strings.Contains(u[:i], "://") {
			return u[:strings.Index(u, "://")+3] + "***" + u[i:]
		}
		return u
	}
	if _, has := p.User.Password(); has {
		p.User = url.UserPassword(p.User.Username(), "xxxxx")
	}
	q := p.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		p.RawQuery = q.Encode()
	}
	return p.String()
}

// Open opens the database named by url (see ParseURL) and, unless
// o.ReadOnly, applies its pending migrations.
func Open(ctx context.Context, u string, o Options) (*DB, error) {
	backend, target, err := ParseURL(u)
	if err != nil {
		return nil, err
	}
	schema := o.Schema
	if schema == nil {
		schema = &Main
	}
	ms, err := schema.migrations(backend)
	if err != nil {
		return nil, err
	}
	var db *DB
	switch backend {
	case SQLite:
		db, err = openSQLite(target, o)
	default:
		db, err = openPostgres(ctx, target, o)
	}
	if err != nil {
		return nil, err
	}
	if o.ReadOnly {
		err = checkVersion(ctx, db, schema, ms)
	} else {
		err = migrate(ctx, db, ms)
	}
	if err != nil {
		db.sql.Close()
		return nil, fmt.Errorf("store: open %s: %w", db.where, err)
	}
	return db, nil
}

// Backend is the database's kind.
func (db *DB) Backend() Backend { return db.backend }

// String names the database without secrets: the SQLite file, or the
// PostgreSQL URL with its password masked.
func (db *DB) String() string { return db.where }

// ReadOnly reports whether the store was opened read-only.
func (db *DB) ReadOnly() bool { return db.readOnly }

// Close closes the database. Writes have been committed when Write
// returned; Close does not wait for calls still running.
func (db *DB) Close() error {
	if err := db.sql.Close(); err != nil {
		return fmt.Errorf("store: close %s: %w", db.where, err)
	}
	return nil
}

// Schema is a database's tables: the migrations of each backend, as
// NNNN_name.sql files at the root of each file system (numbered from 0001
// without gaps). A nil file system means the backend is not offered.
type Schema struct {
	Name             string // in errors
	SQLite, Postgres fs.FS
}

func (s *Schema) migrations(b Backend) ([]migration, error) {
	fsys := s.SQLite
	if b == Postgres {
		fsys = s.Postgres
	}
	if fsys == nil {
		return nil, fmt.Errorf("store: the %s database is not offered on %s: %w", s.Name, b, ErrUnsupported)
	}
	ms, err := loadMigrations(fsys)
	if err != nil {
		return nil, fmt.Errorf("store: %s schema for %s: %w", s.Name, b, err)
	}
	return ms, nil
}
