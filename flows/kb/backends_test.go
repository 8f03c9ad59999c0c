package kb_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/govline/ivr/flows/kb"
	"github.com/govline/ivr/flows/kb/kbtest"
	"github.com/govline/ivr/internal/pgtest"
	"github.com/govline/ivr/store"
)

// The PostgreSQL server of this package's tests (started by the first that
// needs it).
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// twoHandles opens url twice, as two engines sharing the line's database.
func twoHandles(t *testing.T, url string) (a, b kb.MissLog) {
	t.Helper()
	var logs [2]kb.MissLog
	for i := range logs {
		db, err := store.Open(context.Background(), url, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		logs[i] = kb.NewMissTable(db)
	}
	return logs[0], logs[1]
}

// The miss log's conformance kit on both backends.
func TestMissLogSQLite(t *testing.T) {
	kbtest.TestMissLog(t, func(t *testing.T) (a, b kb.MissLog) {
		return twoHandles(t, store.SQLiteURL(filepath.Join(t.TempDir(), "ivr.db")))
	})
}

func TestMissLogPostgres(t *testing.T) {
	kbtest.TestMissLog(t, func(t *testing.T) (a, b kb.MissLog) {
		return twoHandles(t, pgtest.Start(t).NewDatabase(t))
	})
}
