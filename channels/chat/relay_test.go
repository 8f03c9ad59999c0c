package chat_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/govline/ivr/channels/chat"
	"github.com/govline/ivr/internal/pgtest"
	"github.com/govline/ivr/store"
	"github.com/govline/ivr/tickets"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// Two engines of one line share a store. A citizen's chat is held by
// engine A; the agent works on engine B's console. The agent taking the
// ticket tells the citizen an operator joined (before any message), the
// agent's messages written on B reach the citizen on A, the citizen's
// replies reach the shared transcript, and once the citizen has closed
// the page B's console learns the chat is over.
func TestChatHeldByAnotherEngine(t *testing.T) {
	at := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	for _, backend := range []struct {
		name string
		url  func(t *testing.T) string
	}{
		{"sqlite", func(t *testing.T) string { return store.SQLiteURL(filepath.Join(t.TempDir(), tickets.DBFile)) }},
		{"postgres", func(t *testing.T) string { return pgtest.Start(t).NewDatabase(t) }},
	} {
		t.Run(backend.name, func(t *testing.T) {
			url := backend.url(t)
			cfg := chat.Config{Resume: 300 * time.Millisecond, Poll: 100 * time.Millisecond}
			a := newRigOn(t, cfg, filepath.Join("..", "..", "flows"), at, url, true)
			b := newRigOn(t, cfg, filepath.Join("..", "..", "flows"), at, url, true)
			ctx := context.Background()

			c, err := a.dial(t, "", "")
			if err != nil {
				t.Fatal(err)
			}
			c.until("ask")
			c.send(msg{Type: "text", Text: "mi-am pierdut buletinul"})
			c.until("ask")
			c.send(msg{Type: "text", Text: "nu"})
			number := c.until("handoff").Ticket

			// B's console: the agent takes the ticket.
			start := time.Now()
			if err := b.st.Assign(ctx, number, "maria", "maria"); err != nil {
				t.Fatal(err)
			}
			if m := c.until("joined"); m.Text != "Un operator s-a alăturat conversației." {
				t.Fatalf("joined: %q", m.Text)
			}
			t.Logf("%s: taken on B to \"joined\" on A: %v", backend.name, time.Since(start))
			for _, m := range c.seen {
				if m.Type == "agent" {
					t.Fatalf("an agent message before any was written: %+v", c.seen)
				}
			}

			start = time.Now()
			if err := b.srv.AnswerInChat(ctx, number, "maria", "Bună ziua, vă ajut eu."); err != nil {
				t.Fatal(err)
			}
			if m := c.until("agent"); m.Text != "Bună ziua, vă ajut eu." {
				t.Fatalf("agent's message: %q", m.Text)
			}
			t.Logf("%s: written on B to shown on A: %v", backend.name, time.Since(start))
			joined := 0
			for _, m := range c.seen {
				if m.Type == "joined" {
					joined++
				}
			}
			if joined != 1 {
				t.Errorf("\"joined\" shown %d times", joined)
			}

			c.send(msg{Type: "text", Text: "mulțumesc"})
			c.until("you")
			tk, err := b.st.Ticket(ctx, number)
			if err != nil {
				t.Fatal(err)
			}
			waitTurns(t, b.st, tk.CallID, func(turns []tickets.Turn) bool {
				n := len(turns)
				return n >= 2 && turns[n-2].Speaker == "agent" && turns[n-1].Speaker == "caller" && turns[n-1].Text == "mulțumesc"
			})

			// The citizen closes the page: after the resume time the
			// transcript says so, and B's console is told the chat is over.
			c.c.Close(websocket.StatusGoingAway, "closed")
			turns := waitTurns(t, b.st, tk.CallID, func(turns []tickets.Turn) bool {
				n := len(turns)
				return n > 0 && turns[n-1].Speaker == "ivr" && turns[n-1].Text == "Cetățeanul a închis conversația."
			})
			if err := b.srv.AnswerInChat(ctx, number, "maria", "Mai sunteți acolo?"); !errors.Is(err, chat.ErrNoChat) {
				t.Errorf("answer after the citizen left: %v", err)
			}
			if again, _ := b.st.Transcript(ctx, tk.CallID); len(again) != len(turns) {
				t.Errorf("a message to a closed chat went into the transcript: %d turns, then %d", len(turns), len(again))
			}
			var agent []string
			for _, tn := range turns {
				if tn.Speaker == "agent" {
					agent = append(agent, tn.Text)
				}
			}
			if strings.Join(agent, "|") != "Bună ziua, vă ajut eu." {
				t.Errorf("agent turns %q", agent)
			}
		})
	}
}

func waitTurns(t *testing.T, st *tickets.Store, callID string, ok func([]tickets.Turn) bool) []tickets.Turn {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		turns, err := st.Transcript(context.Background(), callID)
		if err == nil && ok(turns) {
			return turns
		}
		if time.Now().After(deadline) {
			t.Fatalf("transcript: %+v, %v", turns, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// The agent resolves the request while the citizen is still in the chat:
// the chat asks the satisfaction survey (the shipped survey.lua, its keys
// as buttons 1 to 5, in written words), the citizen's button is the
// ticket's rating, and the chat ends.
func TestChatSurveyWhenResolved(t *testing.T) {
	at := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	r := newRigOn(t, chat.Config{Poll: 50 * time.Millisecond}, filepath.Join("..", "..", "flows"), at, "", true)
	ctx := context.Background()
	c, err := r.dial(t, "", "")
	if err != nil {
		t.Fatal(err)
	}
	c.until("ask")
	c.send(msg{Type: "text", Text: "operator"})
	number := c.until("handoff").Ticket
	if err := r.srv.AnswerInChat(ctx, number, "maria", "Am rezolvat, mai aveți nevoie de ceva?"); err != nil {
		t.Fatal(err)
	}
	c.until("agent")
	if err := r.st.Resolve(ctx, number, "maria", "Programare făcută."); err != nil {
		t.Fatal(err)
	}
	q := c.until("ask")
	var labels []string
	for _, o := range q.Options {
		labels = append(labels, o.Key+"="+o.Label)
	}
	if strings.Join(labels, " ") != "1=1 2=2 3=3 4=4 5=5" {
		t.Fatalf("the survey's buttons: %v\n%s", labels, c.said())
	}
	if !strings.Contains(c.said(), "say: Vă mulțumim. Vă rugăm să evaluați discuția cu operatorul, de la 1 (foarte nemulțumit) la 5 (foarte mulțumit).") {
		t.Fatalf("the survey's question in the chat:\n%s", c.said())
	}
	c.send(msg{Type: "key", Key: "4"})
	c.until("end")
	if !strings.Contains(c.said(), "Vă mulțumim pentru evaluare") {
		t.Errorf("no thanks:\n%s", c.said())
	}
	tk, err := r.st.Ticket(ctx, number)
	if err != nil || tk.Rating != 4 {
		t.Fatalf("the ticket's rating: %+v, %v", tk.Rating, err)
	}
}
