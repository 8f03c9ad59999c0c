package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/govline/ivr/dialplan/ari"
	"github.com/govline/ivr/dialplan/esl"
	"github.com/govline/ivr/dialplan/sip"
	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/ivr/queue"
	"github.com/govline/ivr/ivr/survey"
	storepkg "github.com/govline/ivr/store"
	"github.com/govline/ivr/tickets"
	"github.com/govline/ivr/tickets/console"
)

// telephony is the set of adapters engine.telephony selects: the SIP
// endpoint (sip), the ARI application (ari), or the event-socket server
// with the SIP endpoint for its media legs (esl).
type telephony struct {
	sipAddr string        // "" when the SIP endpoint does not run
	sip     *sip.Server   // nil when the SIP endpoint does not run
	surveys survey.Caller // places the survey calls: the adapter engine.telephony selects
	// outboundAllowed says when outbound calls may be placed (the working
	// calendar, sip.outbound.working_hours); nil: any time.
	outboundAllowed func(time.Time) bool
	runs            []adapter
	metrics         []prometheus.Collector // the adapters' metrics, served at /metrics
	closers         []func() error
	errc            chan error
	finished        chan struct{}
	count           int
}

// adapter is one thing that serves calls until its context ends.
type adapter struct {
	name  string
	serve func(context.Context) error
	ready <-chan struct{}
}

func startTelephony(cfg Config, eng *ivr.Engine, db *storepkg.DB, store *tickets.Store, log *slog.Logger) (*telephony, error) {
	t := &telephony{}
	var sipCfg = sip.Config{
		Listen:      cfg.SIP.Listen,
		MediaIP:     cfg.SIP.MediaIP,
		RTPPortMin:  cfg.SIP.RTPPortMin,
		RTPPortMax:  cfg.SIP.RTPPortMax,
		RTPTimeout:  cfg.SIP.RTPTimeout.Duration,
		AnswerDelay: cfg.SIP.AnswerDelay.Duration,
		JitterDepth: cfg.SIP.JitterDepth,
		Codecs:      cfg.SIP.Codecs,

		MaxCalls: cfg.SIP.MaxCalls, MaxCallsPerSource: cfg.SIP.MaxCallsPerSource,
		MaxPending: cfg.SIP.MaxPending, MaxPendingPerSource: cfg.SIP.MaxPendingPerSource,
		AckTimeout: cfg.SIP.AckTimeout.Duration,
	}
	cal, err := tickets.NewCalendar(cfg.Calendar.CalendarConfig)
	if err != nil {
		return nil, fmt.Errorf("calendar: %w", err)
	}
	sipCfg.Outbound = cfg.outboundConfig(cal.Open)
	t.outboundAllowed = sipCfg.Outbound.Allowed
	switch cfg.Engine.Telephony {
	case "ari":
		srv, err := ari.New(cfg.ariConfig(), eng)
		if err != nil {
			return nil, err
		}
		t.runs = append(t.runs, adapter{"ari", srv.Serve, srv.Ready()})
		t.surveys = srv
		t.metrics = append(t.metrics, srv.Metrics())
		t.closers = append(t.closers, srv.Close)
		return t, nil
	case "esl":
		srv, err := esl.New(cfg.eslConfig(), eng)
		if err != nil {
			return nil, err
		}
		t.runs = append(t.runs, adapter{"esl", srv.Serve, srv.Ready()})
		t.surveys = srv // FreeSWITCH dials; the SIP endpoint only carries the media legs
		t.metrics = append(t.metrics, srv.Metrics)
		sipCfg.LegHeader = srv.Config().LegHeader
		sipCfg.Legs = srv
		if cfg.ESL.InboundAddr != "" {
			in := &esl.Inbound{Addr: cfg.ESL.InboundAddr, Password: cfg.ESL.InboundPassword, Server: srv, Metrics: srv.Metrics, Log: log.With("component", "esl-inbound")}
			always := make(chan struct{})
			close(always)
			t.runs = append(t.runs, adapter{"esl-inbound", func(ctx context.Context) error {
				if err := in.Run(ctx); err != nil && ctx.Err() == nil {
					log.Error("event socket (inbound) stopped", "err", err)
				}
				return nil
			}, always})
		}
	}
	var shareds *queue.Shared
	if cfg.SIP.Queue.Enabled {
		qs, err := queue.New(cfg.queueConfig())
		if err != nil {
			return nil, err
		}
		dir := queue.Directory{DB: db}
		// One engine keeps its agents and callers in memory; engines
		// sharing a PostgreSQL keep them there (docs/scale-out.md).
		var board queue.Board
		if db.Backend() == storepkg.Postgres {
			shared, err := queue.NewShared(context.Background(), db, queue.SharedConfig{Config: cfg.queueConfig(),
				Engine: cfg.engineName(db.Backend()), Log: log.With("component", "queue")})
			if err != nil {
				return nil, err
			}
			board = shared
			shareds = shared
		}
		sipCfg.Queue = sip.QueueConfig{Queues: qs, Board: board, Agents: dir, Outcomes: store, Locks: dir, Audit: store,
			Realm: cfg.SIP.Queue.Realm, MinExpires: cfg.SIP.Queue.MinExpires.Duration, MaxExpires: cfg.SIP.Queue.MaxExpires.Duration,
			MaxFailures: cfg.SIP.Queue.MaxFailures, AddressMaxFailures: cfg.SIP.Queue.AddressMaxFailures,
			Backoff: cfg.SIP.Queue.Backoff.Duration, Lockout: cfg.SIP.Queue.Lockout.Duration,
			Callbacks: queue.Callbacks{DB: db}, Notes: store,
			OnAgent: func(ev sip.AgentEvent) {
				// The console pops the ticket on the screen of the agent
				// who answered (console.BridgedEvent).
				if !ev.Ended {
					detail, _ := json.Marshal(map[string]string{"agent": ev.Agent, "ticket": ev.Ticket, "queue": ev.Queue})
					eng.Calls.Event(ev.CallID, tickets.CallEvent{Kind: console.BridgedEvent, Detail: string(detail)})
				}
			}}
	}
	srv, err := sip.New(sipCfg, eng)
	if err != nil {
		if shareds != nil {
			shareds.Close()
		}
		return nil, err
	}
	t.sipAddr = cfg.SIP.Listen
	t.sip = srv
	if t.surveys == nil {
		t.surveys = srv
	}
	if sipCfg.Queue.Callbacks != nil {
		// The callbacks pending when the line stopped (or crashed) join
		// their queues again; they call once the endpoint listens.
		rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := srv.ResumeCallbacks(rctx)
		cancel()
		if err != nil {
			log.Error("pending callbacks not taken up", "err", err)
		}
	}
	t.runs = append(t.runs, adapter{"sip", srv.Serve, srv.Ready()})
	t.closers = append(t.closers, srv.Close)
	if shareds != nil {
		// After the SIP endpoint: the engine's callers and claims are
		// released at once (not after a lapsed lease).
		t.closers = append(t.closers, shareds.Close)
	}
	return t, nil
}

// serve starts every adapter; the channel reports the first that fails.
func (t *telephony) serve(ctx context.Context) <-chan error {
	t.errc = make(chan error, len(t.runs))
	t.finished = make(chan struct{}, len(t.runs))
	t.count = len(t.runs)
	for _, a := range t.runs {
		go func() {
			err := a.serve(ctx)
			if err != nil && ctx.Err() == nil {
				t.errc <- err
			}
			t.finished <- struct{}{}
		}()
	}
	return t.errc
}

// wait joins every adapter after their context ended.
func (t *telephony) wait() {
	for range t.count {
		<-t.finished
	}
}

// ready reports whether every adapter listens (or is connected).
func (t *telephony) ready() bool {
	for _, a := range t.runs {
		select {
		case <-a.ready:
		default:
			return false
		}
	}
	return true
}

func (t *telephony) close() {
	for _, c := range t.closers {
		_ = c()
	}
}
