package sip

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/ivr/queue"
)

// Queued callback (docs/queue.md, "Call me back"): a caller waiting in an
// agent queue presses 1; with a trunk and a CallbackStore configured, their
// place stays in the queue (so it counts in the positions the others hear)
// under a callback recorded in the database, and the call ends. Once the
// place is first in line, the line calls the citizen through the trunk,
// says who calls and about which request, and the answered call waits on
// that same place for the next free agent, who gets the INVITE (and the
// screen pop) as for a live call. A failed attempt leaves the place; the
// retry joins the queue again after the backoff. Pending callbacks are
// taken up again when the line starts (ResumeCallbacks).

// CallbackStore keeps the callbacks (queue.Callbacks). Safe for concurrent
// use.
type CallbackStore interface {
	// Add records a pending callback and returns its id.
	Add(ctx context.Context, cb queue.Callback) (int64, error)
	// Attempted records one attempt's result and the state after it.
	Attempted(ctx context.Context, id int64, reason, state string) error
	// List returns the callbacks in a state, oldest first.
	List(ctx context.Context, state string, limit int) ([]queue.Callback, error)
}

// ErrCallbackKept: the caller who pressed 1 keeps their place and will be
// called back. It wraps ErrLeftRequest too: the flow ends the call as it
// does for a request left for a call back.
var ErrCallbackKept = ivr.ErrCallbackKept

// callbackPoll is how often a kept place looks at its position besides the
// board's changes.
const callbackPoll = 500 * time.Millisecond

// keepPlace records a callback for the caller of c, at the number they
// confirm or type (callbackNumber, reading keys), and hands their place p
// to a keeper; false when callbacks are not configured or there is no
// number the trunk can call.
func (c *call) keepPlace(ctx context.Context, h ivr.Handoff, p queue.Place, keys <-chan rune, ear *waitEar) bool {
	s := c.srv
	store := s.cfg.Queue.Callbacks
	if store == nil || !s.out.cfg.Trunk.Configured() {
		return false
	}
	number := c.callbackNumber(ctx, h.Lang, keys, ear)
	if number == "" {
		return false
	}
	cb := queue.Callback{Queue: h.Queue, Number: number, Lang: h.Lang, Ticket: h.Ticket, CallID: c.tr.Info().ID, Created: time.Now()}
	actx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	id, err := store.Add(actx, cb)
	if err != nil {
		c.tr.Log().Error("callback not recorded: the caller leaves the queue", "err", err)
		return false
	}
	cb.ID, cb.State = id, queue.CallbackPending
	s.metrics.Callback("accepted")
	c.tr.Event("queue.callback", fmt.Sprintf("callback %d keeps the place in %s", id, h.Queue))
	s.startKeeper(cb, p)
	return true
}

// startKeeper runs keep on a goroutine the Server owns (joined by Close).
func (s *Server) startKeeper(cb queue.Callback, p queue.Place) {
	s.keepers.Add(1)
	go func() {
		defer s.keepers.Done()
		defer ivr.Recover(s.metrics, s.log.With("callback", cb.ID), "callback", nil)
		s.keep(cb, p)
	}()
}

// ResumeCallbacks takes up the pending callbacks of the store (after a
// restart): each joins its queue again, oldest first, and calls once the
// endpoint listens. It may be called before Serve. It returns how many.
func (s *Server) ResumeCallbacks(ctx context.Context) (int, error) {
	store := s.cfg.Queue.Callbacks
	if store == nil {
		return 0, nil
	}
	pending, err := store.List(ctx, queue.CallbackPending, 0)
	if err != nil {
		return 0, err
	}
	for _, cb := range pending {
		s.startKeeper(cb, nil)
	}
	if len(pending) > 0 {
		s.log.Info("pending callbacks taken up", "count", len(pending))
	}
	return len(pending), nil
}

// placeID is the id a callback's place has on the board.
func placeID(cb queue.Callback) string { return "callback-" + strconv.FormatInt(cb.ID, 10) }

// keep holds a callback's place until it is first in line, calls the
// citizen, and records each attempt, until the callback is done, failed,
// or the line stops (it stays pending for the next start).
func (s *Server) keep(cb queue.Callback, p queue.Place) {
	ctx := s.life
	store := s.cfg.Queue.Callbacks
	board := s.cfg.Queue.Board
	cfg := s.out.cfg
	log := s.log.With("callback", cb)
	leave := func() {
		if p == nil {
			return
		}
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := p.Settle(lctx, "", true); err != nil {
			log.Warn("callback: place not left", "err", err)
		}
		p = nil
	}
	defer leave()
	record := func(reason OutboundReason, status, attempt int, state string, saved time.Duration) {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := store.Attempted(wctx, cb.ID, string(reason), state); err != nil {
			log.Error("callback attempt not recorded", "reason", reason, "err", err)
		}
		notes := s.cfg.Queue.Notes
		if notes == nil || cb.Ticket == "" {
			return
		}
		text := fmt.Sprintf("callback attempt %d: %s", attempt, reason)
		if reason == OutboundAnswered {
			text += fmt.Sprintf("; the citizen was called back %s after asking, off the line meanwhile", saved.Round(time.Second))
		}
		if status != 0 {
			text += fmt.Sprintf(" (SIP %d)", status)
		}
		if state == queue.CallbackFailed {
			text += "; callback failed, no more attempts"
		}
		if err := notes.AddNote(wctx, cb.Ticket, "ivr", text); err != nil {
			log.Warn("callback attempt not noted on the ticket", "err", err)
		}
	}
	select {
	case <-s.ready: // taken up before Serve (ResumeCallbacks): calls wait for the endpoint
	case <-ctx.Done():
		return
	}
	wait := cfg.Backoff
	attempts := cb.Attempts
	for {
		if p == nil {
			var err error
			if p, err = board.Join(ctx, cb.Queue, placeID(cb)); err != nil {
				if ctx.Err() != nil {
					return
				}
				log.Warn("callback: queue not joined; trying again", "err", err)
				if !sleep(ctx, time.Second) {
					return
				}
				continue
			}
		}
		if !s.firstInLine(ctx, p) {
			return // the line stops: the callback stays pending
		}
		ctx2, cancel := context.WithCancel(ctx)
		res, err := s.Originate(ctx2, OriginateRequest{Number: cb.Number, Flow: callbackFlow{cb: cb}, place: p})
		cancel()
		reason := ReasonOfOutbound(err)
		if err == nil {
			p = nil // the answered call's transfer settled it
			saved := res.Answered.Sub(cb.Created)
			log.Info("callback answered", "attempt", attempts+1, "saved", saved.Round(time.Second))
			record(OutboundAnswered, 0, attempts+1, queue.CallbackDone, saved)
			s.metrics.Callback("completed")
			return
		}
		if reason == OutboundCancelled && ctx.Err() != nil {
			return
		}
		attempts++
		state := queue.CallbackPending
		if !reason.Retryable() || attempts > cfg.Retries {
			state = queue.CallbackFailed
		}
		status := 0
		var oe *OutboundError
		if errors.As(err, &oe) {
			status = oe.Status
		}
		record(reason, status, attempts, state, 0)
		log.Info("callback attempt failed", "reason", reason, "attempt", attempts, "state", state)
		leave()
		if state == queue.CallbackFailed {
			s.metrics.Callback("failed")
			return
		}
		if !sleep(ctx, wait) {
			return
		}
		wait = min(wait*2, cfg.MaxBackoff)
	}
}

// firstInLine waits until p is first in its queue; false when ctx ended.
func (s *Server) firstInLine(ctx context.Context, p queue.Place) bool {
	t := time.NewTicker(callbackPoll)
	defer t.Stop()
	for {
		st, err := p.Look(ctx)
		if err == nil && st.Position == 1 {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-s.cfg.Queue.Board.Changed():
		case <-t.C:
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// callbackCall is an answered callback: its transfer waits on the place
// the callback kept.
type callbackCall struct {
	*call
	place queue.Place
}

var _ ivr.Transferer = callbackCall{}

func (k callbackCall) Transfer(ctx context.Context, h ivr.Handoff) error {
	return k.transferAt(ctx, h, k.place)
}

// callbackFlow is what the citizen hears when they answer a callback: who
// calls and about which request, then the wait for an agent.
type callbackFlow struct{ cb queue.Callback }

func (f callbackFlow) Run(ctx context.Context, facts flows.Facts, ch flows.Channel, _ flows.Services) flows.Outcome {
	cat := flows.DefaultCatalog()
	lang := f.cb.Lang
	if !cat.HasLang(lang) {
		lang = "ro"
	}
	intro, connect := cat.Text(lang, "callback.intro"), cat.Text(lang, "callback.connect")
	parts := []flows.Part{{Kind: flows.PartText, Value: intro, Text: intro}}
	if f.cb.Ticket != "" {
		parts = append(parts, flows.Part{Kind: flows.PartDigits, Value: f.cb.Ticket, Text: f.cb.Ticket})
	}
	parts = append(parts, flows.Part{Kind: flows.PartText, Value: connect, Text: connect})
	if _, err := ch.Say(ctx, flows.Prompt{Lang: lang, Parts: parts}); err != nil {
		return flows.Outcome{Kind: flows.OutcomeCaller, Lang: lang, Err: err}
	}
	return flows.Outcome{Kind: flows.OutcomeTransfer, Queue: f.cb.Queue, Ticket: f.cb.Ticket, Lang: lang, Summary: "callback"}
}
