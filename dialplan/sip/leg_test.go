package sip_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/emiago/diago"
	gosip "github.com/emiago/sipgo/sip"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/dialplan/sip"
	"github.com/govline/ivr/ivr"
)

// testLegs claims the INVITEs whose leg header is "good" for one call.
type testLegs struct {
	tr      *ivr.Tracker
	served  chan ivr.Call
	release chan struct{}
}

func (l *testLegs) ClaimLeg(id string) (*ivr.Tracker, error) {
	if id != "good" {
		return nil, errors.New("no call waits for this leg")
	}
	return l.tr, nil
}

func (l *testLegs) ServeLeg(id string, leg ivr.Call, err error) {
	if err != nil {
		return
	}
	l.served <- leg
	<-l.release
}

// TestLegHook: an INVITE with the configured header is handed to the
// adapter that claims it as the media of its call (audio both ways, RFC
// 4733 keys), opens no call of its own, and is hung up when the adapter
// is done with it; an unknown id is refused with 404.
func TestLegHook(t *testing.T) {
	legs := &testLegs{served: make(chan ivr.Call, 1), release: make(chan struct{})}
	l := startLine(t, func(c *sip.Config, _ *ivr.Engine) {
		c.LegHeader = "X-IVR-ESL"
		c.Legs = legs
	})
	tr, err := l.eng.Begin(ivr.CallInfo{ID: "owner-1", Telephony: "esl", Called: "1919"})
	if err != nil {
		t.Fatal(err)
	}
	legs.tr = tr

	p := newPhone(t)
	if _, err := p.dial(l, "ivr", diago.InviteOptions{Headers: []gosip.Header{gosip.NewHeader("X-IVR-ESL", "stolen")}}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("unknown leg id: %v, want 404", err)
	}
	c, err := p.dial(l, "ivr", diago.InviteOptions{Headers: []gosip.Header{gosip.NewHeader("X-IVR-ESL", "good")}})
	if err != nil {
		t.Fatalf("leg not answered: %v", err)
	}
	var leg ivr.Call
	select {
	case leg = <-legs.served:
	case <-time.After(5 * time.Second):
		t.Fatal("the leg was not handed over")
	}
	if n := l.eng.Metrics.ActiveCalls.Load(); n != 1 {
		t.Errorf("active calls %d: the leg must not open a call of its own", n)
	}
	// Engine to phone.
	tone := make([]int16, audio.SamplesPerFrame(8000))
	for i := range tone {
		tone[i] = int16(4000 * math.Sin(2*math.Pi*400*float64(i)/8000))
	}
	ctx := context.Background()
	for range 50 {
		if err := leg.WriteFrame(ctx, tone); err != nil {
			t.Fatal(err)
		}
	}
	if !waitFor(5*time.Second, func() bool {
		h := c.heardSince(0)
		return len(h) > 1600 && audio.RMS(h[len(h)-800:]) > 1000
	}) {
		t.Error("the phone did not hear the engine on the leg")
	}
	// Phone to engine.
	for range 50 {
		c.send <- tone
	}
	buf := make([]int16, 160)
	heard := false
	for i := 0; i < 200 && !heard; i++ {
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		n, err := leg.ReadFrame(rctx, buf)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		heard = audio.RMS(buf[:n]) > 1000
	}
	if !heard {
		t.Error("the engine did not hear the phone on the leg")
	}
	c.dtmf('5')
	select {
	case d := <-leg.Digits():
		if d.Key != '5' || d.Source != "rfc4733" {
			t.Errorf("digit %+v", d)
		}
	case <-time.After(3 * time.Second):
		t.Error("no RFC 4733 key on the leg")
	}
	close(legs.release)
	if !c.waitEnded(5 * time.Second) {
		t.Error("the endpoint did not hang the leg up when the adapter was done")
	}
	tr.End(ivr.EndEngineHangup)
	_ = l.eng.Calls.Flush(ctx)
	ev, err := l.store.Events(ctx, "owner-1")
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range ev {
		kinds = append(kinds, e.Kind)
	}
	all := strings.Join(kinds, " ")
	for _, want := range []string{"sip.leg.invite", "sip.leg.200", "dtmf", "sip.bye.sent"} {
		if !strings.Contains(all, want) {
			t.Errorf("the owner's log lacks %s: %s", want, all)
		}
	}
}
