package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/govline/ivr/tickets"
)

// seedTickets writes three tickets in a new data directory: a passport
// ticket with a history (note, correction, escalation) and a transcript, a
// resolved identity card ticket and a new one. It returns the directory
// and the numbers, oldest first.
func seedTickets(t *testing.T) (dir string, nums []string) {
	t.Helper()
	dir = t.TempDir()
	s, err := tickets.Open(tickets.DBPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	now := time.Now().Add(-3 * time.Hour).Truncate(time.Second)
	s.SetClock(func() time.Time { now = now.Add(time.Minute); return now })
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	open := func(nt tickets.NewTicket) string {
		t.Helper()
		nt.Actor = "ivr"
		tk, err := s.OpenTicket(ctx, nt)
		must(err)
		nums = append(nums, tk.Number)
		return tk.Number
	}
	must(s.StartCall(ctx, tickets.CallRecord{ID: "call-p", Telephony: "sip", Caller: "+40721111111", Called: "1919", Start: now}))
	must(s.EndCall(ctx, "call-p", now.Add(192*time.Second), tickets.EndCallerHangup, tickets.PacketStats{}))
	p := open(tickets.NewTicket{Service: tickets.ServicePassport, Caller: "+40721111111", CallID: "call-p",
		Description: "passport expires next month", Articles: []string{"kb-passport-renew"}, Personal: map[string]string{"cnp": "1960101123456"}})
	must(s.AddNote(ctx, p, "ana", "asked for the apointment"))
	h, err := s.History(ctx, p)
	must(err)
	must(s.Correct(ctx, p, "ana", h[1].ID, tickets.Correction{Text: "asked for the appointment", Reason: "typo"}))
	must(s.Escalate(ctx, p, "ana", 2))
	at := now
	for _, tu := range []tickets.Turn{
		{Speaker: tickets.SpeakerIVR, Text: "Cu ce vă pot ajuta?", Mode: tickets.ModeSpeech, Confidence: 1, Interrupted: true},
		{Speaker: tickets.SpeakerCaller, Text: "pașaportul meu expiră", Mode: tickets.ModeSpeech, Confidence: 0.81},
		{Speaker: tickets.SpeakerCaller, Text: "3", Mode: tickets.ModeDTMF, Confidence: 1},
	} {
		at = at.Add(2 * time.Second)
		tu.At = at
		must(s.AppendTurn(ctx, "call-p", tu))
	}
	r := open(tickets.NewTicket{Service: tickets.ServiceIdentityCard, Caller: "+40722222222", Priority: tickets.PriorityHigh})
	must(s.Resolve(ctx, r, "ana", "explained the documents needed"))
	open(tickets.NewTicket{Channel: tickets.ChannelEmail, Caller: "+40721111111"})
	return dir, nums
}

func TestTicketsListJSON(t *testing.T) {
	dir, nums := seedTickets(t)
	list := func(args ...string) []tickets.Ticket {
		t.Helper()
		code, out, errs := runCLI(append([]string{"tickets", "list", "--json", "--data", dir}, args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errs)
		}
		var got struct {
			Tickets []tickets.Ticket `json:"tickets"`
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return got.Tickets
	}
	numbers := func(ts []tickets.Ticket) string {
		var s []string
		for _, t := range ts {
			s = append(s, t.Number)
		}
		return strings.Join(s, " ")
	}
	if got, want := numbers(list()), nums[2]+" "+nums[1]+" "+nums[0]; got != want {
		t.Fatalf("all: %s, want newest first %s", got, want)
	}
	if got := numbers(list("--status", "resolved")); got != nums[1] {
		t.Errorf("--status resolved: %s", got)
	}
	if got := numbers(list("--service", "passport")); got != nums[0] {
		t.Errorf("--service passport: %s", got)
	}
	if got := numbers(list("--status", "escalated", "--service", "identity_card")); got != "" {
		t.Errorf("no match: %s", got)
	}
	if got := numbers(list("--limit", "1")); got != nums[2] {
		t.Errorf("--limit 1: %s", got)
	}
	if got := numbers(list("--caller", "+40721111111")); got != nums[2]+" "+nums[0] {
		t.Errorf("--caller: %s", got)
	}
	p := list("--service", "passport")[0]
	if p.Status != tickets.StatusEscalated || p.Level != 2 || p.Caller != "+40721111111" || p.CallID != "call-p" ||
		len(p.Articles) != 1 || p.Deadline.IsZero() {
		t.Errorf("passport ticket %+v", p)
	}
	// An empty store gives an empty array, not null.
	code, out, _ := runCLI("tickets", "list", "--json", "--status", "closed", "--data", dir)
	if code != 0 || strings.Join(strings.Fields(out), "") != `{"tickets":[]}` {
		t.Errorf("exit %d, out %q", code, out)
	}
}

func TestTicketsListTableAndErrors(t *testing.T) {
	dir, nums := seedTickets(t)
	code, out, errs := runCLI("tickets", "list", "--data", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 4 || strings.Join(strings.Fields(lines[0]), " ") != "NUMBER CREATED SERVICE PRIORITY LEVEL STATUS DEADLINE CALLER ASSIGNEE" {
		t.Fatalf("table:\n%s", out)
	}
	if f := strings.Fields(lines[2]); f[0] != nums[1] || f[3] != "identity_card" || f[4] != "high" || f[6] != "resolved" {
		t.Errorf("row %q", lines[2])
	}
	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"tickets", "list", "--status", "open", "--data", dir}, exitUsage, "--status"},
		{[]string{"tickets", "list", "--service", "passports", "--data", dir}, exitUsage, "--service"},
		{[]string{"tickets", "list", "--limit", "-1", "--data", dir}, exitUsage, "--limit"},
		{[]string{"tickets", "list", "extra", "--data", dir}, exitUsage, "unexpected"},
		{[]string{"tickets"}, exitUsage, "missing subcommand"},
		{[]string{"tickets", "frob"}, exitUsage, "unknown subcommand"},
		{[]string{"tickets", "list", "--data", t.TempDir()}, exitError, "no database"},
		{[]string{"tickets", "show", "--data", dir}, exitUsage, "missing NUMBER"},
		{[]string{"tickets", "show", "12345678", "--data", dir}, exitUsage, "not a ticket number"},
		{[]string{"tickets", "show", "x'; DROP TABLE tickets;--", "--data", dir}, exitUsage, "not a ticket number"},
		{[]string{"tickets", "show", validMissing(nums), "--data", dir}, exitError, "no ticket"},
	} {
		code, _, errs := runCLI(c.args...)
		if code != c.code || !strings.Contains(errs, c.msg) {
			t.Errorf("%v: exit %d (want %d), stderr %q (want %q)", c.args, code, c.code, errs, c.msg)
		}
	}
}

// validMissing returns a well-formed number that is not one of nums.
func validMissing(nums []string) string {
	for body := 1000000; ; body++ {
		for d := range 10 {
			if n := fmt.Sprintf("%07d%d", body, d); tickets.ValidNumber(n) && !slices.Contains(nums, n) {
				return n
			}
		}
	}
}

func TestTicketsShow(t *testing.T) {
	dir, nums := seedTickets(t)
	code, out, errs := runCLI("tickets", "show", nums[0], "--json", "--data", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var got struct {
		Ticket     tickets.Ticket        `json:"ticket"`
		History    []tickets.TicketEvent `json:"history"`
		Transcript []tickets.Turn        `json:"transcript"`
		Call       *tickets.CallRecord   `json:"call"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got.Call == nil || got.Call.ID != "call-p" || got.Call.Duration() != 192*time.Second {
		t.Errorf("call record %+v", got.Call)
	}
	if got.Ticket.Number != nums[0] || got.Ticket.Status != tickets.StatusEscalated {
		t.Errorf("ticket %+v", got.Ticket)
	}
	var kinds []string
	for _, e := range got.History {
		kinds = append(kinds, string(e.Kind))
	}
	if strings.Join(kinds, " ") != "created note correction escalated" || got.History[1].SupersededBy != got.History[2].ID {
		t.Errorf("history %v, note superseded by %d", kinds, got.History[1].SupersededBy)
	}
	if len(got.Transcript) != 3 || got.Transcript[1].Text != "pașaportul meu expiră" || got.Transcript[2].Mode != tickets.ModeDTMF {
		t.Errorf("transcript %+v", got.Transcript)
	}

	code, out, errs = runCLI("tickets", "show", nums[0], "--data", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{
		"Ticket", nums[0], "escalated", "passport", "+40721111111", "kb-passport-renew", "call-p (started", "3m12s, caller_hangup)",
		"passport expires next month",
		"History (4)", "asked for the apointment  [superseded by #", "of #", "(note): asked for the appointment (why: typo)", "to level 2",
		"Transcript (3 turns)", "Cu ce vă pot ajuta?  [cut off by the caller]", "speech 0.81", "pașaportul meu expiră", "dtmf",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	// The sensitive answers kept with the ticket: masked, unless asked for.
	for _, args := range [][]string{{"tickets", "show", nums[0], "--data", dir}, {"tickets", "show", nums[0], "--json", "--data", dir}} {
		_, out, _ = runCLI(args...)
		if strings.Contains(out, "1960101123456") || !strings.Contains(out, "**********456") {
			t.Errorf("%v shows the CNP in clear (or not at all):\n%s", args, out)
		}
	}
	if _, out, _ = runCLI("tickets", "show", nums[0], "--personal", "--data", dir); !strings.Contains(out, "Personal cnp  1960101123456") {
		t.Errorf("--personal does not show the CNP:\n%s", out)
	}
	// A number read out in groups ("1234 5678") is accepted.
	spaced := nums[1][:4] + " " + nums[1][4:]
	code, out, _ = runCLI("tickets", "show", spaced, "--data", dir)
	if code != 0 || !strings.Contains(out, "first contact") && !strings.Contains(out, "Resolved") {
		t.Errorf("spaced number: exit %d\n%s", code, out)
	}
}
