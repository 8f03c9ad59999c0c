package sip

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/emiago/diago"
	"github.com/emiago/diago/media"
	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/ivr/queue"
	"github.com/govline/ivr/tickets"
)

// Errors of Transfer; the flow's fallback then tells the caller the
// request is registered with its number and ends the call politely.
var (
	// ErrNoQueue: the line has no agent queue (QueueConfig.Queues nil).
	ErrNoQueue = errors.New("no agent queue on this line")
	// ErrMaxWait: no agent answered within the queue's maximum wait; the
	// ticket stays open for a call back.
	ErrMaxWait = ivr.ErrMaxWait
	// ErrLeftRequest: the caller pressed queue.LeaveKey to leave the
	// request for a call back instead of waiting.
	ErrLeftRequest = ivr.ErrLeftRequest
)

// Headers on the INVITE to an agent, so a desktop pops the ticket.
const (
	HeaderTicket  = "X-IVR-Ticket"
	HeaderQueue   = "X-IVR-Queue"
	HeaderLang    = "X-IVR-Lang"
	HeaderSummary = "X-IVR-Summary"
)

// queuedCall is a call of a line with an agent queue: an ivr.Transferer.
// A line without one serves the plain *call, so a flow's transfer there
// goes straight to the "request registered" fallback.
type queuedCall struct{ *call }

var _ ivr.Transferer = queuedCall{}

// lookTimeout bounds the look-up of a waiting caller's position for an
// announcement: a database that does not answer gives an announcement
// without the position, not a caller left in silence.
const lookTimeout = time.Second

// closedCh is ready at once: a select with it never blocks.
var closedCh = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Transfer implements ivr.Transferer on the embedded line: the caller
// waits in the queue h.Queue, hearing their position and expected wait,
// while the queue's agents are rung (X-IVR-Ticket on the INVITE); the
// first agent to answer is bridged to the caller through the engine.
// Transfer returns nil once the bridge ended (either side hung up), an
// error wrapping ErrMaxWait when nobody answered in time, or the call's
// end cause when the caller hung up while waiting. The outcome (answered,
// abandoned) goes to the store.
func (q queuedCall) Transfer(ctx context.Context, h ivr.Handoff) error {
	return q.transfer(ctx, h)
}

func (c *call) transfer(ctx context.Context, h ivr.Handoff) error {
	return c.transferAt(ctx, h, nil)
}

// transferAt is transfer on a place already held (a callback's), or on a
// new place in h.Queue when p is nil.
func (c *call) transferAt(ctx context.Context, h ivr.Handoff, p queue.Place) error {
	qc := c.srv.cfg.Queue
	if qc.Queues == nil {
		return ErrNoQueue
	}
	conf, ok := qc.Queues.Queue(h.Queue)
	if !ok {
		return fmt.Errorf("transfer: queue %q: %w", h.Queue, queue.ErrUnknownQueue)
	}
	id := c.tr.Info().ID
	board := qc.Board
	if p == nil {
		var err error
		if p, err = board.Join(ctx, h.Queue, id); err != nil {
			return err
		}
	}
	kept := false // the place went to a callback: it is not left here
	// The place is settled and the agent freed after the caller's context
	// ended: those writes take a context of their own.
	bg := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	}
	settle := func(answered string, leave bool) {
		sctx, cancel := bg()
		defer cancel()
		if err := p.Settle(sctx, answered, leave); err != nil {
			c.tr.Log().Error("queue: place not settled", "err", err)
		}
	}
	look := func() queue.Standing {
		lctx, cancel := context.WithTimeout(ctx, lookTimeout)
		defer cancel()
		st, err := p.Look(lctx)
		if err != nil {
			c.tr.Log().Warn("queue: position unknown", "err", err)
		}
		return st
	}
	set := qc.Queues.Settings()
	joined := time.Now()
	c.tr.Event("queue.join", fmt.Sprintf("queue %s position %d", h.Queue, look().Position))
	outcome := tickets.QueueAbandoned
	var r *ringing
	// Claims (a write in the store) run on a goroutine of their own, so
	// that a database that is slow or away (PostgreSQL restarting) delays
	// the agents' ringing, never the caller's announcement or keys. The
	// loop asks for a claim when the board may have changed (a NOTIFY, the
	// poll, a ring that ended) and hears the targets on claimed.
	claimCtx, stopClaims := context.WithCancel(ctx)
	claimReq := make(chan struct{}, 1)
	claimed := make(chan []queue.Target)
	var claimer sync.WaitGroup
	claimer.Go(func() {
		for {
			select {
			case <-claimCtx.Done():
				return
			case <-claimReq:
			}
			targets, err := p.Claim(claimCtx)
			if err != nil && claimCtx.Err() == nil {
				c.tr.Log().Warn("queue: claim failed", "err", err)
			}
			select {
			case claimed <- targets:
			case <-claimCtx.Done():
				return // the place is settled as left below: a claim made now is released
			}
		}
	})
	defer func() {
		stopClaims()
		claimer.Wait()
		r.stop()
		if kept {
			settle("", false) // releases a claim made meanwhile; the place stays
			p = nil
		} else {
			settle("", true)
		}
		c.recordOutcome(id, conf.Service, outcome)
	}()

	maxWait := time.NewTimer(conf.MaxWait)
	defer maxWait.Stop()
	announce := time.NewTimer(0)
	defer announce.Stop()
	poll := time.NewTicker(250 * time.Millisecond) // agents' rest after a ring ends
	defer poll.Stop()
	keys := make(chan rune, 4)
	c.waitKeys.Store(&keys)
	defer c.waitKeys.Store(nil)
	// On a line with speech, "call me back" said asks to confirm, and a
	// "da" counts as 1 (waitspeech.go).
	ear := c.hearWhileWaiting(ctx, h, keys)
	defer ear.close()
	var confirming <-chan time.Time // a spoken request awaits its yes
	var confirmTimer *time.Timer
	defer func() {
		if confirmTimer != nil {
			confirmTimer.Stop()
		}
	}()
	cat := h.Catalog
	if cat == nil {
		cat = flows.DefaultCatalog()
	}
	render := func(text string) []int16 {
		if c.srv.eng.Synth == nil {
			return nil
		}
		pcm, err := c.srv.eng.Synth.Synthesize(ctx, h.Lang, text, c.rate)
		if err != nil {
			c.tr.Log().Warn("queue prompt not rendered", "err", err)
		}
		return pcm
	}
	frame := make([]int16, audio.SamplesPerFrame(c.rate))
	var playing []int16
	// stay ends the question of a spoken request: the caller keeps
	// waiting (why says what they answered).
	stay := func(why string) {
		c.tr.Event("queue.callback.spoken", why)
		confirmTimer.Stop()
		confirming, playing = nil, render(cat.Text(h.Lang, "callback.stay"))
		ear.asking(false)
	}
	want, claiming := true, false
	for {
		if r == nil && want && !claiming {
			claimReq <- struct{}{} // room for one: no claim is in flight
			want, claiming = false, true
		}
		var ringDone <-chan ringResult
		if r != nil {
			ringDone = r.done
		}
		var play <-chan struct{}
		if len(playing) > 0 {
			play = closedCh
		}
		select {
		case <-ctx.Done():
			c.tr.Event("queue.abandoned", fmt.Sprintf("waited %s", time.Since(joined).Round(time.Second)))
			return context.Cause(ctx)
		case <-c.ctx.Done():
			c.tr.Event("queue.abandoned", fmt.Sprintf("waited %s", time.Since(joined).Round(time.Second)))
			return c.endErr()
		case targets := <-claimed:
			claiming = false
			if len(targets) > 0 {
				r = c.ring(targets, h, set.RingTimeout)
			}
		case res := <-ringDone:
			r.wg.Wait()
			r = nil
			if res.d == nil {
				settle("", false)
				c.tr.Event("queue.noanswer", res.detail)
				want = true
				continue
			}
			ear.close() // the caller talks to the agent now
			settle(res.agent, true)
			outcome = tickets.QueueAnswered
			c.recordOutcome(id, conf.Service, outcome)
			outcome = "" // recorded
			c.tr.Event("queue.answered", fmt.Sprintf("agent %s after %s", res.agent, time.Since(joined).Round(time.Second)))
			ev := AgentEvent{Agent: res.agent, CallID: id, Ticket: h.Ticket, Queue: h.Queue}
			if qc.OnAgent != nil {
				qc.OnAgent(ev)
			}
			talked := c.bridge(res.d, h.Heard)
			dctx, cancel := bg()
			if err := board.Done(dctx, res.agent, talked); err != nil {
				c.tr.Log().Error("queue: agent not freed", "agent", res.agent, "err", err)
			}
			cancel()
			if qc.OnAgent != nil {
				ev.Ended, ev.Talked = true, talked
				qc.OnAgent(ev)
			}
			c.tr.Event("queue.bridge.end", fmt.Sprintf("agent %s talked %s", res.agent, talked.Round(time.Second)))
			return nil
		case k := <-keys:
			switch {
			case k == saidCallback && confirming == nil:
				c.tr.Event("queue.callback.spoken", "the caller asked by voice to be called back: asked to confirm")
				ear.asking(true)
				playing = render(cat.Text(h.Lang, "callback.spoken"))
				confirmTimer = time.NewTimer(time.Duration(len(playing))*time.Second/time.Duration(c.rate) + spokenConfirmWait)
				confirming = confirmTimer.C
				continue
			case k == saidYes && confirming != nil:
				k = queue.LeaveKey
			case k == saidNo && confirming != nil:
				stay("the caller said no: keeps waiting")
				continue
			}
			if k == queue.LeaveKey {
				c.tr.Event("queue.left", fmt.Sprintf("the caller left the request after %s", time.Since(joined).Round(time.Second)))
				stopClaims()
				claimer.Wait()
				r.stop()
				r = nil
				if c.keepPlace(ctx, h, p, keys, ear) {
					kept = true
					outcome = "" // the callback carries on: its outcome is the callback's
					return fmt.Errorf("queue %s: %w: %w", h.Queue, ErrLeftRequest, ErrCallbackKept)
				}
				return fmt.Errorf("queue %s: %w", h.Queue, ErrLeftRequest)
			}
		case <-confirming:
			stay(fmt.Sprintf("not confirmed within %s: keeps waiting", spokenConfirmWait))
		case <-maxWait.C:
			c.tr.Event("queue.timeout", fmt.Sprintf("no agent within %s", conf.MaxWait))
			return fmt.Errorf("queue %s: %w", h.Queue, ErrMaxWait)
		case <-announce.C:
			announce.Reset(set.AnnounceEvery)
			if c.srv.eng.Synth == nil || confirming != nil {
				continue // a question is asked: the next announcement waits
			}
			st := look()
			text := queue.Announcement(cat, h.Lang, st.Position, st.Wait)
			if ear != nil {
				text += " " + cat.Text(h.Lang, "queue.callback_speech")
			}
			c.srv.metrics.Callback("offered")
			pcm := render(text)
			if pcm == nil {
				continue
			}
			c.tr.Event("queue.announce", fmt.Sprintf("position %d", st.Position))
			playing = pcm
		case <-board.Changed():
			want = true
		case <-poll.C:
			want = true
		case <-play:
			n := copy(frame, playing)
			clear(frame[n:])
			playing = playing[n:]
			if err := c.WriteFrame(ctx, frame); err != nil {
				playing = nil
			} else if h.Heard != nil {
				h.Heard(frame)
			}
		}
	}
}

// recordOutcome writes the queue outcome of the call to the store.
func (c *call) recordOutcome(id string, svc tickets.Service, o tickets.QueueOutcome) {
	out := c.srv.cfg.Queue.Outcomes
	if out == nil || o == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The call record is written in the background: make sure it exists.
	if err := c.srv.eng.Calls.Flush(ctx); err != nil {
		c.tr.Log().Warn("call log flush before the queue outcome", "err", err)
	}
	if err := out.SetCallQueue(ctx, id, svc, o); err != nil {
		c.tr.Log().Error("queue outcome not recorded", "outcome", o, "err", err)
	}
}

// ringing is the agents' phones ringing for one caller. Its goroutines
// (one INVITE per agent and a collector) are owned by Transfer, which
// stops them with stop or, after done fired, joins them with wg.Wait.
type ringing struct {
	cancel context.CancelFunc
	done   chan ringResult // one result: the answering agent, or none
	wg     sync.WaitGroup
}

type ringResult struct {
	agent  string
	d      *diago.DialogClientSession
	detail string // why nobody answered
}

// stop ends the ringing and hangs up an agent who answered meanwhile.
func (r *ringing) stop() {
	if r == nil {
		return
	}
	r.cancel()
	r.wg.Wait()
	select {
	case res := <-r.done:
		if res.d != nil {
			hangupAgent(res.d)
		}
	default:
	}
}

func hangupAgent(d *diago.DialogClientSession) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if d.Context().Err() == nil {
		_ = d.Hangup(ctx)
	}
	_ = d.Close()
}

// ring calls every target at once; the first to answer wins, the others
// get CANCEL (or BYE when they answered in the same instant).
func (c *call) ring(targets []queue.Target, h ivr.Handoff, timeout time.Duration) *ringing {
	rctx, cancel := context.WithTimeout(context.Background(), timeout)
	r := &ringing{cancel: cancel, done: make(chan ringResult, 1)}
	results := make(chan ringResult, len(targets))
	hdrs := []sip.Header{
		sip.NewHeader(HeaderTicket, headerValue(h.Ticket, 32)),
		sip.NewHeader(HeaderQueue, headerValue(h.Queue, 32)),
		sip.NewHeader(HeaderLang, headerValue(h.Lang, 8)),
	}
	if s := headerValue(h.Summary, 200); s != "" {
		hdrs = append(hdrs, sip.NewHeader(HeaderSummary, s))
	}
	names := make([]string, len(targets))
	for i, t := range targets {
		names[i] = t.Agent
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			results <- c.inviteAgent(rctx, t, hdrs)
		}()
	}
	c.tr.Event("queue.ring", "agents "+strings.Join(names, ","))
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer ivr.Recover(c.srv.metrics, c.tr.Log(), "sip ring collector", func(any) { r.done <- ringResult{detail: "internal error"} })
		var won *ringResult
		var why []string
		for range targets {
			res := <-results
			switch {
			case res.d != nil && won == nil:
				won = &res
				cancel() // the others stop ringing
			case res.d != nil:
				hangupAgent(res.d)
			default:
				why = append(why, res.detail)
			}
		}
		cancel()
		if won != nil {
			r.done <- *won
			return
		}
		r.done <- ringResult{detail: strings.Join(why, "; ")}
	}()
	return r
}

func (c *call) inviteAgent(ctx context.Context, t queue.Target, hdrs []sip.Header) (res ringResult) {
	// The INVITE runs on its own goroutine, outside the SIP handler's
	// recover: a panic in the SIP stack (diago dereferences missing
	// responses on some transport errors) must cost this agent's ring,
	// not the process.
	defer ivr.Recover(c.srv.metrics, c.srv.log.With("agent", t.Agent), "sip ringing an agent", func(any) {
		res = ringResult{agent: t.Agent, detail: t.Agent + ": internal error"}
	})
	var u sip.Uri
	if err := sip.ParseUri(t.Contact, &u); err != nil {
		return ringResult{agent: t.Agent, detail: t.Agent + ": bad contact"}
	}
	d, err := c.srv.dg.Invite(ctx, u, diago.InviteOptions{Headers: append([]sip.Header(nil), hdrs...)})
	if err != nil {
		var de *sipgo.ErrDialogResponse
		detail := t.Agent + ": " + err.Error()
		if errors.As(err, &de) {
			detail = fmt.Sprintf("%s: %d", t.Agent, de.Res.StatusCode)
		}
		return ringResult{agent: t.Agent, detail: detail}
	}
	return ringResult{agent: t.Agent, d: d}
}

// headerValue makes text safe for a SIP header: control characters
// (CR, LF) become spaces, and it is cut to max bytes on a rune boundary.
func headerValue(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, strings.TrimSpace(s))
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// tap receives a copy of the caller's frames while the call is bridged.
type tap struct {
	ch   chan []int16
	free chan []int16
}

const tapQueue = 8

func newTap(n int) *tap {
	t := &tap{ch: make(chan []int16, tapQueue), free: make(chan []int16, tapQueue)}
	for range tapQueue {
		t.free <- make([]int16, n)
	}
	return t
}

// put copies a caller frame for the agent, dropping it when the agent's
// side is not keeping up. Called from the RTP reader.
func (t *tap) put(frame []int16) {
	select {
	case f := <-t.free:
		copy(f, frame)
		t.ch <- f
	default:
	}
}

// transcoder converts the agent leg's RTP payloads to caller frames and
// caller frames to agent payloads. Each direction is used by one goroutine.
type transcoder struct {
	n          int                 // samples per caller frame
	in         audio.PayloadWriter // agent payload -> decode -> resample -> caller frames -> emit
	emit       func([]int16) error // toCaller's, for the frames of its payload
	enc        audio.Encoder
	rsOut      *audio.Resampler // caller rate -> agent codec rate
	outPCM     []int16          // caller -> agent scratch
	outPayload []byte
}

func newTranscoder(codec string, rate int) (*transcoder, error) {
	dec, err := audio.NewDecoderAt(codec, rate)
	if err != nil {
		return nil, err
	}
	enc, err := audio.NewEncoderAt(codec, rate)
	if err != nil {
		return nil, err
	}
	rsOut, err := audio.NewResampler(rate, enc.Rate())
	if err != nil {
		return nil, err
	}
	x := &transcoder{n: audio.SamplesPerFrame(rate), enc: enc, rsOut: rsOut,
		outPCM: make([]int16, enc.Rate()/50), outPayload: make([]byte, audio.MaxPayloadSize)}
	x.in, err = audio.DecodeWriter(dec, audio.FrameWriter(audio.WriterFunc(rate, "caller", func(f []int16) error { return x.emit(f) })))
	if err != nil {
		return nil, err
	}
	return x, nil
}

// toCaller decodes one agent payload and calls emit with every whole
// caller frame it completes (the frame is only valid during the call).
// A bad packet is skipped.
func (x *transcoder) toCaller(payload []byte, emit func([]int16) error) error {
	x.emit = emit
	return x.in.WriteSample(payload)
}

// toAgent encodes one caller frame; the payload is valid until the next call.
func (x *transcoder) toAgent(frame []int16) ([]byte, error) {
	k := x.rsOut.Process(x.outPCM, frame)
	m, err := x.enc.Encode(x.outPayload, x.outPCM[:k])
	if err != nil {
		return nil, err
	}
	return x.outPayload[:m], nil
}

// bridge carries audio both ways between the caller and the agent's leg
// d until one of them hangs up, and returns the talk time. Caller audio
// is tapped from the RTP reader (the session's listener still records
// it); agent audio is decoded and written to the caller as engine frames,
// and to heard (the recording's engine side) when set.
func (c *call) bridge(d *diago.DialogClientSession, heard func([]int16)) time.Duration {
	start := time.Now()
	defer hangupAgent(d)
	codec := media.CodecAudioFromSession(d.MediaSession())
	x, err := newTranscoder(codec.Name, c.rate)
	reader, rerr := d.AudioReader()
	writer, werr := d.AudioWriter()
	if err = errors.Join(err, rerr, werr); err != nil {
		c.tr.Log().Error("bridge: agent media not usable", "codec", codec.Name, "err", err)
		return 0
	}
	bctx, cancel := context.WithCancel(c.ctx)
	defer cancel()
	t := newTap(x.n)
	c.tap.Store(t)
	defer c.tap.Store(nil)

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // agent -> caller
		defer wg.Done()
		defer ivr.Recover(c.srv.metrics, c.tr.Log(), "sip bridge to the caller", nil)
		defer cancel()
		buf := make([]byte, media.RTPBufSize)
		emit := func(f []int16) error {
			if err := c.WriteFrame(bctx, f); err != nil {
				return err
			}
			if heard != nil {
				heard(f)
			}
			return nil
		}
		for {
			m, err := reader.Read(buf)
			if err != nil {
				return
			}
			if m == 0 {
				continue
			}
			if err := x.toCaller(buf[:m], emit); err != nil {
				return
			}
		}
	}()
	go func() { // caller -> agent
		defer wg.Done()
		defer ivr.Recover(c.srv.metrics, c.tr.Log(), "sip bridge to the agent", nil)
		defer cancel()
		for {
			select {
			case <-bctx.Done():
				return
			case f := <-t.ch:
				p, err := x.toAgent(f)
				t.free <- f
				if err != nil {
					continue
				}
				if _, err := writer.Write(p); err != nil {
					return
				}
			}
		}
	}()
	select {
	case <-bctx.Done():
	case <-d.Context().Done():
	}
	cancel()
	hangupAgent(d) // ends the agent's RTP: the reader returns
	wg.Wait()
	return time.Since(start)
}
