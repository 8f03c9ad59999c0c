package ari

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/govline/ivr/audio"
	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/ivr/amd"
	"github.com/govline/ivr/ivr/survey"
	"github.com/govline/ivr/redact"
)

// queue sizes, in 20 ms frames (as the SIP endpoint).
const (
	inQueue  = 16
	outQueue = 3
)

// Prefixes of the ids the adapter gives the objects it creates in Asterisk
// (followed by the application name, '-' and a random part), so an
// administrator tells them apart in `core show channels` and the adapter
// finds the ones no call owns.
const (
	mediaPrefix  = "ivr-media-"
	bridgePrefix = "ivr-bridge-"
)

// call is one Asterisk channel in the application, as an ivr.Call. It owns
// one goroutine for its life (run: setup, the engine's session, teardown)
// and, once media is set up, the RTP reader, which run joins; its outbound
// RTP is sent by the server's sender.
type call struct {
	s   *Server
	cn  *conn
	id  string // caller channel id = call id
	tr  *ivr.Tracker
	fmt mediaFormat

	flow     ivr.FlowRunner // the flow an originate asked for; nil: the engine's
	sv       *served        // nil, or told when run returns (an originate waits on it)
	outbound bool           // placed by an originate: listened to first (Outbound.Machine)

	ctx    context.Context
	cancel context.CancelCauseFunc

	mu       sync.Mutex
	mediaID  string // ExternalMedia channel, once requested
	bridgeID string // mixing bridge, once requested
	sock     *net.UDPConn
	port     int

	remote atomic.Pointer[net.UDPAddr] // where Asterisk listens for our RTP

	gone        atomic.Bool   // the caller channel left Stasis or was destroyed
	mediaReady  chan struct{} // closed when the ExternalMedia channel entered the application
	mediaOnce   sync.Once
	transferred atomic.Bool // the channel continued in the dialplan or was redirected

	digits       chan ivr.Digit
	audio.Duplex // caller frames for the session (In), engine frames for the sender (Out)

	send    sendState         // owned by the sender's goroutine
	slot    *audio.SenderSlot // set by startMedia
	mediaUp bool              // set by startMedia, read by teardown (same goroutine)

	hangupOnce   sync.Once
	teardownOnce sync.Once
	mediaWG      sync.WaitGroup
}

var (
	_ ivr.Call       = (*call)(nil)
	_ ivr.Transferer = (*call)(nil)

	_ audio.FrameSender      = (*call)(nil)
	_ audio.SendPanicHandler = (*call)(nil)
)

func newCall(s *Server, cn *conn, ch *Channel, tr *ivr.Tracker) *call {
	c := &call{
		s: s, cn: cn, id: ch.ID, tr: tr, fmt: s.format,
		digits:     make(chan ivr.Digit, 32),
		mediaReady: make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancelCause(s.callCtx)
	c.Duplex = audio.NewDuplex(c.ctx, s.format.rate, inQueue, outQueue)
	return c
}

func (c *call) Context() context.Context { return c.ctx }
func (c *call) Digits() <-chan ivr.Digit { return c.digits }

func (c *call) media() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mediaID
}

// end sets the call's end cause (the first one wins).
func (c *call) end(reason ivr.EndReason, err error) { c.cancel(ivr.End(reason, err)) }

func (c *call) endErr() error {
	if err := context.Cause(c.ctx); err != nil {
		return err
	}
	return io.EOF
}

func (c *call) do(ctx context.Context, method, path string, q url.Values, out any) error {
	return c.cn.cl.do(ctx, c.id, method, path, q, nil, out)
}

// Hangup implements ivr.Control: it hangs up the caller's channel unless
// it already left the application (hung up, or handed to the dialplan).
func (c *call) Hangup(ctx context.Context, reason ivr.EndReason) error {
	var err error
	c.hangupOnce.Do(func() {
		c.end(reason, nil)
		if c.gone.Load() || c.transferred.Load() {
			return
		}
		q := url.Values{"reason": {hangupReason(reason)}}
		err = c.do(ctx, http.MethodDelete, "/channels/"+url.PathEscape(c.id), q, nil)
		if isNotFound(err) {
			err = nil
		}
	})
	return err
}

// hangupReason is ARI's hangup reason for an end reason.
func hangupReason(r ivr.EndReason) string {
	switch r {
	case ivr.EndRejected, ivr.EndShutdown:
		return "congestion"
	case ivr.EndError:
		return "normal" // the caller hears the line end; the log says why
	}
	return "normal"
}

// Transfer implements ivr.Transferer: the ticket number, language, summary
// and queue become channel variables, then the channel continues in the
// dialplan (or is redirected to the configured endpoint). It returns once
// Asterisk accepted the request; the call's context then ends with
// EndTransferred.
func (c *call) Transfer(ctx context.Context, h ivr.Handoff) error {
	if c.ctx.Err() != nil {
		return c.endErr()
	}
	hc := c.s.cfg.Handoff
	ext := hc.Extension
	if hc.Mode == "continue" && ext == "" {
		if !nameRE.MatchString(h.Queue) {
			return fmt.Errorf("ari handoff: queue name %q is not a dialplan extension (letters, digits, '.', '-', '_')", h.Queue)
		}
		ext = h.Queue
	}
	vars := [][2]string{
		{"IVR_TICKET", oneLine(h.Ticket, 64)},
		{"IVR_LANG", oneLine(h.Lang, 8)},
		{"IVR_SUMMARY", oneLine(h.Summary, 200)},
		{"IVR_QUEUE", oneLine(h.Queue, 80)},
	}
	ch := "/channels/" + url.PathEscape(c.id)
	for _, v := range vars {
		if err := c.do(ctx, http.MethodPost, ch+"/variable", url.Values{"variable": {v[0]}, "value": {v[1]}}, nil); err != nil {
			return fmt.Errorf("ari handoff: %w", err)
		}
	}
	// Mark before the request: the StasisEnd it causes may arrive before
	// its answer, and must not be taken for a hangup. That StasisEnd ends
	// the call's context, from which ctx derives: the request runs on a
	// context of its own (bounded by the client's request timeout), so its
	// answer, not the event, says whether Asterisk took the call.
	c.transferred.Store(true)
	rctx := context.WithoutCancel(ctx)
	var err error
	if hc.Mode == "redirect" {
		err = c.do(rctx, http.MethodPost, ch+"/redirect", url.Values{"endpoint": {hc.Endpoint}}, nil)
	} else {
		err = c.do(rctx, http.MethodPost, ch+"/continue", url.Values{
			"context": {hc.Context}, "extension": {ext}, "priority": {strconv.Itoa(hc.Priority)},
		}, nil)
	}
	if err != nil {
		c.transferred.Store(false)
		return fmt.Errorf("ari handoff: %w", err)
	}
	where := fmt.Sprintf("%s,%s,%d", hc.Context, ext, hc.Priority)
	if hc.Mode == "redirect" {
		where = hc.Endpoint
	}
	c.tr.Event("handoff", mustJSON(map[string]string{"mode": hc.Mode, "to": where, "queue": h.Queue, "ticket": h.Ticket, "lang": h.Lang}))
	c.end(ivr.EndTransferred, nil)
	return nil
}

// oneLine makes s safe as a channel variable shown on an agent's screen:
// one line, no control characters, at most n runes.
func oneLine(s string, n int) string {
	var b strings.Builder
	count := 0
	for _, r := range s {
		if count == n {
			break
		}
		if unicode.IsControl(r) {
			r = ' '
		}
		b.WriteRune(r)
		count++
	}
	return strings.TrimSpace(b.String())
}

// event handles one ARI event about this call's channels or bridge. It is
// called from the WebSocket reader and never blocks.
func (c *call) event(ev *Event) {
	c.tr.Event("ari.event", ev.logLine())
	chID := ""
	if ev.Channel != nil {
		chID = ev.Channel.ID
	}
	switch {
	case chID == c.id:
		switch ev.Type {
		case "ChannelDtmfReceived":
			r := []rune(ev.Digit)
			if len(r) != 1 || !strings.ContainsRune("0123456789*#ABCD", r[0]) {
				c.tr.Event("ari.dtmf.ignored", "not a DTMF key")
				return
			}
			c.digit(r[0])
		case "ChannelHangupRequest":
			c.end(ivr.EndCallerHangup, fmt.Errorf("hangup request, cause %d", ev.Cause))
		case "StasisEnd":
			c.gone.Store(true)
			if c.transferred.Load() {
				c.end(ivr.EndTransferred, nil)
			} else {
				c.end(ivr.EndCallerHangup, errors.New("the channel left the application"))
			}
		case "ChannelDestroyed":
			c.gone.Store(true)
			c.end(ivr.EndCallerHangup, fmt.Errorf("channel destroyed, cause %d %s", ev.Cause, ev.CauseTxt))
		}
	case chID != "" && chID == c.media():
		switch ev.Type {
		case "StasisStart":
			c.mediaOnce.Do(func() { close(c.mediaReady) })
		case "StasisEnd", "ChannelDestroyed":
			c.end(ivr.EndError, errors.New("the ExternalMedia channel ended"))
		}
	case ev.Type == "BridgeDestroyed":
		c.end(ivr.EndError, errors.New("the bridge was destroyed"))
	}
}

func (c *call) digit(key rune) {
	d := ivr.Digit{Key: key, Source: "ari", At: time.Now()}
	c.tr.Event("dtmf", "ari "+string(key))
	select {
	case c.digits <- d:
	default:
		c.tr.Log().Warn("DTMF queue full: digit dropped", "source", "ari")
	}
}

func newID(prefix string) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// run is the call's life: set up media, serve, tear down.
func (c *call) run() {
	if c.sv != nil {
		defer close(c.sv.done) // last: after the teardown and the record
	}
	defer c.s.metrics.Channels.Add(-1)
	defer c.s.forget(c)
	// A panic below still frees what the call holds and closes its record.
	defer ivr.Recover(c.s.eng.Metrics, c.tr.Log(), "ari call", func(v any) {
		c.end(ivr.EndError, ivr.PanicError(v))
		ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.RequestTimeout)
		if err := c.Hangup(ctx, ivr.EndError); err != nil {
			c.tr.Log().Warn("hangup failed", "err", err)
		}
		cancel()
		c.teardown()
		c.tr.End(ivr.EndError)
	})
	if hook := c.s.testHook.Load(); hook != nil {
		(*hook)("call", c.id)
	}
	reason, err := c.setup()
	if err != nil {
		if cause := context.Cause(c.ctx); cause != nil {
			reason = ivr.ReasonOf(cause)
		}
		c.tr.Log().Warn("call setup failed", "err", err, "reason", reason)
		c.tr.Event("ari.setup.failed", redact.Text(err.Error()))
		ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.RequestTimeout)
		if err := c.Hangup(ctx, reason); err != nil {
			c.tr.Log().Warn("hangup failed", "err", err)
		}
		cancel()
		c.teardown()
		c.tr.End(reason)
		return
	}
	if c.outbound && c.s.cfg.Outbound.Machine.Enabled && c.machine() {
		return
	}
	if c.flow != nil {
		reason = c.s.eng.ServeFlow(c, c.tr, c.flow)
	} else {
		reason = c.s.eng.Serve(c, c.tr)
	}
	c.end(reason, nil)
	c.teardown()
}

// machine listens to an originated call once its media is up, before
// the flow speaks (package ivr/amd), and reports whether the call ended
// there: an answering machine is hung up on with nothing said (the
// originate's result is then survey.Machine), a citizen who hung up
// meanwhile ends the call. A person goes on to the flow.
func (c *call) machine() bool {
	var newVAD amd.NewVAD
	if sc := c.s.eng.Speech; sc != nil {
		newVAD = sc.NewVAD
	}
	r, err := amd.Detect(c.ctx, c, c.fmt.rate, c.s.cfg.Outbound.Machine, newVAD, c.tr.Log())
	if err != nil { // the citizen hung up, or the engine stops, while the line listened
		reason := ivr.ReasonOf(err)
		ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.RequestTimeout)
		if err := c.Hangup(ctx, reason); err != nil { // nothing to do when the channel is gone
			c.tr.Log().Warn("hangup failed", "err", err)
		}
		cancel()
		c.teardown()
		c.tr.End(reason)
		return true
	}
	c.tr.Event("ari.amd", r.String())
	c.tr.Log().Info("outbound call: answering machine detection", "verdict", r.Verdict.String(), "why", r.Why, "took", r.Took.Round(time.Millisecond))
	if r.Verdict != amd.Machine {
		return false
	}
	// Nothing is said to a machine (privacy: a voicemail would tell its
	// listener the citizen has a request with us).
	reason := ivr.EndReason("outbound_" + survey.Machine)
	ctx, cancel := context.WithTimeout(context.Background(), c.s.cfg.RequestTimeout)
	if err := c.Hangup(ctx, reason); err != nil {
		c.tr.Log().Warn("hangup failed", "err", err)
	}
	cancel()
	c.teardown()
	if c.sv != nil {
		c.sv.machine = true
	}
	c.tr.End(reason)
	return true
}

// setup answers, opens the RTP port, creates the bridge and the
// ExternalMedia channel and bridges them with the caller. Each step
// checks that the call did not end meanwhile.
func (c *call) setup() (ivr.EndReason, error) {
	ctx := c.ctx
	ch := "/channels/" + url.PathEscape(c.id)
	if err := c.do(ctx, http.MethodPost, ch+"/answer", nil, nil); err != nil {
		return ivr.EndError, err
	}
	sock, port, err := c.s.openRTP()
	if err != nil {
		return ivr.EndError, err
	}
	c.mu.Lock()
	c.sock, c.port = sock, port
	c.mu.Unlock()
	c.s.metrics.RTPPorts.Add(1)
	if err := c.startMedia(); err != nil {
		return ivr.EndError, err
	}

	bridgeID := newID(c.cn.bridgePrefix())
	c.mu.Lock()
	c.bridgeID = bridgeID
	c.mu.Unlock()
	c.s.route(bridgeID, c)
	c.s.metrics.Bridges.Add(1)
	if err := c.do(ctx, http.MethodPost, "/bridges", url.Values{"type": {"mixing"}, "bridgeId": {bridgeID}, "name": {"ivr-" + c.id}}, nil); err != nil {
		return ivr.EndError, err
	}

	mediaID := newID(c.cn.mediaPrefix())
	c.mu.Lock()
	c.mediaID = mediaID
	c.mu.Unlock()
	c.s.route(mediaID, c) // its StasisStart may come before the answer
	c.s.metrics.Channels.Add(1)
	local := net.JoinHostPort(c.s.cfg.RTPAddress, strconv.Itoa(port))
	var em Channel
	if err := c.do(ctx, http.MethodPost, "/channels/externalMedia", url.Values{
		"app": {c.cn.cfg.App}, "channelId": {mediaID}, "external_host": {local},
		"encapsulation": {"rtp"}, "transport": {"udp"}, "connection_type": {"client"},
		"format": {c.fmt.name}, "direction": {"both"},
	}, &em); err != nil {
		return ivr.EndError, err
	}
	if addr, ok := unicastAddr(em.Channelvars); ok {
		c.remote.Store(addr)
	}
	// Asterisk answers the request once the channel exists, and puts it
	// into the application on another thread: a bridge refuses it (422)
	// until its StasisStart.
	wait := time.NewTimer(c.s.cfg.RequestTimeout)
	select {
	case <-c.mediaReady:
		wait.Stop()
	case <-ctx.Done():
		wait.Stop()
		return ivr.ReasonOf(context.Cause(ctx)), context.Cause(ctx)
	case <-wait.C:
		return ivr.EndError, fmt.Errorf("no StasisStart for the ExternalMedia channel %s within %s", mediaID, c.s.cfg.RequestTimeout)
	}
	if err := c.do(ctx, http.MethodPost, "/bridges/"+url.PathEscape(bridgeID)+"/addChannel", url.Values{"channel": {c.id + "," + mediaID}}, nil); err != nil {
		return ivr.EndError, err
	}
	if cause := context.Cause(ctx); cause != nil {
		return ivr.ReasonOf(cause), cause
	}
	c.tr.SetMedia(c.fmt.codec, c.fmt.rate)
	c.tr.Event("ari.media", mustJSON(map[string]any{"bridge": bridgeID, "external_media": mediaID, "format": c.fmt.name, "rtp_local": local, "rtp_remote": addrString(c.remote.Load())}))
	return "", nil
}

// unicastAddr reads where the ExternalMedia channel listens.
func unicastAddr(vars map[string]string) (*net.UDPAddr, bool) {
	ip := net.ParseIP(vars["UNICASTRTP_LOCAL_ADDRESS"])
	port, err := strconv.Atoi(vars["UNICASTRTP_LOCAL_PORT"])
	if ip == nil || err != nil || port <= 0 || port > 65535 {
		return nil, false
	}
	return &net.UDPAddr{IP: ip, Port: port}, true
}

func addrString(a *net.UDPAddr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// teardown frees what the call holds in Asterisk and here, on a context of
// its own: the ExternalMedia channel, the bridge, the RTP port and the
// media goroutines. Missing objects (404) are fine. Only the first call acts.
func (c *call) teardown() { c.teardownOnce.Do(c.free) }

func (c *call) free() {
	c.stopMedia()
	c.mu.Lock()
	mediaID, bridgeID, sock, port := c.mediaID, c.bridgeID, c.sock, c.port
	c.mu.Unlock()
	lim := c.s.cfg.RequestTimeout
	if mediaID != "" {
		ctx, cancel := context.WithTimeout(context.Background(), lim)
		if err := c.do(ctx, http.MethodDelete, "/channels/"+url.PathEscape(mediaID), nil, nil); err != nil && !isNotFound(err) {
			c.tr.Log().Warn("ExternalMedia channel not hung up", "channel", mediaID, "err", err)
		}
		cancel()
		c.s.metrics.Channels.Add(-1)
	}
	if bridgeID != "" {
		ctx, cancel := context.WithTimeout(context.Background(), lim)
		if err := c.do(ctx, http.MethodDelete, "/bridges/"+url.PathEscape(bridgeID), nil, nil); err != nil && !isNotFound(err) {
			c.tr.Log().Warn("bridge not destroyed", "bridge", bridgeID, "err", err)
		}
		cancel()
		c.s.metrics.Bridges.Add(-1)
	}
	if sock != nil {
		_ = sock.Close()
		c.s.releasePort(port)
		c.s.metrics.RTPPorts.Add(-1)
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%q", fmt.Sprint(v))
	}
	return string(b)
}
