package chat

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/govline/ivr/flows"
)

// texts are the chat's own sentences (the flow's come from its catalog).
var texts = map[string]map[string]string{
	"ro": {
		"yes": "Da", "no": "Nu",
		"idle":    "Conversația s-a încheiat din lipsă de activitate. Ne puteți scrie oricând din nou.",
		"end":     "Conversația s-a încheiat. Vă mulțumim!",
		"handoff": "Conversația a fost transmisă unui operator. Numărul solicitării dumneavoastră este %s.",
		"joined":  "Un operator s-a alăturat conversației.",
		"left":    "Cetățeanul a închis conversația.",
		"stopped": "Conversația s-a întrerupt: serverul de chat s-a oprit.",
	},
	"en": {
		"yes": "Yes", "no": "No",
		"idle":    "The conversation ended after a period of inactivity. You may write to us again at any time.",
		"end":     "The conversation has ended. Thank you!",
		"handoff": "The conversation was passed to an operator. Your request number is %s.",
		"joined":  "An operator has joined the conversation.",
		"left":    "The citizen closed the conversation.",
		"stopped": "The conversation was cut off: the chat server stopped.",
	},
}

func text(lang, key string) string {
	if t, ok := texts[lang]; ok {
		return t[key]
	}
	return texts["ro"][key]
}

// session is one citizen's conversation. Its flow runs on its own
// goroutine (owned by the Server); sockets attach and detach as the page
// reloads. mu guards the socket and the history.
type session struct {
	srv   *Server
	token string
	id    string
	lang  string
	in    chan flows.Input // typed answers, for the flow's Listen

	ctx    context.Context // ends when the flow must stop
	cancel context.CancelCauseFunc

	// resolved is closed (once) when the ticket the chat was handed off
	// with is resolved (read by the relay) while the citizen is still there.
	resolved     chan struct{}
	resolvedOnce sync.Once

	mu      sync.Mutex
	conn    *websocket.Conn
	gen     int         // which attach conn is
	history []msg       // what the citizen has seen, replayed on resume
	joined  bool        // the citizen was told an operator joined (the ticket taken, or an agent wrote)
	asking  *msg        // the question waiting for an answer
	gone    *time.Timer // ends the session when no socket comes back
}

var (
	_ flows.Channel = (*session)(nil)
	_ flows.Medium  = (*session)(nil)
)

// Medium names the channel for flows (call.channel).
func (ss *session) Medium() string { return "chat" }

// attach makes conn the session's socket: it gets the token and
// everything said so far.
func (ss *session) attach(conn *websocket.Conn) int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.conn != nil {
		ss.conn.CloseNow() // resumed elsewhere
	}
	if ss.gone != nil {
		ss.gone.Stop()
		ss.gone = nil
	}
	ss.conn = conn
	ss.gen++
	ss.write(msg{Type: "session", Token: ss.token, Lang: ss.lang})
	for _, m := range ss.history {
		ss.write(m)
	}
	if ss.asking != nil {
		ss.write(*ss.asking)
	}
	return ss.gen
}

// detach forgets conn (when still the session's socket) and gives the
// citizen the resume time to come back.
func (ss *session) detach(conn *websocket.Conn, gen int) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.gen != gen {
		return
	}
	ss.conn = nil
	ss.gone = time.AfterFunc(ss.srv.cfg.Resume, func() { ss.cancel(errGone) })
}

// send writes m to the socket, if any; kept ones are replayed on resume.
func (ss *session) send(m msg, keep bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if keep {
		ss.history = append(ss.history, m)
		if len(ss.history) > historyMax {
			ss.history = ss.history[len(ss.history)-historyMax:]
		}
	}
	ss.write(m)
}

// write sends m on the current socket; ss.mu held. A socket that fails is
// closed: its read loop ends and detaches it.
func (ss *session) write(m msg) {
	if ss.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ss.ctx, writeTimeout)
	defer cancel()
	if err := wsjson.Write(ctx, ss.conn, m); err != nil {
		ss.conn.CloseNow()
	}
}

// input hands a typed answer (or a button's key) to the flow.
func (ss *session) input(s string, key bool) {
	in := flows.Input{Mode: flows.InputSpeech, Text: s, Confidence: 1, Began: time.Now()}
	if key {
		in.Mode = flows.InputDTMF
	}
	shown := s
	if key { // the button's label, as the citizen saw it
		ss.mu.Lock()
		if ss.asking != nil {
			for _, o := range ss.asking.Options {
				if o.Key == s {
					shown = o.Label
				}
			}
		}
		ss.mu.Unlock()
	}
	if key {
		in.Shown = shown
	}
	select {
	case ss.in <- in:
		ss.srv.stats.messages.Add(1)
		ss.send(msg{Type: "you", Text: shown}, true)
	default:
		ss.refuse("busy")
	}
}

// refuse tells the citizen a message was refused (code, one of
// RefusalReasons) and counts it.
func (ss *session) refuse(code string) {
	ss.srv.refuse(code)
	ss.send(msg{Type: "error", Code: code}, false)
}

// Say sends the prompt as a message: its text, the digits as written.
func (ss *session) Say(ctx context.Context, p flows.Prompt) (flows.Played, error) {
	if err := ss.alive(ctx); err != nil {
		return flows.Played{}, err
	}
	t := p.Written()
	ss.send(msg{Type: "say", Text: t}, true)
	return flows.Played{Heard: t}, nil
}

// Listen shows the question's options and waits for the citizen's
// message, up to the idle time (a chat does not hurry the citizen as a
// phone line does: the question's no-input time does not apply).
func (ss *session) Listen(ctx context.Context, l flows.Listen) (flows.Input, error) {
	if err := ss.alive(ctx); err != nil {
		return flows.Input{}, err
	}
	q := msg{Type: "ask", Expect: string(l.Expect)}
	switch l.Expect {
	case flows.ExpectChoice:
		for _, o := range l.Options {
			switch {
			case o.Key != "" && o.Label != "":
				q.Options = append(q.Options, option{Key: o.Key, Label: o.Label})
			case o.Key != "": // a key alone (a rating from 1 to 5): the key is the label
				q.Options = append(q.Options, option{Key: o.Key, Label: o.Key})
			}
		}
	case flows.ExpectYesNo:
		q.Options = []option{{Key: "1", Label: text(l.Lang, "yes")}, {Key: "2", Label: text(l.Lang, "no")}}
	}
	ss.mu.Lock()
	ss.asking = &q
	ss.write(q)
	ss.mu.Unlock()
	defer func() {
		ss.mu.Lock()
		ss.asking = nil
		ss.mu.Unlock()
	}()
	idle := time.NewTimer(ss.srv.cfg.Idle)
	defer idle.Stop()
	select {
	case in := <-ss.in:
		if l.Expect == flows.ExpectDigits && in.Mode == flows.InputSpeech {
			if d := digitsOf(in.Text); d != "" {
				in.Mode, in.Text = flows.InputDTMF, d
			}
		}
		return in, nil
	case <-idle.C:
		ss.send(msg{Type: "end", Text: text(l.Lang, "idle")}, true)
		return flows.Input{}, errIdle
	case <-ctx.Done():
		return flows.Input{}, ss.alive(ctx)
	case <-ss.ctx.Done():
		return flows.Input{}, ss.alive(ctx)
	}
}

// alive reports the session's end as the flow expects it: ErrHangup
// (wrapped) once the citizen is gone, the context's error when ctx ends.
func (ss *session) alive(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if ss.ctx.Err() != nil {
		if c := context.Cause(ss.ctx); errors.Is(c, flows.ErrHangup) {
			return c
		}
		return errors.Join(flows.ErrHangup, context.Cause(ss.ctx))
	}
	return nil
}

// digitsOf is a typed number ("123 456", "12-34") as its digits, or "".
func digitsOf(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '.' || r == '/':
		default:
			return ""
		}
	}
	return b.String()
}

// runFlow runs the flow to its end and tells the citizen how it ended.
func (ss *session) runFlow() {
	f := flows.Facts{CallID: ss.id, Caller: "chat", Called: "chat", Lang: ss.lang}
	out := ss.srv.run.Run(ss.ctx, f, ss, ss.srv.svc)
	lang := out.Lang
	if lang == "" {
		lang = ss.lang
	}
	ss.srv.log.Info("chat ended", "call_id", ss.id, "outcome", string(out.Kind), "ticket", out.Ticket)
	switch {
	case out.Kind == flows.OutcomeCaller: // gone, or told why (idle)
	case out.Kind == flows.OutcomeTransfer:
		ss.srv.stats.handoffs.Add(1)
		handoff := msg{Type: "handoff", Ticket: out.Ticket, Text: strings.Replace(text(lang, "handoff"), "%s", out.Ticket, 1)}
		if out.Ticket == "" {
			ss.send(handoff, true)
		} else {
			ss.withAgents(out.Ticket, lang, handoff)
		}
	default:
		ss.send(msg{Type: "end", Text: text(lang, "end")}, true)
	}
	ss.mu.Lock()
	conn := ss.conn
	ss.mu.Unlock()
	switch {
	case conn == nil:
	case ss.ctx.Err() != nil: // the server is closing: no waiting for the browser's close reply
		conn.CloseNow()
	default: // outside mu: the close handshake needs the read loop, which detaches
		conn.Close(websocket.StatusNormalClosure, "ended")
	}
}

// withAgents tells the citizen of the handoff and keeps the conversation
// open for the agents: the citizen's messages go to the ticket's
// transcript (the console shows them live), the agents' come through
// Server.AnswerInChat, until the citizen is idle or gone, or the ticket is
// resolved (then the survey).
func (ss *session) withAgents(number, lang string, handoff msg) {
	ss.srv.mu.Lock()
	ss.srv.byTicket[number] = ss
	ss.srv.byCall[ss.id] = ss
	ss.srv.mu.Unlock()
	// Only now the citizen (and so an agent) learns the number: what an
	// agent writes from here on finds the chat.
	ss.send(handoff, true)
	defer func() {
		ss.srv.mu.Lock()
		if ss.srv.byTicket[number] == ss {
			delete(ss.srv.byTicket, number)
		}
		delete(ss.srv.byCall, ss.id)
		ss.srv.mu.Unlock()
	}()
	ss.mu.Lock()
	ss.lang = lang
	ss.mu.Unlock()
	idle := time.NewTimer(ss.srv.cfg.Idle)
	defer idle.Stop()
	for {
		select {
		case <-ss.resolved:
			ss.survey(number, lang)
			return
		case in := <-ss.in:
			idle.Reset(ss.srv.cfg.Idle)
			if ss.srv.svc.Transcript != nil {
				t := flows.Turn{Speaker: "caller", Text: in.Text, At: time.Now(), Began: in.Began, Mode: flows.InputSpeech, Confidence: 1}
				if err := ss.srv.svc.Transcript.Append(ss.ctx, ss.id, t); err != nil {
					ss.srv.log.Error("chat turn not kept", "call_id", ss.id, "err", err)
				}
			}
		case <-idle.C:
			ss.send(msg{Type: "end", Text: text(lang, "idle")}, true)
			ss.closing("idle", lang)
			return
		case <-ss.ctx.Done():
			// For the staff (who work in Romanian): the chat is over.
			if errors.Is(context.Cause(ss.ctx), errGone) {
				ss.closing("left", "ro")
			} else {
				ss.closing("stopped", "ro")
			}
			return
		}
	}
}

// ErrNoChat reports that a ticket has no chat open: the citizen left (or,
// without a Relay, the chat is on another engine).
var ErrNoChat = errors.New("no chat open for this ticket")

// AnswerInChat sends an agent's message to the citizen whose chat opened
// ticket number, and keeps it in the ticket's transcript. The first one
// (or, with a Relay, the ticket's assignment) tells the citizen that an
// operator joined. With a Relay the chat may be held by any engine of the
// line. Safe for concurrent use.
func (s *Server) AnswerInChat(ctx context.Context, number, actor, body string) error {
	if strings.TrimSpace(body) == "" || !utf8.ValidString(body) {
		return errors.New("empty or invalid message")
	}
	if s.cfg.Relay != nil && s.svc.Transcript != nil {
		return s.relayAnswer(ctx, number, body)
	}
	s.mu.Lock()
	ss := s.byTicket[number]
	s.mu.Unlock()
	if ss == nil {
		return ErrNoChat
	}
	if s.svc.Transcript != nil {
		if err := s.svc.Transcript.Append(ctx, ss.id, flows.Turn{Speaker: "agent", Text: body, At: time.Now()}); err != nil {
			return err
		}
	}
	ss.agentSays(body)
	return nil
}
