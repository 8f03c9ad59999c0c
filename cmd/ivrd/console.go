package main

import (
	"context"
	"crypto/rsa"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/tickets"
	"github.com/govline/ivr/tickets/console"
)

// startConsole starts the webhook sender (when webhook.url is set), the
// e-mail channel (when email.imap_url is set; its answerer serves the
// console), the agent console (its agents write to the web chats handed
// to them through chatAns, nil when the chat is off) (when console.listen is set). The sender stops when ctx
// ends (joined by wg; notifications wait in the outbox); the returned stop
// function shuts the console down. Errors of the console's listener arrive
// on errc.
func startConsole(ctx context.Context, wg *sync.WaitGroup, cfg Config, store *tickets.Store, callbacks console.CallbackLister, chatAns console.ChatAnswerer, svc flows.Services, log *slog.Logger, errc chan<- error) (stop func(context.Context), con *console.Console, err error) {
	answerer, err := startEmail(ctx, wg, cfg, store, svc.KB, log)
	if err != nil {
		return nil, nil, err
	}
	var kick func(string)
	if cfg.Webhook.URL != "" {
		snd, err := tickets.NewSender(store, tickets.WebhookConfig{URL: cfg.Webhook.URL, Secret: []byte(cfg.Webhook.Secret), Logger: log.With("component", "webhook")})
		if err != nil {
			return nil, nil, err
		}
		wg.Go(func() { _ = snd.Run(ctx) })
		kick = func(string) { snd.Kick() }
	}
	if cfg.Console.Listen == "" {
		return func(context.Context) {}, nil, nil
	}
	var misses console.MissLister
	if k, ok := svc.KB.(flows.KBIndex); ok && k.Index != nil {
		misses = k.Index
	}
	samlCfg, err := cfg.Console.samlConfig(ctx)
	if err != nil {
		return nil, nil, err
	}
	var breakGlass []string
	if samlCfg != nil && len(cfg.Console.SAML.BreakGlass) > 0 {
		breakGlass = cfg.Console.SAML.BreakGlass
	}
	con, err = console.New(console.Config{
		Store: store, Misses: misses, Callbacks: callbacks, SecureCookie: cfg.Console.SecureCookie, Resolved: kick, Email: answerer, Chat: chatAns,
		Login: tickets.LoginPolicy{MaxFailures: cfg.Console.MaxFailures, Lockout: cfg.Console.Lockout.Duration, SessionTTL: cfg.Console.SessionTTL.Duration,
			BreakGlass: breakGlass},
		SAML:      samlCfg,
		LoginRate: cfg.Console.LoginRate, HashConcurrency: cfg.Console.HashConcurrency, HashWait: cfg.Console.HashWait.Duration,
		Logger: log.With("component", "console"),
		Engine: store.Engine(), RecordingsDir: filepath.Join(cfg.Engine.DataDir, "recordings"),
		Peers: cfg.Recording.Peers, PeerSecret: []byte(cfg.Recording.Secret),
	})
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", cfg.Console.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("console listen on %s: %w", cfg.Console.Listen, err)
	}
	srv := &http.Server{Handler: con, ReadHeaderTimeout: 5 * time.Second}
	srv.RegisterOnShutdown(con.Shutdown) // the live streams never go idle
	go func() {
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			errc <- fmt.Errorf("console: %w", err)
		}
	}()
	log.Info("agent console listening", "addr", cfg.Console.Listen, "saml", samlCfg != nil)
	return func(ctx context.Context) { _ = srv.Shutdown(ctx) }, con, nil
}

// consoleMetrics collects the console's sign-in counts.
type consoleMetrics struct{ con *console.Console }

// signInOutcomes start at 0 (docs/console.md).
var signInOutcomes = []string{"ok", "bad", "locked", "throttled", "busy", "error"}

func (m consoleMetrics) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(m, ch) }

func (m consoleMetrics) Collect(ch chan<- prometheus.Metric) {
	vals := m.con.SignIns()
	for _, o := range signInOutcomes {
		vals[o] += 0
	}
	ivr.NewConstMetrics(ch).Labelled(prometheus.CounterValue, "ivr_console_signins_total",
		"Console sign-ins, by outcome: ok, bad, locked, throttled (429), busy (503), error.", "outcome", vals)
}

// samlConfig loads what [console.saml] names: the identity provider's
// metadata and the service provider's key pair. nil when SAML is off.
func (c ConsoleConfig) samlConfig(ctx context.Context) (*console.SAMLConfig, error) {
	sc := c.SAML
	if sc.IDPMetadata == "" {
		return nil, nil
	}
	md, err := console.LoadIDPMetadata(ctx, sc.IDPMetadata, nil)
	if err != nil {
		return nil, fmt.Errorf("config: console.saml.idp_metadata: %w", err)
	}
	pair, err := tls.LoadX509KeyPair(sc.Cert, sc.Key)
	if err != nil {
		return nil, fmt.Errorf("config: console.saml.cert, console.saml.key: %w", err)
	}
	key, ok := pair.PrivateKey.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("config: console.saml.key: %s holds no RSA key", sc.Key)
	}
	u, _ := url.Parse(strings.TrimSuffix(c.PublicURL, "/"))
	roles := map[string]tickets.Role{}
	for v, r := range sc.Roles {
		roles[v] = tickets.Role(r)
	}
	return &console.SAMLConfig{IDPMetadata: md, URL: u, EntityID: sc.EntityID, Key: key, Certificate: pair.Leaf,
		UserAttribute: sc.UserAttribute, RoleAttribute: sc.RoleAttribute, ProviderAttribute: sc.ProviderAttribute, Roles: roles}, nil
}
