package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/govline/ivr/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// backend is a kind of database to test on: newURL makes an empty
// database of that kind for the test.
type backend struct {
	name   Backend
	newURL func(t *testing.T) string
}

func backends() []backend {
	return []backend{
		{SQLite, func(t *testing.T) string { return SQLiteURL(filepath.Join(t.TempDir(), "ivr.db")) }},
		{Postgres, func(t *testing.T) string { return pgtest.Start(t).NewDatabase(t) }},
	}
}

func eachBackend(t *testing.T, fn func(t *testing.T, newURL func(*testing.T) string)) {
	for _, b := range backends() {
		t.Run(string(b.name), func(t *testing.T) { fn(t, b.newURL) })
	}
}

func open(t *testing.T, url string, o Options) *DB {
	t.Helper()
	db, err := Open(context.Background(), url, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func exec(t *testing.T, db *DB, q string, args ...any) {
	t.Helper()
	if err := db.Write(context.Background(), func(tx *Tx) error {
		_, err := tx.ExecContext(context.Background(), q, args...)
		return err
	}); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func TestRebind(t *testing.T) {
	for in, want := range map[string]string{
		`SELECT ? + ?`:                           `SELECT $1 + $2`,
		`SELECT '?', "a?b", ? -- is it?` + "\n?": `SELECT '?', "a?b", $1 -- is it?` + "\n$2",
		`INSERT INTO t VALUES (?, 'it''s', ?)`:   `INSERT INTO t VALUES ($1, 'it''s', $2)`,
		`no placeholders`:                        `no placeholders`,
	} {
		if got := rebind(in); got != want {
			t.Errorf("rebind(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseURL(t *testing.T) {
	for u, want := range map[string]Backend{
		"postgres://ivr:secret@db.example:5432/ivr?sslmode=disable": Postgres,
		"postgresql://ivr@127.0.0.1/ivr":                            Postgres,
		"sqlite:var/ivr.db":                                         SQLite,
		"sqlite:///var/lib/ivr/ivr.db":                              SQLite,
	} {
		b, _, err := ParseURL(u)
		if err != nil || b != want {
			t.Errorf("ParseURL(%q) = %s, %v; want %s", u, b, err, want)
		}
	}
	if _, p, _ := ParseURL("sqlite:///var/lib/ivr/ivr.db"); p != "/var/lib/ivr/ivr.db" {
		t.Errorf("sqlite:///var/lib/ivr/ivr.db names %q", p)
	}
	for _, bad := range []string{"", "mysql://x", "var/ivr.db", "sqlite:", "postgres://x:y@host:notaport/db"} {
		if _, _, err := ParseURL(bad); err == nil {
			t.Errorf("ParseURL(%q) accepted", bad)
		} else if strings.Contains(err.Error(), ":y@") {
			t.Errorf("ParseURL(%q): the error shows the password: %v", bad, err)
		}
	}
	if got := Redact("postgres://ivr:s3cret@db:5432/ivr?sslmode=disable"); strings.Contains(got, "s3cret") {
		t.Errorf("Redact kept the password: %s", got)
	}
	if got := Redact("postgres://ivr@db/ivr?password=s3cret"); strings.Contains(got, "s3cret") {
		t.Errorf("Redact kept the password parameter: %s", got)
	}
}

func TestOpenSQLiteCreatesDirAndSetsPragmas(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "we?ird #dir%20", "ivr.db")
	db := open(t, SQLiteURL(path), Options{})
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database file not created at the path given: %v", err)
	}
	for pragma, want := range map[string]string{
		"journal_mode": "wal",
		"foreign_keys": "1",
		"synchronous":  "1", // NORMAL
		"busy_timeout": "5000",
	} {
		var got string
		if err := db.QueryRowContext(context.Background(), "PRAGMA "+pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %s, want %s", pragma, got, want)
		}
	}
}

func versions(t *testing.T, db *DB) string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var vs []string
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		vs = append(vs, fmt.Sprint(v))
	}
	return strings.Join(vs, " ")
}

// The line's schema applies once per database, on both backends, also
// when engines start together; opening again changes nothing.
func TestMainSchemaMigratesOnce(t *testing.T) {
	eachBackend(t, func(t *testing.T, newURL func(*testing.T) string) {
		url := newURL(t)
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Go(func() {
				db, err := Open(context.Background(), url, Options{})
				if err == nil {
					err = db.Close()
				}
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		db := open(t, url, Options{})
		b, _, _ := ParseURL(url)
		ms, err := Main.migrations(b)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]string, len(ms))
		for i := range ms {
			want[i] = fmt.Sprint(i + 1)
		}
		if got := versions(t, db); got != strings.Join(want, " ") {
			t.Fatalf("applied versions %q, want %q", got, strings.Join(want, " "))
		}
	})
}

// A schema grows by its new files only; a failing migration is rolled back
// whole and not recorded; a database migrated by a newer binary is refused
// by a read-write and a read-only open alike.
func TestMigrationsGrowFailAndRefuseNewer(t *testing.T) {
	eachBackend(t, func(t *testing.T, newURL func(*testing.T) string) {
		ctx := context.Background()
		url := newURL(t)
		v1 := fstest.MapFS{"0001_a.sql": {Data: []byte(`CREATE TABLE a (x INTEGER);`)}}
		v2 := fstest.MapFS{
			"0001_a.sql": v1["0001_a.sql"],
			"0002_b.sql": {Data: []byte(`CREATE TABLE b (y INTEGER); INSERT INTO b VALUES (1);`)},
			"README.md":  {Data: []byte("ignored")},
		}
		v3 := fstest.MapFS{
			"0001_a.sql":   v1["0001_a.sql"],
			"0002_b.sql":   v2["0002_b.sql"],
			"0003_bad.sql": {Data: []byte(`CREATE TABLE c (z INTEGER); THIS IS NOT SQL;`)},
		}
		schema := func(fsys fstest.MapFS) *Schema { return &Schema{Name: "test", SQLite: fsys, Postgres: fsys} }
		for _, fsys := range []fstest.MapFS{v1, v2, v2} {
			db, err := Open(ctx, url, Options{Schema: schema(fsys)})
			if err != nil {
				t.Fatal(err)
			}
			db.Close()
		}
		db := open(t, url, Options{Schema: schema(v2)})
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM b`).Scan(&n); err != nil || n != 1 {
			t.Fatalf("0002 applied %d times (err %v), want once", n, err)
		}
		if got := versions(t, db); got != "1 2" {
			t.Fatalf("applied %q, want 1 2", got)
		}

		_, err := Open(ctx, url, Options{Schema: schema(v3)})
		if err == nil || !strings.Contains(err.Error(), "0003_bad.sql") {
			t.Fatalf("bad migration: err = %v, want one naming 0003_bad.sql", err)
		}
		if got := versions(t, db); got != "1 2" {
			t.Fatalf("after the failed migration applied %q, want 1 2", got)
		}
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM c`).Scan(&n); err == nil {
			t.Fatal("the table of the failed migration exists")
		}

		for _, ro := range []bool{false, true} {
			_, err := Open(ctx, url, Options{Schema: schema(v1), ReadOnly: ro})
			if !errors.Is(err, ErrSchemaTooNew) || !strings.Contains(err.Error(), "version 2") || !strings.Contains(err.Error(), "up to 1") {
				t.Errorf("read-only %v: a schema newer than the binary: err = %v, want ErrSchemaTooNew naming both versions", ro, err)
			}
		}
	})
}

// A SQLite file the first release left (migration 0001 only, with a call)
// keeps its call through the later migrations, with no service and queue
// outcome "none", which the database then holds to its three values.
func TestMigrationKeepsExistingCalls(t *testing.T) {
	ctx := context.Background()
	url := SQLiteURL(filepath.Join(t.TempDir(), "ivr.db"))
	first, err := fs.Sub(mainFiles, "migrations/sqlite")
	if err != nil {
		t.Fatal(err)
	}
	only1 := fstest.MapFS{}
	b, _ := fs.ReadFile(first, "0001_calls.sql")
	only1["0001_calls.sql"] = &fstest.MapFile{Data: b}
	old := open(t, url, Options{Schema: &Schema{Name: "line", SQLite: only1}})
	exec(t, old, `INSERT INTO calls (id, telephony, caller, called, start_ns) VALUES ('old-call', 'sip', '+40721000000', '1919', 1)`)
	old.Close()
	db := open(t, url, Options{})
	var svc, outcome, engine string
	if err := db.QueryRowContext(ctx, `SELECT service, queue_outcome, engine FROM calls WHERE id = 'old-call'`).Scan(&svc, &outcome, &engine); err != nil {
		t.Fatal(err)
	}
	if svc != "" || outcome != "none" || engine != "" {
		t.Fatalf("old call: service %q outcome %q engine %q", svc, outcome, engine)
	}
	err = db.Write(ctx, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE calls SET queue_outcome = 'lost' WHERE id = 'old-call'`)
		return err
	})
	if !IsRefused(err) {
		t.Fatalf("the database accepted an unknown queue outcome: %v", err)
	}
}

func TestLoadMigrationsRejectsBadSets(t *testing.T) {
	sql := &fstest.MapFile{Data: []byte("SELECT 1;")}
	for name, fsys := range map[string]fstest.MapFS{
		"gap":       {"0001_a.sql": sql, "0003_c.sql": sql},
		"duplicate": {"0001_a.sql": sql, "0001_b.sql": sql},
		"bad name":  {"1_a.sql": sql},
		"not first": {"0002_a.sql": sql},
		"empty":     {},
	} {
		if _, err := loadMigrations(fsys); err == nil {
			t.Errorf("%s: loadMigrations accepted %v", name, fsys)
		}
	}
}

// A read-only store refuses writes (on PostgreSQL the server itself, not
// only the code) and refuses a database no engine has opened.
func TestReadOnly(t *testing.T) {
	eachBackend(t, func(t *testing.T, newURL func(*testing.T) string) {
		ctx := context.Background()
		url := newURL(t)
		if _, err := Open(ctx, url, Options{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "not a line database") &&
			!errors.Is(err, ErrNoDatabase) {
			t.Fatalf("read-only open of a database no engine opened: %v", err)
		}
		w := open(t, url, Options{})
		exec(t, w, `INSERT INTO kb_misses (lang, query, count, first_ns, last_ns) VALUES ('ro', 'q', 1, 0, 0)`)
		r := open(t, url, Options{ReadOnly: true})
		err := r.Write(ctx, func(tx *Tx) error { return nil })
		if !errors.Is(err, ErrReadOnly) {
			t.Fatalf("Write on a read-only store: %v", err)
		}
		if r.Backend() == Postgres {
			_, err := r.sql.ExecContext(ctx, `DELETE FROM kb_misses`)
			if err == nil || !strings.Contains(err.Error(), "read-only") {
				t.Fatalf("the server let a read-only store delete: %v", err)
			}
		}
		var n int
		if err := r.QueryRowContext(ctx, `SELECT count(*) FROM kb_misses WHERE lang = ?`, "ro").Scan(&n); err != nil || n != 1 {
			t.Fatalf("read: %d, %v", n, err)
		}
	})
}

// The dialect's constructs mean the same on both backends.
func TestDialect(t *testing.T) {
	eachBackend(t, func(t *testing.T, newURL func(*testing.T) string) {
		db := open(t, newURL(t), Options{})
		var g, l int64
		var f float64
		err := db.QueryRowContext(context.Background(), `SELECT `+db.Greatest()+`(3, 9, 4), `+db.Least()+`(3, 9, 4), `+db.FloatSum("v")+`
			FROM (SELECT 9223372036854775807 AS v UNION ALL SELECT 9223372036854775807) AS t`).Scan(&g, &l, &f)
		if err != nil || g != 9 || l != 3 || f < 1.8e19 {
			t.Fatalf("greatest %d, least %d, float sum %g (no overflow), err %v", g, l, f, err)
		}
	})
}

// PostgreSQL restarted while writers write, by an administrator (fast
// shutdown) or by a crash (immediate shutdown, the write-ahead log
// replayed at start): a write whose transaction failed before its commit
// is tried again until the server is back. So every Write that returned
// nil is in the database and, with the server back within the retry time,
// only those whose commit was on its way fail (ErrCommitUnknown: the
// server restarted, so its word on them cannot be trusted).
func TestWriteRetriedAcrossRestart(t *testing.T) {
	srv := pgtest.Start(t)
	for _, stop := range []struct {
		name string
		stop func() error
	}{{"fast", srv.Stop}, {"crash", srv.Crash}} {
		t.Run(stop.name, func(t *testing.T) {
			ctx := context.Background()
			db := open(t, srv.NewDatabase(t), Options{RetryFor: 30 * time.Second})
			exec(t, db, `CREATE TABLE w (writer integer, i integer, PRIMARY KEY (writer, i))`)
			const writers = 8
			stopWriters := make(chan struct{})
			var mu sync.Mutex
			acked, failed := map[[2]int]bool{}, 0
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					for i := 0; ; i++ {
						select {
						case <-stopWriters:
							return
						default:
						}
						err := db.Write(ctx, func(tx *Tx) error {
							_, err := tx.ExecContext(ctx, `INSERT INTO w VALUES (?, ?)`, w, i)
							return err
						})
						mu.Lock()
						if err == nil {
							acked[[2]int{w, i}] = true
						} else {
							failed++
							t.Logf("writer %d, write %d: %v", w, i, err)
						}
						mu.Unlock()
					}
				})
			}
			time.Sleep(300 * time.Millisecond)
			if err := stop.stop(); err != nil {
				t.Fatal(err)
			}
			if err := srv.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond)
			close(stopWriters)
			wg.Wait()
			rows, err := db.QueryContext(ctx, `SELECT writer, i FROM w`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			stored := map[[2]int]bool{}
			for rows.Next() {
				var k [2]int
				if err := rows.Scan(&k[0], &k[1]); err != nil {
					t.Fatal(err)
				}
				stored[k] = true
			}
			for k := range acked {
				if !stored[k] {
					t.Errorf("write %v was acknowledged and is not in the database", k)
				}
			}
			unacked := 0
			for k := range stored {
				if !acked[k] {
					unacked++
				}
			}
			// A commit in flight when the server went down may have
			// happened or not (ErrCommitUnknown): at most one per writer,
			// and only those are stored without an acknowledgement.
			if failed > writers || unacked > failed {
				t.Errorf("%d writes failed, %d stored without an acknowledgement: more than one commit in flight per writer at the restart", failed, unacked)
			}
			// What the operator's /metrics shows (ivr_store_write_*):
			// the restart made writes run again, and each failure was
			// counted.
			st := db.WriteStats()
			t.Logf("%d writes acknowledged, %d stored, %d failed across the restart; %+v", len(acked), len(stored), failed, st)
			if st.Failures != uint64(failed) {
				t.Errorf("WriteStats counts %d failures, the writers saw %d", st.Failures, failed)
			}
			if st.Retries == 0 {
				t.Error("WriteStats counts no retry across a restart")
			}
		})
	}
}

// A server that hangs (its processes stopped, its connections open): a
// write ends at its context's deadline and is counted as a failure.
func TestWriteToAHungServerCounted(t *testing.T) {
	srv := pgtest.Start(t)
	db := open(t, srv.NewDatabase(t), Options{})
	exec(t, db, `CREATE TABLE w (i integer PRIMARY KEY)`)
	if err := srv.Freeze(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := srv.Thaw(); err != nil {
			t.Fatal(err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := db.Write(ctx, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO w VALUES (1)`)
		return err
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("write to a hung server: %v, want the context's deadline", err)
	}
	if st := db.WriteStats(); st.Failures != 1 {
		t.Errorf("write stats %+v, want one failure", st)
	}
}

// A server that stays away longer than Options.RetryFor: the write fails
// after about that long, and is counted as a failure after its retries.
func TestWriteGivesUpAfterRetryFor(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	db := open(t, srv.NewDatabase(t), Options{RetryFor: 700 * time.Millisecond})
	exec(t, db, `CREATE TABLE w (i integer PRIMARY KEY)`)
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
	}()
	t0 := time.Now()
	err := db.Write(ctx, func(tx *Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO w VALUES (1)`)
		return err
	})
	took := time.Since(t0)
	if err == nil || !Transient(err) {
		t.Fatalf("write with the server stopped: %v, want a transient error", err)
	}
	if took < 400*time.Millisecond || took > 3*time.Second {
		t.Errorf("the write gave up after %s, want about the retry time (700 ms)", took)
	}
	if st := db.WriteStats(); st.Retries < 2 || st.Failures != 1 {
		t.Errorf("write stats %+v, want retries and one failure", st)
	}
}

// A listener hears each NOTIFY once it returned, and again after the
// server restarted (it listens anew and says so, since it may have missed
// some).
func TestListen(t *testing.T) {
	srv := pgtest.Start(t)
	ctx := context.Background()
	db := open(t, srv.NewDatabase(t), Options{})
	l, err := db.Listen(ctx, "ivr_test")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	notify := func() {
		exec(t, db, `SELECT pg_notify('ivr_test', '')`)
	}
	wake := func(what string) {
		t.Helper()
		select {
		case <-l.C:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no wake-up", what)
		}
	}
	notify()
	wake("a notification")
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	wake("listening again after the restart")
	deadline := time.Now().Add(10 * time.Second)
	for {
		notify()
		select {
		case <-l.C:
			return
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no notification heard after the restart")
		}
	}
}
