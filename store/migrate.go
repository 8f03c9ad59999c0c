package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"time"
)

// The line's database: migrations/sqlite/NNNN_name.sql and
// migrations/postgres/NNNN_name.sql, each backend numbered on its own from
// 0001 without gaps. Each runs once, in its own transaction, and is
// recorded in schema_migrations. To change the schema add a file to each
// backend; never edit one that has shipped.
//
//go:embed migrations/sqlite/*.sql migrations/postgres/*.sql
var mainFiles embed.FS

// Main is the line's shared database: every domain's tables.
var Main = Schema{Name: "line", SQLite: mustSub(mainFiles, "migrations/sqlite"), Postgres: mustSub(mainFiles, "migrations/postgres")}

func mustSub(fsys fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		panic(err) // a constant path
	}
	return sub
}

type migration struct {
	version int
	name    string // file name, e.g. "0001_calls.sql"
	sql     string
}

var migrationName = regexp.MustCompile(`^([0-9]{4})_[a-z0-9_]+\.sql$`)

// loadMigrations reads the *.sql files at the root of fsys and checks that
// they are numbered 1, 2, 3... without gaps or duplicates.
func loadMigrations(fsys fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".sql" {
			continue
		}
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration %q: name must look like 0001_name.sql (lower case)", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", e.Name(), err)
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			if i > 0 && m.version == ms[i-1].version {
				return nil, fmt.Errorf("migrations %s and %s have the same version %d", ms[i-1].name, m.name, m.version)
			}
			return nil, fmt.Errorf("migration %s: version %d, want %d (versions start at 1 without gaps)", m.name, m.version, i+1)
		}
	}
	if len(ms) == 0 {
		return nil, errors.New("no migrations found")
	}
	return ms, nil
}

var createSchemaMigrations = map[Backend]string{
	SQLite: `CREATE TABLE IF NOT EXISTS schema_migrations (
    version       INTEGER NOT NULL PRIMARY KEY,
    name          TEXT    NOT NULL,
    applied_at_ns INTEGER NOT NULL
) STRICT`,
	Postgres: `CREATE TABLE IF NOT EXISTS schema_migrations (
    version       integer NOT NULL PRIMARY KEY,
    name          text    NOT NULL,
    applied_at_ns bigint  NOT NULL
)`,
}

// migrationLock is the PostgreSQL advisory lock under which an engine
// migrates: two engines starting together migrate one after the other.
const migrationLock = 0x1f0e_5c4e_6d16 // "ivr schema"

// migrate applies the migrations of ms not yet recorded in db. It is safe
// against another process migrating the same database at the same time:
// on SQLite each migration runs in a BEGIN IMMEDIATE transaction that
// re-checks whether it was applied meanwhile; on PostgreSQL the whole run
// holds an advisory lock.
func migrate(ctx context.Context, db *DB, ms []migration) error {
	conn, err := db.sql.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if db.backend == Postgres {
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
			return fmt.Errorf("migration lock: %w", err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, migrationLock)
	}
	if _, err := conn.ExecContext(ctx, createSchemaMigrations[db.backend]); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	current, err := schemaVersion(ctx, conn)
	if err != nil {
		return err
	}
	if err := tooNew(current, ms); err != nil {
		return err
	}
	for _, m := range ms[current:] {
		if err := applyMigration(ctx, db, conn, m); err != nil {
			return err
		}
	}
	return nil
}

func applyMigration(ctx context.Context, db *DB, conn *sql.Conn, m migration) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migration %s: begin: %w", m.name, err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, db.Q(`SELECT count(*) FROM schema_migrations WHERE version = ?`), m.version).Scan(&n); err != nil {
		return fmt.Errorf("migration %s: %w", m.name, err)
	}
	if n > 0 {
		return nil // applied by another process meanwhile
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("migration %s: %w", m.name, err)
	}
	if _, err := tx.ExecContext(ctx,
		db.Q(`INSERT INTO schema_migrations (version, name, applied_at_ns) VALUES (?, ?, ?)`),
		m.version, m.name, time.Now().UnixNano()); err != nil {
		return fmt.Errorf("migration %s: record: %w", m.name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migration %s: commit: %w", m.name, err)
	}
	return nil
}

type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// schemaVersion returns the highest applied migration, 0 if none.
func schemaVersion(ctx context.Context, q queryRower) (int, error) {
	var v int
	if err := q.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

func tooNew(current int, ms []migration) error {
	if latest := ms[len(ms)-1].version; current > latest {
		return fmt.Errorf("%w: schema version %d, this program knows versions up to %d; run the newer ivrd/ivrctl that wrote it",
			ErrSchemaTooNew, current, latest)
	}
	return nil
}

// checkVersion is the read-only counterpart of migrate: the database must
// have this schema's migrations table, not newer than this binary.
func checkVersion(ctx context.Context, db *DB, s *Schema, ms []migration) error {
	q := `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'`
	if db.backend == Postgres {
		q = `SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = current_schema() AND tablename = 'schema_migrations'`
	}
	var n int
	if err := db.sql.QueryRowContext(ctx, q).Scan(&n); err != nil {
		return fmt.Errorf("read schema: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("not a %s database (no schema_migrations table); has an engine (ivrd) opened it yet?", s.Name)
	}
	current, err := schemaVersion(ctx, db.sql)
	if err != nil {
		return err
	}
	return tooNew(current, ms)
}

// SchemaVersion returns the highest migration applied to the database.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) { return schemaVersion(ctx, db.sql) }
