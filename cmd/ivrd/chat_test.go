package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
)

// ivrd serves the web chat on chat.listen (IVR_CHAT_LISTEN) with the
// shipped flows: a citizen's question gets the knowledge base's answer,
// a foreign origin is refused, and what the citizen typed is not in the
// logs.
func TestDaemonServesTheChat(t *testing.T) {
	d := startDaemon(t, "IVR_CHAT_ORIGINS=portal.gov.ro")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := fmt.Sprintf("ws://127.0.0.1:%d/ws", d.chatPort)
	if c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://evil.example"}}}); err == nil {
		c.CloseNow()
		t.Fatal("a foreign origin was let in")
	}
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Origin": {"https://portal.gov.ro"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	type msg struct{ Type, Text, Lang, Token string }
	until := func(typ string) (seen []msg) {
		for {
			var m msg
			if err := wsjson.Read(ctx, c, &m); err != nil {
				t.Fatalf("waiting for %s: %v; seen %+v", typ, err, seen)
			}
			seen = append(seen, m)
			if m.Type == typ {
				return seen
			}
		}
	}
	wsjson.Write(ctx, c, msg{Type: "hello", Lang: "ro"})
	until("ask")
	wsjson.Write(ctx, c, msg{Type: "text", Text: "mi-am pierdut buletinul"})
	seen := until("ask")
	var all []string
	for _, m := range seen {
		all = append(all, m.Text)
	}
	if !strings.Contains(strings.Join(all, " "), "poliția") {
		t.Fatalf("no answer from the knowledge base: %q", all)
	}
	if strings.Contains(d.logs.String(), "pierdut buletinul") {
		t.Errorf("ivrd's log holds what the citizen typed:\n%s", d.logs.String())
	}
}
