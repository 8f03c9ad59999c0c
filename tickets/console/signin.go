package console

import (
	"context"
	"errors"
	"math"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govline/ivr/limit"
	"github.com/govline/ivr/tickets"
)

// Sign-in protection defaults (docs/console.md, "Signing in").
const (
	// DefaultHashConcurrency password checks run at once: each takes 19 MiB
	// (argon2id) for about 30 ms, so one at a time checks some 30 sign-ins
	// a second. Measured with 500 concurrent bad sign-ins on ivrd: one at a
	// time peaks at 113 MB of RSS, two at 159 MB.
	DefaultHashConcurrency = 1
	// DefaultHashWait is how long a sign-in waits for its turn before
	// 503 with Retry-After.
	DefaultHashWait = 2 * time.Second
	// DefaultLoginRate sign-ins a minute are allowed per client address
	// (with as many at once); beyond, 429 with Retry-After, before any
	// hashing.
	DefaultLoginRate = 60
)

var (
	// errTooMany: the address used up its sign-ins for now (429).
	errTooMany = errors.New("too many sign-ins from this address; try again later")
	// errBusy: every password check slot stayed taken (503).
	errBusy = errors.New("the console is busy checking passwords; try again in a moment")
)

// retryError says when to try again.
type retryError struct {
	err   error
	after time.Duration
}

func (e *retryError) Error() string { return e.err.Error() }
func (e *retryError) Unwrap() error { return e.err }

// retryAfter is the Retry-After value (whole seconds, at least 1) of err.
func retryAfter(err error) string {
	var re *retryError
	if errors.As(err, &re) {
		return strconv.Itoa(max(1, int(math.Ceil(re.after.Seconds()))))
	}
	return "1"
}

// gate guards the password checks of sign-ins: a token bucket per client
// address (checked first, costs nothing), then a semaphore on the hashing.
// Safe for concurrent use.
type gate struct {
	buckets  *limit.Buckets
	wait     time.Duration
	hashing  chan struct{}
	waiting  atomic.Int32 // sign-ins waiting for a turn at hashing
	mu       sync.Mutex
	outcomes map[string]uint64
}

func newGate(cfg Config) *gate {
	n, wait, perMin := cfg.HashConcurrency, cfg.HashWait, cfg.LoginRate
	if n <= 0 {
		n = DefaultHashConcurrency
	}
	if wait <= 0 {
		wait = DefaultHashWait
	}
	if perMin <= 0 {
		perMin = DefaultLoginRate
	}
	return &gate{buckets: limit.NewBuckets(perMin, 0), wait: wait, hashing: make(chan struct{}, n), outcomes: map[string]uint64{}}
}

func (g *gate) count(outcome string) {
	g.mu.Lock()
	g.outcomes[outcome]++
	g.mu.Unlock()
}

// SignIns returns the sign-in attempts so far by outcome: ok, bad (wrong
// name or password), locked, throttled (429), busy (503), error.
func (c *Console) SignIns() map[string]uint64 {
	c.gate.mu.Lock()
	defer c.gate.mu.Unlock()
	out := make(map[string]uint64, len(c.gate.outcomes))
	for k, v := range c.gate.outcomes {
		out[k] = v
	}
	return out
}

// signIn checks a sign-in: the address's rate first, then a turn at
// hashing (waiting at most the gate's wait), then the store. Refusals
// before the store are audited once a minute per address at most.
func (c *Console) signIn(r *http.Request, name, password string) (tickets.Session, error) {
	addr := clientAddr(r)
	g := c.gate
	if wait, ok := g.buckets.Take(addr, time.Now()); !ok {
		g.count("throttled")
		if ok, _ := c.throttleAudit.Allow(addr); ok {
			c.audit(r.Context(), tickets.AuditEntry{User: name, Action: "login_throttled", Address: addr,
				Detail: "more than the sign-ins a minute allowed from one address"})
		}
		return tickets.Session{}, &retryError{errTooMany, wait}
	}
	t := time.NewTimer(g.wait)
	defer t.Stop()
	g.waiting.Add(1)
	select {
	case g.hashing <- struct{}{}:
		g.waiting.Add(-1)
	case <-t.C:
		g.waiting.Add(-1)
		g.count("busy")
		return tickets.Session{}, &retryError{errBusy, time.Second}
	case <-r.Context().Done():
		g.waiting.Add(-1)
		return tickets.Session{}, r.Context().Err()
	}
	sess, err := c.st.Login(r.Context(), name, password, addr, c.cfg.Login)
	if g.waiting.Load() > 0 {
		// A flood: the check's 19 MiB are garbage now, and the next
		// ones would pile up to the collector's next goal (twice the
		// live heap) before it runs. Measured with 500 concurrent bad
		// sign-ins on ivrd: peak RSS 140-163 MB without this (82 MB
		// idle), 108-109 MB with it; 58-65 of the 500 were checked
		// instead of 69-78 (the collection costs a few ms next to the
		// check's 30).
		runtime.GC()
	}
	<-g.hashing
	switch {
	case err == nil:
		g.count("ok")
	case errors.Is(err, tickets.ErrLocked):
		g.count("locked")
	case errors.Is(err, tickets.ErrBadLogin):
		g.count("bad")
	default:
		g.count("error")
	}
	return sess, err
}

// signInStatus maps a refused sign-in to its HTTP status, or 0.
func signInStatus(err error) int {
	switch {
	case errors.Is(err, errTooMany):
		return http.StatusTooManyRequests
	case errors.Is(err, errBusy):
		return http.StatusServiceUnavailable
	case errors.Is(err, tickets.ErrLocked):
		return http.StatusForbidden
	case errors.Is(err, tickets.ErrBadLogin):
		return http.StatusUnauthorized
	case errors.Is(err, context.Canceled):
		return 499
	}
	return 0
}
