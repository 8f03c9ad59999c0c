package queue

import (
	"context"
	"time"
)

// The agent queue's shared state, as engines must agree on it when several
// serve one line: which agents are present and free, which callers wait in
// which order, which agent rings for which caller. Three small interfaces,
// with two implementations that pass the same conformance kit
// (ivr/queue/queuetest): Local, the one engine's memory (Queues: the
// embedded line on SQLite, nothing to configure), and Shared, where
// PostgreSQL decides (row locks, SKIP LOCKED, LISTEN/NOTIFY) for every
// engine sharing it.

// Roster is who answers calls: the agents present, across engines. All
// methods are safe for concurrent use by every call and REGISTER of the
// engine.
type Roster interface {
	// Register records (or refreshes) an agent's registration at contact
	// until until; an until not after now removes it. An agent that was
	// ringing or talking stays so.
	Register(ctx context.Context, a Agent, contact string, until time.Time) error
	// Registered reports the contact of an agent whose registration has not
	// expired.
	Registered(ctx context.Context, agent string) (contact string, ok bool, err error)
	// Done frees an agent after a conversation that lasted talked (which
	// feeds the expected wait).
	Done(ctx context.Context, agent string, talked time.Duration) error
}

// Line is where callers wait. Join is safe for concurrent use; Changed's
// channel is closed (for every reader) at the next change of an agent or a
// waiting list, on any engine: take it again after it fires.
type Line interface {
	Join(ctx context.Context, queue, callID string) (Place, error)
	Changed() <-chan struct{}
}

// Place is one caller's place in a queue, from Join until Settle leaves.
// Its methods are called by the caller's own goroutine; none may be called
// after Settle with leave.
type Place interface {
	// Look returns the caller's standing now: its position (1 is served
	// next; callers on every engine count) and its expected wait.
	Look(ctx context.Context) (Standing, error)
	// Claim returns the agents to ring for this caller now, marked as
	// ringing so that no other caller gets them, or nothing when it is not
	// the caller's turn (a caller ahead has no agent ringing yet), no agent
	// of the queue is free, or this caller has agents ringing already.
	Claim(ctx context.Context) ([]Target, error)
	// Settle ends the ringing of the caller's claimed agents: answered
	// names the agent who took the call (busy until Roster.Done); with
	// answered "" the others rest RetryDelay before they ring again. leave
	// also takes the caller out of its queue (bridged, hung up, timed out).
	Settle(ctx context.Context, answered string, leave bool) error
}

// Standing is a caller's place as Look sees it.
type Standing struct {
	Position int           // 1 for the next caller served; 0 once it left
	Wait     time.Duration // expected wait (ExpectedWait)
}

// Board is a queue's shared state: the agents and the callers.
type Board interface {
	Roster
	Line
}

var (
	_ Board = (*Local)(nil)
	_ Place = localPlace{}
)

// Local is the Board of one engine: its Queues, in memory, as the embedded
// line has always kept them. Safe for concurrent use; no method blocks or
// fails.
type Local struct {
	Q *Queues
}

// Register implements Roster.
func (l *Local) Register(_ context.Context, a Agent, contact string, until time.Time) error {
	l.Q.Register(a, contact, until)
	return nil
}

// Registered implements Roster.
func (l *Local) Registered(_ context.Context, agent string) (string, bool, error) {
	c, ok := l.Q.Registered(agent)
	return c, ok, nil
}

// Done implements Roster.
func (l *Local) Done(_ context.Context, agent string, talked time.Duration) error {
	l.Q.Done(agent, talked)
	return nil
}

// Join implements Line.
func (l *Local) Join(_ context.Context, queue, callID string) (Place, error) {
	w, err := l.Q.Join(queue, callID)
	if err != nil {
		return nil, err
	}
	return localPlace{w}, nil
}

// Changed implements Line.
func (l *Local) Changed() <-chan struct{} { return l.Q.Changed() }

type localPlace struct{ w *Waiter }

func (p localPlace) Look(context.Context) (Standing, error) {
	return Standing{Position: p.w.Position(), Wait: p.w.ExpectedWait()}, nil
}

func (p localPlace) Claim(context.Context) ([]Target, error) { return p.w.Claim(), nil }

func (p localPlace) Settle(_ context.Context, answered string, leave bool) error {
	p.w.Unclaim(answered)
	if leave {
		p.w.Leave()
	}
	return nil
}
