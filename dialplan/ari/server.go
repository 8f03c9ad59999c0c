// Package ari connects the engine to Asterisk as an ARI (Asterisk REST
// Interface) application: the telephony adapter selected with
// IVR_TELEPHONY=ari.
//
// Asterisk keeps the trunks, numbers, queues and agents' phones; its
// dialplan sends incoming calls to Stasis(ivr). For each call the adapter,
// on StasisStart: answers the channel, opens a UDP port for RTP, creates a
// mixing bridge and an ExternalMedia channel whose RTP (ulaw at 8 kHz or
// slin16 at 16 kHz, big-endian signed linear as Asterisk sends it) comes to
// that port, puts both channels in the bridge, and hands the call to the
// engine as an ivr.Call. DTMF comes from ChannelDtmfReceived events; the
// call ends on ChannelHangupRequest, StasisEnd or ChannelDestroyed (with
// the cause), or when the engine hangs up. A handoff (ivr.Transferer) sets
// the channel variables IVR_TICKET, IVR_LANG, IVR_SUMMARY and IVR_QUEUE and
// continues the channel in the dialplan (where a Queue() waits) or
// redirects it to an endpoint. Whatever happens, the ExternalMedia
// channel, the bridge and the RTP port of a call are freed when it ends.
//
// The engine's own calls (Originate; the survey calls, SurveyCall) are
// originated into the application (POST /channels) and, once answered,
// served as above, with the flow they were placed for.
//
// The WebSocket to each Asterisk is kept up with exponential backoff and
// full jitter; connecting it registers the application again. After a
// reconnect the adapter asks Asterisk for every channel it holds: calls
// whose channels are gone (Asterisk restarted) end with their records.
//
// Every ARI event received for a call and every ARI request sent for it
// (method, path, status, duration) goes into the call's event log (kinds
// "ari.event" and "ari.request", JSON details with channel and bridge ids),
// what `ivrctl calls show` prints. Credentials are sent in the
// Authorization header only and appear in no log, URL or event.
//
// Why not github.com/CyCoreSystems/ari/v6 (read at 681c62bc07e7, the v6
// head): its native client has no request timeout (RequestTimeout is
// declared but never used) and no context on requests, so a slow Asterisk
// blocks a call forever; it reconnects with a fixed one-second sleep and
// an unsynchronized "connected" flag, and tells nobody it reconnected, so
// calls lost while it was down cannot be reconciled; its event bus drops
// events for a subscriber more than 100 behind (a StasisEnd among them);
// ExternalMedia discards Asterisk's answer (the UNICASTRTP_LOCAL_ADDRESS
// and _PORT variables that say where to send RTP); and its HTTP client is
// an unexported field, so requests cannot be timed or logged per call.
// This package speaks ARI's documented REST paths and WebSocket events
// directly (net/http and github.com/coder/websocket), in about 1000 lines.
package ari

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/ivr/amd"
)

// Config of the ARI adapter. The zero value of a field means its default.
type Config struct {
	Servers []ServerConfig // at least one

	// RTPAddress is the IP address the engine listens on for the
	// ExternalMedia RTP and offers to Asterisk as external_host. Default
	// 127.0.0.1 (Asterisk on the same machine).
	RTPAddress string
	RTPPortMin int // RTP port range; default any free port
	RTPPortMax int
	// Format of the ExternalMedia channel: "ulaw" (8 kHz, default) or
	// "slin16" (16 kHz linear, better for speech recognition).
	Format      string
	RTPTimeout  time.Duration // no RTP from Asterisk this long ends the call; default 30 s
	JitterDepth int           // default 5 packets

	RequestTimeout time.Duration // bound on every ARI request; default 5 s
	ReconnectMin   time.Duration // first reconnect delay; default 500 ms
	ReconnectMax   time.Duration // longest reconnect delay; default 30 s
	PingInterval   time.Duration // WebSocket ping to detect a dead peer; default 10 s
	// ReapInterval is how often the adapter looks for ExternalMedia
	// channels and bridges of its application that no call owns (left by
	// a crash of the engine, or created by a request that timed out) and
	// removes them; also done on every (re)connect. Default 1 min.
	ReapInterval time.Duration

	Handoff HandoffConfig

	// Outbound says how the engine's own calls (the survey calls) are
	// dialled through Asterisk.
	Outbound OutboundConfig
}

// OutboundConfig is how Asterisk dials the engine's own calls.
type OutboundConfig struct {
	// Endpoint is the dial string with {number} where the number goes,
	// as pjsip.conf names the trunk: "PJSIP/{number}@trunk". Empty: the
	// engine places no calls through Asterisk.
	Endpoint string
	// CallerID shown to the called citizen: "Name <number>" or a number;
	// empty leaves the trunk's.
	CallerID    string
	RingTimeout time.Duration // default 30 s
	// Machine turns on answering machine detection (package ivr/amd):
	// an answered originated channel is listened to before the flow
	// starts, and one a machine answered is hung up on with nothing
	// said (the survey call's result is "machine"). Off in the zero value.
	Machine amd.Config
}

// ServerConfig is one Asterisk server.
type ServerConfig struct {
	URL      string // http://host:8088 (the /ari prefix is added when missing)
	User     string // ari.conf user
	Password string // never logged
	App      string // Stasis application name, default "ivr"
}

// LogValue keeps the password out of every log.
func (s ServerConfig) LogValue() slog.Value {
	return slog.GroupValue(slog.String("url", s.URL), slog.String("user", s.User), slog.String("app", s.App))
}

// HandoffConfig says where a call handed to agents goes.
type HandoffConfig struct {
	// Mode is "continue" (default: the channel leaves the application
	// and continues in the dialplan at Context, Extension, Priority) or
	// "redirect" (the channel is redirected to Endpoint).
	Mode     string
	Context  string // default "ivr-handoff"
	Priority int    // default 1
	// Extension in Context; empty (the default) means the handoff's
	// queue name, so each agent queue is one extension of the context.
	Extension string
	Endpoint  string // for redirect, e.g. "PJSIP/agent100"
}

// Defaults.
const (
	DefaultApp            = "ivr"
	DefaultRTPAddress     = "127.0.0.1"
	DefaultFormat         = "ulaw"
	DefaultRTPTimeout     = 30 * time.Second
	DefaultJitterDepth    = 5
	DefaultRequestTimeout = 5 * time.Second
	DefaultReconnectMin   = 500 * time.Millisecond
	DefaultReconnectMax   = 30 * time.Second
	DefaultPingInterval   = 10 * time.Second
	DefaultReapInterval   = time.Minute
	DefaultHandoffContext = "ivr-handoff"
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,80}$`)

func (c Config) withDefaults() (Config, error) {
	if len(c.Servers) == 0 {
		return c, errors.New("ari: no Asterisk server configured (ari.url)")
	}
	servers := make([]ServerConfig, len(c.Servers))
	for i, s := range c.Servers {
		if s.App == "" {
			s.App = DefaultApp
		}
		if !nameRE.MatchString(s.App) {
			return c, fmt.Errorf("ari: application name %q: use letters, digits, '.', '-', '_'", s.App)
		}
		u, err := url.Parse(s.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return c, fmt.Errorf("ari: url %q: want http://host:port or https://host:port", redactURL(s.URL))
		}
		if u.User != nil {
			// Credentials in the URL are taken out: they belong in
			// user and password, and URLs get logged.
			if s.User == "" {
				s.User = u.User.Username()
			}
			if p, ok := u.User.Password(); ok && s.Password == "" {
				s.Password = p
			}
			u.User = nil
		}
		u.Path = strings.TrimSuffix(u.Path, "/")
		if !strings.HasSuffix(u.Path, "/ari") {
			u.Path += "/ari"
		}
		u.RawQuery, u.Fragment = "", ""
		s.URL = u.String()
		if s.User == "" || s.Password == "" {
			return c, fmt.Errorf("ari: server %s: user and password are required (ari.conf)", s.URL)
		}
		servers[i] = s
	}
	c.Servers = servers
	if c.RTPAddress == "" {
		c.RTPAddress = DefaultRTPAddress
	}
	ip := net.ParseIP(c.RTPAddress)
	if ip == nil || ip.IsUnspecified() {
		return c, fmt.Errorf("ari: rtp address %q: want the IP address Asterisk sends RTP to", c.RTPAddress)
	}
	if c.RTPPortMin > 0 || c.RTPPortMax > 0 {
		if c.RTPPortMin <= 0 || c.RTPPortMax < c.RTPPortMin || c.RTPPortMax > 65535 {
			return c, fmt.Errorf("ari: rtp port range %d-%d is not valid", c.RTPPortMin, c.RTPPortMax)
		}
	}
	if c.Format == "" {
		c.Format = DefaultFormat
	}
	if _, err := formatByName(c.Format); err != nil {
		return c, err
	}
	if c.RTPTimeout <= 0 {
		c.RTPTimeout = DefaultRTPTimeout
	}
	if c.JitterDepth <= 0 {
		c.JitterDepth = DefaultJitterDepth
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.ReconnectMin <= 0 {
		c.ReconnectMin = DefaultReconnectMin
	}
	if c.ReconnectMax < c.ReconnectMin {
		c.ReconnectMax = max(DefaultReconnectMax, c.ReconnectMin)
	}
	if c.PingInterval <= 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.ReapInterval <= 0 {
		c.ReapInterval = DefaultReapInterval
	}
	if o := c.Outbound; o.Endpoint != "" && (!strings.Contains(o.Endpoint, "{number}") || strings.ContainsAny(o.Endpoint+o.CallerID, "\r\n")) {
		return c, fmt.Errorf("ari: outbound endpoint %q: want a dial string with {number}, e.g. PJSIP/{number}@trunk", o.Endpoint)
	}
	h := &c.Handoff
	switch h.Mode {
	case "", "continue":
		h.Mode = "continue"
		if h.Context == "" {
			h.Context = DefaultHandoffContext
		}
		if h.Priority <= 0 {
			h.Priority = 1
		}
	case "redirect":
		if h.Endpoint == "" {
			return c, errors.New("ari: handoff mode redirect needs an endpoint (e.g. PJSIP/agents)")
		}
	default:
		return c, fmt.Errorf("ari: handoff mode %q: want continue or redirect", h.Mode)
	}
	return c, nil
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// Server is the ARI application on one or more Asterisk servers.
type Server struct {
	cfg     Config
	eng     *ivr.Engine
	log     *slog.Logger
	metrics *Metrics
	format  mediaFormat
	conns   []*conn
	sender  *audio.Sender // while Serve runs

	mu      sync.Mutex
	calls   map[routeKey]*call // by caller channel, ExternalMedia channel and bridge id
	ports   map[int]bool       // RTP ports in use (with a port range)
	stopped bool

	ready     chan struct{}
	readyOnce sync.Once
	callCtx   context.Context // parent of every call's goroutine; ends when Serve returns
	stopCalls context.CancelFunc
	wg        sync.WaitGroup // call goroutines

	originating  originates // calls being originated (originate.go)
	originateSeq int        // under mu

	// testHook, set by the tests, is called where a bug could panic on
	// an adapter goroutine: "rtp" for each audio packet of a call,
	// "send" before each of its outbound packets, "call" when a call's
	// goroutine starts its set-up.
	testHook atomic.Pointer[func(where, callID string)]
}

// Validate checks the configuration as New does, without building anything.
func (c Config) Validate() error {
	_, err := c.withDefaults()
	return err
}

// New validates the configuration and builds the adapter; Serve runs it.
func New(cfg Config, eng *ivr.Engine) (*Server, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	f, _ := formatByName(cfg.Format)
	s := &Server{
		cfg: cfg, eng: eng, format: f,
		log:     eng.Log.With("component", "ari"),
		metrics: newMetrics(),
		calls:   map[routeKey]*call{},
		ports:   map[int]bool{},
		ready:   make(chan struct{}),
	}
	s.callCtx, s.stopCalls = context.WithCancel(context.Background())
	httpc := &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: cfg.RequestTimeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}}
	for _, sc := range cfg.Servers {
		u, _ := url.Parse(sc.URL)
		cn := &conn{s: s, cfg: sc, label: u.Host}
		cn.cl = &client{base: sc.URL, user: sc.User, pass: sc.Password, http: httpc, timeout: cfg.RequestTimeout,
			observe: func(r requestRecord) { s.observe(cn, r) }}
		s.metrics.addServer(cn.label)
		s.conns = append(s.conns, cn)
	}
	return s, nil
}

// Metrics returns the adapter's metrics (connection state, reconnects,
// request latency, channels, bridges and RTP ports held).
func (s *Server) Metrics() *Metrics { return s.metrics }

// Ready is closed once the WebSocket of at least one server is up.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Serve keeps the connections to every server up and serves their calls
// until ctx ends; then it ends the calls left (normally none: drain the
// engine first) and waits for their teardown.
func (s *Server) Serve(ctx context.Context) error {
	for _, sc := range s.cfg.Servers {
		s.log.Info("ARI application starting", "server", sc, "format", s.cfg.Format, "rtp_address", s.cfg.RTPAddress)
	}
	s.sender = audio.NewSender(audio.SystemClock{}, 0, &s.eng.Metrics.PacerSkips)
	defer s.sender.Close()
	var wg sync.WaitGroup
	for _, cn := range s.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A bug here costs this server's connection, not the process.
			defer ivr.Recover(s.eng.Metrics, s.log.With("server", cn.label), "ari connection", nil)
			cn.run(ctx)
		}()
	}
	wg.Wait()

	s.mu.Lock()
	s.stopped = true
	left := make([]*call, 0, len(s.calls))
	for k, c := range s.calls {
		if k.id == c.id {
			left = append(left, c)
		}
	}
	s.mu.Unlock()
	for _, c := range left {
		c.end(ivr.EndShutdown, errors.New("ARI adapter stopped"))
	}
	s.stopCalls()
	s.wg.Wait()
	return nil
}

// Close releases what Serve left; Serve has joined every goroutine, so
// there is nothing left: Close exists for symmetry with the SIP endpoint.
func (s *Server) Close() error { return nil }

// observe files one ARI request: latency histogram and the call's log.
func (s *Server) observe(cn *conn, r requestRecord) {
	s.metrics.RequestLatency.Observe(r.dur)
	if r.Status == 0 || r.Status >= 500 {
		s.metrics.RequestErrors.Add(1)
	}
	if r.call == "" {
		return
	}
	if c := s.lookup(cn, r.call); c != nil && c.tr != nil {
		c.tr.Event("ari.request", mustJSON(r))
	}
}

// routeKey names an object in one Asterisk: ids are unique per server
// only.
type routeKey struct {
	cn *conn
	id string
}

func (s *Server) lookup(cn *conn, id string) *call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[routeKey{cn, id}]
}

// dispatch routes one event from a server's WebSocket. It never blocks:
// a call's goroutine does the slow work.
func (s *Server) dispatch(cn *conn, ev *Event) {
	defer ivr.Recover(s.eng.Metrics, s.log.With("event", ev.Type), "ari event", nil)
	s.metrics.Events.Add(1)
	if ev.Application != "" && ev.Application != cn.cfg.App {
		s.metrics.EventsIgnored.Add(1)
		s.log.Debug("ARI event for another application ignored", "type", ev.Type, "app", ev.Application)
		return
	}
	var orig *pending
	if ev.Channel != nil && (ev.Type == "StasisStart" || ev.Type == "ChannelDestroyed") {
		orig = s.originating.deliver(routeKey{cn, ev.Channel.ID}, ev) // an originate's answer or end
	}
	var c *call
	if ev.Channel != nil {
		c = s.lookup(cn, ev.Channel.ID)
	}
	if c == nil && ev.Bridge != nil {
		c = s.lookup(cn, ev.Bridge.ID)
	}
	if c != nil {
		c.event(ev)
		return
	}
	if ev.Type == "StasisStart" {
		if strings.HasPrefix(ev.Channel.ID, cn.mediaPrefix()) {
			// An ExternalMedia channel no call owns: its creation
			// request timed out and Asterisk carried it out later.
			s.spawn(func() { cn.remove(ev.Channel.ID, "/channels/") })
			return
		}
		if strings.HasPrefix(ev.Channel.Name, "UnicastRTP/") {
			s.metrics.EventsIgnored.Add(1) // another application's media
			return
		}
		if orig == nil && s.originating.abandoned(routeKey{cn, ev.Channel.ID}) {
			// An originate given up on (ring timeout, shutdown) was
			// answered late: hung up, not served with the line's flow.
			s.spawn(func() { cn.remove(ev.Channel.ID, "/channels/") })
			return
		}
		s.offer(cn, ev, orig)
		return
	}
	s.metrics.EventsIgnored.Add(1)
	s.log.Debug("ARI event for no call of ours ignored", "event", ev.logLine())
}

// offer admits a new call on StasisStart and starts its goroutine; orig
// is the originate that placed it, or nil.
func (s *Server) offer(cn *conn, ev *Event, orig *pending) {
	ch := ev.Channel
	info := ivr.CallInfo{ID: ch.ID, Telephony: "ari", Caller: ch.Caller.Number, Called: ch.Dialplan.Exten, Start: time.Now()}
	s.mu.Lock()
	stopped := s.stopped
	s.mu.Unlock()
	var tr *ivr.Tracker
	var err error
	if stopped {
		err = ivr.End(ivr.EndShutdown, errors.New("ARI adapter stopping"))
	} else {
		tr, err = s.eng.Begin(info)
	}
	if err != nil {
		if orig != nil && orig.sv != nil {
			close(orig.sv.done)
		}
		s.log.Warn("call refused", "channel", ch.ID, "err", err)
		s.spawn(func() {
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout)
			defer cancel()
			q := url.Values{"reason": {"congestion"}}
			if err := cn.cl.do(ctx, "", http.MethodDelete, "/channels/"+url.PathEscape(ch.ID), q, nil, nil); err != nil && !isNotFound(err) {
				s.log.Warn("refused call not hung up", "channel", ch.ID, "err", err)
			}
		})
		return
	}
	c := newCall(s, cn, ch, tr)
	if orig != nil {
		c.flow, c.sv, c.outbound = orig.flow, orig.sv, true
	}
	s.mu.Lock()
	s.calls[routeKey{cn, ch.ID}] = c
	s.mu.Unlock()
	s.metrics.Channels.Add(1)
	tr.Event("ari.event", ev.logLine())
	s.spawn(c.run)
}

// spawn runs f on a goroutine the server owns and joins in Serve.
func (s *Server) spawn(f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer ivr.Recover(s.eng.Metrics, s.log, "ari call", nil)
		f()
	}()
}

// forget removes a call's routes.
func (s *Server) forget(c *call) {
	s.mu.Lock()
	for _, id := range []string{c.id, c.mediaID, c.bridgeID} {
		if k := (routeKey{c.cn, id}); id != "" && s.calls[k] == c {
			delete(s.calls, k)
		}
	}
	s.mu.Unlock()
}

// route makes events about id (an ExternalMedia channel or a bridge) reach c.
func (s *Server) route(id string, c *call) {
	s.mu.Lock()
	s.calls[routeKey{c.cn, id}] = c
	s.mu.Unlock()
}

// ActiveCalls is the number of calls the adapter holds.
func (s *Server) ActiveCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, c := range s.calls {
		if k.id == c.id {
			n++
		}
	}
	return n
}
