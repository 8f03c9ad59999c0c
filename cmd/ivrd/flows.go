package main

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/flows/kb"
	"github.com/govline/ivr/tickets"
)

// flowsConfig maps the [flows] table onto the runtime's configuration.
func flowsConfig(cfg Config) flows.Config {
	return flows.Config{
		Routes:  cfg.Flows.Routes,
		Default: cfg.Flows.Default,
		Limits:  flows.Limits{CPU: cfg.Flows.CPULimit.Duration, Wall: cfg.Flows.CallLimit.Duration},
	}
}

// startFlows loads the flows, imports the knowledge base and builds the
// services flows use. Until ctx ends it reloads edited flows (when
// flows.reload is on), re-imports edited articles, and does both on SIGHUP.
// A flow folder that does not load is an error: the line does not start on
// a broken flow. A knowledge base that does not import at start is logged
// and the base already in the database keeps answering.
//
// The watchers are joined by wg.
func startFlows(ctx context.Context, wg *sync.WaitGroup, cfg Config, ix *kb.Index, st *tickets.Store, log *slog.Logger) (flows.Services, *flows.Runtime, error) {
	var svc flows.Services
	cal, err := tickets.NewCalendar(cfg.Calendar.CalendarConfig)
	if err != nil {
		return svc, nil, fmt.Errorf("calendar: %w", err)
	}
	dl, err := tickets.NewDeadlines(cfg.Deadlines, cal)
	if err != nil {
		return svc, nil, fmt.Errorf("deadlines: %w", err)
	}
	st.SetDeadlines(dl)

	rt, err := flows.Load(cfg.Engine.FlowsDir, flowsConfig(cfg))
	if err != nil {
		return svc, nil, fmt.Errorf("flows: %w", err)
	}
	kbDir := filepath.Join(cfg.Engine.FlowsDir, "kb")
	importKB := func(why string) {
		start := time.Now()
		n, err := ix.ImportDir(context.Background(), kbDir)
		if err != nil {
			log.Error("knowledge base not imported: the previous articles keep answering", "dir", kbDir, "why", why, "err", err)
			return
		}
		log.Info("knowledge base imported", "articles", n, "why", why, "took", time.Since(start).Round(time.Millisecond))
	}
	importKB("start")

	svc = flows.Services{
		KB:         flows.KBIndex{Index: ix, RecordMisses: true},
		Desk:       flows.TicketDesk{Store: st},
		Transcript: flows.TicketTranscript{Store: st},
		Calendar:   cal,
		HoursText:  map[string]string{"ro": cfg.Calendar.TextRO, "en": cfg.Calendar.TextEN},
		Queues:     flowQueues(cfg),
	}

	if cfg.Flows.Reload {
		wg.Go(func() { rt.Watch(ctx, log.With("component", "flows")) })
	}
	wg.Go(func() { watchKB(ctx, kbDir, importKB) })
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	wg.Go(func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-hup:
				if err := rt.Reload(); err != nil {
					log.Error("SIGHUP: flows not reloaded; the previous version keeps serving", "err", err)
				} else {
					log.Info("SIGHUP: flows reloaded", "version", rt.Version())
				}
				importKB("SIGHUP")
			case <-ctx.Done():
				return
			}
		}
	})
	return svc, rt, nil
}

// flowQueues are the queues a flow may transfer to: those of the embedded
// line's agent queue; nil (any name) when a PBX holds the queues.
func flowQueues(cfg Config) []string {
	if cfg.Engine.Telephony != "sip" || !cfg.SIP.Queue.Enabled {
		return nil
	}
	qs := make([]string, 0, len(cfg.SIP.Queue.Queues))
	for name := range cfg.SIP.Queue.Queues {
		qs = append(qs, name)
	}
	sort.Strings(qs)
	return qs
}

// kbPoll is how often the article folder is checked for edits.
const kbPoll = 2 * time.Second

// watchKB calls importKB when a file under dir changes (added, removed,
// edited), until ctx ends.
func watchKB(ctx context.Context, dir string, importKB func(why string)) {
	last := kbStamp(dir)
	t := time.NewTicker(kbPoll)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if st := kbStamp(dir); st != last {
				last = st
				importKB("articles changed")
			}
		case <-ctx.Done():
			return
		}
	}
}

// kbStamp summarises the folder: file count, total size and newest mtime.
func kbStamp(dir string) [3]int64 {
	var st [3]int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			st[0]++
			st[1] += fi.Size()
			st[2] = max(st[2], fi.ModTime().UnixNano())
		}
		return nil
	})
	return st
}
