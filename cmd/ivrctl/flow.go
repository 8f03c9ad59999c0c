package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/flows/flowtest"
	"github.com/govline/ivr/flows/sim"
	"github.com/govline/ivr/tickets"
)

const flowUsage = `Usage: ivrctl flow SUBCOMMAND [FLAGS] ARGS

Subcommands:
  lint PATH...       check flow files (or folders of them) without running them
  simulate FLOW      talk to a flow in text: each line you type is what the caller
                     says, "#123" presses keys, "!" before either says it over the
                     prompt (barge-in), an empty line is silence
  test PATH...       run conversation tests (*.conv files, or folders of them)

See docs/flows.md.
`

// stdin is what flow simulate reads; tests replace it.
var stdin io.Reader = os.Stdin

// runFlow dispatches "ivrctl flow SUBCOMMAND".
func runFlow(args []string, stdout, stderr io.Writer) int {
	return group{name: "flow", usage: flowUsage, missing: " (lint, simulate or test)", subs: map[string]command{
		"lint":     runFlowLint,
		"simulate": runFlowSimulate,
		"sim":      runFlowSimulate,
		"test":     runFlowTest,
	}}.run(args, stdout, stderr)
}

func runFlowLint(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("flow lint", "ivrctl flow lint [--max-prompt 8s] PATH...", stderr)
	_ = dataFlag(fs) // accepted (global --data is passed on) but unused
	maxPrompt := fs.Duration("max-prompt", flows.DefaultMaxPrompt, "warn about fixed sentences that take longer than this to say (0: no warning)")
	pos, status, ok := parseStatus(fs, args)
	if !ok {
		return status
	}
	if len(pos) == 0 {
		return usageError(fs, stderr, "missing PATH (a flow file or a folder of them)")
	}
	for _, p := range pos {
		if _, err := os.Stat(p); err != nil {
			return fail(stderr, fmt.Errorf("%s: %w", p, unwrapPath(err)))
		}
	}
	diags := flows.Lint(pos...)
	for _, d := range diags {
		fmt.Fprintln(stdout, d.String())
	}
	if *maxPrompt > 0 {
		// Warnings: printed, but the flow is good to load.
		for _, d := range flows.LongPrompts(*maxPrompt, pos...) {
			fmt.Fprintln(stdout, d.String())
		}
	}
	if len(diags) > 0 {
		fmt.Fprintf(stderr, "ivrctl flow lint: %d problem(s)\n", len(diags))
		return exitError
	}
	return exitOK
}

func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// flowKB is the knowledge base of the tools: the articles of FLOWS/kb
// imported into a temporary database (see flowtest.OpenKB).
func flowKB(flowsDir string) (flows.Knowledge, func(), error) {
	return flowtest.OpenKB(context.Background(), flowsDir)
}

func parseClock(s string) (func() time.Time, error) {
	if s == "" {
		return time.Now, nil
	}
	loc := tickets.DefaultCalendar().Location()
	t, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
	if err != nil {
		return nil, fmt.Errorf("--time %q: want YYYY-MM-DD HH:MM (Bucharest time)", s)
	}
	start := time.Now()
	return func() time.Time { return t.Add(time.Since(start)) }, nil
}

func runFlowSimulate(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("flow simulate", "ivrctl flow simulate FLOW [--time 'YYYY-MM-DD HH:MM'] [--from NUMBER] [--to NUMBER] [--lang ro|en] [--speech embedded|open|off] [--keys-only] [--chat] [--data DIR] [-v]", stderr)
	data := &dataFlags{}
	fs.StringVar(&data.data, "data", "", "use the engine's data folder `DIR` (it must hold ivrd's ivr.db, unless --store names the database, and kb.db): its knowledge base, and real tickets and transcripts (default: FLOWS/kb and an in-memory desk)")
	fs.StringVar(&data.store, "store", "", "with --data: the line's database `URL` (ivrd's store.url) for the tickets and transcripts")
	at := fs.String("time", "", "pretend the call happens at `TIME` (YYYY-MM-DD HH:MM, Bucharest), for working hours")
	from := fs.String("from", "+40700000000", "the caller's `NUMBER`")
	to := fs.String("to", "1919", "the dialed `NUMBER`")
	lang := fs.String("lang", "ro", "the call's starting language, ro or en")
	mode := fs.String("speech", string(flowtest.DefaultSpeech), "what the line hears of words: embedded (the shipped recognizer: only the phrases a question lists), open (an open-vocabulary recognizer: any words), off (keys only)")
	keysOnly := fs.Bool("keys-only", false, "a keys-only line (speech off): the same as --speech off")
	chat := fs.Bool("chat", false, "the portal's web chat instead of a call: call.channel is \"chat\", the typed words are taken as written")
	verbose := fs.Bool("v", false, "print the flow's log lines on stderr")
	pos, status, ok := parseStatus(fs, args)
	if !ok {
		return status
	}
	if len(pos) != 1 {
		return usageError(fs, stderr, "want one FLOW file, got %d arguments", len(pos))
	}
	if *lang != "ro" && *lang != "en" {
		return usageError(fs, stderr, "--lang %q: want ro or en", *lang)
	}
	speech, err := sim.ParseSpeechMode(*mode)
	if err != nil {
		return usageError(fs, stderr, "--%v", err)
	}
	if *keysOnly {
		speech = sim.SpeechOff
	}
	now, err := parseClock(*at)
	if err != nil {
		return usageError(fs, stderr, "%v", err)
	}
	flow := pos[0]
	dir := filepath.Dir(flow)
	// Only this flow and its modules: a broken file next to it does not
	// stop it.
	rt, err := flows.Load(dir, flows.Config{Default: filepath.Base(flow), OnlyRouted: true})
	if err != nil {
		return fail(stderr, err)
	}
	log := slog.New(slog.DiscardHandler)
	if *verbose {
		log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	desk := sim.NewDesk()
	svc := flows.Services{Desk: desk, Transcript: &sim.Transcript{}, Calendar: tickets.DefaultCalendar(),
		Log: log, Now: now, Queues: flowtest.DefaultQueues}
	useStore := data.data != "" || data.store != ""
	if useStore {
		if path := tickets.DBPath(data.dir()); data.store == "" {
			if _, err := os.Stat(path); err != nil {
				return fail(stderr, fmt.Errorf("--data %s: no store there (no %s): give the data folder of ivrd (engine.data_dir)", data.data, tickets.DBFile))
			}
		}
		st, err := openConn(data, false)
		if err != nil {
			return fail(stderr, err)
		}
		defer st.db.Close()
		ix, err := openIndex(data, false)
		if err != nil {
			return fail(stderr, err)
		}
		defer ix.Close()
		svc.KB = flows.KBIndex{Index: ix}
		svc.Desk = flows.TicketDesk{Store: st.Store}
		svc.Transcript = flows.TicketTranscript{Store: st.Store}
	} else {
		k, closeKB, err := flowKB(dir)
		if err != nil {
			return fail(stderr, err)
		}
		defer closeKB()
		svc.KB = k
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ch := sim.NewChannel(stdin, stdout)
	ch.Mode = speech
	if *chat {
		ch.Mode, ch.Chat = sim.SpeechOpen, true
	}
	ch.Problem = func(line, why string) { fmt.Fprintf(stderr, "note: %q: %s\n", line, why) }
	o := rt.Run(ctx, flows.Facts{CallID: "sim-" + time.Now().Format("150405"), Caller: *from, Called: *to, Lang: *lang, Start: now()}, ch, svc)
	for _, t := range desk.Opened() {
		fmt.Fprintf(stdout, "ticket: %s service=%s priority=%s level=%d\n", t.Status.Number, t.Service, t.Priority, t.Level)
	}
	if useStore && o.Ticket != "" {
		fmt.Fprintf(stdout, "ticket: %s (ivrctl tickets show %s)\n", o.Ticket, o.Ticket)
	}
	fmt.Fprintln(stdout, flowtest.EndLine(o))
	if o.Err != nil {
		fmt.Fprintf(stderr, "ivrctl flow simulate: the flow failed: %v\n", o.Err)
		return exitError
	}
	return exitOK
}

func runFlowTest(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("flow test", "ivrctl flow test PATH... [-v]", stderr)
	_ = dataFlag(fs)
	verbose := fs.Bool("v", false, "print every conversation, also of the tests that pass")
	pos, status, ok := parseStatus(fs, args)
	if !ok {
		return status
	}
	if len(pos) == 0 {
		return usageError(fs, stderr, "missing PATH (a .conv test file or a folder of them)")
	}
	files, err := flowtest.Files(pos...)
	if err != nil {
		return fail(stderr, err)
	}
	if len(files) == 0 {
		return fail(stderr, fmt.Errorf("no %s test files in %v", flowtest.Ext, pos))
	}
	passed, failed := 0, 0
	kbs := map[string]flows.Knowledge{}
	for _, f := range files {
		cases, err := flowtest.ParseFile(f)
		if err != nil {
			fmt.Fprintf(stdout, "FAIL %v\n", err)
			failed++
			continue
		}
		dir := flowtest.FlowsDirFor(f)
		kb, seen := kbs[dir]
		if !seen {
			var closeKB func()
			if kb, closeKB, err = flowKB(dir); err != nil {
				return fail(stderr, err)
			}
			defer closeKB()
			kbs[dir] = kb
		}
		r := flowtest.Runner{FlowsDir: dir, KB: kb}
		for _, c := range cases {
			res := r.Run(context.Background(), c)
			flowtest.Report(stdout, res)
			if *verbose && res.Pass {
				for _, l := range res.Conversation {
					fmt.Fprintln(stdout, "    "+l)
				}
			}
			if res.Pass {
				passed++
			} else {
				failed++
			}
		}
	}
	fmt.Fprintf(stdout, "%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		return exitError
	}
	return exitOK
}
