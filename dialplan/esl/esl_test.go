package esl

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/ivr"
)

func say(lang, s string) flows.Prompt {
	return flows.Prompt{Lang: lang, Parts: []flows.Part{{Kind: flows.PartText, Value: s, Text: s}}}
}

// TestFullCallAudioDTMFAndHandoff: FreeSWITCH connects, the engine answers
// and bridges the caller to its SIP endpoint, speaks (the caller hears it
// over the real RTP leg), hears the caller, gets one key (the DTMF event;
// the RFC 4733 copy on the leg is not counted twice), and hands the call
// to agents with the channel variables.
func TestFullCallAudioDTMFAndHandoff(t *testing.T) {
	got := make(chan flows.Input, 1)
	flow := flowFunc(func(ctx context.Context, f flows.Facts, ch flows.Channel, _ flows.Services) flows.Outcome {
		if _, err := ch.Say(ctx, say("ro", "Bună ziua. Ați sunat la linia de asistență.")); err != nil {
			return flows.Outcome{Kind: flows.OutcomeCaller}
		}
		in, err := ch.Listen(ctx, flows.Listen{Lang: "ro", Expect: flows.ExpectChoice, NoInput: 8 * time.Second})
		if err != nil {
			return flows.Outcome{Kind: flows.OutcomeCaller}
		}
		got <- in
		return flows.Outcome{Kind: flows.OutcomeTransfer, Queue: "level1", Ticket: "40517263", Lang: "ro"}
	})
	e := startEngine(t, flow, nil)
	fs := newFakeFS(t)
	fs.dial(e)
	leg := fs.waitLeg()
	if !waitFor(10*time.Second, func() bool { return leg.heardLoud() > 25 }) {
		t.Fatal("the caller did not hear the engine speak on the media leg")
	}
	fs.dtmf('1')
	select {
	case in := <-got:
		if in.Mode != flows.InputDTMF || in.Text != "1" {
			t.Fatalf("flow got %+v, want the key 1", in)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the key never reached the flow")
	}
	if !waitFor(10*time.Second, func() bool {
		fs.mu.Lock()
		defer fs.mu.Unlock()
		return fs.transfer != ""
	}) {
		t.Fatalf("no transfer; commands:\n%s", strings.Join(fs.commands(), "\n--\n"))
	}
	fs.mu.Lock()
	vars, dest, hung := fs.vars, fs.transfer, fs.hungup
	fs.mu.Unlock()
	if vars["IVR_TICKET"] != "40517263" || vars["IVR_LANG"] != "ro" || vars["IVR_QUEUE"] != "level1" {
		t.Errorf("channel variables %v", vars)
	}
	if dest != "level1 XML ivr_handoff" {
		t.Errorf("transfer to %q, want level1 XML ivr_handoff", dest)
	}
	if hung != "" {
		t.Errorf("a transferred channel was hung up (%s)", hung)
	}
	r, ev := e.record(t, fs.uuid)
	if r.EndReason != string(ivr.EndTransferred) {
		t.Errorf("end reason %q, want transferred", r.EndReason)
	}
	if r.DTMF != "1" {
		t.Errorf("keys recorded %q, want 1 (the key once, from the DTMF event)", r.DTMF)
	}
	if r.Telephony != "esl" || r.Called != "1919" {
		t.Errorf("record %+v", r)
	}
	if r.Stats.In < 50 {
		t.Errorf("the engine received %d RTP packets from the caller", r.Stats.In)
	}
	log := eventLog(ev)
	for _, want := range []string{"esl.command connect", "esl.command myevents", "esl.command sendmsg execute answer", "esl.event CHANNEL_ANSWER",
		"esl.command sendmsg execute bridge {sip_h_X-IVR-ESL=<token>}sofia/internal/ivr@127.0.0.1:", "sip.leg.200 codec PCMU",
		"esl.event DTMF DTMF-Source=RTP", "dtmf esl 1", "esl.command api uuid_setvar " + fs.uuid + " IVR_TICKET 40517263", "esl.transferred to level1 XML ivr_handoff"} {
		if !strings.Contains(log, want) {
			t.Errorf("call log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "0722123456") || strings.Contains(log, "Popescu") {
		t.Errorf("the caller's number or name reached the call's protocol log:\n%s", log)
	}
	if !waitFor(5*time.Second, func() bool { return e.srv.Metrics.ActiveChannels.Load() == 0 }) {
		t.Errorf("active channels %d after the call", e.srv.Metrics.ActiveChannels.Load())
	}
	if e.srv.Metrics.CommandLatency.Count() < 6 {
		t.Errorf("command latency observed %d times", e.srv.Metrics.CommandLatency.Count())
	}
}

// waitFlow is a flow that waits for a key and hangs up, or returns when
// the call ends.
func waitFlow(started chan<- struct{}) flowFunc {
	return func(ctx context.Context, f flows.Facts, ch flows.Channel, _ flows.Services) flows.Outcome {
		if started != nil {
			started <- struct{}{}
		}
		in, err := ch.Listen(ctx, flows.Listen{Lang: "ro", Expect: flows.ExpectChoice, NoInput: 20 * time.Second})
		if err != nil {
			return flows.Outcome{Kind: flows.OutcomeCaller}
		}
		if in.Text == "0" {
			return flows.Outcome{Kind: flows.OutcomeHangup, Reason: "done"}
		}
		return flows.Outcome{Kind: flows.OutcomeHangup}
	}
}

func (e *engine) session(t *testing.T, uuid string) *session {
	t.Helper()
	var se *session
	waitFor(5*time.Second, func() bool {
		e.srv.mu.Lock()
		defer e.srv.mu.Unlock()
		se = e.srv.channels[uuid]
		return se != nil && se.up.Load()
	})
	if se == nil {
		t.Fatal("no session for the channel")
	}
	return se
}

// TestHandoffVariablesCannotInject: a summary with CR/LF and FreeSWITCH
// expansion syntax cannot add a command or run an API; a queue or ticket
// with a line break is refused; callcenter mode exports the variables to
// the agent's leg.
func TestHandoffVariablesCannotInject(t *testing.T) {
	e := startEngine(t, waitFlow(nil), func(c *Config) {
		c.Handoff = Handoff{Mode: HandoffCallcenter}
	})
	fs := newFakeFS(t)
	fs.dial(e)
	fs.waitLeg()
	se := e.session(t, fs.uuid)
	ctx := context.Background()
	for _, bad := range []ivr.Handoff{
		{Queue: "level1\n\napi uuid_kill " + fs.uuid, Ticket: "1"},
		{Queue: "level1", Ticket: "1\r\nuuid_kill"},
		{Queue: "level1 XML default", Ticket: "1"},
	} {
		if err := se.Transfer(ctx, bad); !errors.Is(err, ErrBadArgument) {
			t.Errorf("Transfer(%q, %q) = %v, want ErrBadArgument", bad.Queue, bad.Ticket, err)
		}
	}
	h := ivr.Handoff{Queue: "level1", Ticket: "40517263", Lang: "en",
		Summary: "Card lost\r\n\r\napi uuid_kill " + fs.uuid + "\n\n ${system(touch /tmp/pwned)} 'x' \\n"}
	if err := se.Transfer(ctx, h); err != nil {
		t.Fatalf("transfer: %v", err)
	}
	for _, c := range fs.commands() {
		first, _, _ := strings.Cut(c, "\n")
		if strings.Contains(first, "uuid_kill") && !strings.HasPrefix(first, "api uuid_setvar ") {
			t.Errorf("an injected command reached FreeSWITCH: %q", c)
		}
	}
	fs.mu.Lock()
	sum, export, dest := fs.vars["IVR_SUMMARY"], fs.vars["cc_export_vars"], fs.transfer
	fs.mu.Unlock()
	if strings.ContainsAny(sum, "\r\n{}'\\") || !strings.HasPrefix(sum, "Card lost api uuid_kill") {
		t.Errorf("IVR_SUMMARY = %q", sum)
	}
	if export != "IVR_TICKET,IVR_LANG,IVR_SUMMARY,IVR_QUEUE" || dest != "callcenter:level1@default inline" {
		t.Errorf("callcenter handoff: cc_export_vars %q, transfer %q", export, dest)
	}
	if r, _ := e.record(t, fs.uuid); r.EndReason != string(ivr.EndTransferred) {
		t.Errorf("end reason %q", r.EndReason)
	}
}

// TestHangupInEveryPhase: the call's end and its cause, whoever ends it
// and whenever.
func TestHangupInEveryPhase(t *testing.T) {
	t.Run("caller mid-call", func(t *testing.T) {
		e := startEngine(t, waitFlow(nil), nil)
		fs := newFakeFS(t)
		fs.dial(e)
		leg := fs.waitLeg()
		time.Sleep(300 * time.Millisecond)
		fs.callerHangup()
		r, ev := e.record(t, fs.uuid)
		if r.EndReason != string(ivr.EndCallerHangup) {
			t.Errorf("end reason %q", r.EndReason)
		}
		if log := eventLog(ev); !strings.Contains(log, "CHANNEL_HANGUP ") || !strings.Contains(log, "Hangup-Cause=NORMAL_CLEARING") {
			t.Errorf("log lacks the hangup and its cause:\n%s", log)
		}
		if !waitFor(5*time.Second, leg.ended) {
			t.Error("the media leg is still up")
		}
	})
	t.Run("engine ends the call", func(t *testing.T) {
		e := startEngine(t, waitFlow(nil), nil)
		fs := newFakeFS(t)
		fs.dial(e)
		leg := fs.waitLeg()
		fs.dtmf('0')
		r, _ := e.record(t, fs.uuid)
		if r.EndReason != string(ivr.EndEngineHangup) {
			t.Errorf("end reason %q", r.EndReason)
		}
		fs.mu.Lock()
		cause := fs.hungup
		fs.mu.Unlock()
		if cause != "NORMAL_CLEARING" {
			t.Errorf("FreeSWITCH got hangup cause %q, want NORMAL_CLEARING", cause)
		}
		if !waitFor(5*time.Second, leg.ended) {
			t.Error("the media leg is still up")
		}
	})
	t.Run("before answer", func(t *testing.T) {
		e := startEngine(t, waitFlow(nil), nil)
		fs := newFakeFS(t)
		fs.answerFails = true
		fs.dial(e)
		r, _ := e.record(t, fs.uuid)
		if r.EndReason != string(ivr.EndCancelled) {
			t.Errorf("end reason %q, want cancelled", r.EndReason)
		}
	})
	t.Run("right after connect", func(t *testing.T) {
		e := startEngine(t, waitFlow(nil), nil)
		fs := newFakeFS(t)
		fs.hangupAfter = "ORIGINATOR_CANCEL"
		fs.dial(e)
		if !fs.waitClosed(5 * time.Second) {
			t.Fatal("fake FreeSWITCH did not close")
		}
		if !waitFor(5*time.Second, func() bool { return e.srv.Metrics.ActiveChannels.Load() == 0 && e.eng.Metrics.ActiveCalls.Load() == 0 }) {
			t.Errorf("left: %d channels, %d calls", e.srv.Metrics.ActiveChannels.Load(), e.eng.Metrics.ActiveCalls.Load())
		}
	})
	t.Run("media leg never arrives", func(t *testing.T) {
		e := startEngine(t, waitFlow(nil), func(c *Config) { c.LegTimeout = 500 * time.Millisecond })
		fs := newFakeFS(t)
		fs.noLeg = true
		fs.dial(e)
		r, ev := e.record(t, fs.uuid)
		if r.EndReason != string(ivr.EndError) {
			t.Errorf("end reason %q", r.EndReason)
		}
		if log := eventLog(ev); !strings.Contains(log, "esl.leg-timeout") || !strings.Contains(log, "esl.release") {
			t.Errorf("log:\n%s", log)
		}
		fs.mu.Lock()
		defer fs.mu.Unlock()
		if fs.hungup != "" {
			t.Errorf("the channel was hung up (%s): it should go on in the dialplan after socket", fs.hungup)
		}
	})
}

// TestSocketDropsMidCall: the event socket breaks during the call; the
// engine ends the call (error), frees the media leg, and keeps the record.
func TestSocketDropsMidCall(t *testing.T) {
	e := startEngine(t, waitFlow(nil), nil)
	fs := newFakeFS(t)
	fs.dial(e)
	leg := fs.waitLeg()
	fs.nc.Close()
	r, ev := e.record(t, fs.uuid)
	if r.EndReason != string(ivr.EndError) {
		t.Errorf("end reason %q", r.EndReason)
	}
	if !strings.Contains(eventLog(ev), "esl.socket-lost") {
		t.Errorf("log:\n%s", eventLog(ev))
	}
	if !waitFor(5*time.Second, leg.ended) {
		t.Error("the media leg is still up after the socket dropped")
	}
}

// TestSlowFreeSWITCH: replies that take a while still make a call; a
// FreeSWITCH that stops replying ends the session within the command
// timeout, and nothing is left behind.
func TestSlowFreeSWITCH(t *testing.T) {
	t.Run("slow", func(t *testing.T) {
		e := startEngine(t, waitFlow(nil), nil)
		fs := newFakeFS(t)
		fs.replyDelay = 300 * time.Millisecond
		fs.dial(e)
		fs.waitLeg()
		fs.callerHangup()
		if r, _ := e.record(t, fs.uuid); r.EndReason != string(ivr.EndCallerHangup) {
			t.Errorf("end reason %q", r.EndReason)
		}
	})
	t.Run("stalled", func(t *testing.T) {
		e := startEngine(t, waitFlow(nil), func(c *Config) { c.CommandTimeout = 300 * time.Millisecond })
		fs := newFakeFS(t)
		fs.replyDelay = 2 * time.Second
		start := time.Now()
		fs.dial(e)
		if !waitFor(5*time.Second, func() bool {
			return e.srv.Metrics.CommandTimeouts.Load() == 1 && e.srv.Metrics.ActiveChannels.Load() == 0
		}) {
			t.Fatalf("timeouts %d, channels %d", e.srv.Metrics.CommandTimeouts.Load(), e.srv.Metrics.ActiveChannels.Load())
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("the stalled session took %s to end", d)
		}
	})
}

// TestUnexpectedEventsMidCall: events and frames the engine did not ask
// for are logged or skipped; the call goes on and ends normally.
func TestUnexpectedEventsMidCall(t *testing.T) {
	e := startEngine(t, waitFlow(nil), nil)
	fs := newFakeFS(t)
	fs.dial(e)
	fs.waitLeg()
	fs.unexpected()
	time.Sleep(200 * time.Millisecond)
	fs.dtmf('0')
	r, ev := e.record(t, fs.uuid)
	if r.EndReason != string(ivr.EndEngineHangup) || r.DTMF != "0" {
		t.Errorf("end reason %q, keys %q", r.EndReason, r.DTMF)
	}
	log := eventLog(ev)
	for _, want := range []string{"esl.event CHANNEL_PARK", "esl.event CUSTOM Event-Subclass=sofia::register", "esl.unexpected DTMF event with digit \"X\"",
		"esl.unexpected reply without a command", "esl.unexpected content type text/event-xml", "esl.protocol-error"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

// TestHandoffFailures: the caller hangs up during the handoff; FreeSWITCH
// refuses the transfer (the caller is told the request is registered and
// the engine hangs up).
func TestHandoffFailures(t *testing.T) {
	transferFlow := flowFunc(func(ctx context.Context, f flows.Facts, ch flows.Channel, _ flows.Services) flows.Outcome {
		if _, err := ch.Listen(ctx, flows.Listen{Lang: "ro", Expect: flows.ExpectChoice, NoInput: 10 * time.Second}); err != nil {
			return flows.Outcome{Kind: flows.OutcomeCaller}
		}
		return flows.Outcome{Kind: flows.OutcomeTransfer, Queue: "level1", Ticket: "40517263", Lang: "ro"}
	})
	t.Run("caller hangs up during the handoff", func(t *testing.T) {
		e := startEngine(t, transferFlow, nil)
		fs := newFakeFS(t)
		fs.hangupOnSet = true
		fs.dial(e)
		fs.waitLeg()
		fs.dtmf('0')
		r, _ := e.record(t, fs.uuid)
		if r.EndReason != string(ivr.EndCallerHangup) {
			t.Errorf("end reason %q, want caller_hangup", r.EndReason)
		}
	})
	t.Run("transfer refused", func(t *testing.T) {
		e := startEngine(t, transferFlow, nil)
		fs := newFakeFS(t)
		fs.refuseXfer = true
		fs.dial(e)
		leg := fs.waitLeg()
		fs.dtmf('0')
		r, _ := e.record(t, fs.uuid)
		if r.EndReason != string(ivr.EndEngineHangup) {
			t.Errorf("end reason %q, want engine_hangup", r.EndReason)
		}
		fs.mu.Lock()
		cause := fs.hungup
		fs.mu.Unlock()
		if cause != "NORMAL_CLEARING" {
			t.Errorf("hangup cause %q", cause)
		}
		if leg.heardLoud() < 100 {
			t.Errorf("the caller heard %d loud frames: no 'request registered' message", leg.heardLoud())
		}
	})
}

// TestDrainingSendsCallersOn: while the engine drains, a new channel's
// socket is closed without a hangup, so FreeSWITCH continues its dialplan
// (the shipped one: the agents' queue).
func TestDrainingSendsCallersOn(t *testing.T) {
	e := startEngine(t, waitFlow(nil), nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := e.eng.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	fs := newFakeFS(t)
	fs.dial(e)
	if !fs.waitClosed(5 * time.Second) {
		t.Fatal("the engine kept the socket of a call it cannot take")
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.hungup != "" {
		t.Errorf("the channel was hung up (%s)", fs.hungup)
	}
	for _, c := range fs.cmds {
		if strings.Contains(c, "execute-app-name: answer") {
			t.Error("the engine answered a call while draining")
		}
	}
}

// sessionGoroutines counts the goroutines of the adapter's sessions and
// connections.
func sessionGoroutines() int {
	buf := make([]byte, 1<<20)
	n := runtime.Stack(buf, true)
	count := 0
	for _, g := range strings.Split(string(buf[:n]), "\n\n") {
		if strings.Contains(g, "dialplan/esl.(*Server).serveConn") || strings.Contains(g, "dialplan/esl.(*conn).readLoop") || strings.Contains(g, "dialplan/esl.(*session)") {
			count++
		}
	}
	return count
}

// TestNothingLeftAfterCalls: after calls that end every way, the adapter
// holds no session goroutine, connection, channel or leg token.
func TestNothingLeftAfterCalls(t *testing.T) {
	e := startEngine(t, waitFlow(nil), func(c *Config) { c.LegTimeout = 500 * time.Millisecond })
	for i := range 6 {
		fs := newFakeFS(t)
		switch i % 3 {
		case 1:
			fs.noLeg = true
		}
		fs.dial(e)
		if i%3 != 1 {
			fs.waitLeg()
			if i%3 == 0 {
				fs.dtmf('0')
			} else {
				fs.callerHangup()
			}
		}
		e.record(t, fs.uuid)
	}
	if !waitFor(10*time.Second, func() bool { return sessionGoroutines() == 0 }) {
		t.Errorf("%d session goroutines left", sessionGoroutines())
	}
	e.srv.mu.Lock()
	defer e.srv.mu.Unlock()
	if len(e.srv.channels) != 0 || len(e.srv.legs) != 0 || e.srv.Metrics.ActiveChannels.Load() != 0 {
		t.Errorf("left: %d channels, %d leg tokens, gauge %d", len(e.srv.channels), len(e.srv.legs), e.srv.Metrics.ActiveChannels.Load())
	}
}
