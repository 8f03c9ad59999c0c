// Command ivrd is the IVR engine daemon: it answers calls on its own SIP
// endpoint (or, later, through Asterisk or FreeSWITCH), talks to callers,
// keeps call records and recordings, and serves /healthz and /metrics.
//
//	ivrd [-config FILE] [-check] [-render-prompts]
//
// Without -config it runs on its embedded defaults (cmd/ivrd/ivrd.toml);
// IVR_* environment variables override any key. SIGTERM or SIGINT drains:
// new calls get 503, active calls may go on for engine.shutdown_grace, then
// the rest are hung up and ivrd exits 0. A second signal exits at once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/flows/kb"
	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/ivr/queue"
	"github.com/govline/ivr/ivr/survey"
	"github.com/govline/ivr/redact"
	storepkg "github.com/govline/ivr/store"
	"github.com/govline/ivr/tickets"
)

func main() {
	os.Exit(realMain(os.Args[1:], os.LookupEnv, os.Stderr))
}

func realMain(args []string, lookup func(string) (string, bool), stderr io.Writer) int {
	fs := flag.NewFlagSet("ivrd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config, _ := lookup("IVR_CONFIG")
	configPath := fs.String("config", config, "configuration file (TOML); default: the embedded defaults")
	check := fs.Bool("check", false, "validate the configuration and the prompts, then exit")
	renderOnly := fs.Bool("render-prompts", false, "render the text prompts with espeak-ng into the data folder, then exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := LoadConfig(*configPath, lookup)
	if err != nil {
		fmt.Fprintln(stderr, "ivrd:", err)
		return 2
	}
	log := newLogger(cfg.Log, stderr)

	// The prompts of the built-in DTMF menu: ivrd always runs flows, so it
	// checks and renders them only on request and does not load them to
	// serve calls (the adapters' tests, which run the menu, load their own).
	if *check || *renderOnly {
		prompts, err := loadPrompts(cfg)
		if err != nil {
			log.Error("prompts not loaded", "err", err)
			fmt.Fprintln(stderr, "ivrd:", err)
			return 1
		}
		if *check {
			if _, err := flows.Load(cfg.Engine.FlowsDir, flowsConfig(cfg)); err != nil {
				fmt.Fprintln(stderr, "ivrd: flows:", err)
				return 1
			}
			arts, err := kb.LoadDir(filepath.Join(cfg.Engine.FlowsDir, "kb"))
			if err != nil {
				fmt.Fprintln(stderr, "ivrd: knowledge base:", err)
				return 1
			}
			fmt.Fprintf(stderr, "ivrd: flows load; %d knowledge base articles valid\n", len(arts))
		}
		fmt.Fprintf(stderr, "ivrd: configuration valid; %d prompts ready (%s)\n", len(prompts.Names()), strings.Join(prompts.Names(), ", "))
		if *renderOnly {
			// The flows' fixed sentences too, as ivrd renders them at start.
			rt, err := flows.Load(cfg.Engine.FlowsDir, flowsConfig(cfg))
			if err != nil {
				fmt.Fprintln(stderr, "ivrd: flows:", err)
				return 1
			}
			synth, closeSynth := startSynth(cfg.Speech, cfg.Engine.DataDir, log)
			defer closeSynth()
			texts := rt.Texts(cfg.Engine.Language)
			n, err := synth.Warm(context.Background(), texts)
			if err != nil {
				fmt.Fprintln(stderr, "ivrd: flows' sentences:", err)
				return 1
			}
			fmt.Fprintf(stderr, "ivrd: %d sentences of the flows ready (%d rendered now)\n", len(texts), n)
		}
		return 0
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, cfg, log); err != nil {
		log.Error("ivrd stopped with an error", "err", err)
		return 1
	}
	return 0
}

func newLogger(c LogConfig, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if c.Format == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	// Every line passes the one masking of personal data: what a library
	// quotes in an error (a Request-URI, a number) is masked too.
	return slog.New(redact.NewHandler(h, nil))
}

func loadPrompts(cfg Config) (*ivr.Prompts, error) {
	return ivr.LoadPrompts(ivr.PromptConfig{
		Dir:   filepath.Join(cfg.Engine.FlowsDir, "prompts"),
		Cache: filepath.Join(cfg.Engine.DataDir, "prompts"),
		Lang:  cfg.Engine.Language,
		Rates: []int{8000, 16000},
	})
}

// warmPrompts renders the fixed sentences of the flows serving calls (and
// the engine's own) into the prompt cache, at start and after each reload,
// so that no caller hears silence while a fixed prompt renders.
func warmPrompts(ctx context.Context, rt *flows.Runtime, synth *ivr.RenderCache, lang string, log *slog.Logger) {
	warmed := 0
	t := time.NewTicker(flows.WatchInterval)
	defer t.Stop()
	for {
		if v := rt.Version(); v != warmed {
			start := time.Now()
			texts := rt.Texts(lang)
			n, err := synth.Warm(ctx, texts)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				log.Warn("some prompts could not be rendered ahead: they render when a call needs them", "err", err)
			}
			log.Info("prompts ready", "flows_version", v, "sentences", len(texts), "rendered", n, "took", time.Since(start).Round(time.Millisecond))
			warmed = v
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// run serves until ctx ends, then drains.
func run(ctx context.Context, cfg Config, log *slog.Logger) error {
	db, err := storepkg.Open(ctx, cfg.storeURL(), storepkg.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	store := tickets.New(db)
	if name := cfg.engineName(db.Backend()); name != "" {
		store.SetEngine(name)
	}
	log.Info("store open", "store", db.String(), "backend", db.Backend(), "engine", store.Engine())
	// Calls a crash left open: their recordings end in raw samples after
	// the last header update; repair them, then close the records.
	if open, err := store.OpenCalls(context.Background()); err != nil {
		return err
	} else {
		for _, c := range open {
			if c.Recording == "" {
				continue
			}
			if err := audio.RepairWAV(c.Recording); err != nil && !errors.Is(err, fs.ErrNotExist) {
				log.Warn("recording of an interrupted call not repaired", "call_id", c.ID, "path", c.Recording, "err", err)
			}
		}
	}
	if n, err := store.CloseOrphans(context.Background(), time.Now()); err != nil {
		return fmt.Errorf("closing calls left open by a previous run: %w", err)
	} else if n > 0 {
		log.Warn("closed call records left open by a previous run", "calls", n)
	}

	calls := store.NewCallLog(0, log.With("component", "calllog"))
	defer calls.Close() // after the drain: commits what is queued

	// The flow and knowledge base watchers stop at the shutdown signal, or
	// when run returns early.
	wctx, stopWatchers := context.WithCancel(ctx)
	var watchers sync.WaitGroup
	defer func() {
		stopWatchers()
		watchers.Wait()
	}()
	// The knowledge base index is this engine's own file; its misses go to
	// the line's store, where every engine adds to them.
	ix, err := kb.Open(kb.IndexPath(cfg.Engine.DataDir), kb.NewMissTable(db))
	if err != nil {
		return err
	}
	defer ix.Close() // after the drain
	svc, rt, err := startFlows(wctx, &watchers, cfg, ix, store, log)
	if err != nil {
		return err
	}
	speechCfg, synth, closeSpeech, speechMetrics := startSpeech(cfg.Speech, cfg.Engine.DataDir, log.With("component", "speech"))
	defer closeSpeech() // after the drain and the telephony's close
	eng := &ivr.Engine{
		Speech:   speechCfg,
		Calls:    calls,
		Metrics:  ivr.NewMetrics(),
		Log:      log,
		Timing:   ivr.Timing{FirstDigit: cfg.Engine.FirstDigitTimeout.Duration, Retries: cfg.Engine.MenuRetries},
		Flow:     rt,
		Services: svc,
		Synth:    synth,
		Lang:     cfg.Engine.Language,
	}
	synth.Metrics = eng.Metrics
	// The flows' fixed sentences are rendered before the first call needs
	// them, and again when the flows change.
	watchers.Go(func() { warmPrompts(wctx, rt, synth, cfg.Engine.Language, log.With("component", "prompts")) })
	if cfg.Engine.RecordCalls {
		eng.RecDir = filepath.Join(cfg.Engine.DataDir, "recordings")
	}

	tel, err := startTelephony(cfg, eng, db, store, log)
	if err != nil {
		return err
	}
	defer tel.close()
	if cfg.Retention.Enabled {
		pol, _ := cfg.Retention.Policy() // validated with the configuration
		h, m, _ := tickets.ParseAt(cfg.Retention.At)
		job := retentionJob{store: store, policy: pol, hour: h, minute: m, now: time.Now, after: time.After,
			log: log.With("component", "retention"),
			opts: tickets.RetentionOptions{Actor: "retention", Engine: store.Engine(),
				RecordingsDir: recordingsDir(cfg.Engine.DataDir)}}
		watchers.Go(func() { job.run(wctx) })
	}
	if cfg.Surveys.Enabled && tel.surveys != nil {
		// Tickets resolved from now on get a survey call, through the
		// telephony engine.telephony selects.
		scfg := survey.Config{Store: store, Flow: rt, Period: cfg.Surveys.Period.Duration, Since: time.Now(), Allowed: tel.outboundAllowed}
		watchers.Go(func() {
			runSurveys(wctx, tel.surveys, scfg, cfg.Surveys.Every.Duration, eng.Metrics, log.With("component", "surveys", "telephony", cfg.Engine.Telephony))
		})
	}

	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http listen on %s: %w", cfg.HTTP.Listen, err)
	}
	reg := newRegistry(eng, calls, db, tel)
	httpSrv := &http.Server{Handler: httpHandler(eng, reg, tel, cfg.HTTP.Pprof), ReadHeaderTimeout: 5 * time.Second}
	httpErr := make(chan error, 2)
	reg.MustRegister(speechMetrics...) // the shared VAD's, served with the rest
	stopChat, chatAns, err := startChat(cfg, rt, svc, store, reg, log, httpErr)
	if err != nil {
		ln.Close()
		return err
	}
	stopConsole, con, err := startConsole(wctx, &watchers, cfg, store, queue.Callbacks{DB: db}, chatAns, svc, log, httpErr)
	if err != nil {
		ln.Close()
		stopChat(context.Background())
		return err
	}
	if con != nil {
		reg.MustRegister(consoleMetrics{con})
	}
	go func() { httpErr <- httpSrv.Serve(ln) }()

	telCtx, stopTel := context.WithCancel(context.Background())
	defer stopTel()
	telErr := tel.serve(telCtx)

	log.Info("ivrd ready", "sip", tel.sipAddr, "http", cfg.HTTP.Listen, "data_dir", cfg.Engine.DataDir, "telephony", cfg.Engine.Telephony)
	select {
	case <-ctx.Done():
	case err := <-telErr:
		return err
	case err := <-httpErr:
		return fmt.Errorf("http: %w", err)
	}

	// Drain: refuse new calls, let the active ones finish within the grace
	// period. A second signal cuts the grace short.
	graceCtx, cancel := context.WithTimeout(context.Background(), cfg.Engine.ShutdownGrace.Duration)
	defer cancel()
	again := make(chan os.Signal, 1)
	signal.Notify(again, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(again)
	go func() {
		select {
		case <-again:
			log.Warn("second signal: ending the grace period now")
			cancel()
		case <-graceCtx.Done():
		}
	}()
	log.Info("shutdown requested: draining", "grace", cfg.Engine.ShutdownGrace.Duration)
	drainErr := eng.Drain(graceCtx)

	stopTel()
	tel.wait()
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer scancel()
	_ = httpSrv.Shutdown(sctx)
	stopConsole(sctx)
	stopChat(sctx)
	if drainErr != nil {
		return drainErr
	}
	log.Info("ivrd stopped cleanly")
	return nil
}

// newRegistry gathers what GET /metrics serves: the engine's metrics, the
// call log's, the store's, the telephony adapters', and the standard
// process and Go runtime collectors of client_golang (process_*, go_*).
func newRegistry(eng *ivr.Engine, calls *tickets.CallLog, db *storepkg.DB, tel *telephony) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		eng.Metrics,
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ivr_calllog_dropped_total", Help: "Call record writes dropped because the write queue was full."},
			func() float64 { return float64(calls.Dropped()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ivr_calllog_failed_total", Help: "Call record writes the database refused."},
			func() float64 { return float64(calls.Failed()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ivr_store_write_retries_total", Help: "Database writes run again after PostgreSQL could not be reached (nothing was committed)."},
			func() float64 { return float64(db.WriteStats().Retries) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ivr_store_write_failures_total", Help: "Database writes that failed because PostgreSQL could not be reached for the whole retry time or did not answer in time, or whose commit's answer was lost."},
			func() float64 { return float64(db.WriteStats().Failures) }),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
	)
	for _, m := range tel.metrics {
		reg.MustRegister(m)
	}
	return reg
}

// httpHandler serves /healthz (200 once the telephony adapter listens, 503
// before and while draining), /metrics (reg, in the format the scraper
// asks for: Prometheus text by default) and, optionally, Go profiles.
func httpHandler(eng *ivr.Engine, reg *prometheus.Registry, tel *telephony, profiles bool) http.Handler {
	mux := http.NewServeMux()
	if profiles {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if !tel.ready() {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		if eng.Draining() {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(eng.Log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	}))
	return mux
}

// recordingsDir is where the engine writes its call recordings, made
// absolute (the retention job deletes only files inside it).
func recordingsDir(dataDir string) string {
	dir := filepath.Join(dataDir, "recordings")
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}

// runSurveys places the survey calls due every period until ctx ends.
func runSurveys(ctx context.Context, c survey.Caller, cfg survey.Config, every time.Duration, m *ivr.Metrics, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := survey.Round(ctx, c, cfg, m, log); err != nil && ctx.Err() == nil {
			log.Error("survey calls not placed", "err", err)
		}
	}
}
