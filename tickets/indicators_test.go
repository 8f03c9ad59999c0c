package tickets

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// TestIndicators computes the indicators of a known week of tickets and
// calls and compares them with values computed by hand.
func TestIndicators(t *testing.T) {
	ctx := context.Background()
	mon := local(2026, 3, 2, 10, 0) // Monday 10:00
	s, c := clocked(t, mon)
	from, to := local(2026, 3, 2, 0, 0), local(2026, 3, 9, 0, 0)

	call := func(id string, svc Service, at time.Time, q QueueOutcome) {
		t.Helper()
		must(t, s.StartCall(ctx, CallRecord{ID: id, Telephony: "sip", Caller: "+40721000000", Start: at}))
		if q != QueueNone || svc != "" {
			must(t, s.SetCallQueue(ctx, id, svc, q))
		}
	}
	open := func(at time.Time, nt NewTicket) string {
		t.Helper()
		c.set(at)
		nt.Actor = "ivr"
		tk, err := s.OpenTicket(ctx, nt)
		must(t, err)
		return tk.Number
	}
	at := func(tm time.Time, err func() error) {
		t.Helper()
		c.set(tm)
		must(t, err())
	}

	// identity_card
	call("c1", ServiceIdentityCard, mon, QueueAnswered)
	call("c2", ServiceIdentityCard, mon, QueueAbandoned)
	call("c5", ServiceIdentityCard, mon.Add(time.Hour), QueueAbandoned)
	call("c6", ServiceIdentityCard, mon.Add(time.Hour), QueueNone) // the IVR answered it: never queued
	// T1: phone, resolved at level 1 during its call (c1 has not ended): first contact.
	t1 := open(mon, NewTicket{Service: ServiceIdentityCard, CallID: "c1"})
	at(mon.Add(10*time.Minute), func() error { return s.Resolve(ctx, t1, "ana", "explained") })
	// T2: phone, escalated to level 2, resolved 2 h later by a specialist.
	t2 := open(mon, NewTicket{Service: ServiceIdentityCard, CallID: "c2"})
	at(mon.Add(time.Minute), func() error { return s.Escalate(ctx, t2, "ana", 2) })
	at(mon.Add(2*time.Hour), func() error { return s.Resolve(ctx, t2, "spec", "fixed the record") })
	// T3: e-mail, urgent (deadline Monday 14:00), resolved at level 1
	// after 6 h, at 16:00: late.
	t3 := open(mon, NewTicket{Service: ServiceIdentityCard, Channel: ChannelEmail, Priority: PriorityUrgent})
	at(mon.Add(6*time.Hour), func() error { return s.Resolve(ctx, t3, "ana", "answered by mail") })
	// T4: phone, still open.
	open(mon, NewTicket{Service: ServiceIdentityCard, CallID: "c6"})

	// passport
	tue := mon.Add(24 * time.Hour)
	call("p1", ServicePassport, tue, QueueAnswered)
	must(t, s.EndCall(ctx, "p1", tue.Add(5*time.Minute), EndCallerHangup, PacketStats{}))
	// P1: phone, resolved at level 1 after 1 h, after its call ended: not first contact.
	p1 := open(tue, NewTicket{Service: ServicePassport, CallID: "p1"})
	at(tue.Add(time.Hour), func() error { return s.Resolve(ctx, p1, "ana", "called back") })
	// P2: portal, resolved at level 1 after 3 h, then closed.
	p2 := open(tue, NewTicket{Service: ServicePassport, Channel: ChannelPortal})
	at(tue.Add(3*time.Hour), func() error { return s.Resolve(ctx, p2, "ana", "done") })
	at(tue.Add(4*time.Hour), func() error { return s.CloseTicket(ctx, p2, "ana") })
	// P3: phone, resolved then reopened: not resolved.
	p3 := open(tue, NewTicket{Service: ServicePassport})
	at(tue.Add(time.Hour), func() error { return s.Resolve(ctx, p3, "ana", "done") })
	at(tue.Add(2*time.Hour), func() error { return s.Reopen(ctx, p3, "ana", "citizen disagrees") })

	// A queued call whose service was never recorded: in the total only.
	call("c7", "", mon, QueueAbandoned)
	must(t, s.SetCallQueue(ctx, "c7", "", QueueAbandoned))
	// Outside the period: a ticket and a call of the next week.
	x := open(to.Add(9*time.Hour), NewTicket{Service: ServiceIdentityCard})
	at(to.Add(10*time.Hour), func() error { return s.Resolve(ctx, x, "ana", "x") })
	call("c8", ServiceIdentityCard, to.Add(24*time.Hour), QueueAbandoned)

	r, err := s.Indicators(ctx, from, to)
	must(t, err)
	min := time.Minute
	want := map[Service]Indicators{
		ServiceIdentityCard: {
			Service:       ServiceIdentityCard,
			Requests:      4,                             // T1 T2 T3 T4
			PhoneRequests: 3,                             // T1 T2 T4
			FirstContact:  1, FirstContactShare: 1.0 / 3, // T1 / 3 phone requests
			Resolved:       3,                           // T1 T2 T3
			ResolvedLevel1: 2, ResolvedLevel1Share: 0.5, // T1 T3 / 4 requests
			AvgResolutionLevel1: 185 * min,                       // (10 min + 360 min) / 2 = 185 min = 3h05m
			WithinDeadline:      2, WithinDeadlineShare: 2.0 / 3, // T1 T2 / 3 resolved (T3 late)
			AvgResolution: 490 * min / 3,                            // (10 + 120 + 360) min / 3 = 163 min 20 s
			QueuedCalls:   3, Abandoned: 2, AbandonedShare: 2.0 / 3, // c1 c2 c5 queued, c2 c5 abandoned
		},
		ServicePassport: {
			Service:       ServicePassport,
			Requests:      3, // P1 P2 P3
			PhoneRequests: 2, // P1 P3
			FirstContact:  0, FirstContactShare: 0,
			Resolved:       2,                               // P1 P2 (P3 reopened)
			ResolvedLevel1: 2, ResolvedLevel1Share: 2.0 / 3, // 2 / 3 requests
			AvgResolutionLevel1: 120 * min,                 // (60 + 180) / 2
			WithinDeadline:      2, WithinDeadlineShare: 1, // 2 / 2
			AvgResolution: 120 * min,
			QueuedCalls:   1, Abandoned: 0, AbandonedShare: 0, // p1 answered
		},
	}
	for _, got := range r.Services {
		w, ok := want[got.Service]
		if !ok {
			w = Indicators{Service: got.Service} // no data: all zero
		}
		compareIndicators(t, string(got.Service), got, w)
	}
	if len(r.Services) != len(Services) {
		t.Fatalf("%d service rows, want %d", len(r.Services), len(Services))
	}
	compareIndicators(t, "total", r.Total, Indicators{
		Requests:      7,                         // 4 + 3
		PhoneRequests: 5,                         // 3 + 2
		FirstContact:  1, FirstContactShare: 0.2, // 1 / 5
		Resolved:       5,                               // 3 + 2
		ResolvedLevel1: 4, ResolvedLevel1Share: 4.0 / 7, // (2 + 2) / 7
		AvgResolutionLevel1: 305 * min / 2,               // (10 + 360 + 60 + 180) / 4 = 152.5 min
		WithinDeadline:      4, WithinDeadlineShare: 0.8, // 4 / 5
		AvgResolution: 146 * min,                            // (10 + 120 + 360 + 60 + 180) / 5 = 730 / 5
		QueuedCalls:   5, Abandoned: 3, AbandonedShare: 0.6, // c1 c2 c5 p1 c7; c2 c5 c7
	})

	// A narrower period: Tuesday only has the passport tickets and p1.
	r, err = s.Indicators(ctx, tue.Add(-time.Hour), tue.Add(time.Hour))
	must(t, err)
	if r.Total.Requests != 3 || r.Total.QueuedCalls != 1 || r.Total.Resolved != 2 {
		t.Fatalf("Tuesday: %+v", r.Total)
	}
	if _, err := s.Indicators(ctx, to, from); !errors.Is(err, ErrInvalid) {
		t.Fatalf("reversed period: %v", err)
	}
	if err := s.SetCallQueue(ctx, "c1", "passports", QueueAnswered); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad service: %v", err)
	}
	if err := s.SetCallQueue(ctx, "c1", ServicePassport, "lost"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad outcome: %v", err)
	}
	if err := s.SetCallQueue(ctx, "nope", ServicePassport, QueueAnswered); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing call: %v", err)
	}
}

func compareIndicators(t *testing.T, name string, got, want Indicators) {
	t.Helper()
	feq := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	deq := func(a, b time.Duration) bool { return (a - b).Abs() < time.Millisecond }
	if got.Service != want.Service || got.Requests != want.Requests || got.PhoneRequests != want.PhoneRequests ||
		got.FirstContact != want.FirstContact || !feq(got.FirstContactShare, want.FirstContactShare) ||
		got.Resolved != want.Resolved || got.ResolvedLevel1 != want.ResolvedLevel1 ||
		!feq(got.ResolvedLevel1Share, want.ResolvedLevel1Share) || !deq(got.AvgResolutionLevel1, want.AvgResolutionLevel1) ||
		got.WithinDeadline != want.WithinDeadline || !feq(got.WithinDeadlineShare, want.WithinDeadlineShare) ||
		!deq(got.AvgResolution, want.AvgResolution) || got.QueuedCalls != want.QueuedCalls ||
		got.Abandoned != want.Abandoned || !feq(got.AbandonedShare, want.AbandonedShare) {
		t.Errorf("%s:\n got %+v\nwant %+v", name, got, want)
	}
}

// TestIndicatorsRollupMatchesScan: after random ticket and call changes,
// the hourly roll-ups equal a recount of the rows, and the indicators of
// random periods (edges anywhere inside an hour) equal a plain scan.
func TestIndicatorsRollupMatchesScan(t *testing.T) {
	ctx := context.Background()
	start := local(2026, 3, 2, 7, 13)
	s, c := clocked(t, start)
	rng := rand.New(rand.NewPCG(7, 9))
	var numbers []string
	for i := range 120 {
		c.set(start.Add(time.Duration(rng.IntN(72*60)) * time.Minute).Add(time.Duration(rng.IntN(60)) * time.Second))
		callID := fmt.Sprint("call-", i)
		must(t, s.StartCall(ctx, CallRecord{ID: callID, Telephony: "sip", Caller: "+40721000000", Start: c.now()}))
		if rng.IntN(3) > 0 {
			must(t, s.SetCallQueue(ctx, callID, Services[rng.IntN(len(Services))], []QueueOutcome{QueueAnswered, QueueAbandoned}[rng.IntN(2)]))
		}
		if rng.IntN(4) == 0 { // the outcome changes later (or the service is corrected)
			must(t, s.SetCallQueue(ctx, callID, Services[rng.IntN(len(Services))], []QueueOutcome{QueueNone, QueueAnswered, QueueAbandoned}[rng.IntN(3)]))
		}
		tk, err := s.OpenTicket(ctx, NewTicket{Actor: "ivr", Service: Services[rng.IntN(len(Services))],
			Channel: Channels[rng.IntN(len(Channels))], Priority: Priorities[rng.IntN(len(Priorities))], CallID: callID})
		must(t, err)
		numbers = append(numbers, tk.Number)
	}
	for range 600 {
		n := numbers[rng.IntN(len(numbers))]
		c.add(time.Duration(rng.IntN(300)) * time.Minute)
		var err error
		switch rng.IntN(7) {
		case 0:
			err = s.Classify(ctx, n, "ana", Services[rng.IntN(len(Services))], "")
		case 1:
			err = s.SetPriority(ctx, n, "ana", Priorities[rng.IntN(len(Priorities))])
		case 2:
			err = s.Escalate(ctx, n, "ana", 2+rng.IntN(2))
		case 3, 4:
			err = s.Resolve(ctx, n, "ana", "done")
		case 5:
			err = s.Reopen(ctx, n, "ana", "again")
		case 6:
			h, herr := s.History(ctx, n)
			must(t, herr)
			err = s.Correct(ctx, n, "sup", h[rng.IntN(len(h))].ID, Correction{Service: Services[rng.IntN(len(Services))], Priority: Priorities[rng.IntN(len(Priorities))], Text: "x"})
		}
		if err != nil && !errors.Is(err, ErrTransition) && !errors.Is(err, ErrInvalid) {
			t.Fatal(err)
		}
	}

	// The roll-ups equal a recount.
	dump := func(q string) string {
		t.Helper()
		rows, err := s.db.QueryContext(ctx, q)
		must(t, err)
		defer rows.Close()
		cols, _ := rows.Columns()
		var b strings.Builder
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			must(t, rows.Scan(ptrs...))
			fmt.Fprintln(&b, vals...)
		}
		must(t, rows.Err())
		return b.String()
	}
	rollT := dump(`SELECT service, hour, requests, phone, first_contact, resolved, resolved_level1, within_deadline, resolution_ms, resolution_level1_ms
		 FROM ticket_stats WHERE requests <> 0 OR resolution_ms <> 0 ORDER BY service, hour`)
	countT := dump(`SELECT service, created_ns / 3600000000000, count(*), sum(channel = 'phone'), sum(first_contact), count(resolved_ns),
		        count(CASE WHEN resolved_level = 1 THEN 1 END), count(CASE WHEN resolved_ns <= deadline_ns THEN 1 END),
		        coalesce(sum((resolved_ns - created_ns) / 1000000), 0),
		        coalesce(sum(CASE WHEN resolved_level = 1 THEN (resolved_ns - created_ns) / 1000000 END), 0)
		 FROM tickets GROUP BY 1, 2 ORDER BY 1, 2`)
	if rollT != countT || rollT == "" {
		t.Fatalf("ticket roll-up differs from a recount:\n%s\nrecount:\n%s", rollT, countT)
	}
	rollC := dump(`SELECT service, hour, queued, abandoned FROM call_stats WHERE queued <> 0 OR abandoned <> 0 ORDER BY service, hour`)
	countC := dump(`SELECT service, start_ns / 3600000000000, count(*), count(CASE WHEN queue_outcome = 'abandoned' THEN 1 END)
		 FROM calls WHERE queue_outcome <> 'none' GROUP BY 1, 2 ORDER BY 1, 2`)
	if rollC != countC || rollC == "" {
		t.Fatalf("call roll-up differs from a recount:\n%s\nrecount:\n%s", rollC, countC)
	}

	// Random periods: the roll-up path equals the scan.
	for i := range 40 {
		from := start.Add(time.Duration(rng.Int64N(int64(80*time.Hour))) - 4*time.Hour)
		to := from.Add(time.Duration(1 + rng.Int64N(int64(90*time.Hour))))
		if i == 0 {
			from, to = start.Add(-time.Hour), start.Add(200*time.Hour) // everything
		}
		fast, err := s.Indicators(ctx, from, to)
		must(t, err)
		slow, err := s.indicators(ctx, "", from, to, false)
		must(t, err)
		compareIndicators(t, fmt.Sprint("period ", i, " total"), fast.Total, slow.Total)
		for j := range fast.Services {
			compareIndicators(t, fmt.Sprint("period ", i, " ", fast.Services[j].Service), fast.Services[j], slow.Services[j])
		}
		if i == 0 && (slow.Total.Requests != 120 || slow.Total.Resolved == 0 || slow.Total.QueuedCalls == 0) {
			t.Fatalf("the whole data set: %+v", slow.Total)
		}
	}
}
