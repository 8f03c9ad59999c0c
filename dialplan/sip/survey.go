package sip

import (
	"context"
	"strings"
	"time"

	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/redact"
	"github.com/govline/ivr/tickets"
)

// Satisfaction survey calls (docs/queue.md, "Survey calls"): after a phone
// ticket is resolved, the line calls its caller through the trunk and runs
// the survey flow (flows/survey.lua, ivr.SurveyFlow) with the ticket; the
// rating goes to the ticket. A citizen is called at most once in a period,
// whatever the number of their tickets, and once per ticket, across
// engines (the store decides).

// SurveyStore keeps the survey calls (tickets.Store). Safe for concurrent
// use.
type SurveyStore interface {
	// SurveysDue returns resolved tickets whose caller may be surveyed.
	SurveysDue(ctx context.Context, since time.Time, period time.Duration, now time.Time, limit int) ([]tickets.SurveyDue, error)
	// SurveyStarted claims a ticket's survey; false when it or its caller
	// had one (in the period).
	SurveyStarted(ctx context.Context, ticket, number string, period time.Duration, now time.Time) (bool, error)
	// SurveyEnded records the call's result.
	SurveyEnded(ctx context.Context, ticket, result string) error
}

// SurveyConfig says which tickets are surveyed and how.
type SurveyConfig struct {
	Store  SurveyStore
	Flow   ivr.FlowRunner // runs ivr.SurveyFlow (the engine's flows: a *flows.Runtime)
	Period time.Duration  // a citizen is surveyed at most once in this period
	Since  time.Time      // only tickets resolved since then
	Batch  int            // tickets taken at each round, default 10
}

// SurveyRound places the survey calls due now, one after another within
// the outbound limits, and returns how many were placed. Each call's
// result ("rated", "no_rating", or why it was not answered) is recorded.
func (s *Server) SurveyRound(ctx context.Context, cfg SurveyConfig) (int, error) {
	due, err := cfg.Store.SurveysDue(ctx, cfg.Since, cfg.Period, time.Now(), cfg.Batch)
	if err != nil {
		return 0, err
	}
	placed := 0
	for _, d := range due {
		if ctx.Err() != nil {
			break
		}
		if !validNumber(d.Number) {
			continue
		}
		ok, err := cfg.Store.SurveyStarted(ctx, d.Ticket, d.Number, cfg.Period, time.Now())
		if err != nil || !ok {
			continue
		}
		placed++
		f := &surveyFlow{next: cfg.Flow, ticket: d.Ticket, lang: d.Lang}
		_, err = s.Originate(ctx, OriginateRequest{Number: d.Number, Flow: f})
		result := string(ReasonOfOutbound(err))
		if err == nil {
			result = tickets.SurveyNoRating
			if f.rated {
				result = tickets.SurveyRated
			}
		}
		s.metrics.Survey(result)
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := cfg.Store.SurveyEnded(wctx, d.Ticket, result); err != nil {
			s.log.Error("survey result not recorded", "ticket", d.Ticket, "err", err)
		}
		cancel()
		s.log.Info("survey call", "ticket", d.Ticket, "number", redact.Phone(d.Number), "result", result)
	}
	return placed, nil
}

// surveyFlow runs the survey flow for one ticket and notes whether the
// citizen rated it (survey.lua ends with the reason "rating N").
type surveyFlow struct {
	next   ivr.FlowRunner
	ticket string
	lang   string
	rated  bool // set by Run, read after the call
}

func (f *surveyFlow) Run(ctx context.Context, facts flows.Facts, ch flows.Channel, svc flows.Services) flows.Outcome {
	facts.Flow, facts.Ticket, facts.SurveyCall = ivr.SurveyFlow, f.ticket, true
	if f.lang != "" {
		facts.Lang = f.lang
	}
	out := f.next.Run(ctx, facts, ch, svc)
	f.rated = strings.HasPrefix(out.Reason, "rating ")
	return out
}

// Catalog is the survey flow's sentences (the engine's flows').
func (f *surveyFlow) Catalog() *flows.Catalog {
	if c, ok := f.next.(interface{ Catalog() *flows.Catalog }); ok {
		return c.Catalog()
	}
	return nil
}
