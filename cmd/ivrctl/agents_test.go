package main

import (
	"encoding/json"
	"strings"
	"testing"
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
