package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/govline/ivr/tickets"
)

// Two providers besides the default: a dialed number wins over the
// service, a ticket's provider filters the lists, a transfer is in the
// history and the audit and leaves the old provider a reader; users belong
// to a provider.
func providers(t *testing.T, open Opener) {
	hs := engines(t, open(t), 2)
	a, b := hs[0].st, hs[1].st
	ps, err := a.Providers(ctx)
	must(t, err)
	if len(ps) != 1 || ps[0].ID != tickets.DefaultProvider || len(ps[0].Services) != len(tickets.Services) {
		t.Fatalf("a new line's providers: %+v, want only %q with every service", ps, tickets.DefaultProvider)
	}
	must(t, a.AddProvider(ctx, "admin", "passports", "Agenția Servicii Publice"))
	must(t, b.AddProvider(ctx, "admin", "social", "Casa Națională de Asigurări Sociale"))
	if err := a.AddProvider(ctx, "admin", "social", "again"); !errors.Is(err, tickets.ErrExists) {
		t.Fatalf("a provider added twice: %v", err)
	}
	if err := a.AddProvider(ctx, "admin", "Bad Id", "x"); !errors.Is(err, tickets.ErrInvalid) {
		t.Fatalf("a bad provider id: %v", err)
	}
	must(t, a.SetProviderServices(ctx, "admin", "passports", []tickets.Service{tickets.ServicePassport, tickets.ServiceIdentityCard}))
	must(t, b.SetProviderNumbers(ctx, "admin", "social", []string{"080010101"}))
	if err := b.SetProviderNumbers(ctx, "admin", "nobody", []string{"1"}); !errors.Is(err, tickets.ErrNotFound) {
		t.Fatalf("numbers of an unknown provider: %v", err)
	}
	must(t, a.RenameProvider(ctx, "admin", "default", "Centrul unic"))
	if err := a.RenameProvider(ctx, "admin", "nobody", "x"); !errors.Is(err, tickets.ErrNotFound) {
		t.Fatalf("renaming an unknown provider: %v", err)
	}
	ps, err = b.Providers(ctx)
	must(t, err)
	if ps[0].Name != "Centrul unic" {
		t.Errorf("the default provider renamed: %q", ps[0].Name)
	}
	if len(ps) != 3 || ps[0].ID != "default" || ps[1].ID != "passports" || ps[2].ID != "social" ||
		!slices.Equal(ps[1].Services, []tickets.Service{tickets.ServiceIdentityCard, tickets.ServicePassport}) ||
		slices.Contains(ps[0].Services, tickets.ServicePassport) || len(ps[0].Services) != len(tickets.Services)-2 ||
		!slices.Equal(ps[2].Numbers, []string{"080010101"}) {
		t.Fatalf("providers: %+v", ps)
	}

	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	must(t, a.StartCall(ctx, tickets.CallRecord{ID: "c-social", Called: "080010101", Start: start}))
	must(t, a.StartCall(ctx, tickets.CallRecord{ID: "c-plain", Called: "100", Start: start}))
	open1 := func(st *tickets.Store, nt tickets.NewTicket) tickets.Ticket {
		t.Helper()
		nt.Actor = "ivr"
		tk, err := st.OpenTicket(ctx, nt)
		must(t, err)
		return tk
	}
	bySocial := open1(a, tickets.NewTicket{Service: tickets.ServicePassport, CallID: "c-social"})
	byService := open1(b, tickets.NewTicket{Service: tickets.ServicePassport, CallID: "c-plain"})
	other := open1(a, tickets.NewTicket{Service: tickets.ServiceOther})
	named := open1(b, tickets.NewTicket{Service: tickets.ServiceOther, Provider: "passports"})
	for _, c := range []struct {
		tk   tickets.Ticket
		want string
	}{{bySocial, "social"}, {byService, "passports"}, {other, "default"}, {named, "passports"}} {
		if c.tk.Provider != c.want {
			t.Errorf("ticket %s opened for %q, want %q", c.tk.Number, c.tk.Provider, c.want)
		}
	}
	if _, err := a.OpenTicket(ctx, tickets.NewTicket{Actor: "ivr", Provider: "nobody"}); !errors.Is(err, tickets.ErrInvalid) {
		t.Fatalf("a ticket of an unknown provider: %v", err)
	}
	if p, err := b.ProviderOf(ctx, "080010101", tickets.ServiceIdentityCard); err != nil || p != "social" {
		t.Fatalf("provider of the social number: %q %v", p, err)
	}
	list := func(p string) []string {
		t.Helper()
		ts, err := b.ListTickets(ctx, tickets.TicketQuery{Provider: p})
		must(t, err)
		var ns []string
		for _, tk := range ts {
			ns = append(ns, tk.Number)
		}
		slices.Sort(ns)
		return ns
	}
	sorted := func(ns ...string) []string { slices.Sort(ns); return ns }
	if got := list("passports"); !slices.Equal(got, sorted(byService.Number, named.Number)) {
		t.Errorf("passports' tickets: %v", got)
	}

	// The transfer.
	must(t, a.Escalate(ctx, byService.Number, "ana", 2))
	must(t, a.Assign(ctx, byService.Number, "ana", "ion"))
	if err := a.Transfer(ctx, byService.Number, "ana", "social", " "); !errors.Is(err, tickets.ErrTransition) {
		t.Fatalf("a transfer without a reason: %v", err)
	}
	if err := a.Transfer(ctx, byService.Number, "ana", "passports", "why"); !errors.Is(err, tickets.ErrTransition) {
		t.Fatalf("a transfer to its own provider: %v", err)
	}
	if err := a.Transfer(ctx, byService.Number, "ana", "nobody", "why"); !errors.Is(err, tickets.ErrInvalid) {
		t.Fatalf("a transfer to an unknown provider: %v", err)
	}
	// A change made as another provider is refused under the row lock.
	if err := a.AddNote(tickets.AsProvider(ctx, "social"), byService.Number, "ion", "mine?"); !errors.Is(err, tickets.ErrNotFound) {
		t.Fatalf("a note as another provider: %v", err)
	}
	must(t, a.AddNote(tickets.AsProvider(ctx, "passports"), byService.Number, "ana", "ours"))
	must(t, b.Transfer(tickets.AsProvider(ctx, "passports"), byService.Number, "ana", "social", "a pension question"))
	if err := a.AddNote(tickets.AsProvider(ctx, "passports"), byService.Number, "ana", "still ours?"); !errors.Is(err, tickets.ErrNotFound) {
		t.Fatalf("a note as the provider it left: %v", err)
	}
	tk, err := a.Ticket(ctx, byService.Number)
	must(t, err)
	if tk.Provider != "social" || tk.Level != tickets.Level1 || tk.Status != tickets.StatusNew || tk.Assignee != "" {
		t.Fatalf("after the transfer: %+v", tk)
	}
	if r, err := a.ReplayTicket(ctx, tk.Number); err != nil || r.Provider != "social" || r.LastEvent != tk.LastEvent {
		t.Fatalf("replay after the transfer: %+v %v", r, err)
	}
	hist, err := b.History(ctx, tk.Number)
	must(t, err)
	last := hist[len(hist)-1]
	if last.Kind != tickets.EventTransfer || last.Data.From != "passports" || last.Data.To != "social" ||
		last.Data.Text != "a pension question" || last.Actor != "ana" {
		t.Fatalf("the transfer event: %+v", last)
	}
	au, err := a.AuditLog(ctx, tickets.AuditQuery{Action: "ticket_transfer", Target: tk.Number})
	must(t, err)
	if len(au) != 1 || au[0].User != "ana" || au[0].Detail != "from passports to social" || !au[0].OK {
		t.Fatalf("the transfer's audit: %+v", au)
	}
	for p, want := range map[string]bool{"social": true, "passports": true, "default": false} {
		if ok, err := b.CanView(ctx, p, tk); err != nil || ok != want {
			t.Errorf("CanView(%s) of the transferred ticket: %v %v, want %v", p, ok, err, want)
		}
	}
	if got := list("passports"); !slices.Equal(got, []string{named.Number}) {
		t.Errorf("passports' tickets after the transfer: %v", got)
	}
	if got := list("social"); !slices.Equal(got, sorted(bySocial.Number, byService.Number)) {
		t.Errorf("social's tickets after the transfer: %v", got)
	}
	if err := a.Correct(ctx, tk.Number, "ana", last.ID, tickets.Correction{Text: "x", Reason: "y"}); !errors.Is(err, tickets.ErrTransition) {
		t.Errorf("a correction of a transfer: %v, want it refused", err)
	}

	// Users belong to a provider.
	const pw = "a good long password"
	must(t, a.AddProviderUser(ctx, "admin", "social", "ion", tickets.RoleOperator, pw))
	must(t, a.AddUser(ctx, "admin", "ana", tickets.RoleOperator, pw))
	must(t, b.AddProviderUser(ctx, "admin", "default", "agency", tickets.RoleMonitor, pw))
	if err := a.AddProviderUser(ctx, "admin", "nobody", "x", tickets.RoleOperator, pw); !errors.Is(err, tickets.ErrInvalid) {
		t.Fatalf("a user of an unknown provider: %v", err)
	}
	for name, want := range map[string]string{"ion": "social", "ana": "default", "agency": "default"} {
		u, err := b.User(ctx, name)
		must(t, err)
		if u.Provider != want {
			t.Errorf("user %s of %q, want %q", name, u.Provider, want)
		}
	}
	sess, err := a.Login(ctx, "ion", pw, "10.0.0.1", tickets.LoginPolicy{})
	must(t, err)
	if s, err := b.SessionByToken(ctx, sess.Token); err != nil || s.User.Provider != "social" || sess.User.Provider != "social" {
		t.Fatalf("ion's session: %+v %+v %v", sess.User, s.User, err)
	}
	if u, err := b.User(ctx, "agency"); err != nil || u.Role != tickets.RoleMonitor {
		t.Fatalf("the monitor: %+v %v", u, err)
	}
}

// Indicators per provider and per service against values computed by
// hand (docs/tickets.md defines each).
func providerIndicators(t *testing.T, open Opener) {
	hs := engines(t, open(t), 2)
	a, b := hs[0].st, hs[1].st
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC) // a Monday
	ck := &clock{t: start}
	a.SetClock(ck.now)
	b.SetClock(ck.now)
	must(t, a.AddProvider(ctx, "admin", "passports", "Agenția Servicii Publice"))
	must(t, a.AddProvider(ctx, "admin", "social", "Casa Națională de Asigurări Sociale"))
	must(t, a.SetProviderServices(ctx, "admin", "passports", []tickets.Service{tickets.ServicePassport, tickets.ServiceIdentityCard}))
	must(t, b.SetProviderNumbers(ctx, "admin", "social", []string{"080010101"}))
	at := func(m int) time.Time { return start.Add(time.Duration(m) * time.Minute) }
	openAt := func(st *tickets.Store, m int, nt tickets.NewTicket) string {
		t.Helper()
		ck.set(at(m))
		nt.Actor = "ivr"
		tk, err := st.OpenTicket(ctx, nt)
		must(t, err)
		return tk.Number
	}
	must(t, a.StartCall(ctx, tickets.CallRecord{ID: "cA", Called: "100", Start: at(0)}))
	must(t, a.SetCallQueue(ctx, "cA", tickets.ServicePassport, tickets.QueueAnswered))
	must(t, b.StartCall(ctx, tickets.CallRecord{ID: "cB", Called: "100", Start: at(5)}))
	must(t, b.SetCallQueue(ctx, "cB", tickets.ServiceIdentityCard, tickets.QueueAbandoned))
	must(t, a.StartCall(ctx, tickets.CallRecord{ID: "cS", Called: "080010101", Start: at(45)}))
	must(t, a.SetCallQueue(ctx, "cS", tickets.ServiceOther, tickets.QueueAbandoned))
	must(t, a.EndCall(ctx, "cS", at(55), "hangup", tickets.PacketStats{}))

	t1 := openAt(a, 0, tickets.NewTicket{Service: tickets.ServicePassport, CallID: "cA"})                       // passports, phone
	t2 := openAt(b, 10, tickets.NewTicket{Service: tickets.ServiceIdentityCard, Channel: tickets.ChannelEmail}) // passports, email
	t3 := openAt(a, 20, tickets.NewTicket{Service: tickets.ServicePassport, Channel: tickets.ChannelPortal})    // passports, portal
	t4 := openAt(b, 40, tickets.NewTicket{Service: tickets.ServicePassport})                                    // passports, then social
	t5 := openAt(a, 50, tickets.NewTicket{Service: tickets.ServiceOther, CallID: "cS"})                         // social by its number
	_ = openAt(b, 200, tickets.NewTicket{Service: tickets.ServicePassport, Channel: tickets.ChannelPortal})     // after the period
	ck.set(at(30))
	must(t, a.Resolve(ctx, t1, "ana", "told")) // during its call: first contact, 30 min at level I
	ck.set(at(31))
	must(t, b.Escalate(ctx, t3, "ana", 2))
	ck.set(at(60))
	must(t, a.Transfer(ctx, t4, "ana", "social", "not ours"))
	ck.set(at(80))
	must(t, b.Resolve(ctx, t3, "dan", "fixed")) // level II, 60 min
	ck.set(at(110))
	must(t, a.Resolve(ctx, t5, "ion", "paid")) // level I after its call ended, 60 min
	ck.set(at(130))
	must(t, b.Resolve(ctx, t2, "ana", "answered")) // level I, 120 min

	from, to := start, at(180)
	get := func(p string) tickets.Report {
		t.Helper()
		r, err := b.ProviderIndicators(ctx, p, from, to)
		must(t, err)
		if r.Provider != p || len(r.Services) != len(tickets.Services) {
			t.Fatalf("report of %q: %+v", p, r)
		}
		return r
	}
	svc := func(r tickets.Report, s tickets.Service) tickets.Indicators {
		for _, in := range r.Services {
			if in.Service == s {
				return in
			}
		}
		t.Fatalf("no %s in %+v", s, r)
		return tickets.Indicators{}
	}
	type want struct {
		requests, phone, email, portal, fcr, resolved, res1, within, queued, abandoned int
		fcrShare, res1Share                                                            float64
		avgRes, avgRes1                                                                time.Duration
	}
	check := func(what string, g tickets.Indicators, w want) {
		t.Helper()
		got := want{g.Requests, g.PhoneRequests, g.Channels[tickets.ChannelEmail], g.Channels[tickets.ChannelPortal],
			g.FirstContact, g.Resolved, g.ResolvedLevel1, g.WithinDeadline, g.QueuedCalls, g.Abandoned,
			g.FirstContactShare, g.ResolvedLevel1Share, g.AvgResolution, g.AvgResolutionLevel1}
		if got != w || g.Channels[tickets.ChannelPhone] != g.PhoneRequests {
			t.Errorf("%s:\n got %+v\nwant %+v", what, got, w)
		}
	}
	pa := get("passports")
	// t1 (phone, first contact, 30 min at I), t2 (email, 120 min at I),
	// t3 (portal, 60 min at II); t4 left for social. Calls cA answered,
	// cB abandoned.
	check("passports", pa.Total, want{requests: 3, phone: 1, email: 1, portal: 1, fcr: 1, resolved: 3, res1: 2, within: 3,
		queued: 2, abandoned: 1, fcrShare: 1, res1Share: 2.0 / 3, avgRes: 70 * time.Minute, avgRes1: 75 * time.Minute})
	check("passports' passport", svc(pa, tickets.ServicePassport), want{requests: 2, phone: 1, portal: 1, fcr: 1, resolved: 2,
		res1: 1, within: 2, queued: 1, fcrShare: 1, res1Share: 0.5, avgRes: 45 * time.Minute, avgRes1: 30 * time.Minute})
	check("passports' identity card", svc(pa, tickets.ServiceIdentityCard), want{requests: 1, email: 1, resolved: 1,
		res1: 1, within: 1, queued: 1, abandoned: 1, res1Share: 1, avgRes: 120 * time.Minute, avgRes1: 120 * time.Minute})
	so := get("social")
	// t4 (phone, open), t5 (phone, 60 min at I, its call ended first);
	// call cS (dialed social's number) abandoned.
	check("social", so.Total, want{requests: 2, phone: 2, resolved: 1, res1: 1, within: 1, queued: 1, abandoned: 1,
		res1Share: 0.5, avgRes: 60 * time.Minute, avgRes1: 60 * time.Minute})
	check("social's other", svc(so, tickets.ServiceOther), want{requests: 1, phone: 1, resolved: 1, res1: 1, within: 1,
		queued: 1, abandoned: 1, res1Share: 1, avgRes: 60 * time.Minute, avgRes1: 60 * time.Minute})
	check("default", get("default").Total, want{})
	line := get("")
	check("the line", line.Total, want{requests: 5, phone: 3, email: 1, portal: 1, fcr: 1, resolved: 4, res1: 3, within: 4,
		queued: 3, abandoned: 2, fcrShare: 1.0 / 3, res1Share: 3.0 / 5, avgRes: 67*time.Minute + 30*time.Second,
		avgRes1: 70 * time.Minute})
	all, err := a.EveryProviderIndicators(ctx, from, to)
	must(t, err)
	if len(all) != 3 || all[0].Provider != "default" || all[1].Provider != "passports" || all[2].Provider != "social" ||
		all[1].Total.Requests != 3 || all[2].Total.Requests != 2 {
		t.Fatalf("every provider's indicators: %+v", all)
	}
	if _, err := a.ProviderIndicators(ctx, "Bad Id", from, to); !errors.Is(err, tickets.ErrInvalid) {
		t.Fatalf("indicators of a bad provider id: %v", err)
	}
}
