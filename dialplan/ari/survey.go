package ari

import (
	"context"
	"errors"
	"strings"

	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/ivr/survey"
)

// Survey calls (docs/queue.md, "Survey calls") through Asterisk: package
// ivr/survey chooses the tickets and records the results; the adapter
// originates each call into this application (POST /channels with
// Outbound.Endpoint) and, once answered, serves the channel as an inbound
// one, with the survey flow in place of the engine's.

var _ survey.Caller = (*Server)(nil)

// SurveyCall originates a call to number through the first Asterisk and
// runs flow on it once answered; it returns survey.Answered when the
// served call ended, or why it was not answered: Q.850 cause 17 is
// survey.Busy, 18 and 19 survey.NoAnswer, another cause or a refused
// request survey.Rejected. Without an Outbound.Endpoint it returns
// "no_trunk" and places nothing. With Outbound.Machine on, an answering
// machine is hung up on with nothing said: survey.Machine. Each result is
// counted in ivr_outbound_calls_total, as the SIP line's calls are.
func (s *Server) SurveyCall(ctx context.Context, number string, flow ivr.FlowRunner) string {
	r := s.surveyCall(ctx, number, flow)
	s.eng.Metrics.Outbound(r)
	return r
}

func (s *Server) surveyCall(ctx context.Context, number string, flow ivr.FlowRunner) string {
	o := s.cfg.Outbound
	if o.Endpoint == "" {
		return "no_trunk"
	}
	if !ivr.DialableNumber(number) {
		return "bad_number"
	}
	sv := newServed()
	id, err := s.originate(ctx, OriginateRequest{
		Endpoint: strings.ReplaceAll(o.Endpoint, "{number}", number),
		CallerID: o.CallerID,
		Timeout:  o.RingTimeout,
		Flow:     flow,
	}, sv)
	if err != nil {
		if ctx.Err() != nil {
			return survey.Cancelled
		}
		return reasonOfOriginate(err)
	}
	select {
	case <-sv.done:
		if sv.machine {
			return survey.Machine
		}
	case <-ctx.Done():
		// The round is stopping: the call ends now (the flow returns);
		// done follows.
		if len(s.conns) > 0 {
			if c := s.lookup(s.conns[0], id); c != nil {
				c.end(ivr.EndShutdown, context.Cause(ctx))
			}
		}
		<-sv.done
	}
	return survey.Answered
}

// reasonOfOriginate names why an originate was not answered as
// ivr/survey and dialplan/sip do.
func reasonOfOriginate(err error) string {
	var oe *OriginateError
	switch {
	case errors.As(err, &oe) && oe.Busy():
		return survey.Busy
	case errors.As(err, &oe) && oe.NoAnswer():
		return survey.NoAnswer
	case errors.As(err, &oe):
		return survey.Rejected
	}
	return survey.Unreachable // no answer to the request: Asterisk out of reach or overloaded
}
