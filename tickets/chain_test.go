package tickets_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/govline/ivr/internal/pgtest"
	"github.com/govline/ivr/store"
	"github.com/govline/ivr/tickets"
)

// The chain's migration on a line with data: the rows written before it
// are linked in id order by the first write of the new version (the
// provider of a ticket followed through its transfer, an audit row in its
// user's provider's chain or the line's), verify passes before (the rows
// pending) and after, and a second engine links nothing twice.
func testChainMigration(t *testing.T, url, before string) {
	ctx := context.Background()
	old := &store.Schema{Name: "line", SQLite: upTo(t, store.Main.SQLite, before), Postgres: upTo(t, store.Main.Postgres, before)}
	db, err := store.Open(ctx, url, store.Options{Schema: old})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Write(ctx, func(tx *store.Tx) error {
		for _, q := range []string{
			`INSERT INTO providers (id, name, created_ns) VALUES ('passports', 'Passports', 1)`,
			`INSERT INTO users (name, role, password, created_ns, provider) VALUES ('ana', 'operator', 'x', 1, 'passports')`,
			`INSERT INTO audit (at_ns, "user", action, target, detail, address, ok) VALUES (1, 'ivrctl', 'user_add', 'ana', '', '', 1)`,
			`INSERT INTO audit (at_ns, "user", action, target, detail, address, ok) VALUES (2, 'ana', 'login', '', '', '10.0.0.1', 1)`,
			`INSERT INTO audit (at_ns, "user", action, target, detail, address, ok) VALUES (3, 'nobody', 'login_failed', '', 'unknown user', '10.0.0.2', 0)`,
			`INSERT INTO tickets (number, channel, service, priority, level, status, deadline_ns, created_ns, updated_ns, last_event, provider)
			 VALUES ('10000004', 'phone', 'passport', 'normal', 1, 'new', 5000000000, 1000000000, 4000000000, 4, 'default')`,
			`INSERT INTO tickets (number, channel, service, priority, level, status, deadline_ns, created_ns, updated_ns, last_event)
			 VALUES ('10000012', 'phone', 'other', 'normal', 1, 'new', 99000000000000, 36000000000000, 36000000000000, 3)`,
			`INSERT INTO ticket_events (ticket, at_ns, actor, kind, data) VALUES ('10000004', 1000000000, 'ivr', 'created',
			 '{"channel":"phone","caller":"+40700000001","service":"passport","priority":"normal","level":1,"provider":"passports","deadline_ns":5000000000}')`,
			`INSERT INTO ticket_events (ticket, at_ns, actor, kind, data) VALUES ('10000004', 2000000000, 'ana', 'note', '{"text":"first"}')`,
			`INSERT INTO ticket_events (ticket, at_ns, actor, kind, data) VALUES ('10000012', 36000000000000, 'ivr', 'created',
			 '{"channel":"phone","caller":"+40700000002","personal":{"cnp":"1"},"service":"other","priority":"normal","level":1,"deadline_ns":99000000000000}')`,
			`INSERT INTO ticket_events (ticket, at_ns, actor, kind, data) VALUES ('10000004', 3000000000, 'ana', 'transfer', '{"from":"passports","to":"default","text":"theirs"}')`,
			`INSERT INTO ticket_events (ticket, at_ns, actor, kind, data) VALUES ('10000004', 4000000000, 'ivrctl', 'note', '{"text":"received"}')`,
		} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	db, err = store.Open(ctx, url, store.Options{})
	if err != nil {
		t.Fatalf("the chain migration on a line with data: %v", err)
	}
	defer db.Close()
	s := tickets.New(db)
	v, err := s.VerifyChains(ctx, tickets.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !v.OK() || !v.Pending || len(v.Chains) != 0 {
		t.Fatalf("before the first write: %+v, want no finding, the old rows pending", v)
	}
	// Two engines write at once: one of them links the old rows, once,
	// before either's own row.
	db2, err := store.Open(ctx, url, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	s2 := tickets.New(db2)
	errs := make(chan error, 2)
	go func() { errs <- s.Audit(ctx, tickets.AuditEntry{User: "ivrctl", Action: "backup", OK: true}) }()
	go func() { errs <- s2.AddNote(ctx, "10000012", "ivrctl", "after the upgrade") }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	v, err = s2.VerifyChains(ctx, tickets.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !v.OK() || v.Pending {
		t.Fatalf("after the upgrade: %+v", v)
	}
	got := map[string][2]int64{}
	for _, c := range v.Chains {
		got[c.Chain] = [2]int64{c.Audit, c.Events}
	}
	want := map[string][2]int64{
		"line":               {3, 0}, // ivrctl, nobody, and the backup
		"provider:passports": {1, 3}, // ana's sign-in; 10000004 created, note, transfer
		"provider:default":   {0, 3}, // 10000012 created; 10000004's note after the transfer; the new note
	}
	if len(got) != len(want) {
		t.Fatalf("chains %v, want %v", got, want)
	}
	for c, w := range want {
		if got[c] != w {
			t.Errorf("chain %s: %d audit rows and %d events, want %v", c, got[c][0], got[c][1], w)
		}
	}
	var links int64
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM chain_links`).Scan(&links); err != nil {
		t.Fatal(err)
	}
	if links != 10 {
		t.Errorf("%d links, want 10 (4 audit rows, 6 events)", links)
	}
}

func TestChainMigrationSQLite(t *testing.T) {
	testChainMigration(t, store.SQLiteURL(filepath.Join(t.TempDir(), tickets.DBFile)), "0018")
}

func TestChainMigrationPostgres(t *testing.T) {
	testChainMigration(t, pgtest.Start(t).NewDatabase(t), "0010")
}

// A SQLite backup (VACUUM INTO) keeps the chain: verify passes on the
// copy, with the source's heads as anchors.
func TestChainBackup(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := tickets.Open(filepath.Join(dir, tickets.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.AddProvider(ctx, "ivrctl", "passports", "Passports"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"passports", tickets.DefaultProvider} {
		tk, err := s.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr", Service: tickets.ServicePassport, Provider: p, Caller: "+40700000001", Description: "d"})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.AddNote(ctx, tk.Number, "ivrctl", "n"); err != nil {
			t.Fatal(err)
		}
	}
	heads, err := s.ChainHeads(ctx)
	if err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(dir, "backup.db")
	if err := s.Backup(ctx, backup); err != nil {
		t.Fatal(err)
	}
	b, err := tickets.OpenReadOnly(backup)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	v, err := b.VerifyChains(ctx, tickets.VerifyOptions{Anchors: heads})
	if err != nil {
		t.Fatal(err)
	}
	if !v.OK() || len(v.Chains) != 3 {
		t.Fatalf("the backup: %+v", v)
	}
}
