package tickets_test

import (
	"path/filepath"
	"testing"

	"github.com/govline/ivr/internal/pgtest"
	"github.com/govline/ivr/store"
	"github.com/govline/ivr/tickets"
	"github.com/govline/ivr/tickets/storetest"
)

// The ticket store's conformance kit on both backends.
func TestStoreSQLite(t *testing.T) {
	storetest.TestStore(t, func(t *testing.T) string {
		return store.SQLiteURL(filepath.Join(t.TempDir(), tickets.DBFile))
	})
}

func TestStorePostgres(t *testing.T) {
	storetest.TestStore(t, func(t *testing.T) string { return pgtest.Start(t).NewDatabase(t) })
}
