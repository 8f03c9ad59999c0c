package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/govline/ivr/channels/chat"
	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/tickets/console"
)

var _ console.ChatAnswerer = (*chat.Server)(nil)

// startChat starts the web chat's listener when chat.listen is set: the
// same flows as the phone, on the same services. The returned stop
// function shuts the listener down and ends the sessions. Errors of the
// listener arrive on errc.
//
// The answerer (nil when the chat is off) lets the console's agents write
// to a chat handed to them; through the store (the relay) they reach the
// chats every engine of the line holds.
//
// Its metrics (the chat's volumes) are registered in reg.
func startChat(cfg Config, rt chat.Runner, svc flows.Services, relay chat.Relay, reg prometheus.Registerer, log *slog.Logger, errc chan<- error) (stop func(context.Context), answerer console.ChatAnswerer, err error) {
	if cfg.Chat.Listen == "" {
		return func(context.Context) {}, nil, nil
	}
	svc.Log = log.With("component", "chat")
	cs := chat.New(chat.Config{Origins: cfg.Chat.Origins, Idle: cfg.Chat.Idle.Duration, MaxMessage: cfg.Chat.MaxMessage,
		PerSecond: cfg.Chat.PerSecond, NewSessions: cfg.Chat.NewSessions, Relay: relay}, rt, svc)
	reg.MustRegister(chatMetrics(cs)...)
	ln, err := net.Listen("tcp", cfg.Chat.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("chat listen on %s: %w", cfg.Chat.Listen, err)
	}
	srv := &http.Server{Handler: cs.Handler(), ReadHeaderTimeout: 5 * time.Second}
	srv.RegisterOnShutdown(cs.Close) // the sockets never go idle
	go func() {
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			select {
			case errc <- fmt.Errorf("chat: %w", err):
			default:
			}
		}
	}()
	log.Info("web chat listening", "addr", cfg.Chat.Listen)
	return func(ctx context.Context) { _ = srv.Shutdown(ctx); cs.Close() }, cs, nil
}

// chatMetrics are the web chat's volumes on this engine (docs/operations.md).
func chatMetrics(cs *chat.Server) []prometheus.Collector {
	counter := func(name, help string, f func(chat.Stats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f(cs.Stats())) })
	}
	ms := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "ivr_chat_sessions", Help: "Web chat sessions alive on this engine (with the flow or handed to the agents)."},
			func() float64 { return float64(cs.Sessions()) }),
		counter("ivr_chat_sessions_total", "Web chat sessions started.", func(s chat.Stats) int64 { return s.Started }),
		counter("ivr_chat_resumes_total", "Web chat sockets that resumed a session (a page reload, a network drop).", func(s chat.Stats) int64 { return s.Resumed }),
		counter("ivr_chat_handoffs_total", "Web chat conversations handed to the agents (a ticket opened).", func(s chat.Stats) int64 { return s.Handoffs }),
		counter("ivr_chat_messages_total", "Messages and buttons taken from citizens in the web chat.", func(s chat.Stats) int64 { return s.Messages }),
	}
	for _, r := range chat.RefusalReasons {
		ms = append(ms, prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ivr_chat_refused_total",
			Help: "Web chat messages and sockets refused, by reason: rate, too_long, utf8, bad, busy (a message while the last one waits), origin (a foreign page), new_sessions (over the per-address limit).", ConstLabels: prometheus.Labels{"reason": r}},
			func() float64 { return float64(cs.Stats().Refused[r]) }))
	}
	return ms
}
