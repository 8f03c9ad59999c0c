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
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/govline/ivr/ivr/queue"
	"github.com/govline/ivr/tickets"
)

// AgentDirectory finds a SIP agent by name (queue.Directory over the
// ticket store). Lookup is called concurrently, once per REGISTER; it
// returns an error wrapping queue.ErrUnknownAgent for a name that is not
// an enabled agent.
type AgentDirectory interface {
	Lookup(ctx context.Context, name string) (queue.Agent, error)
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
	Queues     *queue.Queues
	Agents     AgentDirectory
	Outcomes   QueueOutcomes // may be nil: outcomes are then only call events
	Realm      string        // digest realm; default DefaultRealm. Agents' HA1 is computed with it.
	MinExpires time.Duration // shortest registration accepted (423 below); default 60 s
	MaxExpires time.Duration // longer registrations are shortened to this; default 1 h

	// OnAgent, when set, learns when an agent answers a queued call and
	// when that bridge ends (for the console's screen pop). It is called
	// from the call's goroutine and must return quickly.
	OnAgent func(AgentEvent)
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
)

func (q QueueConfig) withDefaults() QueueConfig {
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
	return q
}

// registrar checks agents' REGISTER requests with RFC 2617 digest
// authentication against the HA1 kept in the store. Nonces are stateless:
// a time stamp signed with a per-process key, valid nonceLifetime.
type registrar struct {
	cfg QueueConfig
	key [32]byte
	now func() time.Time

	mu   sync.Mutex
	used map[string]nonceUse // nonce -> highest nonce count seen: a replayed Authorization is refused
}

type nonceUse struct {
	nc    int
	until time.Time
}

func newRegistrar(cfg QueueConfig) *registrar {
	r := &registrar{cfg: cfg, now: time.Now, used: map[string]nonceUse{}}
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

func (r *registrar) nonce() string {
	ts := strconv.FormatInt(r.now().Unix(), 16)
	m := hmac.New(sha256.New, r.key[:])
	m.Write([]byte(ts))
	return ts + "." + hex.EncodeToString(m.Sum(nil)[:16])
}

// checkNonce reports whether the nonce is ours (ok) and still fresh.
func (r *registrar) checkNonce(n string) (ok, fresh bool) {
	ts, sig, found := strings.Cut(n, ".")
	if !found {
		return false, false
	}
	m := hmac.New(sha256.New, r.key[:])
	m.Write([]byte(ts))
	want := hex.EncodeToString(m.Sum(nil)[:16])
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

// handleRegister answers one REGISTER: a challenge without credentials,
// 403 for wrong ones, 423 for too short an expiry, else 200 with the
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
		respond(400, "Bad Request")
		return
	}
	name := to.Address.User
	h := req.GetHeader("Authorization")
	if h == nil {
		challenge(false)
		return
	}
	cred, err := digest.ParseCredentials(h.Value())
	if err != nil {
		s.metrics.MalformedSIP.Add(1)
		respond(400, "Bad Request")
		return
	}
	if ok, fresh := r.checkNonce(cred.Nonce); !ok || !fresh {
		challenge(ok) // an old nonce of ours: stale, the phone retries silently
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
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
		if err == nil {
			err = errBadCredentials
		}
		s.log.Warn("agent registration refused", "agent", name, "source", req.Source(), "err", err)
		respond(403, "Forbidden")
		return
	}

	if !r.fresh(cred.Nonce, cred.Nc) {
		challenge(true) // a replayed request, or a phone reusing its count: a new nonce
		return
	}

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
		if c, ok := s.cfg.Queue.Queues.Registered(name); ok {
			respond(200, "OK", sip.NewHeader("Contact", "<"+c+">"))
			return
		}
		respond(200, "OK")
		return
	}
	if contact.Address.Wildcard || expires == 0 {
		s.cfg.Queue.Queues.Unregister(name)
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
	s.cfg.Queue.Queues.Register(agent, contact.Address.String(), r.now().Add(expires))
	s.log.Info("agent registered", "agent", name, "queues", strings.Join(agent.Queues, ","), "expires", expires)
	secs := strconv.Itoa(int(expires / time.Second))
	respond(200, "OK", sip.NewHeader("Contact", "<"+contact.Address.String()+">;expires="+secs), sip.NewHeader("Expires", secs))
}
