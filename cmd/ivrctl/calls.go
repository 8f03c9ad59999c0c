package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/govline/ivr/tickets"
)

const callsUsage = `Usage: ivrctl calls SUBCOMMAND [FLAGS]

Subcommands:
  list    list recent calls, newest first
  show    show one call and its event log
  trace   one call's timeline: protocol events, flow steps, what was said, DTMF, tickets, handoff
  tail    follow every call live (events and transcript turns)
  originate NUMBER --flow FILE
          test the trunk: call NUMBER through it and run a flow on the answered call
`

// runCalls dispatches "ivrctl calls SUBCOMMAND".
func runCalls(args []string, stdout, stderr io.Writer) int {
	return group{name: "calls", usage: callsUsage, missing: " (list, show, trace, tail or originate)", subs: map[string]command{
		"originate": runCallsOriginate,
		"list":      runCallsList,
		"show":      runCallsShow,
		"trace":     runCallsTrace,
		"tail":      runCallsTail,
	}}.run(args, stdout, stderr)
}

func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// localTime is how times are shown to humans: local time, to the second.
const localTime = "2006-01-02 15:04:05"

func runCallsList(args []string, stdout, stderr io.Writer) int {
	fs, data, asJSON := readFlags("calls list", "ivrctl calls list [--json] [--limit N] [--since DURATION|TIME] [--data DIR]", `print {"calls":[...]} as JSON`, stderr)
	limit := fs.Int("limit", 50, "show at most `N` calls; 0 for all")
	since := fs.String("since", "", "only calls that started in the last `DURATION` (24h, 90m) or since a TIME (RFC 3339, or 2006-01-02 in local time)")
	if status, ok := parseNoArgs(fs, args, stderr); !ok {
		return status
	}
	if *limit < 0 {
		return usageError(fs, stderr, "--limit %d: must be 0 (all) or more", *limit)
	}
	q := tickets.CallQuery{Limit: *limit}
	if *since != "" {
		t, err := parseSince(*since, time.Now())
		if err != nil {
			return usageError(fs, stderr, "%v", err)
		}
		q.Since = t
	}
	return callsListing.list(stdout, stderr, data, *asJSON, func(ctx context.Context, s conn) ([]tickets.CallRecord, error) {
		return s.ListCalls(ctx, q)
	})
}

var callsListing = listing[tickets.CallRecord]{
	key:    "calls",
	empty:  "no calls",
	header: "ID\tSTART\tDURATION\tCALLER\tCALLED\tDTMF\tEND",
	row: func(w io.Writer, c tickets.CallRecord) {
		dur, end := "-", "in progress"
		if c.End != nil {
			dur = c.Duration().Round(time.Second).String()
			end = orDash(c.EndReason)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.Start.Local().Format(localTime), dur,
			orDash(c.Caller), orDash(c.Called), orDash(c.DTMF), end)
	},
}

func runCallsShow(args []string, stdout, stderr io.Writer) int {
	fs, data, asJSON := readFlags("calls show", "ivrctl calls show CALL_ID [--json] [--data DIR]", `print {"call":{...},"events":[...]} as JSON`, stderr)
	pos, status, ok := parseStatus(fs, args)
	if !ok {
		return status
	}
	switch {
	case len(pos) == 0:
		return usageError(fs, stderr, "missing CALL_ID")
	case len(pos) > 1:
		return usageError(fs, stderr, "want one CALL_ID, got %d arguments", len(pos))
	}
	return withStore(data, stderr, func(ctx context.Context, s conn) int {
		return showCall(ctx, s.Store, s.where(), pos[0], *asJSON, stdout, stderr)
	})
}

// findCall reads a call record and its events; a status other than exitOK
// (no such call, a database error, already reported) ends the command.
func findCall(ctx context.Context, s *tickets.Store, path, id string, stderr io.Writer) (tickets.CallRecord, []tickets.CallEvent, int) {
	c, err := s.Call(ctx, id)
	if errors.Is(err, tickets.ErrNotFound) {
		fmt.Fprintf(stderr, "ivrctl: no call with id %q in %s (ivrctl calls list shows the ids)\n", id, path)
		return c, nil, exitError
	}
	if err != nil {
		return c, nil, fail(stderr, err)
	}
	events, err := s.Events(ctx, id)
	if err != nil {
		return c, nil, fail(stderr, err)
	}
	return c, events, exitOK
}

func showCall(ctx context.Context, s *tickets.Store, path, id string, asJSON bool, stdout, stderr io.Writer) int {
	c, events, status := findCall(ctx, s, path, id, stderr)
	if status != exitOK {
		return status
	}
	if asJSON {
		return writeJSON(stdout, stderr, struct {
			Call   tickets.CallRecord  `json:"call"`
			Events []tickets.CallEvent `json:"events"`
		}{c, events})
	}

	tw := newTable(stdout)
	field := func(name, value string) { fmt.Fprintf(tw, "%s\t%s\n", name, value) }
	at := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return fmt.Sprintf("%s (%s)", t.Local().Format(localTime), offset(t.Sub(c.Start)))
	}
	field("Call", c.ID)
	field("Telephony", orDash(c.Telephony))
	field("Caller", orDash(c.Caller))
	field("Called", orDash(c.Called))
	field("Start", c.Start.Local().Format(localTime+" MST"))
	field("Answer", at(c.Answer))
	if c.End != nil {
		field("End", at(c.End)+"  "+orDash(c.EndReason))
		field("Duration", c.Duration().String())
	} else {
		field("End", "- (in progress)")
	}
	field("Codec", orDash(c.Codec))
	field("DTMF", orDash(c.DTMF))
	field("Recording", orDash(c.Recording))
	field("Packets", fmt.Sprintf("in %d, out %d, lost %d, late %d", c.Stats.In, c.Stats.Out, c.Stats.Lost, c.Stats.Late))
	if err := tw.Flush(); err != nil {
		return fail(stderr, err)
	}

	fmt.Fprintf(stdout, "\nEvents (%d)\n", len(events))
	tw = newTable(stdout)
	for _, e := range events {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", e.At.Local().Format("15:04:05.000"), offset(e.At.Sub(c.Start)), e.Kind, e.Detail)
	}
	if err := tw.Flush(); err != nil {
		return fail(stderr, err)
	}
	return exitOK
}

// parseSince reads --since: a duration back from now ("24h", "90m"), an
// RFC 3339 time, or a date (local midnight).
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("--since %q: duration must not be negative", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, s, time.Local); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--since %q: want a duration (24h, 90m), an RFC 3339 time (2026-01-02T15:04:05Z) or a date (2026-01-02)", s)
}

// offset formats a time relative to the start of the call: "+1.250s".
func offset(d time.Duration) string {
	return fmt.Sprintf("%+.3fs", d.Seconds())
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}
