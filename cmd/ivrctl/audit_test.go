package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govline/ivr/store"
	"github.com/govline/ivr/tickets"
)

// ivrctl audit verify and head: ok (status 0) on an untouched line, on its
// backup and against its anchors; the first changed row named and status 3
// once an administrator edited the audit log behind the engine's back.
func TestAuditVerifyCommand(t *testing.T) {
	dir := t.TempDir()
	if code, _, errs := ctl(t, "a strong password\n", "--data", dir, "users", "add", "--role", "operator", "maria"); code != exitOK {
		t.Fatalf("add: %d %s", code, errs)
	}
	s, err := tickets.Open(tickets.DBPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tk, err := s.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr", Service: tickets.ServicePassport, Caller: "+40700000001", Description: "d"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddNote(ctx, tk.Number, "maria", "called back"); err != nil {
		t.Fatal(err)
	}
	s.Login(ctx, "maria", "a strong password", "127.0.0.1", tickets.LoginPolicy{})
	s.Close()

	code, out, errs := ctl(t, "", "--data", dir, "audit", "verify")
	if code != exitOK || !strings.Contains(out, "ok: 2 chains, 4 links verified") || !strings.Contains(out, "provider:default") {
		t.Fatalf("verify: %d\n%s%s", code, out, errs)
	}
	code, heads, _ := ctl(t, "", "--data", dir, "audit", "head")
	if code != exitOK || !strings.Contains(heads, "CHAIN") || strings.Count(heads, "\n") != 3 {
		t.Fatalf("head: %d\n%s", code, heads)
	}
	anchor := filepath.Join(t.TempDir(), "anchor.txt")
	if err := os.WriteFile(anchor, []byte(heads), 0o600); err != nil {
		t.Fatal(err)
	}
	code, headsJSON, _ := ctl(t, "", "--data", dir, "audit", "head", "--json")
	anchorJSON := filepath.Join(t.TempDir(), "anchor.json")
	if err := os.WriteFile(anchorJSON, []byte(headsJSON), 0o600); err != nil || code != exitOK {
		t.Fatal(code, err)
	}
	for _, a := range []string{anchor, anchorJSON} {
		if code, out, errs := ctl(t, "", "--data", dir, "audit", "verify", "--anchor", a); code != exitOK || !strings.Contains(out, "2 anchors matched") {
			t.Fatalf("verify --anchor %s: %d\n%s%s", a, code, out, errs)
		}
	}
	if code, out, _ := ctl(t, "", "--data", dir, "audit", "verify", "--chain", "default"); code != exitOK || !strings.Contains(out, "ok: 1 chain, 3 links") {
		t.Fatalf("verify --chain default: %d\n%s", code, out)
	}
	if code, _, errs := ctl(t, "", "--data", dir, "audit", "verify", "--chain", "nobody"); code != exitError || !strings.Contains(errs, "not found") {
		t.Fatalf("verify --chain nobody: %d %s", code, errs)
	}
	if code, out, _ := ctl(t, "", "--data", dir, "audit", "list", "--json"); code != exitOK || !strings.Contains(out, `"login"`) {
		t.Fatalf("audit list: %d %s", code, out)
	}

	// The backup verifies, against the source's anchor too.
	backup := filepath.Join(t.TempDir(), "copy.db")
	if code, _, errs := ctl(t, "", "--data", dir, "backup", backup); code != exitOK {
		t.Fatalf("backup: %d %s", code, errs)
	}
	if code, out, errs := ctl(t, "", "audit", "verify", "--store", store.SQLiteURL(backup), "--anchor", anchor); code != exitOK {
		t.Fatalf("verify the backup: %d\n%s%s", code, out, errs)
	}

	// An administrator drops the guard and edits the first audit row (the
	// user_add of maria, in the line's chain).
	db, err := store.Open(ctx, store.SQLiteURL(tickets.DBPath(dir)), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Write(ctx, func(tx *store.Tx) error {
		if _, err := tx.ExecContext(ctx, `DROP TRIGGER audit_no_update`); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE audit SET "user" = 'someone' WHERE id = 1`)
		return err
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	code, out, _ = ctl(t, "", "--data", dir, "audit", "verify")
	if code != exitFindings || !strings.Contains(out, "FOUND changed audit id 1 (chain line, link 1)") {
		t.Fatalf("verify after an edit: %d\n%s", code, out)
	}
	code, out, _ = ctl(t, "", "--data", dir, "audit", "verify", "--json")
	var v struct {
		OK       bool
		Findings []tickets.ChainFinding
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || code != exitFindings || v.OK || len(v.Findings) != 1 ||
		v.Findings[0].Kind != tickets.FindingChanged || v.Findings[0].Row != 1 || v.Findings[0].Source != "audit" {
		t.Fatalf("verify --json after an edit: %d %v\n%s", code, err, out)
	}
	// The other chain alone is still good.
	if code, _, _ := ctl(t, "", "--data", dir, "audit", "verify", "--chain", "provider:default"); code != exitOK {
		t.Fatalf("verify the untouched chain: %d", code)
	}
}
