package sip

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Limits on calls, defaults. A trunk or a PBX brings every call from one
// address, so the per-source call limit equals the total by default; a
// line that phones call directly lowers it.
const (
	DefaultMaxCalls            = 1500
	DefaultMaxCallsPerSource   = 1500
	DefaultMaxPending          = 200
	DefaultMaxPendingPerSource = 100
	DefaultAckTimeout          = 32 * time.Second // 64*T1, RFC 3261 13.3.1.4
	// overloadRetryAfter is the Retry-After of a 503 beyond a limit.
	overloadRetryAfter = 10
)

// admission counts the calls in progress and the calls not yet
// confirmed by an ACK (INVITE received, no ACK of the 2xx yet), per source
// address and in total, and refuses a new call beyond a limit.
type admission struct {
	maxCalls, maxCallsSrc, maxPend, maxPendSrc int

	mu       sync.Mutex
	calls    int
	pending  int
	bySource map[string]*sourceCount
}

type sourceCount struct{ calls, pending int }

func newAdmission(c Config) *admission {
	return &admission{maxCalls: c.MaxCalls, maxCallsSrc: c.MaxCallsPerSource, maxPend: c.MaxPending, maxPendSrc: c.MaxPendingPerSource,
		bySource: map[string]*sourceCount{}}
}

// admit takes a call slot and a pending slot for a new INVITE from src;
// it returns the limit that refuses it, or "".
func (a *admission) admit(src string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	sc := a.bySource[src]
	if sc == nil {
		sc = &sourceCount{}
	}
	switch {
	case a.calls >= a.maxCalls:
		return "max_calls"
	case sc.calls >= a.maxCallsSrc:
		return "max_calls_per_source"
	case a.pending >= a.maxPend:
		return "max_pending"
	case sc.pending >= a.maxPendSrc:
		return "max_pending_per_source"
	}
	a.bySource[src] = sc
	a.calls++
	a.pending++
	sc.calls++
	sc.pending++
	return ""
}

// confirmed gives back the pending slot of a call from src.
func (a *admission) confirmed(src string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pending--
	if sc := a.bySource[src]; sc != nil {
		sc.pending--
	}
}

// release gives back the call slot (and the pending slot, if still held).
func (a *admission) release(src string, pending bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls--
	sc := a.bySource[src]
	if pending {
		a.pending--
		if sc != nil {
			sc.pending--
		}
	}
	if sc != nil {
		if sc.calls--; sc.calls <= 0 && sc.pending <= 0 {
			delete(a.bySource, src)
		}
	}
}

// guardTx is the server transaction of a new INVITE as diago sees it: it
// holds the call's admission until the ACK of the 2xx (or a final
// failure), ends a call whose 2xx is never acknowledged after the ACK
// timeout, and gives an answer to an offer of several media lines the
// same lines (sdpLayout), the rejected ones with port 0 (RFC 3264 6).
type guardTx struct {
	sip.ServerTransaction
	s      *Server
	src    string
	callID string
	layout *sdpLayout // nil: the offer had one media line

	mu       sync.Mutex
	pending  bool // holds a pending slot (new calls only)
	admitted bool
	patched  *sip.Response
	timer    *time.Timer
	unacked  bool
}

// Respond patches a 2xx answer to a multi-line offer, starts the ACK
// timer on a 2xx to a new INVITE and ends the pending state on a final
// failure.
func (g *guardTx) Respond(res *sip.Response) error {
	if !res.IsProvisional() && res.CSeq() != nil && res.CSeq().MethodName == sip.INVITE {
		g.mu.Lock()
		if res.IsSuccess() {
			if g.layout != nil && g.patched != res && len(res.Body()) > 0 {
				res.SetBody(g.layout.answer(res.Body()))
				g.patched = res
			}
			if g.pending && g.timer == nil {
				g.timer = time.AfterFunc(g.s.cfg.AckTimeout, g.ackTimeout)
			}
		} else {
			g.confirm()
		}
		g.mu.Unlock()
	}
	return g.ServerTransaction.Respond(res)
}

// confirm gives back the pending slot once; g.mu is held.
func (g *guardTx) confirm() {
	if g.pending {
		g.pending = false
		g.s.adm.confirmed(g.src)
	}
	if g.timer != nil {
		g.timer.Stop()
	}
}

// acked is called with the ACK of the 2xx.
func (g *guardTx) acked() {
	g.mu.Lock()
	g.confirm()
	g.mu.Unlock()
}

// ackTimeout ends a call whose 2xx was never acknowledged: the
// transaction ends, so diago's wait for the ACK returns and the call is
// cleaned up (counted in ivr_sip_unacked_invites_total).
func (g *guardTx) ackTimeout() {
	g.mu.Lock()
	fire := g.pending
	g.unacked = fire
	g.mu.Unlock()
	if fire {
		g.s.metrics.SIPUnacked.Add(1)
		g.ServerTransaction.Terminate()
	}
}

// wasUnacked reports whether the ACK timeout ended the call.
func (g *guardTx) wasUnacked() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.unacked
}

// done releases the admission when the INVITE's handler returns.
func (g *guardTx) done() {
	g.mu.Lock()
	pending := g.pending
	g.pending = false
	if g.timer != nil {
		g.timer.Stop()
	}
	g.mu.Unlock()
	if g.admitted {
		g.s.adm.release(g.src, pending)
	}
	g.s.pendingAcks.CompareAndDelete(g.callID, g)
}

// sourceIP is the host part of a request's source address.
func sourceIP(req *sip.Request) string {
	host, _, err := net.SplitHostPort(req.Source())
	if err != nil {
		return req.Source()
	}
	return host
}

// logLimitPeriod is how often one kind of refusal or library message is
// logged at most.
const logLimitPeriod = 10 * time.Second

// allowLog reports whether a log line of key may be written now (and how
// many were held back before it), counting the ones held back.
func (s *Server) allowLog(key string) (bool, int) {
	ok, held := s.limit.Allow(key)
	if !ok {
		s.metrics.LogSuppressed.Add(1)
	}
	return ok, held
}

// refused answers a request the endpoint will not serve, counts it and
// logs it in one short, rate-limited line that quotes nothing from the
// request but its method.
func (s *Server) refused(req *sip.Request, tx sip.ServerTransaction, r *refusal) {
	s.metrics.SIPRefused.Add(r.check)
	if ok, dropped := s.allowLog("refused " + r.check); ok {
		attrs := []any{"status", r.status, "check", r.check, "transport", req.Transport()}
		if knownMethod(req.Method) {
			attrs = append(attrs, "method", req.Method.String())
		}
		if dropped > 0 {
			attrs = append(attrs, "suppressed", dropped)
		}
		s.log.Warn("SIP request refused", attrs...)
	}
	if req.IsAck() {
		return // an ACK is never answered
	}
	res := sip.NewResponseFromRequest(req, r.status, r.reason, nil)
	if r.warn != "" {
		res.AppendHeader(sip.NewHeader("Warning", "399 "+s.cfg.UserAgent+" "+strconv.Quote(r.warn)))
	}
	for _, h := range r.hdrs {
		res.AppendHeader(h)
	}
	_ = tx.Respond(res)
}

func knownMethod(m sip.RequestMethod) bool {
	switch m {
	case sip.INVITE, sip.ACK, sip.CANCEL, sip.BYE, sip.OPTIONS, sip.INFO, sip.REGISTER, sip.REFER, sip.NOTIFY, sip.MESSAGE, sip.SUBSCRIBE, sip.PRACK, sip.UPDATE, sip.PUBLISH:
		return true
	}
	return false
}

// peers are the addresses the endpoint may open a TCP connection to:
// those that connected to it over TCP lately (a TCP source address cannot
// be forged), and the contacts of agents who registered with a valid
// password. A response whose connection is gone goes back to the address
// it came from (RFC 3261 18.2.2), never to another host a Via names, and
// no request can make the endpoint connect to an arbitrary address.
type peers struct {
	ttl time.Duration
	mu  sync.Mutex
	ips map[string]time.Time // until
}

const peerTTL = 10 * time.Minute

func newPeers() *peers { return &peers{ttl: peerTTL, ips: map[string]time.Time{}} }

// seen allows ip until now + ttl (or until, when later).
func (p *peers) seen(ip string, until time.Time) {
	now := time.Now()
	if min := now.Add(p.ttl); until.Before(min) {
		until = min
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.ips) > 4096 {
		for k, u := range p.ips {
			if now.After(u) {
				delete(p.ips, k)
			}
		}
	}
	if p.ips[ip].Before(until) {
		p.ips[ip] = until
	}
}

func (p *peers) allowed(ip string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return time.Now().Before(p.ips[ip])
}

var errNotAPeer = errors.New("sip: refusing to connect: the address is no known peer of the endpoint")

// dialControl vets every TCP connection the SIP stack opens.
func (s *Server) dialControl(_ context.Context, _ string, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err == nil && (s.peers.allowed(host) || s.isTrunk(host)) {
		return nil
	}
	s.metrics.SIPDialsRefused.Add(1)
	if ok, dropped := s.allowLog("dial refused"); ok {
		s.log.Warn("TCP connection not opened: the address is no known peer (a Via or Contact named it)", "addr", address, "suppressed", dropped)
	}
	return errNotAPeer
}

// isTrunk reports whether ip is the outbound trunk's address: the line
// opens its TCP and TLS connections to the trunk itself.
func (s *Server) isTrunk(ip string) bool {
	t := s.out.cfg.Trunk
	if !t.Configured() {
		return false
	}
	a, b := net.ParseIP(ip), net.ParseIP(t.Host)
	return a != nil && a.Equal(b)
}

// errNoDNS is what the SIP stack's resolver answers: the endpoint never
// looks a name up for a request (a Via's or a Contact's host).
var errNoDNS = errors.New("sip: the endpoint does no DNS lookups; use IP addresses")

// readFilter sees every datagram and TCP read before the SIP library
// parses it: it remembers TCP peers and makes RFC 2543 requests
// matchable. It never returns an error (sipgo would stop reading).
func (s *Server) readFilter(p sip.TransportReadProps, data []byte) ([]byte, error) {
	switch p.Transport {
	case "UDP":
		return compat2543(data, p.RemoteAddr, s.parser), nil
	case "TCP":
		if a, ok := p.RemoteAddr.(*net.TCPAddr); ok {
			s.peers.seen(a.IP.String(), time.Time{})
		}
	}
	return data, nil
}

// libraryLog is the SIP libraries' logger: warnings and up, every line
// rate-limited per message, the attributes in which they put headers or
// raw messages replaced, long values cut, and the rest masked (redact).
func (s *Server) libraryLog(h slog.Handler) *slog.Logger {
	return slog.New(levelFilter{h: h, min: slog.LevelWarn, allow: s.allowLog})
}
