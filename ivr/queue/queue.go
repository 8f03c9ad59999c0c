// Package queue is the engine's own agent queue, used when the engine is
// the SIP endpoint (dialplan/sip): no PBX between the caller and the human
// agents. It knows which agents are registered and free, which callers wait
// in which queue and in what order, and whom to ring next (ring strategy);
// it estimates a caller's expected wait. It does no SIP and no audio:
// dialplan/sip rings the agents it names and bridges the call.
//
// The agents themselves (name, digest secret, queues) live in the ticket
// store: see Directory.
package queue

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/govline/ivr/tickets"
)

// Strategy says whom a queue rings when a caller's turn comes.
type Strategy string

// Ring strategies.
const (
	// LongestIdle rings one agent, the one free for the longest time;
	// when it does not answer within the ring timeout, the next one.
	LongestIdle Strategy = "longest_idle"
	// RingAll rings every free agent of the queue; the first to answer
	// takes the call, the others stop ringing.
	RingAll Strategy = "ring_all"
)

// Defaults.
const (
	DefaultMaxWait       = 5 * time.Minute
	DefaultRingTimeout   = 20 * time.Second
	DefaultRetryDelay    = 5 * time.Second
	DefaultAnnounceEvery = 30 * time.Second
	DefaultHandleTime    = 3 * time.Minute
)

// QueueConfig is one queue.
type QueueConfig struct {
	Strategy Strategy        // default LongestIdle
	MaxWait  time.Duration   // after this a waiting caller is told the request stays open and the call ends; default 5 min
	Service  tickets.Service // recorded with the queue outcome; "" keeps the call's service
}

// Config of the queues. The zero value of a field means its default.
type Config struct {
	Queues        map[string]QueueConfig // by name, e.g. "level1"
	RingTimeout   time.Duration          // how long an agent's phone rings before the next try; default 20 s
	RetryDelay    time.Duration          // an agent who did not answer is not rung again for this long; default 5 s
	AnnounceEvery time.Duration          // comfort prompt (position, expected wait) period; default 30 s
	HandleTime    time.Duration          // expected talk time per call until calls are measured; default 3 min
	Now           func() time.Time       // clock; default time.Now
}

// Validate checks the configuration and names the bad key.
func (c Config) Validate() error {
	if len(c.Queues) == 0 {
		return errors.New("sip.queue.queues: configure at least one queue")
	}
	for name, q := range c.Queues {
		if !ValidQueueName(name) {
			return fmt.Errorf("sip.queue.queues.%s: a queue name is lower case letters, digits, '_' or '-'", name)
		}
		switch q.Strategy {
		case "", LongestIdle, RingAll:
		default:
			return fmt.Errorf("sip.queue.queues.%s.strategy: %q, want %q or %q", name, q.Strategy, LongestIdle, RingAll)
		}
		if q.MaxWait < 0 {
			return fmt.Errorf("sip.queue.queues.%s.max_wait: negative", name)
		}
		if q.Service != "" && !slices.Contains(tickets.Services, q.Service) {
			return fmt.Errorf("sip.queue.queues.%s.service: %q is not one of %v", name, q.Service, tickets.Services)
		}
	}
	for key, d := range map[string]time.Duration{"ring_timeout": c.RingTimeout, "retry_delay": c.RetryDelay, "announce_every": c.AnnounceEvery, "handle_time": c.HandleTime} {
		if d < 0 {
			return fmt.Errorf("sip.queue.%s: negative", key)
		}
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.RingTimeout == 0 {
		c.RingTimeout = DefaultRingTimeout
	}
	if c.RetryDelay == 0 {
		c.RetryDelay = DefaultRetryDelay
	}
	if c.AnnounceEvery == 0 {
		c.AnnounceEvery = DefaultAnnounceEvery
	}
	if c.HandleTime == 0 {
		c.HandleTime = DefaultHandleTime
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	qs := make(map[string]QueueConfig, len(c.Queues))
	for n, q := range c.Queues {
		if q.Strategy == "" {
			q.Strategy = LongestIdle
		}
		if q.MaxWait == 0 {
			q.MaxWait = DefaultMaxWait
		}
		qs[n] = q
	}
	c.Queues = qs
	return c
}

// ErrUnknownQueue is returned by Join for a queue that is not configured.
var ErrUnknownQueue = errors.New("unknown queue")

// Target is an agent to ring: its name and the SIP contact it registered.
type Target struct {
	Agent   string
	Contact string
}

// Queues is the state of every queue and agent of one engine. It is safe
// for concurrent use; no method blocks.
type Queues struct {
	cfg Config

	mu      sync.Mutex
	agents  map[string]*agentState
	waiting map[string][]*Waiter
	changed chan struct{}
	handle  time.Duration // mean talk time, exponentially weighted
}

type agentState struct {
	Agent
	contact    string
	expires    time.Time
	busy       bool // bridged to a caller
	ringing    bool
	idleSince  time.Time
	pauseUntil time.Time
}

// New builds the queues from a validated configuration.
func New(cfg Config) (*Queues, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &Queues{cfg: cfg, agents: map[string]*agentState{}, waiting: map[string][]*Waiter{}, changed: make(chan struct{}), handle: cfg.HandleTime}, nil
}

// Settings returns the effective configuration (defaults filled in).
func (q *Queues) Settings() Config { return q.cfg }

// Queue returns the configuration of queue name.
func (q *Queues) Queue(name string) (QueueConfig, bool) {
	c, ok := q.cfg.Queues[name]
	return c, ok
}

// Changed returns a channel closed at the next change of an agent or a
// waiting list; take it again after it fires.
func (q *Queues) Changed() <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.changed
}

func (q *Queues) notifyLocked() {
	close(q.changed)
	q.changed = make(chan struct{})
}

// Register records (or refreshes) an agent's registration at contact until
// expires; an expiry not after now removes it.
func (q *Queues) Register(a Agent, contact string, expires time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.cfg.Now()
	if !expires.After(now) {
		delete(q.agents, a.Name)
		q.notifyLocked()
		return
	}
	st, ok := q.agents[a.Name]
	if !ok || !st.expires.After(now) {
		st = &agentState{idleSince: now}
		if ok {
			st.busy, st.ringing = q.agents[a.Name].busy, q.agents[a.Name].ringing
		}
		q.agents[a.Name] = st
	}
	st.Agent, st.contact, st.expires = a, contact, expires
	q.notifyLocked()
}

// Unregister removes an agent's registration.
func (q *Queues) Unregister(name string) {
	q.Register(Agent{Name: name}, "", time.Time{})
}

// Registered reports whether agent name has a registration that has not
// expired, and its contact.
func (q *Queues) Registered(name string) (contact string, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	st, found := q.agents[name]
	if !found || !st.expires.After(q.cfg.Now()) {
		return "", false
	}
	return st.contact, true
}

// AgentStatus is an agent as the queue sees it.
type AgentStatus struct {
	Name    string
	Queues  []string
	State   string // "idle", "ringing", "busy"
	Expires time.Time
}

// Agents lists the registered agents, by name.
func (q *Queues) Agents() []AgentStatus {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.cfg.Now()
	var out []AgentStatus
	for _, st := range q.agents {
		if !st.expires.After(now) {
			continue
		}
		s := AgentStatus{Name: st.Name, Queues: st.Queues, State: "idle", Expires: st.expires}
		switch {
		case st.busy:
			s.State = "busy"
		case st.ringing:
			s.State = "ringing"
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Waiter is one caller waiting in a queue. Its methods are safe for
// concurrent use; Leave must be called once the caller is bridged or gone.
type Waiter struct {
	q      *Queues
	queue  string
	id     string
	joined time.Time
	claim  []string // agents being rung for this caller
	left   bool
}

// Join puts a caller (id: the call id) at the end of queue name.
func (q *Queues) Join(name, id string) (*Waiter, error) {
	if _, ok := q.cfg.Queues[name]; !ok {
		return nil, fmt.Errorf("queue %q: %w", name, ErrUnknownQueue)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	w := &Waiter{q: q, queue: name, id: id, joined: q.cfg.Now()}
	q.waiting[name] = append(q.waiting[name], w)
	q.notifyLocked()
	return w, nil
}

// Queue is the name of the queue the caller waits in.
func (w *Waiter) Queue() string { return w.queue }

// Position is the caller's place in its queue, 1 for the next one served;
// 0 once it left.
func (w *Waiter) Position() int {
	w.q.mu.Lock()
	defer w.q.mu.Unlock()
	return w.positionLocked()
}

func (w *Waiter) positionLocked() int {
	for i, o := range w.q.waiting[w.queue] {
		if o == w {
			return i + 1
		}
	}
	return 0
}

// ExpectedWait estimates how long the caller still waits: the callers
// ahead of it shared among the queue's registered agents, each taking the
// measured mean talk time.
func (w *Waiter) ExpectedWait() time.Duration {
	q := w.q
	q.mu.Lock()
	defer q.mu.Unlock()
	pos := w.positionLocked()
	if pos == 0 {
		return 0
	}
	now := q.cfg.Now()
	agents := 0
	for _, st := range q.agents {
		if st.expires.After(now) && st.Serves(w.queue) {
			agents++
		}
	}
	return expectedWait(pos, agents, q.handle)
}

// expectedWait is the wait of the caller at position pos of a queue that
// agents answer: the callers ahead shared among them, each taking handle.
func expectedWait(pos, agents int, handle time.Duration) time.Duration {
	if pos == 0 {
		return 0
	}
	agents = max(agents, 1)
	rounds := (pos + agents - 1) / agents
	return time.Duration(rounds) * handle
}

// Claim returns the agents to ring for this caller now, marked as ringing,
// or nothing when it is not the caller's turn (a caller ahead has no agent
// ringing yet), no agent of the queue is free, or the caller already has
// agents ringing. Release them with Unclaim.
func (w *Waiter) Claim() []Target {
	q := w.q
	q.mu.Lock()
	defer q.mu.Unlock()
	if w.left || len(w.claim) > 0 {
		return nil
	}
	for _, o := range q.waiting[w.queue] {
		if o == w {
			break
		}
		if len(o.claim) == 0 {
			return nil // a caller ahead is served first
		}
	}
	now := q.cfg.Now()
	var free []*agentState
	for _, st := range q.agents {
		if st.expires.After(now) && st.Serves(w.queue) && !st.busy && !st.ringing && !now.Before(st.pauseUntil) {
			free = append(free, st)
		}
	}
	if len(free) == 0 {
		return nil
	}
	sort.Slice(free, func(i, j int) bool {
		if !free[i].idleSince.Equal(free[j].idleSince) {
			return free[i].idleSince.Before(free[j].idleSince)
		}
		return free[i].Name < free[j].Name
	})
	if q.cfg.Queues[w.queue].Strategy == LongestIdle {
		free = free[:1]
	}
	out := make([]Target, len(free))
	for i, st := range free {
		st.ringing = true
		w.claim = append(w.claim, st.Name)
		out[i] = Target{Agent: st.Name, Contact: st.contact}
	}
	q.notifyLocked()
	return out
}

// Unclaim ends the ringing of the caller's claimed agents. answered names
// the agent who took the call (now busy until Done), or is "" when none
// did; the others rest RetryDelay before they ring again.
func (w *Waiter) Unclaim(answered string) {
	q := w.q
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.cfg.Now()
	for _, name := range w.claim {
		st, ok := q.agents[name]
		if !ok {
			continue
		}
		st.ringing = false
		if name == answered {
			st.busy = true
		} else if answered == "" {
			st.pauseUntil = now.Add(q.cfg.RetryDelay)
		}
	}
	w.claim = nil
	q.notifyLocked()
}

// Leave takes the caller out of its queue (bridged, hung up or timed out).
// Agents still ringing for it are released (a caller who hangs up while
// phones ring leaves no agent marked ringing). It is safe to call more
// than once.
func (w *Waiter) Leave() {
	q := w.q
	q.mu.Lock()
	defer q.mu.Unlock()
	if w.left {
		return
	}
	w.left = true
	for _, name := range w.claim {
		if st, ok := q.agents[name]; ok {
			st.ringing = false
		}
	}
	w.claim = nil
	list := q.waiting[w.queue]
	for i, o := range list {
		if o == w {
			q.waiting[w.queue] = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	q.notifyLocked()
}

// Done frees an agent after a bridged call that lasted talked; the talk
// time feeds the expected-wait estimate.
func (q *Queues) Done(agent string, talked time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if talked > 0 {
		q.handle = (q.handle*7 + talked) / 8
	}
	if st, ok := q.agents[agent]; ok {
		st.busy = false
		st.idleSince = q.cfg.Now()
	}
	q.notifyLocked()
}

// Waiting returns how many callers wait in queue name.
func (q *Queues) Waiting(name string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.waiting[name])
}
