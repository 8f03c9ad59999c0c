package survey_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/ivr/survey"
	"github.com/govline/ivr/tickets"
)

// line is a Caller whose citizens answer as told: a number in busy is
// busy, any other answers and the flow runs (the citizen's key is the
// outcome's reason).
type line struct {
	mu     sync.Mutex
	busy   map[string]bool
	called []string
}

func (l *line) SurveyCall(ctx context.Context, number string, flow ivr.FlowRunner) string {
	l.mu.Lock()
	l.called = append(l.called, number)
	busy := l.busy[number]
	l.mu.Unlock()
	if busy {
		return survey.Busy
	}
	flow.Run(ctx, flows.Facts{}, nil, flows.Services{})
	return survey.Answered
}

// ratingFlow is survey.lua's outcome: "rating 4" when the citizen pressed 4.
type ratingFlow struct {
	key   string
	facts []flows.Facts
}

func (f *ratingFlow) Run(ctx context.Context, facts flows.Facts, ch flows.Channel, svc flows.Services) flows.Outcome {
	f.facts = append(f.facts, facts)
	if f.key == "" {
		return flows.Outcome{Reason: "no rating"}
	}
	return flows.Outcome{Reason: "rating " + f.key}
}

func resolved(t *testing.T, store *tickets.Store, caller string) string {
	t.Helper()
	tkt, err := store.OpenTicket(context.Background(), tickets.NewTicket{Actor: "ivr", Channel: "phone", Caller: caller, Lang: "en", Service: tickets.ServicePassport})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Resolve(context.Background(), tkt.Number, "ana", "done"); err != nil {
		t.Fatal(err)
	}
	return tkt.Number
}

// Round, whatever the telephony: one call per citizen in the period (two
// tickets of one citizen, one call), the flow runs as the survey of the
// ticket in its language, a busy citizen is recorded busy, a number that is
// no phone number is not called; results counted by name.
func TestRound(t *testing.T) {
	store, err := tickets.Open(tickets.DBPath(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	first := resolved(t, store, "0722123456")
	resolved(t, store, "0722123456")
	resolved(t, store, "0722000001")
	resolved(t, store, "anonymous")
	l := &line{busy: map[string]bool{"0722000001": true}}
	f := &ratingFlow{key: "4"}
	m := ivr.NewMetrics()
	cfg := survey.Config{Store: store, Flow: f, Period: 24 * time.Hour, Since: time.Now().Add(-time.Hour)}
	n, err := survey.Round(context.Background(), l, cfg, m, nil)
	if err != nil || n != 2 {
		t.Fatalf("Round: %d, %v; want 2 calls", n, err)
	}
	if len(l.called) != 2 {
		t.Errorf("called %v, want the two citizens once each", l.called)
	}
	if len(f.facts) != 1 || f.facts[0].Flow != ivr.SurveyFlow || f.facts[0].Ticket != first || !f.facts[0].SurveyCall || f.facts[0].Lang != "en" {
		t.Errorf("flow facts %+v, want the survey of %s in en", f.facts, first)
	}
	if m.Surveys(tickets.SurveyRated) != 1 || m.Surveys(survey.Busy) != 1 {
		t.Errorf("counted rated %d, busy %d; want 1 and 1", m.Surveys(tickets.SurveyRated), m.Surveys(survey.Busy))
	}
	c, err := store.SurveyReport(context.Background(), time.Now().Add(-time.Hour), time.Now().Add(time.Minute))
	if err != nil || c.Placed != 2 || c.Answered != 1 || c.Rated != 1 {
		t.Errorf("report %+v (%v), want 2 placed, 1 answered, 1 rated", c, err)
	}
	if n, _ := survey.Round(context.Background(), l, cfg, m, nil); n != 0 {
		t.Errorf("a second round called %d citizens again within the period", n)
	}
}

// Outside the working hours (Config.Allowed) nobody is called and nothing
// is claimed: the survey is placed at the first round the hours allow.
func TestRoundWaitsForWorkingHours(t *testing.T) {
	store, err := tickets.Open(tickets.DBPath(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	resolved(t, store, "0722123456")
	l := &line{}
	open := false
	cfg := survey.Config{Store: store, Flow: &ratingFlow{key: "5"}, Period: 24 * time.Hour, Since: time.Now().Add(-time.Hour),
		Allowed: func(time.Time) bool { return open }}
	if n, err := survey.Round(context.Background(), l, cfg, nil, nil); err != nil || n != 0 || len(l.called) != 0 {
		t.Fatalf("closed hours: %d placed, called %v (%v); want none", n, l.called, err)
	}
	open = true
	if n, err := survey.Round(context.Background(), l, cfg, nil, nil); err != nil || n != 1 || len(l.called) != 1 {
		t.Fatalf("open hours: %d placed, called %v (%v); want the citizen", n, l.called, err)
	}
}
