package esl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/ivr/amd"
	"github.com/govline/ivr/ivr/survey"
)

// legResult is the media leg as the SIP endpoint hands it over.
type legResult struct {
	leg ivr.Call
	err error
}

// session is one FreeSWITCH channel under outbound socket control, from
// the socket's connection to its close. Once answered and bridged it is
// the engine's ivr.Call: audio through the SIP media leg, DTMF, hangup and
// transfer through the event socket.
type session struct {
	srv  *Server
	c    *conn
	rec  *recBuf
	uuid string
	tr   *ivr.Tracker
	log  *slog.Logger

	ctx    context.Context
	cancel context.CancelCauseFunc

	legToken string
	legCh    chan legResult // capacity 1
	legDone  chan struct{}  // closed (releaseLeg) when the session no longer needs the leg
	legOnce  sync.Once
	leg      ivr.Call    // set before the engine serves the call
	up       atomic.Bool // leg is set

	digits       chan ivr.Digit
	hungup       atomic.Bool // FreeSWITCH reported the channel's hangup
	transferring atomic.Bool
	transferred  atomic.Bool
	hangupOnce   sync.Once

	waitMu  sync.Mutex
	waiters map[string]chan *Event // CHANNEL_EXECUTE_COMPLETE by Application-UUID
}

var (
	_ ivr.Call       = (*session)(nil)
	_ ivr.Transferer = (*session)(nil)
)

// recBuf is the protocol log of a session: lines are kept until the call
// has a tracker (before admission), then written to the call's event log.
type recBuf struct {
	mu      sync.Mutex
	tr      *ivr.Tracker
	pending [][2]string
}

func (r *recBuf) record(kind, detail string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.tr == nil {
		if len(r.pending) < 64 {
			r.pending = append(r.pending, [2]string{kind, detail})
		}
		return
	}
	r.tr.Event(kind, detail)
}

func (r *recBuf) attach(tr *ivr.Tracker) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tr = tr
	for _, p := range r.pending {
		tr.Event(p[0], p[1])
	}
	r.pending = nil
}

// serveConn runs one outbound connection: FreeSWITCH's `socket`
// application connected for one channel.
func (s *Server) serveConn(nc net.Conn) {
	s.Metrics.Sessions.Add(1)
	s.Metrics.ActiveChannels.Add(1)
	defer s.Metrics.ActiveChannels.Add(-1)

	rec := &recBuf{}
	c := newConn(nc, rec.record, s.Metrics, s.cfg.CommandTimeout)
	defer c.Close()
	remote := nc.RemoteAddr().String()
	ctx := context.Background()

	f, err := c.command(ctx, []byte("connect\n\n"), "connect")
	if err != nil {
		s.log.Warn("outbound session: connect failed", "remote", remote, "err", err)
		return
	}
	uuid := f.header.Get("Unique-ID")
	if uuid == "" {
		uuid = f.header.Get("Channel-Unique-ID")
	}
	uuid = decodeValue(uuid)
	if err := token("Unique-ID", uuid); err != nil {
		s.Metrics.ProtocolErrors.Add(1)
		s.log.Warn("outbound session: the connect reply has no usable Unique-ID", "remote", remote, "err", err)
		return
	}
	get := func(k string) string { return decodeValue(f.header.Get(k)) }
	rec.record("esl.connect", fmt.Sprintf("channel %s, socket mode %s, control %s, answer state %s", uuid, get("Socket-Mode"), get("Control"), get("Answer-State")))

	se := &session{
		srv: s, c: c, rec: rec, uuid: uuid,
		legCh: make(chan legResult, 1), legDone: make(chan struct{}),
		digits: make(chan ivr.Digit, 32), waiters: map[string]chan *Event{},
	}
	se.ctx, se.cancel = context.WithCancelCause(context.Background())
	defer se.cancel(ivr.End(ivr.EndError, errors.New("session over")))
	defer se.releaseLeg() // also after a panic: the SIP endpoint gets its leg back

	// Subscribe before acting: the events of this channel, and the socket
	// kept open after its hangup for CHANNEL_HANGUP_COMPLETE.
	linger := int((s.cfg.Linger + time.Second - 1) / time.Second)
	for _, cmd := range []string{fmt.Sprintf("linger %d", linger), "myevents"} {
		if _, err := c.command(ctx, []byte(cmd+"\n\n"), cmd); err != nil {
			s.log.Warn("outbound session: setup command failed", "remote", remote, "command", cmd, "err", err)
			return
		}
	}
	// The event loop runs from here on; it is joined before the session ends.
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		defer ivr.Recover(s.eng.Metrics, s.log.With("call_id", uuid), "esl event loop", func(v any) {
			se.cancel(ivr.End(ivr.EndError, ivr.PanicError(v)))
			c.Close() // nobody reads the events any more
		})
		se.eventLoop()
	}()
	defer func() {
		c.Close()
		<-loopDone
	}()

	if get("Socket-Mode") == "static" {
		s.log.Error("the dialplan's socket application must use async mode: `socket HOST:PORT async full`", "channel", uuid)
		rec.record("esl.release", "socket mode static is not supported: the dialplan goes on after socket")
		return
	}

	if get("Control") == "single-channel" {
		// Without `full`, FreeSWITCH refuses the API commands of a handoff.
		s.log.Warn("the dialplan's socket application lacks `full`: handoffs (uuid_transfer) will fail", "channel", uuid)
		rec.record("esl.warning", "socket without full: handoff commands will be refused")
	}
	// One of our own calls (SurveyCall): the flow it was placed for, and
	// its placer told when it ended.
	s.mu.Lock()
	own := s.placing[uuid]
	delete(s.placing, uuid)
	gaveUp := s.gaveUp[uuid]
	delete(s.gaveUp, uuid)
	s.mu.Unlock()
	if gaveUp {
		// The engine gave up on this call before it connected (shutdown,
		// a late answer): the socket closes and, nothing following
		// &socket, FreeSWITCH hangs the channel up. Nobody is served the
		// line's flow by mistake.
		s.log.Warn("a call the engine placed and gave up on connected late: released", "call_id", uuid)
		return
	}
	if own != nil {
		close(own.claimed)
		defer close(own.done) // after the flow returned and the record closed
	}
	info := ivr.CallInfo{ID: uuid, Telephony: "esl", Caller: get("Caller-Caller-ID-Number"), Called: get("Caller-Destination-Number"), Start: time.Now()}
	tr, err := s.eng.Begin(info)
	if err != nil {
		// Refused (draining): the socket closes without a hangup, so
		// FreeSWITCH goes on with the dialplan after `socket` (the
		// shipped one sends the caller to the agents' queue).
		s.log.Warn("call refused: FreeSWITCH continues the dialplan after socket", "call_id", uuid, "err", err)
		return
	}
	defer tr.End(ivr.EndError) // safety net; a no-op once the call ended properly
	se.tr = tr
	se.log = tr.Log()
	rec.attach(tr)
	s.mu.Lock()
	s.channels[uuid] = se
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.channels, uuid)
		delete(s.legs, se.legToken)
		s.mu.Unlock()
	}()

	if reason, err := se.setup(); err != nil {
		se.log.Warn("call not set up", "reason", reason, "err", err)
		se.cancel(ivr.End(reason, err))
		if reason == ivr.EndError && !se.hungup.Load() {
			rec.record("esl.release", "the socket closes without a hangup: FreeSWITCH continues the dialplan after socket")
		}
		se.releaseLeg()
		tr.End(reason)
		return
	}

	if hook := s.testHook.Load(); hook != nil {
		(*hook)("setup", uuid)
	}

	// Audio ends with the leg: when FreeSWITCH ends it (caller hangup), the
	// channel's hangup event usually comes with it and gives the cause; a
	// moment later the leg's own end is the call's.
	var legTimer atomic.Pointer[time.Timer]
	stopLeg := context.AfterFunc(se.leg.Context(), func() {
		legTimer.Store(time.AfterFunc(250*time.Millisecond, se.legEnded))
	})
	if own != nil && s.cfg.Outbound.Machine.Enabled && se.machine(own) {
		stopLeg()
		if t := legTimer.Load(); t != nil {
			t.Stop()
		}
		se.releaseLeg()
		se.linger()
		return
	}
	var reason ivr.EndReason
	if own != nil && own.flow != nil {
		reason = s.eng.ServeFlow(se, tr, own.flow)
	} else {
		reason = s.eng.Serve(se, tr)
	}
	stopLeg()
	if t := legTimer.Load(); t != nil {
		t.Stop()
	}
	se.cancel(ivr.End(reason, nil))
	se.releaseLeg()
	se.linger()
}

// machine listens to one of the engine's own calls once its media leg is
// up, before the flow speaks (package ivr/amd), and reports whether the
// call ended there: an answering machine is hung up on with nothing said
// (own.machine: the survey call's result is survey.Machine), a citizen
// who hung up meanwhile ends the call. A person goes on to the flow.
func (se *session) machine(own *placed) bool {
	s := se.srv
	var newVAD amd.NewVAD
	if sc := s.eng.Speech; sc != nil {
		newVAD = sc.NewVAD
	}
	r, err := amd.Detect(se.ctx, se, se.tr.Info().Rate, s.cfg.Outbound.Machine, newVAD, se.log)
	if err != nil { // the citizen hung up, or the engine stops, while the line listened
		reason := ivr.ReasonOf(err)
		se.hangup(reason)
		se.tr.End(reason)
		return true
	}
	se.rec.record("esl.amd", r.String())
	se.log.Info("outbound call: answering machine detection", "verdict", r.Verdict.String(), "why", r.Why, "took", r.Took.Round(time.Millisecond))
	if r.Verdict != amd.Machine {
		return false
	}
	// Nothing is said to a machine (privacy: a voicemail would tell its
	// listener the citizen has a request with us).
	reason := ivr.EndReason("outbound_" + survey.Machine)
	se.hangup(reason)
	own.machine = true
	se.tr.End(reason)
	return true
}

// hangup hangs the channel up on a context of its own, bounded by the
// command timeout.
func (se *session) hangup(reason ivr.EndReason) {
	ctx, cancel := context.WithTimeout(context.Background(), se.srv.cfg.CommandTimeout)
	defer cancel()
	if err := se.Hangup(ctx, reason); err != nil {
		se.log.Warn("hangup failed", "err", err)
	}
}

// setup answers the channel and bridges it to the engine's SIP endpoint,
// then waits for that media leg.
func (se *session) setup() (ivr.EndReason, error) {
	s := se.srv
	ctx, cancel := context.WithTimeout(se.ctx, s.cfg.CommandTimeout+s.cfg.LegTimeout)
	defer cancel()
	if _, err := se.execute(ctx, "answer", "", true); err != nil {
		return se.failReason(ivr.EndCancelled), fmt.Errorf("answer: %w", err)
	}
	token := newToken()
	// Under s.mu: claimed reads every session's legToken.
	s.mu.Lock()
	se.legToken = token
	s.legs[token] = se
	s.mu.Unlock()
	vars := "sip_h_" + s.cfg.LegHeader + "=" + token
	if s.cfg.MediaCodec != "" {
		vars += ",absolute_codec_string=" + s.cfg.MediaCodec
	}
	done, err := se.executeAsync(ctx, "bridge", "{"+vars+"}"+s.cfg.MediaDial)
	if err != nil {
		return se.failReason(ivr.EndError), fmt.Errorf("bridge: %w", err)
	}
	t := time.NewTimer(s.cfg.LegTimeout)
	defer t.Stop()
	select {
	case r := <-se.legCh:
		if r.err != nil {
			// A leg that fails as the caller hangs up (BYE before the
			// ACK) is the caller's hangup: its event comes at once.
			g := time.NewTimer(250 * time.Millisecond)
			select {
			case <-se.ctx.Done():
			case <-g.C:
			}
			g.Stop()
			return se.failReason(ivr.EndError), r.err
		}
		se.leg = r.leg
		se.up.Store(true)
		return "", nil
	case ev := <-done:
		return se.failReason(ivr.EndError), fmt.Errorf("bridge to the engine failed: %s", ev.Get("Application-Response"))
	case <-t.C:
		s.Metrics.LegTimeouts.Add(1)
		se.rec.record("esl.leg-timeout", fmt.Sprintf("no media leg from %s in %s", s.cfg.MediaDial, s.cfg.LegTimeout))
		return ivr.EndError, fmt.Errorf("the media leg did not arrive in %s: check esl.media_dial (%s) and sip.leg_header", s.cfg.LegTimeout, s.cfg.MediaDial)
	case <-se.ctx.Done():
		return ivr.ReasonOf(context.Cause(se.ctx)), context.Cause(se.ctx)
	}
}

// failReason is the reason of a failed setup step: the channel's own end
// when it is over, else def.
func (se *session) failReason(def ivr.EndReason) ivr.EndReason {
	if cause := context.Cause(se.ctx); cause != nil {
		return ivr.ReasonOf(cause)
	}
	return def
}

// serveLeg receives the media leg from the SIP endpoint and holds it until
// the session no longer needs it.
func (se *session) serveLeg(leg ivr.Call, err error) {
	select {
	case se.legCh <- legResult{leg: leg, err: err}:
	default:
		return
	}
	if err != nil {
		return
	}
	<-se.legDone
}

// legEnded ends the call when its media leg ended on its own (FreeSWITCH
// sent BYE, or RTP stopped), unless the call is being transferred.
func (se *session) legEnded() {
	if se.transferring.Load() || se.ctx.Err() != nil {
		return
	}
	cause := context.Cause(se.leg.Context())
	se.rec.record("esl.leg-ended", string(ivr.ReasonOf(cause)))
	se.cancel(ivr.End(ivr.ReasonOf(cause), fmt.Errorf("media leg ended: %w", cause)))
}

// linger waits, after the call's end, until FreeSWITCH closes the socket
// (it does after the channel's hangup and the linger time) so the last
// events reach the call's log, then the caller closes it.
func (se *session) linger() {
	if se.transferred.Load() {
		return
	}
	t := time.NewTimer(se.srv.cfg.Linger + time.Second)
	defer t.Stop()
	select {
	case <-se.c.Done():
	case <-t.C:
	}
}

// eventLoop reads the channel's events until the socket closes.
func (se *session) eventLoop() {
	for ev := range se.c.Events() {
		se.handle(ev)
	}
	err := se.c.Err()
	if err == nil {
		err = io.EOF
	}
	if se.ctx.Err() == nil && !se.transferred.Load() {
		se.rec.record("esl.socket-lost", err.Error())
		se.cancel(ivr.End(ivr.EndError, fmt.Errorf("event socket lost: %w", err)))
	}
}

// releaseLeg tells the SIP endpoint that the session no longer needs the
// media leg (once).
func (se *session) releaseLeg() { se.legOnce.Do(func() { close(se.legDone) }) }

func (se *session) handle(ev *Event) {
	if hook := se.srv.testHook.Load(); hook != nil {
		(*hook)("event", se.uuid)
	}
	switch ev.Name {
	case "DTMF":
		se.rec.record("esl.event", "DTMF DTMF-Source="+ev.Get("DTMF-Source"))
		se.digit(ev.Get("DTMF-Digit"))
		return
	}
	se.rec.record("esl.event", ev.summary())
	switch ev.Name {
	case "CHANNEL_EXECUTE_COMPLETE":
		id := ev.Get("Application-UUID")
		se.waitMu.Lock()
		ch := se.waiters[id]
		delete(se.waiters, id)
		se.waitMu.Unlock()
		if ch != nil {
			ch <- ev // capacity 1, one send
		}
	case "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE":
		se.channelDown(ev.Get("Hangup-Cause"))
	case "DISCONNECT_NOTICE":
		if ev.Get("Content-Disposition") == "linger" {
			se.channelDown("")
		}
	}
}

// channelDown follows FreeSWITCH's report that the channel hung up.
func (se *session) channelDown(cause string) {
	if se.transferred.Load() {
		return
	}
	se.hungup.Store(true)
	if cause == "" {
		cause = "NORMAL_CLEARING"
	}
	se.cancel(ivr.End(reasonOfCause(cause), fmt.Errorf("FreeSWITCH Hangup-Cause %s", cause)))
}

// digit hands one DTMF key from a DTMF event to the session.
func (se *session) digit(s string) {
	if len(s) != 1 || !strings.Contains("0123456789*#ABCDabcd", s) {
		se.rec.record("esl.unexpected", fmt.Sprintf("DTMF event with digit %q", truncate(s, 8)))
		return
	}
	key := rune(strings.ToUpper(s)[0])
	se.rec.record("dtmf", "esl "+string(key))
	select {
	case se.digits <- ivr.Digit{Key: key, Source: "esl", At: time.Now()}:
	default:
		if se.log != nil {
			se.log.Warn("DTMF queue full: digit dropped", "source", "esl")
		}
	}
}

// execute runs a dialplan application on the channel (sendmsg execute,
// tagged with an Event-UUID) and, with wait, waits for its
// CHANNEL_EXECUTE_COMPLETE.
func (se *session) execute(ctx context.Context, app, arg string, wait bool) (*Event, error) {
	done, err := se.executeAsync(ctx, app, arg)
	if err != nil || !wait {
		return nil, err
	}
	select {
	case ev := <-done:
		return ev, nil
	case <-se.ctx.Done():
		return nil, context.Cause(se.ctx)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (se *session) executeAsync(ctx context.Context, app, arg string) (<-chan *Event, error) {
	id := newToken()
	done := make(chan *Event, 1)
	se.waitMu.Lock()
	se.waiters[id] = done
	se.waitMu.Unlock()
	hdrs := [][2]string{{"call-command", "execute"}, {"execute-app-name", app}}
	if arg != "" {
		hdrs = append(hdrs, [2]string{"execute-app-arg", arg})
	}
	hdrs = append(hdrs, [2]string{"event-uuid", id})
	wire, err := sendmsg(se.uuid, hdrs...)
	if err == nil {
		logged := "sendmsg execute " + app
		if arg != "" {
			logged += " " + se.redact(arg)
		}
		_, err = se.c.command(ctx, wire, logged)
	}
	if err != nil {
		se.waitMu.Lock()
		delete(se.waiters, id)
		se.waitMu.Unlock()
		return nil, err
	}
	return done, nil
}

// redact hides the media leg's token in the protocol log.
func (se *session) redact(s string) string {
	if se.legToken == "" {
		return s
	}
	return strings.ReplaceAll(s, se.legToken, "<token>")
}

// api runs an API command (uuid_setvar, uuid_transfer) and returns its
// reply.
func (se *session) api(ctx context.Context, line string) (string, error) {
	wire, err := command("api " + line)
	if err != nil {
		return "", err
	}
	f, err := se.c.command(ctx, wire, "api "+line)
	if err != nil {
		return "", err
	}
	text, _ := replyText(f)
	return text, nil
}

// Context implements ivr.Call.
func (se *session) Context() context.Context { return se.ctx }

// Digits implements ivr.Media: DTMF from the channel's DTMF events (the
// media leg's RFC 4733 copies of the same keys are not delivered).
func (se *session) Digits() <-chan ivr.Digit { return se.digits }

// endErr turns a media leg error into the call's end cause. When the leg
// ended on its own, the call ends within moments (the channel's hangup
// event, or legEnded): wait for that, so the session sees one cause.
func (se *session) endErr(ctx context.Context, err error) error {
	if se.ctx.Err() == nil && se.leg.Context().Err() != nil && !se.transferring.Load() {
		t := time.NewTimer(time.Second)
		select {
		case <-se.ctx.Done():
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	if cause := context.Cause(se.ctx); cause != nil {
		return cause
	}
	return err
}

// ReadFrame implements ivr.Media with the media leg's audio.
func (se *session) ReadFrame(ctx context.Context, dst []int16) (int, error) {
	n, err := se.leg.ReadFrame(ctx, dst)
	if err != nil {
		return n, se.endErr(ctx, err)
	}
	return n, nil
}

// WriteFrame implements ivr.Media with the media leg's audio.
func (se *session) WriteFrame(ctx context.Context, frame []int16) error {
	if se.ctx.Err() != nil {
		return context.Cause(se.ctx)
	}
	if err := se.leg.WriteFrame(ctx, frame); err != nil {
		return se.endErr(ctx, err)
	}
	return nil
}

// Hangup implements ivr.Control: the channel is hung up through the event
// socket with the FreeSWITCH cause of the reason (unless FreeSWITCH
// already hung it up, or it was transferred), then the media leg.
func (se *session) Hangup(ctx context.Context, reason ivr.EndReason) error {
	var err error
	se.hangupOnce.Do(func() {
		se.cancel(ivr.End(reason, nil))
		sent := false
		if reason != ivr.EndTransferred && !se.transferred.Load() && !se.hungup.Load() {
			select {
			case <-se.c.Done():
			default:
				var wire []byte
				wire, err = sendmsg(se.uuid, [2]string{"call-command", "hangup"}, [2]string{"hangup-cause", causeOf(reason)})
				if err == nil {
					_, err = se.c.command(ctx, wire, "sendmsg hangup "+causeOf(reason))
				}
				sent = err == nil
			}
		}
		if se.leg != nil && (sent || se.hungup.Load() || se.transferred.Load()) {
			// FreeSWITCH ends the bridge and sends BYE on the leg itself;
			// a BYE of ours now would cross it. Ours goes only if its
			// does not come.
			t := time.NewTimer(legByeWait)
			select {
			case <-se.leg.Context().Done():
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
		}
		if se.leg != nil {
			if lerr := se.leg.Hangup(ctx, reason); lerr != nil && err == nil {
				err = lerr
			}
		}
	})
	return err
}

// Transfer implements ivr.Transferer: the channel variables IVR_TICKET,
// IVR_LANG, IVR_SUMMARY and IVR_QUEUE are set with uuid_setvar, then
// uuid_transfer takes the channel out of the bridge to the handoff
// extension or the mod_callcenter queue. The call then ends with
// EndTransferred; the channel lives on in FreeSWITCH.
func (se *session) Transfer(ctx context.Context, h ivr.Handoff) error {
	cfg := se.srv.cfg.Handoff
	if err := token("queue", h.Queue); err != nil {
		return err
	}
	vars := [][2]string{{"IVR_QUEUE", h.Queue}}
	if h.Ticket != "" {
		if err := token("ticket", h.Ticket); err != nil {
			return err
		}
		vars = append(vars, [2]string{"IVR_TICKET", h.Ticket})
	}
	if h.Lang != "" {
		if err := token("lang", h.Lang); err != nil {
			return err
		}
		vars = append(vars, [2]string{"IVR_LANG", h.Lang})
	}
	if sum := freeText(h.Summary, 200); sum != "" {
		vars = append(vars, [2]string{"IVR_SUMMARY", sum})
	}
	var dest string
	switch cfg.Mode {
	case HandoffCallcenter:
		q, ok := cfg.Queues[h.Queue]
		if !ok {
			q = h.Queue + "@" + cfg.Domain
		}
		if err := token("callcenter queue", q); err != nil {
			return err
		}
		vars = append(vars, [2]string{"cc_export_vars", "IVR_TICKET,IVR_LANG,IVR_SUMMARY,IVR_QUEUE"})
		dest = "callcenter:" + q + " inline"
	default:
		ext, ok := cfg.Extensions[h.Queue]
		if !ok {
			ext = h.Queue
		}
		dest = ext + " XML " + cfg.Context
	}
	se.transferring.Store(true)
	for _, v := range vars {
		if _, err := se.api(ctx, "uuid_setvar "+se.uuid+" "+v[0]+" "+v[1]); err != nil {
			se.transferring.Store(false)
			return fmt.Errorf("transfer: set %s: %w", v[0], err)
		}
	}
	if se.ctx.Err() != nil {
		se.transferring.Store(false)
		return fmt.Errorf("transfer: %w", context.Cause(se.ctx))
	}
	if _, err := se.api(ctx, "uuid_transfer "+se.uuid+" "+dest); err != nil {
		se.transferring.Store(false)
		return fmt.Errorf("transfer: %w", err)
	}
	se.transferred.Store(true)
	se.rec.record("esl.transferred", "to "+dest)
	se.cancel(ivr.End(ivr.EndTransferred, nil))
	return nil
}

// legByeWait is how long the engine waits for FreeSWITCH's BYE on the
// media leg after the channel's hangup or transfer before it sends its own.
const legByeWait = 2 * time.Second

// causeOf is the FreeSWITCH hangup cause the engine gives for a reason.
func causeOf(r ivr.EndReason) string {
	switch r {
	case ivr.EndRTPTimeout:
		return "MEDIA_TIMEOUT"
	case ivr.EndShutdown:
		return "SYSTEM_SHUTDOWN"
	case ivr.EndRejected:
		return "SWITCH_CONGESTION"
	case ivr.EndError, ivr.EndNoCommonCodec:
		return "NORMAL_TEMPORARY_FAILURE"
	default:
		return "NORMAL_CLEARING"
	}
}

// reasonOfCause is the engine's end reason for a FreeSWITCH hangup cause.
func reasonOfCause(cause string) ivr.EndReason {
	switch cause {
	case "ORIGINATOR_CANCEL":
		return ivr.EndCancelled
	case "MEDIA_TIMEOUT":
		return ivr.EndRTPTimeout
	case "SYSTEM_SHUTDOWN":
		return ivr.EndShutdown
	default:
		return ivr.EndCallerHangup
	}
}
