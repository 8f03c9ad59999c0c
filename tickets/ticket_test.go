package tickets

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

var bucharest = func() *time.Location {
	l, err := time.LoadLocation("Europe/Bucharest")
	if err != nil {
		panic(err)
	}
	return l
}()

func local(y int, m time.Month, d, h, min int) time.Time {
	return time.Date(y, m, d, h, min, 0, 0, bucharest)
}

// clock is a settable clock for a store.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func clocked(t testing.TB, start time.Time) (*Store, *clock) {
	s := openTemp(t)
	c := &clock{t: start}
	s.SetClock(c.now)
	return s, c
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestValidNumber(t *testing.T) {
	seen := map[string]bool{}
	for range 2000 {
		n, err := newNumber()
		must(t, err)
		if !ValidNumber(n) {
			t.Fatalf("drawn number %s is not valid", n)
		}
		seen[n] = true
		// Every single wrong digit and every swap of two different
		// adjacent digits is caught (the Damm algorithm's guarantee).
		b := []byte(n)
		for i := range b {
			orig := b[i]
			for d := byte('0'); d <= '9'; d++ {
				if d == orig {
					continue
				}
				b[i] = d
				if ValidNumber(string(b)) {
					t.Fatalf("%s with digit %d changed to %c passes", n, i, d)
				}
			}
			b[i] = orig
		}
		for i := 0; i+1 < len(b); i++ {
			if b[i] == b[i+1] {
				continue
			}
			b[i], b[i+1] = b[i+1], b[i]
			if ValidNumber(string(b)) && b[0] != '0' {
				t.Fatalf("%s with digits %d,%d swapped passes", n, i, i+1)
			}
			b[i], b[i+1] = b[i+1], b[i]
		}
	}
	if len(seen) < 1990 {
		t.Fatalf("2000 draws gave only %d distinct numbers: not random", len(seen))
	}
	for _, bad := range []string{"", "1234567", "123456789", "1234567a", "0000000" + "0", " 1234567", "12345-78"} {
		if ValidNumber(bad) {
			t.Errorf("ValidNumber(%q) = true", bad)
		}
	}
	// A known value: Damm check digit of 572 is 4.
	if dammDigit("5724") != 0 || dammDigit("572") != 4 {
		t.Fatal("Damm table wrong: check digit of 572 must be 4")
	}
}

func TestOpenTicketDefaultsAndDeadline(t *testing.T) {
	ctx := context.Background()
	// Monday 2 March 2026, 10:00 in Bucharest.
	s, _ := clocked(t, local(2026, 3, 2, 10, 0))
	tk, err := s.OpenTicket(ctx, NewTicket{Actor: "ivr", Caller: "+40721123456", Description: "my ID card expired", CallID: "c1",
		Articles: []string{"kb-1", "kb-1", "kb-2"}})
	must(t, err)
	if !ValidNumber(tk.Number) {
		t.Fatalf("number %q not valid", tk.Number)
	}
	if tk.Channel != ChannelPhone || tk.Lang != "ro" || tk.Service != ServiceOther || tk.Priority != PriorityNormal ||
		tk.Level != 1 || tk.Status != StatusNew || tk.Rating != 0 || !reflect.DeepEqual(tk.Articles, []string{"kb-1", "kb-2"}) {
		t.Fatalf("defaults wrong: %+v", tk)
	}
	// normal = 3 working days = 36 h: Mon 10-20 (10 h), Tue (12), Wed (12), Thu 08-10 (2).
	if want := local(2026, 3, 5, 10, 0); !tk.Deadline.Equal(want) {
		t.Fatalf("deadline %s, want %s", tk.Deadline.In(bucharest), want)
	}
	got, err := s.Ticket(ctx, tk.Number)
	must(t, err)
	if !reflect.DeepEqual(got, tk) {
		t.Fatalf("read back\n%+v\nwant\n%+v", got, tk)
	}
	if _, err := s.Ticket(ctx, "12345678"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing ticket: %v, want ErrNotFound", err)
	}

	for _, bad := range []NewTicket{
		{Service: "passport"},
		{Actor: "ivr", Service: "passports"},
		{Actor: "ivr", Priority: "asap"},
		{Actor: "ivr", Channel: "fax"},
		{Actor: "ivr", Level: 4},
		{Actor: "ivr", Articles: []string{""}},
	} {
		if _, err := s.OpenTicket(ctx, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("OpenTicket(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
	if _, err := s.OpenTicket(ctx, NewTicket{Actor: "ivr", Service: "passports"}); err == nil || !strings.Contains(err.Error(), "service") {
		t.Errorf("error does not name the field: %v", err)
	}
}

func TestLifecycleTransitions(t *testing.T) {
	ctx := context.Background()
	s, c := clocked(t, local(2026, 3, 2, 10, 0))
	newT := func() string {
		tk, err := s.OpenTicket(ctx, NewTicket{Actor: "ivr", Service: ServicePassport})
		must(t, err)
		return tk.Number
	}
	status := func(n string) Status {
		tk, err := s.Ticket(ctx, n)
		must(t, err)
		return tk.Status
	}
	// Drive a ticket to each status.
	to := func(st Status) string {
		n := newT()
		switch st {
		case StatusInProgress, StatusWaiting:
			must(t, s.SetStatus(ctx, n, "ana", st))
		case StatusEscalated:
			must(t, s.Escalate(ctx, n, "ana", 2))
		case StatusResolved:
			must(t, s.Resolve(ctx, n, "ana", "done"))
		case StatusClosed:
			must(t, s.Resolve(ctx, n, "ana", "done"))
			must(t, s.CloseTicket(ctx, n, "ana"))
		}
		if got := status(n); got != st {
			t.Fatalf("setup: status %s, want %s", got, st)
		}
		return n
	}
	type step struct {
		name string
		do   func(n string) error
		want Status // "" means ErrTransition
	}
	steps := []step{
		{"in_progress", func(n string) error { return s.SetStatus(ctx, n, "ana", StatusInProgress) }, StatusInProgress},
		{"waiting", func(n string) error { return s.SetStatus(ctx, n, "ana", StatusWaiting) }, StatusWaiting},
		{"set new", func(n string) error { return s.SetStatus(ctx, n, "ana", StatusNew) }, ""},
		{"set resolved", func(n string) error { return s.SetStatus(ctx, n, "ana", StatusResolved) }, ""},
		{"set closed", func(n string) error { return s.SetStatus(ctx, n, "ana", StatusClosed) }, ""},
		{"set escalated", func(n string) error { return s.SetStatus(ctx, n, "ana", StatusEscalated) }, ""},
		{"escalate 3", func(n string) error { return s.Escalate(ctx, n, "ana", 3) }, StatusEscalated},
		{"resolve", func(n string) error { return s.Resolve(ctx, n, "ana", "explained the steps") }, StatusResolved},
		{"resolve no note", func(n string) error { return s.Resolve(ctx, n, "ana", "  ") }, ""},
		{"close", func(n string) error { return s.CloseTicket(ctx, n, "ana") }, StatusClosed},
		{"reopen", func(n string) error { return s.Reopen(ctx, n, "ana", "citizen called back") }, StatusInProgress},
		{"reopen no reason", func(n string) error { return s.Reopen(ctx, n, "ana", "") }, ""},
	}
	open := map[Status]bool{StatusNew: true, StatusInProgress: true, StatusEscalated: true, StatusWaiting: true}
	for _, from := range Statuses {
		for _, st := range steps {
			var want Status
			switch st.name {
			case "in_progress", "waiting":
				if open[from] {
					want = st.want
				}
				if from == st.want {
					want = from // no change, no error
				}
			case "escalate 3", "resolve":
				if open[from] {
					want = st.want
				}
			case "close":
				if from == StatusResolved {
					want = StatusClosed
				}
			case "reopen":
				if !open[from] {
					want = StatusInProgress
				}
			}
			n := to(from)
			c.add(time.Minute)
			err := st.do(n)
			if want == "" {
				if !errors.Is(err, ErrTransition) {
					t.Errorf("%s from %s: err %v, want ErrTransition", st.name, from, err)
				}
				if got := status(n); got != from {
					t.Errorf("%s from %s: refused but status is now %s", st.name, from, got)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s from %s: %v", st.name, from, err)
				continue
			}
			if got := status(n); got != want {
				t.Errorf("%s from %s: status %s, want %s", st.name, from, got, want)
			}
		}
	}

	// Escalation goes up only; closed tickets refuse edits but keep notes.
	n := to(StatusEscalated) // level 2
	if err := s.Escalate(ctx, n, "ana", 2); !errors.Is(err, ErrTransition) {
		t.Errorf("escalate 2 -> 2: %v", err)
	}
	if err := s.Escalate(ctx, n, "ana", 4); !errors.Is(err, ErrInvalid) {
		t.Errorf("escalate to 4: %v", err)
	}
	n = to(StatusClosed)
	for name, err := range map[string]error{
		"classify": s.Classify(ctx, n, "ana", ServiceIdentityCard, "X1"),
		"priority": s.SetPriority(ctx, n, "ana", PriorityUrgent),
		"assign":   s.Assign(ctx, n, "ana", "bob"),
	} {
		if !errors.Is(err, ErrTransition) {
			t.Errorf("%s on closed: %v, want ErrTransition", name, err)
		}
	}
	must(t, s.AddNote(ctx, n, "ana", "citizen thanked us"))
	if err := s.AddNote(ctx, n, "", "x"); !errors.Is(err, ErrInvalid) {
		t.Errorf("note without actor: %v", err)
	}
	if err := s.AddNote(ctx, "99999999", "ana", "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("note on missing ticket: %v", err)
	}
	if err := s.Rate(ctx, n, "ivr", 6); !errors.Is(err, ErrInvalid) {
		t.Errorf("rating 6: %v", err)
	}
}

func TestHistoryAppendOnlyAndCorrections(t *testing.T) {
	ctx := context.Background()
	s, c := clocked(t, local(2026, 3, 2, 10, 0)) // Monday
	tk, err := s.OpenTicket(ctx, NewTicket{Actor: "ivr", Service: ServiceIdentityCard, Description: "card lost"})
	must(t, err)
	n := tk.Number
	step := func(err error) { t.Helper(); must(t, err); c.add(time.Minute) }
	step(s.AddNote(ctx, n, "ana", "asked for the CNP")) // personal data in a note stays in the store
	step(s.SetPriority(ctx, n, "ana", PriorityHigh))
	step(s.SetPriority(ctx, n, "ana", PriorityUrgent))
	step(s.CiteArticle(ctx, n, "ivr", "kb-7"))
	step(s.CiteArticle(ctx, n, "ivr", "kb-9"))
	step(s.Rate(ctx, n, "ivr", 2))
	h, err := s.History(ctx, n)
	must(t, err)
	kinds := func(h []TicketEvent) string {
		var k []string
		for _, e := range h {
			k = append(k, string(e.Kind))
		}
		return strings.Join(k, " ")
	}
	if got := kinds(h); got != "created note prioritized prioritized article_cited article_cited rating" {
		t.Fatalf("history %s", got)
	}
	note, high, kb7, rating := h[1], h[2], h[4], h[6]

	// The database refuses to change or delete history.
	for _, q := range []string{
		`UPDATE ticket_events SET actor = 'mallory' WHERE id = ?`,
		`DELETE FROM ticket_events WHERE id = ?`,
	} {
		_, err := rawExec(s, q, note.ID)
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v, want the append-only error", q, err)
		}
	}
	if _, err := rawExec(s, `DELETE FROM tickets WHERE number = ?`, n); err == nil {
		t.Error("deleting a ticket succeeded")
	}

	// Corrections: the note's text, the first priority (urgent stays: a
	// later event set it), a cited article retracted, the rating.
	step(s.Correct(ctx, n, "ana", note.ID, Correction{Text: "asked for the date of birth", Reason: "typo"}))
	step(s.Correct(ctx, n, "sup", high.ID, Correction{Priority: PriorityLow, Reason: "was never high"}))
	step(s.Correct(ctx, n, "ana", kb7.ID, Correction{Retract: true, Reason: "wrong article"}))
	step(s.Correct(ctx, n, "ana", rating.ID, Correction{Rating: 4, Reason: "keyed 2, said 4"}))
	got, err := s.Ticket(ctx, n)
	must(t, err)
	if got.Priority != PriorityUrgent || !reflect.DeepEqual(got.Articles, []string{"kb-9"}) || got.Rating != 4 {
		t.Fatalf("after corrections: priority %s articles %v rating %d", got.Priority, got.Articles, got.Rating)
	}
	// urgent: 4 working hours from Monday 10:00.
	if want := local(2026, 3, 2, 14, 0); !got.Deadline.Equal(want) {
		t.Fatalf("deadline %s, want %s", got.Deadline.In(bucharest), want)
	}
	// Correcting the newest priority recomputes the deadline: low = 5 d.
	h, _ = s.History(ctx, n)
	step(s.Correct(ctx, n, "sup", h[3].ID, Correction{Priority: PriorityLow}))
	got, _ = s.Ticket(ctx, n)
	// 60 working hours: Mon 10 h, Tue-Fri 48 h (58), next Mon 08-10.
	if want := local(2026, 3, 9, 10, 0); got.Priority != PriorityLow || !got.Deadline.Equal(want) {
		t.Fatalf("priority %s deadline %s, want low %s", got.Priority, got.Deadline.In(bucharest), want)
	}
	// A correction of a correction: the rating becomes 5.
	h, _ = s.History(ctx, n)
	last := h[len(h)-2] // the rating correction
	if last.Kind != EventCorrection || last.Supersedes != rating.ID {
		t.Fatalf("unexpected event %+v", last)
	}
	step(s.Correct(ctx, n, "sup", last.ID, Correction{Rating: 5}))
	got, _ = s.Ticket(ctx, n)
	if got.Rating != 5 {
		t.Fatalf("rating %d after correcting the correction, want 5", got.Rating)
	}

	// Nothing was lost: every original event is still there, marked.
	h, err = s.History(ctx, n)
	must(t, err)
	if len(h) != 13 {
		t.Fatalf("history has %d events, want 7 originals + 6 corrections", len(h))
	}
	if h[1].Data.Text != "asked for the CNP" || h[1].SupersededBy != h[7].ID {
		t.Fatalf("original note changed or not marked: %+v", h[1])
	}
	if h[6].SupersededBy == 0 || h[10].SupersededBy != h[12].ID {
		t.Fatalf("correction chain not marked: rating %d, correction %d", h[6].SupersededBy, h[10].SupersededBy)
	}
	for i := 1; i < len(h); i++ {
		if h[i].ID <= h[i-1].ID || h[i].At.Before(h[i-1].At) {
			t.Fatalf("history out of order at %d", i)
		}
	}

	// Status changes are not corrected, and a correction of another
	// ticket's event is refused.
	must(t, s.Escalate(ctx, n, "ana", 2))
	h, _ = s.History(ctx, n)
	if err := s.Correct(ctx, n, "ana", h[len(h)-1].ID, Correction{}); !errors.Is(err, ErrTransition) {
		t.Errorf("correcting an escalation: %v", err)
	}
	other, err := s.OpenTicket(ctx, NewTicket{Actor: "ivr"})
	must(t, err)
	if err := s.Correct(ctx, other.Number, "ana", note.ID, Correction{Text: "x"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("correcting another ticket's event: %v", err)
	}
	checkReplay(t, s, n)
}

// checkReplay asserts that the materialized row equals the state replayed
// from the log.
func checkReplay(t *testing.T, s *Store, n string) {
	t.Helper()
	ctx := context.Background()
	row, err := s.Ticket(ctx, n)
	must(t, err)
	rep, err := s.ReplayTicket(ctx, n)
	must(t, err)
	if !reflect.DeepEqual(row, rep) {
		t.Fatalf("ticket %s: row and log disagree\nrow    %+v\nreplay %+v", n, row, rep)
	}
}

// TestRowEqualsReplay drives many tickets through random actions (valid or
// not) and checks that every row equals the state rebuilt from its log.
func TestRowEqualsReplay(t *testing.T) {
	ctx := context.Background()
	s, c := clocked(t, local(2026, 3, 2, 9, 0))
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(n int) int { return rng.IntN(n) }
	var numbers []string
	for range 40 {
		tk, err := s.OpenTicket(ctx, NewTicket{Actor: "ivr", Service: Services[pick(len(Services))],
			Priority: Priorities[pick(len(Priorities))], Caller: "+4072100000" + fmt.Sprint(pick(10))})
		must(t, err)
		numbers = append(numbers, tk.Number)
	}
	ok := 0
	for range 1500 {
		n := numbers[pick(len(numbers))]
		c.add(time.Duration(pick(120)) * time.Minute)
		var err error
		switch pick(14) {
		case 0:
			err = s.AddNote(ctx, n, "ana", "note")
		case 1:
			err = s.Classify(ctx, n, "ana", Services[pick(len(Services))], fmt.Sprint("C", pick(3)))
		case 2:
			err = s.SetPriority(ctx, n, "ana", Priorities[pick(len(Priorities))])
		case 3:
			err = s.Escalate(ctx, n, "ana", 1+pick(3))
		case 4:
			err = s.Assign(ctx, n, "ana", fmt.Sprint("agent", pick(3)))
		case 5:
			err = s.SetStatus(ctx, n, "ana", Statuses[pick(len(Statuses))])
		case 6:
			err = s.Resolve(ctx, n, "ana", "fixed")
		case 7:
			err = s.CloseTicket(ctx, n, "ana")
		case 8:
			err = s.Reopen(ctx, n, "ana", "again")
		case 9:
			err = s.CiteArticle(ctx, n, "ivr", fmt.Sprint("kb-", pick(4)))
		case 10:
			err = s.Rate(ctx, n, "ivr", 1+pick(5))
		case 11:
			err = s.AttachRecording(ctx, n, "ivr", fmt.Sprint("/rec/", pick(3), ".wav"))
		default:
			h, herr := s.History(ctx, n)
			must(t, herr)
			e := h[pick(len(h))]
			err = s.Correct(ctx, n, "sup", e.ID, Correction{Text: "corrected", Service: Services[pick(len(Services))],
				Priority: Priorities[pick(len(Priorities))], Assignee: "bob", Article: "kb-x", Recording: "/rec/x.wav",
				Rating: 1 + pick(5), Retract: pick(2) == 0})
		}
		if err == nil {
			ok++
		} else if !errors.Is(err, ErrTransition) && !errors.Is(err, ErrInvalid) {
			t.Fatal(err)
		}
	}
	if ok < 500 {
		t.Fatalf("only %d of 1500 random actions were valid: the test exercises too little", ok)
	}
	for _, n := range numbers {
		checkReplay(t, s, n)
	}
}

func TestResolveFirstContact(t *testing.T) {
	ctx := context.Background()
	start := local(2026, 3, 2, 10, 0)
	s, c := clocked(t, start)
	must(t, s.StartCall(ctx, CallRecord{ID: "call-a", Telephony: "sip", Caller: "+40721000001", Start: start}))
	must(t, s.StartCall(ctx, CallRecord{ID: "call-b", Telephony: "sip", Caller: "+40721000002", Start: start}))
	a, err := s.OpenTicket(ctx, NewTicket{Actor: "ivr", CallID: "call-a"})
	must(t, err)
	b, err := s.OpenTicket(ctx, NewTicket{Actor: "ivr", CallID: "call-b"})
	must(t, err)
	c.add(2 * time.Minute)
	must(t, s.Resolve(ctx, a.Number, "ana", "answered on the call")) // call a still going
	must(t, s.EndCall(ctx, "call-b", start.Add(time.Minute), EndCallerHangup, PacketStats{}))
	must(t, s.Resolve(ctx, b.Number, "ana", "called back")) // after call b ended
	ga, _ := s.Ticket(ctx, a.Number)
	gb, _ := s.Ticket(ctx, b.Number)
	if !ga.FirstContact || gb.FirstContact {
		t.Fatalf("first contact: a %v (want true), b %v (want false)", ga.FirstContact, gb.FirstContact)
	}
	if ga.ResolvedLevel != 1 || ga.Resolved == nil || !ga.Resolved.Equal(start.Add(2*time.Minute)) {
		t.Fatalf("resolution not recorded: %+v", ga)
	}
	// A reopen takes the first-contact resolution away.
	must(t, s.Reopen(ctx, a.Number, "ana", "not solved after all"))
	must(t, s.Resolve(ctx, a.Number, "ana", "solved now"))
	ga, _ = s.Ticket(ctx, a.Number)
	if !ga.FirstContact { // the call is still going: still during the call
		t.Fatal("resolved again during the call: first contact expected")
	}
	must(t, s.Reopen(ctx, a.Number, "ana", "again"))
	must(t, s.Escalate(ctx, a.Number, "ana", 2))
	must(t, s.Resolve(ctx, a.Number, "spec", "specialist fixed it"))
	ga, _ = s.Ticket(ctx, a.Number)
	if ga.FirstContact || ga.ResolvedLevel != 2 || !ga.Escalated {
		t.Fatalf("escalated ticket: %+v", ga)
	}
}

func TestListTicketsAndByCaller(t *testing.T) {
	ctx := context.Background()
	start := local(2026, 3, 2, 10, 0)
	s, c := clocked(t, start)
	var made []Ticket
	for i := range 6 {
		svc := ServicePassport
		if i%2 == 1 {
			svc = ServiceIdentityCard
		}
		tk, err := s.OpenTicket(ctx, NewTicket{Actor: "ivr", Service: svc, Caller: fmt.Sprint("+4072100000", i%3)})
		must(t, err)
		made = append(made, tk)
		c.add(time.Hour)
	}
	must(t, s.Resolve(ctx, made[0].Number, "ana", "ok"))
	numbers := func(ts []Ticket) []string {
		var out []string
		for _, t := range ts {
			out = append(out, t.Number)
		}
		return out
	}
	all, err := s.ListTickets(ctx, TicketQuery{})
	must(t, err)
	if len(all) != 6 || all[0].Number != made[5].Number || all[5].Number != made[0].Number {
		t.Fatalf("list not newest first: %v", numbers(all))
	}
	pass, _ := s.ListTickets(ctx, TicketQuery{Service: ServicePassport})
	if want := []string{made[4].Number, made[2].Number, made[0].Number}; !reflect.DeepEqual(numbers(pass), want) {
		t.Fatalf("passport: %v, want %v", numbers(pass), want)
	}
	res, _ := s.ListTickets(ctx, TicketQuery{Status: StatusResolved})
	if len(res) != 1 || res[0].Number != made[0].Number {
		t.Fatalf("resolved: %v", numbers(res))
	}
	lim, _ := s.ListTickets(ctx, TicketQuery{Limit: 2, Since: start.Add(90 * time.Minute)})
	if want := []string{made[5].Number, made[4].Number}; !reflect.DeepEqual(numbers(lim), want) {
		t.Fatalf("limit+since: %v, want %v", numbers(lim), want)
	}
	by, err := s.TicketsByCaller(ctx, "+40721000001", 0)
	must(t, err)
	if want := []string{made[4].Number, made[1].Number}; !reflect.DeepEqual(numbers(by), want) {
		t.Fatalf("by caller: %v, want %v", numbers(by), want)
	}
	if _, err := s.ListTickets(ctx, TicketQuery{Status: "open"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad status filter: %v", err)
	}
}

func TestTicketLogsNoPersonalData(t *testing.T) {
	ctx := context.Background()
	s, _ := clocked(t, local(2026, 3, 2, 10, 0))
	tk, err := s.OpenTicket(ctx, NewTicket{Actor: "ivr", Caller: "+40721987654", Description: "CNP 1960101223344 Strada Lunga 5"})
	must(t, err)
	must(t, s.AddNote(ctx, tk.Number, "ana", "CNP 1960101223344"))
	h, _ := s.History(ctx, tk.Number)
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	log.Info("opened", "ticket", tk, "event", h[1], "turn", Turn{Speaker: SpeakerCaller, Text: "CNP 1960101223344"})
	out := buf.String()
	for _, secret := range []string{"1960101223344", "987654", "Strada", "+40721987654"} {
		if strings.Contains(out, secret) {
			t.Fatalf("log line leaks %q: %s", secret, out)
		}
	}
	if !strings.Contains(out, tk.Number) || !strings.Contains(out, "654") {
		t.Fatalf("log line lacks the number or the masked caller: %s", out)
	}
}

// TestConcurrentActions: many goroutines change the same tickets at once;
// every valid change lands once and every row still equals its log.
func TestConcurrentActions(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	var numbers []string
	for range 4 {
		tk, err := s.OpenTicket(ctx, NewTicket{Actor: "ivr"})
		must(t, err)
		numbers = append(numbers, tk.Number)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				n := numbers[(g+i)%len(numbers)]
				if err := s.AddNote(ctx, n, fmt.Sprint("agent", g), fmt.Sprint("note ", i)); err != nil {
					errs <- err
					return
				}
				if err := s.AppendTurn(ctx, "call-"+n, Turn{Speaker: SpeakerAgent, Text: fmt.Sprint(g, "/", i)}); err != nil {
					errs <- err
					return
				}
				if i%5 == 0 {
					if err := s.Rate(ctx, n, "ivr", 1+i%5); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	notes := 0
	for _, n := range numbers {
		h, err := s.History(ctx, n)
		must(t, err)
		for _, e := range h {
			if e.Kind == EventNote {
				notes++
			}
		}
		checkReplay(t, s, n)
	}
	if notes != 8*25 {
		t.Fatalf("%d notes, want %d", notes, 8*25)
	}
	var turns int
	must(t, s.db.QueryRowContext(context.Background(), `SELECT count(*) FROM transcript_turns`).Scan(&turns))
	if turns != 8*25 {
		t.Fatalf("%d turns, want %d", turns, 8*25)
	}
}

// Sequential numbers are valid and the same on every run; a fixed number
// opens that ticket, and is refused when taken or malformed; sensitive
// answers are kept with the ticket and never in its log line.
func TestNumbersAndPersonalData(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	s.SetNumbers(SequentialNumbers())
	a, err := s.OpenTicket(ctx, NewTicket{Actor: "ivr", Personal: map[string]string{"cnp": "1960101123456"}})
	must(t, err)
	b, err := s.OpenTicket(ctx, NewTicket{Actor: "ivr"})
	must(t, err)
	if a.Number != "10000004" || b.Number != "10000012" || !ValidNumber(a.Number) || !ValidNumber(b.Number) {
		t.Errorf("sequential numbers %s, %s: want 10000004, 10000012", a.Number, b.Number)
	}
	got, err := s.Ticket(ctx, a.Number)
	must(t, err)
	if got.Personal["cnp"] != "1960101123456" {
		t.Errorf("personal data not kept: %+v", got.Personal)
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("t", "ticket", got)
	if strings.Contains(buf.String(), "1960101123456") {
		t.Errorf("the ticket's log line holds the personal data: %s", buf.String())
	}
	fixed, err := s.OpenTicket(ctx, NewTicket{Actor: "ivr", Number: "12345671"})
	must(t, err)
	if fixed.Number != "12345671" {
		t.Errorf("fixed number: got %s", fixed.Number)
	}
	for _, nt := range []NewTicket{
		{Actor: "ivr", Number: "12345671"},                                          // taken
		{Actor: "ivr", Number: "123456"},                                            // malformed
		{Actor: "ivr", Priority: "asap"},                                            // unknown priority
		{Actor: "ivr", Service: "pasport"},                                          // unknown service
		{Actor: "ivr", Personal: map[string]string{"Numar CNP": "1"}},               // bad name
		{Actor: "ivr", Personal: map[string]string{"x": strings.Repeat("1", 1001)}}, // too long
	} {
		if _, err := s.OpenTicket(ctx, nt); !errors.Is(err, ErrInvalid) {
			t.Errorf("OpenTicket(%+v) = %v, want ErrInvalid", nt, err)
		}
	}
	if err := (NewTicket{Actor: "ivr", Priority: "asap"}).WithDefaults().Validate(); err == nil || !strings.Contains(err.Error(), "priority") {
		t.Errorf("Validate: %v, want the priority named", err)
	}
}
