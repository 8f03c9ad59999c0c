package sip_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/diago"
	"github.com/emiago/diago/media"
	gosip "github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/dialplan/sip"
	"github.com/govline/ivr/dialplan/sip/siptest"
	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/internal/pgtest"
	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/ivr/queue"
	"github.com/govline/ivr/store"
	"github.com/govline/ivr/tickets"
)

const (
	agentPass = "correct-horse-1"
	qTicket   = "40517263"
)

// startQueueLine starts a line whose flow transfers every call to level1,
// with the agent "alice" (level1) in the store.
func startQueueLine(t *testing.T, qc queue.Config, onAgent ...func(sip.AgentEvent)) (*line, *queue.Queues) {
	t.Helper()
	return startQueueLineOn(t, qc, nil, onAgent...)
}

// startQueueLineOn is startQueueLine with the queue's state on board (nil:
// the line's own queue.Queues).
func startQueueLineOn(t *testing.T, qc queue.Config, board queue.Board, onAgent ...func(sip.AgentEvent)) (*line, *queue.Queues) {
	t.Helper()
	qc.Queues = map[string]queue.QueueConfig{"level1": qc.Queues["level1"]}
	qs, err := queue.New(qc)
	if err != nil {
		t.Fatal(err)
	}
	flow := flowFunc(func(ctx context.Context, f flows.Facts, ch flows.Channel, _ flows.Services) flows.Outcome {
		return flows.Outcome{Kind: flows.OutcomeTransfer, Queue: "level1", Ticket: qTicket, Lang: "ro", Summary: "carte de identitate\r\npierdută"}
	})
	l := startLineStore(t, func(c *sip.Config, e *ivr.Engine, store *tickets.Store) {
		dir := agentDirectory(t, store)
		if err := dir.Add(context.Background(), "alice", sip.DefaultRealm, agentPass, []string{"level1"}); err != nil {
			t.Fatal(err)
		}
		c.Queue = sip.QueueConfig{Queues: qs, Board: board, Agents: dir, Outcomes: store, MinExpires: time.Second}
		if len(onAgent) > 0 {
			c.Queue.OnAgent = onAgent[0]
		}
		e.Flow = flow
		e.Synth = &ivr.RenderCache{Dir: filepath.Join(promptCache, "tts")}
		e.Lang = "ro"
		e.RecDir = t.TempDir()
	})
	return l, qs
}

// recordedSides returns the two channels of a call's recording: what the
// caller said and what the caller heard.
func recordedSides(t *testing.T, l *line, callID string) (caller, heard []int16) {
	t.Helper()
	var path string
	c, err := l.store.Call(context.Background(), callID)
	if path = c.Recording; err != nil || path == "" {
		t.Fatalf("call %s has no recording (%q, %v)", callID, path, err)
	}
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 44 {
		t.Fatalf("recording %s: %d bytes, %v", path, len(b), err)
	}
	for i := 44; i+4 <= len(b); i += 4 {
		caller = append(caller, int16(binary.LittleEndian.Uint16(b[i:])))
		heard = append(heard, int16(binary.LittleEndian.Uint16(b[i+2:])))
	}
	return caller, heard
}

// agentPhone is a SIP agent's softphone: a diago user agent that
// registers with the line and answers the INVITEs it gets when told to,
// sending a tone and keeping what it hears.
type agentPhone struct {
	t      *testing.T
	dg     *diago.Diago
	invite chan *gosip.Request
	answer chan struct{}
	tone   float64
	mu     sync.Mutex
	heard  []int16
	loud   time.Time     // when the first loud frame arrived
	up     chan struct{} // closed when a call is answered
	hang   chan struct{} // closed: the agent hangs up
}

func newAgentPhone(t *testing.T, tone float64) *agentPhone {
	t.Helper()
	a := &agentPhone{t: t, invite: make(chan *gosip.Request, 4), answer: make(chan struct{}), tone: tone, up: make(chan struct{}), hang: make(chan struct{})}
	var once sync.Once
	handler := func(d *diago.DialogServerSession) {
		a.invite <- d.InviteRequest
		_ = d.Ringing()
		select {
		case <-a.answer:
		case <-d.Context().Done():
			return
		}
		if err := d.Answer(); err != nil {
			t.Errorf("agent answer: %v", err)
			return
		}
		once.Do(func() { close(a.up) })
		go func() {
			select {
			case <-a.hang:
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				defer cancel()
				_ = d.Hangup(ctx)
			case <-d.Context().Done():
			}
		}()
		a.talk(d)
	}
	a.dg, _ = siptest.NewAnsweringPhone(t, "agent-phone", handler, media.CodecAudioUlaw)
	return a
}

// talk sends the agent's tone and keeps what it hears until the call ends.
func (a *agentPhone) talk(d *diago.DialogServerSession) {
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
	go func() {
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
			if err != nil {
				continue
			}
			a.mu.Lock()
			a.heard = append(a.heard, pcm[:m]...)
			if a.loud.IsZero() && audio.RMS(pcm[:m]) > 1000 {
				a.loud = time.Now()
			}
			a.mu.Unlock()
		}
	}()
	enc, _ := audio.NewEncoder("PCMU")
	payload := make([]byte, 1500)
	for i := 0; d.Context().Err() == nil; i++ {
		n, _ := enc.Encode(payload, toneFrame(a.tone, 8000, i))
		if _, err := w.Write(payload[:n]); err != nil {
			break
		}
	}
	wg.Wait()
}

func (a *agentPhone) heardCopy() []int16 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]int16(nil), a.heard...)
}

// register registers name with password for expiry.
//
// diago v0.31.0's RegisterTransaction dereferences a nil response when the
// request gets none (sipgo's first request from a new UDP listener can
// fail with "address already in use"): that panic is turned into an error
// here and the REGISTER is sent again.
func (a *agentPhone) register(l *line, name, password string, expiry time.Duration) error {
	for attempt := 0; ; attempt++ {
		err, noResponse := a.registerOnce(l, name, password, expiry)
		if !noResponse || attempt >= 4 {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (a *agentPhone) registerOnce(l *line, name, password string, expiry time.Duration) (err error, noResponse bool) {
	defer func() {
		if r := recover(); r != nil {
			err, noResponse = fmt.Errorf("REGISTER got no response (diago panicked: %v)", r), true
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tx, err := a.dg.RegisterTransaction(ctx, gosip.Uri{User: name, Host: "127.0.0.1", Port: l.port},
		diago.RegisterOptions{Username: name, Password: password, Expiry: expiry})
	if err != nil {
		return err, false
	}
	return tx.Register(ctx), false
}

// toneFrame is frame i (20 ms) of a sine at freq Hz, about -12 dBFS.
func toneFrame(freq float64, rate, i int) []int16 {
	n := audio.SamplesPerFrame(rate)
	f := make([]int16, n)
	for k := range f {
		s := float64(i*n+k) / float64(rate)
		f[k] = int16(8000 * math.Sin(2*math.Pi*freq*s))
	}
	return f
}

// goertzel is the power of freq in pcm relative to the signal's power
// (near 1 for a pure tone at freq, near 0 without it).
func goertzel(pcm []int16, freq float64, rate int) float64 {
	if len(pcm) == 0 {
		return 0
	}
	coeff := 2 * math.Cos(2*math.Pi*freq/float64(rate))
	var s1, s2, total float64
	for _, v := range pcm {
		x := float64(v)
		s := x + coeff*s1 - s2
		s2, s1 = s1, s
		total += x * x
	}
	p := s1*s1 + s2*s2 - coeff*s1*s2
	if total == 0 {
		return 0
	}
	return 2 * p / (float64(len(pcm)) * total)
}

func queueOutcome(t *testing.T, l *line, callID string) string {
	t.Helper()
	c, err := l.store.Call(context.Background(), callID)
	if err != nil {
		return "error: " + err.Error()
	}
	return string(c.QueueOutcome)
}

func TestAgentRegistration(t *testing.T) {
	l, qs := startQueueLine(t, queue.Config{})
	a := newAgentPhone(t, 1000)
	if err := a.register(l, "alice", "wrong-password", time.Minute); err == nil {
		t.Fatal("a wrong password was accepted")
	}
	if _, ok := qs.Registered("alice"); ok {
		t.Fatal("alice is registered after a refused REGISTER")
	}
	if err := a.register(l, "mallory", agentPass, time.Minute); err == nil {
		t.Fatal("an unknown agent was accepted")
	}
	if err := a.register(l, "alice", agentPass, 2*time.Second); err != nil {
		t.Fatalf("register: %v", err)
	}
	contact, ok := qs.Registered("alice")
	if !ok || !strings.Contains(contact, "127.0.0.1") {
		t.Fatalf("alice not registered (contact %q)", contact)
	}
	// The registration expires when the phone stops refreshing it.
	if !waitFor(4*time.Second, func() bool { _, ok := qs.Registered("alice"); return !ok }) {
		t.Fatal("registration did not expire")
	}
}

// Phones that register within the same second are all accepted: each
// challenge has a nonce of its own (a nonce shared by two phones, both
// answering it with count 1, would make the second look like a replay).
func TestAgentsRegisterInTheSameSecond(t *testing.T) {
	l, qs := startQueueLine(t, queue.Config{})
	for i := range 3 {
		if err := newAgentPhone(t, 1000).register(l, "alice", agentPass, time.Minute); err != nil {
			t.Fatalf("phone %d: %v", i+1, err)
		}
	}
	if _, ok := qs.Registered("alice"); !ok {
		t.Fatal("alice is not registered")
	}
}

func TestQueueHandoffBridgesAudio(t *testing.T) {
	events := make(chan sip.AgentEvent, 4)
	l, qs := startQueueLine(t, queue.Config{HandleTime: 2 * time.Minute, RingTimeout: 40 * time.Second,
		Queues: map[string]queue.QueueConfig{"level1": {Strategy: queue.RingAll, MaxWait: time.Minute, Service: tickets.ServiceIdentityCard}}},
		func(e sip.AgentEvent) { events <- e })
	a := newAgentPhone(t, 1000)
	if err := a.register(l, "alice", agentPass, time.Minute); err != nil {
		t.Fatalf("register: %v", err)
	}
	c := l.answered(t)
	callID := c.d.InviteRequest.CallID().Value()

	var inv *gosip.Request
	select {
	case inv = <-a.invite:
	case <-time.After(10 * time.Second):
		t.Fatal("the agent's phone did not ring")
	}
	if h := inv.GetHeader(sip.HeaderTicket); h == nil || h.Value() != qTicket {
		t.Fatalf("%s = %v, want %s", sip.HeaderTicket, h, qTicket)
	}
	if h := inv.GetHeader(sip.HeaderSummary); h == nil || strings.ContainsAny(h.Value(), "\r\n") || !strings.Contains(h.Value(), "pierdută") {
		t.Errorf("%s = %v, want the summary on one line", sip.HeaderSummary, h)
	}
	// The caller hears their position before the agent answers.
	want := queue.Announcement(flows.DefaultCatalog(), "ro", 1, 2*time.Minute)
	pcm, err := l.eng.Synth.Synthesize(context.Background(), "ro", want, c.rate)
	if err != nil {
		t.Fatal(err)
	}
	if !waitFor(30*time.Second, func() bool { return c.heardLen() > len(pcm)+c.rate }) {
		t.Fatal("no announcement heard")
	}
	heard := envelope(c.heardSince(0), c.rate)
	if _, corr := match(heard, envelope(pcm, c.rate)); corr < 0.9 {
		t.Errorf("the position announcement %q matches what the caller heard with r=%.2f, want > 0.9", want, corr)
	}
	if qs.Waiting("level1") != 1 {
		t.Errorf("%d callers waiting, want 1", qs.Waiting("level1"))
	}

	close(a.answer)
	select {
	case <-a.up:
	case <-time.After(5 * time.Second):
		t.Fatal("agent call not up")
	}
	// Caller speaks (440 Hz) for two seconds; the agent sends 1 kHz.
	time.Sleep(200 * time.Millisecond)
	toneAt := time.Now()
	for i := range 100 {
		c.send <- toneFrame(440, c.rate, i)
	}
	mark := c.heardLen()
	time.Sleep(2500 * time.Millisecond)
	fromAgent := c.heardSince(mark)
	atAgent := a.heardCopy()
	if rms := audio.RMS(fromAgent); rms < 1000 || goertzel(fromAgent, 1000, c.rate) < 0.5 {
		t.Errorf("caller hears the agent at RMS %.0f, 1 kHz share %.2f: want the agent's tone", rms, goertzel(fromAgent, 1000, c.rate))
	}
	if rms := audio.RMS(atAgent); rms < 1000 || goertzel(atAgent, 440, 8000) < 0.3 {
		t.Errorf("agent hears the caller at RMS %.0f, 440 Hz share %.2f: want the caller's tone", rms, goertzel(atAgent, 440, 8000))
	}
	a.mu.Lock()
	t.Logf("caller -> agent latency through the bridge: %s (caller phone's send queue and pacing included)", a.loud.Sub(toneAt).Round(time.Millisecond))
	a.mu.Unlock()
	if qs.Waiting("level1") != 0 {
		t.Errorf("%d callers still waiting after the answer", qs.Waiting("level1"))
	}
	c.hangup()
	for _, ended := range []bool{false, true} {
		select {
		case e := <-events:
			if e.Agent != "alice" || e.CallID != callID || e.Ticket != qTicket || e.Queue != "level1" || e.Ended != ended {
				t.Errorf("agent event %+v, want alice on %s with ticket %s, ended %v", e, callID, qTicket, ended)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no agent event (ended %v)", ended)
		}
	}
	if !waitFor(5*time.Second, func() bool { return queueOutcome(t, l, callID) == "answered" }) {
		t.Errorf("queue outcome %q, want answered", queueOutcome(t, l, callID))
	}
	// The recording keeps both sides of the conversation with the agent:
	// the caller's tone on the left, the agent's on the right.
	if !waitFor(5*time.Second, func() bool {
		c, _ := l.store.Call(context.Background(), callID)
		return c.EndReason != ""
	}) {
		t.Fatal("the call record did not end")
	}
	left, right := recordedSides(t, l, callID)
	if n := len(left); n < 3*c.rate {
		t.Fatalf("recording holds %d samples, want the queue and the talk", n)
	}
	talk := right[len(right)-3*c.rate:] // the last seconds: the agent talking
	if g := goertzel(talk, 1000, c.rate); g < 0.3 {
		t.Errorf("the recording's heard side has a 1 kHz share of %.2f at the end: the agent's voice is missing", g)
	}
	if g := goertzel(left[len(left)-3*c.rate:], 440, c.rate); g < 0.2 {
		t.Errorf("the recording's caller side has a 440 Hz share of %.2f at the end: the caller's voice is missing", g)
	}
	rec, _ := l.store.Call(context.Background(), callID)
	if svc := string(rec.Service); svc != string(tickets.ServiceIdentityCard) {
		t.Errorf("call service %q, want the queue's %s", svc, tickets.ServiceIdentityCard)
	}
	if !waitFor(5*time.Second, func() bool { st := qs.Agents(); return len(st) == 1 && st[0].State == "idle" }) {
		t.Errorf("agent state after the call: %+v, want idle", qs.Agents())
	}
}

func TestQueueCallerHangsUpWhileQueued(t *testing.T) {
	l, qs := startQueueLine(t, queue.Config{})
	c := l.answered(t)
	callID := c.d.InviteRequest.CallID().Value()
	if !waitFor(20*time.Second, func() bool { return c.heardLen() > 2*c.rate }) {
		t.Fatal("no announcement heard")
	}
	if qs.Waiting("level1") != 1 {
		t.Fatalf("%d waiting, want 1", qs.Waiting("level1"))
	}
	c.hangup()
	if !waitFor(5*time.Second, func() bool { return queueOutcome(t, l, callID) == "abandoned" }) {
		t.Errorf("queue outcome %q, want abandoned", queueOutcome(t, l, callID))
	}
	if qs.Waiting("level1") != 0 {
		t.Errorf("%d still waiting after the hangup", qs.Waiting("level1"))
	}
}

func TestQueueMaxWait(t *testing.T) {
	l, _ := startQueueLine(t, queue.Config{Queues: map[string]queue.QueueConfig{"level1": {MaxWait: 3 * time.Second}}})
	c := l.answered(t)
	callID := c.d.InviteRequest.CallID().Value()
	start := time.Now()
	if !c.waitEnded(40 * time.Second) {
		t.Fatal("the line did not end the call after the maximum wait")
	}
	if d := time.Since(start); d < 3*time.Second {
		t.Errorf("call ended after %s, before the maximum wait", d)
	}
	if !waitFor(5*time.Second, func() bool { return queueOutcome(t, l, callID) == "abandoned" }) {
		t.Errorf("queue outcome %q, want abandoned", queueOutcome(t, l, callID))
	}
	_ = l.eng.Calls.Flush(context.Background())
	ev, err := l.store.Events(context.Background(), callID)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range ev {
		kinds = append(kinds, e.Kind)
	}
	all := strings.Join(kinds, " ")
	for _, k := range []string{"queue.join", "queue.announce", "queue.timeout"} {
		if !strings.Contains(all, k) {
			t.Errorf("events lack %s: %s", k, all)
		}
	}
	// After the timeout the caller was told the request stays open (the
	// flow's message with the ticket number): several seconds of speech.
	env := envelope(c.heardSince(0), c.rate)
	first, last := speechSpan(env)
	if first < 0 || last-first < 5*50 {
		t.Errorf("speech span %d..%d frames, want the announcement then the registered-request message", first, last)
	}
}

// TestRegisterReplayRefused: an Authorization header captured on the wire
// cannot be replayed to bind another contact.
func TestRegisterReplayRefused(t *testing.T) {
	l, qs := startQueueLine(t, queue.Config{})
	p := newPhone(t)
	cl, err := newClient(p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	uri := gosip.Uri{Host: "127.0.0.1", Port: l.port}
	reg := func(contact string, auth gosip.Header) *gosip.Response {
		t.Helper()
		req := gosip.NewRequest(gosip.REGISTER, uri)
		req.AppendHeader(&gosip.ToHeader{Address: gosip.Uri{User: "alice", Host: "127.0.0.1"}})
		from := &gosip.FromHeader{Address: gosip.Uri{User: "alice", Host: "127.0.0.1"}, Params: gosip.NewParams()}
		from.Params.Add("tag", gosip.GenerateTagN(8))
		req.AppendHeader(from)
		req.AppendHeader(gosip.NewHeader("Contact", "<"+contact+">"))
		req.AppendHeader(gosip.NewHeader("Expires", "120"))
		if auth != nil {
			req.AppendHeader(auth)
		}
		res, err := cl.Do(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	res := reg("sip:alice@127.0.0.1:5999", nil)
	if res.StatusCode != 401 {
		t.Fatalf("no challenge: %d", res.StatusCode)
	}
	ch, err := digest.ParseChallenge(res.GetHeader("WWW-Authenticate").Value())
	if err != nil {
		t.Fatal(err)
	}
	cred, err := digest.Digest(ch, digest.Options{Method: "REGISTER", URI: uri.String(), Username: "alice", Password: agentPass, Count: 1, Cnonce: "abc"})
	if err != nil {
		t.Fatal(err)
	}
	auth := gosip.NewHeader("Authorization", cred.String())
	if res := reg("sip:alice@127.0.0.1:5999", auth); res.StatusCode != 200 {
		t.Fatalf("register: %d", res.StatusCode)
	}
	if res := reg("sip:mallory@127.0.0.1:6666", auth); res.StatusCode == 200 {
		t.Fatal("a replayed Authorization was accepted")
	}
	if c, _ := qs.Registered("alice"); !strings.Contains(c, "5999") {
		t.Fatalf("alice's contact became %q", c)
	}
}

// TestRegisterWithoutQueue: a line without an agent queue takes no
// registrations.
func TestRegisterWithoutQueue(t *testing.T) {
	l := startLine(t, nil)
	a := newAgentPhone(t, 1000)
	err := a.register(l, "alice", agentPass, time.Minute)
	var re *diago.RegisterResponseError
	if !errors.As(err, &re) || re.StatusCode() != 405 {
		t.Fatalf("register on a line without queue: %v, want 405", err)
	}
}

// TestQueueCallerLeavesRequest: a waiting caller presses 1, is told the
// request is registered with its number, and the call ends; the ticket
// stays open and the call counts as abandoned.
func TestQueueCallerLeavesRequest(t *testing.T) {
	l, qs := startQueueLine(t, queue.Config{})
	c := l.answered(t)
	callID := c.d.InviteRequest.CallID().Value()
	if !waitFor(20*time.Second, func() bool { return c.heardLen() > 2*c.rate }) {
		t.Fatal("no announcement heard")
	}
	c.dtmf('5') // another key changes nothing
	time.Sleep(300 * time.Millisecond)
	if qs.Waiting("level1") != 1 {
		t.Fatal("a key other than 1 ended the wait")
	}
	c.dtmf('1')
	if !c.waitEnded(30 * time.Second) {
		t.Fatal("the line did not end the call after 1")
	}
	if qs.Waiting("level1") != 0 {
		t.Errorf("%d still waiting", qs.Waiting("level1"))
	}
	if !waitFor(5*time.Second, func() bool { return queueOutcome(t, l, callID) == "abandoned" }) {
		t.Errorf("queue outcome %q, want abandoned", queueOutcome(t, l, callID))
	}
	_ = l.eng.Calls.Flush(context.Background())
	ev, err := l.store.Events(context.Background(), callID)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range ev {
		found = found || e.Kind == "queue.left"
	}
	if !found {
		t.Error("no queue.left event")
	}
}

// TestSurveyAfterAgentHangsUp: the agent ends the conversation first; the
// caller is asked to rate it, presses 4, and the rating is stored with the
// ticket the flow opened.
// withSurvey runs its flowFunc for the call, and the shipped flows for the
// flows the engine runs by name (the survey, survey.lua).
type withSurvey struct {
	flowFunc
	rt *flows.Runtime
}

func (w withSurvey) Run(ctx context.Context, f flows.Facts, ch flows.Channel, svc flows.Services) flows.Outcome {
	if f.Flow != "" {
		return w.rt.Run(ctx, f, ch, svc)
	}
	return w.flowFunc(ctx, f, ch, svc)
}

func (w withSurvey) HasFlow(name string) bool { return w.rt.HasFlow(name) }

func (w withSurvey) Catalog() *flows.Catalog { return w.rt.Catalog() }

// After the agent hangs up, a caller still on the line hears the shipped
// survey (survey.lua) and rates the call with a key; the rating is stored
// with the ticket and the call's events say so.
func TestSurveyAfterAgentHangsUp(t *testing.T) {
	qs, err := queue.New(queue.Config{HandleTime: time.Minute, RingTimeout: 30 * time.Second,
		Queues: map[string]queue.QueueConfig{"level1": {Strategy: queue.RingAll, MaxWait: time.Minute}}})
	if err != nil {
		t.Fatal(err)
	}
	numbers := make(chan string, 1)
	shipped, err := flows.Load(filepath.Join("..", "..", "flows"), flows.Config{})
	if err != nil {
		t.Fatal(err)
	}
	flow := withSurvey{rt: shipped, flowFunc: func(ctx context.Context, f flows.Facts, ch flows.Channel, svc flows.Services) flows.Outcome {
		n, err := svc.Desk.Open(ctx, flows.TicketDraft{CallID: f.CallID, Caller: f.Caller, Lang: "ro", Service: "passport", Priority: "normal", Level: 1, Description: "wants an operator"})
		if err != nil {
			t.Error(err)
		}
		numbers <- n
		return flows.Outcome{Kind: flows.OutcomeTransfer, Queue: "level1", Ticket: n, Lang: "ro"}
	}}
	l := startLineStore(t, func(c *sip.Config, e *ivr.Engine, store *tickets.Store) {
		dir := agentDirectory(t, store)
		if err := dir.Add(context.Background(), "alice", sip.DefaultRealm, agentPass, []string{"level1"}); err != nil && !errors.Is(err, tickets.ErrExists) {
			t.Fatal(err)
		}
		c.Queue = sip.QueueConfig{Queues: qs, Agents: dir, Outcomes: store, MinExpires: time.Second}
		e.Flow = flow
		e.Synth = &ivr.RenderCache{Dir: filepath.Join(promptCache, "tts")}
		e.Lang = "ro"
		e.Services = flows.Services{Desk: flows.TicketDesk{Store: store}}
	})
	a := newAgentPhone(t, 1000)
	if err := a.register(l, "alice", agentPass, time.Minute); err != nil {
		t.Fatalf("register: %v", err)
	}
	c := l.answered(t)
	number := <-numbers
	select {
	case <-a.invite:
	case <-time.After(10 * time.Second):
		t.Fatal("the agent's phone did not ring")
	}
	close(a.answer)
	select {
	case <-a.up:
	case <-time.After(5 * time.Second):
		t.Fatal("agent call not up")
	}
	time.Sleep(time.Second)
	close(a.hang)
	// The survey question plays; a key answers it at once.
	mark := c.heardLen()
	if !waitFor(10*time.Second, func() bool { return audio.RMS(c.heardSince(mark)) > 300 }) {
		t.Fatal("no survey question after the agent hung up")
	}
	c.dtmf('4')
	if !c.waitEnded(20 * time.Second) {
		t.Fatal("the line did not end the call after the rating")
	}
	var tk tickets.Ticket
	if !waitFor(5*time.Second, func() bool {
		tk, err = l.store.Ticket(context.Background(), number)
		return err == nil && tk.Rating == 4
	}) {
		t.Fatalf("ticket %s rating %v (err %v), want 4", number, tk.Rating, err)
	}
	rec := record(t, l, callID(c))
	events, _ := l.store.Events(context.Background(), rec.ID)
	var survey []string
	for _, e := range events {
		if e.Kind == "survey" {
			survey = append(survey, e.Detail)
		}
	}
	if len(survey) != 1 || survey[0] != "rating 4" {
		t.Errorf("survey events %q, want [rating 4]", survey)
	}
}

// Two engines share one agent queue through PostgreSQL (queue.Shared): an
// agent who registered with engine A only is rung by engine B for B's
// caller, and once the call ends she is free for engine A's callers.
func TestQueueSharedAcrossEngines(t *testing.T) {
	url := pgtest.Start(t).NewDatabase(t)
	qc := queue.Config{RingTimeout: 40 * time.Second,
		Queues: map[string]queue.QueueConfig{"level1": {MaxWait: time.Minute}}}
	ctx := context.Background()
	var lines [2]*line
	var boards [2]*queue.Shared
	for i, name := range []string{"engine-a", "engine-b"} {
		db, err := store.Open(ctx, url, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		b, err := queue.NewShared(ctx, db, queue.SharedConfig{Config: qc, Engine: name, Lease: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		boards[i] = b
		lines[i], _ = startQueueLineOn(t, qc, b)
	}
	a := newAgentPhone(t, 1000)
	if err := a.register(lines[0], "alice", agentPass, time.Minute); err != nil {
		t.Fatalf("register with engine A: %v", err)
	}
	if contact, ok, err := boards[1].Registered(ctx, "alice"); err != nil || !ok || !strings.Contains(contact, "127.0.0.1") {
		t.Fatalf("engine B does not see alice's registration: %q %v %v", contact, ok, err)
	}
	c := lines[1].answered(t)
	var inv *gosip.Request
	select {
	case inv = <-a.invite:
	case <-time.After(15 * time.Second):
		t.Fatal("engine B's caller did not ring the agent registered with engine A")
	}
	if via := inv.Via(); via == nil || via.Port != lines[1].port {
		t.Errorf("the agent's INVITE came through %v, want engine B (port %d)", via, lines[1].port)
	}
	close(a.answer)
	select {
	case <-a.up:
	case <-time.After(5 * time.Second):
		t.Fatal("agent call not up")
	}
	// While alice talks to B's caller, engine A's callers get nobody.
	probe, err := boards[0].Join(ctx, "level1", "probe-a")
	if err != nil {
		t.Fatal(err)
	}
	if ts, err := probe.Claim(ctx); err != nil || len(ts) != 0 {
		t.Fatalf("engine A's caller was offered %v (err %v) while alice talks to engine B's caller", ts, err)
	}
	c.hangup()
	if !waitFor(10*time.Second, func() bool {
		ts, err := probe.Claim(ctx)
		return err == nil && len(ts) == 1 && ts[0].Agent == "alice"
	}) {
		t.Fatal("alice is not free for engine A's caller after engine B's call ended")
	}
	if err := probe.Settle(ctx, "", true); err != nil {
		t.Fatal(err)
	}
}
