package sip_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/dialplan/sip"
	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/ivr/queue"
	"github.com/govline/ivr/tickets"
)

// startCallbackLine is a queue line (startQueueLine's flow: transfer to
// level1 with ticket qTicket) whose waiting callers may press 1 to be
// called back through tk. It returns the line, its queues and its
// callbacks.
func startCallbackLine(t *testing.T, tk *testTrunk, adjust func(*sip.OutboundConfig)) (*line, *queue.Queues, queue.Callbacks, string) {
	t.Helper()
	return startCallbackLineEngine(t, tk, adjust, nil)
}

// startCallbackLineEngine is startCallbackLine with engine adjusting the
// engine too (a voice activity detector for answering machine detection).
func startCallbackLineEngine(t *testing.T, tk *testTrunk, adjust func(*sip.OutboundConfig), engine func(*ivr.Engine)) (*line, *queue.Queues, queue.Callbacks, string) {
	t.Helper()
	qs, err := queue.New(queue.Config{HandleTime: 2 * time.Minute, RingTimeout: 20 * time.Second,
		Queues: map[string]queue.QueueConfig{"level1": {Strategy: queue.RingAll, MaxWait: time.Minute, Service: tickets.ServiceIdentityCard}}})
	if err != nil {
		t.Fatal(err)
	}
	trunk, err := sip.ParseTrunk(tk.uri())
	if err != nil {
		t.Fatal(err)
	}
	var ticket string // opened in the line's store below
	flow := flowFunc(func(ctx context.Context, f flows.Facts, ch flows.Channel, _ flows.Services) flows.Outcome {
		return flows.Outcome{Kind: flows.OutcomeTransfer, Queue: "level1", Ticket: ticket, Lang: "ro", Summary: "carte de identitate"}
	})
	var cbs queue.Callbacks
	l := startLineStore(t, func(c *sip.Config, e *ivr.Engine, store *tickets.Store) {
		dir := agentDirectory(t, store)
		if err := dir.Add(context.Background(), "alice", sip.DefaultRealm, agentPass, []string{"level1"}); err != nil {
			t.Fatal(err)
		}
		tk, err := store.OpenTicket(context.Background(), tickets.NewTicket{Actor: "ivr", Channel: "phone", Lang: "ro", Service: tickets.ServiceIdentityCard})
		if err != nil {
			t.Fatal(err)
		}
		ticket = tk.Number
		cbs = queue.Callbacks{DB: dir.DB}
		c.Queue = sip.QueueConfig{Queues: qs, Agents: dir, Outcomes: store, MinExpires: time.Second, Callbacks: cbs, Notes: store}
		c.Outbound = sip.OutboundConfig{Trunk: trunk, CallerID: "0800100200", RingTimeout: 5 * time.Second, PerSecond: 50, Backoff: 50 * time.Millisecond}
		if adjust != nil {
			adjust(&c.Outbound)
		}
		e.Flow = flow
		e.Synth = &ivr.RenderCache{Dir: filepath.Join(promptCache, "tts")}
		e.Lang = "ro"
		e.RecDir = t.TempDir()
		e.Services = flows.Services{Transcript: flows.TicketTranscript{Store: store}}
		if engine != nil {
			engine(e)
		}
	})
	return l, qs, cbs, ticket
}

// TestQueuedCallbackConnectsToAgent: a caller waiting in the queue presses
// 1 and the call ends; the callback keeps the place (it still counts in
// the queue), the line calls the number back through the trunk, the
// citizen answers and hears the line, an agent registers and is rung with
// the ticket (the screen pop), and the citizen and the agent hear each
// other.
func TestQueuedCallbackConnectsToAgent(t *testing.T) {
	tk := newTestTrunk(t, trunkAnswer, trunkPass)
	l, qs, cbs, ticket := startCallbackLine(t, tk, nil)

	c := l.answered(t)
	if !waitFor(20*time.Second, func() bool { return c.heardLen() > 2*c.rate }) {
		t.Fatal("no announcement heard")
	}
	c.dtmf('1')
	c.dtmf('1') // confirms the number read back
	if !c.waitEnded(30 * time.Second) {
		t.Fatal("the line did not end the call after 1")
	}
	pending, err := cbs.List(context.Background(), queue.CallbackPending, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 || pending[0].Number != testCaller || pending[0].Ticket != ticket || pending[0].Lang != "ro" {
		t.Fatalf("pending callbacks %+v, want one for %s, ticket %s", pending, testCaller, ticket)
	}

	// The citizen's phone rings behind the trunk and answers.
	select {
	case <-tk.phone.up:
	case <-time.After(15 * time.Second):
		t.Fatal("the citizen was not called back")
	}
	if qs.Waiting("level1") != 1 {
		t.Errorf("%d waiting in level1, want 1: the callback's place", qs.Waiting("level1"))
	}
	// The citizen hears who calls before any agent is there.
	if !waitFor(15*time.Second, func() bool { return len(tk.phone.heardCopy()) > 8000 && audio.RMS(tk.phone.heardCopy()) > 300 }) {
		t.Fatal("the citizen heard nothing of the line")
	}

	a := newAgentPhone(t, 440)
	if err := a.register(l, "alice", agentPass, time.Minute); err != nil {
		t.Fatalf("register: %v", err)
	}
	select {
	case inv := <-a.invite:
		if h := inv.GetHeader(sip.HeaderTicket); h == nil || h.Value() != ticket {
			t.Errorf("%s = %v, want %s (the screen pop)", sip.HeaderTicket, h, ticket)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the agent's phone did not ring for the callback")
	}
	close(a.answer)
	select {
	case <-a.up:
	case <-time.After(5 * time.Second):
		t.Fatal("agent call not up")
	}
	mark := len(tk.phone.heardCopy())
	time.Sleep(2500 * time.Millisecond)
	atCitizen := tk.phone.heardCopy()[mark:]
	atAgent := a.heardCopy()
	if rms, g := audio.RMS(atCitizen), goertzel(atCitizen, 440, 8000); rms < 1000 || g < 0.3 {
		t.Errorf("the citizen hears the agent at RMS %.0f, 440 Hz share %.2f: want the agent's tone", rms, g)
	}
	if rms, g := audio.RMS(atAgent), goertzel(atAgent, 1000, 8000); rms < 1000 || g < 0.3 {
		t.Errorf("the agent hears the citizen at RMS %.0f, 1 kHz share %.2f: want the citizen's tone", rms, g)
	}
	close(a.hang)
	if !waitFor(10*time.Second, func() bool {
		done, _ := cbs.List(context.Background(), queue.CallbackDone, 0)
		return len(done) == 1 && done[0].Attempts == 1
	}) {
		all, _ := cbs.List(context.Background(), "", 0)
		t.Fatalf("callbacks %+v, want one done after 1 attempt", all)
	}
	// The ticket says when the citizen was called back: the wait they
	// spent off the line. The line marks the callback done first, then
	// notes the ticket and counts it.
	var h []tickets.TicketEvent
	saved := waitFor(5*time.Second, func() bool {
		var err error
		if h, err = l.store.History(context.Background(), ticket); err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(h, func(e tickets.TicketEvent) bool {
			return e.Kind == tickets.EventNote && strings.Contains(e.Data.Text, "callback attempt 1: answered; the citizen was called back")
		})
	})
	if !saved {
		t.Errorf("no note of the answered callback on ticket %s: %+v", ticket, h)
	}
	m := l.eng.Metrics
	if !waitFor(5*time.Second, func() bool { return m.Callbacks("completed") == 1 }) ||
		m.Callbacks("accepted") != 1 || m.Callbacks("offered") < 1 {
		t.Errorf("callbacks counted: offered %d accepted %d completed %d", m.Callbacks("offered"), m.Callbacks("accepted"), m.Callbacks("completed"))
	}
}

// pressOne calls the line, waits for the queue's announcement and presses
// 1, then 1 again to confirm the number; the line ends the call.
func pressOne(t *testing.T, l *line) {
	t.Helper()
	c := l.answered(t)
	if !waitFor(20*time.Second, func() bool { return c.heardLen() > 2*c.rate }) {
		t.Fatal("no announcement heard")
	}
	c.dtmf('1')
	c.dtmf('1') // confirms the number read back
	if !c.waitEnded(30 * time.Second) {
		t.Fatal("the line did not end the call after 1")
	}
}

// TestQueuedCallbackBusyRetriedThenFailed: a busy number (486) is called
// again within the limits; each failed attempt is a note on the ticket,
// and the callback ends failed, its place left.
func TestQueuedCallbackBusyRetriedThenFailed(t *testing.T) {
	tk := newTestTrunk(t, trunkBusy, trunkPass)
	l, qs, cbs, ticket := startCallbackLine(t, tk, func(o *sip.OutboundConfig) { o.Retries = 1 })
	pressOne(t, l)
	if !waitFor(15*time.Second, func() bool {
		f, _ := cbs.List(context.Background(), queue.CallbackFailed, 0)
		return len(f) == 1
	}) {
		all, _ := cbs.List(context.Background(), "", 0)
		t.Fatalf("callbacks %+v, want one failed", all)
	}
	f, _ := cbs.List(context.Background(), queue.CallbackFailed, 0)
	if f[0].Attempts != 2 || f[0].LastReason != "busy" {
		t.Errorf("failed callback %+v, want 2 attempts, the last busy", f[0])
	}
	if invites, _, _, _ := tk.seen(); len(invites) != 2 {
		t.Errorf("the trunk got %d INVITEs, want 2", len(invites))
	}
	notes := waitNotes(t, l.store, ticket, 2, "one per failed attempt")
	if notes[0] != "callback attempt 1: busy (SIP 486)" || notes[1] != "callback attempt 2: busy (SIP 486); callback failed, no more attempts" {
		t.Errorf("ticket notes %q", notes)
	}
	if !waitFor(5*time.Second, func() bool { return qs.Waiting("level1") == 0 }) {
		t.Errorf("%d still waiting: the failed callback's place was not left", qs.Waiting("level1"))
	}
	// Counted after the place is left.
	if !waitFor(5*time.Second, func() bool { return l.eng.Metrics.Callbacks("failed") == 1 }) {
		t.Errorf("failed callbacks counted %d, want 1", l.eng.Metrics.Callbacks("failed"))
	}
}

// TestPendingCallbackResumed: a callback left pending in the database (the
// line stopped before calling) is taken up by ResumeCallbacks: it joins
// the queue and the citizen is called.
func TestPendingCallbackResumed(t *testing.T) {
	tk := newTestTrunk(t, trunkAnswer, trunkPass)
	l, qs, cbs, ticket := startCallbackLine(t, tk, nil)
	if _, err := cbs.Add(context.Background(), queue.Callback{Queue: "level1", Number: testCaller, Lang: "en", Ticket: ticket, CallID: "before-the-crash"}); err != nil {
		t.Fatal(err)
	}
	if n, err := l.srv.ResumeCallbacks(context.Background()); err != nil || n != 1 {
		t.Fatalf("ResumeCallbacks: %d, %v; want 1", n, err)
	}
	select {
	case <-tk.phone.up:
	case <-time.After(15 * time.Second):
		t.Fatal("the pending callback was not called")
	}
	if qs.Waiting("level1") != 1 {
		t.Errorf("%d waiting, want the callback's place", qs.Waiting("level1"))
	}
}

// TestQueuedCallbackTypedNumber: after 1 the caller hears the number the
// line will call read back, presses 2 and types another, then #; the
// callback calls the typed number, and the call's record and events hold
// it only masked.
func TestQueuedCallbackTypedNumber(t *testing.T) {
	tk := newTestTrunk(t, trunkAnswer, trunkPass)
	l, _, cbs, ticket := startCallbackLine(t, tk, nil)
	c := l.answered(t)
	callID := c.d.InviteRequest.CallID().Value()
	if !waitFor(20*time.Second, func() bool { return c.heardLen() > 2*c.rate }) {
		t.Fatal("no announcement heard")
	}
	c.dtmf('1')
	mark := c.heardLen()
	// The read-back: "Vă vom suna la numărul 0 7 2 1 ..." (a few seconds).
	if !waitFor(15*time.Second, func() bool { return c.heardLen() > mark+3*c.rate }) {
		t.Fatal("the number was not read back")
	}
	c.dtmf('2')
	time.Sleep(time.Second)
	const typed = "0722999888"
	c.press(typed + "#")
	// The typed number is read back; 1 keeps it.
	mark = c.heardLen()
	if !waitFor(15*time.Second, func() bool { return c.heardLen() > mark+2*c.rate }) {
		t.Fatal("the typed number was not read back")
	}
	c.dtmf('1')
	if !c.waitEnded(30 * time.Second) {
		t.Fatal("the line did not end the call after the typed number")
	}
	pending, err := cbs.List(context.Background(), queue.CallbackPending, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 || pending[0].Number != typed || pending[0].Ticket != ticket {
		t.Fatalf("pending callbacks %+v, want one for the typed %s", pending, typed)
	}
	ctx := context.Background()
	_ = l.eng.Calls.Flush(ctx)
	evs, err := l.store.Events(ctx, callID)
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, e := range evs {
		all = append(all, e.Kind+" "+e.Detail)
	}
	rec, err := l.store.Call(ctx, callID)
	if err != nil {
		t.Fatal(err)
	}
	all = append(all, "dtmf column: "+rec.DTMF)
	text := strings.Join(all, "\n")
	if strings.Contains(text, typed) || strings.Contains(text, "0 7 2 2 9") {
		t.Errorf("the typed number is in clear in the call's records:\n%s", text)
	}
	if !strings.Contains(text, "typed *******888") {
		t.Errorf("no masked typed number in the events:\n%s", text)
	}
}

// waitNotes waits up to 5 s for the ticket's history to hold n notes and
// returns their texts; it fails the test (saying want) when it does not.
func waitNotes(t *testing.T, st *tickets.Store, ticket string, n int, want string) []string {
	t.Helper()
	var notes []string
	if !waitFor(5*time.Second, func() bool {
		h, err := st.History(context.Background(), ticket)
		if err != nil {
			t.Fatal(err)
		}
		notes = notes[:0]
		for _, e := range h {
			if e.Kind == tickets.EventNote {
				notes = append(notes, e.Data.Text)
			}
		}
		return len(notes) == n
	}) {
		t.Fatalf("ticket notes %q, want %s", notes, want)
	}
	return notes
}

// spokenCallbackLine is startCallbackLine on a line that hears speech (the
// engines of the speech tests).
func spokenCallbackLine(t *testing.T) (*line, queue.Callbacks, string) {
	t.Helper()
	pool, rec, _ := speechEngines(t)
	tk := newTestTrunk(t, trunkAnswer, trunkPass)
	l, _, cbs, ticket := startCallbackLineEngine(t, tk, nil, func(e *ivr.Engine) {
		e.Speech = speechConfig(pool, ivr.SerialStreams(rec))
	})
	return l, cbs, ticket
}

// waitEvent waits up to limit for the line's call events to hold want n
// times.
func waitEvent(t *testing.T, l *line, want string, n int, limit time.Duration) {
	t.Helper()
	var evs string
	if !waitFor(limit, func() bool { evs = callEvents(t, l); return strings.Count(evs, want) >= n }) {
		t.Fatalf("%q not %d times in the call's events:\n%s", want, n, evs)
	}
}

// TestQueuedCallbackSpoken: a caller waiting in the queue says "reveniți
// cu un apel" (espeak-ng over G.711) and is asked whether they want to be
// called back; a "nu" leaves them waiting in their place. Asked again,
// they say "da", hear their number read back and keep their place: the
// callback is recorded as for the key 1, and their words are in the
// call's transcript.
func TestQueuedCallbackSpoken(t *testing.T) {
	_, _, syn := speechEngines(t)
	l, cbs, ticket := spokenCallbackLine(t)
	c := l.answered(t)
	callID := c.d.InviteRequest.CallID().Value()
	if !waitFor(20*time.Second, func() bool { return c.heardLen() > 2*c.rate }) {
		t.Fatal("no announcement heard")
	}
	ask := func(n int, answer, want string) {
		t.Helper()
		c.speak(utterance(t, syn, "ro", "reveniți cu un apel", c.rate))
		waitEvent(t, l, "queue.callback.spoken the caller asked by voice", n, 10*time.Second)
		if evs := callEvents(t, l); strings.Contains(evs, "queue.left") {
			t.Fatalf("the place was left before the caller confirmed:\n%s", evs)
		}
		time.Sleep(time.Second) // the question begins
		c.speak(utterance(t, syn, "ro", answer, c.rate))
		waitEvent(t, l, want, 1, 15*time.Second)
	}
	ask(1, "nu", "queue.callback.spoken the caller said no: keeps waiting")
	if c.waitEnded(2 * time.Second) {
		t.Fatalf("the call ended after the caller said no:\n%s", callEvents(t, l))
	}
	if pending, _ := cbs.List(context.Background(), queue.CallbackPending, 0); len(pending) != 0 {
		t.Fatalf("pending callbacks %+v after a no, want none", pending)
	}
	ask(2, "da", "queue.left")
	// "da" answers the number read back as 1 does.
	time.Sleep(time.Second)
	c.speak(utterance(t, syn, "ro", "da", c.rate))
	if !c.waitEnded(40 * time.Second) {
		t.Fatalf("the line did not end the call after the spoken request:\n%s", callEvents(t, l))
	}
	pending, err := cbs.List(context.Background(), queue.CallbackPending, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 || pending[0].Number != testCaller || pending[0].Ticket != ticket {
		t.Fatalf("pending callbacks %+v, want one for %s, ticket %s", pending, testCaller, ticket)
	}
	turns, err := l.store.Transcript(context.Background(), callID)
	if err != nil {
		t.Fatal(err)
	}
	var said []string
	for _, tu := range turns {
		if tu.Speaker == "caller" {
			said = append(said, tu.Text)
		}
	}
	// Each as heard: "reveniți cu un apel" may be its shorter synonym
	// "reveniți", "nu" may be "nu nu".
	first := func(s string) string { f, _, _ := strings.Cut(s, " "); return f }
	if len(said) != 5 || first(said[0]) != "reveniți" || first(said[1]) != "nu" || first(said[2]) != "reveniți" || said[3] != "da" || said[4] != "da" {
		t.Errorf("the caller's turns %q, want the request, \"nu\", the request, \"da\", \"da\"", said)
	}
	// The caller last hears that their place is kept, with the request's
	// number, and that is in the transcript too.
	cat := flows.DefaultCatalog()
	bye := cat.Text("ro", "callback.kept") + " " + cat.Text("ro", "callback.about") + " " + ticket + " " + cat.Text("ro", "callback.bye")
	if last := turns[len(turns)-1]; last.Speaker != "ivr" || last.Text != bye {
		t.Errorf("last turn %s %q, want the line's %q", last.Speaker, last.Text, bye)
	}
	if evs := callEvents(t, l); !strings.Contains(evs, "queue.callback.number confirmed") {
		t.Errorf("the number was not confirmed:\n%s", evs)
	}
}
