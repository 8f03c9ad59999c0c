package sip_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/diago"
	gosip "github.com/emiago/sipgo/sip"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/dialplan/sip"
	"github.com/govline/ivr/dialplan/sip/siptest"
	"github.com/govline/ivr/ivr"
)

// trunkMode is how the test trunk treats an INVITE once authenticated.
type trunkMode int

const (
	trunkAnswer trunkMode = iota // 180, then 200 and talk (a tone) until the line hangs up
	trunkBusy                    // 486 Busy Here
	trunkRing                    // 180 and never an answer
)

// testTrunk is a second real SIP stack (diago) on loopback acting as the
// operator's trunk and the citizen's phone behind it: it challenges every
// INVITE with digest authentication (401), then answers, refuses as busy
// or rings without answer.
type testTrunk struct {
	port     int
	uriForm  string // the trunk's sip.trunk with %s user, %s password, %d port; default sip:%s:%s@127.0.0.1:%d
	user     string
	password string
	mode     trunkMode
	phone    *agentPhone // the citizen's phone: its tone, what it heard
	// answered, when set, takes the answered call instead of the phone's
	// tone (the survey test presses a key).
	answered func(d *diago.DialogServerSession)

	mu        sync.Mutex
	invites   []*gosip.Request // authenticated INVITEs
	at        []time.Time
	challenge int      // INVITEs answered 401
	over      []string // the transport of every INVITE, challenged or not
	cancelled int      // INVITEs that ended before an answer (CANCEL)
}

const (
	trunkUser = "ivr-line"
	trunkPass = "trunk-secret"
)

func newTestTrunk(t *testing.T, mode trunkMode, password string) *testTrunk {
	t.Helper()
	return newTestTrunkOver(t, mode, password, nil)
}

// newTestTrunkOver is newTestTrunk listening on transports (UDP when
// none; siptest.NewAnsweringPhoneOver).
func newTestTrunkOver(t *testing.T, mode trunkMode, password string, transports []diago.Transport) *testTrunk {
	t.Helper()
	tk := &testTrunk{user: trunkUser, password: password, mode: mode,
		phone: &agentPhone{t: t, tone: 1000, up: make(chan struct{}), hang: make(chan struct{})}}
	auth := diago.NewDigestServer()
	t.Cleanup(auth.Close)
	handler := func(d *diago.DialogServerSession) {
		tk.mu.Lock()
		tk.over = append(tk.over, d.InviteRequest.Transport())
		tk.mu.Unlock()
		res, err := auth.AuthorizeRequest(d.InviteRequest, diago.DigestAuth{Username: tk.user, Password: tk.password, Realm: "trunk"})
		if err != nil || res.StatusCode != 200 {
			tk.mu.Lock()
			tk.challenge++
			tk.mu.Unlock()
			_ = d.WriteResponse(res)
			return
		}
		tk.mu.Lock()
		tk.invites = append(tk.invites, d.InviteRequest)
		tk.at = append(tk.at, time.Now())
		tk.mu.Unlock()
		switch tk.mode {
		case trunkBusy:
			_ = d.Respond(486, "Busy Here", nil)
			return
		case trunkRing:
			_ = d.Ringing()
			<-d.Context().Done()
			tk.mu.Lock()
			tk.cancelled++
			tk.mu.Unlock()
			return
		}
		_ = d.Ringing()
		if err := d.Answer(); err != nil {
			t.Errorf("trunk answer: %v", err)
			return
		}
		select {
		case <-tk.phone.up:
		default:
			close(tk.phone.up)
		}
		if tk.answered != nil {
			tk.answered(d)
			return
		}
		go func() {
			select {
			case <-tk.phone.hang:
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				defer cancel()
				_ = d.Hangup(ctx)
			case <-d.Context().Done():
			}
		}()
		tk.phone.talk(d)
	}
	_, tk.port = siptest.NewAnsweringPhoneOver(t, "test-trunk", handler, transports)
	return tk
}

func (tk *testTrunk) uri() string {
	form := tk.uriForm
	if form == "" {
		form = "sip:%s:%s@127.0.0.1:%d"
	}
	return fmt.Sprintf(form, trunkUser, trunkPass, tk.port)
}

// transports are the transports every INVITE came over, in order.
func (tk *testTrunk) transports() []string {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	return append([]string(nil), tk.over...)
}

func (tk *testTrunk) seen() (invites []*gosip.Request, at []time.Time, challenges, cancelled int) {
	tk.mu.Lock()
	defer tk.mu.Unlock()
	return append([]*gosip.Request(nil), tk.invites...), append([]time.Time(nil), tk.at...), tk.challenge, tk.cancelled
}

// startOutboundLine starts a line whose outbound calls go to tk.
func startOutboundLine(t *testing.T, tk *testTrunk, adjust func(*sip.OutboundConfig)) *line {
	t.Helper()
	trunk, err := sip.ParseTrunk(tk.uri())
	if err != nil {
		t.Fatal(err)
	}
	return startLine(t, func(c *sip.Config, _ *ivr.Engine) {
		c.Outbound = sip.OutboundConfig{Trunk: trunk, CallerID: "0800100200", RingTimeout: 5 * time.Second, PerSecond: 50, Backoff: 20 * time.Millisecond}
		if adjust != nil {
			adjust(&c.Outbound)
		}
	})
}

func TestParseTrunk(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    sip.Trunk
		wantErr bool
	}{
		{in: "sip:alice:s3cret@10.0.0.5:5070", want: sip.Trunk{User: "alice", Password: "s3cret", Host: "10.0.0.5", Port: 5070, Transport: "udp"}},
		{in: "sip:alice:p%40ss%3Aw@10.0.0.5", want: sip.Trunk{User: "alice", Password: "p@ss:w", Host: "10.0.0.5", Port: 5060, Transport: "udp"}},
		{in: "sip:10.0.0.5:5080", want: sip.Trunk{Host: "10.0.0.5", Port: 5080, Transport: "udp"}},
		{in: "sip:[::1]:5090", want: sip.Trunk{Host: "::1", Port: 5090, Transport: "udp"}},
		{in: "sip:u:p@[::1]", want: sip.Trunk{User: "u", Password: "p", Host: "::1", Port: 5060, Transport: "udp"}},
		{in: "sip:u:p@trunk.example.md:5060", wantErr: true}, // no DNS look-ups
		{in: "http://10.0.0.5", wantErr: true},
		{in: "sip:u:p@10.0.0.5:99999", wantErr: true},
		// The transport parameter.
		{in: "sip:alice:s3cret@10.0.0.5:5070;transport=udp", want: sip.Trunk{User: "alice", Password: "s3cret", Host: "10.0.0.5", Port: 5070, Transport: "udp"}},
		{in: "sip:alice:s3cret@10.0.0.5:5070;transport=tcp", want: sip.Trunk{User: "alice", Password: "s3cret", Host: "10.0.0.5", Port: 5070, Transport: "tcp"}},
		{in: "sip:alice:s3cret@10.0.0.5;transport=TCP", want: sip.Trunk{User: "alice", Password: "s3cret", Host: "10.0.0.5", Port: 5060, Transport: "tcp"}},
		{in: "sip:alice:s3cret@10.0.0.5;lr;transport=tls", want: sip.Trunk{User: "alice", Password: "s3cret", Host: "10.0.0.5", Port: 5061, Transport: "tls"}},
		{in: "sip:alice:s3cret@10.0.0.5:5080;transport=tls", want: sip.Trunk{User: "alice", Password: "s3cret", Host: "10.0.0.5", Port: 5080, Transport: "tls"}},
		{in: "sip:a;b:s3cret@10.0.0.5;transport=tcp", want: sip.Trunk{User: "a;b", Password: "s3cret", Host: "10.0.0.5", Port: 5060, Transport: "tcp"}},
		{in: "sip:alice:s3cret@10.0.0.5;transport=sctp", wantErr: true},
		{in: "sip:alice:s3cret@10.0.0.5;transport=", wantErr: true},
		// sips: is TLS, default port 5061.
		{in: "sips:alice:s3cret@10.0.0.5", want: sip.Trunk{User: "alice", Password: "s3cret", Host: "10.0.0.5", Port: 5061, Transport: "tls", SIPS: true}},
		{in: "sips:alice:s3cret@10.0.0.5:5071", want: sip.Trunk{User: "alice", Password: "s3cret", Host: "10.0.0.5", Port: 5071, Transport: "tls", SIPS: true}},
		{in: "sips:alice:s3cret@10.0.0.5;transport=tcp", want: sip.Trunk{User: "alice", Password: "s3cret", Host: "10.0.0.5", Port: 5061, Transport: "tls", SIPS: true}},
		{in: "sips:alice:s3cret@10.0.0.5;transport=udp", wantErr: true},
		{in: "sips:alice:s3cret@trunk.example.md", wantErr: true},
	} {
		got, err := sip.ParseTrunk(tc.in)
		if (err != nil) != tc.wantErr || (err == nil && got != tc.want) {
			t.Errorf("ParseTrunk(%q) = %+v, %v; want %+v, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
	if _, err := sip.ParseTrunk("sip:alice:s3cret@10.0.0.5;transport=sctp"); err == nil || !strings.Contains(err.Error(), `"sctp"`) {
		t.Errorf("an unknown transport: %v, want an error that names it", err)
	}
	// The password never shows; the transport always does.
	for in, want := range map[string]string{
		"sip:alice:s3cret@10.0.0.5:5070":               "sip:alice@10.0.0.5:5070;transport=udp",
		"sip:alice:s3cret@10.0.0.5:5070;transport=tcp": "sip:alice@10.0.0.5:5070;transport=tcp",
		"sip:alice:s3cret@10.0.0.5;transport=tls":      "sip:alice@10.0.0.5:5061;transport=tls",
		"sips:alice:s3cret@[::1]":                      "sips:alice@[::1]:5061",
	} {
		tr, err := sip.ParseTrunk(in)
		if err != nil {
			t.Fatal(err)
		}
		if s := fmt.Sprint(slog.AnyValue(tr).Resolve()); s != want {
			t.Errorf("%s logs as %q, want %q", in, s, want)
		}
		if s := tr.String(); s != want {
			t.Errorf("%s prints as %q, want %q", in, s, want)
		}
		// What it prints reads back as the same trunk, less the password.
		back, err := sip.ParseTrunk(tr.String())
		tr.Password = ""
		if err != nil || back != tr {
			t.Errorf("%s read back as %+v, %v; want %+v", tr, back, err, tr)
		}
	}
}

// TestOutboundCallAnswered: the line calls a number through the trunk
// (digest challenge answered, caller ID in From, the number in the
// Request-URI); the citizen's phone answers, hears the line's greeting,
// the line hears the phone's tone, and the phone hangs up.
func TestOutboundCallAnswered(t *testing.T) {
	tk := newTestTrunk(t, trunkAnswer, trunkPass)
	l := startOutboundLine(t, tk, nil)
	// The citizen's tone reaches the line for 600 ms after they hear it.
	res := callThrough(t, l, tk, 600*time.Millisecond)
	invites, _, challenges, _ := tk.seen()
	if len(invites) != 1 || challenges != 1 {
		t.Fatalf("trunk saw %d authenticated INVITEs and %d challenges, want 1 and 1", len(invites), challenges)
	}
	inv := invites[0]
	if u := inv.Recipient.User; u != testCaller {
		t.Errorf("Request-URI user %q, want the number", u)
	}
	if f := inv.From(); f == nil || f.Address.User != "0800100200" {
		t.Errorf("From %v, want the caller ID 0800100200", f)
	}
	if n := l.eng.Metrics.OutboundAttempts("answered"); n != 1 {
		t.Errorf("answered attempts counted %d, want 1", n)
	}
	// The line heard the phone's tone: its recording's caller side.
	caller, _ := recordedSides(t, l, res.CallID)
	if rms, p := audio.RMS(caller), goertzel(caller, 1000, 8000); rms < 500 || p < 0.3 {
		t.Errorf("the line's recording of the citizen: RMS %.0f, %.2f of its power at 1000 Hz; want the phone's tone", rms, p)
	}
}

// TestOutboundBusyRetried: a busy number (486) ends each attempt as busy
// and is called again after the backoff, as many times as configured, no
// faster than the configured calls per second.
func TestOutboundBusyRetried(t *testing.T) {
	tk := newTestTrunk(t, trunkBusy, trunkPass)
	l := startOutboundLine(t, tk, func(o *sip.OutboundConfig) { o.Retries = 2; o.PerSecond = 5 })
	attempts, _, err := l.srv.Dial(context.Background(), sip.OriginateRequest{Number: testCaller}, nil)
	var oe *sip.OutboundError
	if !errors.As(err, &oe) || oe.Reason != sip.OutboundBusy || oe.Status != 486 {
		t.Fatalf("Dial: %v, want busy (486)", err)
	}
	if len(attempts) != 3 {
		t.Fatalf("%d attempts, want 3 (1 + 2 retries)", len(attempts))
	}
	for i, a := range attempts {
		if a.Reason != sip.OutboundBusy || a.Status != 486 {
			t.Errorf("attempt %d: %s %d, want busy 486", i, a.Reason, a.Status)
		}
	}
	invites, at, _, _ := tk.seen()
	if len(invites) != 3 {
		t.Fatalf("trunk saw %d INVITEs, want 3", len(invites))
	}
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap < 180*time.Millisecond {
			t.Errorf("attempts %d and %d %s apart: faster than 5 calls/s", i-1, i, gap)
		}
	}
	if n := l.eng.Metrics.OutboundAttempts("busy"); n != 3 {
		t.Errorf("busy attempts counted %d, want 3", n)
	}
}

// TestOutboundNoAnswer: a phone that rings past the ring timeout gets a
// CANCEL and the attempt ends as no_answer.
func TestOutboundNoAnswer(t *testing.T) {
	tk := newTestTrunk(t, trunkRing, trunkPass)
	l := startOutboundLine(t, tk, func(o *sip.OutboundConfig) { o.RingTimeout = 700 * time.Millisecond; o.Retries = 1 })
	start := time.Now()
	attempts, _, err := l.srv.Dial(context.Background(), sip.OriginateRequest{Number: testCaller}, nil)
	if sip.ReasonOfOutbound(err) != sip.OutboundNoAnswer {
		t.Fatalf("Dial: %v, want no_answer", err)
	}
	if len(attempts) != 2 {
		t.Fatalf("%d attempts, want 2", len(attempts))
	}
	if d := time.Since(start); d < 1400*time.Millisecond || d > 6*time.Second {
		t.Errorf("two unanswered attempts took %s, want about 2 ring timeouts", d)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		_, _, _, cancelled := tk.seen()
		if cancelled == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the phone saw %d calls end before an answer, want 2 (CANCEL)", cancelled)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestOutboundAuthRefused: a trunk that refuses the line's credentials
// ends the attempt as auth_refused, and it is not retried.
func TestOutboundAuthRefused(t *testing.T) {
	tk := newTestTrunk(t, trunkAnswer, "another-password")
	l := startOutboundLine(t, tk, func(o *sip.OutboundConfig) { o.Retries = 3 })
	attempts, _, err := l.srv.Dial(context.Background(), sip.OriginateRequest{Number: testCaller}, nil)
	var oe *sip.OutboundError
	if !errors.As(err, &oe) || oe.Reason != sip.OutboundAuthRefused {
		t.Fatalf("Dial: %v, want auth_refused", err)
	}
	if len(attempts) != 1 {
		t.Errorf("%d attempts, want 1: refused credentials are not retried", len(attempts))
	}
	if _, _, challenges, _ := tk.seen(); challenges != 2 {
		t.Errorf("trunk answered %d INVITEs with 401, want 2 (the challenge, the wrong credentials)", challenges)
	}
}

// TestOutboundLimits: outside the working hours no INVITE leaves; a bad
// number never reaches a Request-URI; no trunk, no call.
func TestOutboundLimits(t *testing.T) {
	tk := newTestTrunk(t, trunkAnswer, trunkPass)
	l := startOutboundLine(t, tk, func(o *sip.OutboundConfig) { o.Allowed = func(time.Time) bool { return false } })
	_, err := l.srv.Originate(context.Background(), sip.OriginateRequest{Number: testCaller})
	if sip.ReasonOfOutbound(err) != sip.OutboundOutsideHours {
		t.Errorf("outside hours: %v", err)
	}
	_, err = l.srv.Originate(context.Background(), sip.OriginateRequest{Number: "07;transport=tcp"})
	if sip.ReasonOfOutbound(err) != sip.OutboundBadNumber {
		t.Errorf("bad number: %v", err)
	}
	if invites, _, challenges, _ := tk.seen(); len(invites)+challenges != 0 {
		t.Errorf("the trunk was called %d times", len(invites)+challenges)
	}
	bare := startLine(t, nil)
	if _, err := bare.srv.Originate(context.Background(), sip.OriginateRequest{Number: testCaller}); sip.ReasonOfOutbound(err) != sip.OutboundNoTrunk {
		t.Errorf("no trunk: %v", err)
	}
}
