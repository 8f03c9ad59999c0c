package esl

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/ivr/survey"
)

// Survey calls (docs/queue.md, "Survey calls") through FreeSWITCH:
// package ivr/survey chooses the tickets and records the results; the
// adapter runs `originate` over the inbound event socket with a uuid of
// its own (origination_uuid) and &socket(this server), so the answered
// channel connects here and is served as an inbound one, with the survey
// flow in place of the engine's.

var _ survey.Caller = (*Server)(nil)

// placed is one of the engine's own calls, from the originate until its
// socket connects (claimed) and its session ends (done).
type placed struct {
	flow    ivr.FlowRunner
	claimed chan struct{} // closed by serveConn when the channel connects
	done    chan struct{} // closed by serveConn when the call ended
	// machine: an answering machine answered and was hung up on with
	// nothing said (Outbound.Machine). Written before done is closed.
	machine bool
}

// SurveyCall originates a call to number through Outbound.Gateway and
// runs flow on it once answered; it returns survey.Answered when the
// served call ended, or why it was not answered: USER_BUSY is
// survey.Busy, NO_ANSWER and NO_USER_RESPONSE survey.NoAnswer, another
// cause survey.Rejected, an event socket out of reach survey.Unreachable.
// Without an Outbound.Gateway it returns "no_trunk" and places nothing.
// With Outbound.Machine on, an answering machine is hung up on with
// nothing said: survey.Machine. Each result is counted in
// ivr_outbound_calls_total, as the SIP line's calls are.
func (s *Server) SurveyCall(ctx context.Context, number string, flow ivr.FlowRunner) string {
	r := s.surveyCall(ctx, number, flow)
	s.eng.Metrics.Outbound(r)
	return r
}

func (s *Server) surveyCall(ctx context.Context, number string, flow ivr.FlowRunner) string {
	o := s.cfg.Outbound
	if o.Gateway == "" {
		return "no_trunk"
	}
	if !ivr.DialableNumber(number) {
		return "bad_number"
	}
	sock := o.Socket
	if sock == "" {
		sock = s.cfg.Listen
		if a := s.Addr(); a != nil {
			sock = a.String()
		}
	}
	uuid := newUUID()
	p := &placed{flow: flow, claimed: make(chan struct{}), done: make(chan struct{})}
	s.mu.Lock()
	s.placing[uuid] = p
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.placing[uuid] == p {
			// Not connected: should FreeSWITCH still connect it (an
			// originate given up on), it is not served.
			delete(s.placing, uuid)
			if len(s.gaveUp) > 1000 {
				clear(s.gaveUp) // a bound: FreeSWITCH has long ended those
			}
			s.gaveUp[uuid] = true
		}
		s.mu.Unlock()
	}()
	_, err := Originate(ctx, o.Addr, o.Password, OriginateRequest{
		Gateway: o.Gateway, Number: number, CallerID: o.CallerID, Timeout: o.RingTimeout, Socket: sock, UUID: uuid,
	})
	if err != nil {
		r := reasonOfOriginate(err)
		if ctx.Err() != nil {
			r = survey.Cancelled
		}
		s.log.Info("survey call not answered", "call_id", uuid, "reason", r, "err", err)
		return r
	}
	// Answered: its socket connects at once (FreeSWITCH runs &socket as
	// the originate returns).
	t := time.NewTimer(s.cfg.CommandTimeout + s.cfg.LegTimeout)
	defer t.Stop()
	select {
	case <-p.claimed:
	case <-t.C:
		s.log.Warn("survey call answered but its channel never connected to the event socket: check esl.outbound.socket", "call_id", uuid, "socket", sock)
		return survey.Unreachable
	case <-ctx.Done():
		return survey.Cancelled
	}
	select {
	case <-p.done:
		if p.machine {
			return survey.Machine
		}
	case <-ctx.Done():
		s.mu.Lock()
		se := s.channels[uuid]
		s.mu.Unlock()
		if se != nil {
			se.cancel(ivr.End(ivr.EndShutdown, context.Cause(ctx)))
		}
		<-p.done
	}
	return survey.Answered
}

// reasonOfOriginate names why an originate was not answered as
// ivr/survey and dialplan/sip do.
func reasonOfOriginate(err error) string {
	var oe *OriginateError
	if errors.As(err, &oe) {
		switch oe.Cause {
		case "USER_BUSY":
			return survey.Busy
		case "NO_ANSWER", "NO_USER_RESPONSE", "ALLOTTED_TIMEOUT":
			return survey.NoAnswer
		}
		return survey.Rejected
	}
	return survey.Unreachable // the event socket out of reach, auth refused
}

// newUUID is a random (version 4) uuid, the form FreeSWITCH gives its
// channels.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
