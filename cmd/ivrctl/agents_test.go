package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/govline/ivr/ivr/queue"
	"github.com/govline/ivr/store"
	"github.com/govline/ivr/tickets"
)

func TestAgentsAddListDisable(t *testing.T) {
	data := t.TempDir()
	agentsStdin = strings.NewReader("correct-horse-1\n")
	t.Cleanup(func() { agentsStdin = nil })
	code, out, errs := runCLI("agents", "add", "--data", data, "--queues", "level1,level2", "alice")
	if code != exitOK || !strings.Contains(out, "agent alice answers level1, level2") {
		t.Fatalf("add: exit %d: %s %s", code, out, errs)
	}
	agentsStdin = strings.NewReader("short\n")
	if code, _, errs := runCLI("agents", "add", "--data", data, "--queues", "level1", "bob"); code == exitOK || !strings.Contains(errs, "at least 8") {
		t.Errorf("a short password: exit %d, %s", code, errs)
	}
	if code, _, errs := runCLI("agents", "add", "--data", data, "carol"); code != exitUsage || !strings.Contains(errs, "--queues") {
		t.Errorf("no queues: exit %d, %s", code, errs)
	}
	code, out, errs = runCLI("agents", "list", "--data", data, "--json")
	if code != exitOK {
		t.Fatalf("list: exit %d: %s", code, errs)
	}
	var got struct {
		Agents []struct {
			Name     string   `json:"name"`
			Queues   []string `json:"queues"`
			Disabled bool     `json:"disabled"`
		} `json:"agents"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(got.Agents) != 1 || got.Agents[0].Name != "alice" || len(got.Agents[0].Queues) != 2 || got.Agents[0].Disabled {
		t.Fatalf("agents %+v", got.Agents)
	}
	if strings.Contains(out, "correct-horse") || strings.Contains(out, "ha1") {
		t.Errorf("list shows a secret: %s", out)
	}
	if code, _, errs := runCLI("agents", "disable", "--data", data, "alice"); code != exitOK {
		t.Fatalf("disable: %d %s", code, errs)
	}
	if code, out, _ := runCLI("agents", "list", "--data", data); code != exitOK || !strings.Contains(out, "disabled") {
		t.Errorf("list after disable: %d %s", code, out)
	}
}

// An administrator lifts a lockout that failed REGISTERs left (the running
// ivrd checks the store at every REGISTER).
func TestAgentsLocksAndUnlock(t *testing.T) {
	data := t.TempDir()
	agentsStdin = strings.NewReader("correct-horse-1\n")
	t.Cleanup(func() { agentsStdin = nil })
	if code, _, errs := runCLI("agents", "add", "--data", data, "--queues", "level1", "alice"); code != exitOK {
		t.Fatal(errs)
	}
	s, err := store.Open(context.Background(), store.SQLiteURL(tickets.DBPath(data)), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := queue.Directory{DB: s}
	until := time.Now().Add(time.Hour)
	for _, l := range []queue.Lock{{Kind: queue.LockAgent, Target: "alice", Until: until, Failures: 10}, {Kind: queue.LockAddress, Target: "203.0.113.9", Until: until, Failures: 20}} {
		if err := dir.Lock(context.Background(), l); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	code, out, _ := runCLI("agents", "locks", "--data", data)
	if code != exitOK || !strings.Contains(out, "agent") || !strings.Contains(out, "alice") || !strings.Contains(out, "203.0.113.9") {
		t.Fatalf("locks: %d\n%s", code, out)
	}
	if code, out, errs := runCLI("agents", "unlock", "--data", data, "alice"); code != exitOK || !strings.Contains(out, "unlocked") {
		t.Fatalf("unlock alice: %d %s %s", code, out, errs)
	}
	if code, _, errs := runCLI("agents", "unlock", "--data", data, "alice"); code == exitOK || !strings.Contains(errs, "not locked") {
		t.Errorf("unlocking twice: %d %s", code, errs)
	}
	if code, _, _ := runCLI("agents", "unlock", "--data", data, "--address", "203.0.113.9"); code != exitOK {
		t.Fatal("unlock the address")
	}
	if code, _, errs := runCLI("agents", "unlock", "--data", data); code != exitUsage {
		t.Errorf("unlock without a target: %d %s", code, errs)
	}
	code, out, _ = runCLI("agents", "locks", "--data", data, "--json")
	if code != exitOK || !strings.Contains(out, `"locks": []`) {
		t.Errorf("locks after unlocking: %s", out)
	}
	r, _ := tickets.OpenReadOnly(tickets.DBPath(data))
	defer r.Close()
	if es, _ := r.AuditLog(context.Background(), tickets.AuditQuery{Action: "sip_register_unlock"}); len(es) != 2 {
		t.Errorf("%d unlocks audited, want 2", len(es))
	}
}
