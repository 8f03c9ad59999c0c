package chat_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/govline/ivr/channels/chat"
	"github.com/govline/ivr/internal/browsertest"
	"github.com/govline/ivr/tickets"
)

// browser starts headless Chromium; it stops when the test ends.
func browser(t *testing.T) context.Context {
	t.Helper()
	return browsertest.Start(t, 60*time.Second)
}

// A citizen on the demo page in a real browser: the menu's options are
// buttons, a typed question gets the knowledge base's answer, a page
// reload keeps the conversation, the "Nu" button reaches an operator and
// the request's number shows; the ticket is the portal's; an agent's
// message shows live, the citizen answers, the transcript holds both.
func TestBrowserDemoPage(t *testing.T) {
	r := newRig(t, chat.Config{}, filepath.Join("..", "..", "flows"))
	ctx := browser(t)
	var log, number string
	var buttons int
	run := func(what string, tasks ...chromedp.Action) {
		t.Helper()
		if err := chromedp.Run(ctx, tasks...); err != nil {
			var l string
			_ = chromedp.Run(ctx, chromedp.Text(".ivr-chat-log", &l, chromedp.ByQuery))
			t.Fatalf("%s: %v\nthe chat shows:\n%s", what, err, l)
		}
	}
	run("the demo page",
		chromedp.Navigate(r.web.URL+"/"),
		chromedp.WaitVisible(".ivr-chat-options button", chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll(".ivr-chat-options button").length`, &buttons))
	if buttons < 5 {
		t.Fatalf("%d buttons for the menu", buttons)
	}
	run("a typed question",
		chromedp.SendKeys("#ivr-chat-input", "mi-am pierdut buletinul\n", chromedp.ByID),
		chromedp.Poll(`document.querySelector(".ivr-chat-log").textContent.includes("poliția") && document.querySelectorAll(".ivr-chat-options button").length == 2`, nil),
		chromedp.Reload(),
		chromedp.Poll(`document.querySelector(".ivr-chat-log").textContent.includes("poliția") && document.querySelectorAll(".ivr-chat-options button").length == 2`, nil),
		chromedp.Text(".ivr-chat-log", &log, chromedp.ByQuery))
	if !strings.Contains(log, "mi-am pierdut buletinul") {
		t.Fatalf("after the reload:\n%s", log)
	}
	run("the Nu button",
		chromedp.Evaluate(`[...document.querySelectorAll(".ivr-chat-options button")].find(b => b.textContent == "Nu").click()`, nil),
		// The flow's "Un operator va prelua conversația." comes first; the
		// line's note with the request's number follows it.
		chromedp.Poll(`document.querySelector(".ivr-chat-log li.note:last-child")?.textContent.includes("Numărul solicitării")`, nil),
		chromedp.Evaluate(`document.querySelector(".ivr-chat-log li.note:last-child").textContent`, &number))
	var tk tickets.Ticket
	for _, w := range strings.Fields(strings.TrimSuffix(number, ".")) {
		if tickets.ValidNumber(w) {
			var err error
			if tk, err = r.st.Ticket(context.Background(), w); err != nil {
				t.Fatal(err)
			}
		}
	}
	if tk.Channel != tickets.ChannelPortal || !strings.Contains(tk.Description, "mi-am pierdut buletinul") {
		t.Fatalf("the handoff %q: ticket %+v", number, tk)
	}
	// The agent writes (as the console does through AnswerInChat); the
	// citizen sees it live and answers; the transcript holds both.
	if err := r.srv.AnswerInChat(context.Background(), tk.Number, "maria", "Bună ziua, vă ajut eu."); err != nil {
		t.Fatal(err)
	}
	run("the agent's message",
		chromedp.Poll(`document.querySelector(".ivr-chat-log").textContent.includes("Un operator s-a alăturat") && document.querySelector(".ivr-chat-log li.agent:last-child")?.textContent.includes("vă ajut eu")`, nil),
		chromedp.SendKeys("#ivr-chat-input", "mulțumesc\n", chromedp.ByID),
		chromedp.Poll(`document.querySelector(".ivr-chat-log li.you:last-child")?.textContent.includes("mulțumesc")`, nil))
	deadline := time.Now().Add(5 * time.Second)
	for {
		turns, err := r.st.Transcript(context.Background(), tk.CallID)
		if err != nil {
			t.Fatal(err)
		}
		var agent, citizen bool
		for _, tn := range turns {
			agent = agent || (tn.Speaker == "agent" && tn.Text == "Bună ziua, vă ajut eu.")
			citizen = citizen || (tn.Speaker == "caller" && tn.Text == "mulțumesc")
		}
		if agent && citizen {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the transcript lacks the exchange with the agent: %+v", turns)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Script and HTML typed by a citizen, and said back by a flow, show as
// text: no element is made of them and no script runs.
func TestBrowserShowsMarkupAsText(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "main.lua"), []byte(`
while true do
  local a = ask{ prompt = "Spuneți", options = { { id = "x", key = "1", say = "<b>bold</b><img src=x onerror=window.pwned=1>" } }, free = true }
  say(a.text or "")
end
`), 0o644)
	r := newRig(t, chat.Config{}, dir)
	ctx := browser(t)
	evil := `<img src=x onerror="window.pwned=1"><script>window.pwned=2</script><b>bold</b>`
	var made, pwned bool
	var label string
	if err := chromedp.Run(ctx,
		chromedp.Navigate(r.web.URL+"/"),
		chromedp.WaitVisible(".ivr-chat-options button", chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelector(".ivr-chat-options button").textContent`, &label),
		chromedp.SendKeys("#ivr-chat-input", evil+"\n", chromedp.ByID),
		chromedp.Poll(`document.querySelectorAll(".ivr-chat-log li.ivr").length >= 2`, nil),
		chromedp.Sleep(300*time.Millisecond),
		chromedp.Evaluate(`document.querySelectorAll(".ivr-chat img, .ivr-chat script, .ivr-chat b").length > 0`, &made),
		chromedp.Evaluate(`!!window.pwned`, &pwned),
	); err != nil {
		t.Fatal(err)
	}
	if made || pwned || !strings.Contains(label, "<b>bold</b>") {
		t.Fatalf("markup made elements %v, ran %v; button %q", made, pwned, label)
	}
}
