package sip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/diago"
	"github.com/emiago/diago/media"
	"github.com/pion/rtp"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/ivr"
)

// queue sizes, in 20 ms frames.
const (
	inQueue  = 16 // 320 ms of caller audio waiting for the session
	outQueue = 3  // 60 ms of engine audio: a stopped prompt is silent within 60 ms
)

// mediaState is the negotiated media of a call; a re-INVITE replaces it.
type mediaState struct {
	audio media.Codec
	dtmf  uint8 // telephone-event payload type, 0 if none
}

// call is one answered SIP call as an ivr.Call. It owns one goroutine, the
// RTP reader (network -> jitter buffer -> decoder -> caller frames, DTMF
// events); its outbound RTP (engine frames -> encoder -> network) is sent by
// the endpoint's sender, which paces every call from a few goroutines.
type call struct {
	srv *Server
	d   *diago.DialogServerSession // the INVITE the line answered; nil on an outbound call
	// leg is the dialog's signalling and dm its media, for an answered
	// inbound call (d) and an answered outbound call (outbound.go) alike.
	leg  dialogLeg
	dm   *diago.DialogMedia
	tr   *ivr.Tracker
	rate int // PCM rate exchanged with the engine

	ctx    context.Context
	cancel context.CancelCauseFunc

	media  atomic.Pointer[mediaState]
	onHold atomic.Bool
	// offeredHold is the hold state of the last re-INVITE seen (-1: none
	// pending, 0: active, 1: hold); it takes effect when diago accepts
	// the re-INVITE (onMediaUpdate), not when it refuses it (491, 488).
	offeredHold atomic.Int32

	digits       chan ivr.Digit
	audio.Duplex // caller frames for the session (In), engine frames for the sender (Out)

	hangupOnce sync.Once
	wg         sync.WaitGroup

	send sendState         // owned by the sender's goroutine
	slot *audio.SenderSlot // set by start

	tap      atomic.Pointer[tap]       // set while bridged to an agent (transfer.go)
	waitKeys atomic.Pointer[chan rune] // set while waiting in an agent queue (transfer.go)
}

var (
	_ ivr.Call    = (*call)(nil)
	_ ivr.Flusher = (*call)(nil)

	_ audio.FrameSender      = (*call)(nil)
	_ audio.SendPanicHandler = (*call)(nil)
)

// dialogLeg is what a call needs of its SIP dialog, inbound
// (*diago.DialogServerSession) or outbound (*diago.DialogClientSession):
// Context ends when the dialog ends; Hangup sends BYE.
type dialogLeg interface {
	Context() context.Context
	Hangup(ctx context.Context) error
}

var (
	_ dialogLeg = (*diago.DialogServerSession)(nil)
	_ dialogLeg = (*diago.DialogClientSession)(nil)
)

func newCall(srv *Server, d *diago.DialogServerSession, tr *ivr.Tracker, o offer) *call {
	c := newLegCall(srv, d, &d.DialogMedia, tr, o)
	c.d = d
	return c
}

// newLegCall is newCall for any answered dialog.
func newLegCall(srv *Server, d dialogLeg, dm *diago.DialogMedia, tr *ivr.Tracker, o offer) *call {
	rate := 8000
	if o.Audio.SampleRate > 8000 {
		rate = 16000 // wideband codecs are delivered at 16 kHz, what recognizers want
	}
	c := &call{
		srv: srv, leg: d, dm: dm, tr: tr, rate: rate,
		digits: make(chan ivr.Digit, 32),
	}
	c.send = newSendState(rate)
	c.media.Store(&mediaState{audio: o.Audio, dtmf: o.DTMF})
	c.onHold.Store(o.Hold())
	c.offeredHold.Store(-1)
	c.ctx, c.cancel = context.WithCancelCause(context.Background())
	c.Duplex = audio.NewDuplex(c.ctx, rate, inQueue, outQueue)
	// The dialog's context ends on BYE from the caller (and on our own
	// BYE, by then our cause is already set: the first cause wins).
	context.AfterFunc(d.Context(), func() { c.cancel(ivr.End(ivr.EndCallerHangup, nil)) })
	return c
}

func (c *call) Context() context.Context { return c.ctx }
func (c *call) Digits() <-chan ivr.Digit { return c.digits }

func (c *call) endErr() error {
	if err := context.Cause(c.ctx); err != nil {
		return err
	}
	return io.EOF
}

// FlushAudio drops the engine audio queued but not sent yet (ivr.Flusher):
// a prompt the caller interrupted goes silent at the next packet instead
// of after the queue (60 ms). Safe from any goroutine.
func (c *call) FlushAudio() { c.Out.Flush() }

// Hangup implements ivr.Control: BYE after answer, nothing when the caller
// already hung up.
func (c *call) Hangup(ctx context.Context, reason ivr.EndReason) error {
	var err error
	c.hangupOnce.Do(func() {
		c.cancel(ivr.End(reason, nil))
		if c.leg.Context().Err() != nil {
			return // the dialog is over: BYE received
		}
		c.tr.Event("sip.bye.sent", string(reason))
		err = c.leg.Hangup(ctx)
	})
	return err
}

// start runs the RTP reader and puts the call on a sender shard.
func (c *call) start() {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer ivr.Recover(c.srv.metrics, c.tr.Log(), "sip rtp reader", c.endOnPanic)
		c.readLoop()
	}()
	c.slot = c.srv.sender.Add(c)
}

// wait takes the call off its sender shard and joins the reader; the
// caller ends the context first.
func (c *call) wait() {
	c.srv.sender.Remove(c.slot)
	c.wg.Wait()
}

// deliver hands one caller frame to the session, dropping the oldest
// queued frame when the session is not keeping up.
func (c *call) deliver(frame []int16) {
	if t := c.tap.Load(); t != nil {
		t.put(frame)
	}
	c.In.Offer(frame)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// readLoop reads RTP until the call ends. RFC 4733 packets are split off
// by payload type before decoding; audio goes through the call's
// audio.Receiver (jitter buffer, decoder, resampler, 20 ms frames).
func (c *call) readLoop() {
	cfg := c.srv.cfg
	buf := make([]byte, media.RTPBufSize)
	var pkt rtp.Packet
	var dedup eventDeduper
	var (
		cur *mediaState
		rx  *audio.Receiver
	)
	setup := func(ms *mediaState) error {
		dec, err := audio.NewDecoderAt(ms.audio.Name, c.rate)
		if err != nil {
			return err
		}
		if rx == nil {
			rx, err = audio.NewReceiver(audio.ReceiverConfig{
				Rate: c.rate, JitterDepth: cfg.JitterDepth, Sink: c.deliver, Counted: c.countLoss,
			}, dec)
		} else {
			err = rx.SetDecoder(dec)
		}
		if err != nil {
			return err
		}
		cur = ms
		return nil
	}

	lastPacket := time.Now()
	for {
		if c.ctx.Err() != nil {
			return
		}
		ms := c.media.Load()
		if ms != cur {
			if err := setup(ms); err != nil {
				c.tr.Log().Error("no decoder for the negotiated codec", "codec", ms.audio.Name, "err", err)
				c.end(ivr.EndError, err)
				return
			}
		}
		sess := c.dm.MediaSession()
		if sess == nil {
			return
		}
		// A read deadline makes the read interruptible and detects a
		// caller who sends no RTP. Hangup closes the socket at once.
		if err := sess.StopRTP(1, cfg.RTPTimeout/4); err != nil {
			return
		}
		if c.ctx.Err() != nil {
			return // ended while the deadline was being set: do not wait for it
		}
		reader := c.dm.RTPPacketReader.Reader()
		n, err := reader.ReadRTP(buf, &pkt)
		if err != nil {
			if isTimeout(err) {
				rx.Flush()
				if c.onHold.Load() {
					lastPacket = time.Now()
					continue
				}
				if time.Since(lastPacket) >= cfg.RTPTimeout {
					c.tr.Event("rtp.timeout", fmt.Sprintf("no RTP for %s", cfg.RTPTimeout))
					c.end(ivr.EndRTPTimeout, fmt.Errorf("no RTP from the caller for %s", cfg.RTPTimeout))
					return
				}
				continue
			}
			if errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) {
				return
			}
			// A malformed packet: count nothing, read on.
			continue
		}
		if n == 0 || len(pkt.Payload) == 0 {
			continue // keep-alive, or a packet the media direction ignores
		}
		lastPacket = time.Now()
		c.tr.PacketsIn.Add(1)
		c.srv.metrics.RTPPacketsIn.Add(1)
		if hook := c.srv.testHook.Load(); hook != nil {
			(*hook)("rtp", c.tr.Info().ID)
		}

		if ms.dtmf != 0 && pkt.PayloadType == ms.dtmf {
			ev, err := parseTelephoneEvent(pkt.Payload)
			if err != nil {
				continue
			}
			if key, ok := ev.Key(); ok && dedup.accept(ev, pkt.SSRC, pkt.Timestamp, pkt.SequenceNumber, pkt.Marker) {
				c.digit(key, "rfc4733")
			}
			continue
		}
		if pkt.PayloadType != ms.audio.PayloadType {
			continue // a format we did not negotiate
		}
		rx.Push(pkt.SequenceNumber, pkt.Timestamp, pkt.SSRC, pkt.Payload)
	}
}

// countLoss adds the receive path's new losses to the call and the line.
func (c *call) countLoss(lost, late uint64) {
	if lost > 0 {
		c.tr.PacketsLost.Add(lost)
		c.srv.metrics.RTPPacketsLost.Add(lost)
	}
	if late > 0 {
		c.tr.PacketsLate.Add(late)
		c.srv.metrics.RTPPacketsLate.Add(late)
	}
}

// digit hands one key press to the session and the call record.
func (c *call) digit(key rune, source string) {
	d := ivr.Digit{Key: key, Source: source, At: time.Now()}
	c.tr.Event("dtmf", source+" "+string(key))
	if ch := c.waitKeys.Load(); ch != nil {
		select {
		case *ch <- key:
		default:
		}
	}
	select {
	case c.digits <- d:
	default:
		c.tr.Log().Warn("DTMF queue full: digit dropped", "source", source)
	}
}

// sendState is the outbound stream of a call; only the sender's goroutine
// touches it.
type sendState struct {
	cur     *mediaState
	enc     audio.Encoder
	rs      *audio.Resampler
	pcm     []int16
	silence []int16
	payload []byte
	pkt     rtp.Packet
	tsStep  uint32
	lastTx  time.Time
	failed  bool // no encoder for the codec: the call is being ended
}

func newSendState(rate int) sendState {
	return sendState{
		silence: make([]int16, audio.SamplesPerFrame(rate)),
		payload: make([]byte, audio.MaxPayloadSize),
		pkt: rtp.Packet{Header: rtp.Header{
			Version: 2, SSRC: rand.Uint32(), SequenceNumber: uint16(rand.Uint32()), Timestamp: rand.Uint32(), Marker: true,
		}},
	}
}

// sendFrame sends the call's next RTP packet: the engine's queued frame, or
// silence when none is queued, so the caller's side (and any NAT or PBX
// between) always sees a steady stream. The sender calls it every 20 ms
// (audio.FrameSender).
func (c *call) SendFrame(now time.Time) {
	st := &c.send
	if st.failed {
		return
	}
	if hook := c.srv.testHook.Load(); hook != nil {
		(*hook)("send", c.tr.Info().ID)
	}
	ms := c.media.Load()
	if ms != st.cur {
		e, err := audio.NewEncoderAt(ms.audio.Name, c.rate)
		if err == nil {
			st.rs, err = audio.NewResampler(c.rate, e.Rate())
		}
		if err != nil {
			st.failed = true
			c.tr.Log().Error("no encoder for the negotiated codec", "codec", ms.audio.Name, "err", err)
			c.end(ivr.EndError, err)
			return
		}
		st.enc, st.cur = e, ms
		st.pcm = make([]int16, audio.SamplesPerFrame(e.Rate()))
		st.tsStep = ms.audio.SampleRate / 50
		st.pkt.PayloadType = ms.audio.PayloadType
		st.pkt.Marker = true
	}
	frame := st.silence
	owned := c.Out.Take()
	if owned != nil {
		frame = owned
	}
	n := st.rs.Process(st.pcm, frame)
	if owned != nil {
		c.Out.Return(owned)
	}
	m, err := st.enc.Encode(st.payload, st.pcm[:n])
	if err == nil {
		st.pkt.Payload = st.payload[:m]
		if err := c.dm.RTPPacketWriter.Writer().WriteRTP(&st.pkt); err == nil {
			if !st.lastTx.IsZero() {
				d := now.Sub(st.lastTx) - audio.FrameDuration
				if d < 0 {
					d = -d
				}
				c.srv.metrics.PacingDeviation.Observe(d)
			}
			st.lastTx = now
			c.tr.PacketsOut.Add(1)
			c.srv.metrics.RTPPacketsOut.Add(1)
		}
	}
	// Time goes on for the caller even when a packet could not be sent.
	st.pkt.Marker = false
	st.pkt.SequenceNumber++
	st.pkt.Timestamp += st.tsStep
}

// SendPanicked implements audio.SendPanicHandler: the sender took the
// call off its round after a panic in SendFrame; the call ends.
func (c *call) SendPanicked(v any, stack []byte) {
	ivr.Panicked(c.srv.metrics, c.tr.Log(), "sip rtp sender", v, stack)
	c.endOnPanic(v)
}

// endOnPanic ends the call after a panic on one of its goroutines.
func (c *call) endOnPanic(v any) { c.end(ivr.EndError, ivr.PanicError(v)) }

// end stops the call from the engine's side (RTP timeout, media error): it
// sets the cause, the session returns, and the engine hangs up (BYE) with
// that reason.
func (c *call) end(reason ivr.EndReason, err error) {
	c.cancel(ivr.End(reason, err))
}
