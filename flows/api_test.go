package flows_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/flows/flowtest"
	"github.com/govline/ivr/flows/sim"
	"github.com/govline/ivr/tickets"
)

// The simulator's desk and the store's desk open the same tickets and
// refuse the same: an unknown priority is refused by both with the store's
// own message, an unknown service is filed under "other" by both, and a
// transfer to a queue the line does not have fails the flow in both.
func TestSimulatorDeskRefusesWhatTheStoreRefuses(t *testing.T) {
	st, err := tickets.Open(tickets.DBPath(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	flow := `
local n, err = ticket.open{priority = p, service = s}
say("result " .. tostring(n ~= nil) .. " " .. tostring(err))
if q then transfer(q) end
hangup()`
	for _, c := range []struct{ vars, want string }{
		{"p = 'asap'", `result false tickets: open ticket: invalid priority: "asap" is not one of [low normal high urgent]`},
		{"s = 'pasport'", "result true nil"},
		{"q = 'level9'", "result true nil"},
	} {
		rt := load(t, map[string]string{"main.lua": "local p, s, q\n" + c.vars + flow}, flows.Limits{})
		for name, desk := range map[string]flows.Desk{"simulator": sim.NewDesk(), "store": flows.TicketDesk{Store: st}} {
			ch := sim.NewChannel(strings.NewReader(""), nil)
			var said []string
			ch.Lines = func(l string) { said = append(said, l) }
			o := rt.Run(context.Background(), flows.Facts{CallID: c.vars}, ch, flows.Services{Desk: desk, Queues: []string{"level1"},
				Log: slog.New(slog.DiscardHandler)})
			if len(said) == 0 || said[0] != "ivr: "+c.want {
				t.Errorf("%s, %s desk: said %q, want %q", c.vars, name, said, c.want)
			}
			if c.vars == "q = 'level9'" && (o.Err == nil || !strings.Contains(o.Err.Error(), `transfer("level9"): the line has no such queue (its queues: level1)`)) {
				t.Errorf("%s desk: transfer to an unknown queue: %+v", name, o)
			}
		}
	}
	ts, err := st.ListTickets(context.Background(), tickets.TicketQuery{})
	if err != nil {
		t.Fatal(err)
	}
	filed := 0
	for _, tk := range ts {
		if tk.Service == tickets.ServiceOther && tk.Classification == "pasport" {
			filed++
		}
	}
	if filed != 1 {
		t.Errorf("the store filed %d tickets of service \"pasport\" under other with the word kept, want 1: %+v", filed, ts)
	}
}

// hours.describe() is one sentence from the calendar's text, the same in
// the simulator (no text given: the default) and on the line (ivrd's
// configuration).
func TestHoursDescribe(t *testing.T) {
	rt := load(t, map[string]string{"main.lua": `say(hours.describe()) set_language("en") say(hours.describe())`}, flows.Limits{})
	for _, texts := range []map[string]string{nil, {"ro": "de luni până vineri, între orele 8 și 20", "en": "Monday to Friday, from 8 am to 8 pm"}} {
		var said []string
		ch := sim.NewChannel(strings.NewReader(""), nil)
		ch.Lines = func(l string) { said = append(said, l) }
		rt.Run(context.Background(), flows.Facts{}, ch, flows.Services{HoursText: texts, Log: slog.New(slog.DiscardHandler)})
		want := []string{"ivr: Operatorii sunt disponibili de luni până vineri, între orele 8 și 20", "ivr: Our operators are available Monday to Friday, from 8 am to 8 pm"}
		if strings.Join(said, "\n") != strings.Join(want, "\n") {
			t.Errorf("HoursText %v: said %q", texts, said)
		}
	}
}

// Digit collection: the terminator ends a number and is not part of it; the
// max-th key ends it and a terminator right after is swallowed (not the
// answer to the next question); keys typed ahead answer the next question
// and skip its prompt; a pause ends an entry.
func TestDigitCollection(t *testing.T) {
	flow := `
local n = ask_digits{prompt = "CNP?", min = 13, max = 13}
say("got " .. tostring(n), {barge_in = false})
local ok = ask_yes_no("Corect?")
say("yes " .. tostring(ok), {barge_in = false})
local p = ask_digits{prompt = "PIN?", min = 4, max = 4, terminator = ""}
say("pin " .. tostring(p), {barge_in = false})`
	rt := load(t, map[string]string{"main.lua": flow}, flows.Limits{})
	for _, c := range []struct{ input, want string }{
		// '#' after the 13th digit is swallowed: the yes/no waits for "1".
		{"#1960101123456#\n#1\n#1234\n", "got 1960101123456|yes true|pin 1234"},
		// The terminator ends the number (too short: asked again).
		{"#123#\n#1960101123456\n#1\n#1234\n", "got 1960101123456|yes true|pin 1234"},
		// Typed ahead in one go: the yes/no and the PIN take the keys that
		// follow, their prompts are skipped.
		{"#196010112345611234\n", "got 1960101123456|yes true|pin 1234"},
		// A pause after the 13th digit: the '#' is a new key, and not an
		// answer to yes/no (asked again), then 1.
		{"#1960101123456,#\n#1\n#1234\n", "got 1960101123456|yes true|pin 1234"},
		// A pause ends an entry: 7 digits are too few, so are 2.
		{"#1960101\n#1960101123456\n#2\n#12\n#1234\n", "got 1960101123456|yes false|pin 1234"},
		// Keys after a pause (',') are a new entry: pressed during the
		// prompt that asks again, they start the next answer.
		{"#1960101,196010\n#1123456\n#1\n#1234\n", "got 1960101123456|yes true|pin 1234"},
	} {
		var said []string
		ch := sim.NewChannel(strings.NewReader(c.input), nil)
		ch.Lines = func(l string) {
			if v, ok := strings.CutPrefix(l, "ivr: "); ok && (strings.HasPrefix(v, "got") || strings.HasPrefix(v, "yes") || strings.HasPrefix(v, "pin")) {
				said = append(said, v)
			}
		}
		rt.Run(context.Background(), flows.Facts{}, ch, flows.Services{Log: slog.New(slog.DiscardHandler)})
		if got := strings.Join(said, "|"); got != c.want {
			t.Errorf("keys %q: %s, want %s", c.input, got, c.want)
		}
	}
}

// A sensitive answer stays available to the flow and reaches the ticket's
// personal field; everywhere else (transcript, read-back turn, the
// simulator's output, conversation(), the description, the log, notes)
// only its masked form appears.
func TestSensitiveAnswers(t *testing.T) {
	flow := `
local cnp = ask_digits{prompt = "CNP-ul, cifră cu cifră.", min = 13, max = 13, confirm = true, sensitive = true}
vars.cnp = cnp
local a = ask_free("Adresa?", {sensitive = true})
log.info("got " .. cnp, {value = a.text})
say("Lungime " .. #cnp .. ".")
say(conversation())
local n = ticket.open{description = "CNP " .. cnp, personal = {address = a.text}}
ticket.note(n, "again " .. cnp)
print(cnp)
operator()`
	rt := load(t, map[string]string{"main.lua": flow}, flows.Limits{})
	r := simulate(t, rt, "#1960101123456#\n#1\nStrada Lalelelor 5\n", open(true))
	const cnp = "1960101123456"
	all := r.said() + "\n" + r.log.String()
	for _, tu := range r.trans.Turns("c-" + t.Name()) {
		all += "\n" + tu.Text
	}
	tks := r.desk.Opened()
	for _, tk := range tks {
		all += "\n" + tk.Description + strings.Join(tk.Notes, "\n")
	}
	if strings.Contains(all, cnp) || strings.Contains(all, "Lalelelor") {
		t.Errorf("the sensitive answers appear in clear:\n%s", all)
	}
	for _, want := range []string{"caller: #**********456", "ivr: Ați spus: **********456. Este corect?", "ivr: Lungime 13.", "CNP **********456", "caller: ****** ********* 5"} {
		if !strings.Contains(all, want) {
			t.Errorf("missing %q in:\n%s", want, all)
		}
	}
	if len(tks) != 1 || tks[0].Personal["cnp"] != cnp || tks[0].Personal["address"] != "Strada Lalelelor 5" {
		t.Errorf("tickets %+v: want one with the CNP and the address in its personal field", tks)
	}
	if r.outcome.Vars["cnp"] != "**********456" {
		t.Errorf("vars at the end: %v", r.outcome.Vars)
	}

	// operator() gathers vars: the sensitive one goes to the personal
	// field, its masked form to the description.
	rt = load(t, map[string]string{"main.lua": `vars.cnp = ask_digits{prompt = "CNP", min = 13, max = 13, sensitive = true} operator()`}, flows.Limits{})
	r = simulate(t, rt, "#1960101123456\n", open(true))
	tks = r.desk.Opened()
	if len(tks) != 1 || tks[0].Personal["cnp"] != cnp || strings.Contains(tks[0].Description, cnp) || !strings.Contains(tks[0].Description, "cnp: **********456") {
		t.Errorf("operator's ticket %+v", tks)
	}
}

// kb.get reads one article; kb.search with a service finds only that
// service's articles; the article whose answer is said is reported to the
// channel (simulate prints it, the line's event log keeps it).
func TestKnowledgeBaseForFlows(t *testing.T) {
	k, closeKB, err := flowtest.OpenKB(context.Background(), ".")
	if err != nil {
		t.Fatal(err)
	}
	defer closeKB()
	flow := `
local a = kb.get("passport-lost")
say(a.spoken)
local none, err = kb.get("no-such-article")
say("missing " .. tostring(none) .. " " .. err)
local hits = kb.search("am pierdut", {service = "driving_licence", limit = 5})
local services = {}
for _, h in ipairs(hits) do services[#services + 1] = h.service end
say("services " .. table.concat(services, ","))
say("nothing")`
	rt := load(t, map[string]string{"main.lua": flow}, flows.Limits{})
	var said []string
	ch := sim.NewChannel(strings.NewReader(""), nil)
	ch.Lines = func(l string) { said = append(said, l) }
	rt.Run(context.Background(), flows.Facts{}, ch, flows.Services{KB: k, Log: slog.New(slog.DiscardHandler)})
	got := strings.Join(said, "\n")
	if !strings.Contains(got, "\narticle: passport-lost\n") || strings.Count(got, "article:") != 1 {
		t.Errorf("the article said is not reported once:\n%s", got)
	}
	if !strings.Contains(got, "ivr: missing nil not found") {
		t.Errorf("kb.get of an unknown id:\n%s", got)
	}
	if !strings.Contains(got, "ivr: services driving_licence") || strings.Contains(got, "passport,") || strings.Contains(got, "identity_card") {
		t.Errorf("kb.search with a service:\n%s", got)
	}
}

// call.speech says whether the line hears words: not on a keys-only line.
// Spoken words on it are not heard; keys are.
func TestSpeechModes(t *testing.T) {
	flow := `say("speech " .. tostring(call.speech))
local r = ask{prompt = "Alegeți.", options = {{id = "passport", key = "2", say = "pașaport"}}}
say("option " .. tostring(r and r.option) .. " " .. tostring(r and r.confidence))`
	rt := load(t, map[string]string{"main.lua": flow}, flows.Limits{})
	for _, c := range []struct {
		mode         sim.SpeechMode
		input, want  string
		heardProblem bool
	}{
		{sim.SpeechOff, "pașaport\n#2\n", "speech false|option passport 1", true},
		{sim.SpeechOpen, "pasaport @0.8\n", "speech true|option passport 0.8", false},
		// The embedded recognizer: the listed phrase, confident unless the
		// test says otherwise (then it is confirmed).
		{sim.SpeechEmbedded, "Pașaport\n", "speech true|option passport 0.9", false},
		{sim.SpeechEmbedded, "Pașaport @0.3\nda\n", "speech true|option passport 0.3", false},
		{sim.SpeechEmbedded, "vreau un pașaport nou\n#2\n", "speech true|option passport 1", true},
	} {
		var said []string
		problem := false
		ch := sim.NewChannel(strings.NewReader(c.input), nil)
		ch.Mode = c.mode
		ch.Problem = func(string, string) { problem = true }
		ch.Lines = func(l string) {
			if v, ok := strings.CutPrefix(l, "ivr: "); ok && (strings.HasPrefix(v, "speech") || strings.HasPrefix(v, "option")) {
				said = append(said, v)
			}
		}
		rt.Run(context.Background(), flows.Facts{}, ch, flows.Services{Log: slog.New(slog.DiscardHandler)})
		if got := strings.Join(said, "|"); got != c.want || problem != c.heardProblem {
			t.Errorf("%s %q: %s (problem %v), want %s (problem %v)", c.mode, c.input, got, problem, c.want, c.heardProblem)
		}
	}
}

// A free question's words that name no option go to the flow; a bare
// "da" or "nu" does not (it answers no question that has no yes/no option,
// and a voice in the room is often forced into it): the question is asked
// again, and the caller's next answer counts.
func TestFreeQuestionAsksAgainAfterBareYesNo(t *testing.T) {
	flow := `local r = ask{prompt = "Alegeți.", options = {{id = "passport", key = "2", say = "pașaport"}}, free = true, retries = 1}
say("got " .. tostring(r and r.option) .. " " .. tostring(r and r.text))`
	rt := load(t, map[string]string{"main.lua": flow}, flows.Limits{})
	for _, c := range []struct{ input, want string }{
		{"cum îmi schimb parola @0.8\n", "got nil cum îmi schimb parola"},
		{"da @0.8\npașaport @0.9\n", "got passport pașaport"},
		{"Nu. @0.9\ncum îmi schimb parola @0.8\n", "got nil cum îmi schimb parola"},
		{"yes @0.9\n#2\n", "got passport 2"},
	} {
		var got []string
		asked := 0
		ch := sim.NewChannel(strings.NewReader(c.input), nil)
		ch.Mode = sim.SpeechOpen
		ch.Lines = func(l string) {
			if v, ok := strings.CutPrefix(l, "ivr: "); ok && strings.HasPrefix(v, "got ") {
				got = append(got, v)
			}
			if strings.Contains(l, "Alegeți.") {
				asked++
			}
		}
		rt.Run(context.Background(), flows.Facts{}, ch, flows.Services{Log: slog.New(slog.DiscardHandler)})
		if strings.Join(got, "|") != c.want {
			t.Errorf("%q: %q, want %q", c.input, got, c.want)
		}
		if want := 1 + strings.Count(c.input, "\n") - 1; asked != want {
			t.Errorf("%q: the question was asked %d times, want %d", c.input, asked, want)
		}
	}
}

// Barge-in in the simulator: keys or words over a prompt that allows it
// cut it and answer the next question; over one that does not, words are
// lost (and reported), keys wait.
func TestSimulatorBargeIn(t *testing.T) {
	flow := `say("Bună ziua, ascultați cu atenție.", {barge_in = false})
say("Meniul principal.")
local r = ask{prompt = "Alegeți.", options = {{id = "passport", key = "2", say = "pașaport"}}}
say("option " .. tostring(r and r.option))`
	rt := load(t, map[string]string{"main.lua": flow}, flows.Limits{})
	for _, c := range []struct {
		input, want string
		problem     bool
	}{
		{"!#2\n", "ivr: Bună ziua, ascultați cu atenție.|caller: #2|ivr: option passport", false},
		{"!pașaport\n", "ivr: Bună ziua, ascultați cu atenție.|ivr: Meniul principal.|ivr: Alegeți.", true},
		{"!#2\n", "ivr: Bună ziua, ascultați cu atenție.|caller: #2|ivr: option passport", false},
	} {
		var said []string
		problem := false
		ch := sim.NewChannel(strings.NewReader(c.input), nil)
		ch.Problem = func(string, string) { problem = true }
		ch.Lines = func(l string) { said = append(said, l) }
		rt.Run(context.Background(), flows.Facts{}, ch, flows.Services{Log: slog.New(slog.DiscardHandler)})
		if got := strings.Join(said, "|"); !strings.HasPrefix(got, c.want) || problem != c.problem {
			t.Errorf("%q:\n%s\nwant it to start with\n%s (problem %v)", c.input, got, c.want, c.problem)
		}
	}
}

// A broken flow file does not keep the tools from another flow of the
// folder (the engine still refuses to start on it).
func TestOnlyRoutedFlowsLoad(t *testing.T) {
	dir := writeFlows(t, map[string]string{"main.lua": "local m = require('lib.x') hangup(m.x)", "lib/x.lua": "return {x = 'ok'}", "broken.lua": "if then"})
	if _, err := flows.Load(dir, flows.Config{}); err == nil {
		t.Fatal("the engine loads a folder with a broken file")
	}
	rt, err := flows.Load(dir, flows.Config{OnlyRouted: true})
	if err != nil {
		t.Fatal(err)
	}
	if o := rt.Run(context.Background(), flows.Facts{}, sim.NewChannel(strings.NewReader(""), nil), flows.Services{Log: slog.New(slog.DiscardHandler)}); o.Reason != "ok" {
		t.Errorf("outcome %+v", o)
	}
	if _, err := flows.Load(dir, flows.Config{Default: "broken.lua", OnlyRouted: true}); err == nil || !strings.Contains(err.Error(), "broken.lua:1") {
		t.Errorf("the broken flow itself: %v", err)
	}
}
