package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

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
func startChat(cfg Config, rt chat.Runner, svc flows.Services, relay chat.Relay, log *slog.Logger, errc chan<- error) (stop func(context.Context), answerer console.ChatAnswerer, err error) {
	if cfg.Chat.Listen == "" {
		return func(context.Context) {}, nil, nil
	}
	svc.Log = log.With("component", "chat")
	cs := chat.New(chat.Config{Origins: cfg.Chat.Origins, Idle: cfg.Chat.Idle.Duration, MaxMessage: cfg.Chat.MaxMessage,
		PerSecond: cfg.Chat.PerSecond, NewSessions: cfg.Chat.NewSessions, Relay: relay}, rt, svc)
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
