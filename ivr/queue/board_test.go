package queue_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/govline/ivr/internal/pgtest"
	"github.com/govline/ivr/ivr/queue"
	"github.com/govline/ivr/ivr/queue/queuetest"
	"github.com/govline/ivr/store"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func openDB(t testing.TB, url string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), url, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// The embedded line: one engine's queue in memory (SQLite deployments).
func TestLocalBoard(t *testing.T) {
	queuetest.TestBoard(t, func(t *testing.T, cfg queue.Config) queuetest.Engines {
		q, err := queue.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		l := &queue.Local{Q: q}
		return queuetest.Engines{A: l, B: l}
	})
}

// lease is the shared board's lease in the tests: a dead engine is
// released within about a second.
const lease = time.Second

// sharedEngines starts two engines' boards on one new PostgreSQL database.
func sharedEngines(t *testing.T, cfg queue.Config) queuetest.Engines {
	url := pgtest.Start(t).NewDatabase(t)
	var e queuetest.Engines
	var dbA *store.DB
	for i, name := range []string{"engine-a", "engine-b"} {
		db := openDB(t, url)
		b, err := queue.NewShared(context.Background(), db, queue.SharedConfig{Config: cfg, Engine: name, Lease: lease})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		if i == 0 {
			e.A, dbA = b, db
		} else {
			e.B = b
		}
	}
	// Engine A loses its database as a crashed engine does: its rows stay
	// until the others see its lease lapse.
	e.Kill, e.Lease = func() { dbA.Close() }, lease
	return e
}

// Engines sharing one PostgreSQL: the database decides.
func TestSharedBoard(t *testing.T) {
	queuetest.TestBoard(t, sharedEngines)
}

func TestDirectory(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		url := store.SQLiteURL(filepath.Join(t.TempDir(), "ivr.db"))
		queuetest.TestDirectory(t, func(t *testing.T) (a, b queue.Directory) {
			return queue.Directory{DB: openDB(t, url)}, queue.Directory{DB: openDB(t, url)}
		})
	})
	t.Run("postgres", func(t *testing.T) {
		url := pgtest.Start(t).NewDatabase(t)
		queuetest.TestDirectory(t, func(t *testing.T) (a, b queue.Directory) {
			return queue.Directory{DB: openDB(t, url)}, queue.Directory{DB: openDB(t, url)}
		})
	})
}
