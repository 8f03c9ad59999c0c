package ari

import (
	"context"
	"math"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/dialplan/ari/aritest"
	"github.com/govline/ivr/ivr"
)

func tone(rate int, d time.Duration) []int16 {
	n := rate * int(d/time.Millisecond) / 1000
	pcm := make([]int16, n)
	for i := range pcm {
		pcm[i] = int16(8000 * math.Sin(2*math.Pi*440*float64(i)/float64(rate)))
	}
	return pcm
}

// A full call through the real engine: StasisStart, answer, bridge,
// ExternalMedia; the greeting is heard over RTP, the caller's audio reaches
// the engine's recording, a key press (ChannelDtmfReceived) ends the menu
// and the engine hangs up; the record and protocol log say so; nothing is
// left in Asterisk or the engine.
func TestFullCall(t *testing.T) {
	for _, format := range []string{"ulaw", "slin16"} {
		t.Run(format, func(t *testing.T) {
			l := startLine(t, func(c *Config) { c.Format = format })
			caller := l.ast.Call("+40721000123", "1919")
			bridged(t, caller)
			rate := caller.Rate()
			if want := map[string]int{"ulaw": 8000, "slin16": 16000}[format]; rate != want {
				t.Fatalf("media rate %d, want %d", rate, want)
			}
			// The greeting arrives as speech.
			if !waitFor(10*time.Second, func() bool { return speechFrames(caller.Heard(), rate) > 25 }) {
				t.Fatalf("no greeting heard: %d samples", caller.HeardLen())
			}
			caller.Say(tone(rate, 600*time.Millisecond))
			time.Sleep(700 * time.Millisecond)
			caller.Press("0")
			select {
			case <-caller.Gone():
			case <-time.After(20 * time.Second):
				t.Fatal("the engine did not hang up after 0")
			}
			rec := l.record(caller.ID)
			if rec.EndReason != string(ivr.EndEngineHangup) || rec.DTMF != "0" || rec.Telephony != "ari" || rec.Caller != "+40721000123" || rec.Called != "1919" {
				t.Errorf("record: %+v", rec)
			}
			if rec.Stats.In < 20 || rec.Stats.Out < 50 {
				t.Errorf("packets in %d out %d", rec.Stats.In, rec.Stats.Out)
			}
			if _, rate := readStereo(t, rec.Recording); rate != caller.Rate() {
				t.Errorf("recording at %d Hz, want %d", rate, caller.Rate())
			}
			evs := l.events(caller.ID)
			for _, want := range []struct{ kind, has string }{
				{"ari.event", `"type":"StasisStart"`},
				{"ari.event", `"type":"ChannelDtmfReceived"`},
				{"ari.request", `"method":"POST","path":"/channels/` + caller.ID + `/answer","status":204`},
				{"ari.request", `"path":"/bridges?bridgeId=ivr-bridge-`},
				{"ari.request", `"path":"/channels/externalMedia?`},
				{"ari.request", `format=` + format},
				{"ari.request", `"method":"DELETE","path":"/channels/` + caller.ID},
				{"ari.media", `"format":"` + format + `"`},
				{"dtmf", "ari 0"},
			} {
				if !hasEvent(evs, want.kind, want.has) {
					t.Errorf("no %s event with %s", want.kind, want.has)
				}
			}
			for _, e := range evs {
				if strings.Contains(e.Detail, "+40721000123") {
					t.Errorf("caller number in the protocol log: %s %s", e.Kind, e.Detail)
				}
				if e.Kind == "ari.event" && strings.Contains(e.Detail, `"digit"`) {
					t.Errorf("digit in the ARI event log: %s", e.Detail)
				}
			}
			l.clean()
		})
	}
}

// The caller's audio reaches the engine: the recording's caller channel
// holds the tone the fake Asterisk sent over RTP.
func TestCallerAudioRecorded(t *testing.T) {
	l := startLine(t, func(c *Config) { c.Format = "slin16" })
	caller := l.ast.Call("0721000124", "1919")
	bridged(t, caller)
	caller.Say(tone(16000, time.Second))
	time.Sleep(1500 * time.Millisecond)
	caller.Hangup()
	rec := l.record(caller.ID)
	if rec.EndReason != string(ivr.EndCallerHangup) {
		t.Fatalf("end reason %s", rec.EndReason)
	}
	stereo, rate := readStereo(t, rec.Recording)
	loud := 0
	for off := 0; off+2*rate/50 <= len(stereo); off += 2 * rate / 50 {
		left := make([]int16, rate/50)
		for i := range left {
			left[i] = stereo[off+2*i]
		}
		if audio.DBFS(left) > -30 {
			loud++
		}
	}
	if loud < 30 {
		t.Errorf("the caller's tone is not in the recording: %d loud frames", loud)
	}
	l.clean()
}

// Handoff: the ticket, language, summary and queue become channel
// variables and the channel continues in the handoff context at the
// queue's extension; the engine does not hang it up.
func TestHandoffContinue(t *testing.T) {
	l := startLine(t, nil)
	caller := l.ast.Call("0721000125", "1919")
	bridged(t, caller)
	c := l.callOf(caller.ID)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := c.Transfer(ctx, ivr.Handoff{Queue: "level1", Ticket: "T-2026-000123", Lang: "ro", Summary: "Card lost\r\nInjected: line"})
	if err != nil {
		t.Fatal(err)
	}
	rec := l.record(caller.ID)
	if rec.EndReason != string(ivr.EndTransferred) {
		t.Errorf("end reason %s", rec.EndReason)
	}
	ch, ok := l.ast.Channel(caller.ID)
	if !ok {
		t.Fatal("the caller's channel was hung up instead of handed over")
	}
	if ch.InStasis || ch.Context != "ivr-handoff" || ch.Extension != "level1" || ch.Priority != 1 {
		t.Errorf("continue: %+v", ch)
	}
	want := map[string]string{"IVR_TICKET": "T-2026-000123", "IVR_LANG": "ro", "IVR_SUMMARY": "Card lost  Injected: line", "IVR_QUEUE": "level1"}
	for k, v := range want {
		if ch.Vars[k] != v {
			t.Errorf("%s = %q, want %q", k, ch.Vars[k], v)
		}
	}
	for _, r := range l.ast.Requests() {
		if r.Method == "DELETE" && r.Path == "/channels/"+caller.ID {
			t.Error("the engine hung up a transferred channel")
		}
	}
	if !hasEvent(l.events(caller.ID), "handoff", `"ticket":"T-2026-000123"`) {
		t.Error("no handoff event")
	}
	l.clean()

	// A queue name that is no dialplan extension is refused before any request.
	caller2 := l.ast.Call("0721000126", "1919")
	bridged(t, caller2)
	if err := l.callOf(caller2.ID).Transfer(ctx, ivr.Handoff{Queue: "level 1,evil", Ticket: "x"}); err == nil {
		t.Error("a queue name with a comma was accepted")
	}
	caller2.Hangup()
	l.record(caller2.ID)
	l.clean()
}

// Asterisk may send the StasisEnd that a continue causes before it
// answers the continue: the handoff still succeeds (the request has a
// context of its own, not the call's, which the StasisEnd ends), so the
// flow does not take the "request registered" path as if it had failed.
func TestHandoffContinueWhenStasisEndComesFirst(t *testing.T) {
	l := startLine(t, nil)
	l.ast.SetStasisEndFirst(true)
	caller := l.ast.Call("0721000128", "1919")
	bridged(t, caller)
	c := l.callOf(caller.ID)
	// The flow hands over from the call's own context.
	if err := c.Transfer(c.Context(), ivr.Handoff{Queue: "level1", Ticket: "T-2026-000124", Lang: "ro", Summary: "s"}); err != nil {
		t.Fatalf("handoff answered after the StasisEnd: %v", err)
	}
	if rec := l.record(caller.ID); rec.EndReason != string(ivr.EndTransferred) {
		t.Errorf("end reason %s", rec.EndReason)
	}
	if ch, ok := l.ast.Channel(caller.ID); !ok || ch.Context != "ivr-handoff" || ch.Extension != "level1" {
		t.Errorf("the channel did not continue: %+v", ch)
	}
	l.clean()
}

func TestHandoffRedirect(t *testing.T) {
	l := startLine(t, func(c *Config) { c.Handoff = HandoffConfig{Mode: "redirect", Endpoint: "PJSIP/agent100"} })
	caller := l.ast.Call("0721000127", "1919")
	bridged(t, caller)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.callOf(caller.ID).Transfer(ctx, ivr.Handoff{Queue: "level1", Ticket: "T-1", Lang: "en", Summary: "s"}); err != nil {
		t.Fatal(err)
	}
	rec := l.record(caller.ID)
	if rec.EndReason != string(ivr.EndTransferred) {
		t.Errorf("end reason %s", rec.EndReason)
	}
	var redirected bool
	for _, r := range l.ast.Requests() {
		if r.Path == "/channels/"+caller.ID+"/redirect" && r.Query.Get("endpoint") == "PJSIP/agent100" {
			redirected = true
		}
	}
	if !redirected {
		t.Error("no redirect request")
	}
	l.clean()
}

// The caller hangs up in every phase of the call: during each setup
// request (slowed down so the hangup lands in it), during the greeting and
// while the menu waits for a key. Each call ends as a caller hangup and
// leaves nothing behind.
func TestHangupEveryPhase(t *testing.T) {
	l := startLine(t, nil)
	l.ast.SetDelay(120 * time.Millisecond)
	for _, after := range []time.Duration{0, 60 * time.Millisecond, 180 * time.Millisecond, 300 * time.Millisecond, 420 * time.Millisecond, 540 * time.Millisecond} {
		caller := l.ast.Call("0721000128", "1919")
		time.Sleep(after)
		caller.Hangup()
		rec := l.record(caller.ID)
		if rec.EndReason != string(ivr.EndCallerHangup) {
			t.Errorf("hangup after %s: end reason %s", after, rec.EndReason)
		}
		l.clean()
	}
	l.ast.SetDelay(0)
	// During the greeting.
	caller := l.ast.Call("0721000129", "1919")
	bridged(t, caller)
	waitFor(5*time.Second, func() bool { return caller.HeardLen() > 8000 })
	caller.Hangup()
	if r := l.record(caller.ID); r.EndReason != string(ivr.EndCallerHangup) {
		t.Errorf("during greeting: %s", r.EndReason)
	}
	l.clean()
	// While the menu waits for a key (after greeting and menu prompts).
	caller = l.ast.Call("0721000130", "1919")
	bridged(t, caller)
	caller.Press("9") // skip to the menu
	time.Sleep(time.Second)
	caller.Hangup()
	if r := l.record(caller.ID); r.EndReason != string(ivr.EndCallerHangup) {
		t.Errorf("during menu: %s", r.EndReason)
	}
	l.clean()
}

// Asterisk goes away mid-call and comes back with no memory of the call:
// the adapter reconnects (backoff with jitter), registers the application
// again, finds the call's channel gone and closes the call with its record;
// a new call then works.
func TestAsteriskRestart(t *testing.T) {
	l := startLine(t, nil)
	caller := l.ast.Call("0721000131", "1919")
	bridged(t, caller)
	l.ast.Stop()
	label := strings.TrimPrefix(l.ast.URL(), "http://")
	if !waitFor(5*time.Second, func() bool { return !l.srv.Metrics().Connected(label) }) {
		t.Fatal("the adapter did not notice Asterisk is gone")
	}
	time.Sleep(300 * time.Millisecond) // a few failed reconnects
	l.ast.Start()
	if !waitFor(10*time.Second, func() bool { return l.ast.Registrations() >= 2 && l.ast.Registered() }) {
		t.Fatal("the application was not registered again")
	}
	rec := l.record(caller.ID)
	if rec.EndReason != string(ivr.EndError) {
		t.Errorf("end reason %s", rec.EndReason)
	}
	if !hasEvent(l.events(caller.ID), "ari.resync", `"exists":false`) {
		t.Error("no resync event")
	}
	if l.srv.Metrics().Reconnects.Load() < 1 {
		t.Error("no reconnect counted")
	}
	l.clean()

	next := l.ast.Call("0721000132", "1919")
	bridged(t, next)
	next.Press("0")
	select {
	case <-next.Gone():
	case <-time.After(20 * time.Second):
		t.Fatal("call after the restart did not end")
	}
	if r := l.record(next.ID); r.EndReason != string(ivr.EndEngineHangup) {
		t.Errorf("call after restart: %s", r.EndReason)
	}
	l.clean()
}

// The WebSocket drops (a network blip) while two calls go on; one caller
// hangs up while it is down. After the reconnect the adapter closes that
// call and keeps the other, which still hears audio and ends normally.
func TestWebSocketDrop(t *testing.T) {
	l := startLine(t, nil)
	stay := l.ast.Call("0721000133", "1919")
	leave := l.ast.Call("0721000134", "1919")
	bridged(t, stay)
	bridged(t, leave)
	l.ast.DropWebSocket()
	leave.Vanish()
	if !waitFor(10*time.Second, func() bool { return l.ast.Registrations() >= 2 && l.ast.Registered() }) {
		t.Fatal("no reconnect")
	}
	if r := l.record(leave.ID); r.EndReason != string(ivr.EndError) {
		t.Errorf("vanished call: %s", r.EndReason)
	}
	before := stay.HeardLen()
	if !waitFor(5*time.Second, func() bool { return stay.HeardLen() > before+8000 }) {
		t.Error("the remaining call hears nothing after the reconnect")
	}
	stay.Press("0")
	select {
	case <-stay.Gone():
	case <-time.After(20 * time.Second):
		t.Fatal("the remaining call did not end")
	}
	if r := l.record(stay.ID); r.EndReason != string(ivr.EndEngineHangup) || r.DTMF != "0" {
		t.Errorf("remaining call: %+v", r)
	}
	l.clean()
}

// A slow ARI: requests that take longer than the request timeout fail the
// call's setup within the bound, the record is closed and everything
// created is removed; requests that are slow but within the bound only
// slow the call down.
func TestSlowARI(t *testing.T) {
	l := startLine(t, func(c *Config) { c.RequestTimeout = 400 * time.Millisecond })
	l.ast.SetDelay(1500 * time.Millisecond)
	caller := l.ast.Call("0721000135", "1919")
	start := time.Now()
	rec := l.record(caller.ID)
	if rec.EndReason != string(ivr.EndError) {
		t.Errorf("end reason %s", rec.EndReason)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the call took %s to end with a 400 ms request timeout", d)
	}
	if !hasEvent(l.events(caller.ID), "ari.request", "timeout after") {
		t.Error("no timed-out request in the protocol log")
	}
	l.ast.SetDelay(0)
	caller.Hangup()
	l.clean()

	l.ast.SetDelay(250 * time.Millisecond)
	slow := l.ast.Call("0721000136", "1919")
	bridged(t, slow)
	slow.Press("0")
	select {
	case <-slow.Gone():
	case <-time.After(20 * time.Second):
		t.Fatal("slow call did not end")
	}
	if r := l.record(slow.ID); r.EndReason != string(ivr.EndEngineHangup) {
		t.Errorf("slow call: %s", r.EndReason)
	}
	l.clean()
}

// Unexpected and malformed messages on the WebSocket are logged, counted
// and ignored; the call in progress goes on and ends normally.
func TestMalformedEvents(t *testing.T) {
	l := startLine(t, nil)
	caller := l.ast.Call("0721000137", "1919")
	bridged(t, caller)
	for _, m := range []string{
		`not json at all`,
		`{"type":`,
		`{}`,
		`{"type":""}`,
		`{"type":"StasisStart"}`,
		`{"type":"StasisStart","channel":{"id":""}}`,
		`{"type":"ChannelDtmfReceived","channel":{"id":"` + caller.ID + `"},"digit":"XYZ"}`,
		`{"type":"ChannelDtmfReceived","channel":"not an object"}`,
		`{"type":"ChannelHangupRequest","channel":{"id":"` + caller.ID + `"},"cause":"sixteen"}`,
		`{"type":"SomethingNewInAsterisk42","channel":{"id":"` + caller.ID + `"}}`,
		`{"type":"ChannelDestroyed","application":"another-app","channel":{"id":"` + caller.ID + `"}}`,
		`{"type":"ChannelDestroyed","channel":{"id":"no-such-channel"}}`,
		`[1,2,3]`,
		`null`,
	} {
		if err := l.ast.SendRaw(m); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	if c := l.callOf(caller.ID); c == nil || c.ctx.Err() != nil {
		t.Fatal("a malformed event ended the call")
	}
	if n := l.srv.Metrics().EventsMalformed.Load(); n < 8 {
		t.Errorf("malformed events counted: %d", n)
	}
	caller.Press("0")
	select {
	case <-caller.Gone():
	case <-time.After(20 * time.Second):
		t.Fatal("call did not end")
	}
	if r := l.record(caller.ID); r.EndReason != string(ivr.EndEngineHangup) || r.DTMF != "0" {
		t.Errorf("record: %+v", r)
	}
	l.clean()
}

// Wrong credentials: the adapter keeps retrying with backoff, logs why
// (without the password) and never becomes ready.
func TestBadCredentials(t *testing.T) {
	ast := aritest.New(t)
	eng := &ivr.Engine{Calls: nil, Metrics: ivr.NewMetrics(), Log: discard()}
	srv, err := New(Config{Servers: []ServerConfig{{URL: ast.URL(), User: "ivr", Password: "wrong-password-123"}}, ReconnectMin: 20 * time.Millisecond, ReconnectMax: 50 * time.Millisecond}, eng)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_ = srv.Serve(ctx)
	select {
	case <-srv.Ready():
		t.Error("ready with wrong credentials")
	default:
	}
	if ast.BadAuth() < 3 {
		t.Errorf("attempts: %d", ast.BadAuth())
	}
}

// After many calls, the engine holds no ExternalMedia channel, bridge, RTP
// port or goroutine.
func TestManyCallsLeaveNothing(t *testing.T) {
	n := 200
	if testing.Short() {
		n = 40
	}
	l := startLine(t, nil)
	// Warm up once so lazily started runtime goroutines are counted.
	w := l.ast.Call("0721000100", "1919")
	bridged(t, w)
	w.Hangup()
	l.record(w.ID)
	l.clean()
	for _, cn := range l.srv.conns {
		cn.cl.http.CloseIdleConnections()
	}
	time.Sleep(100 * time.Millisecond)
	base := runtime.NumGoroutine()

	var wg sync.WaitGroup
	sem := make(chan struct{}, 25)
	ids := make([]string, n)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c := l.ast.Call("0721000101", "1919")
			ids[i] = c.ID
			waitFor(10*time.Second, c.Bridged)
			switch i % 4 {
			case 0:
				c.Hangup() // right away
			case 1:
				time.Sleep(100 * time.Millisecond)
				c.Hangup()
			case 2:
				c.Press("0") // the engine says goodbye and hangs up
				select {
				case <-c.Gone():
				case <-time.After(20 * time.Second):
				}
			case 3:
				c.Hangup()
			}
		}()
	}
	wg.Wait()
	for _, id := range ids {
		l.record(id)
	}
	l.clean()
	// Idle keep-alive connections to ARI are pooled, not leaked (at most
	// 64): close them so the count compares calls' goroutines only.
	idle := func() {
		for _, cn := range l.srv.conns {
			cn.cl.http.CloseIdleConnections()
		}
	}
	if !waitFor(10*time.Second, func() bool { idle(); return runtime.NumGoroutine() <= base+2 }) {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines: %d before, %d after %d calls\n%s", base, runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
	}
}

// BenchmarkCallSetupTeardown places calls one after another: StasisStart,
// answer, bridge, ExternalMedia, first RTP both ways, caller hangup, record
// closed and every object removed. With -benchtime=1000x it is the issue's
// "after 1,000 calls the engine holds none" check.
func BenchmarkCallSetupTeardown(b *testing.B) {
	l := startLine(b, nil)
	b.ReportAllocs()
	for b.Loop() {
		c := l.ast.Call("0721000199", "1919")
		bridged(b, c)
		if !waitFor(5*time.Second, func() bool { return c.HeardLen() > 0 }) {
			b.Fatal("no audio")
		}
		c.Hangup()
		l.record(c.ID)
	}
	b.StopTimer()
	l.clean()
	b.ReportMetric(float64(l.srv.Metrics().RequestLatency.Count())/float64(b.N), "ari-requests/call")
}

// Requests that time out but that Asterisk carries out later leave
// objects no call owns: a late ExternalMedia channel is removed when its
// StasisStart arrives, a late bridge by the periodic sweep; objects left
// by a crashed engine are removed when the adapter connects.
func TestOrphansRemoved(t *testing.T) {
	l := startLine(t, func(c *Config) {
		c.RequestTimeout = 300 * time.Millisecond
		c.ReapInterval = 200 * time.Millisecond
	})
	for _, slow := range []string{"POST /channels/externalMedia", "POST /bridges"} {
		l.ast.SetDelayFor(slow, 800*time.Millisecond)
		caller := l.ast.Call("0721000140", "1919")
		if r := l.record(caller.ID); r.EndReason != string(ivr.EndError) {
			t.Errorf("%s: end reason %s", slow, r.EndReason)
		}
		l.ast.SetDelayFor(slow, 0)
		time.Sleep(time.Second) // the late request takes effect
		caller.Hangup()
		l.clean()
	}
	l.ast.Orphan("bridge", "ivr-bridge-ivr-deadbeef00000001")
	l.ast.Orphan("channel", "ivr-media-ivr-deadbeef00000002")
	l.ast.Orphan("bridge", "someone-elses-bridge")
	l.ast.DropWebSocket()
	if !waitFor(5*time.Second, func() bool { _, br, _ := l.ast.Books(); return br == 1 }) {
		_, br, _ := l.ast.Books()
		t.Fatalf("orphans not removed: %d bridges", br)
	}
	if ch, _, _ := l.ast.Books(); ch != 0 {
		t.Errorf("orphan channel not removed: %d", ch)
	}
	// The two planted orphans can only go by the reaper; the late effects
	// of the timed-out requests may also go by their StasisStart, so they
	// are not counted here (the books above prove they are gone).
	if l.srv.Metrics().Reaped.Load() < 2 {
		t.Errorf("reaped %d, want at least the 2 planted orphans", l.srv.Metrics().Reaped.Load())
	}
}

// Asterisk hangs without closing its sockets: the WebSocket ping finds it,
// the adapter closes the connection and reconnects once Asterisk answers
// again; the call, whose RTP flows on, goes on and ends normally.
func TestAsteriskFreezes(t *testing.T) {
	l := startLine(t, func(c *Config) {
		c.PingInterval = 300 * time.Millisecond
		c.RequestTimeout = 500 * time.Millisecond
	})
	caller := l.ast.Call("0721000150", "1919")
	bridged(t, caller)
	label := strings.TrimPrefix(l.ast.URL(), "http://")
	l.ast.Freeze()
	if !waitFor(5*time.Second, func() bool { return !l.srv.Metrics().Connected(label) }) {
		t.Fatal("a frozen Asterisk was not noticed")
	}
	l.ast.Thaw()
	if !waitFor(10*time.Second, func() bool { return l.srv.Metrics().Connected(label) && l.ast.Registrations() >= 2 }) {
		t.Fatal("no reconnect after the freeze")
	}
	caller.Press("0")
	select {
	case <-caller.Gone():
	case <-time.After(20 * time.Second):
		t.Fatal("the call did not end")
	}
	if r := l.record(caller.ID); r.EndReason != string(ivr.EndEngineHangup) {
		t.Errorf("end reason %s", r.EndReason)
	}
	l.clean()
}

// Two Asterisk servers: the adapter registers the application on both and
// serves a call from each.
func TestTwoServers(t *testing.T) {
	second := aritest.New(t)
	second.SystemName = "pbx2"
	l := startLine(t, func(c *Config) {
		c.Servers = append(c.Servers, ServerConfig{URL: second.URL() + "/ari/", User: second.User, Password: second.Password, App: "ivr"})
	})
	if !waitFor(5*time.Second, second.Registered) {
		t.Fatal("not registered on the second server")
	}
	a := l.ast.Call("0721000151", "1919")
	b := second.Call("0721000152", "1919")
	bridged(t, a)
	bridged(t, b)
	a.Press("0")
	b.Hangup()
	for _, c := range []*aritest.Caller{a} {
		select {
		case <-c.Gone():
		case <-time.After(20 * time.Second):
			t.Fatal("call did not end")
		}
	}
	if r := l.record(a.ID); r.EndReason != string(ivr.EndEngineHangup) {
		t.Errorf("first server's call: %s", r.EndReason)
	}
	if r := l.record(b.ID); r.EndReason != string(ivr.EndCallerHangup) {
		t.Errorf("second server's call: %s", r.EndReason)
	}
	l.clean()
	if ch, br, rtp := second.Books(); ch+br+rtp != 0 {
		t.Errorf("second server holds %d channels %d bridges %d rtp", ch, br, rtp)
	}
}

// The caller hangs up while the handoff is in progress (between the
// channel variables and the continue): the handoff fails, the call ends as
// a caller hangup and nothing is left.
func TestHangupDuringHandoff(t *testing.T) {
	l := startLine(t, nil)
	caller := l.ast.Call("0721000170", "1919")
	bridged(t, caller)
	l.ast.SetDelayFor("POST /channels/"+caller.ID+"/variable", 200*time.Millisecond)
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		errc <- l.callOf(caller.ID).Transfer(ctx, ivr.Handoff{Queue: "level1", Ticket: "T-9", Lang: "ro", Summary: "x"})
	}()
	time.Sleep(300 * time.Millisecond) // inside the second variable request
	caller.Hangup()
	if err := <-errc; err == nil {
		t.Error("the handoff of a caller who hung up succeeded")
	}
	if r := l.record(caller.ID); r.EndReason != string(ivr.EndCallerHangup) {
		t.Errorf("end reason %s", r.EndReason)
	}
	l.clean()
}
