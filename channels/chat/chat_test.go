package chat_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/govline/ivr/channels/chat"
	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/flows/kb"
	"github.com/govline/ivr/store"
	"github.com/govline/ivr/tickets"
)

// rig is a chat server running the shipped flows on the real services:
// the ticket store (SQLite), its transcript, the knowledge base index.
type rig struct {
	srv *chat.Server
	web *httptest.Server
	st  *tickets.Store
}

func newRig(t *testing.T, cfg chat.Config, flowsDir string) *rig {
	t.Helper()
	// A Tuesday, 12:00 in Bucharest: operators at work.
	return newRigAt(t, cfg, flowsDir, time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC))
}

func newRigAt(t *testing.T, cfg chat.Config, flowsDir string, at time.Time) *rig {
	t.Helper()
	return newRigOn(t, cfg, flowsDir, at, "", false)
}

// newRigOn is a rig on the store at url (a new SQLite file when ""): two
// rigs on one url are two engines of one line. With relay, the store is
// the chat's Relay.
func newRigOn(t *testing.T, cfg chat.Config, flowsDir string, at time.Time, url string, relay bool) *rig {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	if url == "" {
		url = store.SQLiteURL(tickets.DBPath(dir))
	}
	db, err := store.Open(ctx, url, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st := tickets.New(db)
	ix, err := kb.Open(kb.IndexPath(dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	if _, err := ix.ImportDir(ctx, filepath.Join("..", "..", "flows", "kb")); err != nil {
		t.Fatal(err)
	}
	st.SetClock(func() time.Time { return at })
	rt, err := flows.Load(flowsDir, flows.Config{})
	if err != nil {
		t.Fatal(err)
	}
	svc := flows.Services{KB: flows.KBIndex{Index: ix}, Desk: flows.TicketDesk{Store: st},
		Transcript: flows.TicketTranscript{Store: st}, Calendar: tickets.DefaultCalendar(),
		Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return at }}
	if relay {
		cfg.Relay = st
	}
	srv := chat.New(cfg, rt, svc)
	web := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { web.Close(); srv.Close() })
	return &rig{srv: srv, web: web, st: st}
}

type msg struct {
	Type    string `json:"type"`
	Text    string `json:"text,omitempty"`
	Lang    string `json:"lang,omitempty"`
	Token   string `json:"token,omitempty"`
	Key     string `json:"key,omitempty"`
	Expect  string `json:"expect,omitempty"`
	Options []struct {
		Key   string `json:"key"`
		Label string `json:"label"`
	} `json:"options,omitempty"`
	Ticket string `json:"ticket,omitempty"`
	Code   string `json:"code,omitempty"`
}

type client struct {
	t    *testing.T
	c    *websocket.Conn
	seen []msg
}

func (r *rig) dial(t *testing.T, origin, token string) (*client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(r.web.URL, "http")+"/ws", &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(2 << 20)
	t.Cleanup(func() { c.CloseNow() })
	cl := &client{t: t, c: c}
	cl.send(msg{Type: "hello", Lang: "ro", Token: token})
	return cl, nil
}

func (c *client) send(m msg) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := wsjson.Write(ctx, c.c, m); err != nil {
		c.t.Fatal(err)
	}
}

// until reads messages until one of type typ, and returns it.
func (c *client) until(typ string) msg {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		var m msg
		if err := wsjson.Read(ctx, c.c, &m); err != nil {
			c.t.Fatalf("waiting for %s: %v; seen %+v", typ, err, c.seen)
		}
		c.seen = append(c.seen, m)
		if m.Type == typ {
			return m
		}
	}
}

func (c *client) said() string {
	var b strings.Builder
	for _, m := range c.seen {
		b.WriteString(m.Type + ": " + m.Text + "\n")
	}
	return b.String()
}

// A citizen asks the shipped main.lua in writing: the knowledge base's
// answer comes as a message, the menu's options as buttons, and asking
// for an operator opens a ticket on the portal channel whose transcript
// holds the whole conversation.
func TestChatAnswersFromKnowledgeBaseAndHandsOff(t *testing.T) {
	start := time.Now()
	r := newRig(t, chat.Config{}, filepath.Join("..", "..", "flows"))
	c, err := r.dial(t, "", "")
	if err != nil {
		t.Fatal(err)
	}
	tok := c.until("session").Token
	if len(tok) != 32 {
		t.Fatalf("token %q", tok)
	}
	q := c.until("ask")
	if q.Expect != "choice" || len(q.Options) < 5 || q.Options[0].Key != "1" || q.Options[0].Label == "" {
		t.Fatalf("first question %+v\n%s", q, c.said())
	}
	c.send(msg{Type: "text", Text: "mi-am pierdut buletinul"})
	q = c.until("ask")
	if !strings.Contains(c.said(), "you: mi-am pierdut buletinul") || !strings.Contains(strings.ToLower(c.said()), "pierd") {
		t.Fatalf("no answer from the knowledge base:\n%s", c.said())
	}
	if q.Expect == "yesno" && (len(q.Options) != 2 || q.Options[0].Label != "Da") {
		t.Fatalf("yes/no buttons %+v", q.Options)
	}
	c.send(msg{Type: "text", Text: "nu"})
	h := c.until("handoff")
	if !tickets.ValidNumber(h.Ticket) || !strings.Contains(h.Text, h.Ticket) {
		t.Fatalf("handoff %+v\n%s", h, c.said())
	}
	// Written words, not the phone's "we are transferring you".
	if !strings.Contains(c.said(), "say: Un operator va prelua conversația.\n") || strings.Contains(c.said(), "transferăm") {
		t.Errorf("the handoff's wording in the chat:\n%s", c.said())
	}
	ctx := context.Background()
	tk, err := r.st.Ticket(ctx, h.Ticket)
	if err != nil || tk.Channel != tickets.ChannelPortal || tk.Service != tickets.ServiceIdentityCard ||
		!strings.Contains(tk.Description, "mi-am pierdut buletinul") {
		t.Fatalf("ticket %+v, %v", tk, err)
	}
	turns, err := r.st.Transcript(ctx, tk.CallID)
	if err != nil || len(turns) < 5 {
		t.Fatalf("transcript %+v, %v", turns, err)
	}
	var citizen []string
	for _, tn := range turns {
		if tn.Speaker == "caller" {
			citizen = append(citizen, tn.Text)
		}
	}
	if strings.Join(citizen, "|") != "mi-am pierdut buletinul|nu" {
		t.Errorf("the citizen's turns in the transcript: %q", citizen)
	}
	t.Logf("conversation through main.lua in %v:\n%s", time.Since(start), c.said())

	// After the handoff the chat stays open for the agents.
	if err := r.srv.AnswerInChat(ctx, "00000000", "maria", "x"); !errors.Is(err, chat.ErrNoChat) {
		t.Errorf("a ticket without a chat: %v", err)
	}
	if err := r.srv.AnswerInChat(ctx, tk.Number, "maria", "<b>Bună ziua</b>"); err != nil {
		t.Fatal(err)
	}
	c.until("joined")
	if m := c.until("agent"); m.Text != "<b>Bună ziua</b>" {
		t.Fatalf("agent's message %q", m.Text)
	}
	c.send(msg{Type: "text", Text: "mulțumesc"})
	c.until("you")
	deadline := time.Now().Add(5 * time.Second)
	for {
		turns, _ := r.st.Transcript(ctx, tk.CallID)
		if n := len(turns); n >= 2 && turns[n-2].Speaker == "agent" && turns[n-1].Speaker == "caller" && turns[n-1].Text == "mulțumesc" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("transcript after the handoff: %+v", turns)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A flow reads call.channel: "chat" here (the phone's is "phone", see
// flows' tests); a number typed at ask_digits is taken as keys; a page
// reload resumes the session with its token and sees the conversation
// again.
func TestChannelDigitsAndResume(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.lua"), []byte(`
say(call.channel)
local n = ask_digits{ prompt = "Numărul?", min = 3, max = 10 }
say("ai scris " .. tostring(n))
if ask_yes_no{ prompt = "Gata?" } then say("bine") end
`), 0o644)
	r := newRig(t, chat.Config{}, dir)
	c, _ := r.dial(t, "", "")
	tok := c.until("session").Token
	if m := c.until("say"); m.Text != "chat" {
		t.Fatalf("call.channel = %q", m.Text)
	}
	c.until("ask")
	c.send(msg{Type: "text", Text: "123 456"})
	if m := c.until("say"); m.Text != "ai scris 123456" {
		t.Fatalf("digits: %q", m.Text)
	}
	c.until("ask")
	c.c.Close(websocket.StatusGoingAway, "reload")

	c2, err := r.dial(t, "", tok)
	if err != nil {
		t.Fatal(err)
	}
	if m := c2.until("session"); m.Token != tok {
		t.Fatalf("resumed as %q", m.Token)
	}
	q := c2.until("ask")
	if q.Expect != "yesno" || len(q.Options) != 2 {
		t.Fatalf("question after resume %+v", q)
	}
	if s := c2.said(); !strings.Contains(s, "say: chat\n") || !strings.Contains(s, "you: 123 456") {
		t.Fatalf("history not replayed:\n%s", s)
	}
	c2.send(msg{Type: "key", Key: "1"})
	if m := c2.until("say"); m.Text != "bine" {
		t.Fatalf("yes button: %q", m.Text)
	}
	c2.until("end")
}

// Bad input: a foreign Origin is refused; invalid UTF-8, an over-long
// message and a flood get error messages and the session goes on; a 1 MB
// message closes that socket (1009) and nothing else; a socket closed in
// the middle of a question ends the session once the resume time passes.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.lua"), []byte(`
while true do
  local a = ask{ prompt = "Spuneți" }
  say(a.text or "")
end
`), 0o644)
	r := newRig(t, chat.Config{Origins: []string{"portal.gov.ro"}, Resume: 200 * time.Millisecond, MaxMessage: 100}, dir)
	if _, err := r.dial(t, "https://evil.example", ""); err == nil {
		t.Fatal("a foreign origin was let in")
	}
	c, err := r.dial(t, "https://portal.gov.ro", "")
	if err != nil {
		t.Fatalf("the portal refused: %v", err)
	}
	c.until("ask")
	ctx := context.Background()
	c.c.Write(ctx, websocket.MessageText, []byte("{\"type\":\"text\",\"text\":\"\xff\xfe\"}"))
	if m := c.until("error"); m.Code != "utf8" {
		t.Fatalf("invalid UTF-8: %+v", m)
	}
	c.send(msg{Type: "text", Text: strings.Repeat("a", 101)})
	if m := c.until("error"); m.Code != "too_long" {
		t.Fatalf("long message: %+v", m)
	}
	for range 30 { // a flood: more than the burst
		c.c.Write(ctx, websocket.MessageText, []byte(`{"type":"ping"}`))
	}
	for {
		if m := c.until("error"); m.Code == "rate" {
			break
		}
	}
	// Script and HTML come back as the text they are (the widget shows
	// them with textContent).
	time.Sleep(1100 * time.Millisecond) // the rate bucket refills
	evil := `<script>alert(1)</script><img src=x onerror=alert(2)>`
	c.send(msg{Type: "text", Text: evil})
	if m := c.until("you"); m.Text != evil {
		t.Fatalf("echo %q", m.Text)
	}
	if m := c.until("say"); m.Text != evil {
		t.Fatalf("the flow's message %q", m.Text)
	}

	// 1 MB in one message: that socket closes with 1009; the server goes on.
	big, _ := json.Marshal(msg{Type: "text", Text: strings.Repeat("x", 1<<20)})
	c.c.Write(ctx, websocket.MessageText, big)
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		_, _, err := c.c.Read(rctx)
		if err != nil {
			if st := websocket.CloseStatus(err); st != websocket.StatusMessageTooBig {
				t.Fatalf("1 MB message: %v (status %v)", err, st)
			}
			break
		}
	}
	// The session waited in the question; with no resume it ends.
	deadline := time.Now().Add(5 * time.Second)
	for r.srv.Sessions() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions left after the socket closed", r.srv.Sessions())
		}
		time.Sleep(20 * time.Millisecond)
	}
	c3, err := r.dial(t, "https://portal.gov.ro", "")
	if err != nil {
		t.Fatal(err)
	}
	c3.until("ask")
}

// The demo page and the widget are served; the widget never writes HTML.
func TestDemoPageAndWidget(t *testing.T) {
	r := newRig(t, chat.Config{}, filepath.Join("..", "..", "flows"))
	for _, p := range []string{"/", "/widget.js", "/widget.css"} {
		res, err := http.Get(r.web.URL + p)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("%s: %v %v", p, res, err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if p == "/widget.js" && (strings.Contains(string(b), "innerHTML") || strings.Contains(string(b), "insertAdjacentHTML")) {
			t.Error("the widget writes HTML")
		}
		if p == "/" && !strings.Contains(string(b), `src="widget.js"`) {
			t.Error("the demo page does not include the widget")
		}
	}
}

// A citizen who stops writing gets the closing message after the idle
// time, and the session ends; too many new sessions from one address are
// refused.
func TestIdleEndAndNewSessionLimit(t *testing.T) {
	r := newRig(t, chat.Config{Idle: 300 * time.Millisecond, NewSessions: 2}, filepath.Join("..", "..", "flows"))
	c, _ := r.dial(t, "", "")
	c.until("ask")
	start := time.Now()
	if m := c.until("end"); !strings.Contains(m.Text, "lipsă de activitate") {
		t.Fatalf("idle end %q", m.Text)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 5*time.Second {
		t.Errorf("ended after %v, want the idle time", d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := c.c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Errorf("after the end: %v", err)
	}
	c2, _ := r.dial(t, "", "")
	c2.until("session")
	c3, _ := r.dial(t, "", "")
	if _, _, err := c3.c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusTryAgainLater {
		t.Errorf("a third new session in a minute: %v", err)
	}
}

// Outside working hours, asking for an operator leaves a request: the
// chat asks for it in writing and promises no call back (a chat has no
// phone number), shows its number as written (say_digits: "34554410", not
// spaced out for the ear), and the ticket (the portal's) holds the
// request.
func TestOutsideHoursLeavesARequest(t *testing.T) {
	sunday := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	r := newRigAt(t, chat.Config{}, filepath.Join("..", "..", "flows"), sunday)
	c, _ := r.dial(t, "", "")
	c.until("ask")
	c.send(msg{Type: "text", Text: "operator"})
	c.until("ask")
	c.send(msg{Type: "text", Text: "vreau să mă sune cineva despre buletin"})
	c.until("end")
	var number string
	for _, m := range c.seen {
		if m.Type == "say" && strings.Contains(m.Text, "numărul") {
			number = strings.TrimSuffix(strings.Fields(strings.SplitN(m.Text, "numărul ", 2)[1])[0], ".")
		}
	}
	if number == "" {
		t.Fatalf("no number shown:\n%s", c.said())
	}
	said := c.said()
	if !strings.Contains(said, "Scrieți pe scurt solicitarea") || !strings.Contains(said, "Un operator o va prelua în programul de lucru. La revedere!") ||
		strings.Contains(said, "suna") || strings.Contains(said, "Spuneți") {
		t.Errorf("the phone's wording in the chat:\n%s", said)
	}
	tk, err := r.st.Ticket(context.Background(), number)
	if err != nil || tk.Channel != tickets.ChannelPortal || !strings.Contains(tk.Description, "vreau să mă sune cineva") {
		t.Fatalf("ticket %q: %+v, %v\n%s", number, tk, err, c.said())
	}
}
