package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govline/ivr/tickets"
)

// TestRetentionCLI: hold, the retention job's dry run and run from a
// config file, the archive search, an erasure by caller and a refused one
// by ticket.
func TestRetentionCLI(t *testing.T) {
	dir := t.TempDir()
	recs := filepath.Join(dir, "recordings")
	if err := os.MkdirAll(recs, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := tickets.Open(tickets.DBPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	long := time.Now().Add(-400 * 24 * time.Hour)
	s.SetClock(func() time.Time { return long })
	var nums []string
	for i, caller := range []string{"+37360000001", "+37360000002", "+37360000003"} {
		call := "call-" + caller
		rec := filepath.Join(recs, call+".wav")
		must(os.WriteFile(rec, []byte("RIFF"), 0o644))
		must(s.StartCall(ctx, tickets.CallRecord{ID: call, Telephony: "sip", Caller: caller, Called: "1", Start: long}))
		must(s.AnswerCall(ctx, call, long, "PCMU", rec))
		must(s.AppendTurn(ctx, call, tickets.Turn{Speaker: tickets.SpeakerCaller, Text: "my number", At: long}))
		tk, err := s.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr", CallID: call, Caller: caller, Personal: map[string]string{"cnp": "1960101123456"}})
		must(err)
		if i < 2 {
			must(s.Resolve(ctx, tk.Number, "ana", "done"))
			must(s.CloseTicket(ctx, tk.Number, "ana"))
		}
		nums = append(nums, tk.Number)
	}
	s.Close()

	if code, out, errs := runCLI("tickets", "hold", nums[1], "--reason", "court case 12/2026", "--data", dir); code != 0 || !strings.Contains(out, "legal hold") {
		t.Fatalf("hold: %d %s %s", code, out, errs)
	}
	cfg := filepath.Join(dir, "ivrd.toml")
	must(os.WriteFile(cfg, []byte("[engine]\nname = \"x\"\n\n[retention]\narchive_after = \"30d\"\nrecordings = \"90d\"\ntranscripts = \"0\"\npersonal = \"365d\"\n"), 0o644))
	if code, _, errs := runCLI("retention", "run", "--data", dir); code != exitUsage || !strings.Contains(errs, "--config") {
		t.Errorf("run without --config: %d %s", code, errs)
	}
	code, out, errs := runCLI("retention", "run", "--dry-run", "--config", cfg, "--data", dir)
	if code != 0 || !strings.Contains(out, nums[0]) || strings.Contains(out, nums[1]) || !strings.Contains(out, "archived 1, recordings 1, transcript turns 0, personal data 1; under legal hold 1") {
		t.Fatalf("dry run: %d\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(recs, "call-+37360000001.wav")); err != nil {
		t.Fatalf("the dry run deleted: %v", err)
	}
	if code, out, errs = runCLI("retention", "run", "--config", cfg, "--data", dir); code != 0 || !strings.Contains(out, "removed: tickets 1") {
		t.Fatalf("run: %d\n%s%s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(recs, "call-+37360000001.wav")); !os.IsNotExist(err) {
		t.Errorf("recording kept: %v", err)
	}
	if code, out, _ = runCLI("tickets", "list", "--archived", "--data", dir); code != 0 || !strings.Contains(out, nums[0]) || strings.Contains(out, nums[1]) {
		t.Errorf("archive list: %d\n%s", code, out)
	}
	if code, out, _ = runCLI("tickets", "list", "--data", dir); code != 0 || strings.Contains(out, nums[0]) || !strings.Contains(out, nums[1]) {
		t.Errorf("working list: %d\n%s", code, out)
	}

	// Erasure: by caller (the open ticket), then the held one by ticket.
	if code, out, errs = runCLI("erase", "--caller", "+37360000003", "--data", dir); code != 0 || !strings.Contains(out, nums[2]) || !strings.Contains(out, "personal data") {
		t.Fatalf("erase by caller: %d\n%s%s", code, out, errs)
	}
	if code, out, errs = runCLI("erase", "--ticket", nums[1], "--data", dir); code != exitError || !strings.Contains(errs, "legal hold") || !strings.Contains(out, "REFUSED") {
		t.Errorf("erase a held ticket: %d\n%s%s", code, out, errs)
	}
	code, out, _ = runCLI("users", "audit", "--data", dir, "--limit", "0")
	if code != 0 || !strings.Contains(out, "erasure") || strings.Contains(out, "+37360000003") || !strings.Contains(out, "retention_run") || !strings.Contains(out, "legal_hold") {
		t.Errorf("audit: %d\n%s", code, out)
	}
}
