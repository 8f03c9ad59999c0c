package tickets

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// QueueOutcome is what happened to a call in the agent queue.
type QueueOutcome string

// Queue outcomes.
const (
	QueueNone      QueueOutcome = "none"      // never queued for an agent
	QueueAnswered  QueueOutcome = "answered"  // an agent answered
	QueueAbandoned QueueOutcome = "abandoned" // the caller hung up while queued
)

// SetCallQueue records the service a call was about and its queue outcome
// (the facts behind the abandoned-call indicators). An empty service keeps
// the one recorded.
func (s *Store) SetCallQueue(ctx context.Context, callID string, svc Service, outcome QueueOutcome) error {
	op := "set queue outcome of call"
	if svc != "" {
		if err := checkEnum("service", svc, Services); err != nil {
			return fmt.Errorf("tickets: %s %q: %w", op, callID, err)
		}
	}
	if err := checkEnum("queue_outcome", outcome, []QueueOutcome{QueueNone, QueueAnswered, QueueAbandoned}); err != nil {
		return fmt.Errorf("tickets: %s %q: %w", op, callID, err)
	}
	return s.update(ctx, op, callID,
		`UPDATE calls SET service = CASE WHEN ? = '' THEN service ELSE ? END, queue_outcome = ? WHERE id = ?`,
		string(svc), string(svc), string(outcome), callID)
}

// Indicators are the service's figures for one service (or all) over a
// period. Shares are fractions 0..1 (0 when their denominator is 0);
// durations are wall-clock time. docs/tickets.md defines each one.
type Indicators struct {
	Service Service `json:"service"` // "" in the total

	// Requests: tickets created in the period.
	Requests int `json:"requests"`
	// PhoneRequests: of those, opened on the phone channel.
	PhoneRequests int `json:"phone_requests"`
	// FirstContact: requests resolved during the call that opened them
	// (at level 1, never escalated, not reopened since); share of
	// PhoneRequests.
	FirstContact      int     `json:"first_contact"`
	FirstContactShare float64 `json:"first_contact_share"`
	// Resolved: requests resolved (or closed) by now.
	Resolved int `json:"resolved"`
	// ResolvedLevel1: resolved at level I; share of Requests.
	ResolvedLevel1      int     `json:"resolved_level1"`
	ResolvedLevel1Share float64 `json:"resolved_level1_share"`
	// AvgResolutionLevel1: mean time from creation to resolution of the
	// requests resolved at level I.
	AvgResolutionLevel1 time.Duration `json:"avg_resolution_level1_ns"`
	// WithinDeadline: resolved at or before their deadline; share of
	// Resolved.
	WithinDeadline      int     `json:"within_deadline"`
	WithinDeadlineShare float64 `json:"within_deadline_share"`
	// AvgResolution: mean time from creation to resolution of Resolved.
	AvgResolution time.Duration `json:"avg_resolution_ns"`

	// Channels: Requests by the channel they came in by (every channel
	// present, 0 when none).
	Channels map[Channel]int `json:"channels"`

	// QueuedCalls: calls started in the period that were queued for an
	// agent (answered or abandoned); Abandoned: of those, the caller hung
	// up before an agent answered; AbandonedShare = Abandoned/QueuedCalls.
	QueuedCalls    int     `json:"queued_calls"`
	Abandoned      int     `json:"abandoned"`
	AbandonedShare float64 `json:"abandoned_share"`
}

// Report holds the indicators of a period [From, To).
type Report struct {
	// Provider is the provider reported on; "" for the whole line.
	Provider string       `json:"provider"`
	From     time.Time    `json:"from"`
	To       time.Time    `json:"to"`
	Total    Indicators   `json:"total"`
	Services []Indicators `json:"services"` // one per service, in Services order
}

func share(n, of int) float64 {
	if of == 0 {
		return 0
	}
	return float64(n) / float64(of)
}

// sums are the additive parts of Indicators, so the total is their sum.
type sums struct {
	email, portal                                                   int
	requests, phone, fcr, resolved, res1, within, queued, abandoned int
	sumRes, sumRes1                                                 float64 // ns
}

func (a *sums) add(b sums) {
	a.requests += b.requests
	a.email += b.email
	a.portal += b.portal
	a.phone += b.phone
	a.fcr += b.fcr
	a.resolved += b.resolved
	a.res1 += b.res1
	a.within += b.within
	a.queued += b.queued
	a.abandoned += b.abandoned
	a.sumRes += b.sumRes
	a.sumRes1 += b.sumRes1
}

func (a sums) indicators(svc Service) Indicators {
	in := Indicators{
		Service: svc, Requests: a.requests, PhoneRequests: a.phone,
		FirstContact: a.fcr, FirstContactShare: share(a.fcr, a.phone),
		Resolved: a.resolved, ResolvedLevel1: a.res1, ResolvedLevel1Share: share(a.res1, a.requests),
		WithinDeadline: a.within, WithinDeadlineShare: share(a.within, a.resolved),
		QueuedCalls: a.queued, Abandoned: a.abandoned, AbandonedShare: share(a.abandoned, a.queued),
		Channels: map[Channel]int{ChannelPhone: a.phone, ChannelEmail: a.email, ChannelPortal: a.portal},
	}
	if a.resolved > 0 {
		in.AvgResolution = time.Duration(a.sumRes / float64(a.resolved))
	}
	if a.res1 > 0 {
		in.AvgResolutionLevel1 = time.Duration(a.sumRes1 / float64(a.res1))
	}
	return in
}

// serviceList is the SQL list of every service, so the indicator queries
// seek one index range per service.
var serviceList = func() string {
	q := make([]string, len(Services))
	for i, s := range Services {
		q[i] = "'" + string(s) + "'"
	}
	return strings.Join(q, ", ")
}()

// Indicators computes the indicators of tickets created, and calls
// started, in [from, to), per service and in total. The tickets are taken
// as they are now (a request created in the period and resolved after it
// counts as resolved).
//
// The whole hours of the period come from the hourly roll-ups
// (ticket_stats, call_stats) that triggers keep in step with every ticket
// and call row; the partial hours at its edges are counted from the rows.
func (s *Store) Indicators(ctx context.Context, from, to time.Time) (Report, error) {
	return s.indicators(ctx, "", from, to, true)
}

// ProviderIndicators is Indicators of one provider: its tickets (those it
// holds now: a ticket transferred counts for the provider it went to) and
// the queued calls that are its (the provider of the dialed number, else
// of the call's service, else DefaultProvider; as the mapping is now).
// provider "" means the whole line. A provider's figures are counted from
// the rows (an index per provider), not from the line's roll-ups.
func (s *Store) ProviderIndicators(ctx context.Context, provider string, from, to time.Time) (Report, error) {
	if provider != "" {
		if err := checkProviderID(provider); err != nil {
			return Report{}, fmt.Errorf("tickets: indicators: %w", err)
		}
	}
	return s.indicators(ctx, provider, from, to, provider == "")
}

// EveryProviderIndicators returns ProviderIndicators of every provider
// (Providers order): what the national monitor sees.
func (s *Store) EveryProviderIndicators(ctx context.Context, from, to time.Time) ([]Report, error) {
	ps, err := s.Providers(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Report, 0, len(ps))
	for _, p := range ps {
		r, err := s.ProviderIndicators(ctx, p.ID, from, to)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

const hourNS = int64(time.Hour)

func (s *Store) indicators(ctx context.Context, provider string, from, to time.Time, rollup bool) (Report, error) {
	if !from.Before(to) {
		return Report{}, fmt.Errorf("tickets: indicators: %w", invalid("period", "from %s is not before to %s", from, to))
	}
	per := map[Service]*sums{}
	for _, svc := range Services {
		per[svc] = &sums{}
	}
	var unknown sums // queued calls whose service was not recorded (''): in the total only
	f, t := from.UnixNano(), to.UnixNano()
	h0 := f / hourNS // first whole hour
	if f%hourNS != 0 {
		h0++
	}
	h1 := t / hourNS // end of the whole hours
	var err error
	if rollup && f > 0 && h0 < h1 {
		err = errors.Join(
			s.rollupTickets(ctx, h0, h1, per),
			s.rollupCalls(ctx, h0, h1, per, &unknown),
			s.scanTickets(ctx, "", f, h0*hourNS, per),
			s.scanTickets(ctx, "", h1*hourNS, t, per),
			s.scanCalls(ctx, "", f, h0*hourNS, per, &unknown),
			s.scanCalls(ctx, "", h1*hourNS, t, per, &unknown))
	} else {
		err = errors.Join(s.scanTickets(ctx, provider, f, t, per), s.scanCalls(ctx, provider, f, t, per, &unknown))
	}
	if err != nil {
		return Report{}, fmt.Errorf("tickets: indicators: %w", err)
	}
	r := Report{Provider: provider, From: from, To: to}
	total := unknown
	for _, svc := range Services {
		total.add(*per[svc])
		r.Services = append(r.Services, per[svc].indicators(svc))
	}
	r.Total = total.indicators("")
	return r, nil
}

// addTicketRows adds what a tickets query returns to per; sumScale
// converts its duration sums to nanoseconds.
func addTicketRows(rows *sql.Rows, err error, per map[Service]*sums, sumScale float64) error {
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var svc string
		var a sums
		if err := rows.Scan(&svc, &a.requests, &a.phone, &a.email, &a.portal, &a.fcr, &a.resolved, &a.res1, &a.within, &a.sumRes, &a.sumRes1); err != nil {
			return err
		}
		a.sumRes *= sumScale
		a.sumRes1 *= sumScale
		if p := per[Service(svc)]; p != nil {
			p.add(a)
		}
	}
	return rows.Err()
}

// scanTickets counts the tickets created in [f, t) from their rows (of
// provider p, or all when p is "").
func (s *Store) scanTickets(ctx context.Context, p string, f, t int64, per map[Service]*sums) error {
	if f >= t {
		return nil
	}
	index, cond, args := "tickets_indicators", "", []any{f, t}
	if p != "" {
		index, cond, args = "tickets_provider_indicators", " AND provider = ?", append(args, p)
	}
	rows, err := s.db.QueryContext(ctx, `
		SELECT service,
		       count(*),
		       count(CASE WHEN channel = 'phone' THEN 1 END),
		       count(CASE WHEN channel = 'email' THEN 1 END),
		       count(CASE WHEN channel = 'portal' THEN 1 END),
		       coalesce(sum(first_contact), 0),
		       count(resolved_ns),
		       count(CASE WHEN resolved_level = 1 THEN 1 END),
		       count(CASE WHEN resolved_ns <= deadline_ns THEN 1 END),
		       `+s.db.FloatSum(`resolved_ns - created_ns`)+`,
		       `+s.db.FloatSum(`CASE WHEN resolved_level = 1 THEN resolved_ns - created_ns END`)+`
		FROM tickets`+s.db.IndexedBy(index)+`
		WHERE service IN (`+serviceList+`) AND created_ns >= ? AND created_ns < ?`+cond+`
		GROUP BY service`, args...)
	return addTicketRows(rows, err, per, 1)
}

// rollupTickets adds the roll-up of the hours [h0, h1).
func (s *Store) rollupTickets(ctx context.Context, h0, h1 int64, per map[Service]*sums) error {
	rows, err := s.db.QueryContext(ctx, `
		SELECT service, sum(requests), sum(phone), sum(email), sum(portal), sum(first_contact), sum(resolved),
		       sum(resolved_level1), sum(within_deadline), `+s.db.FloatSum("resolution_ms")+`, `+s.db.FloatSum("resolution_level1_ms")+`
		FROM ticket_stats
		WHERE service IN (`+serviceList+`) AND hour >= ? AND hour < ?
		GROUP BY service`, h0, h1)
	return addTicketRows(rows, err, per, 1e6)
}

func addCallRows(rows *sql.Rows, err error, per map[Service]*sums, unknown *sums) error {
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var svc string
		var q, ab int
		if err := rows.Scan(&svc, &q, &ab); err != nil {
			return err
		}
		p := per[Service(svc)]
		if p == nil {
			p = unknown
		}
		p.queued += q
		p.abandoned += ab
	}
	return rows.Err()
}

// scanCalls counts the queued calls started in [f, t) from their rows (of
// provider p, as ProviderIndicators says, or all when p is "").
func (s *Store) scanCalls(ctx context.Context, p string, f, t int64, per map[Service]*sums, unknown *sums) error {
	if f >= t {
		return nil
	}
	cond, args := "", []any{f, t}
	if p != "" {
		cond, args = ` AND coalesce((SELECT provider FROM provider_numbers WHERE number = calls.called),
			(SELECT provider FROM provider_services WHERE service = calls.service), 'default') = ?`, append(args, p)
	}
	rows, err := s.db.QueryContext(ctx, `
		SELECT service, count(*), count(CASE WHEN queue_outcome = 'abandoned' THEN 1 END)
		FROM calls`+s.db.IndexedBy("calls_queue")+`
		WHERE queue_outcome <> 'none' AND service IN ('', `+serviceList+`) AND start_ns >= ? AND start_ns < ?`+cond+`
		GROUP BY service`, args...)
	return addCallRows(rows, err, per, unknown)
}

// rollupCalls adds the calls roll-up of the hours [h0, h1).
func (s *Store) rollupCalls(ctx context.Context, h0, h1 int64, per map[Service]*sums, unknown *sums) error {
	rows, err := s.db.QueryContext(ctx, `
		SELECT service, sum(queued), sum(abandoned) FROM call_stats
		WHERE hour >= ? AND hour < ? GROUP BY service`, h0, h1)
	return addCallRows(rows, err, per, unknown)
}
