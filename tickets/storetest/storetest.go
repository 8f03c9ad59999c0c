// Package storetest is the conformance kit of the ticket store (package
// tickets) on a backend of the line's database (package store): the
// backends' tests call TestStore with a function that makes an empty
// database, and the kit opens two handles on it, as two engines sharing it
// would. It proves on every backend the rules the store promises: the
// history, transcripts and audit log are append-only in the database
// itself; the ticket row is always its history replayed, corrections
// superseding, even with two engines changing one ticket; ticket numbers
// are unique; a resolve's notification is written in the resolve's
// transaction and sent by one engine only; the indicators' roll-ups equal a
// recount; an acknowledged transcript turn is committed; live readers never
// skip a row that commits late; the retention job removes exactly what its
// policy says and nothing under legal hold, and an erasure what a citizen
// asked, through the only changes the history and transcripts allow; the
// hash chain over the audit log and the history finds each change made
// behind the triggers' back and names the first bad row, but not an
// erasure of personal data.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/govline/ivr/store"
	"github.com/govline/ivr/tickets"
)

// Opener returns the URL (store.url) of a new, empty line's database.
type Opener func(t *testing.T) string

// handle is one engine's view of the database.
type handle struct {
	db *store.DB
	st *tickets.Store
}

// engines opens n handles on url (migrating it), closed when the test ends.
func engines(t *testing.T, url string, n int) []handle {
	t.Helper()
	hs := make([]handle, n)
	for i := range hs {
		db, err := store.Open(context.Background(), url, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		hs[i] = handle{db: db, st: tickets.New(db)}
	}
	return hs
}

// raw runs one statement in a write transaction, behind the store's back.
func raw(db *store.DB, q string, args ...any) error {
	ctx := context.Background()
	return db.Write(ctx, func(tx *store.Tx) error {
		_, err := tx.ExecContext(ctx, q, args...)
		return err
	})
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var ctx = context.Background()

// TestStore checks the ticket store on open's backend.
func TestStore(t *testing.T, open Opener) {
	for _, c := range []struct {
		name string
		run  func(*testing.T, Opener)
	}{
		{"history, transcripts and audit are append-only in the database", appendOnly},
		{"the row is its history replayed, with two engines changing tickets", rowIsReplay},
		{"ticket numbers are unique across engines", uniqueNumbers},
		{"a resolve's notification is written in its transaction", outboxInTransaction},
		{"one engine sends each notification", oneSender},
		{"indicators and ratings equal a recount", indicatorsRecount},
		{"calls and their events", calls},
		{"an engine closes only its own orphan calls", orphansPerEngine},
		{"a refused call log write loses no other", callLogRefusal},
		{"an acknowledged turn is committed", turnsCommitted},
		{"a turn keeps when it began", turnBegan},
		{"users, sign-ins and the audit log", users},
		{"a user's language is kept", userLang},
		{"live readers skip no late commit", feedSkipsNothing},
		{"providers own tickets, users, services and numbers; a transfer", providers},
		{"indicators per provider and service equal a count by hand", providerIndicators},
		{"survey calls: once per ticket, once per citizen in the period", surveys},
		{"e-mails thread into tickets once, replies reopen, one engine sends", emailThreads},
		{"surveys by e-mail: once per ticket and address in the period; a rating reply rates without reopening", emailSurveys},
		{"external (SAML) users: created, kept in step, break-glass, replay cache", externalUsers},
		{"history and transcripts allow only the anonymization", anonymizeOnly},
		{"legal hold: history event, audit, no correction", legalHold},
		{"retention job over three years of tickets: exactly the policy, dry run, idempotent", retentionJob},
		{"erasure by caller and by ticket, legal hold refused, audited", erasure},
		{"an e-mail reply brings an archived ticket back", emailReplyLeavesArchive},
		{"the audit and history chain finds what a database administrator changed", chainTamper},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, open) })
	}
}

func appendOnly(t *testing.T, open Opener) {
	h := engines(t, open(t), 1)[0]
	tk, err := h.st.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr", Service: tickets.ServicePassport, Description: "d"})
	must(t, err)
	must(t, h.st.AddNote(ctx, tk.Number, "ana", "first note"))
	must(t, h.st.AppendTurn(ctx, "call-1", tickets.Turn{Speaker: tickets.SpeakerCaller, Text: "hello"}))
	must(t, h.st.Audit(ctx, tickets.AuditEntry{User: "ana", Action: "ticket_view", Target: tk.Number, OK: true}))
	for _, q := range []string{
		`UPDATE ticket_events SET actor = 'mallory'`,
		`DELETE FROM ticket_events`,
		`DELETE FROM tickets`,
		`UPDATE transcript_turns SET text = 'forged'`,
		`DELETE FROM transcript_turns`,
		`UPDATE audit SET "user" = 'mallory'`,
		`DELETE FROM audit`,
	} {
		if err := raw(h.db, q); err == nil || !store.IsRefused(err) {
			t.Errorf("%s: %v, want the database to refuse it", q, err)
		}
	}
	hist, err := h.st.History(ctx, tk.Number)
	if err != nil || len(hist) != 2 || hist[1].Actor != "ana" {
		t.Fatalf("history after the refused changes: %+v %v", hist, err)
	}
}

// Two engines change the same tickets at once, corrections included; every
// row equals its history replayed and every accepted change is in it.
func rowIsReplay(t *testing.T, open Opener) {
	hs := engines(t, open(t), 2)
	takeTurns(t, hs)
	var numbers []string
	for range 2 {
		tk, err := hs[0].st.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr", Service: tickets.ServicePassport,
			CallID: "c", Description: "d", Articles: []string{"kb-1"}})
		must(t, err)
		numbers = append(numbers, tk.Number)
	}
	var accepted atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		st := hs[w%2].st
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			for range 40 {
				n := numbers[rng.IntN(len(numbers))]
				var err error
				switch rng.IntN(11) {
				case 0:
					err = st.AddNote(ctx, n, "ana", "note")
				case 1:
					err = st.Classify(ctx, n, "ana", tickets.Services[rng.IntN(len(tickets.Services))], "code")
				case 2:
					err = st.SetPriority(ctx, n, "ana", tickets.Priorities[rng.IntN(len(tickets.Priorities))])
				case 3:
					err = st.Escalate(ctx, n, "ana", 2+rng.IntN(2))
				case 4:
					err = st.Assign(ctx, n, "ana", []string{"", "ana", "bob"}[rng.IntN(3)])
				case 5:
					err = st.Resolve(ctx, n, "ana", "done")
				case 6:
					err = st.Reopen(ctx, n, "ana", "again")
				case 7:
					err = st.CiteArticle(ctx, n, "ana", fmt.Sprint("kb-", rng.IntN(4)))
				case 8:
					err = st.Rate(ctx, n, "caller", 1+rng.IntN(5))
				default:
					h, herr := st.History(ctx, n)
					if herr != nil {
						t.Error(herr)
						return
					}
					e := h[rng.IntN(len(h))]
					err = st.Correct(ctx, n, "sup", e.ID, tickets.Correction{Reason: "fix", Text: "corrected",
						Service: tickets.Services[rng.IntN(len(tickets.Services))], Priority: tickets.PriorityHigh,
						Assignee: "carol", Article: "kb-9", Recording: "/rec/x.wav", Rating: 3, Retract: rng.IntN(3) == 0})
				}
				switch {
				case err == nil:
					accepted.Add(1)
				case !errors.Is(err, tickets.ErrTransition) && !errors.Is(err, tickets.ErrInvalid):
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	events := 0
	for _, n := range numbers {
		row, err := hs[1].st.Ticket(ctx, n)
		must(t, err)
		replayed, err := hs[0].st.ReplayTicket(ctx, n)
		must(t, err)
		a, _ := json.Marshal(row)
		b, _ := json.Marshal(replayed)
		if string(a) != string(b) {
			t.Errorf("ticket %s: the row is not its history replayed\n row %s\nlog %s", n, a, b)
		}
		h, err := hs[1].st.History(ctx, n)
		must(t, err)
		events += len(h) - 1
		for _, e := range h {
			if e.Kind == tickets.EventCorrection && e.Supersedes >= e.ID {
				t.Errorf("correction %d supersedes a later event %d", e.ID, e.Supersedes)
			}
		}
	}
	// A change that "changes nothing" writes no event: at most one per
	// accepted change.
	if int64(events) > accepted.Load() || events == 0 {
		t.Errorf("%d events for %d accepted changes", events, accepted.Load())
	}
}

// takeTurns: engine A's change of a ticket is held inside its transaction
// (its clock, read there, blocks) while engine B changes the same ticket;
// B waits for A, and the row keeps both changes.
func takeTurns(t *testing.T, hs []handle) {
	tk, err := hs[0].st.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr"})
	must(t, err)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	hs[0].st.SetClock(func() time.Time {
		once.Do(func() { close(entered); <-release })
		return time.Now()
	})
	defer hs[0].st.SetClock(time.Now)
	noted := make(chan error, 1)
	go func() { noted <- hs[0].st.AddNote(ctx, tk.Number, "ana", "held") }()
	<-entered
	raised := make(chan error, 1)
	go func() { raised <- hs[1].st.SetPriority(ctx, tk.Number, "bob", tickets.PriorityHigh) }()
	var errB error
	got := false
	select {
	case errB = <-raised:
		got = true
		t.Errorf("engine B changed the ticket while engine A's change was in flight (err %v)", errB)
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	must(t, <-noted)
	if !got {
		errB = <-raised
	}
	must(t, errB)
	row, err := hs[1].st.Ticket(ctx, tk.Number)
	must(t, err)
	if row.Priority != tickets.PriorityHigh {
		t.Fatalf("the row lost engine B's change: priority %s", row.Priority)
	}
}

// Two engines draw numbers from the same small pool at once: each number is
// used once, a collision is drawn again (never an error), and a number
// given explicitly is refused when taken.
func uniqueNumbers(t *testing.T, open Opener) {
	hs := engines(t, open(t), 2)
	seq := tickets.SequentialNumbers()
	var pool []string
	for range 60 {
		n, _ := seq()
		pool = append(pool, n)
	}
	for i, h := range hs {
		rng := rand.New(rand.NewPCG(uint64(i), 7))
		var mu sync.Mutex
		h.st.SetNumbers(func() (string, error) {
			mu.Lock()
			defer mu.Unlock()
			return pool[rng.IntN(len(pool))], nil
		})
	}
	var mu sync.Mutex
	opened := map[string]int{}
	var wg sync.WaitGroup
	for w := range 6 {
		st := hs[w%2].st
		wg.Go(func() {
			for range 12 {
				tk, err := st.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr"})
				if err != nil {
					if !strings.Contains(err.Error(), "no free ticket number") {
						t.Error(err)
					}
					continue
				}
				mu.Lock()
				opened[tk.Number]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for n, c := range opened {
		if c != 1 {
			t.Errorf("number %s opened %d times", n, c)
		}
	}
	all, err := hs[0].st.ListTickets(ctx, tickets.TicketQuery{})
	must(t, err)
	if len(all) != len(opened) || len(opened) < 40 {
		t.Fatalf("%d tickets opened, %d stored (of a pool of 60, 72 tries)", len(opened), len(all))
	}
	taken := all[0].Number
	if _, err := hs[1].st.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr", Number: taken}); !errors.Is(err, tickets.ErrInvalid) {
		t.Fatalf("a taken number given explicitly: %v", err)
	}
}

func pending(t *testing.T, st *tickets.Store, number string) []tickets.Notification {
	t.Helper()
	ns, err := st.Outbox(ctx, number, true)
	must(t, err)
	return ns
}

func outboxInTransaction(t *testing.T, open Opener) {
	h := engines(t, open(t), 1)[0]
	tk, err := h.st.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr", Caller: "0722123456", Service: tickets.ServicePassport, Lang: "en"})
	must(t, err)
	must(t, h.st.Resolve(ctx, tk.Number, "ana", "Appointment made"))
	ns := pending(t, h.st, tk.Number)
	if len(ns) != 1 || ns[0].Kind != "ticket.resolved" {
		t.Fatalf("outbox after the resolve: %+v", ns)
	}
	var p map[string]any
	must(t, json.Unmarshal([]byte(ns[0].Payload), &p))
	if p["event"] != "ticket.resolved" || p["ticket"] != tk.Number || p["caller"] != "0722123456" || p["lang"] != "en" ||
		p["resolution"] != "Appointment made" || p["service"] != "passport" || p["channel"] != "phone" || p["event_id"] == nil {
		t.Fatalf("payload %s", ns[0].Payload)
	}

	// The rule lives in the database: a resolved event written by any
	// code enqueues, in its transaction; rolled back, neither stays.
	other, err := h.st.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr"})
	must(t, err)
	insert := `INSERT INTO ticket_events (ticket, at_ns, actor, kind, data) VALUES (?, 1, 'x', 'resolved', '{"text":"t"}')`
	abort := errors.New("abort")
	err = h.db.Write(ctx, func(tx *store.Tx) error {
		if _, err := tx.ExecContext(ctx, insert, other.Number); err != nil {
			return err
		}
		return abort
	})
	if !errors.Is(err, abort) {
		t.Fatal(err)
	}
	if ns := pending(t, h.st, other.Number); len(ns) != 0 {
		t.Fatalf("a rolled-back resolve left a notification: %+v", ns)
	}
	must(t, raw(h.db, insert, other.Number))
	if ns := pending(t, h.st, other.Number); len(ns) != 1 {
		t.Fatalf("a committed resolve left %d notifications", len(ns))
	}
}

// Two engines' senders work the same outbox at once: each notification is
// delivered once.
func oneSender(t *testing.T, open Opener) {
	hs := engines(t, open(t), 2)
	const n = 8
	for range n {
		tk, err := hs[0].st.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr", Caller: "0722000000"})
		must(t, err)
		must(t, hs[0].st.Resolve(ctx, tk.Number, "ana", "done"))
	}
	var mu sync.Mutex
	got := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond) // a gateway's answer takes a while
		mu.Lock()
		got[r.Header.Get("X-IVR-Delivery")]++
		mu.Unlock()
	}))
	defer srv.Close()
	var wg sync.WaitGroup
	for _, h := range hs {
		snd, err := tickets.NewSender(h.st, tickets.WebhookConfig{URL: srv.URL, Secret: []byte("0123456789abcdef-secret")})
		must(t, err)
		for range 2 {
			wg.Go(func() {
				for range 20 {
					if k, err := snd.SendDue(ctx); err != nil {
						t.Error(err)
						return
					} else if k == 0 {
						time.Sleep(5 * time.Millisecond)
					}
				}
			})
		}
	}
	wg.Wait()
	if len(got) != n {
		t.Fatalf("%d notifications delivered, want %d", len(got), n)
	}
	for id, c := range got {
		if c != 1 {
			t.Errorf("notification %s delivered %d times", id, c)
		}
	}
	if ns := pending(t, hs[1].st, ""); len(ns) != 0 {
		t.Errorf("%d notifications still pending", len(ns))
	}
}

// clock is a settable clock both engines read.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// Random tickets and calls over three days, changed from two engines;
// then the indicators of periods with edges anywhere inside an hour (roll-
// ups plus scanned edges) equal a plain recount of the rows.
func indicatorsRecount(t *testing.T, open Opener) {
	hs := engines(t, open(t), 2)
	start := time.Date(2026, 3, 2, 6, 13, 0, 0, time.UTC)
	ck := &clock{t: start}
	for _, h := range hs {
		h.st.SetClock(ck.now)
	}
	rng := rand.New(rand.NewPCG(7, 9))
	// A second provider: the calls to its number are its, and so are the
	// tickets they open; tickets move between the two.
	must(t, hs[0].st.AddProvider(ctx, "admin", "p1", "Provider one"))
	must(t, hs[1].st.SetProviderNumbers(ctx, "admin", "p1", []string{"0800p1"}))
	var numbers []string
	for i := range 80 {
		h := hs[i%2]
		ck.set(start.Add(time.Duration(rng.IntN(72*60))*time.Minute + time.Duration(rng.IntN(60))*time.Second))
		callID := fmt.Sprint("call-", i)
		must(t, h.st.StartCall(ctx, tickets.CallRecord{ID: callID, Telephony: "sip", Start: ck.now(),
			Called: []string{"100", "0800p1"}[rng.IntN(2)]}))
		if rng.IntN(3) > 0 {
			must(t, h.st.SetCallQueue(ctx, callID, tickets.Services[rng.IntN(len(tickets.Services))],
				[]tickets.QueueOutcome{tickets.QueueAnswered, tickets.QueueAbandoned}[rng.IntN(2)]))
		}
		tk, err := h.st.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr", Service: tickets.Services[rng.IntN(len(tickets.Services))],
			Channel: tickets.Channels[rng.IntN(len(tickets.Channels))], CallID: callID})
		must(t, err)
		numbers = append(numbers, tk.Number)
	}
	for i := range 300 {
		h := hs[i%2]
		n := numbers[rng.IntN(len(numbers))]
		ck.set(ck.now().Add(time.Duration(rng.IntN(120)) * time.Minute))
		var err error
		switch rng.IntN(7) {
		case 6:
			err = h.st.Transfer(ctx, n, "ana", []string{"default", "p1"}[rng.IntN(2)], "theirs")
		case 0:
			err = h.st.Classify(ctx, n, "ana", tickets.Services[rng.IntN(len(tickets.Services))], "")
		case 1:
			err = h.st.Escalate(ctx, n, "ana", 2+rng.IntN(2))
		case 2, 3:
			err = h.st.Resolve(ctx, n, "ana", "done")
		case 4:
			err = h.st.Reopen(ctx, n, "ana", "again")
		case 5:
			err = h.st.Rate(ctx, n, "caller", 1+rng.IntN(5))
		}
		if err != nil && !errors.Is(err, tickets.ErrTransition) {
			t.Fatal(err)
		}
	}
	all, err := hs[0].st.ListTickets(ctx, tickets.TicketQuery{})
	must(t, err)
	cs, err := hs[1].st.ListCalls(ctx, tickets.CallQuery{})
	must(t, err)
	for range 6 {
		from := start.Add(time.Duration(rng.IntN(24*60)) * time.Minute).Add(time.Duration(rng.IntN(3600)) * time.Second)
		to := from.Add(time.Duration(1+rng.IntN(48*60)) * time.Minute)
		rep, err := hs[rng.IntN(2)].st.Indicators(ctx, from, to)
		must(t, err)
		w := recount(all, cs, from, to)
		g := rep.Total
		if g.Requests != w.Requests || g.PhoneRequests != w.PhoneRequests || g.FirstContact != w.FirstContact ||
			g.Resolved != w.Resolved || g.ResolvedLevel1 != w.ResolvedLevel1 || g.WithinDeadline != w.WithinDeadline ||
			g.QueuedCalls != w.QueuedCalls || g.Abandoned != w.Abandoned ||
			g.Channels[tickets.ChannelEmail] != w.Channels[tickets.ChannelEmail] ||
			g.Channels[tickets.ChannelPortal] != w.Channels[tickets.ChannelPortal] ||
			(g.AvgResolution-w.AvgResolution).Abs() > time.Millisecond {
			t.Errorf("indicators of [%s, %s)\n got %+v\nwant %+v", from, to, g, w)
		}
		for _, p := range []string{"default", "p1"} {
			rep, err := hs[rng.IntN(2)].st.ProviderIndicators(ctx, p, from, to)
			must(t, err)
			var mine []tickets.Ticket
			for _, tk := range all {
				if tk.Provider == p {
					mine = append(mine, tk)
				}
			}
			var theirs []tickets.CallRecord
			for _, c := range cs {
				if (c.Called == "0800p1") == (p == "p1") {
					theirs = append(theirs, c)
				}
			}
			w, g := recount(mine, theirs, from, to), rep.Total
			if g.Requests != w.Requests || g.PhoneRequests != w.PhoneRequests || g.FirstContact != w.FirstContact ||
				g.Resolved != w.Resolved || g.ResolvedLevel1 != w.ResolvedLevel1 || g.WithinDeadline != w.WithinDeadline ||
				g.QueuedCalls != w.QueuedCalls || g.Abandoned != w.Abandoned ||
				g.Channels[tickets.ChannelEmail] != w.Channels[tickets.ChannelEmail] ||
				g.Channels[tickets.ChannelPortal] != w.Channels[tickets.ChannelPortal] ||
				(g.AvgResolution-w.AvgResolution).Abs() > time.Millisecond {
				t.Errorf("indicators of %s of [%s, %s)\n got %+v\nwant %+v", p, from, to, g, w)
			}
		}
		total, _, err := hs[0].st.RatingsReport(ctx, from, to)
		must(t, err)
		var rn, rs int
		for _, tk := range all {
			if tk.Rating > 0 && !tk.Created.Before(from) && tk.Created.Before(to) {
				rn, rs = rn+1, rs+tk.Rating
			}
		}
		if total.Count != rn || (rn > 0 && total.Average != float64(rs)/float64(rn)) {
			t.Errorf("ratings of [%s, %s): %+v, want %d averaging %v", from, to, total, rn, float64(rs)/float64(max(rn, 1)))
		}
	}
}

// recount is Indicators' total computed from the rows, as docs/tickets.md
// defines it.
func recount(all []tickets.Ticket, cs []tickets.CallRecord, from, to time.Time) tickets.Indicators {
	in := tickets.Indicators{Channels: map[tickets.Channel]int{}}
	var sum time.Duration
	for _, tk := range all {
		if tk.Created.Before(from) || !tk.Created.Before(to) {
			continue
		}
		in.Requests++
		in.Channels[tk.Channel]++
		if tk.Channel == tickets.ChannelPhone {
			in.PhoneRequests++
		}
		if tk.FirstContact {
			in.FirstContact++
		}
		if tk.Resolved != nil {
			in.Resolved++
			sum += tk.Resolved.Sub(tk.Created)
			if tk.ResolvedLevel == tickets.Level1 {
				in.ResolvedLevel1++
			}
			if !tk.Resolved.After(tk.Deadline) {
				in.WithinDeadline++
			}
		}
	}
	if in.Resolved > 0 {
		in.AvgResolution = sum / time.Duration(in.Resolved)
	}
	for _, c := range cs {
		if c.QueueOutcome != tickets.QueueNone && !c.Start.Before(from) && c.Start.Before(to) {
			in.QueuedCalls++
			if c.QueueOutcome == tickets.QueueAbandoned {
				in.Abandoned++
			}
		}
	}
	return in
}

func calls(t *testing.T, open Opener) {
	hs := engines(t, open(t), 2)
	a, b := hs[0].st, hs[1].st
	start := time.Date(2026, 3, 1, 9, 0, 0, 123456789, time.UTC)
	must(t, a.StartCall(ctx, tickets.CallRecord{ID: "call-1", Telephony: "sip", Caller: "+33612345678", Called: "100", Start: start}))
	if err := b.StartCall(ctx, tickets.CallRecord{ID: "call-1", Start: start}); !errors.Is(err, tickets.ErrExists) {
		t.Fatalf("a call id taken on the other engine: %v", err)
	}
	must(t, b.AnswerCall(ctx, "call-1", start.Add(time.Second), "PCMU", "/rec/call-1.wav"))
	must(t, a.AnswerCall(ctx, "call-1", start.Add(2*time.Second), "", ""))
	for i, d := range "12#a" {
		must(t, hs[i%2].st.AppendDTMF(ctx, "call-1", d))
	}
	for i, kind := range []string{"sip.invite", "sip.200", "dtmf"} {
		must(t, hs[i%2].st.AddEvent(ctx, "call-1", tickets.CallEvent{At: start.Add(time.Duration(i) * time.Millisecond), Kind: kind}))
	}
	if err := a.AddEvent(ctx, "nope", tickets.CallEvent{Kind: "x"}); !errors.Is(err, tickets.ErrNotFound) {
		t.Fatalf("an event of an unknown call: %v", err)
	}
	if err := a.AppendDTMF(ctx, "nope", '1'); !errors.Is(err, tickets.ErrNotFound) {
		t.Fatalf("a digit of an unknown call: %v", err)
	}
	must(t, a.SetCallQueue(ctx, "call-1", tickets.ServicePassport, tickets.QueueAnswered))
	st := tickets.PacketStats{In: 2100, Out: 2090, Lost: 3, Late: 1}
	must(t, b.EndCall(ctx, "call-1", start.Add(42*time.Second), tickets.EndCallerHangup, st))
	must(t, a.EndCall(ctx, "call-1", start.Add(50*time.Second), tickets.EndError, tickets.PacketStats{}))
	c, err := a.Call(ctx, "call-1")
	must(t, err)
	if c.Answer == nil || !c.Answer.Equal(start.Add(time.Second)) || c.DTMF != "12#A" || c.Codec != "PCMU" ||
		c.Duration() != 42*time.Second || c.EndReason != tickets.EndCallerHangup || c.Stats != st ||
		c.Service != tickets.ServicePassport || c.QueueOutcome != tickets.QueueAnswered || !c.Start.Equal(start) {
		t.Fatalf("record %+v", c)
	}
	evs, err := b.Events(ctx, "call-1")
	must(t, err)
	var kinds []string
	for _, e := range evs {
		kinds = append(kinds, e.Kind)
	}
	if strings.Join(kinds, " ") != "sip.invite sip.200 dtmf" {
		t.Fatalf("events %v", kinds)
	}
	if _, err := b.Call(ctx, "nope"); !errors.Is(err, tickets.ErrNotFound) {
		t.Fatalf("an unknown call: %v", err)
	}
}

func orphansPerEngine(t *testing.T, open Opener) {
	hs := engines(t, open(t), 2)
	a, b := hs[0].st, hs[1].st
	a.SetEngine("engine-a")
	b.SetEngine("engine-b")
	t0 := time.Now().Add(-time.Minute)
	must(t, a.StartCall(ctx, tickets.CallRecord{ID: "on-a", Start: t0}))
	must(t, b.StartCall(ctx, tickets.CallRecord{ID: "on-b", Start: t0}))
	must(t, b.AddEvent(ctx, "on-b", tickets.CallEvent{At: t0.Add(5 * time.Second), Kind: "dtmf"}))
	if open, err := b.OpenCalls(ctx); err != nil || len(open) != 1 || open[0].ID != "on-b" || open[0].Engine != "engine-b" {
		t.Fatalf("engine B's open calls: %+v %v", open, err)
	}
	n, err := b.CloseOrphans(ctx, time.Now())
	if err != nil || n != 1 {
		t.Fatalf("engine B closed %d calls (%v), want its own one", n, err)
	}
	if c, _ := a.Call(ctx, "on-a"); c.End != nil {
		t.Fatal("engine B closed engine A's live call")
	}
	if c, _ := a.Call(ctx, "on-b"); c.End == nil || !c.End.Equal(t0.Add(5*time.Second)) || c.EndReason != tickets.EndEngineRestart {
		t.Fatalf("B's orphan: end %v reason %q, want its last event's time", c.End, c.EndReason)
	}
}

func callLogRefusal(t *testing.T, open Opener) {
	h := engines(t, open(t), 1)[0]
	l := h.st.NewCallLog(0, slog.New(slog.DiscardHandler))
	defer l.Close()
	l.Start(tickets.CallRecord{ID: "c1", Telephony: "sip", Start: time.Now()})
	l.DTMF("no-such-call", '1') // refused: the others of its batch stay
	for i := range 5 {
		l.Event("c1", tickets.CallEvent{Kind: fmt.Sprint("e", i)})
	}
	l.DTMF("c1", '7')
	l.End("c1", time.Now(), tickets.EndCallerHangup, tickets.PacketStats{In: 1})
	must(t, l.Flush(ctx))
	c, err := h.st.Call(ctx, "c1")
	must(t, err)
	evs, _ := h.st.Events(ctx, "c1")
	if c.DTMF != "7" || c.End == nil || len(evs) != 5 {
		t.Fatalf("call %+v with %d events: writes lost beside the refused one", c, len(evs))
	}
	if l.Failed() != 1 {
		t.Fatalf("%d writes counted as failed, want the refused one", l.Failed())
	}
}

// 100 calls append turns at once on one engine; each turn acknowledged is
// readable at once from the other engine, in order.
func turnsCommitted(t *testing.T, open Opener) {
	hs := engines(t, open(t), 2)
	const calls, turns = 100, 10
	var wg sync.WaitGroup
	for c := range calls {
		wg.Go(func() {
			id := fmt.Sprint("call-", c)
			for i := range turns {
				text := fmt.Sprint("turn ", i)
				if err := hs[0].st.AppendTurn(ctx, id, tickets.Turn{Speaker: tickets.SpeakerCaller, Text: text,
					Mode: tickets.ModeSpeech, Confidence: 0.5, Cut: []string{"", tickets.CutSpeech}[i%2]}); err != nil {
					t.Error(err)
					return
				}
				got, err := hs[1].st.Transcript(ctx, id)
				if err != nil || len(got) != i+1 || got[i].Text != text || got[i].Interrupted != (i%2 == 1) {
					t.Errorf("call %s: after turn %d was acknowledged the other engine reads %d turns (%v)", id, i, len(got), err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// A turn keeps when it began (the recording plays a line from there) as
// well as when it was written, to the nanosecond on every backend, in the
// transcript and in the live feed; a turn that does not know reads a zero
// Began and starts when it was written; a start after the end is refused.
func turnBegan(t *testing.T, open Opener) {
	hs := engines(t, open(t), 2)
	feedFrom, err := hs[1].st.FeedStart(ctx)
	must(t, err)
	at := time.Date(2026, 12, 6, 10, 0, 3, 123456789, time.UTC)
	began := at.Add(-2345678901 * time.Nanosecond)
	must(t, hs[0].st.AppendTurn(ctx, "call-b", tickets.Turn{Speaker: tickets.SpeakerCaller, Text: "pașaport", At: at, Began: began, Mode: tickets.ModeSpeech, Confidence: 0.9}))
	must(t, hs[0].st.AppendTurn(ctx, "call-b", tickets.Turn{Speaker: tickets.SpeakerIVR, Text: "Bună ziua", At: at.Add(time.Second)}))
	got, err := hs[1].st.Transcript(ctx, "call-b")
	must(t, err)
	if len(got) != 2 || !got[0].Began.Equal(began) || !got[0].At.Equal(at) || !got[0].Start().Equal(began) {
		t.Fatalf("read back %+v, want the first turn to begin at %s and end at %s", got, began, at)
	}
	if !got[1].Began.IsZero() || !got[1].Start().Equal(at.Add(time.Second)) {
		t.Errorf("a turn written without its start reads Began %s and starts %s, want zero and its own time", got[1].Began, got[1].Start())
	}
	items, _, err := hs[1].st.Feed(ctx, feedFrom, 100)
	must(t, err)
	var fed []tickets.Turn
	for _, it := range items {
		if it.Turn != nil && it.CallID == "call-b" {
			fed = append(fed, *it.Turn)
		}
	}
	if len(fed) != 2 || !fed[0].Began.Equal(began) || !fed[1].Began.IsZero() {
		t.Errorf("the live feed gave %+v, want the same starts", fed)
	}
	err = hs[0].st.AppendTurn(ctx, "call-b", tickets.Turn{Speaker: tickets.SpeakerCaller, Text: "da", At: at, Began: at.Add(time.Millisecond), Mode: tickets.ModeSpeech, Confidence: 0.9})
	if err == nil || !strings.Contains(err.Error(), "began") {
		t.Errorf("a turn that begins after it ends: %v, want an error naming began", err)
	}
}

func users(t *testing.T, open Opener) {
	hs := engines(t, open(t), 2)
	const pw = "a good long password"
	errs := make(chan error, 2)
	for _, h := range hs {
		go func() { errs <- h.st.AddUser(ctx, "admin", "ana", tickets.RoleOperator, pw) }()
	}
	e1, e2 := <-errs, <-errs
	if (e1 == nil) == (e2 == nil) || !errors.Is(errors.Join(e1, e2), tickets.ErrExists) {
		t.Fatalf("two engines adding ana: %v, %v; want one added and one ErrExists", e1, e2)
	}
	sess, err := hs[0].st.Login(ctx, "ana", pw, "10.0.0.5", tickets.LoginPolicy{})
	must(t, err)
	if s, err := hs[1].st.SessionByToken(ctx, sess.Token); err != nil || s.User.Name != "ana" {
		t.Fatalf("the session on the other engine: %+v %v", s, err)
	}
	// Failures count in the database, whichever engine sees them.
	p := tickets.LoginPolicy{MaxFailures: 3, Lockout: time.Hour}
	for i := range 3 {
		if _, err := hs[i%2].st.Login(ctx, "ana", "wrong password!", "10.0.0.6", p); !errors.Is(err, tickets.ErrBadLogin) {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	if _, err := hs[0].st.Login(ctx, "ana", pw, "10.0.0.6", p); !errors.Is(err, tickets.ErrLocked) {
		t.Fatalf("after 3 failures on two engines: %v, want ErrLocked", err)
	}
	must(t, hs[1].st.Logout(ctx, sess.Token, "10.0.0.5"))
	if _, err := hs[0].st.SessionByToken(ctx, sess.Token); !errors.Is(err, tickets.ErrNotFound) {
		t.Fatalf("a session ended on the other engine: %v", err)
	}
	es, err := hs[0].st.AuditLog(ctx, tickets.AuditQuery{User: "ana"})
	must(t, err)
	var actions []string
	for _, e := range es {
		actions = append(actions, e.Action)
	}
	slices.Reverse(actions)
	if got := strings.Join(actions, " "); got != "login login_failed login_failed login_failed login_locked logout" {
		t.Fatalf("audit of ana: %s", got)
	}
}

// A user speaks Romanian until choosing English; the choice is seen by
// every engine, in the user's live session, and is audited; a language
// the console does not speak is refused.
func userLang(t *testing.T, open Opener) {
	hs := engines(t, open(t), 2)
	const pw = "a good long password"
	must(t, hs[0].st.AddUser(ctx, "admin", "ion", tickets.RoleOperator, pw))
	if u, err := hs[1].st.User(ctx, "ion"); err != nil || u.Lang != tickets.LangRomanian {
		t.Fatalf("a new user's language: %+v %v, want ro", u, err)
	}
	sess, err := hs[0].st.Login(ctx, "ion", pw, "10.0.0.5", tickets.LoginPolicy{})
	must(t, err)
	if sess.User.Lang != tickets.LangRomanian {
		t.Fatalf("the session's language %q, want ro", sess.User.Lang)
	}
	must(t, hs[1].st.SetUserLang(ctx, "ion", tickets.LangEnglish))
	if s, err := hs[0].st.SessionByToken(ctx, sess.Token); err != nil || s.User.Lang != tickets.LangEnglish {
		t.Fatalf("the live session after choosing English: %+v %v", s, err)
	}
	us, err := hs[0].st.Users(ctx)
	must(t, err)
	if len(us) != 1 || us[0].Lang != tickets.LangEnglish {
		t.Fatalf("users: %+v", us)
	}
	if err := hs[0].st.SetUserLang(ctx, "ion", "fr"); !errors.Is(err, tickets.ErrInvalid) {
		t.Fatalf("French: %v, want ErrInvalid", err)
	}
	if err := hs[0].st.SetUserLang(ctx, "nobody", "ro"); !errors.Is(err, tickets.ErrNotFound) {
		t.Fatalf("an unknown user: %v, want ErrNotFound", err)
	}
	es, err := hs[1].st.AuditLog(ctx, tickets.AuditQuery{Action: "user_lang"})
	must(t, err)
	if len(es) != 1 || es[0].User != "ion" || es[0].Detail != "en" || !es[0].OK {
		t.Fatalf("audit of the choice: %+v", es)
	}
	// The database refuses a language the console does not speak.
	if err := raw(hs[0].db, `UPDATE users SET lang = 'fr' WHERE name = 'ion'`); err == nil {
		t.Fatal("the database took lang 'fr'")
	}
}

// A transaction holding an earlier call event stays open while a later
// one commits: a reader of the live feed sees both, once each, and never
// moves past the first.
func feedSkipsNothing(t *testing.T, open Opener) {
	hs := engines(t, open(t), 3)
	w1, w2, r := hs[0], hs[1], hs[2].st
	must(t, w1.st.StartCall(ctx, tickets.CallRecord{ID: "c1", Start: time.Now()}))
	cur, err := r.FeedStart(ctx)
	must(t, err)
	changes, err := r.TicketChangesStart(ctx)
	must(t, err)
	held, release, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- w1.db.Write(ctx, func(tx *store.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO call_events (call_id, at_ns, kind, detail) VALUES ('c1', 1, 'early', '')`); err != nil {
				return err
			}
			close(held)
			<-release
			return nil
		})
	}()
	<-held
	later := make(chan error, 1)
	go func() { later <- w2.st.AddEvent(ctx, "c1", tickets.CallEvent{At: time.Unix(0, 2), Kind: "late"}) }()
	seen := map[string]int{}
	read := func() {
		items, next, err := r.Feed(ctx, cur, 1)
		must(t, err)
		cur = next
		for _, it := range items {
			seen[it.Event.Kind]++
		}
	}
	if w2.db.Backend() == store.Postgres {
		must(t, <-later) // the later event committed while the earlier is pending
	}
	for range 5 {
		read()
	}
	if seen["late"] > 0 && seen["early"] == 0 {
		t.Fatal("the reader moved past a pending event")
	}
	close(release)
	must(t, <-done)
	if w2.db.Backend() != store.Postgres {
		must(t, <-later)
	}
	tk, err := w2.st.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr"})
	must(t, err)
	for range 5 {
		read()
	}
	if seen["early"] != 1 || seen["late"] != 1 {
		t.Fatalf("the reader saw %v, want each event once", seen)
	}
	cs, _, err := r.TicketChanges(ctx, changes, 10)
	must(t, err)
	if len(cs) != 1 || cs[0].Ticket != tk.Number || cs[0].Kind != tickets.EventCreated || cs[0].Actor != "ivr" {
		t.Fatalf("ticket changes %+v", cs)
	}
}

func surveys(t *testing.T, open Opener) {
	hs := engines(t, open(t), 2)
	a, b := hs[0].st, hs[1].st
	since := time.Now().Add(-time.Hour)
	resolved := func(caller string, rate bool) string {
		tk, err := a.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr", Channel: "phone", Caller: caller, Service: tickets.ServicePassport, Lang: "en"})
		must(t, err)
		if rate {
			must(t, a.Rate(ctx, tk.Number, "caller", 5))
		}
		must(t, a.Resolve(ctx, tk.Number, "ana", "done"))
		return tk.Number
	}
	first := resolved("0722000001", false)
	second := resolved("0722000001", false) // the same citizen
	other := resolved("0722000002", false)
	resolved("0722000003", true) // rated already
	// Not resolved:
	_, err := a.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr", Channel: "phone", Caller: "0722000004", Service: tickets.ServicePassport})
	must(t, err)

	due, err := b.SurveysDue(ctx, since, 24*time.Hour, time.Now(), 10)
	must(t, err)
	if len(due) != 2 || due[0].Ticket != first || due[0].Number != "0722000001" || due[0].Lang != "en" || due[1].Ticket != other {
		t.Fatalf("due %+v, want %s (one per citizen) then %s", due, first, other)
	}
	ok, err := b.SurveyStarted(ctx, first, "0722000001", 24*time.Hour, time.Now())
	must(t, err)
	if !ok {
		t.Fatal("the first survey was not started")
	}
	// Another engine: the same ticket, or the same citizen within the
	// period, is not called again.
	if ok, _ := a.SurveyStarted(ctx, first, "0722000001", 24*time.Hour, time.Now()); ok {
		t.Error("a ticket surveyed twice")
	}
	if ok, _ := a.SurveyStarted(ctx, second, "0722000001", 24*time.Hour, time.Now()); ok {
		t.Error("a citizen surveyed twice in the period")
	}
	due, err = a.SurveysDue(ctx, since, 24*time.Hour, time.Now(), 10)
	must(t, err)
	if len(due) != 1 || due[0].Ticket != other {
		t.Fatalf("due after the first survey %+v, want only %s", due, other)
	}
	// After the period the citizen may be asked about another ticket.
	if due, _ := a.SurveysDue(ctx, since, time.Nanosecond, time.Now().Add(time.Second), 10); len(due) != 2 || due[0].Ticket != second {
		t.Errorf("due after the period %+v, want %s and %s", due, second, other)
	}
	must(t, a.SurveyEnded(ctx, first, tickets.SurveyRated))
	ok, err = b.SurveyStarted(ctx, other, "0722000002", 24*time.Hour, time.Now())
	must(t, err)
	if !ok {
		t.Fatal("the second survey was not started")
	}
	must(t, b.SurveyEnded(ctx, other, "no_answer"))
	c, err := b.SurveyReport(ctx, since, time.Now().Add(time.Minute))
	must(t, err)
	if c != (tickets.SurveyCounts{Placed: 2, Answered: 1, Rated: 1}) || c.ResponseRate() != 0.5 {
		t.Errorf("survey report %+v, rate %.2f; want 2 placed, 1 answered, 1 rated: 0.50", c, c.ResponseRate())
	}
}
