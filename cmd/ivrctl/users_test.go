package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govline/ivr/tickets"
)

func ctl(t *testing.T, in string, args ...string) (code int, out, errs string) {
	t.Helper()
	saved := stdin
	defer func() { stdin = saved }()
	stdin = strings.NewReader(in)
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestUsersAddListAuditAndLogin(t *testing.T) {
	dir := t.TempDir()
	if code, _, errs := ctl(t, "a strong password\n", "--data", dir, "users", "add", "--role", "supervisor", "maria"); code != exitOK {
		t.Fatalf("add: %d %s", code, errs)
	}
	if code, _, errs := ctl(t, "a strong password\n", "--data", dir, "users", "add", "--role", "boss", "ion"); code != exitUsage || !strings.Contains(errs, "operator, specialist") {
		t.Fatalf("bad role: %d %s", code, errs)
	}
	if code, _, errs := ctl(t, "", "--data", dir, "users", "add", "--role", "operator", "ion"); code != exitError || !strings.Contains(errs, "empty") {
		t.Fatalf("no password: %d %s", code, errs)
	}
	if code, _, errs := ctl(t, "short\n", "--data", dir, "users", "add", "--role", "operator", "ion"); code != exitError || !strings.Contains(errs, "too short") {
		t.Fatalf("short password: %d %s", code, errs)
	}
	if code, _, errs := ctl(t, "again a password\n", "--data", dir, "users", "add", "--role", "operator", "maria"); code != exitError || !strings.Contains(errs, "already exists") {
		t.Fatalf("duplicate: %d %s", code, errs)
	}
	code, out, _ := ctl(t, "", "--data", dir, "users", "list", "--json")
	var l struct{ Users []tickets.User }
	if code != exitOK || json.Unmarshal([]byte(out), &l) != nil || len(l.Users) != 1 || l.Users[0].Role != tickets.RoleSupervisor {
		t.Fatalf("list: %d %s", code, out)
	}
	if strings.Contains(out, "argon2") || strings.Contains(out, "strong") {
		t.Fatal("list shows the password or its hash")
	}

	s, err := tickets.Open(tickets.DBPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Login(context.Background(), "maria", "a strong password", "127.0.0.1", tickets.LoginPolicy{}); err != nil {
		t.Fatalf("login with the password from stdin: %v", err)
	}
	s.Login(context.Background(), "maria", "not it at all", "127.0.0.1", tickets.LoginPolicy{})
	s.Close()

	code, out, _ = ctl(t, "", "--data", dir, "users", "audit", "--action", "login_failed")
	if code != exitOK || !strings.Contains(out, "maria") || !strings.Contains(out, "127.0.0.1") || strings.Contains(out, "not it") {
		t.Fatalf("audit: %d %s", code, out)
	}
	code, out, _ = ctl(t, "", "--data", dir, "users", "audit", "--json")
	var a struct{ Audit []tickets.AuditEntry }
	if code != exitOK || json.Unmarshal([]byte(out), &a) != nil || len(a.Audit) != 3 || a.Audit[2].Action != "user_add" ||
		!strings.HasPrefix(a.Audit[2].User, "ivrctl") {
		t.Fatalf("audit json: %d %s", code, out)
	}
	if code, out, _ := ctl(t, "", "--data", dir, "users", "disable", "maria"); code != exitOK || !strings.Contains(out, "disabled") {
		t.Fatalf("disable: %d %s", code, out)
	}
}

func TestBackupCommand(t *testing.T) {
	dir, nums := seedTickets(t)
	dst := filepath.Join(t.TempDir(), "copy.db")
	code, out, errs := ctl(t, "", "--data", dir, "backup", dst)
	if code != exitOK || !strings.Contains(out, "integrity ok") {
		t.Fatalf("backup: %d %s %s", code, out, errs)
	}
	c, err := tickets.OpenReadOnly(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, n := range nums {
		if _, err := c.Ticket(context.Background(), n); err != nil {
			t.Fatalf("ticket %s missing from the copy: %v", n, err)
		}
	}
	if code, _, errs := ctl(t, "", "--data", dir, "backup", dst); code != exitError || !strings.Contains(errs, "exists") {
		t.Fatalf("backup over a file: %d %s", code, errs)
	}
	if code, _, _ := ctl(t, "", "--data", dir, "backup"); code != exitUsage {
		t.Fatalf("no file: %d", code)
	}
	if _, err := os.Stat(dst); err != nil {
		t.Fatal(err)
	}
}
