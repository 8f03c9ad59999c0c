// Package aritest is a fake Asterisk for tests: on loopback it speaks the
// part of ARI that the adapter in dialplan/ari uses, with the REST paths,
// parameters, status codes and WebSocket event JSON that Asterisk
// documents (rest-api/api-docs/*.json), and real RTP on the ExternalMedia
// leg (ulaw with payload type 0, or slin16 big-endian with payload type
// 118, as Asterisk's RTP stack sends them).
//
// It keeps books of what exists (channels, bridges, RTP sockets, the
// registered application), so a test can check that nothing leaks, and has
// knobs for faults: slow answers, a dropped WebSocket, a restart that
// forgets every channel, raw messages on the WebSocket.
package aritest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Asterisk is the fake server.
type Asterisk struct {
	User, Password, App string
	// SystemName, when set, prefixes channel ids as asterisk.conf's
	// systemname does ("pbx2-1700000000.1"): what keeps the ids of
	// several servers apart.
	SystemName string

	t        testing.TB
	addr     string
	delay    atomic.Int64 // ns added to every REST answer
	endFirst atomic.Bool  // a continue sends StasisEnd before its answer
	slow     sync.Map     // path substring -> time.Duration added to matching requests

	mu            sync.Mutex
	dial          func(endpoint string) string // SetDial
	greeting      func(rate int) []int16       // SetGreeting
	originated    []*Caller                    // answered originates, oldest first
	ln            net.Listener
	srv           *http.Server
	ws            *websocket.Conn
	channels      map[string]*Chan
	bridges       map[string]*Bridge
	requests      []Request
	registrations int
	badAuth       int
	seq           int
	rtpOpen       atomic.Int64
	frozen        atomic.Bool
	wg            sync.WaitGroup
}

// Request is one REST request the fake received.
type Request struct {
	Method string
	Path   string
	Query  url.Values
}

// Chan is a channel in the fake's books.
type Chan struct {
	ID, Name, State string
	Number, Exten   string
	Vars            map[string]string
	InStasis        bool
	Bridge          string
	// Where a continue sent it.
	Context, Extension string
	Priority           int
	Redirected         string
	external           *rtpPeer
	caller             *Caller
}

// Bridge is a bridge in the fake's books.
type Bridge struct {
	ID       string
	Channels []string
}

// New starts a fake Asterisk on a free loopback port. It stops at the end
// of the test.
func New(t testing.TB) *Asterisk {
	a := &Asterisk{User: "ivr", Password: "s3cret-ari-pass", App: "ivr", t: t,
		channels: map[string]*Chan{}, bridges: map[string]*Bridge{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a.addr = ln.Addr().String()
	a.serve(&freezable{Listener: ln, frozen: &a.frozen})
	t.Cleanup(a.Stop)
	return a
}

// URL is the base URL an adapter is configured with.
func (a *Asterisk) URL() string { return "http://" + a.addr }

func (a *Asterisk) serve(ln net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ari/", a.handle)
	srv := &http.Server{Handler: mux}
	a.mu.Lock()
	a.ln, a.srv = ln, srv
	a.mu.Unlock()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		_ = srv.Serve(ln)
	}()
}

// Stop is Asterisk going away: the WebSocket and listener close, and every
// channel, bridge and RTP socket is forgotten (a restart loses them).
func (a *Asterisk) Stop() {
	a.Thaw()
	a.mu.Lock()
	srv, ws := a.srv, a.ws
	a.srv, a.ws = nil, nil
	chans := a.channels
	a.channels, a.bridges = map[string]*Chan{}, map[string]*Bridge{}
	a.mu.Unlock()
	if ws != nil {
		ws.CloseNow()
	}
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = srv.Shutdown(ctx)
		cancel()
		_ = srv.Close()
	}
	for _, ch := range chans {
		if ch.external != nil {
			ch.external.close()
		}
		if ch.caller != nil {
			ch.caller.markGone()
		}
	}
	a.wg.Wait()
}

// Start brings a stopped Asterisk back on the same address.
func (a *Asterisk) Start() {
	var ln net.Listener
	var err error
	for range 50 {
		if ln, err = net.Listen("tcp", a.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		a.t.Fatalf("restart on %s: %v", a.addr, err)
	}
	a.serve(&freezable{Listener: ln, frozen: &a.frozen})
}

// Freeze makes Asterisk hang without closing anything: it stops reading
// from every TCP connection (REST and WebSocket, so pings go unanswered)
// until Thaw. A machine that froze or a network path that black-holes
// packets looks like this.
func (a *Asterisk) Freeze() { a.frozen.Store(true) }

// Thaw ends a Freeze.
func (a *Asterisk) Thaw() { a.frozen.Store(false) }

type freezable struct {
	net.Listener
	frozen *atomic.Bool
}

func (l *freezable) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &freezableConn{Conn: c, frozen: l.frozen}, nil
}

type freezableConn struct {
	net.Conn
	frozen *atomic.Bool
}

func (c *freezableConn) Read(p []byte) (int, error) {
	for c.frozen.Load() {
		time.Sleep(5 * time.Millisecond)
	}
	return c.Conn.Read(p)
}

// DropWebSocket closes the application's WebSocket, nothing else (a
// network blip).
func (a *Asterisk) DropWebSocket() {
	a.mu.Lock()
	ws := a.ws
	a.ws = nil
	a.mu.Unlock()
	if ws != nil {
		ws.CloseNow()
	}
}

// SetDelay makes every REST answer wait d.
func (a *Asterisk) SetDelay(d time.Duration) { a.delay.Store(int64(d)) }

// SetDelayFor makes the requests whose method and path ("POST /bridges")
// start with prefix wait d before they are carried out, as a loaded
// Asterisk does: the request takes effect late, after a client may have
// given up on it. d = 0 removes the delay.
func (a *Asterisk) SetDelayFor(prefix string, d time.Duration) {
	if d == 0 {
		a.slow.Delete(prefix)
		return
	}
	a.slow.Store(prefix, d)
}

// SetStasisEndFirst makes a continue end the channel's Stasis (the
// StasisEnd event) before it answers the request, as a busy Asterisk
// does about one time in two.
func (a *Asterisk) SetStasisEndFirst(on bool) { a.endFirst.Store(on) }

// Orphan creates an ExternalMedia channel (kind "channel") or a bridge
// (kind "bridge") with the given id that no call owns, as a crashed engine
// leaves them.
func (a *Asterisk) Orphan(kind, id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if kind == "bridge" {
		a.bridges[id] = &Bridge{ID: id}
		return
	}
	a.channels[id] = &Chan{ID: id, Name: "UnicastRTP/127.0.0.1:9-0x1", State: "Up", InStasis: true}
}

// Registrations counts WebSocket connections that registered the app.
func (a *Asterisk) Registrations() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.registrations
}

// Registered reports whether the application has a WebSocket now.
func (a *Asterisk) Registered() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ws != nil
}

// BadAuth counts requests refused with 401.
func (a *Asterisk) BadAuth() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.badAuth
}

// Requests returns the REST requests received so far.
func (a *Asterisk) Requests() []Request {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Request(nil), a.requests...)
}

// Books counts what exists: channels in the application or in a bridge
// (callers still in the dialplan after a continue are not counted),
// bridges, and open ExternalMedia RTP sockets.
func (a *Asterisk) Books() (channels, bridges, rtpSockets int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, ch := range a.channels {
		if ch.InStasis || ch.Bridge != "" {
			channels++
		}
	}
	return channels, len(a.bridges), int(a.rtpOpen.Load())
}

// Channel returns a copy of a channel's state, or false.
func (a *Asterisk) Channel(id string) (Chan, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ch, ok := a.channels[id]
	if !ok {
		return Chan{}, false
	}
	c := *ch
	c.Vars = map[string]string{}
	for k, v := range ch.Vars {
		c.Vars[k] = v
	}
	return c, true
}

// SendRaw writes one raw text message on the application's WebSocket.
func (a *Asterisk) SendRaw(msg string) error {
	a.mu.Lock()
	ws := a.ws
	a.mu.Unlock()
	if ws == nil {
		return fmt.Errorf("no application connected")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return ws.Write(ctx, websocket.MessageText, []byte(msg))
}

// event sends an ARI event (type plus fields) to the application.
func (a *Asterisk) event(typ string, fields map[string]any) {
	m := map[string]any{
		"type": typ, "application": a.App, "asterisk_id": "52:54:00:12:34:56",
		"timestamp": time.Now().UTC().Format("2006-01-02T15:04:05.000-0700"),
	}
	for k, v := range fields {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	_ = a.SendRaw(string(b))
}

// channelJSON is ARI's Channel model.
func channelJSON(ch *Chan) map[string]any {
	m := map[string]any{
		"id": ch.ID, "name": ch.Name, "state": ch.State,
		"caller":       map[string]string{"name": "", "number": ch.Number},
		"connected":    map[string]string{"name": "", "number": ""},
		"accountcode":  "",
		"dialplan":     map[string]any{"context": "from-trunk", "exten": ch.Exten, "priority": 3, "app_name": "Stasis", "app_data": "ivr"},
		"creationtime": time.Now().UTC().Format("2006-01-02T15:04:05.000-0700"),
		"language":     "ro",
	}
	if ch.external != nil {
		m["channelvars"] = map[string]string{
			"UNICASTRTP_LOCAL_ADDRESS": "127.0.0.1",
			"UNICASTRTP_LOCAL_PORT":    strconv.Itoa(ch.external.port()),
		}
	}
	return m
}

func (a *Asterisk) authorized(r *http.Request) bool {
	u, p, ok := r.BasicAuth()
	if ok && u == a.User && p == a.Password {
		return true
	}
	if key := r.URL.Query().Get("api_key"); key == a.User+":"+a.Password {
		return true
	}
	return false
}

func reply(w http.ResponseWriter, status int, body any) {
	if body == nil {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func msg(s string) map[string]string { return map[string]string{"message": s} }

func (a *Asterisk) handle(w http.ResponseWriter, r *http.Request) {
	if !a.authorized(r) {
		a.mu.Lock()
		a.badAuth++
		a.mu.Unlock()
		w.Header().Set("WWW-Authenticate", `Basic realm="Asterisk REST Interface"`)
		reply(w, http.StatusUnauthorized, msg("Authentication required"))
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/ari")
	if path == "/events" {
		a.events(w, r)
		return
	}
	_ = r.ParseForm() // query parameters, like Asterisk's http server
	a.mu.Lock()
	a.requests = append(a.requests, Request{Method: r.Method, Path: path, Query: r.Form})
	a.mu.Unlock()
	d := time.Duration(a.delay.Load())
	a.slow.Range(func(k, v any) bool {
		if strings.HasPrefix(r.Method+" "+path, k.(string)) {
			d += v.(time.Duration)
		}
		return true
	})
	if d > 0 {
		// Asterisk carries out a request even when the client gave up
		// waiting for its answer.
		time.Sleep(d)
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case r.Method == "GET" && path == "/channels":
		a.mu.Lock()
		list := []map[string]any{}
		for _, ch := range a.channels {
			list = append(list, channelJSON(ch))
		}
		a.mu.Unlock()
		reply(w, 200, list)
	case r.Method == "GET" && path == "/bridges":
		a.mu.Lock()
		list := []map[string]any{}
		for _, b := range a.bridges {
			list = append(list, bridgeJSON(b))
		}
		a.mu.Unlock()
		reply(w, 200, list)
	case r.Method == "GET" && path == "/asterisk/info":
		reply(w, 200, map[string]any{"system": map[string]string{"version": "20.10.0", "entity_id": "52:54:00:12:34:56"}})
	case r.Method == "POST" && path == "/channels/externalMedia":
		a.externalMedia(w, r)
	case r.Method == "POST" && path == "/channels":
		a.originate(w, r)
	case parts[0] == "channels" && len(parts) >= 2:
		a.channel(w, r, parts[1], parts[2:])
	case r.Method == "POST" && path == "/bridges":
		a.createBridge(w, r)
	case parts[0] == "bridges" && len(parts) >= 2:
		a.bridge(w, r, parts[1], parts[2:])
	default:
		reply(w, 404, msg("Resource not found"))
	}
}

func (a *Asterisk) events(w http.ResponseWriter, r *http.Request) {
	if app := r.URL.Query().Get("app"); app != a.App {
		reply(w, 400, msg("Invalid application provided in param [app]."))
		return
	}
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	a.mu.Lock()
	old := a.ws
	a.ws = ws
	a.registrations++
	a.mu.Unlock()
	if old != nil {
		old.CloseNow()
	}
	// Read until the client goes (pings are answered by the library).
	for {
		if _, _, err := ws.Read(context.Background()); err != nil {
			break
		}
	}
	a.mu.Lock()
	if a.ws == ws {
		a.ws = nil
	}
	a.mu.Unlock()
}

func (a *Asterisk) lookup(id string) *Chan {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.channels[id]
}

func (a *Asterisk) channel(w http.ResponseWriter, r *http.Request, id string, rest []string) {
	ch := a.lookup(id)
	if ch == nil {
		reply(w, 404, msg("Channel not found"))
		return
	}
	op := ""
	if len(rest) > 0 {
		op = rest[0]
	}
	switch {
	case r.Method == "GET" && op == "":
		a.mu.Lock()
		j := channelJSON(ch)
		a.mu.Unlock()
		reply(w, 200, j)
	case r.Method == "DELETE" && op == "":
		reason := r.Form.Get("reason")
		switch reason {
		case "", "normal", "busy", "congestion", "no_answer", "timeout", "rejected", "unallocated", "normal_unspecified", "number_incomplete", "codec_mismatch", "interworking", "failure", "answered_elsewhere":
		default:
			reply(w, 400, msg("Invalid reason for hangup provided"))
			return
		}
		reply(w, 204, nil)
		a.destroy(ch, 16, "Normal Clearing")
	case r.Method == "POST" && op == "answer":
		a.mu.Lock()
		ch.State = "Up"
		j := channelJSON(ch)
		a.mu.Unlock()
		reply(w, 204, nil)
		a.event("ChannelStateChange", map[string]any{"channel": j})
	case r.Method == "POST" && op == "variable":
		v := r.Form.Get("variable")
		if v == "" {
			reply(w, 400, msg("Variable name is required"))
			return
		}
		a.mu.Lock()
		if ch.Vars == nil {
			ch.Vars = map[string]string{}
		}
		ch.Vars[v] = r.Form.Get("value")
		j := channelJSON(ch)
		a.mu.Unlock()
		reply(w, 204, nil)
		a.event("ChannelVarset", map[string]any{"channel": j, "variable": v, "value": r.Form.Get("value")})
	case r.Method == "POST" && op == "continue":
		a.mu.Lock()
		if !ch.InStasis {
			a.mu.Unlock()
			reply(w, 409, msg("Channel not in Stasis application"))
			return
		}
		ch.Context, ch.Extension = r.Form.Get("context"), r.Form.Get("extension")
		ch.Priority, _ = strconv.Atoi(r.Form.Get("priority"))
		a.mu.Unlock()
		first := a.endFirst.Load()
		if !first {
			reply(w, 204, nil)
		}
		a.leaveBridge(ch)
		a.mu.Lock()
		ch.InStasis = false
		j := channelJSON(ch)
		a.mu.Unlock()
		a.event("StasisEnd", map[string]any{"channel": j})
		if first {
			time.Sleep(50 * time.Millisecond) // the event reaches the client before the answer
			reply(w, 204, nil)
		}
	case r.Method == "POST" && op == "redirect":
		ep := r.Form.Get("endpoint")
		if ep == "" {
			reply(w, 400, msg("Required parameter 'endpoint' not provided"))
			return
		}
		a.mu.Lock()
		ch.Redirected = ep
		a.mu.Unlock()
		reply(w, 204, nil)
		a.destroy(ch, 16, "Normal Clearing")
	default:
		reply(w, 404, msg("Resource not found"))
	}
}

// destroy ends a channel as Asterisk reports it: it leaves its bridge,
// StasisEnd (if in the application), ChannelDestroyed.
func (a *Asterisk) destroy(ch *Chan, cause int, txt string) {
	a.leaveBridge(ch)
	a.mu.Lock()
	if _, ok := a.channels[ch.ID]; !ok {
		a.mu.Unlock()
		return
	}
	delete(a.channels, ch.ID)
	inStasis := ch.InStasis
	ch.InStasis = false
	ch.State = "Down"
	j := channelJSON(ch)
	a.mu.Unlock()
	if ch.external != nil {
		ch.external.close()
	}
	if ch.caller != nil {
		ch.caller.markGone()
	}
	if inStasis {
		a.event("StasisEnd", map[string]any{"channel": j})
	}
	a.event("ChannelDestroyed", map[string]any{"channel": j, "cause": cause, "cause_txt": txt})
}

func (a *Asterisk) leaveBridge(ch *Chan) {
	a.mu.Lock()
	b := a.bridges[ch.Bridge]
	ch.Bridge = ""
	if b == nil {
		a.mu.Unlock()
		return
	}
	for i, id := range b.Channels {
		if id == ch.ID {
			b.Channels = append(b.Channels[:i], b.Channels[i+1:]...)
			break
		}
	}
	j := channelJSON(ch)
	bj := bridgeJSON(b)
	a.mu.Unlock()
	a.updateMedia(b)
	a.event("ChannelLeftBridge", map[string]any{"channel": j, "bridge": bj})
}

func bridgeJSON(b *Bridge) map[string]any {
	return map[string]any{"id": b.ID, "technology": "simple_bridge", "bridge_type": "mixing", "bridge_class": "stasis",
		"creator": "Stasis", "name": "", "channels": append([]string{}, b.Channels...), "creationtime": time.Now().UTC().Format("2006-01-02T15:04:05.000-0700"), "video_mode": "talker"}
}

func (a *Asterisk) createBridge(w http.ResponseWriter, r *http.Request) {
	id := r.Form.Get("bridgeId")
	if id == "" {
		a.mu.Lock()
		a.seq++
		id = fmt.Sprintf("bridge-%d", a.seq)
		a.mu.Unlock()
	}
	for _, t := range strings.Split(r.Form.Get("type"), ",") {
		switch t {
		case "", "mixing", "holding", "dtmf_events", "proxy_media", "video_sfu", "video_single", "sdp_label":
		default:
			reply(w, 400, msg("Invalid bridge type"))
			return
		}
	}
	a.mu.Lock()
	if _, dup := a.bridges[id]; dup {
		a.mu.Unlock()
		reply(w, 409, msg("Bridge with this ID already exists"))
		return
	}
	b := &Bridge{ID: id}
	a.bridges[id] = b
	j := bridgeJSON(b)
	a.mu.Unlock()
	reply(w, 200, j)
	a.event("BridgeCreated", map[string]any{"bridge": j})
}

func (a *Asterisk) bridge(w http.ResponseWriter, r *http.Request, id string, rest []string) {
	a.mu.Lock()
	b := a.bridges[id]
	a.mu.Unlock()
	if b == nil {
		reply(w, 404, msg("Bridge not found"))
		return
	}
	op := ""
	if len(rest) > 0 {
		op = rest[0]
	}
	switch {
	case r.Method == "DELETE" && op == "":
		a.mu.Lock()
		ids := append([]string(nil), b.Channels...)
		a.mu.Unlock()
		for _, cid := range ids {
			if ch := a.lookup(cid); ch != nil {
				a.leaveBridge(ch)
			}
		}
		a.mu.Lock()
		delete(a.bridges, id)
		j := bridgeJSON(b)
		a.mu.Unlock()
		reply(w, 204, nil)
		a.event("BridgeDestroyed", map[string]any{"bridge": j})
	case r.Method == "POST" && op == "addChannel":
		ids := strings.Split(r.Form.Get("channel"), ",")
		var chans []*Chan
		for _, cid := range ids {
			ch := a.lookup(cid)
			if ch == nil {
				reply(w, 400, msg("Channel not found"))
				return
			}
			if !ch.InStasis {
				reply(w, 422, msg("Channel not in Stasis application"))
				return
			}
			chans = append(chans, ch)
		}
		a.mu.Lock()
		for _, ch := range chans {
			ch.Bridge = id
			b.Channels = append(b.Channels, ch.ID)
		}
		bj := bridgeJSON(b)
		js := make([]map[string]any, len(chans))
		for i, ch := range chans {
			js[i] = channelJSON(ch)
		}
		a.mu.Unlock()
		reply(w, 204, nil)
		for _, j := range js {
			a.event("ChannelEnteredBridge", map[string]any{"channel": j, "bridge": bj})
		}
		a.updateMedia(b)
	default:
		reply(w, 404, msg("Resource not found"))
	}
}

// updateMedia connects a bridge's caller to its ExternalMedia peer while
// both are in it.
func (a *Asterisk) updateMedia(b *Bridge) {
	a.mu.Lock()
	var caller *Caller
	var ext *rtpPeer
	for _, id := range b.Channels {
		if ch := a.channels[id]; ch != nil {
			if ch.caller != nil {
				caller = ch.caller
			}
			if ch.external != nil {
				ext = ch.external
			}
		}
	}
	a.mu.Unlock()
	if caller != nil && ext != nil {
		caller.attach(ext)
	}
}

func (a *Asterisk) externalMedia(w http.ResponseWriter, r *http.Request) {
	f := r.Form
	app, host, format := f.Get("app"), f.Get("external_host"), f.Get("format")
	if app == "" || host == "" || format == "" {
		reply(w, 400, msg("app, external_host and format are required"))
		return
	}
	if app != a.App {
		reply(w, 400, msg("Invalid application"))
		return
	}
	if format != "ulaw" && format != "slin16" {
		reply(w, 422, msg("Unsupported format"))
		return
	}
	for k, want := range map[string]string{"encapsulation": "rtp", "transport": "udp", "connection_type": "client", "direction": "both"} {
		if v := f.Get(k); v != "" && v != want {
			reply(w, 501, msg(k+" "+v+" not supported"))
			return
		}
	}
	dst, err := net.ResolveUDPAddr("udp", host)
	if err != nil {
		reply(w, 400, msg("external_host is not host:port"))
		return
	}
	peer, err := newRTPPeer(dst, format, &a.rtpOpen)
	if err != nil {
		reply(w, 500, msg("Could not create RTP instance"))
		return
	}
	id := f.Get("channelId")
	a.mu.Lock()
	if id == "" {
		a.seq++
		id = fmt.Sprintf("1700000000.%d", 1000+a.seq)
	}
	if _, dup := a.channels[id]; dup {
		a.mu.Unlock()
		peer.close()
		reply(w, 409, msg("Channel with this ID already exists"))
		return
	}
	ch := &Chan{ID: id, Name: fmt.Sprintf("UnicastRTP/%s-0x%x", host, rand.Uint32()), State: "Up", external: peer}
	a.channels[id] = ch
	j := channelJSON(ch)
	a.mu.Unlock()
	reply(w, 200, j)
	// As Asterisk does, the channel enters the application on another
	// thread, after the answer: until then a bridge refuses it (422).
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		time.Sleep(30 * time.Millisecond)
		a.mu.Lock()
		if a.channels[id] != ch {
			a.mu.Unlock()
			return
		}
		ch.InStasis = true
		j := channelJSON(ch)
		a.mu.Unlock()
		a.event("StasisStart", map[string]any{"channel": j, "args": []string{}})
	}()
}

// Call places a call from number to exten into the application: the
// caller's channel is created and StasisStart is sent. Its audio flows
// once the application bridges it with an ExternalMedia channel.
func (a *Asterisk) Call(number, exten string) *Caller {
	// Stasis() fails while the application is not registered: wait for
	// the WebSocket the way a test waits for the line to be up.
	for i := 0; i < 500 && !a.Registered(); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	a.mu.Lock()
	a.seq++
	id := fmt.Sprintf("1700000000.%d", a.seq)
	if a.SystemName != "" {
		id = a.SystemName + "-" + id
	}
	c := &Caller{a: a, ID: id, send: make(chan []int16, 1000), gone: make(chan struct{})}
	ch := &Chan{ID: id, Name: fmt.Sprintf("PJSIP/trunk-%08x", a.seq), State: "Ring", Number: number, Exten: exten, InStasis: true, caller: c}
	a.channels[id] = ch
	j := channelJSON(ch)
	a.mu.Unlock()
	a.event("StasisStart", map[string]any{"channel": j, "args": []string{}})
	return c
}

// originate is POST /channels as Asterisk 20 documents it: endpoint
// (required), app or extension (one required), appArgs, callerId,
// timeout (seconds, default 30), channelId. The channel answers as Dial
// says; answered, it enters the application (StasisStart with appArgs).
func (a *Asterisk) originate(w http.ResponseWriter, r *http.Request) {
	endpoint := r.Form.Get("endpoint")
	if endpoint == "" {
		reply(w, 400, msg("Endpoint must be specified"))
		return
	}
	app, ext := r.Form.Get("app"), r.Form.Get("extension")
	if app == "" && ext == "" {
		reply(w, 400, msg("Application or extension must be specified"))
		return
	}
	if app != "" && app != a.App {
		reply(w, 400, msg("Application not registered"))
		return
	}
	timeout := 30
	if v := r.Form.Get("timeout"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			reply(w, 400, msg("timeout: not an integer"))
			return
		}
		timeout = n
	}
	number := r.Form.Get("callerId")
	if i := strings.IndexByte(number, '<'); i >= 0 {
		number = strings.TrimSuffix(number[i+1:], ">")
	}
	a.mu.Lock()
	a.seq++
	id := r.Form.Get("channelId")
	if id == "" {
		id = fmt.Sprintf("1700000000.%d", a.seq)
	}
	if _, dup := a.channels[id]; dup {
		a.mu.Unlock()
		reply(w, 409, msg("Channel with given unique ID already exists"))
		return
	}
	exten := endpoint
	if i := strings.IndexByte(exten, '/'); i >= 0 {
		exten = exten[i+1:]
	}
	exten, _, _ = strings.Cut(exten, "@")
	ch := &Chan{ID: id, Name: fmt.Sprintf("PJSIP/trunk-%08x", a.seq), State: "Down", Number: number, Exten: exten}
	a.channels[id] = ch
	j := channelJSON(ch)
	a.mu.Unlock()
	reply(w, 200, j)

	how := "answer"
	a.mu.Lock()
	dial, greeting := a.dial, a.greeting
	a.mu.Unlock()
	if dial != nil {
		how = dial(endpoint)
	}
	var args []string
	if v := r.Form.Get("appArgs"); v != "" {
		args = strings.Split(v, ",")
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		time.Sleep(20 * time.Millisecond) // ringing
		switch how {
		case "busy":
			a.destroy(ch, 17, "User busy")
			return
		case "noanswer":
			time.Sleep(min(time.Duration(timeout)*time.Second, 300*time.Millisecond))
			a.destroy(ch, 19, "No user responding")
			return
		}
		c := &Caller{a: a, ID: id, send: make(chan []int16, 1000), gone: make(chan struct{}), greeting: greeting}
		a.mu.Lock()
		ch.caller, ch.State, ch.InStasis = c, "Up", true
		a.originated = append(a.originated, c)
		j := channelJSON(ch)
		a.mu.Unlock()
		a.event("StasisStart", map[string]any{"channel": j, "args": append([]string{}, args...)})
	}()
}

// SetDial says how the far end of an originated channel (POST /channels)
// answers its endpoint: "answer" (the default, nil), "busy" (cause 17) or
// "noanswer" (cause 19 after the timeout, at most 300 ms here).
func (a *Asterisk) SetDial(f func(endpoint string) string) {
	a.mu.Lock()
	a.dial = f
	a.mu.Unlock()
}

// SetGreeting makes the far end of each answered originate say what f
// returns for the media's rate (at most 20 s) as soon as it is bridged,
// then silence, as a voicemail or a person answering does. f runs on the
// fake's goroutines: it must not stop the test (render before).
func (a *Asterisk) SetGreeting(f func(rate int) []int16) {
	a.mu.Lock()
	a.greeting = f
	a.mu.Unlock()
}

// Originated is the far end of each answered originate, oldest first.
func (a *Asterisk) Originated() []*Caller {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]*Caller(nil), a.originated...)
}
