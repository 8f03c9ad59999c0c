package sip

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/govline/ivr/ivr/queue"
	"github.com/govline/ivr/limit"
	"github.com/govline/ivr/tickets"
)

// AgentDirectory finds a SIP agent by name (queue.Directory over the
// ticket store). Lookup is called concurrently, once per REGISTER; it
// returns an error wrapping queue.ErrUnknownAgent for a name that is not
// an enabled agent.
type AgentDirectory interface {
	Lookup(ctx context.Context, name string) (queue.Agent, error)
}

// Lockouts keeps the lockouts of agents and source addresses where an
// administrator can lift them (queue.Directory over the ticket store;
// `ivrctl agents unlock`). Both methods are called concurrently, once per
// REGISTER that carries credentials (Locked) or per lockout (Lock).
type Lockouts interface {
	Locked(ctx context.Context, agent, address string) (queue.Lock, bool, error)
	Lock(ctx context.Context, l queue.Lock) error
}

// Auditor appends to the audit log (the ticket store); safe for
// concurrent use.
type Auditor interface {
	Audit(ctx context.Context, e tickets.AuditEntry) error
}

// QueueOutcomes records a queued call's outcome (the ticket store's
// SetCallQueue); safe for concurrent use.
type QueueOutcomes interface {
	SetCallQueue(ctx context.Context, callID string, svc tickets.Service, outcome tickets.QueueOutcome) error
}

// QueueConfig turns on the embedded agent queue: agents REGISTER with the
// endpoint and calls that a flow transfers wait in Queues until an agent
// answers. Queues nil: no REGISTER is accepted and a transfer tells the
// caller the request is registered (the flow's fallback).
type QueueConfig struct {
	Queues *queue.Queues // the queues' settings (and, without Board, their state)
	// Board is where agents and waiting callers are kept: nil is Queues
	// itself (queue.Local, the one engine's memory); queue.Shared keeps
	// them in PostgreSQL for every engine of the line (docs/scale-out.md).
	Board      queue.Board
	Agents     AgentDirectory
	Outcomes   QueueOutcomes // may be nil: outcomes are then only call events
	Realm      string        // digest realm; default DefaultRealm. Agents' HA1 is computed with it.
	MinExpires time.Duration // shortest registration accepted (423 below); default 60 s
	MaxExpires time.Duration // longer registrations are shortened to this; default 1 h

	// Failed digest attempts (docs/operations.md, "Agent registration"):
	// after freeFailures failures in a row, an agent or a source address
	// waits Backoff, doubled after each further failure (503 with
	// Retry-After meanwhile, the digest not even checked); MaxFailures in
	// a row for an agent, AddressMaxFailures for an address, lock it out
	// for Lockout (403), until it ends or an administrator lifts it.
	MaxFailures        int           // default 10
	AddressMaxFailures int           // default 20
	Backoff            time.Duration // default 1 s
	Lockout            time.Duration // default 15 min
	Locks              Lockouts      // nil: lockouts are kept in memory only
	Audit              Auditor       // nil: failures are only logged and counted

	// OnAgent, when set, learns when an agent answers a queued call and
	// when that bridge ends (for the console's screen pop). It is called
	// from the call's goroutine and must return quickly.
	OnAgent func(AgentEvent)

	// Callbacks, with a trunk (Config.Outbound), lets a waiting caller who
	// presses 1 keep their place and be called back (callback.go); nil:
	// pressing 1 leaves the request for a call back by an agent.
	Callbacks CallbackStore
	// Notes, when set, gets a note on the callback's ticket for each
	// attempt that failed and for the callback's end (tickets.Store).
	Notes TicketNotes
}

// TicketNotes appends a note to a ticket's history (tickets.Store.AddNote).
// Safe for concurrent use.
type TicketNotes interface {
	AddNote(ctx context.Context, number, actor, text string) error
}

// AgentEvent is an agent taking a queued call (Ended false) or the end of
// that conversation (Ended true).
type AgentEvent struct {
	Agent  string
	CallID string
	Ticket string
	Queue  string
	Ended  bool
	Talked time.Duration // when Ended
}

// Registration defaults.
const (
	DefaultRealm      = "govline-ivr"
	DefaultMinExpires = 60 * time.Second
	DefaultMaxExpires = time.Hour
	nonceLifetime     = 5 * time.Minute

	DefaultMaxFailures        = 10
	DefaultAddressMaxFailures = 20
	DefaultBackoff            = time.Second
	DefaultLockout            = 15 * time.Minute
	// freeFailures in a row cost nothing (a phone with a stale password
	// tries once or twice); the back-off starts after them.
	freeFailures = 3
)

func (q QueueConfig) withDefaults() QueueConfig {
	if q.Board == nil {
		q.Board = &queue.Local{Q: q.Queues}
	}
	if q.Realm == "" {
		q.Realm = DefaultRealm
	}
	if q.MinExpires <= 0 {
		q.MinExpires = DefaultMinExpires
	}
	if q.MaxExpires <= 0 {
		q.MaxExpires = DefaultMaxExpires
	}
	if q.MaxExpires < q.MinExpires {
		q.MaxExpires = q.MinExpires
	}
	if q.MaxFailures <= 0 {
		q.MaxFailures = DefaultMaxFailures
	}
	if q.AddressMaxFailures <= 0 {
		q.AddressMaxFailures = DefaultAddressMaxFailures
	}
	if q.Backoff <= 0 {
		q.Backoff = DefaultBackoff
	}
	if q.Lockout <= 0 {
		q.Lockout = DefaultLockout
	}
	return q
}

// registrar checks agents' REGISTER requests with RFC 2617 digest
// authentication against the HA1 kept in the store. Nonces are stateless:
// a time stamp and 8 random bytes signed with a per-process key, valid
// nonceLifetime. The random part keeps two challenges of the same second
// apart: the replay check remembers each nonce's highest count, so two
// phones answering one shared nonce with count 1 would see the second
// refused.
type registrar struct {
	cfg QueueConfig
	key [32]byte
	now func() time.Time

	mu   sync.Mutex
	used map[string]nonceUse // nonce -> highest nonce count seen: a replayed Authorization is refused

	// Failed attempts: per "agent:NAME" and "address:IP", in memory (the
	// lockouts they lead to also in Locks).
	fmu      sync.Mutex
	fails    map[string]*failState
	audited  *limit.Every          // refusals while throttled or locked: audited once a minute per agent and address
	lastFrom map[string]string     // agent -> address of its last successful registration
	memLocks map[string]queue.Lock // lockouts when there is no Locks store
}

type failState struct {
	n       int
	last    time.Time
	blocked time.Time // no attempt is checked before this
}

// maxFailStates bounds the failure memory (source addresses of UDP
// requests can be forged): beyond it, stale entries are dropped.
const maxFailStates = 10000

type nonceUse struct {
	nc    int
	until time.Time
}

func newRegistrar(cfg QueueConfig) *registrar {
	r := &registrar{cfg: cfg, now: time.Now, used: map[string]nonceUse{},
		fails: map[string]*failState{}, audited: limit.NewEvery(time.Minute, maxFailStates), lastFrom: map[string]string{}, memLocks: map[string]queue.Lock{}}
	_, _ = rand.Read(r.key[:])
	return r
}

// fresh reports whether (nonce, nc) was not used before, and records it.
// Without qop there is no nonce count: such a nonce serves once.
func (r *registrar) fresh(nonce string, nc int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	for n, u := range r.used {
		if now.After(u.until) {
			delete(r.used, n)
		}
	}
	if u, ok := r.used[nonce]; ok && nc <= u.nc {
		return false
	}
	r.used[nonce] = nonceUse{nc: nc, until: now.Add(nonceLifetime + time.Minute)}
	return true
}

// nonce is "TIME.SALT.SIG": the time in hexadecimal seconds, 8 random
// bytes, and the HMAC of "TIME.SALT" under the process's key.
func (r *registrar) nonce() string {
	var salt [8]byte
	_, _ = rand.Read(salt[:])
	body := strconv.FormatInt(r.now().Unix(), 16) + "." + hex.EncodeToString(salt[:])
	return body + "." + r.sign(body)
}

func (r *registrar) sign(body string) string {
	m := hmac.New(sha256.New, r.key[:])
	m.Write([]byte(body))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// checkNonce reports whether the nonce is ours (ok) and still fresh.
func (r *registrar) checkNonce(n string) (ok, fresh bool) {
	i := strings.LastIndexByte(n, '.')
	if i < 0 {
		return false, false
	}
	body, sig := n[:i], n[i+1:]
	ts, _, found := strings.Cut(body, ".")
	if !found {
		return false, false
	}
	want := r.sign(body)
	if subtle.ConstantTimeCompare([]byte(sig), []byte(want)) != 1 {
		return false, false
	}
	sec, err := strconv.ParseInt(ts, 16, 64)
	if err != nil {
		return false, false
	}
	return true, r.now().Sub(time.Unix(sec, 0)) <= nonceLifetime
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// digestResponse is the expected response of RFC 2617 3.2.2.1 for MD5
// with qop "auth" or no qop.
func digestResponse(ha1, method string, c *digest.Credentials) string {
	ha2 := md5hex(method + ":" + c.URI)
	if c.QOP == "auth" {
		return md5hex(fmt.Sprintf("%s:%s:%08x:%s:%s:%s", ha1, c.Nonce, c.Nc, c.Cnonce, c.QOP, ha2))
	}
	return md5hex(ha1 + ":" + c.Nonce + ":" + ha2)
}

var errBadCredentials = errors.New("bad credentials")

// throttled returns until when the agent's or the address's back-off
// keeps their attempts unchecked (zero: not throttled). An agent's
// back-off does not apply at the address it last registered from, so a
// stranger guessing its password cannot knock its phone off the line.
func (r *registrar) throttled(agent, addr string) time.Time {
	now := r.now()
	r.fmu.Lock()
	defer r.fmu.Unlock()
	var until time.Time
	keys := []string{"address:" + addr}
	if r.lastFrom[agent] != addr {
		keys = append(keys, "agent:"+agent)
	}
	for _, k := range keys {
		if st := r.fails[k]; st != nil && st.blocked.After(now) && st.blocked.After(until) {
			until = st.blocked
		}
	}
	return until
}

// failed counts a failed attempt on key (limit in a row lock it); it
// returns the failures in a row and whether they reached the limit (the
// count then starts again: the lock does the rest).
func (r *registrar) failed(key string, limit int) (int, bool) {
	now := r.now()
	r.fmu.Lock()
	defer r.fmu.Unlock()
	st := r.fails[key]
	if st == nil {
		if len(r.fails) >= maxFailStates {
			for k, v := range r.fails {
				if now.Sub(v.last) > r.cfg.Lockout && now.After(v.blocked) {
					delete(r.fails, k)
				}
			}
		}
		st = &failState{}
		r.fails[key] = st
	}
	if now.Sub(st.last) > r.cfg.Lockout {
		st.n = 0 // an old streak is forgotten
	}
	st.n++
	st.last = now
	n := st.n
	if n >= limit {
		delete(r.fails, key)
		return n, true
	}
	if n >= freeFailures {
		wait := r.cfg.Backoff << min(n-freeFailures, 20)
		st.blocked = now.Add(min(wait, r.cfg.Lockout))
	}
	return n, false
}

// succeeded forgets the failures of the agent and the address and
// remembers where the agent registered from; it returns the address of
// its previous registration.
func (r *registrar) succeeded(agent, addr string) (prev string) {
	r.fmu.Lock()
	defer r.fmu.Unlock()
	delete(r.fails, "agent:"+agent)
	delete(r.fails, "address:"+addr)
	prev = r.lastFrom[agent]
	r.lastFrom[agent] = addr
	return prev
}

// audit writes an audit entry about a registration (never failing the
// REGISTER: a refused write is logged).
func (s *Server) audit(e tickets.AuditEntry) {
	if len(e.User) > 64 {
		e.User = e.User[:64]
	}
	e.Target = "sip"
	if a := s.cfg.Queue.Audit; a != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.Audit(ctx, e); err != nil {
			s.log.Error("audit of a registration failed", "action", e.Action, "err", err)
		}
	}
}

// handleRegister answers one REGISTER: a challenge without credentials
// (or with another scheme than Digest), 503 while the agent's or the
// address's back-off runs, 403 while one of them is locked out and for
// wrong credentials, 423 for too short an expiry, else 200 with the
// binding and its expiry.
func (s *Server) handleRegister(req *sip.Request, tx sip.ServerTransaction) {
	r := s.registrar
	respond := func(code int, reason string, hdrs ...sip.Header) {
		res := sip.NewResponseFromRequest(req, code, reason, nil)
		for _, h := range hdrs {
			res.AppendHeader(h)
		}
		_ = tx.Respond(res)
	}
	challenge := func(stale bool) {
		ch := digest.Challenge{Realm: r.cfg.Realm, Nonce: r.nonce(), Algorithm: "MD5", QOP: []string{"auth"}, Stale: stale}
		respond(401, "Unauthorized", sip.NewHeader("WWW-Authenticate", ch.String()))
	}
	to := req.To()
	if to == nil || to.Address.User == "" {
		s.metrics.SIPRegisterFailures.Add("bad_request")
		respond(400, "Bad Request")
		return
	}
	name := to.Address.User
	h := req.GetHeader("Authorization")
	if h == nil || !strings.HasPrefix(strings.ToLower(strings.TrimSpace(h.Value())), "digest ") {
		challenge(false) // no credentials, or a scheme we do not know (RFC 4475 regaut01)
		return
	}
	cred, err := digest.ParseCredentials(h.Value())
	if err != nil {
		s.metrics.MalformedSIP.Add(1)
		s.metrics.SIPRegisterFailures.Add("bad_request")
		respond(400, "Bad Request")
		return
	}
	if ok, fresh := r.checkNonce(cred.Nonce); !ok || !fresh {
		challenge(ok) // an old nonce of ours: stale, the phone retries silently
		return
	}
	src := sourceIP(req)
	// Throttled: the attempt is not even checked.
	if until := r.throttled(name, src); !until.IsZero() {
		s.metrics.SIPRegisterFailures.Add("backoff")
		if ok, _ := r.audited.Allow("throttled " + name + " " + src); ok {
			s.audit(tickets.AuditEntry{User: name, Action: "sip_register_throttled", Address: src,
				Detail: "attempt not checked: back-off after failed attempts until " + until.Format(time.RFC3339)})
		}
		secs := int(math.Ceil(until.Sub(r.now()).Seconds()))
		respond(503, "Service Unavailable", sip.NewHeader("Retry-After", strconv.Itoa(max(secs, 1))))
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if lock, locked := s.lockedOut(ctx, name, src); locked {
		s.metrics.SIPRegisterFailures.Add("locked")
		if ok, _ := r.audited.Allow("locked " + name + " " + src); ok {
			s.audit(tickets.AuditEntry{User: name, Action: "sip_register_locked", Address: src,
				Detail: fmt.Sprintf("refused: %s %s locked until %s", lock.Kind, lock.Target, lock.Until.Format(time.RFC3339))})
		}
		respond(403, "Forbidden", sip.NewHeader("Warning", "399 "+s.cfg.UserAgent+` "locked out after repeated failed attempts"`))
		return
	}
	agent, err := s.cfg.Queue.Agents.Lookup(ctx, name)
	switch {
	case err == nil && cred.Username == name && cred.Realm == r.cfg.Realm && agent.Realm == r.cfg.Realm &&
		(cred.Algorithm == "" || strings.EqualFold(cred.Algorithm, "MD5")) &&
		subtle.ConstantTimeCompare([]byte(digestResponse(agent.HA1, req.Method.String(), cred)), []byte(cred.Response)) == 1:
	case err != nil && !errors.Is(err, queue.ErrUnknownAgent):
		s.log.Error("agent registration: store lookup failed", "agent", name, "err", err)
		respond(500, "Server Internal Error")
		return
	default:
		s.registerFailed(ctx, name, src, err == nil)
		respond(403, "Forbidden")
		return
	}

	if !r.fresh(cred.Nonce, cred.Nc) {
		challenge(true) // a replayed request, or a phone reusing its count: a new nonce
		return
	}
	prev := r.succeeded(name, src)

	// The binding: one contact per agent (the last registered wins).
	expires := 3600 * time.Second
	if e := req.GetHeader("Expires"); e != nil {
		if n, err := strconv.Atoi(strings.TrimSpace(e.Value())); err == nil && n >= 0 {
			expires = time.Duration(n) * time.Second
		}
	}
	contact := req.Contact()
	if contact != nil {
		if v, ok := contact.Params.Get("expires"); ok {
			if n, err := strconv.Atoi(v); err == nil && n >= 0 {
				expires = time.Duration(n) * time.Second
			}
		}
	}
	if contact == nil {
		// A query: the current binding.
		if c, ok, _ := s.cfg.Queue.Board.Registered(ctx, name); ok {
			respond(200, "OK", sip.NewHeader("Contact", "<"+c+">"))
			return
		}
		respond(200, "OK")
		return
	}
	if contact.Address.Wildcard || expires == 0 {
		if err := s.cfg.Queue.Board.Register(ctx, queue.Agent{Name: name}, "", time.Time{}); err != nil {
			s.log.Error("agent not unregistered", "agent", name, "err", err)
			respond(500, "Server Internal Error")
			return
		}
		s.log.Info("agent unregistered", "agent", name)
		respond(200, "OK")
		return
	}
	if expires < r.cfg.MinExpires {
		respond(423, "Interval Too Brief", sip.NewHeader("Min-Expires", strconv.Itoa(int(r.cfg.MinExpires/time.Second))))
		return
	}
	if expires > r.cfg.MaxExpires {
		expires = r.cfg.MaxExpires
	}
	if _, active, _ := s.cfg.Queue.Board.Registered(ctx, name); active && prev != "" && prev != src {
		// "The last phone to register wins": a registration from
		// another address takes the agent's calls. Say so where the
		// agent and the administrators look.
		s.metrics.SIPNewAddress.Add(1)
		s.log.Warn("agent registered from a new address while registered elsewhere", "agent", name, "address", src, "previous", prev)
		s.audit(tickets.AuditEntry{User: name, Action: tickets.AuditRegisterNewAddress, Address: src, OK: true,
			Detail: "registered from " + src + " while registered from " + prev + ": calls now go to the new address"})
	}
	until := r.now().Add(expires)
	s.peers.seen(src, until)
	if ip := net.ParseIP(contact.Address.Host); ip != nil {
		s.peers.seen(ip.String(), until)
	}
	if err := s.cfg.Queue.Board.Register(ctx, agent, contact.Address.String(), until); err != nil {
		s.log.Error("agent not registered", "agent", name, "err", err)
		respond(500, "Server Internal Error")
		return
	}
	s.log.Info("agent registered", "agent", name, "queues", strings.Join(agent.Queues, ","), "expires", expires)
	secs := strconv.Itoa(int(expires / time.Second))
	respond(200, "OK", sip.NewHeader("Contact", "<"+contact.Address.String()+">;expires="+secs), sip.NewHeader("Expires", secs))
}

// lockedOut reports the lock in force on the agent or the address. The
// agent's own lock does not apply at the address it last registered from.
func (s *Server) lockedOut(ctx context.Context, name, src string) (queue.Lock, bool) {
	r := s.registrar
	agent := name
	r.fmu.Lock()
	if r.lastFrom[name] == src {
		agent = ""
	}
	r.fmu.Unlock()
	if locks := s.cfg.Queue.Locks; locks != nil {
		l, ok, err := locks.Locked(ctx, agent, src)
		if err != nil {
			s.log.Error("agent registration: lockout lookup failed", "err", err)
			return queue.Lock{}, false
		}
		return l, ok
	}
	r.fmu.Lock()
	defer r.fmu.Unlock()
	now := r.now()
	for _, k := range []string{"agent:" + agent, "address:" + src} {
		if l, ok := r.memLocks[k]; ok && now.Before(l.Until) && !strings.HasSuffix(k, ":") {
			return l, true
		}
	}
	return queue.Lock{}, false
}

// registerFailed counts, audits and, at the limit, locks out a failed
// attempt: per source address always, per agent when the name is an
// agent's (unknown names are not remembered one by one).
func (s *Server) registerFailed(ctx context.Context, name, src string, known bool) {
	r := s.registrar
	reason, detail := "unknown_agent", "unknown agent"
	if known {
		reason, detail = "bad_credentials", "wrong password"
	}
	s.metrics.SIPRegisterFailures.Add(reason)
	type target struct {
		kind, name string
		limit      int
	}
	targets := []target{{queue.LockAddress, src, r.cfg.AddressMaxFailures}}
	if known {
		targets = append(targets, target{queue.LockAgent, name, r.cfg.MaxFailures})
	}
	var locks []queue.Lock
	for _, t := range targets {
		n, lock := r.failed(t.kind+":"+t.name, t.limit)
		if t.kind == queue.LockAgent || !known {
			detail += fmt.Sprintf(" (%d in a row)", n)
		}
		if lock {
			locks = append(locks, queue.Lock{Kind: t.kind, Target: t.name, Until: r.now().Add(r.cfg.Lockout), Failures: n})
		}
	}
	s.log.Warn("agent registration refused", "agent", name, "address", src, "reason", reason)
	s.audit(tickets.AuditEntry{User: name, Action: "sip_register_failed", Address: src, Detail: detail})
	for _, l := range locks {
		s.metrics.SIPLockouts.Add(l.Kind)
		s.log.Warn("locked out after repeated failed registrations", "kind", l.Kind, "target", l.Target, "until", l.Until)
		s.audit(tickets.AuditEntry{User: name, Action: "sip_register_lockout", Address: src,
			Detail: fmt.Sprintf("%s %s locked until %s after %d failed attempts", l.Kind, l.Target, l.Until.Format(time.RFC3339), l.Failures)})
		if locks := s.cfg.Queue.Locks; locks != nil {
			if err := locks.Lock(ctx, l); err != nil {
				s.log.Error("agent registration: lockout not stored", "err", err)
			}
		} else {
			r.fmu.Lock()
			r.memLocks[l.Kind+":"+l.Target] = l
			r.fmu.Unlock()
		}
	}
}
