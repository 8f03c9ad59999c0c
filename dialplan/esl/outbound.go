// Package esl connects the engine to FreeSWITCH over its event socket
// (mod_event_socket), so a FreeSWITCH that already carries a contact
// centre's trunks, numbers and agents sends its callers to the same
// sessions and flows as the embedded SIP line.
//
// Control goes over the event socket in outbound mode: the dialplan's
// `socket` application connects to Server for each call; the session
// answers, follows the channel's events (DTMF, hangup with its cause) and
// hands the caller to agents by transfer to a dialplan extension or a
// mod_callcenter queue, with the channel variables IVR_TICKET, IVR_LANG,
// IVR_SUMMARY and IVR_QUEUE. Inbound mode (Inbound) keeps one connection to
// FreeSWITCH's event socket for health, metrics and the hangups of
// channels whose outbound session was lost. The engine's own calls (the
// survey calls, SurveyCall) are originated over the inbound socket with
// &socket(this server): the answered channel connects like an incoming
// one and runs the flow it was placed for.
//
// Media needs no module outside FreeSWITCH's standard build: the session
// bridges the caller to the engine's own SIP endpoint (dialplan/sip) with
// the header X-IVR-ESL carrying a one-time token; the endpoint hands that
// leg to this package (sip.Legs). The SIP leg carries the audio, the event
// socket carries control.
//
// The event socket protocol is implemented here (protocol.go, conn.go)
// rather than taken from github.com/fiorix/go-eventsocket, which calls
// log.Fatal on a content type it does not know (text/rude-rejection),
// panics on short replies, has no deadlines and lets CR/LF into commands.
// Nothing FreeSWITCH or a caller sends can end or hang the engine: frames
// are size-limited, every read is interruptible, every command has a
// deadline, and command arguments are checked.
package esl

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/ivr/amd"
)

// Config of the FreeSWITCH adapter. The zero value of a field means its
// default.
type Config struct {
	// Listen is where FreeSWITCH's `socket` application connects
	// (outbound mode), default 127.0.0.1:8084.
	Listen string
	// MediaDial is the FreeSWITCH dial string of the engine's SIP
	// endpoint, default sofia/internal/ivr@127.0.0.1:5060. The session
	// bridges the caller to it with the leg header.
	MediaDial string
	// MediaCodec, when set, is the only codec FreeSWITCH offers on the
	// media leg (absolute_codec_string), e.g. PCMU; empty: FreeSWITCH's
	// outbound codec preferences.
	MediaCodec string
	// LegHeader is the SIP header that carries the media leg's token,
	// default X-IVR-ESL. The SIP endpoint's Config.LegHeader must match.
	LegHeader string
	// Handoff says where callers go when a flow hands them to agents.
	Handoff Handoff
	// CommandTimeout bounds each event socket command, default 5 s.
	CommandTimeout time.Duration
	// LegTimeout bounds the wait for the media leg after the bridge is
	// sent, default 10 s.
	LegTimeout time.Duration
	// Linger is how long the socket stays open after the channel hangs up,
	// to receive CHANNEL_HANGUP_COMPLETE, default 2 s.
	Linger time.Duration
	// Outbound says how the engine's own calls (the survey calls) are
	// placed through FreeSWITCH.
	Outbound Outbound
}

// Outbound is how the engine's own calls are placed: over FreeSWITCH's
// event socket in inbound mode (Addr, Password: event_socket.conf.xml),
// `originate` dials the number through a sofia gateway and connects the
// answered channel to this server (&socket), where it is served as an
// inbound call with the flow it was placed for.
type Outbound struct {
	Gateway  string // the sofia gateway (the trunk); empty: no outbound calls
	CallerID string // origination_caller_id_number; empty: the gateway's
	// RingTimeout is originate_timeout, default 30 s.
	RingTimeout time.Duration
	Addr        string // FreeSWITCH's event socket, host:port (e.g. 127.0.0.1:8021)
	Password    string // never logged
	// Socket is the host:port FreeSWITCH connects the answered channel
	// to; default Listen (its actual address).
	Socket string
	// Machine turns on answering machine detection (package ivr/amd):
	// an answered call is listened to before the flow starts, and one a
	// machine answered is hung up on with nothing said (the survey
	// call's result is "machine"). Off in the zero value.
	Machine amd.Config
}

// LogValue keeps the password out of every log.
func (o Outbound) LogValue() slog.Value {
	return slog.GroupValue(slog.String("gateway", o.Gateway), slog.String("addr", o.Addr), slog.String("socket", o.Socket))
}

// Handoff modes.
const (
	HandoffExtension  = "extension"  // uuid_transfer to an extension of a dialplan context
	HandoffCallcenter = "callcenter" // uuid_transfer to the callcenter application (mod_callcenter queue)
)

// Handoff configures transfers to agents.
type Handoff struct {
	// Mode is "extension" (default) or "callcenter".
	Mode string
	// Context is the dialplan context of the handoff extensions, default
	// ivr_handoff (mode extension).
	Context string
	// Extensions maps a flow's queue name to an extension; a queue not
	// listed is used as the extension itself (mode extension).
	Extensions map[string]string
	// Queues maps a flow's queue name to a mod_callcenter queue; a queue
	// not listed becomes QUEUE@Domain (mode callcenter).
	Queues map[string]string
	// Domain of mod_callcenter queues, default "default".
	Domain string
}

// Defaults.
const (
	DefaultListen         = "127.0.0.1:8084"
	DefaultMediaDial      = "sofia/internal/ivr@127.0.0.1:5060"
	DefaultLegHeader      = "X-IVR-ESL"
	DefaultCommandTimeout = 5 * time.Second
	DefaultLegTimeout     = 10 * time.Second
	DefaultLinger         = 2 * time.Second
	DefaultHandoffContext = "ivr_handoff"
)

// Validate checks the configuration and fills in defaults; an error names
// the bad key.
func (c Config) Validate() (Config, error) {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return c, fmt.Errorf("esl.listen %q: %v", c.Listen, err)
	}
	if c.MediaDial == "" {
		c.MediaDial = DefaultMediaDial
	}
	if !strings.HasPrefix(c.MediaDial, "sofia/") || strings.ContainsAny(c.MediaDial, " \t\r\n{}[],") {
		return c, fmt.Errorf("esl.media_dial %q: want a dial string such as %s (no spaces, braces or commas)", c.MediaDial, DefaultMediaDial)
	}
	if c.MediaCodec != "" {
		if err := token("esl.media_codec", c.MediaCodec); err != nil {
			return c, err
		}
	}
	if c.LegHeader == "" {
		c.LegHeader = DefaultLegHeader
	}
	if !strings.HasPrefix(strings.ToUpper(c.LegHeader), "X-") {
		return c, fmt.Errorf("esl.leg_header %q: want a private header (X-...)", c.LegHeader)
	}
	if err := token("esl.leg_header", c.LegHeader); err != nil {
		return c, err
	}
	if c.CommandTimeout <= 0 {
		c.CommandTimeout = DefaultCommandTimeout
	}
	if c.LegTimeout <= 0 {
		c.LegTimeout = DefaultLegTimeout
	}
	if c.Linger <= 0 {
		c.Linger = DefaultLinger
	}
	if o := c.Outbound; o.Gateway != "" {
		if err := token("esl.outbound.gateway", o.Gateway); err != nil {
			return c, err
		}
		if o.CallerID != "" {
			if err := token("esl.outbound.caller_id", o.CallerID); err != nil {
				return c, err
			}
		}
		if _, _, err := net.SplitHostPort(o.Addr); err != nil {
			return c, fmt.Errorf("esl.outbound.addr %q: want FreeSWITCH's event socket host:port: %v", o.Addr, err)
		}
		if err := checkArg("esl.outbound.password", o.Password); err != nil || o.Password == "" {
			return c, errors.New("esl.outbound.password: want event_socket.conf.xml's password on one line")
		}
		if o.Socket != "" {
			if _, _, err := net.SplitHostPort(o.Socket); err != nil {
				return c, fmt.Errorf("esl.outbound.socket %q: want host:port: %v", o.Socket, err)
			}
		}
	}
	h := &c.Handoff
	switch h.Mode {
	case "":
		h.Mode = HandoffExtension
	case HandoffExtension, HandoffCallcenter:
	default:
		return c, fmt.Errorf("esl.handoff.mode %q: want extension or callcenter", h.Mode)
	}
	if h.Context == "" {
		h.Context = DefaultHandoffContext
	}
	if h.Domain == "" {
		h.Domain = "default"
	}
	for _, v := range []struct{ k, v string }{{"esl.handoff.context", h.Context}, {"esl.handoff.domain", h.Domain}} {
		if err := token(v.k, v.v); err != nil {
			return c, err
		}
	}
	for q, e := range h.Extensions {
		if err := token("esl.handoff.extensions."+q, e); err != nil {
			return c, err
		}
	}
	for q, e := range h.Queues {
		if err := token("esl.handoff.queues."+q, e); err != nil {
			return c, err
		}
	}
	return c, nil
}

// Server accepts FreeSWITCH's outbound socket connections, one per call,
// and serves each as an engine call. It implements sip.Legs for the
// engine's SIP endpoint, which receives the calls' audio.
type Server struct {
	cfg     Config
	eng     *ivr.Engine
	Metrics *Metrics
	log     *slog.Logger

	mu       sync.Mutex
	legs     map[string]*session // by leg token, until the leg is claimed
	channels map[string]*session // by channel uuid, while the session runs
	placing  map[string]*placed  // by channel uuid: our own calls, until their socket connects
	gaveUp   map[string]bool     // by channel uuid: our own calls given up on before they connected
	ln       net.Listener
	wg       sync.WaitGroup // one per session goroutine
	ready    chan struct{}

	// testHook, set by the tests, is called where a bug could panic on
	// an adapter goroutine: "setup" on the connection's goroutine once
	// the call's media leg is up, "event" on its event loop for each
	// event of the channel.
	testHook atomic.Pointer[func(where, callID string)]
}

// New builds the adapter; Serve starts it. The engine's SIP endpoint must
// be configured with LegHeader and the returned Server as its Legs.
func New(cfg Config, eng *ivr.Engine) (*Server, error) {
	cfg, err := cfg.Validate()
	if err != nil {
		return nil, err
	}
	metrics := NewMetrics()
	metrics.Engine = eng.Metrics
	return &Server{
		cfg: cfg, eng: eng, Metrics: metrics, log: eng.Log.With("component", "esl"),
		legs: map[string]*session{}, channels: map[string]*session{}, placing: map[string]*placed{}, gaveUp: map[string]bool{}, ready: make(chan struct{}),
	}, nil
}

// Config returns the validated configuration.
func (s *Server) Config() Config { return s.cfg }

// Ready is closed once the server listens.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr is the listening address (after Ready).
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Serve listens for FreeSWITCH's outbound connections until ctx ends, then
// stops listening and waits for the sessions in progress (the engine's
// Drain ends their calls).
func (s *Server) Serve(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("esl listen on %s: %w", s.cfg.Listen, err)
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	s.log.Info("event socket (outbound mode) listening", "addr", ln.Addr().String())
	close(s.ready)
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var tempDelay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				break
			}
			// Out of file descriptors and the like: back off, go on.
			if tempDelay == 0 {
				tempDelay = 5 * time.Millisecond
			} else if tempDelay *= 2; tempDelay > time.Second {
				tempDelay = time.Second
			}
			s.log.Warn("accept failed", "err", err, "retry_in", tempDelay)
			t := time.NewTimer(tempDelay)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
			continue
		}
		tempDelay = 0
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			// A bug on this connection ends its call, not the process
			// and every call in it (serveConn's own defers free the
			// call's leg and socket and close its record first).
			defer ivr.Recover(s.eng.Metrics, s.log.With("remote", nc.RemoteAddr().String()), "esl connection", nil)
			s.serveConn(nc)
		}()
	}
	s.wg.Wait()
	return nil
}

// ClaimLeg implements sip.Legs: the token is single-use and valid only
// while its session waits for the leg.
func (s *Server) ClaimLeg(token string) (*ivr.Tracker, error) {
	s.mu.Lock()
	se, ok := s.legs[token]
	delete(s.legs, token)
	s.mu.Unlock()
	if !ok {
		return nil, errors.New("no FreeSWITCH session waits for this media leg")
	}
	return se.tr, nil
}

// ServeLeg implements sip.Legs.
func (s *Server) ServeLeg(token string, leg ivr.Call, err error) {
	se := s.claimed(token)
	if se == nil {
		return
	}
	se.serveLeg(leg, err)
}

// claimed finds the session whose leg token was just claimed.
func (s *Server) claimed(token string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, se := range s.channels {
		if se.legToken == token {
			return se
		}
	}
	return nil
}

func newToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
