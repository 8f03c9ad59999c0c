package ari

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/govline/ivr/ivr"
)

// OriginateRequest is an outbound call placed through Asterisk (ARI
// POST /channels): Asterisk dials Endpoint and, once answered, puts the
// channel into this application (StasisStart, with Args), where the
// engine serves it as any call.
type OriginateRequest struct {
	Endpoint string        // "PJSIP/0722123456@trunk": the technology, number and trunk as pjsip.conf names them
	CallerID string        // "Name <number>" or a number
	Timeout  time.Duration // ring timeout, default 30 s
	Args     []string      // the StasisStart's args (appArgs)
	// Flow runs on the answered channel; nil: the engine's flow.
	Flow ivr.FlowRunner
}

// OriginateError is an originate that was not answered: the Q.850 cause
// of the channel's ChannelDestroyed (17 busy, 18/19 no answer, 21
// rejected...), or the REST status of a refused request.
type OriginateError struct {
	Cause    int
	CauseTxt string
	Status   int
}

func (e *OriginateError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("ari originate refused: HTTP %d", e.Status)
	}
	return fmt.Sprintf("ari originate not answered: cause %d (%s)", e.Cause, e.CauseTxt)
}

// Busy, NoAnswer classify the cause.
func (e *OriginateError) Busy() bool     { return e.Cause == 17 }
func (e *OriginateError) NoAnswer() bool { return e.Cause == 18 || e.Cause == 19 }

// originates are the channels being originated, waiting for their
// StasisStart or ChannelDestroyed (subscribed before the request is sent).
type originates struct {
	mu     sync.Mutex
	m      map[routeKey]*pending
	gaveUp map[routeKey]bool // originates abandoned before their answer: never served
}

// abandon marks k's channel as given up: if it enters the application
// later it is hung up, not served with the engine's flow.
func (o *originates) abandon(k routeKey) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.gaveUp == nil || len(o.gaveUp) > 1000 {
		o.gaveUp = map[routeKey]bool{} // a bound: Asterisk has long ended those
	}
	o.gaveUp[k] = true
}

// abandoned reports (and forgets) whether k was given up.
func (o *originates) abandoned(k routeKey) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.gaveUp[k] {
		return false
	}
	delete(o.gaveUp, k)
	return true
}

// pending is one originate: the events it waits for, the flow its
// answered channel runs and, when the caller of Originate wants to know
// how the served call ended, sv.
type pending struct {
	events chan *Event
	flow   ivr.FlowRunner
	sv     *served // nil, or told once the answered call ended (or was refused)
}

// served is how an answered originate ended, for the one who placed it.
type served struct {
	done chan struct{} // closed once the answered call ended (or was refused)
	// machine: an answering machine answered and was hung up on with
	// nothing said (Outbound.Machine). Written before done is closed.
	machine bool
}

func newServed() *served { return &served{done: make(chan struct{})} }

func (o *originates) add(k routeKey, flow ivr.FlowRunner, sv *served) chan *Event {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = map[routeKey]*pending{}
	}
	p := &pending{events: make(chan *Event, 2), flow: flow, sv: sv}
	o.m[k] = p
	return p.events
}

func (o *originates) remove(k routeKey) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.m, k)
}

// deliver hands ev to the originate waiting for its channel and returns
// the originate (nil for a channel nobody originates); it never blocks.
func (o *originates) deliver(k routeKey, ev *Event) *pending {
	o.mu.Lock()
	p := o.m[k]
	o.mu.Unlock()
	if p != nil {
		select {
		case p.events <- ev:
		default:
		}
	}
	return p
}

// Originate places a call through the first configured Asterisk and
// waits until it is answered (its StasisStart: the engine then runs the
// flow on it) or ends unanswered (*OriginateError). It returns the
// channel id.
func (s *Server) Originate(ctx context.Context, req OriginateRequest) (string, error) {
	return s.originate(ctx, req, nil)
}

// originate is Originate; sv, when not nil, is told once the answered
// call ended (after its flow returned), or at once when the engine
// refused it.
func (s *Server) originate(ctx context.Context, req OriginateRequest, sv *served) (string, error) {
	if len(s.conns) == 0 {
		return "", errors.New("ari: no Asterisk configured")
	}
	if req.Endpoint == "" || strings.ContainsAny(req.Endpoint, "\r\n") {
		return "", errors.New("ari originate: want an endpoint")
	}
	if req.Timeout <= 0 {
		req.Timeout = 30 * time.Second
	}
	cn := s.conns[0]
	s.mu.Lock()
	s.originateSeq++
	id := fmt.Sprintf("%s-out-%d-%d", cn.cfg.App, time.Now().UnixNano(), s.originateSeq)
	s.mu.Unlock()
	k := routeKey{cn, id}
	events := s.originating.add(k, req.Flow, sv)
	defer s.originating.remove(k)
	q := url.Values{
		"endpoint":  {req.Endpoint},
		"app":       {cn.cfg.App},
		"timeout":   {strconv.Itoa(int(req.Timeout / time.Second))},
		"channelId": {id},
	}
	if len(req.Args) > 0 {
		q.Set("appArgs", strings.Join(req.Args, ","))
	}
	if req.CallerID != "" {
		q.Set("callerId", req.CallerID)
	}
	if err := cn.cl.do(ctx, "", http.MethodPost, "/channels", q, nil, nil); err != nil {
		var ae *Error
		if errors.As(err, &ae) && ae.Status != 0 {
			return "", &OriginateError{Status: ae.Status}
		}
		// No answer to the request (a timeout, a transport error):
		// Asterisk may still carry it out.
		s.giveUp(k)
		return "", err
	}
	wait := time.NewTimer(req.Timeout + s.cfg.RequestTimeout)
	defer wait.Stop()
	for {
		select {
		case ev := <-events:
			switch ev.Type {
			case "StasisStart":
				return id, nil
			case "ChannelDestroyed":
				return id, &OriginateError{Cause: ev.Cause, CauseTxt: ev.CauseTxt}
			}
		case <-wait.C:
			s.giveUp(k)
			return id, &OriginateError{Cause: 19, CauseTxt: "no event within the ring timeout"}
		case <-ctx.Done():
			s.giveUp(k)
			return id, ctx.Err()
		}
	}
}

// giveUp ends an originate nobody waits for any more: the channel is hung
// up (on the caller's goroutine, within the request timeout), and should
// it enter the application anyway it is not served.
func (s *Server) giveUp(k routeKey) {
	s.originating.abandon(k)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
	defer cancel()
	if err := k.cn.cl.do(ctx, "", http.MethodDelete, "/channels/"+url.PathEscape(k.id), nil, nil, nil); err != nil && !isNotFound(err) {
		s.log.Warn("abandoned originate not hung up", "channel", k.id, "err", err)
	}
}
