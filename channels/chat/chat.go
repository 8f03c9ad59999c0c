// Package chat is the web chat channel: the portal's chat widget talks to
// the engine over a WebSocket, and the same Lua flows that answer the phone
// answer it in writing (a flows.Channel whose prompts are messages and
// whose questions show their options as buttons).
//
// The protocol is JSON text messages. The browser sends
//
//	{"type":"hello","lang":"ro","token":""}  first: a new session, or the
//	                                          session of token (resume)
//	{"type":"text","text":"am pierdut buletinul"}  a typed answer
//	{"type":"key","key":"1"}                 a button (an option's key)
//
// and the server sends
//
//	{"type":"session","token":"..."}          the session's resume token
//	{"type":"say","text":"..."}              a message of the flow
//	{"type":"you","text":"..."}              the citizen's answer, as taken
//	{"type":"ask","expect":"choice","options":[{"key":"1","label":"..."}]}
//	{"type":"handoff","ticket":"..."}        the conversation went to the agents
//	{"type":"joined","text":"..."}           an agent has written (once)
//	{"type":"agent","text":"..."}            an agent's message
//	{"type":"end","text":"..."}              the session ended
//	{"type":"error","code":"too_long"}       a message refused (too_long,
//	                                          utf8, rate, busy, bad)
//
// Everything a message carries is text: the widget displays it with
// textContent, never as HTML.
package chat

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/limit"
)

// Defaults of Config.
const (
	DefaultIdle        = 10 * time.Minute // a session without a message from the citizen ends
	DefaultResume      = 2 * time.Minute  // a session whose socket closed waits this long for a resume
	DefaultMaxMessage  = 2000             // characters of one typed message
	DefaultPerSecond   = 5                // messages a second a session may send (burst: twice as many)
	DefaultNewSessions = 20               // new sessions a minute per client address
	callPrefix         = "chat-"          // a chat's call id (in transcripts and tickets) starts so
	maxFrame           = 16 << 10         // bytes of one WebSocket message; larger closes the socket (1009)
	writeTimeout       = 5 * time.Second
	historyMax         = 200 // messages kept for a resume
)

// Config is the chat listener's behaviour.
type Config struct {
	// Origins are the portal origins allowed to open a chat, as host
	// patterns ("portal.gov.ro", "*.gov.ro"); the listener's own host is
	// always allowed (the demo page). A browser from any other origin is
	// refused (403).
	Origins     []string
	Idle        time.Duration // DefaultIdle when 0
	Resume      time.Duration // DefaultResume when 0
	MaxMessage  int           // DefaultMaxMessage when 0
	PerSecond   int           // DefaultPerSecond when 0
	NewSessions int           // DefaultNewSessions when 0 (a minute, per client address)
	// Relay, when set, is the line's shared store: agents' messages and
	// assignments reach the citizen through it, from the console of any
	// engine (see Relay). nil: only this engine's console reaches its
	// chats, and "an operator joined" shows with the agent's first message.
	Relay Relay
	Poll  time.Duration // how often Relay is read; DefaultPoll when 0
}

func (c Config) withDefaults() Config {
	if c.Idle <= 0 {
		c.Idle = DefaultIdle
	}
	if c.Resume <= 0 {
		c.Resume = DefaultResume
	}
	if c.MaxMessage <= 0 {
		c.MaxMessage = DefaultMaxMessage
	}
	if c.PerSecond <= 0 {
		c.PerSecond = DefaultPerSecond
	}
	if c.NewSessions <= 0 {
		c.NewSessions = DefaultNewSessions
	}
	if c.Poll <= 0 {
		c.Poll = DefaultPoll
	}
	return c
}

// Runner runs a flow for one conversation (*flows.Runtime).
type Runner interface {
	Run(ctx context.Context, f flows.Facts, ch flows.Channel, svc flows.Services) flows.Outcome
}

var _ Runner = (*flows.Runtime)(nil)

// Server serves the chat: the WebSocket at /ws, the widget at /widget.js
// and /widget.css, and the demo page at /.
type Server struct {
	cfg  Config
	run  Runner
	svc  flows.Services
	log  *slog.Logger
	news *limit.Buckets

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	sessions map[string]*session
	byTicket map[string]*session // chats handed to the agents, by ticket number
	byCall   map[string]*session // the same, by the chat's call id
	wake     chan struct{}       // read the relay now

	stats stats
}

// stats are the server's counters (Stats).
type stats struct {
	started, resumed, handoffs, messages atomic.Int64
	refused                              [len(RefusalReasons)]atomic.Int64
}

// RefusalReasons are why a message or a session is refused, in Stats'
// order: the error codes the widget gets, then a socket from a foreign
// origin and a new session over the per-address limit.
var RefusalReasons = [...]string{"rate", "too_long", "utf8", "bad", "busy", "origin", "new_sessions"}

// Stats are the chat's volumes since the server started.
type Stats struct {
	Open     int              // sessions alive now (talking to the flow, or with the agents)
	Started  int64            // new sessions
	Resumed  int64            // sockets that resumed a session (a reload, a network drop)
	Handoffs int64            // conversations handed to the agents
	Messages int64            // messages and buttons taken from citizens
	Refused  map[string]int64 // by reason (RefusalReasons)
}

// Stats returns the chat's volumes. Safe for concurrent use.
func (s *Server) Stats() Stats {
	st := Stats{Open: s.Sessions(), Started: s.stats.started.Load(), Resumed: s.stats.resumed.Load(),
		Handoffs: s.stats.handoffs.Load(), Messages: s.stats.messages.Load(), Refused: map[string]int64{}}
	for i, r := range RefusalReasons {
		st.Refused[r] = s.stats.refused[i].Load()
	}
	return st
}

// refuse counts a refusal of reason (one of RefusalReasons).
func (s *Server) refuse(reason string) {
	for i, r := range RefusalReasons {
		if r == reason {
			s.stats.refused[i].Add(1)
		}
	}
}

// New returns a server running flows with r and svc. Close ends its
// sessions.
func New(cfg Config, r Runner, svc flows.Services) *Server {
	cfg = cfg.withDefaults()
	if svc.Log == nil {
		svc.Log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{cfg: cfg, run: r, svc: svc, log: svc.Log.With("channel", "chat"),
		news: limit.NewBuckets(cfg.NewSessions, 0), ctx: ctx, cancel: cancel, sessions: map[string]*session{},
		byTicket: map[string]*session{}, byCall: map[string]*session{}, wake: make(chan struct{}, 1)}
	if cfg.Relay != nil {
		s.wg.Add(1)
		go s.relay()
	}
	return s
}

// Close ends every session (their flows see the citizen gone) and waits
// for their flows to return.
func (s *Server) Close() {
	s.cancel()
	s.wg.Wait()
}

//go:embed static
var static embed.FS

// Handler serves the chat.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	sub, _ := fs.Sub(static, "static")
	files := http.FileServerFS(sub)
	mux.HandleFunc("GET /ws", s.serveWS)
	mux.Handle("GET /", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if r.URL.Path == "/" {
			w.Header().Set("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:")
		}
		files.ServeHTTP(w, r)
	}))
	return mux
}

// Sessions is the number of live sessions.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// msg is one protocol message, either way.
type msg struct {
	Type    string   `json:"type"`
	Text    string   `json:"text,omitempty"`
	Lang    string   `json:"lang,omitempty"`
	Token   string   `json:"token,omitempty"`
	Key     string   `json:"key,omitempty"`
	Expect  string   `json:"expect,omitempty"`
	Options []option `json:"options,omitempty"`
	Ticket  string   `json:"ticket,omitempty"`
	Code    string   `json:"code,omitempty"`
}

// option is a button: an option's key and label.
type option struct {
	Key   string `json:"key"`
	Label string `json:"label"`
}

func clientOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: s.cfg.Origins})
	if err != nil {
		s.refuse("origin")
		s.log.Info("chat refused", "err", err) // the origin, never what the citizen typed
		return
	}
	conn.SetReadLimit(maxFrame)
	defer conn.CloseNow()
	ctx := r.Context()

	// The first message says which session.
	hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	var hello msg
	err = readJSON(hctx, conn, &hello)
	cancel()
	if err != nil || hello.Type != "hello" {
		conn.Close(websocket.StatusPolicyViolation, "hello expected")
		return
	}
	ss := s.resume(hello.Token)
	if ss == nil {
		if _, ok := s.news.Take(clientOf(r), time.Now()); !ok {
			s.refuse("new_sessions")
			conn.Close(websocket.StatusTryAgainLater, "too many new sessions")
			return
		}
		ss = s.start(hello.Lang)
		s.stats.started.Add(1)
	} else {
		s.stats.resumed.Add(1)
	}
	gen := ss.attach(conn)
	defer ss.detach(conn, gen)

	rate := newBucket(s.cfg.PerSecond)
	for {
		typ, data, err := conn.Read(ctx)
		if err != nil {
			return // closed, too big (1009), or the server ends
		}
		if typ != websocket.MessageText || !utf8.Valid(data) {
			ss.refuse("utf8")
			continue
		}
		if !rate.take(time.Now()) {
			ss.refuse("rate")
			continue
		}
		var m msg
		if json.Unmarshal(data, &m) != nil {
			ss.refuse("bad")
			continue
		}
		switch m.Type {
		case "text":
			if utf8.RuneCountInString(m.Text) > s.cfg.MaxMessage {
				ss.refuse("too_long")
				continue
			}
			ss.input(m.Text, false)
		case "key":
			if len(m.Key) != 1 || !strings.Contains("0123456789*#", m.Key) {
				ss.refuse("bad")
				continue
			}
			ss.input(m.Key, true)
		default:
			ss.refuse("bad")
		}
	}
}

func readJSON(ctx context.Context, c *websocket.Conn, v any) error {
	typ, data, err := c.Read(ctx)
	if err != nil {
		return err
	}
	if typ != websocket.MessageText || !utf8.Valid(data) {
		return errors.New("not a text message")
	}
	return json.Unmarshal(data, v)
}

func (s *Server) resume(token string) *session {
	if token == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[token]
}

func newToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// start begins a session and its flow.
func (s *Server) start(lang string) *session {
	if lang != "en" {
		lang = "ro"
	}
	ctx, cancel := context.WithCancelCause(s.ctx)
	ss := &session{srv: s, token: newToken(), id: callPrefix + newToken()[:12], lang: lang,
		in: make(chan flows.Input, 4), ctx: ctx, cancel: cancel, resolved: make(chan struct{})}
	s.mu.Lock()
	s.sessions[ss.token] = ss
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.sessions, ss.token)
			s.mu.Unlock()
			cancel(errEnded)
		}()
		ss.runFlow()
	}()
	return ss
}

var (
	errEnded = errors.New("chat session ended")
	errGone  = fmt.Errorf("%w: the chat's socket closed and no resume came", flows.ErrHangup)
	errIdle  = fmt.Errorf("%w: the chat was idle", flows.ErrHangup)
)

// bucket is one socket's message rate: perSecond a second, twice as many
// at once. Used by the socket's own read loop only.
type bucket struct {
	rate, tokens float64
	at           time.Time
}

func newBucket(perSecond int) *bucket {
	return &bucket{rate: float64(perSecond), tokens: 2 * float64(perSecond)}
}

func (b *bucket) take(now time.Time) bool {
	if !b.at.IsZero() {
		b.tokens = min(2*b.rate, b.tokens+now.Sub(b.at).Seconds()*b.rate)
	}
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
