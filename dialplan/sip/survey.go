package sip

import (
	"context"

	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/ivr/survey"
)

// Satisfaction survey calls (docs/queue.md, "Survey calls"): package
// ivr/survey chooses the tickets and records the results; the embedded
// line places the calls through its trunk (Originate), within the
// outbound limits, with answering machine detection when configured.

// SurveyStore keeps the survey calls (tickets.Store).
type SurveyStore = survey.Store

// SurveyConfig says which tickets are surveyed and how.
type SurveyConfig = survey.Config

var _ survey.Caller = (*Server)(nil)

// SurveyRound places the survey calls due now, one after another within
// the outbound limits, and returns how many were placed. Each call's
// result ("rated", "no_rating", or why it was not answered) is recorded.
func (s *Server) SurveyRound(ctx context.Context, cfg SurveyConfig) (int, error) {
	return survey.Round(ctx, s, cfg, s.metrics, s.log)
}

// SurveyCall places one survey call through the trunk (Originate) and
// returns survey.Answered once the answered call ended, or the
// OutboundReason of an unanswered one.
func (s *Server) SurveyCall(ctx context.Context, number string, flow ivr.FlowRunner) string {
	_, err := s.Originate(ctx, OriginateRequest{Number: number, Flow: flow})
	return string(ReasonOfOutbound(err))
}
