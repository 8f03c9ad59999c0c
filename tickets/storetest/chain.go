package storetest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/govline/ivr/store"
	"github.com/govline/ivr/tickets"
)

// chainLine is a line with activity on several providers, written by two
// engines at once, and the ids a test tampers with.
type chainLine struct {
	hs []handle
	// audit rows of the chain of provider "passports" (its user ana), in
	// id order; a note event of a "social" ticket; the created event of a
	// ticket with a caller and personal answers.
	anaAudit       []int64
	socialNote     int64
	created        int64
	createdTicket  string
	auditN, eventN int64
}

// activity writes tickets, notes, a transfer, sign-ins and audit lines on
// three providers from two engines at once.
func activity(t *testing.T, open Opener) *chainLine {
	t.Helper()
	hs := engines(t, open(t), 2)
	a, b := hs[0].st, hs[1].st
	must(t, a.AddProvider(ctx, "admin", "passports", "Passports"))
	must(t, b.AddProvider(ctx, "admin", "social", "Social"))
	must(t, a.AddProviderUser(ctx, "admin", "passports", "ana", tickets.RoleOperator, "ana-password-1"))
	must(t, b.AddProviderUser(ctx, "admin", "social", "bob", tickets.RoleOperator, "bob-password-1"))
	l := &chainLine{hs: hs}
	var wg sync.WaitGroup
	var mu sync.Mutex
	errs := make(chan error, 64)
	for i, h := range hs {
		for _, p := range []string{"passports", "social", tickets.DefaultProvider} {
			wg.Go(func() {
				for j := range 4 {
					tk, err := h.st.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr", Service: tickets.ServicePassport, Provider: p,
						Caller: "+40700000001", Personal: map[string]string{"cnp": "1800101000000"}, Description: "d"})
					if err != nil {
						errs <- err
						return
					}
					user := map[string]string{"passports": "ana", "social": "bob"}[p]
					if user == "" {
						user = "ivrctl"
					}
					if err := h.st.AddNote(tickets.AsProvider(ctx, p), tk.Number, user, fmt.Sprintf("note %d %d", i, j)); err != nil {
						errs <- err
						return
					}
					if err := h.st.Audit(ctx, tickets.AuditEntry{User: user, Action: "ticket_view", Target: tk.Number, OK: true}); err != nil {
						errs <- err
						return
					}
					mu.Lock()
					if l.createdTicket == "" && p == "social" {
						l.createdTicket = tk.Number
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// A transfer: its event in the chain of the provider it leaves.
	tk, err := a.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr", Service: tickets.ServicePassport, Provider: "passports", Description: "t"})
	must(t, err)
	must(t, a.Transfer(ctx, tk.Number, "ana", "social", "theirs"))
	must(t, b.AddNote(ctx, tk.Number, "bob", "received"))
	_, err = a.Login(ctx, "ana", "wrong", "10.0.0.1", tickets.LoginPolicy{})
	if err == nil {
		t.Fatal("a wrong password signed in")
	}
	_, err = b.Login(ctx, "nobody", "x", "10.0.0.2", tickets.LoginPolicy{})
	if err == nil {
		t.Fatal("an unknown user signed in")
	}

	db := hs[0].db
	rows, err := db.QueryContext(ctx, `SELECT a.id FROM audit a JOIN chain_links l ON l.source = 'audit' AND l.row_id = a.id
		WHERE l.chain = 'provider:passports' ORDER BY l.seq`)
	must(t, err)
	for rows.Next() {
		var id int64
		must(t, rows.Scan(&id))
		l.anaAudit = append(l.anaAudit, id)
	}
	must(t, rows.Err())
	rows.Close()
	if len(l.anaAudit) < 3 {
		t.Fatalf("the passports chain has audit rows %v, want ana's", l.anaAudit)
	}
	must(t, db.QueryRowContext(ctx, `SELECT min(id) FROM ticket_events WHERE kind = 'note' AND ticket IN
		(SELECT number FROM tickets WHERE provider = 'social') AND id > (SELECT min(id) FROM ticket_events WHERE kind = 'note')`).Scan(&l.socialNote))
	must(t, db.QueryRowContext(ctx, `SELECT id FROM ticket_events WHERE kind = 'created' AND ticket = ?`, l.createdTicket).Scan(&l.created))
	must(t, db.QueryRowContext(ctx, `SELECT count(*) FROM audit`).Scan(&l.auditN))
	must(t, db.QueryRowContext(ctx, `SELECT count(*) FROM ticket_events`).Scan(&l.eventN))
	return l
}

// dropGuards drops the append-only triggers of audit, ticket_events and
// chain_links, as a database administrator can.
func dropGuards(t *testing.T, db *store.DB) {
	t.Helper()
	qs := []string{`DROP TRIGGER audit_no_update`, `DROP TRIGGER audit_no_delete`,
		`DROP TRIGGER ticket_events_no_update`, `DROP TRIGGER ticket_events_no_delete`,
		`DROP TRIGGER chain_links_no_update`, `DROP TRIGGER chain_links_no_delete`}
	if db.Backend() == store.Postgres {
		qs = []string{`ALTER TABLE audit DISABLE TRIGGER USER`, `ALTER TABLE ticket_events DISABLE TRIGGER USER`,
			`DROP TRIGGER chain_links_append_only ON chain_links`}
	}
	for _, q := range qs {
		must(t, raw(db, q))
	}
}

func verify(t *testing.T, st *tickets.Store, o tickets.VerifyOptions) tickets.Verification {
	t.Helper()
	v, err := st.VerifyChains(ctx, o)
	must(t, err)
	return v
}

// wantFinding checks that verification found exactly want first.
func wantFinding(t *testing.T, v tickets.Verification, want tickets.ChainFinding) {
	t.Helper()
	if len(v.Findings) == 0 {
		t.Fatalf("verify found nothing, want %s", want)
	}
	f := v.Findings[0]
	if f.Kind != want.Kind || f.Source != want.Source || f.Row != want.Row || (want.Chain != "" && f.Chain != want.Chain) ||
		(want.Seq != 0 && f.Seq != want.Seq) {
		t.Fatalf("verify found %s (all: %v), want %s", f, v.Findings, want)
	}
}

// forgeHash recomputes a link of an audit row from the algorithm as
// docs/operations.md describes it: what a database administrator who read
// it can do.
func forgeHash(prevHex, chain string, _ int64, row []any) (rowHash, hash string) {
	rb, _ := json.Marshal(row)
	b, _ := json.Marshal([]any{"ivr-chain-1", chain, json.RawMessage(rb)})
	rh := sha256.Sum256(b)
	prev := make([]byte, 32)
	if prevHex != "" {
		prev, _ = hex.DecodeString(prevHex)
	}
	h := sha256.Sum256(append(prev, rh[:]...))
	return hex.EncodeToString(rh[:]), hex.EncodeToString(h[:])
}

// forgeRow reads a row in its canonical form as docs/operations.md
// describes it (an event's data without caller and personal, keys sorted).
func forgeRow(t *testing.T, db *store.DB, source string, id int64) []any {
	t.Helper()
	if source == "audit" {
		var at, ok int64
		var user, action, target, detail, address string
		must(t, db.QueryRowContext(ctx, `SELECT at_ns, "user", action, target, detail, address, ok FROM audit WHERE id = ?`, id).
			Scan(&at, &user, &action, &target, &detail, &address, &ok))
		return []any{"audit", id, at, user, action, target, detail, address, ok}
	}
	var at int64
	var ticket, actor, kind, data string
	var sup *int64
	must(t, db.QueryRowContext(ctx, `SELECT ticket, at_ns, actor, kind, data, supersedes FROM ticket_events WHERE id = ?`, id).
		Scan(&ticket, &at, &actor, &kind, &data, &sup))
	d := json.NewDecoder(strings.NewReader(data))
	d.UseNumber()
	var m map[string]any
	must(t, d.Decode(&m))
	delete(m, "caller")
	delete(m, "personal")
	return []any{"event", id, ticket, at, actor, kind, m, sup}
}

// chainTamper: the chain verifies on an untouched line with activity on
// several providers, after an erasure of personal data and in a SQLite
// backup; with the append-only triggers dropped, each change a database
// administrator can make is found and the first bad row named.
func chainTamper(t *testing.T, open Opener) {
	t.Run("untouched", func(t *testing.T) {
		l := activity(t, open)
		v := verify(t, l.hs[1].st, tickets.VerifyOptions{})
		if !v.OK() || v.Pending {
			t.Fatalf("an untouched line: %+v", v)
		}
		byName := map[string]tickets.ChainReport{}
		var audit, events int64
		for _, c := range v.Chains {
			byName[c.Chain] = c
			audit, events = audit+c.Audit, events+c.Events
			if c.Seq != c.Audit+c.Events || len(c.Hash) != 64 {
				t.Errorf("chain %+v", c)
			}
		}
		for _, c := range []string{"line", "provider:passports", "provider:social", "provider:default"} {
			if byName[c].Seq == 0 {
				t.Errorf("no chain %s in %+v", c, v.Chains)
			}
		}
		if audit != l.auditN || events != l.eventN {
			t.Errorf("links to %d audit rows and %d events, the tables hold %d and %d", audit, events, l.auditN, l.eventN)
		}
		heads, err := l.hs[0].st.ChainHeads(ctx)
		must(t, err)
		if len(heads) != len(v.Chains) {
			t.Fatalf("heads %+v, chains %+v", heads, v.Chains)
		}
		for i, h := range heads {
			if h != v.Chains[i].ChainHead {
				t.Errorf("head %+v, verify's %+v", h, v.Chains[i].ChainHead)
			}
		}
		// The anchors kept match; one chain alone, by provider id.
		if v := verify(t, l.hs[0].st, tickets.VerifyOptions{Anchors: heads}); !v.OK() {
			t.Fatalf("with its own heads as anchors: %v", v.Findings)
		}
		if v := verify(t, l.hs[0].st, tickets.VerifyOptions{Chain: "social"}); !v.OK() || len(v.Chains) != 1 || v.Chains[0].Chain != "provider:social" {
			t.Fatalf("chain social: %+v", v)
		}
		if _, err := l.hs[0].st.VerifyChains(ctx, tickets.VerifyOptions{Chain: "nobody"}); err == nil {
			t.Fatal("an unknown chain verified")
		}
	})
	t.Run("erasure of caller and personal is not a finding", func(t *testing.T) {
		l := activity(t, open)
		db := l.hs[0].db
		dropGuards(t, db)
		q := `UPDATE ticket_events SET data = json_set(data, '$.caller', '', '$.personal', json('{}')) WHERE kind = 'created'`
		if db.Backend() == store.Postgres {
			q = `UPDATE ticket_events SET data = (data::jsonb || '{"caller": "", "personal": {}}')::text WHERE kind = 'created'`
		}
		must(t, raw(db, q))
		var data string
		must(t, db.QueryRowContext(ctx, `SELECT data FROM ticket_events WHERE id = ?`, l.created).Scan(&data))
		var d tickets.EventData
		must(t, json.Unmarshal([]byte(data), &d))
		if d.Caller != "" || len(d.Personal) != 0 || d.Provider != "social" {
			t.Fatalf("the erased created event: %s", data)
		}
		if v := verify(t, l.hs[1].st, tickets.VerifyOptions{}); !v.OK() {
			t.Fatalf("after an erasure: %v", v.Findings)
		}
		// Anything else in the same data is.
		q = `UPDATE ticket_events SET data = json_set(data, '$.description', 'forged') WHERE id = ?`
		if db.Backend() == store.Postgres {
			q = `UPDATE ticket_events SET data = (data::jsonb || '{"description": "forged"}')::text WHERE id = ?`
		}
		must(t, raw(db, q, l.created))
		wantFinding(t, verify(t, l.hs[1].st, tickets.VerifyOptions{}),
			tickets.ChainFinding{Kind: tickets.FindingChanged, Source: "event", Row: l.created, Chain: "provider:social"})
	})
	t.Run("an edited audit row", func(t *testing.T) {
		l := activity(t, open)
		dropGuards(t, l.hs[0].db)
		// Two rows edited: the first in the chain is named.
		must(t, raw(l.hs[0].db, `UPDATE audit SET detail = 'forged' WHERE id = ?`, l.anaAudit[2]))
		must(t, raw(l.hs[0].db, `UPDATE audit SET ok = 1 - ok WHERE id = ?`, l.anaAudit[1]))
		wantFinding(t, verify(t, l.hs[1].st, tickets.VerifyOptions{}),
			tickets.ChainFinding{Kind: tickets.FindingChanged, Source: "audit", Row: l.anaAudit[1], Chain: "provider:passports"})
	})
	t.Run("an edited history row", func(t *testing.T) {
		l := activity(t, open)
		dropGuards(t, l.hs[0].db)
		must(t, raw(l.hs[0].db, `UPDATE ticket_events SET actor = 'mallory' WHERE id = ?`, l.socialNote))
		wantFinding(t, verify(t, l.hs[1].st, tickets.VerifyOptions{}),
			tickets.ChainFinding{Kind: tickets.FindingChanged, Source: "event", Row: l.socialNote, Chain: "provider:social"})
	})
	t.Run("deleted rows", func(t *testing.T) {
		l := activity(t, open)
		dropGuards(t, l.hs[0].db)
		must(t, raw(l.hs[0].db, `DELETE FROM audit WHERE id = ?`, l.anaAudit[1]))
		wantFinding(t, verify(t, l.hs[1].st, tickets.VerifyOptions{}),
			tickets.ChainFinding{Kind: tickets.FindingDeleted, Source: "audit", Row: l.anaAudit[1], Chain: "provider:passports"})
		must(t, raw(l.hs[0].db, `DELETE FROM ticket_events WHERE id = ?`, l.socialNote))
		v := verify(t, l.hs[1].st, tickets.VerifyOptions{})
		if len(v.Findings) != 2 || v.Findings[1].Kind != tickets.FindingDeleted || v.Findings[1].Row != l.socialNote {
			t.Fatalf("a deleted audit row and a deleted event: %v", v.Findings)
		}
		// The row and its link deleted: the gap is found.
		l2 := activity(t, open)
		dropGuards(t, l2.hs[0].db)
		var gone int64
		must(t, l2.hs[0].db.QueryRowContext(ctx, `SELECT seq FROM chain_links WHERE source = 'audit' AND row_id = ?`, l2.anaAudit[1]).Scan(&gone))
		must(t, raw(l2.hs[0].db, `DELETE FROM audit WHERE id = ?`, l2.anaAudit[1]))
		must(t, raw(l2.hs[0].db, `DELETE FROM chain_links WHERE source = 'audit' AND row_id = ?`, l2.anaAudit[1]))
		wantFinding(t, verify(t, l2.hs[1].st, tickets.VerifyOptions{}),
			tickets.ChainFinding{Kind: tickets.FindingDeleted, Chain: "provider:passports", Seq: gone})
	})
	t.Run("inserted rows", func(t *testing.T) {
		l := activity(t, open)
		db := l.hs[0].db
		dropGuards(t, db)
		over := ""
		if db.Backend() == store.Postgres {
			over = " OVERRIDING SYSTEM VALUE"
		}
		// One at the end, one among the old rows (a free id below them):
		// the lowest is named.
		must(t, raw(db, `INSERT INTO audit (at_ns, "user", action, target, detail, address, ok) VALUES (1, 'ana', 'login', '', '', '', 1)`))
		must(t, raw(db, `INSERT INTO audit (id, at_ns, "user", action, target, detail, address, ok)`+over+` VALUES (-7, 1, 'ana', 'login', '', '', '', 1)`))
		must(t, raw(db, `INSERT INTO ticket_events (ticket, at_ns, actor, kind, data) VALUES (?, 1, 'ana', 'note', '{"text":"forged"}')`, l.createdTicket))
		v := verify(t, l.hs[1].st, tickets.VerifyOptions{})
		wantFinding(t, v, tickets.ChainFinding{Kind: tickets.FindingInserted, Source: "audit", Row: -7})
		if len(v.Findings) != 2 || v.Findings[1].Kind != tickets.FindingInserted || v.Findings[1].Source != "event" || v.Findings[1].Row <= l.created {
			t.Fatalf("an inserted audit row and event: %v", v.Findings)
		}
	})
	t.Run("a row inserted out of order with a forged link", func(t *testing.T) {
		l := activity(t, open)
		db := l.hs[0].db
		dropGuards(t, db)
		over := ""
		if db.Backend() == store.Postgres {
			over = " OVERRIDING SYSTEM VALUE"
		}
		// The administrator inserts a row with an id below the chain's
		// rows and appends its link, hashes recomputed by the book.
		must(t, raw(db, `INSERT INTO audit (id, at_ns, "user", action, target, detail, address, ok)`+over+` VALUES (-3, 5, 'ana', 'login', '', '', '10.0.0.9', 1)`))
		var seq int64
		var prev string
		must(t, db.QueryRowContext(ctx, `SELECT seq, hash FROM chain_links WHERE chain = 'provider:passports' ORDER BY seq DESC LIMIT 1`).Scan(&seq, &prev))
		rh, h := forgeHash(prev, "provider:passports", seq+1, []any{"audit", -3, 5, "ana", "login", "", "", "10.0.0.9", 1})
		must(t, raw(db, `INSERT INTO chain_links (chain, seq, source, row_id, row_hash, hash) VALUES ('provider:passports', ?, 'audit', -3, ?, ?)`, seq+1, rh, h))
		wantFinding(t, verify(t, l.hs[1].st, tickets.VerifyOptions{}),
			tickets.ChainFinding{Kind: tickets.FindingOutOfOrder, Source: "audit", Row: -3, Chain: "provider:passports", Seq: seq + 1})
	})
	t.Run("a chain recomputed after an edit is found by its anchor", func(t *testing.T) {
		l := activity(t, open)
		db := l.hs[0].db
		anchors, err := l.hs[0].st.ChainHeads(ctx)
		must(t, err)
		dropGuards(t, db)
		// The administrator edits ana's first audit row and rewrites every
		// link of the chain from there, by the book.
		must(t, raw(db, `UPDATE audit SET detail = 'forged' WHERE id = ?`, l.anaAudit[0]))
		type lk struct {
			seq, id int64
			source  string
		}
		var links []lk
		rows, err := db.QueryContext(ctx, `SELECT seq, row_id, source FROM chain_links WHERE chain = 'provider:passports' ORDER BY seq`)
		must(t, err)
		for rows.Next() {
			var x lk
			must(t, rows.Scan(&x.seq, &x.id, &x.source))
			links = append(links, x)
		}
		rows.Close()
		prev := ""
		for _, x := range links {
			rh, h := forgeHash(prev, "provider:passports", x.seq, forgeRow(t, db, x.source, x.id))
			must(t, raw(db, `UPDATE chain_links SET row_hash = ?, hash = ? WHERE chain = 'provider:passports' AND seq = ?`, rh, h, x.seq))
			prev = h
		}
		// Without the anchor nothing shows: that is what anchoring is for.
		if v := verify(t, l.hs[1].st, tickets.VerifyOptions{}); !v.OK() {
			t.Fatalf("a chain recomputed by the book, without anchors: %v", v.Findings)
		}
		v := verify(t, l.hs[1].st, tickets.VerifyOptions{Anchors: anchors})
		if len(v.Findings) == 0 {
			t.Fatal("a recomputed chain verified against its anchor")
		}
		if len(v.Findings) != 1 || v.Findings[0].Kind != tickets.FindingAnchor || v.Findings[0].Chain != "provider:passports" {
			t.Fatalf("findings %v, want the passports anchor's mismatch only", v.Findings)
		}
	})
}
