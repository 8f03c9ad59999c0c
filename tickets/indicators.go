package tickets

import (
	"context"
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

	// QueuedCalls: calls started in the period that were queued for an
	// agent (answered or abandoned); Abandoned: of those, the caller hung
	// up before an agent answered; AbandonedShare = Abandoned/QueuedCalls.
	QueuedCalls    int     `json:"queued_calls"`
	Abandoned      int     `json:"abandoned"`
	AbandonedShare float64 `json:"abandoned_share"`
}

// Report holds the indicators of a period [From, To).
type Report struct {
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
	requests, phone, fcr, resolved, res1, within, queued, abandoned int
	sumRes, sumRes1                                                 float64 // ns
}

func (a *sums) add(b sums) {
	a.requests += b.requests
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
func (s *Store) Indicators(ctx context.Context, from, to time.Time) (Report, error) {
	if !from.Before(to) {
		return Report{}, fmt.Errorf("tickets: indicators: %w", invalid("period", "from %s is not before to %s", from, to))
	}
	per := map[Service]*sums{}
	for _, svc := range Services {
		per[svc] = &sums{}
	}
	// The calls are counted on another connection while the tickets are
	// (WAL readers run in parallel); the goroutine is joined below on
	// every path, and cancelled when the tickets query fails.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	calls := make(chan queuedResult, 1)
	go func() { calls <- s.queuedCalls(ctx, from, to) }()
	fail := func(err error) (Report, error) {
		cancel()
		<-calls
		return Report{}, fmt.Errorf("tickets: indicators: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, `
		SELECT service,
		       count(*),
		       coalesce(sum(channel = 'phone'), 0),
		       coalesce(sum(first_contact), 0),
		       count(resolved_ns),
		       count(CASE WHEN resolved_level = 1 THEN 1 END),
		       count(CASE WHEN resolved_ns <= deadline_ns THEN 1 END),
		       coalesce(total(resolved_ns - created_ns), 0),
		       coalesce(total(CASE WHEN resolved_level = 1 THEN resolved_ns - created_ns END), 0)
		FROM tickets INDEXED BY tickets_indicators
		WHERE service IN (`+serviceList+`) AND created_ns >= ? AND created_ns < ?
		GROUP BY service`, from.UnixNano(), to.UnixNano())
	if err != nil {
		return fail(err)
	}
	defer rows.Close()
	for rows.Next() {
		var svc string
		var a sums
		if err := rows.Scan(&svc, &a.requests, &a.phone, &a.fcr, &a.resolved, &a.res1, &a.within, &a.sumRes, &a.sumRes1); err != nil {
			return fail(err)
		}
		if p := per[Service(svc)]; p != nil {
			p.add(a)
		}
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	rows.Close()

	cr := <-calls
	if cr.err != nil {
		return Report{}, fmt.Errorf("tickets: indicators: calls: %w", cr.err)
	}
	var unknown sums // queued calls whose service was not recorded (''): in the total only
	for svc, qa := range cr.counts {
		p := per[Service(svc)]
		if p == nil {
			p = &unknown
		}
		p.queued += qa[0]
		p.abandoned += qa[1]
	}

	r := Report{From: from, To: to}
	total := unknown
	for _, svc := range Services {
		total.add(*per[svc])
		r.Services = append(r.Services, per[svc].indicators(svc))
	}
	r.Total = total.indicators("")
	return r, nil
}

type queuedResult struct {
	counts map[string][2]int // service -> queued, abandoned
	err    error
}

// queuedCalls counts the calls started in [from, to) that reached the
// agent queue, and the abandoned ones, per service.
func (s *Store) queuedCalls(ctx context.Context, from, to time.Time) queuedResult {
	rows, err := s.db.QueryContext(ctx, `
		SELECT service, count(*), count(CASE WHEN queue_outcome = 'abandoned' THEN 1 END)
		FROM calls INDEXED BY calls_queue
		WHERE queue_outcome <> 'none' AND service IN ('', `+serviceList+`) AND start_ns >= ? AND start_ns < ?
		GROUP BY service`, from.UnixNano(), to.UnixNano())
	if err != nil {
		return queuedResult{err: err}
	}
	defer rows.Close()
	out := queuedResult{counts: map[string][2]int{}}
	for rows.Next() {
		var svc string
		var q, ab int
		if err := rows.Scan(&svc, &q, &ab); err != nil {
			return queuedResult{err: err}
		}
		out.counts[svc] = [2]int{q, ab}
	}
	if err := rows.Err(); err != nil {
		return queuedResult{err: err}
	}
	return out
}
