package sip_test

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/diago"
	"github.com/emiago/diago/media"
	gosip "github.com/emiago/sipgo/sip"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/dialplan/sip"
	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/ivr/amd/amdtest"
	"github.com/govline/ivr/ivr/queue"
	"github.com/govline/ivr/speech"
	"github.com/govline/ivr/tickets"
)

// Answering machine detection over real SIP: the trunk's far end answers
// and plays what espeak-ng renders for a person ("Alo?" and silence) or a
// voicemail (a long greeting and a beep); the line's outbound call listens
// with the shared silero detector before it speaks.

// answerer is the citizen's side of the answered outbound calls behind a
// test trunk: each answered call plays says (8 kHz, PCMU), then silence,
// and keeps what it hears of the line and when.
type answerer struct {
	t    *testing.T
	says []int16
	// speechFrom and speechTo are the samples of says that are speech
	// (the rest is the phone's silence, or a beep after it).
	speechFrom, speechTo int
	hang                 chan struct{} // closed: the phone hangs up

	mu    sync.Mutex
	calls []*answered
}

// answered is one answered call as the citizen's phone saw it.
type answered struct {
	at          time.Time // 200 OK sent
	spoke, said time.Time // the first and the last frame of speech sent
	allSent     time.Time // says sent whole (zero if the call ended before)
	firstLoud   time.Time // the first loud frame heard of the line
	ended       time.Time // the dialog ended
	byLine      bool      // the line hung up (BYE received)
	heard       []int16
	loudest     float64 // RMS of the loudest 20 ms heard
}

// newAnswerer renders text (ro) as what the citizen's side says after lead
// of silence, then beep of a 1 kHz tone when not zero.
func newAnswerer(t *testing.T, text string, lead, beep time.Duration) *answerer {
	t.Helper()
	ans := amdtest.NewAnswer(t, text, lead, beep, 8000)
	a := &answerer{t: t, hang: make(chan struct{}), says: ans.PCM, speechFrom: ans.SpeechFrom, speechTo: ans.SpeechTo}
	t.Cleanup(func() {
		select {
		case <-a.hang:
		default:
			close(a.hang)
		}
	})
	return a
}

// serve is the trunk's handler of an answered call (testTrunk.answered).
func (a *answerer) serve(d *diago.DialogServerSession) {
	rec := &answered{at: time.Now()}
	a.mu.Lock()
	a.calls = append(a.calls, rec)
	a.mu.Unlock()
	r, err := d.AudioReader()
	if err != nil {
		a.t.Error(err)
		return
	}
	w, err := d.AudioWriter()
	if err != nil {
		a.t.Error(err)
		return
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // listen
		defer wg.Done()
		dec, _ := audio.NewDecoder("PCMU")
		buf := make([]byte, media.RTPBufSize)
		pcm := make([]int16, 8000/10)
		for {
			n, err := r.Read(buf)
			if err != nil {
				return
			}
			m, err := dec.Decode(pcm, buf[:n])
			if err != nil || m == 0 {
				continue
			}
			rms := audio.RMS(pcm[:m])
			a.mu.Lock()
			rec.heard = append(rec.heard, pcm[:m]...)
			rec.loudest = math.Max(rec.loudest, rms)
			if rec.firstLoud.IsZero() && rms > 1000 {
				rec.firstLoud = time.Now()
			}
			a.mu.Unlock()
		}
	}()
	enc, _ := audio.NewEncoder("PCMU")
	payload := make([]byte, 1500)
	silence := make([]int16, 160)
	go func() {
		select {
		case <-a.hang:
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			_ = d.Hangup(ctx)
		case <-d.Context().Done():
		}
	}()
	for off := 0; d.Context().Err() == nil; off += 160 {
		frame := silence
		if off+160 <= len(a.says) {
			frame = a.says[off : off+160]
		}
		n, _ := enc.Encode(payload, frame)
		if _, err := w.Write(payload[:n]); err != nil { // paced by diago's RTP clock
			break
		}
		now := time.Now()
		a.mu.Lock()
		switch {
		case off <= a.speechFrom && a.speechFrom < off+160:
			rec.spoke = now
		case off < a.speechTo && a.speechTo <= off+160:
			rec.said = now
		}
		if off+160 >= len(a.says) && rec.allSent.IsZero() {
			rec.allSent = now
		}
		a.mu.Unlock()
	}
	<-d.Context().Done()
	a.mu.Lock()
	rec.ended = time.Now()
	select {
	case <-a.hang:
	default:
		rec.byLine = true
	}
	a.mu.Unlock()
	wg.Wait()
}

func (a *answerer) seen() []answered {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]answered, len(a.calls))
	for i, c := range a.calls {
		out[i] = *c
		out[i].heard = append([]int16(nil), c.heard...)
	}
	return out
}

// withVAD gives the engine the shared silero detector (and no recognizer:
// the line's own calls stay on keys).
func withVAD(t *testing.T) func(*ivr.Engine) {
	vad, _, _ := speechEngines(t)
	return func(e *ivr.Engine) {
		e.Speech = &ivr.SpeechConfig{NewVAD: func(rate int) (speech.VAD, func(), error) {
			s, err := vad.NewStream(rate)
			if err != nil {
				return nil, nil, err
			}
			return s, func() { s.Close() }, nil
		}}
	}
}

// askCallback calls the line, presses 1 in the queue and 1 to confirm the
// number read back, and hangs up once the callback is recorded (the line's
// goodbye is not waited for).
func askCallback(t *testing.T, l *line, cbs queue.Callbacks) {
	t.Helper()
	c := l.answered(t)
	if !waitFor(20*time.Second, func() bool { return c.heardLen() > 2*c.rate }) {
		t.Fatal("no announcement heard")
	}
	c.dtmf('1')
	c.dtmf('1') // confirms the number read back
	if !waitFor(20*time.Second, func() bool {
		all, _ := cbs.List(context.Background(), "", 0)
		return len(all) == 1
	}) {
		t.Fatal("no callback recorded after 1")
	}
	c.hangup()
}

func machineDetection(o *sip.OutboundConfig) { o.Machine = sip.MachineDetection{Enabled: true} }

// amdEvent is the sip.amd event of the outbound call callID.
func amdEvent(t *testing.T, l *line, callID string) string {
	t.Helper()
	ctx := context.Background()
	var detail string
	waitFor(5*time.Second, func() bool {
		_ = l.eng.Calls.Flush(ctx)
		evs, err := l.store.Events(ctx, callID)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			if e.Kind == "sip.amd" {
				detail = e.Detail
			}
		}
		return detail != ""
	})
	return detail
}

// TestCallbackMachineDetectionHuman: the citizen answers the callback with
// "Alo?" and waits; the line takes them for a person and speaks (the
// callback's announcement) soon after their word.
func TestCallbackMachineDetectionHuman(t *testing.T) {
	tk := newTestTrunk(t, trunkAnswer, trunkPass)
	ans := newAnswerer(t, "Alo?", 300*time.Millisecond, 0)
	tk.answered = ans.serve
	l, _, cbs, _ := startCallbackLineEngine(t, tk, machineDetection, withVAD(t))
	askCallback(t, l, cbs)
	if !waitFor(20*time.Second, func() bool {
		s := ans.seen()
		return len(s) == 1 && !s[0].firstLoud.IsZero()
	}) {
		t.Fatalf("the citizen who said Alo heard nothing of the line: %+v", ans.seen())
	}
	c := ans.seen()[0]
	afterWord := c.firstLoud.Sub(c.said)
	t.Logf("\"Alo?\" lasted %s; the line spoke %s after its end (%s after the answer)",
		c.said.Sub(c.spoke).Round(time.Millisecond), afterWord.Round(time.Millisecond), c.firstLoud.Sub(c.at).Round(time.Millisecond))
	invites, _, _, _ := tk.seen()
	ev := amdEvent(t, l, invites[0].CallID().Value())
	t.Logf("sip.amd: %s", ev)
	if !strings.HasPrefix(ev, "human: a greeting of") {
		t.Errorf("sip.amd event %q, want a person after their greeting", ev)
	}
	// About 1 s after the word (800 ms of silence decide); the bound is
	// loose for a loaded machine, the figure is logged.
	if afterWord < 500*time.Millisecond || afterWord > 3*time.Second {
		t.Errorf("the line spoke %s after the citizen's word, want about 1 s", afterWord)
	}
	close(ans.hang)
	if !waitFor(10*time.Second, func() bool {
		done, _ := cbs.List(context.Background(), queue.CallbackDone, 0)
		return len(done) == 1
	}) {
		all, _ := cbs.List(context.Background(), "", 0)
		t.Errorf("callbacks %+v, want one done (answered)", all)
	}
	if n := l.eng.Metrics.OutboundAttempts("machine"); n != 0 {
		t.Errorf("%d attempts counted as machine, want 0", n)
	}
}

// The voicemail's greeting.
const voicemailGreeting = amdtest.Greeting

// TestCallbackMachineDetectionMachine: a voicemail answers the callback
// with a long greeting and a beep; the line hangs up during the greeting
// without a word, the attempt is noted as machine on the ticket, and it
// is tried again after the backoff, then the callback fails.
func TestCallbackMachineDetectionMachine(t *testing.T) {
	tk := newTestTrunk(t, trunkAnswer, trunkPass)
	ans := newAnswerer(t, voicemailGreeting, 200*time.Millisecond, 600*time.Millisecond)
	tk.answered = ans.serve
	l, qs, cbs, ticket := startCallbackLineEngine(t, tk, func(o *sip.OutboundConfig) {
		machineDetection(o)
		o.Retries = 1
		o.Backoff = 300 * time.Millisecond
	}, withVAD(t))
	t.Logf("the greeting lasts %s", time.Duration(ans.speechTo-ans.speechFrom)*time.Second/8000)
	askCallback(t, l, cbs)
	if !waitFor(40*time.Second, func() bool {
		f, _ := cbs.List(context.Background(), queue.CallbackFailed, 0)
		return len(f) == 1
	}) {
		all, _ := cbs.List(context.Background(), "", 0)
		t.Fatalf("callbacks %+v, want one failed after two machines", all)
	}
	f, _ := cbs.List(context.Background(), queue.CallbackFailed, 0)
	if f[0].Attempts != 2 || f[0].LastReason != "machine" {
		t.Errorf("failed callback %+v, want 2 attempts, the last machine", f[0])
	}
	invites, at, _, _ := tk.seen()
	if len(invites) != 2 {
		t.Fatalf("the trunk got %d INVITEs, want 2 (one retry)", len(invites))
	}
	var calls []answered
	waitFor(5*time.Second, func() bool {
		calls = ans.seen()
		return len(calls) == 2 && !calls[1].ended.IsZero()
	})
	if len(calls) != 2 {
		t.Fatalf("%d calls answered, want 2", len(calls))
	}
	for i, c := range calls {
		ev := amdEvent(t, l, invites[i].CallID().Value())
		t.Logf("attempt %d: hung up %s after the greeting started (%s after the answer); loudest heard RMS %.0f; sip.amd: %s",
			i+1, c.ended.Sub(c.spoke).Round(time.Millisecond), c.ended.Sub(c.at).Round(time.Millisecond), c.loudest, ev)
		if !strings.HasPrefix(ev, "machine: ") {
			t.Errorf("attempt %d: sip.amd event %q, want machine", i+1, ev)
		}
		if !c.byLine {
			t.Errorf("attempt %d: the line did not hang up", i+1)
		}
		if !c.said.IsZero() || !c.allSent.IsZero() {
			t.Errorf("attempt %d: the line was still there after the greeting (hung up %s after it started): it would have reached the beep",
				i+1, c.ended.Sub(c.spoke).Round(time.Millisecond))
		}
		// Nothing was said to the machine.
		if c.loudest > 300 || !c.firstLoud.IsZero() {
			t.Errorf("attempt %d: the machine heard the line (loudest 20 ms at RMS %.0f)", i+1, c.loudest)
		}
	}
	if gap := at[1].Sub(at[0]); gap < 300*time.Millisecond {
		t.Errorf("the retry came %s after the first attempt, before the backoff", gap)
	}
	notes := waitNotes(t, l.store, ticket, 2, "one per attempt")
	if notes[0] != "callback attempt 1: machine" || notes[1] != "callback attempt 2: machine; callback failed, no more attempts" {
		t.Errorf("ticket notes %q", notes)
	}
	if !waitFor(5*time.Second, func() bool { return qs.Waiting("level1") == 0 }) {
		t.Errorf("%d still waiting: the failed callback's place was not left", qs.Waiting("level1"))
	}
	m := l.eng.Metrics
	if m.OutboundAttempts("machine") != 2 || m.OutboundAttempts("answered") != 0 {
		t.Errorf("outbound attempts counted: machine %d answered %d, want 2 and 0", m.OutboundAttempts("machine"), m.OutboundAttempts("answered"))
	}
	_ = l.eng.Calls.Flush(context.Background())
	if rec, err := l.store.Call(context.Background(), invites[0].CallID().Value()); err != nil || rec.EndReason != "outbound_machine" {
		t.Errorf("the call record of the first attempt ends %q (%v), want outbound_machine", rec.EndReason, err)
	}
}

// TestOutboundMachineDetectionSilence: the citizen answers and says
// nothing; after sip.outbound.machine_silence (2 s) the line takes them
// for a person waiting and speaks.
func TestOutboundMachineDetectionSilence(t *testing.T) {
	tk := newTestTrunk(t, trunkAnswer, trunkPass)
	ans := newAnswerer(t, "", 0, 0)
	tk.answered = ans.serve
	trunk, err := sip.ParseTrunk(tk.uri())
	if err != nil {
		t.Fatal(err)
	}
	vad := withVAD(t)
	l := startLine(t, func(c *sip.Config, e *ivr.Engine) {
		c.Outbound = sip.OutboundConfig{Trunk: trunk, CallerID: "0800100200", RingTimeout: 5 * time.Second, PerSecond: 50,
			Machine: sip.MachineDetection{Enabled: true}}
		vad(e)
	})
	done := make(chan error, 1)
	go func() {
		_, err := l.srv.Originate(context.Background(), sip.OriginateRequest{Number: testCaller})
		done <- err
	}()
	if !waitFor(20*time.Second, func() bool {
		s := ans.seen()
		return len(s) == 1 && !s[0].firstLoud.IsZero()
	}) {
		t.Fatalf("the silent citizen heard nothing of the line: %+v", ans.seen())
	}
	c := ans.seen()[0]
	wait := c.firstLoud.Sub(c.at)
	invites, _, _, _ := tk.seen()
	ev := amdEvent(t, l, invites[0].CallID().Value())
	t.Logf("silence: the line spoke %s after the answer; sip.amd: %s", wait.Round(time.Millisecond), ev)
	if !strings.HasPrefix(ev, "human: silence for 2s") {
		t.Errorf("sip.amd event %q, want a person after 2 s of silence", ev)
	}
	if wait < 1500*time.Millisecond || wait > 8*time.Second {
		t.Errorf("the line spoke %s after the answer, want about 2 s", wait)
	}
	close(ans.hang)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Originate: %v, want answered", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("Originate did not return after the citizen hung up")
	}
}

// TestQueuedCallbackWithheldNumber: a caller whose number is withheld (an
// anonymous From, or Privacy: id over a real From) presses 1 in the queue;
// nothing is read back of their caller ID: the line asks them to type the
// number, reads the typed number back, and the callback calls it.
func TestQueuedCallbackWithheldNumber(t *testing.T) {
	for _, tc := range []struct {
		name string
		from *gosip.FromHeader
	}{
		{"anonymous", &gosip.FromHeader{DisplayName: "Anonymous", Address: gosip.Uri{User: "anonymous", Host: "anonymous.invalid"}, Params: gosip.NewParams()}},
		{"privacy id", &gosip.FromHeader{Address: gosip.Uri{User: testCaller, Host: "127.0.0.1"}, Params: gosip.NewParams()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tk := newTestTrunk(t, trunkAnswer, trunkPass)
			l, _, cbs, ticket := startCallbackLine(t, tk, nil)
			c, err := newPhone(t).dial(l, "1919", diago.InviteOptions{Headers: []gosip.Header{tc.from, gosip.NewHeader("Privacy", "id")}})
			if err != nil {
				t.Fatalf("call not answered: %v", err)
			}
			callID := c.d.InviteRequest.CallID().Value()
			if !waitFor(20*time.Second, func() bool { return c.heardLen() > 2*c.rate }) {
				t.Fatal("no announcement heard")
			}
			c.dtmf('1')
			// "Tastați numărul la care să vă sunăm, apoi tasta diez."
			mark := c.heardLen()
			if !waitFor(15*time.Second, func() bool { return c.heardLen() > mark+c.rate }) {
				t.Fatal("nothing heard after 1")
			}
			const typed = "0722999777"
			c.press(typed + "#")
			mark = c.heardLen()
			// "Vă vom suna la numărul 0 7 2 2 9 9 9 7 7 7. Apăsați 1 ..."
			if !waitFor(15*time.Second, func() bool { return c.heardLen() > mark+3*c.rate }) {
				t.Fatal("the typed number was not read back")
			}
			c.dtmf('1')
			var pending []queue.Callback
			if !waitFor(20*time.Second, func() bool {
				pending, _ = cbs.List(context.Background(), "", 0)
				return len(pending) > 0
			}) {
				t.Fatal("no callback recorded after the typed number")
			}
			c.hangup() // the line's goodbye is not waited for
			if len(pending) != 1 || pending[0].Number != typed || pending[0].Ticket != ticket {
				t.Fatalf("callbacks %+v, want one for the typed %s", pending, typed)
			}
			// The callback goes to the typed number.
			select {
			case <-tk.phone.up:
			case <-time.After(15 * time.Second):
				t.Fatal("the typed number was not called back")
			}
			invites, _, _, _ := tk.seen()
			if got := invites[0].Recipient.User; got != typed {
				t.Errorf("the callback called %q, want the typed %s", got, typed)
			}
			ctx := context.Background()
			_ = l.eng.Calls.Flush(ctx)
			evs, err := l.store.Events(ctx, callID)
			if err != nil {
				t.Fatal(err)
			}
			var numbers []string
			for _, e := range evs {
				if e.Kind == "queue.callback.number" {
					numbers = append(numbers, e.Detail)
				}
			}
			want := []string{"caller ID withheld: the caller types the number", "typed *******777"}
			if strings.Join(numbers, "|") != strings.Join(want, "|") {
				t.Errorf("queue.callback.number events %q, want %q (nothing read back of the caller ID)", numbers, want)
			}
		})
	}
}

// TestSurveyCallMachine: a voicemail answers a survey call; the line hangs
// up without a word and the survey's result is machine (a survey call is
// a single attempt), not counted as answered.
func TestSurveyCallMachine(t *testing.T) {
	tk := newTestTrunk(t, trunkAnswer, trunkPass)
	ans := newAnswerer(t, voicemailGreeting, 200*time.Millisecond, 600*time.Millisecond)
	tk.answered = ans.serve
	shipped, err := flows.Load(filepath.Join("..", "..", "flows"), flows.Config{})
	if err != nil {
		t.Fatal(err)
	}
	trunk, err := sip.ParseTrunk(tk.uri())
	if err != nil {
		t.Fatal(err)
	}
	vad := withVAD(t)
	var number string
	l := startLineStore(t, func(c *sip.Config, e *ivr.Engine, store *tickets.Store) {
		c.Outbound = sip.OutboundConfig{Trunk: trunk, PerSecond: 50, Machine: sip.MachineDetection{Enabled: true}}
		e.Synth = &ivr.RenderCache{Dir: filepath.Join(promptCache, "tts")}
		e.Lang = "ro"
		e.Services = flows.Services{Desk: flows.TicketDesk{Store: store}}
		vad(e)
		tkt, err := store.OpenTicket(context.Background(), tickets.NewTicket{Actor: "ivr", Channel: "phone", Caller: testCaller, Lang: "ro", Service: tickets.ServicePassport})
		if err != nil {
			t.Fatal(err)
		}
		if err := store.Resolve(context.Background(), tkt.Number, "ana", "done"); err != nil {
			t.Fatal(err)
		}
		number = tkt.Number
	})
	cfg := sip.SurveyConfig{Store: l.store, Flow: shipped, Period: 30 * 24 * time.Hour, Since: time.Now().Add(-time.Hour)}
	if n, err := l.srv.SurveyRound(context.Background(), cfg); err != nil || n != 1 {
		t.Fatalf("SurveyRound: %d calls, %v; want 1", n, err)
	}
	if got := l.eng.Metrics.Surveys("machine"); got != 1 {
		t.Errorf("surveys counted machine: %d, want 1", got)
	}
	c, err := l.store.SurveyReport(context.Background(), time.Now().Add(-time.Hour), time.Now().Add(time.Minute))
	if err != nil || c.Placed != 1 || c.Answered != 0 {
		t.Errorf("survey report %+v (%v), want 1 placed, none answered", c, err)
	}
	if calls := ans.seen(); len(calls) != 1 {
		t.Errorf("%d calls answered, want 1", len(calls))
	} else if calls[0].loudest > 300 {
		t.Errorf("the machine heard the line: loudest 20 ms at RMS %.0f", calls[0].loudest)
	}
	tkt, err := l.store.Ticket(context.Background(), number)
	if err != nil || tkt.Rating != 0 {
		t.Errorf("ticket %s rating %v (%v), want none", number, tkt.Rating, err)
	}
}

// TestOutboundMachineDetectionLoudness: without a voice activity detector
// (speech off, or its model missing) loudness alone decides: a person's
// "Alo?" is still a person, a voicemail's greeting still a machine.
func TestOutboundMachineDetectionLoudness(t *testing.T) {
	for _, tc := range []struct {
		name string
		text string
		want string
	}{
		{"person", "Alo?", "human: a greeting of"},
		{"voicemail", voicemailGreeting, "machine: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tk := newTestTrunk(t, trunkAnswer, trunkPass)
			ans := newAnswerer(t, tc.text, 300*time.Millisecond, 0)
			tk.answered = ans.serve
			trunk, err := sip.ParseTrunk(tk.uri())
			if err != nil {
				t.Fatal(err)
			}
			l := startLine(t, func(c *sip.Config, _ *ivr.Engine) {
				c.Outbound = sip.OutboundConfig{Trunk: trunk, CallerID: "0800100200", RingTimeout: 5 * time.Second, PerSecond: 50,
					Machine: sip.MachineDetection{Enabled: true}}
			})
			done := make(chan error, 1)
			go func() {
				_, err := l.srv.Originate(context.Background(), sip.OriginateRequest{Number: testCaller})
				done <- err
			}()
			if !waitFor(20*time.Second, func() bool {
				s := ans.seen()
				return len(s) == 1 && (!s[0].firstLoud.IsZero() || !s[0].ended.IsZero())
			}) {
				t.Fatalf("neither heard the line nor hung up on: %+v", ans.seen())
			}
			invites, _, _, _ := tk.seen()
			ev := amdEvent(t, l, invites[0].CallID().Value())
			t.Logf("sip.amd: %s", ev)
			if !strings.HasPrefix(ev, tc.want) {
				t.Errorf("sip.amd event %q, want %q", ev, tc.want)
			}
			close(ans.hang)
			select {
			case err := <-done:
				if got := sip.ReasonOfOutbound(err); (tc.name == "voicemail") != (got == sip.OutboundMachine) {
					t.Errorf("Originate ended %s (%v)", got, err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Originate did not return")
			}
		})
	}
}
