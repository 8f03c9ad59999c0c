// Package sip makes the engine a SIP endpoint (the embedded default
// telephony): any softphone, SIPp or a SIP trunk calls it directly, no PBX
// needed. It is built on github.com/emiago/diago and github.com/emiago/sipgo.
//
// What it does: INVITE with SDP offer/answer (PCMU, PCMA, Opus;
// telephone-event), 100/180/200, ACK, BYE both ways, CANCEL before answer,
// re-INVITE for hold and codec changes, OPTIONS keepalives, DTMF from RFC
// 4733 events and SIP INFO, an RTP inactivity timeout, and a per-call log of
// the SIP events for telecom administrators. With an agent queue
// (Config.Queue), agents' softphones REGISTER with digest authentication
// and a flow's transfer waits for an agent and bridges the call to them
// (register.go, transfer.go; docs/queue.md).
package sip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/emiago/diago"
	"github.com/emiago/diago/media"
	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/limit"
	"github.com/govline/ivr/redact"
)

// Config of the SIP endpoint. The zero value of a field means its default.
type Config struct {
	Listen      string        // host:port for UDP and TCP, default 127.0.0.1:5060
	MediaIP     string        // address announced in SDP, default the listen host
	RTPPortMin  int           // RTP port range (even ports; RTCP takes the next), default: any free port
	RTPPortMax  int           //
	RTPTimeout  time.Duration // a caller who sends no RTP this long is hung up, default 30 s
	AnswerDelay time.Duration // how long the line rings before it answers, default 0
	JitterDepth int           // packets the jitter buffer holds while waiting for a missing one, default 5
	Codecs      []string      // audio codecs offered answers may use, default PCMU, PCMA, opus
	UserAgent   string        // default "govline-ivr"

	// LegHeader and Legs let another adapter claim an INVITE as the media
	// leg of a call it already controls (dialplan/esl: FreeSWITCH bridges
	// its caller to the engine with this header). Both empty: every
	// INVITE is a call of its own. See Legs.
	LegHeader string
	Legs      Legs

	// Queue turns on the embedded agent queue (agents REGISTER; a flow's
	// transfer waits for an agent). See QueueConfig.
	Queue QueueConfig

	// Outbound is the trunk outbound calls go through and their limits
	// (outbound.go; docs/operations.md, "Outbound calls").
	Outbound OutboundConfig

	// Limits (docs/operations.md, "Limits"): calls in progress and calls
	// not yet confirmed by an ACK, in total and per source address; an
	// INVITE beyond one gets 503 with Retry-After. A 2xx not acknowledged
	// within AckTimeout ends the call.
	MaxCalls            int
	MaxCallsPerSource   int
	MaxPending          int
	MaxPendingPerSource int
	AckTimeout          time.Duration
}

// Defaults.
const (
	DefaultListen      = "127.0.0.1:5060"
	DefaultRTPTimeout  = 30 * time.Second
	DefaultJitterDepth = 5
)

func (c Config) withDefaults() Config {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.RTPTimeout <= 0 {
		c.RTPTimeout = DefaultRTPTimeout
	}
	if c.JitterDepth <= 0 {
		c.JitterDepth = DefaultJitterDepth
	}
	if c.UserAgent == "" {
		c.UserAgent = "govline-ivr"
	}
	for _, l := range []struct {
		v   *int
		def int
	}{{&c.MaxCalls, DefaultMaxCalls}, {&c.MaxCallsPerSource, DefaultMaxCallsPerSource}, {&c.MaxPending, DefaultMaxPending}, {&c.MaxPendingPerSource, DefaultMaxPendingPerSource}} {
		if *l.v <= 0 {
			*l.v = l.def
		}
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = DefaultAckTimeout
	}
	return c
}

var libraryLoggers sync.Once

// Server is the SIP endpoint.
type Server struct {
	cfg     Config
	eng     *ivr.Engine
	metrics *ivr.Metrics
	log     *slog.Logger
	dg      *diago.Diago
	ua      *sipgo.UserAgent

	mu    sync.Mutex
	calls map[string]*entry // by Call-ID
	ready chan struct{}

	sender    *audio.Sender
	registrar *registrar // nil without an agent queue
	out       *outbound  // the trunk and the limits of outbound calls

	// life ends when the endpoint closes: the callbacks' keepers (joined
	// by keepers) stop with it.
	life     context.Context
	stopLife context.CancelFunc
	keepers  sync.WaitGroup

	adm         *admission
	pendingAcks sync.Map     // Call-ID -> *guardTx, until the ACK of its 2xx
	limit       *limit.Every // log lines of refusals and of the SIP libraries
	peers       *peers
	parser      *sip.Parser

	// testHook, set by the tests (export_test.go), is called where a bug
	// could panic on an adapter goroutine: "rtp" for each audio packet of
	// a call, "send" before each of its outbound packets.
	testHook atomic.Pointer[func(where, callID string)]
}

// entry is a call from admission on; call is set once it is answered.
type entry struct {
	tr   *ivr.Tracker
	mu   sync.Mutex
	call *call
}

func (e *entry) answered() *call {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.call
}

// A response as large as its request (RFC 4475 longreq echoes 3 KB of
// headers) goes out over UDP in IP fragments rather than not at all; sipgo
// refuses UDP messages above 1300 bytes by default. Package-wide in sipgo,
// so set before any SIP traffic of the process (in New it raced with the
// SIP phones of tests already running).
//
// The libraries' default loggers are package-wide too: they are set here,
// to a handler that drops everything until the first endpoint gives it
// its own (New), so that no SIP stack of the process ever reads them
// while they are written.
func init() {
	sip.UDPMTUSize = 65535
	l := slog.New(libraryLog)
	sip.SetDefaultLogger(l)
	media.SetDefaultLogger(l)
}

// libraryLog forwards sipgo's and diago's logs to the first endpoint's
// handler once there is one.
var libraryLog = &forwardHandler{target: new(atomic.Pointer[slog.Handler])}

// forwardHandler is a slog.Handler whose destination is set later; until
// then it drops records. With and WithGroup are replayed, in order, on the
// destination.
type forwardHandler struct {
	target *atomic.Pointer[slog.Handler]
	with   []func(slog.Handler) slog.Handler
}

func (f *forwardHandler) handler() slog.Handler {
	h := f.target.Load()
	if h == nil {
		return nil
	}
	out := *h
	for _, w := range f.with {
		out = w(out)
	}
	return out
}

func (f *forwardHandler) Enabled(ctx context.Context, l slog.Level) bool {
	h := f.handler()
	return h != nil && h.Enabled(ctx, l)
}

func (f *forwardHandler) Handle(ctx context.Context, r slog.Record) error {
	if h := f.handler(); h != nil {
		return h.Handle(ctx, r)
	}
	return nil
}

func (f *forwardHandler) then(w func(slog.Handler) slog.Handler) slog.Handler {
	return &forwardHandler{target: f.target, with: append(f.with[:len(f.with):len(f.with)], w)}
}

func (f *forwardHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return f.then(func(h slog.Handler) slog.Handler { return h.WithAttrs(as) })
}

func (f *forwardHandler) WithGroup(name string) slog.Handler {
	return f.then(func(h slog.Handler) slog.Handler { return h.WithGroup(name) })
}

// New builds the endpoint; Serve starts it.
func New(cfg Config, eng *ivr.Engine) (*Server, error) {
	cfg = cfg.withDefaults()
	host, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("sip listen address %q: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 {
		return nil, fmt.Errorf("sip listen address %q: bad port", cfg.Listen)
	}
	if cfg.RTPPortMin > 0 || cfg.RTPPortMax > 0 {
		if cfg.RTPPortMin <= 0 || cfg.RTPPortMax <= cfg.RTPPortMin+1 || cfg.RTPPortMax > 65535 {
			return nil, fmt.Errorf("rtp port range %d-%d is not valid", cfg.RTPPortMin, cfg.RTPPortMax)
		}
		media.RTPPortStart, media.RTPPortEnd = cfg.RTPPortMin, cfg.RTPPortMax
	}
	log := eng.Log.With("component", "sip")
	s := &Server{cfg: cfg, eng: eng, metrics: eng.Metrics, log: log, calls: map[string]*entry{}, ready: make(chan struct{}),
		sender: audio.NewSender(audio.SystemClock{}, 0, &eng.Metrics.PacerSkips),
		adm:    newAdmission(cfg), peers: newPeers(), parser: newParser(), out: newOutbound(cfg.Outbound)}
	s.limit = limit.NewEvery(logLimitPeriod, 256)
	s.life, s.stopLife = context.WithCancel(context.Background())
	// The SIP stack's own logs are diagnostics for us: warnings and up,
	// rate-limited and masked.
	quiet := s.libraryLog(eng.Log.Handler())
	libraryLoggers.Do(func() {
		// Package-wide in sipgo and diago: the first endpoint's, once
		// per process.
		h := quiet.Handler()
		libraryLog.target.Store(&h)
	})

	if cfg.Queue.Queues != nil {
		if cfg.Queue.Agents == nil {
			return nil, errors.New("sip: an agent queue needs an agent directory (QueueConfig.Agents)")
		}
		cfg.Queue = cfg.Queue.withDefaults()
		s.cfg.Queue = cfg.Queue
	}
	// The stack as the line needs it on a public address: no DNS lookup
	// for anything a request names, TCP connections only to known peers
	// (responses go back where requests came from, RFC 3261 18.2.2), RFC
	// 2543 requests made matchable before the transaction layer.
	noDNS := &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		s.metrics.SIPDNSRefused.Add(1)
		return nil, errNoDNS
	}}
	tcp := &sip.TransportTCP{DialerCreate: func(laddr net.Addr) net.Dialer {
		return net.Dialer{Timeout: 10 * time.Second, LocalAddr: laddr, ControlContext: s.dialControl}
	}}
	// TLS only goes out, to a TLS trunk (the line listens on no TLS
	// port): its certificate checked against the system roots and
	// sip.trunk_ca under the name of the trunk (never skipped), the
	// connection vetted as the TCP ones are.
	tlsTr := &sip.TransportTLS{TransportTCP: &sip.TransportTCP{DialerCreate: tcp.DialerCreate}}
	uaOpts := []sipgo.UserAgentOption{sipgo.WithUserAgent(cfg.UserAgent), sipgo.WithUserAgentDNSResolver(noDNS), sipgo.WithUserAgentParser(s.parser),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerReadFilter(s.readFilter),
			sip.WithTransportLayerTransports(sip.TransportsConfig{TCP: tcp, TLS: tlsTr}), sip.WithTransportLayerLogger(quiet)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(quiet))}
	if tr := cfg.Outbound.Trunk; tr.Configured() && tr.transport() == TransportTLS {
		conf, err := cfg.Outbound.TLS.Config(tr)
		if err != nil {
			return nil, fmt.Errorf("sip trunk TLS: %w", err)
		}
		uaOpts = append(uaOpts, sipgo.WithUserAgenTLSConfig(conf))
	}
	ua, err := sipgo.NewUA(uaOpts...)
	if err != nil {
		return nil, err
	}
	s.ua = ua
	sipSrv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(quiet))
	if err != nil {
		return nil, err
	}
	if cfg.Queue.Queues != nil {
		s.registrar = newRegistrar(cfg.Queue)
		sipSrv.OnRegister(s.middleware(s.handleRegister))
	}

	mediaIP := cfg.MediaIP
	if mediaIP == "" {
		mediaIP = host
	}
	var extIP net.IP
	if mediaIP != "" {
		if extIP = net.ParseIP(mediaIP); extIP == nil {
			return nil, fmt.Errorf("media IP %q is not an IP address", mediaIP)
		}
	}
	opts := []diago.DiagoOption{
		diago.WithLogger(quiet),
		diago.WithMediaConfig(diago.MediaConfig{Codecs: offerCodecs(cfg.Codecs)}),
		diago.WithServerRequestMiddleware(s.middleware),
		diago.WithServer(sipSrv),
	}
	for _, tr := range []string{"udp", "tcp"} {
		t := diago.Transport{Transport: tr, BindHost: host, BindPort: port}
		if extIP != nil && !extIP.IsUnspecified() {
			t.MediaExternalIP = extIP
		}
		opts = append(opts, diago.WithTransport(t))
	}
	s.dg = diago.NewDiago(ua, opts...)
	return s, nil
}

// Serve listens on UDP and TCP and serves calls until ctx ends.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.dg.ServeBackground(ctx, s.handle); err != nil {
		return fmt.Errorf("sip listen on %s: %w", s.cfg.Listen, err)
	}
	s.log.Info("SIP endpoint listening", "addr", s.cfg.Listen, "transports", "udp,tcp")
	close(s.ready)
	<-ctx.Done()
	return nil
}

// Ready is closed once the endpoint listens on UDP and TCP.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Close releases the SIP stack and stops the RTP sender.
func (s *Server) Close() error {
	s.stopLife()
	s.keepers.Wait()
	s.sender.Close()
	return s.ua.Close()
}

func (s *Server) lookup(callID string) *entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[callID]
}

// middleware sees every request before diago: it refuses what diago must
// not see (checkRequest), admits new calls within the limits, counts
// requests, logs in-dialog events to their call, follows hold state on
// re-INVITE, reduces an offer of several media lines to its audio line and
// answers SIP INFO DTMF (which diago refuses).
func (s *Server) middleware(next sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		// A panic anywhere below (the SIP stack or a call) must not take
		// the line down: log it with its stack, count it, answer 500 when
		// the request is still unanswered. Deferred call cleanup (the
		// call record's end) has run by then.
		defer ivr.Recover(s.metrics, s.log.With("method", req.Method.String()), "sip request", func(any) {
			_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusInternalServerError, "Server Internal Error", nil))
		})
		s.metrics.SIPRequest(req.Method.String())
		if r := checkRequest(req); r != nil {
			s.refused(req, tx, r)
			return
		}
		e := s.lookup(req.CallID().Value())
		if e == nil && hasToTag(req) && !hasFromTag(req) {
			// No dialog can match a request without a From tag
			// (RFC 3261 12.2.2): diago would answer 400.
			s.refused(req, tx, &refusal{status: 481, reason: "Call/Transaction Does Not Exist", check: "unknown_dialog"})
			return
		}
		switch req.Method {
		case sip.INFO:
			s.handleInfo(e, req, tx)
			return
		case sip.OPTIONS:
			if e == nil && s.eng.Draining() {
				// A balancer's probe (Kamailio's dispatcher) takes this
				// engine out of its set while its calls finish.
				res := sip.NewResponseFromRequest(req, sip.StatusServiceUnavailable, "Service Unavailable", nil)
				res.AppendHeader(sip.NewHeader("Retry-After", "30"))
				_ = tx.Respond(res)
				return
			}
		case sip.ACK:
			if g, ok := s.pendingAcks.Load(req.CallID().Value()); ok {
				g.(*guardTx).acked()
			}
		case sip.INVITE:
			if err := checkSDPLines(req.Body()); err != nil {
				s.metrics.MalformedSIP.Add(1)
				if e != nil {
					e.tr.Event("sip.488", redact.Text(err.Error()))
				}
				_ = tx.Respond(sip.NewResponseFromRequest(req, 488, "Not Acceptable Here", nil))
				return
			}
			g := &guardTx{ServerTransaction: tx, s: s, src: sourceIP(req), callID: req.CallID().Value()}
			if body, layout := reduceOffer(req.Body(), s.cfg.Codecs); layout != nil {
				req.SetBody(body) // diago reads one m= line; the answer gets them all back
				g.layout = layout
			}
			inDialog := hasToTag(req)
			if e != nil && inDialog && !s.reinvite(e, req) {
				_ = tx.Respond(sip.NewResponseFromRequest(req, 488, "Not Acceptable Here", nil))
				return
			}
			if !inDialog {
				if why := s.adm.admit(g.src); why != "" {
					s.metrics.CallEnded(ivr.EndRejected)
					s.refused(req, tx, &refusal{status: 503, reason: "Service Unavailable", warn: "the line is at its limit of calls",
						hdrs: []sip.Header{sip.NewHeader("Retry-After", strconv.Itoa(overloadRetryAfter))}, check: why})
					return
				}
				g.admitted, g.pending = true, true
				// A second INVITE of a Call-ID in progress is refused by
				// the engine; it does not take the first one's place here.
				s.pendingAcks.LoadOrStore(g.callID, g)
				defer g.done()
			}
			tx = g
		case sip.BYE:
			if e != nil {
				e.tr.Event("sip.bye.received", "")
			}
		case sip.CANCEL:
			if e != nil {
				e.tr.Event("sip.cancel", "")
			}
		}
		next(req, tx)
	}
}

func hasFromTag(req *sip.Request) bool {
	from := req.From()
	if from == nil {
		return false
	}
	tag, ok := from.Params.Get("tag")
	return ok && tag != ""
}

func hasToTag(req *sip.Request) bool {
	to := req.To()
	if to == nil {
		return false
	}
	_, ok := to.Params.Get("tag")
	return ok
}

// reinvite follows a re-INVITE before diago applies it; it reports false
// when the offer has no codec we speak (the call keeps its media, RFC 3264
// 8: the answerer refuses the new offer with 488).
func (s *Server) reinvite(e *entry, req *sip.Request) bool {
	body := req.Body()
	if len(body) == 0 {
		e.tr.Event("sip.reinvite", "no SDP (session refresh)")
		return true
	}
	o, err := parseOffer(body, s.cfg.Codecs)
	if err != nil {
		s.metrics.MalformedSIP.Add(1)
		e.tr.Event("sip.reinvite", "offer not usable: "+redact.Text(err.Error()))
		return false
	}
	if c := e.answered(); c != nil {
		hold := int32(0)
		if o.Hold() {
			hold = 1
		}
		c.offeredHold.Store(hold)
	}
	state := "active"
	if o.Hold() {
		state = "hold (" + o.Direction + ")"
	}
	e.tr.Event("sip.reinvite", fmt.Sprintf("%s, codec %s", state, o.Audio.Name))
	return true
}

func (s *Server) handleInfo(e *entry, req *sip.Request, tx sip.ServerTransaction) {
	var c *call
	if e != nil {
		c = e.answered()
	}
	if c == nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
		return
	}
	ct := ""
	if h := req.ContentType(); h != nil {
		ct = h.Value()
	}
	key, err := parseInfoDTMF(ct, req.Body())
	if err != nil {
		s.metrics.MalformedSIP.Add(1)
		e.tr.Event("sip.info.rejected", redact.Text(err.Error()))
		res := sip.NewResponseFromRequest(req, 415, "Unsupported Media Type", nil)
		res.AppendHeader(sip.NewHeader("Accept", "application/dtmf-relay, application/dtmf"))
		_ = tx.Respond(res)
		return
	}
	_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
	c.digit(key, "sip-info")
}

// handle serves one INVITE: admission, offer check, ringing, answer, the
// session, and the end of the call.
func (s *Server) handle(d *diago.DialogServerSession) {
	req := d.InviteRequest
	id := req.CallID().Value()
	if s.cfg.Legs != nil && s.cfg.LegHeader != "" {
		if h := req.GetHeader(s.cfg.LegHeader); h != nil {
			s.serveLeg(d, h.Value())
			return
		}
	}
	received := time.Now()
	info := ivr.CallInfo{ID: id, Telephony: "sip", Caller: d.FromUser(), Called: d.ToUser(), Start: time.Now()}

	tr, err := s.eng.Begin(info)
	if err != nil {
		reason := ivr.ReasonOf(err)
		status := reason.SIPStatus()
		if status == 0 {
			status = 500
		}
		var hdrs []sip.Header
		if status == 503 {
			hdrs = append(hdrs, sip.NewHeader("Retry-After", "30"))
		}
		if ok, dropped := s.allowLog("call refused " + string(reason)); ok {
			s.log.Warn("call refused", "call_id", id, "status", status, "err", redact.Err(err), "suppressed", dropped)
		}
		_ = d.Respond(status, statusText(status), nil, hdrs...)
		return
	}
	e := &entry{tr: tr}
	s.mu.Lock()
	s.calls[id] = e
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.calls, id)
		s.mu.Unlock()
	}()
	defer tr.End(ivr.EndError) // safety net; a no-op once the call ended properly

	tr.Event("sip.invite", fmt.Sprintf("%s from %s", req.Transport(), req.Source()))
	// Late offer (RFC 3261 13.2.1): an INVITE without SDP gets our offer in
	// the 200 OK and brings its answer in the ACK. Some trunks call so.
	late := len(req.Body()) == 0
	var o offer
	if late {
		tr.Event("sip.invite.late-offer", "no SDP in the INVITE: the 200 OK carries the offer")
	} else if o, err = parseOffer(req.Body(), s.cfg.Codecs); err != nil {
		// Refused before the answer: the call counts as rejected (or as
		// no_common_codec, which says more).
		reason := ivr.EndRejected
		if errors.Is(err, ErrNoCommonCodec) {
			reason = ivr.EndNoCommonCodec
		}
		tr.Event("sip.488", redact.Text(err.Error()))
		warn := sip.NewHeader("Warning", fmt.Sprintf("305 %s %q", s.cfg.UserAgent, redact.Text(err.Error())))
		_ = d.Respond(488, "Not Acceptable Here", nil, warn)
		tr.End(reason)
		return
	}
	if err := d.Ringing(); err != nil {
		tr.Event("sip.180.failed", redact.Text(err.Error()))
		tr.End(ivr.EndCancelled)
		return
	}
	tr.Event("sip.180", "")
	if s.cfg.AnswerDelay > 0 {
		t := time.NewTimer(s.cfg.AnswerDelay)
		select {
		case <-t.C:
		case <-d.Context().Done():
			t.Stop()
			tr.Event("sip.487", "cancelled before answer")
			tr.End(ivr.EndCancelled)
			return
		}
	}

	var c *call
	if late {
		c, o, err = s.answerLate(d, tr, e)
	} else {
		c = newCall(s, d, tr, o)
		// Registered before the answer: a re-INVITE may follow the ACK at once.
		e.mu.Lock()
		e.call = c
		e.mu.Unlock()
		err = d.AnswerOptions(diago.AnswerOptions{Codecs: o.Codecs, OnMediaUpdate: c.onMediaUpdate})
		if err != nil && answeredDespite(d, err) {
			tr.Event("sip.answer", "re-INVITE right after the ACK replaced the media session; call goes on")
			err = nil
		}
	}
	if err != nil {
		reason := ivr.EndError
		switch {
		case errors.Is(err, ErrNoCommonCodec):
			reason = ivr.EndNoCommonCodec
		case d.Context().Err() != nil:
			reason = ivr.EndCancelled
		}
		if g, ok := s.pendingAcks.Load(id); ok && g.(*guardTx).wasUnacked() {
			tr.Event("sip.ack.timeout", fmt.Sprintf("no ACK of the 200 OK within %s: call cleaned up", s.cfg.AckTimeout))
		}
		tr.Event("sip.answer.failed", redact.Text(err.Error()))
		if c != nil {
			c.cancel(ivr.End(reason, err))
		}
		if d.LoadState() == sip.DialogStateConfirmed && d.Context().Err() == nil {
			hctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = d.Hangup(hctx)
			cancel()
		}
		tr.End(reason)
		return
	}
	tr.SetMedia(o.Audio.Name, c.rate)
	s.metrics.CallSetup.Observe(time.Since(received) - s.cfg.AnswerDelay)
	tr.Event("sip.200", fmt.Sprintf("codec %s/%d pt %d, telephone-event pt %d", o.Audio.Name, o.Audio.SampleRate, o.Audio.PayloadType, o.DTMF))

	// A cancelled call interrupts a blocked RTP read at once.
	stop := context.AfterFunc(c.ctx, func() {
		if ms := d.MediaSession(); ms != nil {
			_ = ms.StopRTP(1, 0)
		}
	})
	defer stop()
	c.start()
	var served ivr.Call = c
	if s.cfg.Queue.Queues != nil {
		served = queuedCall{c} // transfers wait for an agent
	}
	reason := s.eng.Serve(served, tr)
	c.cancel(ivr.End(reason, nil))
	c.wait()
}

// answerLate answers an INVITE without SDP: our offer goes in the 200 OK
// (diago's media configuration: the configured codecs), the caller's answer
// comes in the ACK, and the call is built from what was agreed.
func (s *Server) answerLate(d *diago.DialogServerSession, tr *ivr.Tracker, e *entry) (*call, offer, error) {
	if err := d.AnswerLate(); err != nil {
		return nil, offer{}, err
	}
	ms := d.MediaSession()
	if ms == nil {
		return nil, offer{}, fmt.Errorf("late offer: no media session after the ACK")
	}
	o, err := agreed(ms.CommonCodecs())
	if err != nil {
		return nil, o, fmt.Errorf("late offer: the answer in the ACK: %w", err)
	}
	c := newCall(s, d, tr, o)
	e.mu.Lock()
	e.call = c
	e.mu.Unlock()
	return c, o, nil
}

// agreed describes the codecs both sides agreed on as an offer.
func agreed(common []media.Codec) (offer, error) {
	o := offer{Direction: "sendrecv"}
	for _, c := range common {
		switch {
		case c.Name == "telephone-event":
			if o.DTMF == 0 {
				o.DTMF = c.PayloadType
			}
		case o.Audio.Name == "":
			o.Audio = c
		}
		o.Codecs = append(o.Codecs, c)
	}
	if o.Audio.Name == "" {
		return o, ErrNoCommonCodec
	}
	return o, nil
}

// offerCodecs is what the line offers when it makes the offer (late
// offer): the allowed audio codecs in preference order, then
// telephone-event.
func offerCodecs(allowed []string) []media.Codec {
	var out []media.Codec
	for _, c := range []media.Codec{media.CodecAudioUlaw, media.CodecAudioAlaw, media.CodecAudioOpus} {
		if codecAllowed(c.Name, allowed) {
			out = append(out, c)
		}
	}
	return append(out, media.CodecTelephoneEvent8000)
}

// answeredDespite reports whether AnswerOptions failed only because a
// re-INVITE that arrived right after the ACK (a phone putting the call on
// hold at once, a PBX refreshing the session) replaced the media session
// before diago started monitoring the first one: diago v0.31.0 then returns
// "rtp session is closed" from the answer although the dialog is confirmed
// and the new media session runs.
func answeredDespite(d *diago.DialogServerSession, err error) bool {
	return strings.Contains(err.Error(), "rtp session is closed") &&
		d.Context().Err() == nil && d.LoadState() == sip.DialogStateConfirmed && d.RTPSession() != nil
}

// onMediaUpdate follows a re-INVITE that diago accepted: the hold state
// offered takes effect, and a new codec rebuilds the encoder and decoder at
// the next packet.
func (c *call) onMediaUpdate(dm *diago.DialogMedia) {
	if h := c.offeredHold.Swap(-1); h >= 0 {
		c.onHold.Store(h == 1)
	}
	ms := dm.MediaSession()
	if ms == nil {
		return
	}
	cur := c.media.Load()
	next := &mediaState{audio: cur.audio, dtmf: cur.dtmf}
	common := ms.CommonCodecs()
	if a, ok := media.CodecAudioFromList(common); ok {
		next.audio = a
	}
	for _, codec := range common {
		if codec.Name == "telephone-event" {
			next.dtmf = codec.PayloadType
		}
	}
	if next.audio != cur.audio || next.dtmf != cur.dtmf {
		c.media.Store(next)
		c.tr.SetMedia(next.audio.Name, c.rate)
		c.tr.Event("media.update", fmt.Sprintf("codec %s pt %d", next.audio.Name, next.audio.PayloadType))
	}
}

func statusText(code int) string {
	switch code {
	case 487:
		return "Request Terminated"
	case 488:
		return "Not Acceptable Here"
	case 503:
		return "Service Unavailable"
	default:
		return "Server Internal Error"
	}
}

// levelFilter passes records at or above min to h, at most one line per
// message per logLimitPeriod, with the attributes that the SIP libraries
// fill with headers or raw messages (From, To, the bytes of a malformed
// message) replaced, long values cut to maxLibraryValue bytes, and every
// other value masked by the one redaction (a parse error quotes the bytes
// it could not read: a Request-URI, a number).
type levelFilter struct {
	h     slog.Handler
	min   slog.Level
	allow func(key string) (ok bool, held int)
}

// maxLibraryValue bounds a library log value (an error that quotes a
// whole message).
const maxLibraryValue = 160

// redactedKeys are attribute keys the SIP libraries use for personal data.
var redactedKeys = map[string]bool{
	"data": true, "msg": true, "req": true, "res": true, "request": true, "response": true,
	"req.from": true, "req.to": true, "from": true, "to": true, "contact": true, "uri": true, "caller": true,
}

func shorten(a slog.Attr) slog.Attr {
	if redactedKeys[strings.ToLower(a.Key)] {
		return slog.String(a.Key, "[redacted]")
	}
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindGroup:
		g := v.Group()
		out := make([]any, len(g))
		for i, x := range g {
			out[i] = shorten(x)
		}
		return slog.Group(a.Key, out...)
	case slog.KindString, slog.KindAny:
		var str string
		if err, ok := v.Any().(error); ok {
			str = err.Error()
		} else if v.Kind() == slog.KindString {
			str = v.String()
		} else {
			str = fmt.Sprint(v.Any())
		}
		if len(str) > maxLibraryValue {
			cut := maxLibraryValue
			for cut > 0 && !utf8.RuneStart(str[cut]) {
				cut--
			}
			str = str[:cut] + "…"
		}
		return slog.String(a.Key, redact.Text(str))
	}
	return slog.Attr{Key: a.Key, Value: v}
}

func (f levelFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.h.Enabled(ctx, l)
}

func (f levelFilter) Handle(ctx context.Context, r slog.Record) error {
	ok, dropped := f.allow("library " + r.Message)
	if !ok {
		return nil
	}
	out := slog.NewRecord(r.Time, r.Level, redact.Text(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(shorten(a))
		return true
	})
	if dropped > 0 {
		out.AddAttrs(slog.Int("suppressed", dropped))
	}
	return f.h.Handle(ctx, out)
}

func (f levelFilter) WithAttrs(as []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(as))
	for i, a := range as {
		red[i] = shorten(a)
	}
	return levelFilter{h: f.h.WithAttrs(red), min: f.min, allow: f.allow}
}

func (f levelFilter) WithGroup(n string) slog.Handler {
	return levelFilter{h: f.h.WithGroup(n), min: f.min, allow: f.allow}
}
