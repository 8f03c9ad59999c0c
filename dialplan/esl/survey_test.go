package esl

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/ivr/amd/amdtest"
	"github.com/govline/ivr/ivr/survey"
	"github.com/govline/ivr/ivr/survey/surveytest"
	"github.com/govline/ivr/tickets"
)

// originateRE is the originate SurveyCall sends, in FreeSWITCH's
// documented form.
var originateRE = regexp.MustCompile(`^api originate \{origination_caller_id_number=080012345,origination_uuid=([0-9a-f-]{36}),originate_timeout=20\}sofia/gateway/trunk/(\d+) &socket\((127\.0\.0\.1:\d+) async full\)$`)

// dialingFS is FreeSWITCH's inbound event socket as the engine's
// originates meet it: after auth, `api originate` dials the number (dial
// says how its far end answers) and, when answered, the new channel
// connects to the &socket address as a fakeFS, with the uuid the engine
// chose, before the api answers +OK uuid (FreeSWITCH's order).
type dialingFS struct {
	t    *testing.T
	e    *engine
	ln   net.Listener
	dial func(number string) string // "answer", "busy" (USER_BUSY), "noanswer" (NO_ANSWER), "late" (answered after 600 ms)

	mu       sync.Mutex
	says     []int16 // what an answered channel's far end says (fakeFS.says): setSays
	got      []string
	channels []*fakeFS
	answered chan *fakeFS
}

// newDialingFS listens; the engine is set (setEngine) before any
// originate.
func newDialingFS(t *testing.T, dial func(string) string) *dialingFS {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &dialingFS{t: t, ln: ln, dial: dial, answered: make(chan *fakeFS, 4)}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { f.serve(c) })
		}
	})
	return f
}

func (f *dialingFS) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprint(c, "Content-Type: auth/request\n\n")
	br := bufio.NewReader(c)
	api := func(body string) {
		fmt.Fprintf(c, "Content-Type: api/response\nContent-Length: %d\n\n%s", len(body), body)
	}
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.TrimRight(l, "\r\n")
		if cmd == "" {
			continue
		}
		if _, err := br.ReadString('\n'); err != nil { // the blank line ending the command
			return
		}
		f.mu.Lock()
		f.got = append(f.got, cmd)
		f.mu.Unlock()
		switch {
		case cmd == "auth ClueCon":
			fmt.Fprint(c, "Content-Type: command/reply\nReply-Text: +OK accepted\n\n")
		case strings.HasPrefix(cmd, "auth "):
			fmt.Fprint(c, "Content-Type: command/reply\nReply-Text: -ERR invalid\n\n")
			return
		case strings.HasPrefix(cmd, "api originate "):
			e := f.engine()
			m := originateRE.FindStringSubmatch(cmd)
			if m == nil || m[3] != e.eslAddr {
				f.t.Errorf("originate %q: not the documented form with the engine's socket %s", cmd, e.eslAddr)
				api("-ERR INVALID_GATEWAY\n")
				continue
			}
			switch f.dial(m[2]) {
			case "busy":
				api("-ERR USER_BUSY\n")
				continue
			case "noanswer":
				time.Sleep(200 * time.Millisecond)
				api("-ERR NO_ANSWER\n")
				continue
			case "late":
				time.Sleep(600 * time.Millisecond) // the engine gave up meanwhile
			}
			ch := newFakeFS(f.t)
			ch.uuid = m[1]
			f.mu.Lock()
			ch.says = f.says
			f.mu.Unlock()
			ch.dial(e)
			f.mu.Lock()
			f.channels = append(f.channels, ch)
			f.mu.Unlock()
			f.answered <- ch
			api("+OK " + m[1] + "\n")
		default:
			fmt.Fprint(c, "Content-Type: command/reply\nReply-Text: -ERR command not found\n\n")
		}
	}
}

// setSays makes the far end of the answered channels say pcm (8 kHz),
// then silence, instead of a steady tone.
func (f *dialingFS) setSays(pcm []int16) {
	f.mu.Lock()
	f.says = pcm
	f.mu.Unlock()
}

func (f *dialingFS) setEngine(e *engine) {
	f.mu.Lock()
	f.e = e
	f.mu.Unlock()
}

func (f *dialingFS) engine() *engine {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.e
}

func (f *dialingFS) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

// surveyEngine is the engine with the shipped flows, outbound calls
// through the dialing FreeSWITCH, and resolved tickets of callers.
func surveyEngine(t *testing.T, dial func(string) string, callers ...string) (*engine, *dialingFS, []string, survey.Config) {
	t.Helper()
	return surveyEngineWith(t, nil, dial, callers...)
}

// surveyEngineWith is surveyEngine with the outbound configuration adjusted.
func surveyEngineWith(t *testing.T, adjust func(*Outbound), dial func(string) string, callers ...string) (*engine, *dialingFS, []string, survey.Config) {
	t.Helper()
	fs := newDialingFS(t, dial)
	e := startEngine(t, nil, func(c *Config) {
		c.Outbound = Outbound{Gateway: "trunk", CallerID: "080012345", RingTimeout: 20 * time.Second, Addr: fs.ln.Addr().String(), Password: "ClueCon"}
		if adjust != nil {
			adjust(&c.Outbound)
		}
	})
	fs.setEngine(e)
	shipped, err := flows.Load(filepath.Join("..", "..", "flows"), flows.Config{})
	if err != nil {
		t.Fatal(err)
	}
	e.eng.Services = flows.Services{Desk: flows.TicketDesk{Store: e.store}}
	var numbers []string
	for _, caller := range callers {
		tkt, err := e.store.OpenTicket(context.Background(), tickets.NewTicket{Actor: "ivr", Channel: "phone", Caller: caller, Lang: "ro", Service: tickets.ServicePassport})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.store.Resolve(context.Background(), tkt.Number, "ana", "done"); err != nil {
			t.Fatal(err)
		}
		numbers = append(numbers, tkt.Number)
	}
	return e, fs, numbers, survey.Config{Store: e.store, Flow: shipped, Period: 30 * 24 * time.Hour, Since: time.Now().Add(-time.Hour)}
}

// TestSurveyCallThroughEventSocket: a resolved ticket gets its survey
// call through FreeSWITCH: over the inbound event socket the engine
// authenticates and sends `originate` in its documented form (caller id,
// its own origination_uuid, ring timeout, the gateway and number,
// &socket(the engine's listener async full)); the answered channel
// connects to the engine as the socket application does, is answered and
// bridged to the media leg like an inbound one, and runs the survey flow;
// the citizen hears the question, presses 4 (a DTMF event and RFC 4733 on
// the leg) and the rating 4 is on the ticket, the survey counted as rated.
func TestSurveyCallThroughEventSocket(t *testing.T) {
	e, fs, ticket, cfg := surveyEngine(t, func(string) string { return "answer" }, "0722123456")
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := survey.Round(context.Background(), e.srv, cfg, e.eng.Metrics, nil)
		done <- result{n, err}
	}()
	var ch *fakeFS
	select {
	case ch = <-fs.answered:
	case <-time.After(10 * time.Second):
		t.Fatal("no originate answered")
	}
	if got := fs.commands(); len(got) != 2 || got[0] != "auth ClueCon" || !originateRE.MatchString(got[1]) {
		t.Errorf("inbound commands %q, want auth then the originate", got)
	}
	leg := ch.waitLeg()
	if !waitFor(20*time.Second, func() bool { return leg.heardLoud() > 50 }) {
		t.Fatalf("the citizen heard %d loud frames", leg.heardLoud())
	}
	ch.dtmf('4')
	var r result
	select {
	case r = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the survey round did not end")
	}
	if r.err != nil || r.n != 1 {
		t.Fatalf("Round: %d calls, %v; want 1", r.n, r.err)
	}
	tkt, err := e.store.Ticket(context.Background(), ticket[0])
	if err != nil {
		t.Fatal(err)
	}
	if tkt.Rating != 4 {
		t.Fatalf("ticket %s rating %v, want 4", ticket[0], tkt.Rating)
	}
	if got := e.eng.Metrics.Surveys(tickets.SurveyRated); got != 1 {
		t.Errorf("rated surveys counted %d, want 1", got)
	}
	rec, _ := e.record(t, ch.uuid)
	if rec.Telephony != "esl" {
		t.Errorf("call record %+v, want an event socket call", rec)
	}
	if !ch.waitClosed(10 * time.Second) {
		t.Error("the engine did not end the channel after the survey")
	}
}

// A busy citizen (USER_BUSY) and one who does not answer (NO_ANSWER) are
// recorded as busy and no_answer, as on the SIP line and through
// Asterisk, with no rating and no channel served.
func TestSurveyCallThroughEventSocketNotAnswered(t *testing.T) {
	e, fs, ticket, cfg := surveyEngine(t, func(n string) string {
		if n == "0722000001" {
			return "busy"
		}
		return "noanswer"
	}, "0722000001", "0722000002")
	n, err := survey.Round(context.Background(), e.srv, cfg, e.eng.Metrics, nil)
	if err != nil || n != 2 {
		t.Fatalf("Round: %d calls, %v; want 2", n, err)
	}
	for _, want := range []string{survey.Busy, survey.NoAnswer} {
		if got := e.eng.Metrics.Surveys(want); got != 1 {
			t.Errorf("%s surveys counted %d, want 1", want, got)
		}
	}
	for _, num := range ticket {
		tkt, err := e.store.Ticket(context.Background(), num)
		if err != nil {
			t.Fatal(err)
		}
		if tkt.Rating != 0 {
			t.Errorf("ticket %s rated %v without an answered call", num, tkt.Rating)
		}
	}
	fs.mu.Lock()
	served := len(fs.channels)
	fs.mu.Unlock()
	if served != 0 {
		t.Errorf("%d unanswered originates connected a channel", served)
	}
}

// Without a gateway nothing is dialled; a bad outbound setting is refused
// at start with its key.
func TestSurveyCallThroughEventSocketConfig(t *testing.T) {
	for _, o := range []Outbound{
		{Gateway: "trunk one", Addr: "127.0.0.1:8021", Password: "ClueCon"},
		{Gateway: "trunk", Addr: "nowhere", Password: "ClueCon"},
		{Gateway: "trunk", Addr: "127.0.0.1:8021"},
		{Gateway: "trunk", Addr: "127.0.0.1:8021", Password: "ClueCon", CallerID: "1\napi shutdown"},
	} {
		if _, err := (Config{Outbound: o}).Validate(); err == nil || !strings.Contains(err.Error(), "esl.outbound.") {
			t.Errorf("%+v: %v, want an error naming esl.outbound.*", o, err)
		}
	}
	e := startEngine(t, nil, nil)
	if got := e.srv.SurveyCall(context.Background(), "0722123456", nil); got != "no_trunk" {
		t.Errorf("SurveyCall without a gateway: %q, want no_trunk", got)
	}
}

// A call the engine gave up on (its round stopped while FreeSWITCH was
// still dialling) and that FreeSWITCH connects afterwards is released at
// once: not answered, not bridged, not served the line's flow.
func TestSurveyCallGivenUpIsNotServedThroughEventSocket(t *testing.T) {
	e, fs, _, _ := surveyEngine(t, func(string) string { return "late" })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if got := e.srv.SurveyCall(ctx, "0722123456", nil); got != survey.Cancelled {
		t.Errorf("SurveyCall stopped while dialling: %q, want %s", got, survey.Cancelled)
	}
	var ch *fakeFS
	select {
	case ch = <-fs.answered:
	case <-time.After(5 * time.Second):
		t.Fatal("the late channel never connected")
	}
	if !ch.waitClosed(5 * time.Second) {
		t.Fatal("the engine kept the late channel")
	}
	for _, c := range ch.commands() {
		if strings.HasPrefix(c, "sendmsg") {
			t.Errorf("the late channel was driven: %q", c)
		}
	}
	_ = e.eng.Calls.Flush(context.Background())
	if r, err := e.store.Call(context.Background(), ch.uuid); err == nil {
		t.Errorf("the late channel has a call record: %+v", r)
	}
}

// The event socket adapter passes the survey.Caller conformance table
// against the fake FreeSWITCH.
func TestSurveyCallerConformanceESL(t *testing.T) {
	surveytest.Run(t, func(t *testing.T, how string) survey.Caller {
		if how == surveytest.Machine {
			e, fs, _, _ := surveyEngineWith(t, func(o *Outbound) { o.Machine.Enabled = true }, func(string) string { return surveytest.Answer })
			fs.setSays(amdtest.Voicemail(t, 8000).PCM)
			return e.srv
		}
		e, _, _, _ := surveyEngine(t, func(string) string { return how }) // the fake's names are the table's
		return e.srv
	})
}
