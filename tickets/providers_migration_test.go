package tickets_test

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"testing"
	"testing/fstest"
	"time"

	"github.com/govline/ivr/internal/pgtest"
	"github.com/govline/ivr/store"
	"github.com/govline/ivr/tickets"
)

// upTo returns the migrations of fsys numbered below n.
func upTo(t *testing.T, fsys fs.FS, n string) fstest.MapFS {
	t.Helper()
	out := fstest.MapFS{}
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if name < n {
			b, err := fs.ReadFile(fsys, name)
			if err != nil {
				t.Fatal(err)
			}
			out[name] = &fstest.MapFile{Data: b}
		}
	}
	return out
}

// The providers migration on a line with data: the tickets, users and
// history written before it are the default provider's, the history keeps
// its ids, corrections and append-only guard, a resolve still writes its
// notification, and the sessions end (SQLite rebuilds the users table).
func testProvidersMigration(t *testing.T, url, before string) {
	ctx := context.Background()
	old := &store.Schema{Name: "line", SQLite: upTo(t, store.Main.SQLite, before), Postgres: upTo(t, store.Main.Postgres, before)}
	db, err := store.Open(ctx, url, store.Options{Schema: old})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Write(ctx, func(tx *store.Tx) error {
		for _, q := range []string{
			`INSERT INTO users (name, role, password, created_ns) VALUES ('ana', 'operator', 'x', 1)`,
			`INSERT INTO tickets (number, channel, service, priority, level, status, deadline_ns, created_ns, updated_ns, last_event)
			 VALUES ('10000004', 'phone', 'passport', 'normal', 1, 'new', 5000000000, 1000000000, 3000000000, 3)`,
			`INSERT INTO tickets (number, channel, service, priority, level, status, deadline_ns, created_ns, updated_ns, last_event)
			 VALUES ('10000012', 'email', 'passport', 'normal', 1, 'new', 99000000000000, 36000000000000, 36000000000000, 4)`,
			`INSERT INTO ticket_events (ticket, at_ns, actor, kind, data) VALUES ('10000004', 1000000000, 'ivr', 'created',
			 '{"channel":"phone","service":"passport","priority":"normal","level":1,"deadline_ns":5000000000}')`,
			`INSERT INTO ticket_events (ticket, at_ns, actor, kind, data) VALUES ('10000004', 2000000000, 'ana', 'note', '{"text":"first"}')`,
			`INSERT INTO ticket_events (ticket, at_ns, actor, kind, data, supersedes) VALUES ('10000004', 3000000000, 'ana', 'correction',
			 '{"text":"fixed","replaces":"note","reason":"typo"}', 2)`,
			`INSERT INTO ticket_events (ticket, at_ns, actor, kind, data) VALUES ('10000012', 36000000000000, 'ivr', 'created',
			 '{"channel":"email","service":"passport","priority":"normal","level":1,"deadline_ns":99000000000000}')`,
		} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO sessions (token_hash, "user", csrf, created_ns, expires_ns) VALUES (?, 'ana', 'c', 1, 9000000000000000000)`, []byte("h"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	db, err = store.Open(ctx, url, store.Options{})
	if err != nil {
		t.Fatalf("the providers migration on a line with data: %v", err)
	}
	defer db.Close()
	s := tickets.New(db)
	tk, err := s.Ticket(ctx, "10000004")
	if err != nil || tk.Provider != tickets.DefaultProvider {
		t.Fatalf("an old ticket: %+v %v", tk, err)
	}
	h, err := s.History(ctx, "10000004")
	if err != nil || len(h) != 3 || h[1].ID != 2 || h[1].SupersededBy != 3 || h[2].Supersedes != 2 {
		t.Fatalf("an old history: %+v %v", h, err)
	}
	if r, err := s.ReplayTicket(ctx, "10000004"); err != nil || r.Provider != tickets.DefaultProvider {
		t.Fatalf("an old ticket replayed: %+v %v", r, err)
	}
	// The e-mail request written before is in the roll-up's new column
	// (the whole hours of this period come from it).
	rep, err := s.Indicators(ctx, time.Unix(0, 1), time.Unix(20*3600, 0))
	if err != nil || rep.Total.Requests != 2 || rep.Total.Channels[tickets.ChannelEmail] != 1 || rep.Total.Channels[tickets.ChannelPhone] != 1 {
		t.Fatalf("indicators after the upgrade: %+v %v", rep.Total, err)
	}
	u, err := s.User(ctx, "ana")
	if err != nil || u.Provider != tickets.DefaultProvider || u.Role != tickets.RoleOperator {
		t.Fatalf("an old user: %+v %v", u, err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.AddUser(ctx, "test", "mona", tickets.RoleMonitor, "a long enough password"))
	must(s.AddNote(ctx, "10000004", "ana", "after the upgrade"))
	must(s.Resolve(ctx, "10000004", "ana", "done"))
	if ns, err := s.Outbox(ctx, "10000004", true); err != nil || len(ns) != 1 {
		t.Fatalf("the resolve's notification after the upgrade: %+v %v", ns, err)
	}
	err = db.Write(ctx, func(tx *store.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE ticket_events SET actor = 'mallory'`)
		return err
	})
	if err == nil || !store.IsRefused(err) {
		t.Fatalf("the history after the upgrade is not append-only: %v", err)
	}
	must(s.AddProvider(ctx, "test", "cnas", "CNAS"))
	if err := s.Transfer(ctx, "10000004", "ana", "cnas", "theirs"); !errors.Is(err, tickets.ErrTransition) {
		t.Fatalf("the transfer of a resolved ticket: %v", err)
	}
	must(s.Reopen(ctx, "10000004", "ana", "not done"))
	must(s.Transfer(ctx, "10000004", "ana", "cnas", "theirs"))
}

func TestProvidersMigrationSQLite(t *testing.T) {
	url := store.SQLiteURL(filepath.Join(t.TempDir(), tickets.DBFile))
	testProvidersMigration(t, url, "0013")
	// The rebuilt tables name no leftover of the rebuild.
	db, err := store.Open(context.Background(), url, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(context.Background(), `SELECT count(*) FROM sqlite_schema WHERE sql LIKE '%\_new%' ESCAPE '\'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d schema entries still name a _new table (%v)", n, err)
	}
}

func TestProvidersMigrationPostgres(t *testing.T) {
	testProvidersMigration(t, pgtest.Start(t).NewDatabase(t), "0005")
}
