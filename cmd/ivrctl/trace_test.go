package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/govline/ivr/tickets"
)

func TestCallsTraceIsOneTimeline(t *testing.T) {
	dir, old, _ := seed(t)
	s, err := tickets.Open(tickets.DBPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tu := range []tickets.Turn{
		{Speaker: tickets.SpeakerIVR, Text: "Bună ziua", At: old.Add(2 * time.Second), Mode: tickets.ModeNone, Interrupted: true, Cut: tickets.CutKey},
		{Speaker: tickets.SpeakerCaller, Text: "12", At: old.Add(5*time.Second + time.Millisecond), Mode: tickets.ModeDTMF, Confidence: 1},
		// A long prompt, written when it ended: the timeline shows it
		// where it began, before what happened while it played.
		{Speaker: tickets.SpeakerIVR, Text: "Operatorii nu sunt disponibili acum.", Began: old.Add(5100 * time.Millisecond), At: old.Add(18 * time.Second)},
	} {
		if err := s.AppendTurn(ctx, "old", tu); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddEvent(ctx, "old", tickets.CallEvent{At: old.Add(10 * time.Second), Kind: "flow.note", Detail: "while the prompt plays"}); err != nil {
		t.Fatal(err)
	}
	tk, err := s.OpenTicket(ctx, tickets.NewTicket{Channel: "phone", Caller: "+33612345678", Lang: "ro", Service: "passport",
		Priority: "normal", Level: 1, Description: "wants a passport", CallID: "old", Actor: "ivr"})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()

	code, out, errOut := runCLI("--data", dir, "calls", "trace", "old")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	order := []string{"offered", "sip.invite", "answered", "sip.200", "Bună ziua  [cut off by the caller: key]", "dtmf", "keys 12", "Operatorii nu sunt disponibili acum.  (12.9 s)", "while the prompt plays", "ended"}
	pos := 0
	for _, want := range order {
		i := strings.Index(out[pos:], want)
		if i < 0 {
			t.Fatalf("timeline lacks %q after position %d (or out of order):\n%s", want, pos, out)
		}
		pos += i
	}
	if !strings.Contains(out, tk.Number) || !strings.Contains(out, "service passport") {
		t.Errorf("timeline lacks the ticket %s:\n%s", tk.Number, out)
	}

	code, out, _ = runCLI("--data", dir, "calls", "trace", "old", "--json")
	var js struct {
		Timeline []traceLine `json:"timeline"`
	}
	if code != exitOK || json.Unmarshal([]byte(out), &js) != nil || len(js.Timeline) < 11 {
		t.Fatalf("JSON trace: exit %d, %d lines:\n%s", code, len(js.Timeline), out)
	}
	for i := 1; i < len(js.Timeline); i++ {
		if js.Timeline[i].At.Before(js.Timeline[i-1].At) {
			t.Errorf("timeline not in time order at %d: %+v", i, js.Timeline[i])
		}
	}
	if code, _, errOut := runCLI("--data", dir, "calls", "trace", "nope"); code != exitError || !strings.Contains(errOut, "no call") {
		t.Errorf("unknown call: exit %d, %s", code, errOut)
	}
}

func TestCallsTailFollowsNewEventsOnly(t *testing.T) {
	dir, _, _ := seed(t)
	type result struct {
		code     int
		out, err string
	}
	done := make(chan result, 1)
	go func() {
		code, out, errOut := runCLI("--data", dir, "calls", "tail", "--for", "3s")
		done <- result{code, out, errOut}
	}()
	time.Sleep(700 * time.Millisecond) // tail has taken its starting point
	s, err := tickets.Open(tickets.DBPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.AddEvent(ctx, "new", tickets.CallEvent{Kind: "ari.event", Detail: `{"type":"ChannelDtmfReceived"}`}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendTurn(ctx, "new", tickets.Turn{Speaker: tickets.SpeakerCaller, Text: "operator", Mode: tickets.ModeSpeech, Confidence: 0.8}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	r := <-done
	if r.code != exitOK {
		t.Fatalf("exit %d: %s", r.code, r.err)
	}
	for _, want := range []string{"new", "ari.event", "ChannelDtmfReceived", `"operator" (confidence 0.80)`} {
		if !strings.Contains(r.out, want) {
			t.Errorf("tail lacks %q:\n%s", want, r.out)
		}
	}
	if strings.Contains(r.out, "sip.invite") {
		t.Errorf("tail printed events from before it started:\n%s", r.out)
	}
}
