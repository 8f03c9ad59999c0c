package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
)

// ChatResult is the web chat's run: sessions held by one engine while
// phone calls run, measured on the engine (heap after a forced
// collection, RSS, CPU) and from the clients (round trips).
type ChatResult struct {
	Date    string  `json:"date"`
	Machine Machine `json:"machine"`
	Method  string  `json:"method"`

	Idle   int `json:"idle_sessions"`
	Active int `json:"active_sessions"`
	Calls  int `json:"phone_calls"`

	HeapBaseMB         float64 `json:"heap_base_mb"`                        // the calls up, no chat
	HeapIdleKBPerSess  float64 `json:"heap_idle_kb_per_session"`            // the heap's growth over the second half of the idle sessions, per session
	HeapIdleFirstKB    float64 `json:"heap_idle_first_half_kb_per_session"` // over the first half (one-time costs included)
	HeapActiveKBPerSes float64 `json:"heap_active_kb_per_session"`
	RSSBaseMB          float64 `json:"rss_base_mb"`
	RSSIdleMB          float64 `json:"rss_idle_mb"`
	RSSActiveMB        float64 `json:"rss_active_mb"`
	OpenSeconds        float64 `json:"open_seconds"` // to open the idle sessions, each at its first question

	RoundTrips   int     `json:"round_trips"`
	MessagesPerS float64 `json:"messages_per_s"`
	RTTP50Ms     float64 `json:"rtt_p50_ms"`
	RTTP99Ms     float64 `json:"rtt_p99_ms"`
	RTTMaxMs     float64 `json:"rtt_max_ms"`
	CPUPct       float64 `json:"ivrd_cpu_pct"` // during the active window, of one core
	CallsUpEnd   int     `json:"calls_up_at_end"`
	Errors       int     `json:"errors"`
	FirstError   string  `json:"first_error,omitempty"`
}

// chatRun holds idle chat sessions, then makes active ones talk through
// the shipped main.lua (a question typed every second, answered from the
// knowledge base; "da" to its yes/no questions) for window, with calls
// phone calls up, and measures.
func chatRun(e *benchEnv, idle, active, calls int, window time.Duration, out string) (*ChatResult, error) {
	r := &ChatResult{Date: time.Now().UTC().Format(time.RFC3339), Machine: machine(), Idle: idle, Active: active, Calls: calls,
		Method: "one ivrd (speech off) with the shipped flows; the phone calls from sipp (held, key 9 once); the chat clients in ivrbench's process " +
			"on the same 2 cores; heap = ivr_go_heap_objects_bytes right after a forced collection (/debug/pprof/heap?gc=1); " +
			"a round trip is a typed message sent to the first message of the flow's answer; each active session types once a second, the sessions spread evenly over the second"}
	dataDir, sippDir, err := e.newRun("chat", window+5*time.Minute)
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(filepath.Dir(dataDir), "ivrd.toml")
	if err := os.WriteFile(conf, []byte("[chat]\nnew_sessions = 10000\n"), 0o644); err != nil {
		return nil, err
	}
	chatPort, err := freePort()
	if err != nil {
		return nil, err
	}
	srv, err := startIVRD(ivrdOptions{bin: e.bin, flowsDir: filepath.Join(e.root, "flows"), dataDir: dataDir,
		firstDigit: time.Hour, rtpTimeout: 30 * time.Second,
		extra: []string{"IVR_CONFIG=" + conf, fmt.Sprintf("IVR_CHAT_LISTEN=127.0.0.1:%d", chatPort), "IVR_HTTP_PPROF=true"}})
	if err != nil {
		return nil, err
	}
	defer srv.stop()

	if calls > 0 {
		sp := &sippRun{Scenario: filepath.Join(e.root, "bench", "scenarios", "uac_hold_dtmf9_"+e.media+".xml"),
			Dir: sippDir, Target: srv.sipAddr, Calls: calls, Rate: 50, Duration: window + 4*time.Minute, Timeout: window + 6*time.Minute}
		if err := sp.start(); err != nil {
			return nil, err
		}
		defer func() { _ = sp.cmd.Process.Kill(); <-sp.done }()
		limit := time.Now().Add(time.Minute)
		for up := 0; up < calls; {
			m, err := srv.metrics()
			if err != nil {
				return nil, err
			}
			if up = int(m["ivr_active_calls"]); time.Now().After(limit) {
				return nil, fmt.Errorf("only %d of %d calls up after a minute", up, calls)
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	heap := func() float64 { // MB, after a collection
		if res, err := http.Get("http://" + srv.http + "/debug/pprof/heap?gc=1"); err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
		return heapMB(srv)
	}
	time.Sleep(time.Second)
	r.HeapBaseMB, r.RSSBaseMB = round(heap(), 2), rss(srv)

	ctx, cancel := context.WithTimeout(context.Background(), window+5*time.Minute)
	defer cancel()
	url := fmt.Sprintf("ws://127.0.0.1:%d/ws", chatPort)
	var errs atomic.Int64
	var firstErr atomic.Value
	fail := func(err error) {
		if errs.Add(1) == 1 {
			firstErr.Store(err.Error())
		}
	}
	type session struct {
		c    *websocket.Conn
		last map[string]any // the last message read
	}
	read := func(s *session, types ...string) error {
		for {
			var m map[string]any
			if err := wsjson.Read(ctx, s.c, &m); err != nil {
				return err
			}
			s.last = m
			if t, _ := m["type"].(string); slices.Contains(types, t) {
				return nil
			}
		}
	}
	open := func() (*session, error) {
		c, _, err := websocket.Dial(ctx, url, nil)
		if err != nil {
			return nil, err
		}
		s := &session{c: c}
		if err := wsjson.Write(ctx, c, map[string]string{"type": "hello", "lang": "ro"}); err != nil {
			return nil, err
		}
		return s, read(s, "ask")
	}
	openAll := func(n int) []*session {
		ss := make([]*session, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				s, err := open()
				if err != nil {
					fail(fmt.Errorf("open: %w", err))
					return
				}
				ss[i] = s
			})
			if i%100 == 99 {
				wg.Wait()
			}
		}
		wg.Wait()
		return ss
	}
	// The idle sessions in two halves: the heap's growth over the second
	// half is what a session costs (the first pays one-time costs too:
	// the runtime's and the flows' first use).
	start := time.Now()
	idles := openAll(idle / 2)
	hHalf := heap()
	idles = append(idles, openAll(idle-idle/2)...)
	r.OpenSeconds = round(time.Since(start).Seconds(), 2)
	defer func() {
		for _, s := range idles {
			if s != nil {
				s.c.CloseNow()
			}
		}
	}()
	hIdle := heap()
	r.HeapIdleKBPerSess = round((hIdle-hHalf)*1024/float64(max(idle-idle/2, 1)), 1)
	r.HeapIdleFirstKB = round((hHalf-r.HeapBaseMB)*1024/float64(max(idle/2, 1)), 1)
	r.RSSIdleMB = rss(srv)

	actives := openAll(active)
	var mu sync.Mutex
	var rtts []time.Duration
	stop := make(chan struct{})
	var wg sync.WaitGroup
	cpu0, _ := procCPU(srv.pid(), e.clk)
	t0 := time.Now()
	var peak float64
	for i, s := range actives {
		if s == nil {
			continue
		}
		wg.Go(func() {
			// Each session at its own phase of the second: citizens do not
			// type in step (all at once, the round trip measures a queue
			// of 200 messages arriving in the same millisecond).
			time.Sleep(time.Duration(i) * time.Second / time.Duration(max(len(actives), 1)))
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				text := "mi-am pierdut buletinul"
				if s.last["expect"] == "yesno" {
					text = "da"
				}
				sent := time.Now()
				if err := wsjson.Write(ctx, s.c, map[string]string{"type": "text", "text": text}); err != nil {
					fail(err)
					return
				}
				if err := read(s, "say", "ask"); err != nil {
					fail(err)
					return
				}
				rtt := time.Since(sent)
				if s.last["type"] == "say" {
					if err := read(s, "ask"); err != nil {
						fail(err)
						return
					}
				}
				mu.Lock()
				rtts = append(rtts, rtt)
				mu.Unlock()
			}
		})
	}
	time.Sleep(window / 4)
	// Profiles of the active window, kept in the run's folder (ivrbench
	// -keep keeps it): a CPU profile of its middle half, the heap at its
	// peak.
	prof := filepath.Dir(dataDir)
	save(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", srv.http, int(window.Seconds()/2)), filepath.Join(prof, "cpu.pprof"))
	peak = heap()
	save("http://"+srv.http+"/debug/pprof/heap", filepath.Join(prof, "heap.pprof"))
	r.RSSActiveMB = rss(srv)
	time.Sleep(window / 4)
	close(stop)
	wg.Wait()
	cpu1, _ := procCPU(srv.pid(), e.clk)
	elapsed := time.Since(t0)
	for _, s := range actives {
		if s != nil {
			s.c.CloseNow()
		}
	}
	r.HeapActiveKBPerSes = round((peak-hIdle)*1024/float64(max(active, 1)), 1)
	r.CPUPct = round((cpu1-cpu0)/elapsed.Seconds()*100, 1)
	slices.Sort(rtts)
	r.RoundTrips = len(rtts)
	r.MessagesPerS = round(float64(len(rtts))/elapsed.Seconds(), 1)
	if n := len(rtts); n > 0 {
		r.RTTP50Ms = round(float64(rtts[n/2].Microseconds())/1000, 2)
		r.RTTP99Ms = round(float64(rtts[n*99/100].Microseconds())/1000, 2)
		r.RTTMaxMs = round(float64(rtts[n-1].Microseconds())/1000, 2)
	}
	if m, err := srv.metrics(); err == nil {
		r.CallsUpEnd = int(m["ivr_active_calls"])
	}
	r.Errors = int(errs.Load())
	r.FirstError, _ = firstErr.Load().(string)

	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return r, err
	}
	fmt.Fprintf(e.out, "chat: %d idle, %d active, %d calls: heap %.1f KB per idle session, %.1f KB per active one; round trip p50 %.2f ms, p99 %.2f ms (%d); ivrd CPU %.0f%%; %d errors\n",
		idle, active, calls, r.HeapIdleKBPerSess, r.HeapActiveKBPerSes, r.RTTP50Ms, r.RTTP99Ms, r.RoundTrips, r.CPUPct, r.Errors)
	return r, os.WriteFile(out, append(b, '\n'), 0o644)
}

// save writes what url answers to path (a profile), quietly.
func save(url, path string) {
	res, err := http.Get(url)
	if err != nil {
		return
	}
	defer res.Body.Close()
	if f, err := os.Create(path); err == nil {
		_, _ = io.Copy(f, res.Body)
		f.Close()
	}
}

func rss(d *ivrd) float64 {
	v, _ := procRSS(d.pid())
	return round(v, 1)
}
