package console

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/govline/ivr/channels/chat"
	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/tickets"
)

// A web chat handed to the agents (channels/chat, the real server, with
// the store as its relay, as ivrd runs it): the ticket shows its channel
// and a chat form; the agent taking the ticket tells the citizen an
// operator joined; the agent's message reaches the citizen's socket and
// is kept in the ticket's transcript; once the chat has ended, the
// console says so.
func TestChatAnswer(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.lua"), []byte(`operator("cerut din chat")`), 0o644); err != nil {
		t.Fatal(err)
	}
	rt, err := flows.Load(dir, flows.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var cs *chat.Server
	e := newEnv(t, func(c *Config) {
		cs = chat.New(chat.Config{Relay: c.Store}, rt, flows.Services{Desk: flows.TicketDesk{Store: c.Store}, Transcript: flows.TicketTranscript{Store: c.Store},
			Log: slog.New(slog.DiscardHandler)})
		c.Chat = cs
	})
	web := httptest.NewServer(cs.Handler())
	t.Cleanup(func() { web.Close(); cs.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(web.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	type msg struct{ Type, Text, Lang, Ticket string }
	until := func(typ string) msg {
		for {
			var m msg
			if err := wsjson.Read(ctx, ws, &m); err != nil {
				t.Fatalf("waiting for %s: %v", typ, err)
			}
			if m.Type == typ {
				return m
			}
		}
	}
	wsjson.Write(ctx, ws, msg{Type: "hello", Lang: "ro"})
	number := until("handoff").Ticket
	tk, err := e.st.Ticket(ctx, number)
	if err != nil || tk.Channel != tickets.ChannelPortal {
		t.Fatalf("ticket %+v, %v", tk, err)
	}

	op := e.client()
	op.login("ana", pw)
	_, page := op.get("/tickets/" + number)
	if !strings.Contains(page, `id="chat-answer"`) {
		t.Fatal("no chat form on a chat's ticket")
	}
	_, queue := op.get("/")
	if !strings.Contains(queue, `<td class="ch">portal</td>`) {
		t.Error("the queue does not show the ticket's channel")
	}
	if code, _ := op.post("/tickets/"+number+"/take", nil); code != http.StatusSeeOther {
		t.Fatalf("take: %d", code)
	}
	if m := until("joined"); m.Text != "Un operator s-a alăturat conversației." {
		t.Fatalf("joined: %q", m.Text)
	}
	if code, _ := op.post("/tickets/"+number+"/chat", url.Values{"text": {"<b>Bună ziua</b>, vă ajut eu."}}); code != http.StatusSeeOther {
		t.Fatalf("chat answer: %d", code)
	}
	if m := until("agent"); m.Text != "<b>Bună ziua</b>, vă ajut eu." {
		t.Fatalf("the citizen got %q", m.Text)
	}
	turns, err := e.st.Transcript(ctx, tk.CallID)
	if err != nil || len(turns) == 0 || turns[len(turns)-1].Speaker != tickets.SpeakerAgent || turns[len(turns)-1].Text != "<b>Bună ziua</b>, vă ajut eu." {
		t.Fatalf("transcript %+v, %v", turns, err)
	}
	_, page = op.get("/tickets/" + number)
	if !strings.Contains(page, "&lt;b&gt;Bună ziua&lt;/b&gt;") {
		t.Error("the agent's message is not in the ticket's transcript, escaped")
	}

	cs.Close() // the engine stops: the citizen's chat ends
	if code, body := op.post("/tickets/"+number+"/chat", url.Values{"text": {"mai sunteți?"}}); code == http.StatusSeeOther || !strings.Contains(body, "nu mai este deschis") {
		t.Errorf("a message to a closed chat: %d %s", code, body)
	}
}
