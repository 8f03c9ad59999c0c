package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/govline/ivr/dialplan/sip/siptest"
)

// The web chat under load on a real ivrd, with phone calls running: 500
// chat sessions held open, 50 of them active (a message every 2 s each,
// through the shipped main.lua and its knowledge base), and one client
// flooding its socket with 1,000 messages a second. The flood is cut to
// its session's rate and refused with "rate"; the other chats keep
// answering; two phone calls keep receiving their audio without a gap;
// and every held session still answers at the end.
func TestChatLoadLeavesCallsAlone(t *testing.T) {
	if testing.Short() {
		t.Skip("load")
	}
	const (
		held      = 500
		active    = 50
		flood     = 1000 // messages a second from one client
		loadFor   = 6 * time.Second
		maxRTPGap = 300 * time.Millisecond
	)
	conf := alwaysOpen(t)
	f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "[chat]\nnew_sessions = 10000\n")
	f.Close()
	d := startDaemon(t, "IVR_CONFIG="+conf, "IVR_SPEECH=false")
	if !waitFor(90*time.Second, func() bool { return strings.Contains(d.logs.String(), `"msg":"prompts ready"`) }) {
		t.Fatal("the flows' sentences were not rendered at start")
	}
	url := fmt.Sprintf("ws://127.0.0.1:%d/ws", d.chatPort)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Two callers on the phone, listening to the line.
	var calls []*rtpCaller
	for range 2 {
		dg, _ := siptest.NewPhone(t, "+40721000111")
		c, err := dialRTP(t, dg, d)
		if err != nil {
			t.Fatal(err)
		}
		calls = append(calls, c)
	}

	open := func() (*websocket.Conn, error) {
		c, _, err := websocket.Dial(ctx, url, nil)
		if err != nil {
			return nil, err
		}
		if err := wsjson.Write(ctx, c, map[string]string{"type": "hello", "lang": "ro"}); err != nil {
			return nil, err
		}
		return c, nil
	}
	// until reads c's messages until one of type typ (or "end").
	until := func(c *websocket.Conn, typ string) (map[string]any, error) {
		for {
			var m map[string]any
			if err := wsjson.Read(ctx, c, &m); err != nil {
				return nil, err
			}
			if m["type"] == typ || m["type"] == "end" {
				return m, nil
			}
		}
	}
	start := time.Now()
	conns := make([]*websocket.Conn, held)
	var wg sync.WaitGroup
	var openErr atomic.Value
	for i := range held {
		wg.Go(func() {
			c, err := open()
			if err == nil {
				_, err = until(c, "ask")
			}
			if err != nil {
				openErr.Store(err)
				return
			}
			conns[i] = c
		})
		if i%50 == 49 {
			wg.Wait()
		}
	}
	wg.Wait()
	if err, _ := openErr.Load().(error); err != nil {
		t.Fatalf("opening %d sessions: %v", held, err)
	}
	t.Logf("%d chat sessions open, each at its first question, in %v", held, time.Since(start).Round(time.Millisecond))
	for _, c := range conns {
		defer c.CloseNow()
	}

	loadStart := time.Now()
	stop := make(chan struct{})
	var mu sync.Mutex
	var rtts []time.Duration
	var chatErrs []error
	for i := range active {
		c := conns[i]
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-time.After(2 * time.Second):
				}
				sent := time.Now()
				if err := wsjson.Write(ctx, c, map[string]string{"type": "text", "text": "mi-am pierdut buletinul"}); err != nil {
					mu.Lock()
					chatErrs = append(chatErrs, err)
					mu.Unlock()
					return
				}
				_, err := until(c, "say")
				rtt := time.Since(sent)
				if err == nil {
					_, err = until(c, "ask")
				}
				mu.Lock()
				if err != nil {
					chatErrs = append(chatErrs, err)
				} else {
					rtts = append(rtts, rtt)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	// The flood: 1,000 messages a second from one socket, its answers
	// counted by a reader.
	fc, err := open()
	if err != nil {
		t.Fatal(err)
	}
	defer fc.CloseNow()
	var refused, taken atomic.Int64
	go func() {
		for {
			var m map[string]any
			if err := wsjson.Read(ctx, fc, &m); err != nil {
				return
			}
			switch {
			case m["type"] == "error" && m["code"] == "rate":
				refused.Add(1)
			case m["type"] == "you":
				taken.Add(1)
			}
		}
	}()
	sent := 0
	tick := time.NewTicker(time.Second / flood)
	for time.Since(loadStart) < loadFor {
		<-tick.C
		if err := wsjson.Write(ctx, fc, map[string]string{"type": "text", "text": "spam"}); err != nil {
			t.Fatalf("the flooding socket after %d messages: %v", sent, err)
		}
		sent++
	}
	tick.Stop()
	loadEnd := time.Now()
	close(stop)
	wg.Wait()

	// Every held session still answers.
	var dead atomic.Int64
	for i := active; i < held; i++ {
		c := conns[i]
		wg.Go(func() {
			if err := wsjson.Write(ctx, c, map[string]string{"type": "text", "text": "pașaport"}); err != nil {
				dead.Add(1)
				return
			}
			if m, err := until(c, "say"); err != nil || m["type"] != "say" {
				dead.Add(1)
			}
		})
		if i%50 == 49 {
			wg.Wait()
		}
	}
	wg.Wait()

	slices.Sort(rtts)
	worstGap := time.Duration(0)
	for _, c := range calls {
		worstGap = max(worstGap, c.maxGap(loadStart, loadEnd))
	}
	time.Sleep(500 * time.Millisecond) // the flood's last answers
	t.Logf("flood: %d messages in %v (%.0f/s); %d taken, %d refused with \"rate\"", sent, loadEnd.Sub(loadStart).Round(time.Millisecond),
		float64(sent)/loadEnd.Sub(loadStart).Seconds(), taken.Load(), refused.Load())
	if len(rtts) > 0 {
		t.Logf("active chats: %d round trips through main.lua, p50 %v, p99 %v, max %v", len(rtts), rtts[len(rtts)/2], rtts[len(rtts)*99/100], rtts[len(rtts)-1])
	}
	t.Logf("phone calls: longest gap between two packets during the load %v", worstGap)
	if len(chatErrs) > 0 {
		t.Errorf("%d active chats failed, the first: %v", len(chatErrs), chatErrs[0])
	}
	if len(rtts) < active*2 {
		t.Errorf("only %d round trips from %d active chats in %v", len(rtts), active, loadFor)
	}
	// A session takes 5 a second, 10 at once: the flood gets no more.
	if allowed := int64(5*loadFor.Seconds()) + 10 + 5; taken.Load() > allowed {
		t.Errorf("the flooding client had %d messages taken in %v, its rate allows %d", taken.Load(), loadFor, allowed)
	}
	if refused.Load() < int64(sent)/2 {
		t.Errorf("only %d of %d flooding messages refused", refused.Load(), sent)
	}
	if n := dead.Load(); n > 0 {
		t.Errorf("%d of %d held sessions no longer answer after the load", n, held-active)
	}
	// The volumes in /metrics.
	open_, _ := strconv.Atoi(d.metric(t, "ivr_chat_sessions"))
	rate, _ := strconv.ParseFloat(d.metric(t, `ivr_chat_refused_total{reason="rate"}`), 64)
	msgs, _ := strconv.ParseFloat(d.metric(t, "ivr_chat_messages_total"), 64)
	t.Logf("/metrics: %d sessions alive, %.0f refused for their rate, %.0f messages taken", open_, rate, msgs)
	if open_ < held+1 || int64(rate) < refused.Load() || int64(msgs) < int64(len(rtts))+taken.Load() {
		t.Errorf("/metrics does not count the load: %d sessions alive (want %d+), %.0f refused for rate (the client saw %d), %.0f messages (want %d+)",
			open_, held+1, rate, refused.Load(), msgs, int64(len(rtts))+taken.Load())
	}
	if worstGap > maxRTPGap {
		t.Errorf("a phone caller received no audio for %v during the chat load, want under %v", worstGap, maxRTPGap)
	}
}
