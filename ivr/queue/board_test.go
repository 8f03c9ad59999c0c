package queue_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/govline/ivr/internal/latency"
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

func TestCallbacks(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		url := store.SQLiteURL(filepath.Join(t.TempDir(), "ivr.db"))
		queuetest.TestCallbacks(t, func(t *testing.T) (a, b queue.Callbacks) {
			return queue.Callbacks{DB: openDB(t, url)}, queue.Callbacks{DB: openDB(t, url)}
		})
	})
	t.Run("postgres", func(t *testing.T) {
		url := pgtest.Start(t).NewDatabase(t)
		queuetest.TestCallbacks(t, func(t *testing.T) (a, b queue.Callbacks) {
			return queue.Callbacks{DB: openDB(t, url)}, queue.Callbacks{DB: openDB(t, url)}
		})
	})
}

// BenchmarkSharedClaim: the agent claim latency on PostgreSQL, from a
// caller joining the queue on engine B with an agent free (registered with
// engine A) to the claim that names the agent to ring (two transactions:
// the join and the claim); then the agent answers, and is done.
func BenchmarkSharedClaim(b *testing.B) {
	srv := pgtest.Start(b)
	if err := srv.SetFsync(true); err != nil { // commits on disk, as in production
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.SetFsync(false) })
	url := srv.NewDatabase(b)
	cfg := queue.Config{Queues: map[string]queue.QueueConfig{"level1": {}}}
	ctx := context.Background()
	var boards [2]*queue.Shared
	for i, name := range []string{"engine-a", "engine-b"} {
		b2, err := queue.NewShared(ctx, openDB(b, url), queue.SharedConfig{Config: cfg, Engine: name})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { b2.Close() })
		boards[i] = b2
	}
	if err := boards[0].Register(ctx, queue.Agent{Name: "alice", Queues: []string{"level1"}}, "sip:alice@127.0.0.1:5070", time.Now().Add(time.Hour)); err != nil {
		b.Fatal(err)
	}
	var lat latency.Recorder
	n := 0
	start := time.Now()
	for b.Loop() {
		n++
		t0 := time.Now()
		p, err := boards[1].Join(ctx, "level1", fmt.Sprint("call-", n))
		if err != nil {
			b.Fatal(err)
		}
		ts, err := p.Claim(ctx)
		if err != nil || len(ts) != 1 {
			b.Fatalf("claim %v %v", ts, err)
		}
		lat.Add(time.Since(t0))
		if err := p.Settle(ctx, "alice", true); err != nil {
			b.Fatal(err)
		}
		if err := boards[1].Done(ctx, "alice", time.Minute); err != nil {
			b.Fatal(err)
		}
	}
	lat.Report(b, time.Since(start), "claims/s")
}
