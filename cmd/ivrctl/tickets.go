package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/tickets"
)

const ticketsUsage = `Usage: ivrctl tickets SUBCOMMAND [FLAGS]

Subcommands:
  list    list tickets, newest first (--archived: the archive)
  show    show one ticket, its history and its call's transcript
  hold    place a ticket under legal hold (--reason): retention and erasure leave it
  unhold  lift a legal hold (--reason)
`

// runTickets dispatches "ivrctl tickets SUBCOMMAND".
func runTickets(args []string, stdout, stderr io.Writer) int {
	return group{name: "tickets", usage: ticketsUsage, missing: " (list, show, hold or unhold)", subs: map[string]command{
		"list":   runTicketsList,
		"show":   runTicketsShow,
		"hold":   runTicketsHold,
		"unhold": runTicketsUnhold,
	}}.run(args, stdout, stderr)
}

func names[T ~string](vs []T) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}

func runTicketsList(args []string, stdout, stderr io.Writer) int {
	fs, data, asJSON := readFlags("tickets list", "ivrctl tickets list [--json] [--archived] [--provider ID] [--status S] [--service S] [--caller NUMBER] [--since DURATION|TIME] [--limit N] [--data DIR]", `print {"tickets":[...]} as JSON`, stderr)
	status := fs.String("status", "", "only tickets in status `S`: "+names(tickets.Statuses))
	service := fs.String("service", "", "only tickets of service `S`: "+names(tickets.Services))
	caller := fs.String("caller", "", "only tickets of the caller `NUMBER` (exactly as stored)")
	provider := fs.String("provider", "", "only the tickets provider `ID` holds (ivrctl providers list)")
	limit := fs.Int("limit", 50, "show at most `N` tickets; 0 for all")
	archived := fs.Bool("archived", false, "search the archive (closed tickets the retention job archived) instead of the working tickets")
	since := fs.String("since", "", "only tickets created in the last `DURATION` (24h, 90m) or since a TIME (RFC 3339, or 2006-01-02 in local time)")
	if st, ok := parseNoArgs(fs, args, stderr); !ok {
		return st
	}
	if *limit < 0 {
		return usageError(fs, stderr, "--limit %d: must be 0 (all) or more", *limit)
	}
	q := tickets.TicketQuery{Provider: *provider, Status: tickets.Status(*status), Service: tickets.Service(*service), Caller: *caller, Limit: *limit, Archive: *archived}
	if q.Status != "" && !slices.Contains(tickets.Statuses, q.Status) {
		return usageError(fs, stderr, "--status %q: want one of %s", *status, names(tickets.Statuses))
	}
	if q.Service != "" && !slices.Contains(tickets.Services, q.Service) {
		return usageError(fs, stderr, "--service %q: want one of %s", *service, names(tickets.Services))
	}
	if *since != "" {
		t, err := parseSince(*since, time.Now())
		if err != nil {
			return usageError(fs, stderr, "%v", err)
		}
		q.Since = t
	}
	return ticketsListing.list(stdout, stderr, data, *asJSON, func(ctx context.Context, s conn) ([]tickets.Ticket, error) {
		return s.ListTickets(ctx, q)
	})
}

var ticketsListing = listing[tickets.Ticket]{
	key:    "tickets",
	empty:  "no tickets",
	header: "NUMBER\tCREATED\tSERVICE\tPRIORITY\tLEVEL\tSTATUS\tDEADLINE\tCALLER\tASSIGNEE",
	row: func(w io.Writer, t tickets.Ticket) {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", t.Number, t.Created.Local().Format(localTime),
			t.Service, t.Priority, t.Level, t.Status, deadline(t, time.Now()), orDash(t.Caller), orDash(t.Assignee))
	},
}

// deadline shows the deadline, marked when an open ticket is past it.
func deadline(t tickets.Ticket, now time.Time) string {
	s := t.Deadline.Local().Format("2006-01-02 15:04")
	switch {
	case t.Resolved != nil && t.Resolved.After(t.Deadline):
		s += " (missed)"
	case t.Resolved == nil && now.After(t.Deadline):
		s += " (overdue)"
	}
	return s
}

func runTicketsShow(args []string, stdout, stderr io.Writer) int {
	fs, data, asJSON := readFlags("tickets show", "ivrctl tickets show NUMBER [--json] [--data DIR]",
		`print {"ticket":{...},"call":{...},"history":[...],"transcript":[...]} as JSON ("call" when the call has a record)`, stderr)
	personal := fs.Bool("personal", false, "also print the sensitive answers kept with the ticket (national ID number, phone, address) in clear; masked otherwise")
	pos, st, ok := parseStatus(fs, args)
	if !ok {
		return st
	}
	switch {
	case len(pos) == 0:
		return usageError(fs, stderr, "missing NUMBER")
	case len(pos) > 1:
		return usageError(fs, stderr, "want one NUMBER, got %d arguments", len(pos))
	}
	number := strings.ReplaceAll(pos[0], " ", "")
	if !tickets.ValidNumber(number) {
		return usageError(fs, stderr, "%q is not a ticket number (8 digits with a check digit; a digit may be mistyped)", pos[0])
	}
	return withStore(data, stderr, func(ctx context.Context, s conn) int {
		return showTicket(ctx, s.Store, s.where(), number, *asJSON, *personal, stdout, stderr)
	})
}

func showTicket(ctx context.Context, s *tickets.Store, path, number string, asJSON, personal bool, stdout, stderr io.Writer) int {
	t, err := s.Ticket(ctx, number)
	if errors.Is(err, tickets.ErrNotFound) {
		fmt.Fprintf(stderr, "ivrctl: no ticket %s in %s (ivrctl tickets list shows the numbers)\n", number, path)
		return exitError
	}
	if err != nil {
		return fail(stderr, err)
	}
	history, err := s.History(ctx, number)
	if err != nil {
		return fail(stderr, err)
	}
	if !personal { // sensitive answers only on request
		t.Personal = maskPersonal(t.Personal)
		for i := range history {
			history[i].Data.Personal = maskPersonal(history[i].Data.Personal)
		}
	}
	transcript := []tickets.Turn{}
	var call *tickets.CallRecord // the call record, when the engine kept one
	if t.CallID != "" {
		if transcript, err = s.Transcript(ctx, t.CallID); err != nil {
			return fail(stderr, err)
		}
		c, err := s.Call(ctx, t.CallID)
		switch {
		case err == nil:
			call = &c
		case !errors.Is(err, tickets.ErrNotFound):
			return fail(stderr, err)
		}
	}
	if asJSON {
		return writeJSON(stdout, stderr, struct {
			Ticket     tickets.Ticket        `json:"ticket"`
			Call       *tickets.CallRecord   `json:"call,omitempty"`
			History    []tickets.TicketEvent `json:"history"`
			Transcript []tickets.Turn        `json:"transcript"`
		}{t, call, history, transcript})
	}

	tw := newTable(stdout)
	field := func(name, value string) { fmt.Fprintf(tw, "%s\t%s\n", name, value) }
	field("Ticket", t.Number)
	field("Status", string(t.Status))
	field("Provider", t.Provider)
	field("Service", string(t.Service)+classification(t.Classification))
	field("Priority", string(t.Priority))
	field("Level", strconv.Itoa(t.Level))
	field("Assignee", orDash(t.Assignee))
	field("Channel", string(t.Channel))
	field("Caller", orDash(t.Caller))
	field("Language", t.Lang)
	field("Created", t.Created.Local().Format(localTime+" MST"))
	if t.Hold {
		field("Legal hold", "yes: retention and erasure leave it untouched")
	}
	if t.Archived != nil {
		field("Archived", t.Archived.Local().Format(localTime))
	}
	field("Deadline", deadline(t, time.Now()))
	if t.Resolved != nil {
		r := fmt.Sprintf("%s at level %d, after %s", t.Resolved.Local().Format(localTime), t.ResolvedLevel, t.Resolved.Sub(t.Created).Round(time.Second))
		if t.FirstContact {
			r += " (first contact)"
		}
		field("Resolved", r)
	}
	if t.Closed != nil {
		field("Closed", t.Closed.Local().Format(localTime))
	}
	callLine := orDash(t.CallID)
	if call != nil {
		callLine += " (started " + call.Start.Local().Format(localTime)
		if call.End != nil {
			callLine += ", " + call.Duration().Round(time.Second).String() + ", " + orDash(call.EndReason)
		} else {
			callLine += ", in progress"
		}
		callLine += ")"
	}
	field("Call", callLine)
	field("Recording", orDash(t.Recording))
	field("Articles", orDash(strings.Join(t.Articles, ", ")))
	if t.Rating != 0 {
		field("Rating", fmt.Sprintf("%d/5", t.Rating))
	}
	names := slices.Sorted(maps.Keys(t.Personal))
	for _, k := range names {
		field("Personal "+k, t.Personal[k])
	}
	if err := tw.Flush(); err != nil {
		return fail(stderr, err)
	}
	fmt.Fprintf(stdout, "\nDescription\n  %s\n", orDash(t.Description))

	fmt.Fprintf(stdout, "\nHistory (%d)\n", len(history))
	tw = newTable(stdout)
	for _, e := range history {
		mark := ""
		if e.SupersededBy != 0 {
			mark = fmt.Sprintf("  [superseded by #%d]", e.SupersededBy)
		}
		fmt.Fprintf(tw, "  #%d\t%s\t%s\t%s\t%s%s\n", e.ID, e.At.Local().Format(localTime), e.Actor, e.Kind, eventSummary(e), mark)
	}
	if err := tw.Flush(); err != nil {
		return fail(stderr, err)
	}

	fmt.Fprintf(stdout, "\nTranscript (%d turns)\n", len(transcript))
	tw = newTable(stdout)
	for _, tu := range transcript {
		how := tu.Mode
		if tu.Speaker == tickets.SpeakerCaller && tu.Mode == tickets.ModeSpeech {
			how = fmt.Sprintf("speech %.2f", tu.Confidence)
		}
		text := tu.Text
		text += cutNote(tu)
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", tu.At.Local().Format("15:04:05"), tu.Speaker, how, text)
	}
	if err := tw.Flush(); err != nil {
		return fail(stderr, err)
	}
	return exitOK
}

// maskPersonal is the sensitive answers masked as the flows mask them.
func maskPersonal(p map[string]string) map[string]string {
	if len(p) == 0 {
		return p
	}
	out := make(map[string]string, len(p))
	for k, v := range p {
		out[k] = flows.MaskAnswer(v) + " (--personal shows it)"
	}
	return out
}

func classification(code string) string {
	if code == "" {
		return ""
	}
	return " (" + code + ")"
}

// eventSummary is one line saying what an event did.
func eventSummary(e tickets.TicketEvent) string {
	d := e.Data
	switch e.Kind {
	case tickets.EventCreated:
		return fmt.Sprintf("%s, %s, %s, level %d", d.Channel, d.Service, d.Priority, d.Level)
	case tickets.EventNote, tickets.EventResolved, tickets.EventReopened:
		switch d.Hold {
		case tickets.HoldOn:
			return "LEGAL HOLD: " + oneLine(d.Text)
		case tickets.HoldOff:
			return "legal hold lifted: " + oneLine(d.Text)
		}
		return oneLine(d.Text)
	case tickets.EventClassified:
		return string(d.Service) + classification(d.Classification)
	case tickets.EventPrioritized:
		return string(d.Priority)
	case tickets.EventEscalated:
		return fmt.Sprintf("to level %d", d.Level)
	case tickets.EventAssigned:
		return orDash(d.Assignee)
	case tickets.EventStatus:
		return string(d.Status)
	case tickets.EventArticleCited:
		return d.Article
	case tickets.EventRecording:
		return d.Recording
	case tickets.EventRating:
		return fmt.Sprintf("%d/5", d.Rating)
	case tickets.EventCorrection:
		s := fmt.Sprintf("of #%d (%s)", e.Supersedes, d.Replaces)
		if d.Retracted {
			s += ": retracted"
		} else if r := eventSummary(tickets.TicketEvent{Kind: d.Replaces, Data: d}); r != "" {
			s += ": " + r
		}
		if d.Reason != "" {
			s += " (why: " + oneLine(d.Reason) + ")"
		}
		return s
	}
	return ""
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
