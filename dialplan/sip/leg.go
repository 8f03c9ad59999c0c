package sip

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/emiago/diago"
	"github.com/emiago/sipgo/sip"

	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/redact"
)

// Legs is implemented by an adapter that controls calls through a PBX and
// has the PBX bridge each call's audio to this endpoint (dialplan/esl:
// FreeSWITCH answers the caller, then bridges it here with the header
// Config.LegHeader carrying an id the adapter gave it). Such an INVITE is
// not a call of its own: it is answered like any other (same codecs, RTP,
// jitter buffer, RFC 4733, pacing), then handed to the adapter as the
// media of its call.
//
// Both methods are called on the INVITE's goroutine, one INVITE at a time
// per id; implementations are safe for concurrent use.
type Legs interface {
	// ClaimLeg is called before the INVITE is answered. It returns the
	// tracker of the call the leg belongs to (the leg's SIP events, packet
	// counts and codec go to that call), or an error, and then the INVITE
	// is refused with 404 and nothing else happens.
	ClaimLeg(id string) (*ivr.Tracker, error)
	// ServeLeg is called once after a successful claim. With err nil, leg
	// is the answered leg; ServeLeg returns when the call no longer needs
	// it, and the endpoint then sends BYE (unless the PBX already did)
	// and frees the leg's media. With err set the leg could not be
	// answered: leg is nil and ServeLeg returns at once.
	ServeLeg(id string, leg ivr.Call, err error)
}

// serveLeg answers an INVITE that an adapter claims as the media leg of
// one of its calls. The call record belongs to the adapter's call: the
// leg never opens or ends one.
func (s *Server) serveLeg(d *diago.DialogServerSession, legID string) {
	req := d.InviteRequest
	tr, err := s.cfg.Legs.ClaimLeg(legID)
	if err != nil {
		s.log.Warn("media leg refused: no call waits for it", "err", err)
		_ = d.Respond(404, "Not Found", nil)
		return
	}
	id := req.CallID().Value()
	e := &entry{tr: tr}
	s.mu.Lock()
	s.calls[id] = e
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.calls, id)
		s.mu.Unlock()
	}()
	tr.Event("sip.leg.invite", fmt.Sprintf("media leg %s from %s", req.Transport(), req.Source()))

	o, err := parseOffer(req.Body(), s.cfg.Codecs)
	if err != nil {
		tr.Event("sip.488", redact.Text(err.Error()))
		_ = d.Respond(488, "Not Acceptable Here", nil)
		s.cfg.Legs.ServeLeg(legID, nil, err)
		return
	}
	c := newCall(s, d, tr, o)
	e.mu.Lock()
	e.call = c
	e.mu.Unlock()
	err = d.AnswerOptions(diago.AnswerOptions{Codecs: o.Codecs, OnMediaUpdate: c.onMediaUpdate})
	if err != nil && answeredDespite(d, err) {
		err = nil
	}
	if err != nil {
		tr.Event("sip.answer.failed", redact.Text(err.Error()))
		c.cancel(ivr.End(ivr.EndError, err))
		if d.LoadState() == sip.DialogStateConfirmed && d.Context().Err() == nil {
			hctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = d.Hangup(hctx)
			cancel()
		}
		s.cfg.Legs.ServeLeg(legID, nil, errors.Join(errors.New("media leg not answered"), err))
		return
	}
	tr.SetMedia(o.Audio.Name, c.rate)
	tr.Event("sip.leg.200", fmt.Sprintf("codec %s/%d pt %d, telephone-event pt %d", o.Audio.Name, o.Audio.SampleRate, o.Audio.PayloadType, o.DTMF))
	stop := context.AfterFunc(c.ctx, func() {
		if ms := d.MediaSession(); ms != nil {
			_ = ms.StopRTP(1, 0)
		}
	})
	defer stop()
	c.start()
	s.cfg.Legs.ServeLeg(legID, c, nil)

	hctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if err := c.Hangup(hctx, ivr.EndEngineHangup); err != nil {
		tr.Event("sip.leg.bye.failed", redact.Text(err.Error()))
	}
	cancel()
	c.cancel(ivr.End(ivr.EndEngineHangup, nil))
	c.wait()
}
