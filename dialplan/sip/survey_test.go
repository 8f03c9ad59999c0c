package sip_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/emiago/diago"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/dialplan/sip"
	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/tickets"
)

// TestSurveyCallRatesTheTicket: two tickets of one citizen are resolved;
// one survey call is placed (a citizen is asked once in the period): the
// citizen answers behind the trunk, hears the shipped survey question
// (survey.lua), presses 4, and the rating is on the ticket; the survey is
// counted as rated.
func TestSurveyCallRatesTheTicket(t *testing.T) {
	tk := newTestTrunk(t, trunkAnswer, trunkPass)
	tk.answered = func(d *diago.DialogServerSession) {
		r, err := d.AudioReader()
		if err != nil {
			t.Error(err)
			return
		}
		w, err := d.AudioWriter()
		if err != nil {
			t.Error(err)
			return
		}
		dw, err := d.AudioWriterDTMF()
		if err != nil {
			t.Error(err)
			return
		}
		// Listen: the first loud second is the question.
		heard := make(chan struct{})
		go func() {
			dec, _ := audio.NewDecoder("PCMU")
			buf := make([]byte, 1500)
			pcm := make([]int16, 800)
			loud := 0
			for {
				n, err := r.Read(buf)
				if err != nil {
					return
				}
				m, _ := dec.Decode(pcm, buf[:n])
				if audio.RMS(pcm[:m]) > 300 {
					if loud++; loud == 50 {
						close(heard)
					}
				}
			}
		}()
		silence := bytes.Repeat([]byte{0xff}, 160)
		pressed := false
		for d.Context().Err() == nil {
			select {
			case <-heard:
				if !pressed {
					pressed = true
					if err := dw.WriteDTMF('4'); err != nil {
						t.Errorf("DTMF: %v", err)
					}
				}
			default:
			}
			if _, err := w.Write(silence); err != nil {
				return
			}
		}
	}
	shipped, err := flows.Load(filepath.Join("..", "..", "flows"), flows.Config{})
	if err != nil {
		t.Fatal(err)
	}
	trunk, err := sip.ParseTrunk(tk.uri())
	if err != nil {
		t.Fatal(err)
	}
	var first, second string
	l := startLineStore(t, func(c *sip.Config, e *ivr.Engine, store *tickets.Store) {
		c.Outbound = sip.OutboundConfig{Trunk: trunk, PerSecond: 50}
		e.Synth = &ivr.RenderCache{Dir: filepath.Join(promptCache, "tts")}
		e.Lang = "ro"
		e.Services = flows.Services{Desk: flows.TicketDesk{Store: store}}
		for _, n := range []*string{&first, &second} {
			tkt, err := store.OpenTicket(context.Background(), tickets.NewTicket{Actor: "ivr", Channel: "phone", Caller: testCaller, Lang: "ro", Service: tickets.ServicePassport})
			if err != nil {
				t.Fatal(err)
			}
			if err := store.Resolve(context.Background(), tkt.Number, "ana", "done"); err != nil {
				t.Fatal(err)
			}
			*n = tkt.Number
		}
	})
	cfg := sip.SurveyConfig{Store: l.store, Flow: shipped, Period: 30 * 24 * time.Hour, Since: time.Now().Add(-time.Hour)}
	n, err := l.srv.SurveyRound(context.Background(), cfg)
	if err != nil || n != 1 {
		t.Fatalf("SurveyRound: %d calls, %v; want 1 (one citizen)", n, err)
	}
	tkt, err := l.store.Ticket(context.Background(), first)
	if err != nil {
		t.Fatal(err)
	}
	if tkt.Rating != 4 {
		t.Fatalf("ticket %s rating %v, want 4", first, tkt.Rating)
	}
	if got := l.eng.Metrics.Surveys("rated"); got != 1 {
		t.Errorf("rated surveys counted %d, want 1", got)
	}
	c, err := l.store.SurveyReport(context.Background(), time.Now().Add(-time.Hour), time.Now().Add(time.Minute))
	if err != nil || c.Placed != 1 || c.Rated != 1 {
		t.Errorf("survey report %+v (%v), want 1 placed, 1 rated", c, err)
	}
	// The same citizen's other ticket waits for the period to pass.
	if n, _ := l.srv.SurveyRound(context.Background(), cfg); n != 0 {
		t.Errorf("a second survey call to the same citizen within the period")
	}
}
