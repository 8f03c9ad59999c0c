package sip

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/diago"
	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/govline/ivr/ivr"
	"github.com/govline/ivr/ivr/amd"
	"github.com/govline/ivr/ivr/queue"
	"github.com/govline/ivr/redact"
)

// Trunk is the SIP trunk outbound calls go through (sip.trunk,
// IVR_SIP_TRUNK): sip:USER:PASSWORD@HOST:PORT, with ;transport=tcp or
// ;transport=tls, or sips:USER:PASSWORD@HOST:PORT (TLS). The line sends its
// INVITEs to HOST:PORT over that transport with the number in the
// Request-URI and answers the trunk's digest challenge (401 or 407) with
// USER and PASSWORD. The ACK, BYE, CANCEL and the INVITE sent again with
// the credentials go the same way.
type Trunk struct {
	User      string
	Password  string // personal to the operator: never logged (LogValue)
	Host      string // an IP address: the line makes no DNS look-ups
	Port      int
	Transport string // "udp" (also when empty), "tcp" or "tls"
	SIPS      bool   // written as a sips: URI (always over TLS): the Request-URI is a sips: one too
}

// Trunk transports.
const (
	TransportUDP = "udp"
	TransportTCP = "tcp"
	TransportTLS = "tls"
)

// Default trunk ports: 5060 over UDP and TCP, 5061 over TLS.
const (
	DefaultTrunkPort    = 5060
	DefaultTrunkTLSPort = 5061
)

// ParseTrunk reads sip:USER:PASSWORD@HOST:PORT;transport=T or
// sips:USER:PASSWORD@HOST:PORT (USER and PASSWORD optional, PASSWORD
// percent-encoded if it holds reserved characters). T is udp (the
// default), tcp or tls; a sips: URI is TLS (;transport=tcp or tls allowed,
// udp refused). PORT defaults to 5060, or 5061 over TLS. HOST must be an IP
// address. Other URI parameters are ignored.
func ParseTrunk(s string) (Trunk, error) {
	var t Trunk
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, "sip:")
	if !ok {
		if rest, ok = strings.CutPrefix(s, "sips:"); !ok {
			return t, errors.New("a trunk is a sip: or sips: URI, sip:USER:PASSWORD@HOST:PORT[;transport=udp|tcp|tls]")
		}
		t.SIPS = true
	}
	// The credentials end at the last '@' (a user may hold ';', RFC 3261
	// 25.1); the parameters follow the host part.
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		cred := rest[:at]
		rest = rest[at+1:]
		user, pass, _ := strings.Cut(cred, ":")
		var err error
		if t.User, err = url.PathUnescape(user); err != nil {
			return t, errors.New("the trunk's user is not valid percent-encoding")
		}
		if t.Password, err = url.PathUnescape(pass); err != nil {
			return t, errors.New("the trunk's password is not valid percent-encoding")
		}
	}
	var params string
	if i := strings.IndexAny(rest, ";?"); i >= 0 {
		if rest[i] == ';' {
			params, _, _ = strings.Cut(rest[i+1:], "?")
		}
		rest = rest[:i]
	}
	t.Transport = TransportUDP
	if t.SIPS {
		t.Transport = TransportTLS
	}
	for _, p := range strings.Split(params, ";") {
		k, v, _ := strings.Cut(p, "=")
		if !strings.EqualFold(strings.TrimSpace(k), "transport") {
			continue
		}
		switch v = strings.ToLower(strings.TrimSpace(v)); {
		case v == TransportUDP && t.SIPS:
			return t, errors.New("a sips: trunk is over TLS: transport=udp does not go with it")
		case v == TransportTCP && t.SIPS: // sips over TCP is TLS (RFC 3261 26.2.2)
		case v == TransportUDP || v == TransportTCP || v == TransportTLS:
			t.Transport = v
		default:
			return t, fmt.Errorf("the trunk's transport %q is not udp, tcp or tls", v)
		}
	}
	port := strconv.Itoa(DefaultTrunkPort)
	if t.Transport == TransportTLS {
		port = strconv.Itoa(DefaultTrunkTLSPort)
	}
	host := rest
	if h, p, err := net.SplitHostPort(rest); err == nil {
		host, port = h, p
	} else if strings.HasPrefix(rest, "[") && strings.HasSuffix(rest, "]") {
		host = rest[1 : len(rest)-1] // [IPv6] without a port
	}
	if net.ParseIP(host) == nil {
		return t, fmt.Errorf("the trunk's host %q is not an IP address (the line makes no DNS look-ups)", host)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n <= 0 || n > 65535 {
		return t, fmt.Errorf("the trunk's port %q is not valid", port)
	}
	t.Host, t.Port = host, n
	return t, nil
}

// Configured reports whether a trunk is set.
func (t Trunk) Configured() bool { return t.Host != "" }

// transport is the trunk's transport, udp when unset.
func (t Trunk) transport() string {
	if t.Transport == "" {
		return TransportUDP
	}
	return t.Transport
}

// String is the trunk without its password, with its transport:
// sip:USER@HOST:PORT;transport=T, or sips:USER@HOST:PORT.
func (t Trunk) String() string {
	if !t.Configured() {
		return ""
	}
	u := ""
	if t.User != "" {
		u = t.User + "@"
	}
	hp := net.JoinHostPort(t.Host, strconv.Itoa(t.Port))
	if t.SIPS {
		return fmt.Sprintf("sips:%s%s", u, hp)
	}
	return fmt.Sprintf("sip:%s%s;transport=%s", u, hp, t.transport())
}

// LogValue keeps the password out of every log line.
func (t Trunk) LogValue() slog.Value { return slog.StringValue(t.String()) }

// TrunkTLS is how the line checks a TLS trunk (sip.trunk_ca,
// sip.trunk_server_name) and the certificate it shows it (sip.trunk_cert,
// sip.trunk_key). The zero value trusts the system roots and checks the
// trunk's IP address.
type TrunkTLS struct {
	CAFile     string // PEM certificates trusted besides the system roots
	ServerName string // the name the trunk's certificate must hold; default the trunk's IP address
	CertFile   string // optional client certificate (PEM), with KeyFile
	KeyFile    string
}

// Config is the TLS client configuration of trunk t: the system roots and
// CAFile, the name checked, the client certificate. Never a skipped
// verification.
func (c TrunkTLS) Config(t Trunk) (*tls.Config, error) {
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if c.CAFile != "" {
		if err := AppendTrunkCA(roots, c.CAFile); err != nil {
			return nil, err
		}
	}
	conf := &tls.Config{RootCAs: roots, ServerName: c.ServerName, MinVersion: tls.VersionTLS12}
	if conf.ServerName == "" {
		conf.ServerName = t.Host
	}
	if c.CertFile != "" || c.KeyFile != "" {
		if c.CertFile == "" || c.KeyFile == "" {
			return nil, errors.New("a client certificate needs both its certificate and its key file")
		}
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("the trunk's client certificate: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}

// AppendTrunkCA adds the PEM certificates of file to pool; a file without
// any is an error.
func AppendTrunkCA(pool *x509.CertPool, file string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("the trunk's CA file: %w", err)
	}
	if !pool.AppendCertsFromPEM(b) {
		return fmt.Errorf("the trunk's CA file %s holds no PEM certificate", file)
	}
	return nil
}

// OutboundConfig are the trunk and the limits of outbound calls
// (docs/operations.md, "Outbound calls"). The zero value of a limit means
// its default.
type OutboundConfig struct {
	Trunk    Trunk
	TLS      TrunkTLS // a TLS trunk's certificate checks (Trunk.Transport "tls")
	CallerID string   // the From user of outbound calls; default the trunk's user

	MaxConcurrent int           // outbound calls ringing or in progress at once, default 4
	PerSecond     float64       // new outbound calls per second, default 1
	RingTimeout   time.Duration // an unanswered call is cancelled after this, default 30 s
	Retries       int           // further attempts after a busy, unanswered, unreachable one or a machine, default 2; -1: none
	Backoff       time.Duration // wait before the first retry, doubled for each next one, default 2 min
	MaxBackoff    time.Duration // the longest wait between attempts, default 30 min

	// Allowed says whether a call may be placed at a time (the working
	// calendar: tickets.Calendar.Open); nil allows any time.
	Allowed func(time.Time) bool

	// Machine turns on answering machine detection (package ivr/amd): an answered
	// call is listened to before the line speaks, and one a machine
	// answered ends as OutboundMachine. Off in the zero value.
	Machine MachineDetection
}

// Defaults of OutboundConfig.
const (
	DefaultOutboundConcurrent = 4
	DefaultOutboundPerSecond  = 1.0
	DefaultRingTimeout        = 30 * time.Second
	DefaultOutboundRetries    = 2
	DefaultOutboundBackoff    = 2 * time.Minute
	DefaultOutboundMaxBackoff = 30 * time.Minute
)

func (c OutboundConfig) withDefaults() OutboundConfig {
	if c.CallerID == "" {
		c.CallerID = c.Trunk.User
	}
	if c.MaxConcurrent <= 0 {
		c.MaxConcurrent = DefaultOutboundConcurrent
	}
	if c.PerSecond <= 0 {
		c.PerSecond = DefaultOutboundPerSecond
	}
	if c.RingTimeout <= 0 {
		c.RingTimeout = DefaultRingTimeout
	}
	switch {
	case c.Retries < 0:
		c.Retries = 0
	case c.Retries == 0:
		c.Retries = DefaultOutboundRetries
	}
	if c.Backoff <= 0 {
		c.Backoff = DefaultOutboundBackoff
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultOutboundMaxBackoff
	}
	c.Machine = c.Machine.WithDefaults()
	return c
}

// OutboundReason says how an outbound attempt ended. It is the result
// label of ivr_outbound_calls_total and the reason written on a ticket.
type OutboundReason string

// Outbound reasons.
const (
	OutboundAnswered     OutboundReason = "answered"
	OutboundBusy         OutboundReason = "busy"          // 486 Busy Here, 600 Busy Everywhere
	OutboundNoAnswer     OutboundReason = "no_answer"     // the ring timeout ran out (CANCEL sent), 480, 408
	OutboundAuthRefused  OutboundReason = "auth_refused"  // the trunk refused our credentials (401/407 again, 403)
	OutboundRejected     OutboundReason = "rejected"      // any other final refusal: 404, 603, 488...
	OutboundUnreachable  OutboundReason = "unreachable"   // no response from the trunk, a transport error
	OutboundOutsideHours OutboundReason = "outside_hours" // the working calendar does not allow a call now
	OutboundNoTrunk      OutboundReason = "no_trunk"      // no sip.trunk configured
	OutboundCancelled    OutboundReason = "cancelled"     // the requester gave up (engine shutdown)
	OutboundBadNumber    OutboundReason = "bad_number"    // not a phone number
	OutboundMachine      OutboundReason = "machine"       // answered by an answering machine (Machine): hung up, nothing said
)

// OutboundReasons are every reason, in the order the metrics list them.
var OutboundReasons = []OutboundReason{OutboundAnswered, OutboundBusy, OutboundNoAnswer, OutboundAuthRefused, OutboundRejected,
	OutboundUnreachable, OutboundOutsideHours, OutboundNoTrunk, OutboundCancelled, OutboundBadNumber, OutboundMachine}

// Retryable reports whether another attempt later may succeed: a busy or
// unanswered number, an answering machine, an unreachable trunk, a call
// outside the hours. Refused credentials, a refused or bad number are not
// retried.
func (r OutboundReason) Retryable() bool {
	switch r {
	case OutboundBusy, OutboundNoAnswer, OutboundMachine, OutboundUnreachable, OutboundOutsideHours:
		return true
	}
	return false
}

// OutboundError is an outbound attempt that was not answered: why, and
// the trunk's final SIP status when there was one.
type OutboundError struct {
	Reason OutboundReason
	Status int // 0 when no final response came
	Err    error
}

func (e *OutboundError) Error() string {
	s := "outbound call not answered: " + string(e.Reason)
	if e.Status != 0 {
		s += fmt.Sprintf(" (SIP %d)", e.Status)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *OutboundError) Unwrap() error { return e.Err }

// ReasonOfOutbound is the reason of an error from Originate or Dial
// (OutboundAnswered for nil).
func ReasonOfOutbound(err error) OutboundReason {
	if err == nil {
		return OutboundAnswered
	}
	var oe *OutboundError
	if errors.As(err, &oe) {
		return oe.Reason
	}
	return OutboundUnreachable
}

// classify turns the final response (or its absence) into a reason.
func classify(status int) OutboundReason {
	switch status {
	case 486, 600:
		return OutboundBusy
	case 480, 408:
		return OutboundNoAnswer
	case 401, 407, 403:
		return OutboundAuthRefused
	case 0:
		return OutboundUnreachable
	}
	return OutboundRejected
}

// OriginateRequest is one outbound call to place.
type OriginateRequest struct {
	Number string          // the number to call: digits, an optional leading +
	Flow   ivr.FlowRunner  // runs on the answered call; nil: the engine's flow
	Queued bool            // a transfer of the flow waits for an agent of the embedded queue
	OnRing func(ev string) // optional: "180", "183" as they come (tests, the console)

	place queue.Place // a callback's kept place: the answered call's transfer waits on it
}

// OutboundResult is an answered outbound call once it ended.
type OutboundResult struct {
	CallID   string
	Answered time.Time // when the 200 OK was acknowledged
	End      ivr.EndReason
}

// outbound holds the limits of outbound calls.
type outbound struct {
	cfg  OutboundConfig
	slot chan struct{} // one token per call ringing or in progress

	mu   sync.Mutex
	next time.Time // the earliest start of the next call (calls per second)
}

func newOutbound(cfg OutboundConfig) *outbound {
	cfg = cfg.withDefaults()
	return &outbound{cfg: cfg, slot: make(chan struct{}, cfg.MaxConcurrent)}
}

// acquire waits for a free outbound slot and for the pace of calls per
// second; release gives the slot back.
func (o *outbound) acquire(ctx context.Context) error {
	select {
	case o.slot <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	gap := time.Duration(float64(time.Second) / o.cfg.PerSecond)
	o.mu.Lock()
	now := time.Now()
	start := o.next
	if start.Before(now) {
		start = now
	}
	o.next = start.Add(gap)
	o.mu.Unlock()
	if wait := time.Until(start); wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			<-o.slot
			return ctx.Err()
		}
	}
	return nil
}

func (o *outbound) release() { <-o.slot }

// Originate places one call through the trunk, within the limits (it
// waits for a free slot and for the pace of calls per second), and once
// it is answered runs the flow on it until it ends. An attempt that is not
// answered returns an *OutboundError that says why; it is not retried
// here (Dial retries).
func (s *Server) Originate(ctx context.Context, req OriginateRequest) (OutboundResult, error) {
	res, err := s.originate(ctx, req)
	s.metrics.Outbound(string(ReasonOfOutbound(err)))
	return res, err
}

func (s *Server) originate(ctx context.Context, req OriginateRequest) (OutboundResult, error) {
	ob := s.out
	if !ob.cfg.Trunk.Configured() {
		return OutboundResult{}, &OutboundError{Reason: OutboundNoTrunk}
	}
	if !ivr.DialableNumber(req.Number) {
		return OutboundResult{}, &OutboundError{Reason: OutboundBadNumber}
	}
	if ob.cfg.Allowed != nil && !ob.cfg.Allowed(time.Now()) {
		return OutboundResult{}, &OutboundError{Reason: OutboundOutsideHours}
	}
	if err := ob.acquire(ctx); err != nil {
		return OutboundResult{}, &OutboundError{Reason: OutboundCancelled, Err: err}
	}
	defer ob.release()

	t := ob.cfg.Trunk
	uri := sip.Uri{Scheme: "sip", User: req.Number, Host: t.Host, Port: t.Port}
	if t.SIPS {
		uri.Scheme = "sips"
	}
	// The line's diago transports are its listeners, udp and tcp; a
	// request goes out over the transport it is marked with (sipgo's
	// transport layer picks the connection by it) and the dialog's ACK,
	// BYE, CANCEL and the INVITE sent again with credentials copy the
	// INVITE's mark. TLS leaves through the tcp listener's client, marked
	// TLS, with a Contact that says so.
	listener := TransportUDP
	if t.transport() != TransportUDP {
		listener = TransportTCP
	}
	dlg, err := s.dg.NewDialog(uri, diago.NewDialogOptions{Transport: listener})
	if err != nil {
		return OutboundResult{}, &OutboundError{Reason: OutboundUnreachable, Err: err}
	}
	defer dlg.Close()
	if t.transport() == TransportTLS {
		dlg.InviteRequest.SetTransport("TLS")
		contact := &dlg.UA.ContactHDR
		contact.Address.Scheme = uri.Scheme
		contact.Address.UriParams = sip.NewParams()
		contact.Address.UriParams.Add("transport", TransportTLS)
	}
	// The Call-ID is ours before the INVITE is built: the call record and
	// the in-dialog requests are found by it.
	id := sip.GenerateTagN(24) + "@govline-ivr"
	cid := sip.CallIDHeader(id)
	dlg.InviteRequest.AppendHeader(&cid)

	tr, err := s.eng.Begin(ivr.CallInfo{ID: id, Telephony: "sip", Caller: req.Number, Called: ob.cfg.CallerID, Start: time.Now()})
	if err != nil {
		return OutboundResult{}, &OutboundError{Reason: OutboundCancelled, Err: err}
	}
	e := &entry{tr: tr}
	s.mu.Lock()
	s.calls[id] = e
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.calls, id)
		s.mu.Unlock()
	}()
	defer tr.End(ivr.EndError) // safety net; a no-op once the call ended properly
	tr.Event("sip.originate", "via "+t.String())

	opts := diago.InviteClientOptions{
		Username: t.User, Password: t.Password,
		OnResponse: func(r *sip.Response) error {
			if r.StatusCode < 200 {
				code := strconv.Itoa(r.StatusCode)
				tr.Event("sip."+code, "")
				if req.OnRing != nil {
					req.OnRing(code)
				}
			} else if r.StatusCode == 401 || r.StatusCode == 407 {
				tr.Event("sip."+strconv.Itoa(r.StatusCode), "digest challenge")
			}
			return nil
		},
	}
	if ob.cfg.CallerID != "" {
		opts.WithCaller("", ob.cfg.CallerID, t.Host)
	}
	rctx, cancel := context.WithTimeout(ctx, ob.cfg.RingTimeout)
	err = dlg.Invite(rctx, opts)
	for try := 0; err != nil && try < 3 && strings.Contains(err.Error(), "address already in use"); try++ {
		// sipgo v1.7.2 may have the client bind the listener's port just
		// after the listener started: the request never left, so it is
		// sent again (see siptest.Invite).
		time.Sleep(50 * time.Millisecond)
		err = dlg.Invite(rctx, opts)
	}
	if err == nil {
		err = dlg.Ack(ctx)
	}
	rang := errors.Is(rctx.Err(), context.DeadlineExceeded) // before cancel, which sets Err for good
	cancel()
	if err != nil {
		oe := &OutboundError{Err: err}
		var de *sipgo.ErrDialogResponse
		switch {
		case errors.As(err, &de):
			oe.Status = de.Res.StatusCode
			oe.Reason = classify(oe.Status)
		case ctx.Err() != nil:
			oe.Reason = OutboundCancelled
		case rang:
			oe.Reason = OutboundNoAnswer
		default:
			oe.Reason = OutboundUnreachable
		}
		tr.Event("sip.originate.failed", fmt.Sprintf("%s (SIP %d)", oe.Reason, oe.Status))
		if why := tlsRefusal(err); why != "" {
			// No fallback to a clear-text transport: the call is not placed.
			s.log.Warn("outbound call: the TLS connection to the trunk failed, no call placed", "call_id", id, "trunk", t, "why", why)
		}
		attrs := []any{"call_id", id, "reason", oe.Reason, "status", oe.Status, "number", redact.Phone(req.Number)}
		if oe.Reason == OutboundUnreachable {
			attrs = append(attrs, "error", redact.Err(err))
		}
		s.log.Info("outbound call not answered", attrs...)
		tr.End(ivr.EndReason("outbound_" + string(oe.Reason)))
		return OutboundResult{CallID: tr.Info().ID}, oe
	}

	answered := time.Now()
	ms := dlg.MediaSession()
	if ms == nil {
		tr.End(ivr.EndError)
		return OutboundResult{CallID: id}, &OutboundError{Reason: OutboundRejected, Err: errors.New("answered without a media session")}
	}
	o, err := agreed(ms.CommonCodecs())
	if err != nil {
		hctx, hcancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = dlg.Hangup(hctx)
		hcancel()
		tr.End(ivr.EndNoCommonCodec)
		return OutboundResult{CallID: id}, &OutboundError{Reason: OutboundRejected, Err: err}
	}
	c := newLegCall(s, dlg, &dlg.DialogMedia, tr, o)
	e.mu.Lock()
	e.call = c
	e.mu.Unlock()
	tr.SetMedia(o.Audio.Name, c.rate)
	tr.Event("sip.200", fmt.Sprintf("codec %s/%d pt %d, telephone-event pt %d", o.Audio.Name, o.Audio.SampleRate, o.Audio.PayloadType, o.DTMF))
	stop := context.AfterFunc(c.ctx, func() {
		if ms := dlg.MediaSession(); ms != nil {
			_ = ms.StopRTP(1, 0)
		}
	})
	defer stop()
	c.start()
	if md := ob.cfg.Machine; md.Enabled {
		r, err := s.detectMachine(c, md)
		if err != nil { // the citizen hung up while the line listened
			reason := ivr.ReasonOf(err)
			c.cancel(ivr.End(reason, nil))
			c.wait()
			tr.End(reason)
			return OutboundResult{CallID: id, Answered: answered, End: reason}, nil
		}
		tr.Event("sip.amd", r.String())
		s.log.Info("outbound call: answering machine detection", "call_id", id, "verdict", r.Verdict.String(), "why", r.Why, "took", r.Took.Round(time.Millisecond))
		if r.Verdict == amd.Machine {
			// Nothing is said to a machine (privacy: a voicemail would
			// tell its listener the citizen has a request with us).
			hctx, hcancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := c.Hangup(hctx, ivr.EndReason("outbound_"+string(OutboundMachine))); err != nil {
				tr.Event("sip.bye.failed", redact.Text(err.Error()))
			}
			hcancel()
			c.wait()
			tr.End(ivr.EndReason("outbound_" + string(OutboundMachine)))
			return OutboundResult{CallID: id, Answered: answered}, &OutboundError{Reason: OutboundMachine}
		}
	}
	var served ivr.Call = c
	switch {
	case req.place != nil:
		served = callbackCall{call: c, place: req.place}
	case req.Queued && s.cfg.Queue.Queues != nil:
		served = queuedCall{c}
	}
	flow := req.Flow
	if flow == nil {
		flow = s.eng.Flow
	}
	reason := s.eng.ServeFlow(served, tr, flow)
	c.cancel(ivr.End(reason, nil))
	c.wait()
	return OutboundResult{CallID: tr.Info().ID, Answered: answered, End: reason}, nil
}

// tlsRefusal says why a TLS connection failed when err is one: the
// trunk's certificate not trusted or not for the trunk's name, a
// handshake refused; "" otherwise.
func tlsRefusal(err error) string {
	var (
		cv *tls.CertificateVerificationError
		ua x509.UnknownAuthorityError
		hn x509.HostnameError
		ci x509.CertificateInvalidError
		al tls.AlertError
		rh tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &cv):
		return "the trunk's certificate is not trusted: " + cv.Err.Error()
	case errors.As(err, &ua), errors.As(err, &hn), errors.As(err, &ci):
		return "the trunk's certificate is not trusted: " + err.Error()
	case errors.As(err, &al):
		return "the trunk refused the TLS handshake: " + al.Error()
	case errors.As(err, &rh):
		return "the trunk does not speak TLS on its port"
	case strings.Contains(err.Error(), "TLS handshake"):
		return err.Error()
	}
	return ""
}

// Attempt is one try of Dial.
type Attempt struct {
	At     time.Time
	Reason OutboundReason
	Status int
	CallID string
}

// Dial is Originate with the configured retries: a busy, unanswered or
// unreachable number is called again after the backoff (doubled each
// time, at most MaxBackoff), up to Retries more times. It returns every
// attempt, the last one's result and its error.
func (s *Server) Dial(ctx context.Context, req OriginateRequest, onAttempt func(Attempt)) ([]Attempt, OutboundResult, error) {
	cfg := s.out.cfg
	var attempts []Attempt
	wait := cfg.Backoff
	for i := 0; ; i++ {
		at := time.Now()
		res, err := s.Originate(ctx, req)
		a := Attempt{At: at, Reason: ReasonOfOutbound(err), CallID: res.CallID}
		var oe *OutboundError
		if errors.As(err, &oe) {
			a.Status = oe.Status
		}
		attempts = append(attempts, a)
		if onAttempt != nil {
			onAttempt(a)
		}
		if err == nil || !a.Reason.Retryable() || i >= cfg.Retries {
			return attempts, res, err
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return attempts, res, err
		}
		wait = min(wait*2, cfg.MaxBackoff)
	}
}

// Outbound is the outbound configuration in effect (defaults applied).
func (s *Server) Outbound() OutboundConfig { return s.out.cfg }
