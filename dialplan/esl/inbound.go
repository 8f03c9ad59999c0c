package esl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"time"
)

// Inbound keeps one connection to FreeSWITCH's event socket (inbound
// mode, event_socket.conf.xml: listen-ip, listen-port, password) for the
// adapter's health and events: it is the "FreeSWITCH is reachable" state
// of the metrics, and it reports the hangup of channels whose outbound
// session was lost to their calls. It reconnects with exponential backoff
// and jitter. The password never reaches a log.
type Inbound struct {
	Addr     string // host:port, e.g. 127.0.0.1:8021
	Password string
	// Server, when set, receives CHANNEL_HANGUP_COMPLETE for its calls.
	Server  *Server
	Metrics *Metrics
	Log     *slog.Logger
	// Idle is how long the connection may stay silent before it is taken
	// for dead (FreeSWITCH sends HEARTBEAT every 20 s), default 60 s.
	Idle time.Duration
	// Backoff bounds, default 500 ms and 30 s.
	MinBackoff, MaxBackoff time.Duration
	// Timeout bounds the dial and each command, default 5 s.
	Timeout time.Duration
}

// Run connects and stays connected until ctx ends.
func (in *Inbound) Run(ctx context.Context) error {
	if in.Idle <= 0 {
		in.Idle = 60 * time.Second
	}
	if in.MinBackoff <= 0 {
		in.MinBackoff = 500 * time.Millisecond
	}
	if in.MaxBackoff <= 0 {
		in.MaxBackoff = 30 * time.Second
	}
	if in.Timeout <= 0 {
		in.Timeout = 5 * time.Second
	}
	if in.Metrics == nil {
		in.Metrics = NewMetrics()
	}
	log := in.Log
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "esl-inbound", "addr", in.Addr)
	backoff := in.MinBackoff
	everUp := false
	for ctx.Err() == nil {
		up, err := in.session(ctx, log, everUp)
		if up {
			everUp = true
			backoff = in.MinBackoff
		}
		if ctx.Err() != nil {
			break
		}
		if errors.Is(err, ErrRejected) {
			log.Error("FreeSWITCH refused the event socket connection", "err", err)
		} else {
			log.Warn("event socket connection lost", "err", err)
		}
		// Full jitter: a fleet of engines does not reconnect in step.
		wait := backoff/2 + rand.N(backoff/2+1)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		if backoff *= 2; backoff > in.MaxBackoff {
			backoff = in.MaxBackoff
		}
	}
	return nil
}

// session runs one connection; up reports whether it got authenticated.
func (in *Inbound) session(ctx context.Context, log *slog.Logger, reconnect bool) (up bool, err error) {
	d := net.Dialer{Timeout: in.Timeout}
	nc, err := d.DialContext(ctx, "tcp", in.Addr)
	if err != nil {
		return false, err
	}
	rec := func(kind, detail string) { log.Debug("esl", "kind", kind, "detail", detail) }
	c := newConn(nc, rec, in.Metrics, in.Timeout)
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	f, err := c.waitReply(ctx)
	if err != nil {
		return false, err
	}
	if f.contentType() != typeAuthRequest {
		return false, protoErr("expected auth/request, got %q", truncate(f.contentType(), 40))
	}
	if err := checkArg("password", in.Password); err != nil {
		return false, err
	}
	if _, err := c.command(ctx, []byte("auth "+in.Password+"\n\n"), "auth ********"); err != nil {
		return false, fmt.Errorf("auth: %w", err)
	}
	if _, err := c.command(ctx, []byte("event plain CHANNEL_HANGUP_COMPLETE HEARTBEAT\n\n"), "event plain CHANNEL_HANGUP_COMPLETE HEARTBEAT"); err != nil {
		return true, err
	}
	in.Metrics.InboundConnected.Store(1)
	defer in.Metrics.InboundConnected.Store(0)
	if reconnect {
		in.Metrics.Reconnects.Add(1)
	}
	log.Info("event socket (inbound mode) connected")

	idle := time.NewTimer(in.Idle)
	defer idle.Stop()
	for {
		select {
		case ev, ok := <-c.Events():
			if !ok {
				if err := c.Err(); err != nil {
					return true, err
				}
				return true, ErrClosed
			}
			idle.Reset(in.Idle)
			if ev.Name == "CHANNEL_HANGUP_COMPLETE" && in.Server != nil {
				in.Server.inboundHangup(ev)
			}
		case <-idle.C:
			return true, fmt.Errorf("no event for %s (FreeSWITCH sends HEARTBEAT every 20 s)", in.Idle)
		case <-ctx.Done():
			return true, ctx.Err()
		}
	}
}

// inboundHangup reports a channel's hangup seen on the inbound connection
// to its call, when its outbound session no longer has its socket.
func (s *Server) inboundHangup(ev *Event) {
	s.mu.Lock()
	se := s.channels[ev.Get("Unique-ID")]
	s.mu.Unlock()
	if se == nil {
		return
	}
	select {
	case <-se.c.Done():
		se.rec.record("esl.inbound.event", ev.summary())
		se.channelDown(ev.Get("Hangup-Cause"))
	default:
		// The outbound socket reports it itself.
	}
}
