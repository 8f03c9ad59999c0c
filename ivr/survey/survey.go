// Package survey places the satisfaction survey calls (docs/queue.md,
// "Survey calls") whatever the telephony: after a phone ticket is
// resolved, the line calls its caller and runs the survey flow
// (flows/survey.lua, ivr.SurveyFlow) with the ticket; the rating goes to
// the ticket. A citizen is called at most once in a period, whatever the
// number of their tickets, and once per ticket, across engines (the store
// decides).
//
// The package knows nothing of SIP, ARI or the event socket: each
// telephony adapter (dialplan/sip, dialplan/ari, dialplan/esl) is a
// Caller, and Round does the rest: which tickets, the claim, the flow, the
// result, the count.
package survey

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/redact"
	"github.com/govline/ivr/tickets"
)

// Store keeps the survey calls (tickets.Store). Safe for concurrent use.
type Store interface {
	// SurveysDue returns resolved tickets whose caller may be surveyed.
	SurveysDue(ctx context.Context, since time.Time, period time.Duration, now time.Time, limit int) ([]tickets.SurveyDue, error)
	// SurveyStarted claims a ticket's survey; false when it or its caller
	// had one (in the period).
	SurveyStarted(ctx context.Context, ticket, number string, period time.Duration, now time.Time) (bool, error)
	// SurveyEnded records the call's result.
	SurveyEnded(ctx context.Context, ticket, result string) error
}

var _ Store = (*tickets.Store)(nil)

// Answered is the result of Caller.SurveyCall for a call that was
// answered (whatever happened then: the flow's outcome says).
const Answered = "answered"

// Why a survey call was not answered, as every adapter names it (the
// names of dialplan/sip's OutboundReason, the label of
// ivr_survey_calls_total).
const (
	Busy        = "busy"        // SIP 486/600, Q.850 cause 17, USER_BUSY
	NoAnswer    = "no_answer"   // the ring timeout ran out; Q.850 18/19, NO_ANSWER
	Machine     = "machine"     // an answering machine answered: nothing said
	Rejected    = "rejected"    // any other refusal
	Unreachable = "unreachable" // no answer from the PBX or the trunk
	Cancelled   = "cancelled"   // the round's context ended
)

// Caller places one survey call. A telephony adapter implements it.
//
// SurveyCall calls number (digits, an optional leading +) and, once the
// call is answered, runs flow on it until the call ends; only then does it
// return, with Answered, or why the call was not answered (Busy, NoAnswer,
// Machine, Rejected, Unreachable, Cancelled or an adapter's own reason).
// flow.Run is called at most once, on a goroutine of the adapter, and has
// returned when SurveyCall returns. SurveyCall is safe for concurrent use
// and returns soon after ctx ends.
type Caller interface {
	SurveyCall(ctx context.Context, number string, flow ivr.FlowRunner) string
}

// Config says which tickets are surveyed and how.
type Config struct {
	Store  Store
	Flow   ivr.FlowRunner // runs ivr.SurveyFlow (the engine's flows: a *flows.Runtime)
	Period time.Duration  // a citizen is surveyed at most once in this period
	Since  time.Time      // only tickets resolved since then
	Batch  int            // tickets taken at each round, default 10
	// Allowed says whether a call may be placed at a time (the working
	// calendar); nil allows any time. Outside it no survey is claimed:
	// the tickets stay due until it allows calls again.
	Allowed func(time.Time) bool
}

// DefaultBatch is Config.Batch's default.
const DefaultBatch = 10

// Round places the survey calls due now through c, one after another, and
// returns how many were placed. Each call's result ("rated", "no_rating",
// or why it was not answered) is recorded on the ticket's survey and
// counted in m (ivr_survey_calls_total); m and log may be nil.
func Round(ctx context.Context, c Caller, cfg Config, m *ivr.Metrics, log *slog.Logger) (int, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	batch := cfg.Batch
	if batch <= 0 {
		batch = DefaultBatch
	}
	due, err := cfg.Store.SurveysDue(ctx, cfg.Since, cfg.Period, time.Now(), batch)
	if err != nil {
		return 0, err
	}
	placed := 0
	for _, d := range due {
		if ctx.Err() != nil {
			break
		}
		if cfg.Allowed != nil && !cfg.Allowed(time.Now()) {
			log.Info("survey calls wait for the working hours")
			break
		}
		if !ivr.DialableNumber(d.Number) {
			continue
		}
		ok, err := cfg.Store.SurveyStarted(ctx, d.Ticket, d.Number, cfg.Period, time.Now())
		if err != nil || !ok {
			continue
		}
		placed++
		f := &Flow{Next: cfg.Flow, Ticket: d.Ticket, Lang: d.Lang}
		result := c.SurveyCall(ctx, d.Number, f)
		if result == Answered {
			result = tickets.SurveyNoRating
			if f.Rated() {
				result = tickets.SurveyRated
			}
		}
		if m != nil {
			m.Survey(result)
		}
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := cfg.Store.SurveyEnded(wctx, d.Ticket, result); err != nil {
			log.Error("survey result not recorded", "ticket", d.Ticket, "err", err)
		}
		cancel()
		log.Info("survey call", "ticket", d.Ticket, "number", redact.Phone(d.Number), "result", result)
	}
	return placed, nil
}

// Flow runs the survey flow for one ticket and notes whether the citizen
// rated it (survey.lua ends with the reason "rating N"). Run is called
// once; Rated is read after it returned (Caller's contract).
type Flow struct {
	Next   ivr.FlowRunner
	Ticket string
	Lang   string
	rated  bool
}

var _ ivr.FlowRunner = (*Flow)(nil)

// Run runs Next as the survey flow of the ticket.
func (f *Flow) Run(ctx context.Context, facts flows.Facts, ch flows.Channel, svc flows.Services) flows.Outcome {
	facts.Flow, facts.Ticket, facts.SurveyCall = ivr.SurveyFlow, f.Ticket, true
	if f.Lang != "" {
		facts.Lang = f.Lang
	}
	out := f.Next.Run(ctx, facts, ch, svc)
	f.rated = strings.HasPrefix(out.Reason, "rating ")
	return out
}

// Rated says whether the citizen gave a rating.
func (f *Flow) Rated() bool { return f.rated }

// Catalog is the survey flow's sentences (the engine's flows').
func (f *Flow) Catalog() *flows.Catalog {
	if c, ok := f.Next.(interface{ Catalog() *flows.Catalog }); ok {
		return c.Catalog()
	}
	return nil
}
