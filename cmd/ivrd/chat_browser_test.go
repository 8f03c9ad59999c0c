package main

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/govline/ivr/internal/browsertest"
	"github.com/govline/ivr/store"
	"github.com/govline/ivr/tickets"
)

// The test of the web chat, in a real browser against a real
// ivrd: a citizen on the chat's demo page asks about a lost identity card
// and gets the knowledge base's answer, then asks for an operator; an
// agent signed in to the console in a second browser (its own cookies) opens the ticket from the queue, takes it, and the citizen sees
// that an operator joined; they write to each other and each sees the
// other's messages live; the ticket's transcript holds the whole
// conversation.
func TestBrowserCitizenAndAgent(t *testing.T) {
	d := startDaemon(t, "IVR_CONFIG="+alwaysOpen(t), "IVR_SPEECH=false")
	_, ivrctl := binaries(t)
	add := exec.Command(ivrctl, "--data", d.dataDir, "users", "add", "--role", "operator", "ana")
	add.Stdin = strings.NewReader("correct horse battery staple\n")
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ivrctl users add: %v\n%s", err, out)
	}

	// Two browsers, each with its own profile: the citizen's and the
	// agent's share no cookie.
	citizen := browsertest.Start(t, 120*time.Second)
	agent := browsertest.Start(t, 120*time.Second)

	chatURL := fmt.Sprintf("http://127.0.0.1:%d/", d.chatPort)
	console := fmt.Sprintf("http://127.0.0.1:%d", d.consolePort)
	run := func(ctx context.Context, who, what string, tasks ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, tasks...); err != nil {
			var shown string
			_ = chromedp.Run(ctx, chromedp.Evaluate(`document.body ? document.body.innerText : ""`, &shown))
			t.Fatalf("%s: %s: %v\nthe page shows:\n%s", who, what, err, shown)
		}
	}
	chatLog := `document.querySelector(".ivr-chat-log").textContent`

	// The citizen asks; the knowledge base answers; "Nu" to "did it help"
	// reaches an operator.
	var number string
	run(citizen, "citizen", "the demo page and a typed question",
		chromedp.Navigate(chatURL),
		chromedp.WaitVisible(".ivr-chat-options button", chromedp.ByQuery),
		chromedp.SendKeys("#ivr-chat-input", "am pierdut buletinul\n", chromedp.ByID),
		chromedp.Poll(chatLog+`.includes("poliția") && document.querySelectorAll(".ivr-chat-options button").length == 2`, nil),
		chromedp.Evaluate(`[...document.querySelectorAll(".ivr-chat-options button")].find(b => b.textContent == "Nu").click()`, nil),
		chromedp.Poll(chatLog+`.includes("Numărul solicitării dumneavoastră este")`, nil),
		chromedp.Evaluate(chatLog+`.match(/solicitării dumneavoastră este (\d+)/)[1]`, &number))
	if !tickets.ValidNumber(number) {
		t.Fatalf("the request's number shown: %q", number)
	}

	// The agent, in another browser context, signs in, finds the ticket in
	// the queue with its channel, opens it and takes it.
	var channel, transcript string
	run(agent, "agent", "sign-in and the queue",
		chromedp.Navigate(console+"/login"),
		chromedp.WaitVisible("#name", chromedp.ByID),
		chromedp.SendKeys("#name", "ana", chromedp.ByID),
		chromedp.SendKeys("#password", "correct horse battery staple", chromedp.ByID),
		chromedp.Click("#signin", chromedp.ByID),
		chromedp.WaitVisible(`a[href="/tickets/`+number+`"]`, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelector('a[href="/tickets/`+number+`"]').closest("tr").querySelector("td.ch").textContent`, &channel),
		chromedp.Click(`a[href="/tickets/`+number+`"]`, chromedp.ByQuery),
		chromedp.WaitVisible("#chat-answer", chromedp.ByID),
		chromedp.Text("#transcript", &transcript, chromedp.ByID))
	if channel != "portal" || !strings.Contains(transcript, "am pierdut buletinul") {
		t.Fatalf("the agent's view: channel %q, transcript:\n%s", channel, transcript)
	}
	run(agent, "agent", "take", chromedp.Click("#take", chromedp.ByID), chromedp.WaitVisible("#chat-answer", chromedp.ByID))
	start := time.Now()
	run(citizen, "citizen", "an operator joined", chromedp.Poll(chatLog+`.includes("Un operator s-a alăturat conversației")`, nil))
	t.Logf("taken in the console to \"joined\" in the citizen's page: %v", time.Since(start))

	// They write to each other; each sees the other's message live.
	run(agent, "agent", "a message to the citizen",
		chromedp.SendKeys("#chat-answer", "Bună ziua, sunt Ana. Vă ajut eu.", chromedp.ByID),
		chromedp.Click("#send-chat", chromedp.ByID),
		chromedp.WaitVisible("#chat-answer", chromedp.ByID))
	start = time.Now()
	run(citizen, "citizen", "the agent's message, then an answer",
		chromedp.Poll(`document.querySelector(".ivr-chat-log li.agent:last-child")?.textContent.includes("sunt Ana")`, nil))
	t.Logf("sent in the console to shown in the citizen's page: %v", time.Since(start))
	run(citizen, "citizen", "an answer",
		chromedp.SendKeys("#ivr-chat-input", "Mulțumesc, aștept.\n", chromedp.ByID),
		chromedp.Poll(`document.querySelector(".ivr-chat-log li.you:last-child")?.textContent.includes("aștept")`, nil))
	start = time.Now()
	run(agent, "agent", "the citizen's answer, live", chromedp.Poll(`document.querySelector("#transcript").textContent.includes("Mulțumesc, aștept.")`, nil))
	t.Logf("written by the citizen to shown in the console: %v", time.Since(start))

	// The ticket's transcript holds the whole conversation, in order; the
	// "Nu" button as its label, not its key.
	ctx := context.Background()
	db, err := store.Open(ctx, store.SQLiteURL(tickets.DBPath(d.dataDir)), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st := tickets.New(db)
	tk, err := st.Ticket(ctx, number)
	if err != nil || tk.Channel != tickets.ChannelPortal || tk.Assignee != "ana" {
		t.Fatalf("ticket %+v, %v", tk, err)
	}
	turns, err := st.Transcript(ctx, tk.CallID)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, tn := range turns {
		if tn.Speaker != tickets.SpeakerIVR {
			lines = append(lines, tn.Speaker+": "+tn.Text)
		}
	}
	want := "caller: am pierdut buletinul|caller: Nu|agent: Bună ziua, sunt Ana. Vă ajut eu.|caller: Mulțumesc, aștept."
	if got := strings.Join(lines, "|"); got != want {
		t.Errorf("the ticket's transcript (without the line's own turns):\n got %s\nwant %s", got, want)
	}
	if strings.Contains(d.logs.String(), "pierdut buletinul") || strings.Contains(d.logs.String(), "aștept") {
		t.Errorf("ivrd's log holds what the citizen typed")
	}
}
