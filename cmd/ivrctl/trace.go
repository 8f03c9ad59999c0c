package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/govline/ivr/tickets"
)

// traceLine is one line of a call's timeline.
type traceLine struct {
	At     time.Time `json:"at"`
	Source string    `json:"source"` // sip, ari, esl, rtp, dtmf, flow, say, hear, ticket, call
	Kind   string    `json:"kind"`
	Detail string    `json:"detail"`
}

// source names the layer an event kind comes from: its prefix before the
// first dot ("ari.request" -> ari).
func source(kind string) string {
	if i := strings.IndexByte(kind, '.'); i > 0 {
		return kind[:i]
	}
	return kind
}

// turnLine is a transcript turn in the timeline, at the moment it began
// (a prompt's start, the caller's first sound or key) with how long it
// lasted until it was written, when the turn knows its start.
func turnLine(t tickets.Turn) traceLine {
	l := traceLine{At: t.Start(), Source: "say", Kind: "ivr", Detail: t.Text}
	if t.Speaker != tickets.SpeakerIVR {
		l.Source, l.Kind = "hear", t.Speaker
		switch t.Mode {
		case tickets.ModeDTMF:
			l.Detail = "keys " + t.Text
		case tickets.ModeNone:
			l.Detail = "(no input)"
		default:
			l.Detail = fmt.Sprintf("%q (confidence %.2f)", t.Text, t.Confidence)
		}
	}
	l.Detail += cutNote(t)
	if !t.Began.IsZero() {
		l.Detail += fmt.Sprintf("  (%.1f s)", t.At.Sub(t.Began).Seconds())
	}
	return l
}

// cutNote says what cut a prompt short, for a transcript line: "" for a
// turn that played whole.
func cutNote(t tickets.Turn) string {
	switch {
	case !t.Interrupted:
		return ""
	case t.Cut == tickets.CutHangup:
		return "  [cut: the call ended]"
	case t.Cut == tickets.CutKey:
		return "  [cut off by the caller: key]"
	case t.Cut == tickets.CutSpeech:
		return "  [cut off by the caller: speech]"
	}
	return "  [cut off by the caller]"
}

// runCallsTrace prints one call's timeline: the call record, every
// protocol event (SIP, ARI, ESL), the flow's steps, what was said and
// heard, DTMF, the tickets opened and the handoff, in time order.
func runCallsTrace(args []string, stdout, stderr io.Writer) int {
	fs, data, asJSON := readFlags("calls trace", "ivrctl calls trace CALL_ID [--json] [--data DIR]", `print {"call":{...},"timeline":[...]} as JSON`, stderr)
	pos, status, ok := parseStatus(fs, args)
	if !ok {
		return status
	}
	if len(pos) != 1 {
		return usageError(fs, stderr, "want one CALL_ID")
	}
	return withStore(data, stderr, func(ctx context.Context, s conn) int {
		return traceCall(ctx, s.Store, s.where(), pos[0], *asJSON, stdout, stderr)
	})
}

func traceCall(ctx context.Context, s *tickets.Store, path, id string, asJSON bool, stdout, stderr io.Writer) int {
	c, events, status := findCall(ctx, s, path, id, stderr)
	if status != exitOK {
		return status
	}
	turns, err := s.Transcript(ctx, id)
	if err != nil {
		return fail(stderr, err)
	}
	tks, err := s.TicketsOfCall(ctx, id)
	if err != nil {
		return fail(stderr, err)
	}

	lines := []traceLine{{At: c.Start, Source: "call", Kind: "offered", Detail: fmt.Sprintf("%s from %s to %s", c.Telephony, orDash(c.Caller), orDash(c.Called))}}
	if c.Answer != nil {
		lines = append(lines, traceLine{At: *c.Answer, Source: "call", Kind: "answered", Detail: "codec " + orDash(c.Codec)})
	}
	for _, e := range events {
		lines = append(lines, traceLine{At: e.At, Source: source(e.Kind), Kind: e.Kind, Detail: e.Detail})
	}
	for _, t := range turns {
		lines = append(lines, turnLine(t))
	}
	for _, t := range tks {
		lines = append(lines, traceLine{At: t.Created, Source: "ticket", Kind: "opened",
			Detail: fmt.Sprintf("%s service %s priority %s level %d status %s", t.Number, t.Service, t.Priority, t.Level, t.Status)})
	}
	if c.End != nil {
		lines = append(lines, traceLine{At: *c.End, Source: "call", Kind: "ended", Detail: fmt.Sprintf("%s after %s; packets in %d out %d lost %d late %d",
			orDash(c.EndReason), c.Duration().Round(time.Millisecond), c.Stats.In, c.Stats.Out, c.Stats.Lost, c.Stats.Late)})
	}
	sort.SliceStable(lines, func(i, j int) bool { return lines[i].At.Before(lines[j].At) })

	if asJSON {
		return writeJSON(stdout, stderr, struct {
			Call     tickets.CallRecord `json:"call"`
			Timeline []traceLine        `json:"timeline"`
		}{c, lines})
	}
	fmt.Fprintf(stdout, "Call %s  %s\n", c.ID, c.Start.Local().Format(localTime+" MST"))
	for _, l := range lines {
		fmt.Fprintf(stdout, "%s  %9s  %-6s  %-22s  %s\n", l.At.Local().Format("15:04:05.000"), offset(l.At.Sub(c.Start)), l.Source, l.Kind, l.Detail)
	}
	return exitOK
}

// tailPoll is how often calls tail reads the database.
const tailPoll = 250 * time.Millisecond

// runCallsTail follows every call live: each call event and transcript turn
// as the engine writes it, until interrupted (or --for ends).
func runCallsTail(args []string, stdout, stderr io.Writer) int {
	fs, data, asJSON := readFlags("calls tail", "ivrctl calls tail [--json] [--for DURATION] [--data DIR]", "print one JSON object per line", stderr)
	dur := fs.Duration("for", 0, "stop after `DURATION` (default: until Ctrl-C)")
	pos, status, ok := parseStatus(fs, args)
	if !ok {
		return status
	}
	if len(pos) != 0 {
		return usageError(fs, stderr, "calls tail takes no arguments")
	}
	s, err := openConn(data, true)
	if err != nil {
		return fail(stderr, err)
	}
	defer s.db.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *dur > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *dur)
		defer cancel()
	}
	cur, err := s.FeedStart(ctx)
	if err != nil {
		return fail(stderr, err)
	}
	t := time.NewTicker(tailPoll)
	defer t.Stop()
	for {
		items, next, err := s.Feed(ctx, cur, 1000)
		if err != nil {
			if ctx.Err() != nil {
				return exitOK
			}
			return fail(stderr, err)
		}
		cur = next
		for _, it := range items {
			if *asJSON {
				if code := writeJSONLine(stdout, stderr, it); code != exitOK {
					return code
				}
				continue
			}
			var l traceLine
			if it.Event != nil {
				l = traceLine{At: it.At, Source: source(it.Event.Kind), Kind: it.Event.Kind, Detail: it.Event.Detail}
			} else {
				l = turnLine(*it.Turn)
			}
			fmt.Fprintf(stdout, "%s  %-24s  %-6s  %-22s  %s\n", l.At.Local().Format("15:04:05.000"), it.CallID, l.Source, l.Kind, l.Detail)
		}
		if len(items) > 0 {
			continue // more may be waiting
		}
		select {
		case <-ctx.Done():
			return exitOK
		case <-t.C:
		}
	}
}
