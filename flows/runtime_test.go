package flows_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/flows/flowtest"
	"github.com/govline/ivr/flows/sim"
)

// writeFlows writes files (name -> Lua source) into a new flows folder.
func writeFlows(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// open is a calendar that is always open or always closed.
type open bool

func (o open) Open(time.Time) bool            { return bool(o) }
func (o open) NextOpen(t time.Time) time.Time { return t.Add(time.Hour) }

// run is one simulated call: its lines, outcome and the desk it used.
type run struct {
	lines   []string
	outcome flows.Outcome
	desk    *sim.Desk
	trans   *sim.Transcript
	log     *bytes.Buffer
}

func (r run) said() string { return strings.Join(r.lines, "\n") }

func simulate(t *testing.T, rt *flows.Runtime, input string, cal flows.Calendar) run {
	t.Helper()
	r := run{desk: sim.NewDesk(), trans: &sim.Transcript{}, log: &bytes.Buffer{}}
	ch := sim.NewChannel(strings.NewReader(input), nil)
	var mu sync.Mutex
	ch.Lines = func(l string) { mu.Lock(); r.lines = append(r.lines, l); mu.Unlock() }
	svc := flows.Services{Desk: r.desk, Transcript: r.trans, Calendar: cal,
		Log: slog.New(slog.NewTextHandler(r.log, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	r.outcome = rt.Run(context.Background(), flows.Facts{CallID: "c-" + t.Name(), Caller: "+40722123456", Called: "1919"}, ch, svc)
	return r
}

func load(t *testing.T, files map[string]string, lim flows.Limits) *flows.Runtime {
	t.Helper()
	rt, err := flows.Load(writeFlows(t, files), flows.Config{Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

// TestBadFlowsAtRunTime: each bad script is caught; the caller hears an
// apology, a ticket holds the error (file:line) and what the caller said,
// and the call goes to level I.
func TestBadFlowsAtRunTime(t *testing.T) {
	// CPU is wall time while Lua runs: on a loaded machine under -race it
	// would stop the runaway cases before the limit each case is about.
	lim := flows.Limits{Instructions: 2_000_000, Memory: 4 << 20, CPU: 30 * time.Second}
	cases := []struct {
		name, body, errWant string
		limit               bool
	}{
		{"infinite loop", "while true do end", "instructions|computed for more than", true},
		{"infinite loop inside pcall", "while true do pcall(function() while true do end end) end", "instructions|computed for more than", true},
		{"runaway string", "local s = 'x' while true do s = s .. s end", "string limit", true},
		{"runaway string.rep", "local s = string.rep('ab', 1e9)", "string limit", true},
		{"runaway strings in a table", "local t = {} local s = string.rep('x', 60000) for i = 1, 1e6 do t[i] = s .. i end", "string limit", true},
		{"runaway pattern", "local s = string.rep('a', 30000) local f = string.find(s, '.-.-.-.-c')", "pattern limit", true},
		{"runaway gsub pattern", "local s = string.rep('a', 20000) local r = s:gsub('(.-)(.-)x', '%2')", "pattern limit", true},
		{"many slow patterns", "local s = string.rep('a', 2000) for i = 1, 1e6 do local _ = s:match('.-b') end", "pattern limit", true},
		{"runaway table", "local t = {} for i = 1, 1e9 do t[i] = {i} end", "holds more than", true},
		{"missing function", "local f = _G['no_such_' .. 'function'] f()", "attempt to call", false},
		{"wrong argument type", "ask(42)", "bad argument #1 to ask", false},
		{"wrong option type", "say('x', {barge_in = 'yes'})", "barge_in", false},
		{"error()", "error('out of cheese')", "out of cheese", false},
		{"deep recursion", "local function f(n) return 1 + f(n + 1) end f(1)", "stack overflow", false},
		{"nil index", "local t = nil local x = t.field", "attempt to index", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := "say('Bună ziua')\nlocal r = ask_free('Spuneți')\n" + tc.body + "\n"
			rt := load(t, map[string]string{"main.lua": src}, lim)
			r := simulate(t, rt, "mi-am pierdut buletinul\n", open(true))
			o := r.outcome
			if o.Kind != flows.OutcomeTransfer || o.Queue != flows.QueueLevel1 || o.Ticket == "" {
				t.Fatalf("outcome %+v, want a transfer to level1 with a ticket\n%s", o, r.said())
			}
			var se *flows.ScriptError
			if !errors.As(o.Err, &se) || se.File != "main.lua" || se.Line != 3 || !containsAny(se.Msg, tc.errWant) {
				t.Fatalf("error %#v, want main.lua:3 with %q", o.Err, tc.errWant)
			}
			if errors.Is(o.Err, flows.ErrLimit) != tc.limit {
				t.Errorf("errors.Is(ErrLimit) = %v, want %v", !tc.limit, tc.limit)
			}
			if cat := rt.Catalog(); !strings.Contains(r.said(), "ivr: "+cat.Text("ro", "failure.sorry")) || !strings.HasSuffix(r.said(), "ivr: "+cat.Text("ro", "failure.transfer")) {
				t.Errorf("the caller did not hear the apology and the transfer:\n%s", r.said())
			}
			tk := r.desk.Opened()
			if len(tk) != 1 || !strings.Contains(tk[0].Description, "main.lua:3:") || !strings.Contains(tk[0].Description, "caller: mi-am pierdut buletinul") {
				t.Errorf("ticket %+v: want the error with file:line and the conversation", tk)
			}
			if !strings.Contains(r.log.String(), "file=main.lua line=3") {
				t.Errorf("the log does not name the file and line:\n%s", r.log)
			}
		})
	}
}

// Outside working hours the caller hears the ticket number and the line
// hangs up.
func TestBadFlowOutsideHours(t *testing.T) {
	rt := load(t, map[string]string{"main.lua": "say('x')\nlocal n = nil + 1\n"}, flows.Limits{})
	r := simulate(t, rt, "", open(false))
	if r.outcome.Kind != flows.OutcomeHangup || r.outcome.Ticket != "10000004" || r.outcome.Err == nil {
		t.Fatalf("outcome %+v", r.outcome)
	}
	if !strings.Contains(r.said(), "numărul 1 0 0 0 0 0 0 4") || !strings.Contains(r.said(), "vă va suna înapoi") {
		t.Errorf("said:\n%s", r.said())
	}
}

// A bad call does not disturb the calls running next to it.
func TestBadFlowLeavesOtherCallsAlone(t *testing.T) {
	dir := writeFlows(t, map[string]string{
		"main.lua": "say('good') local r = ask_yes_no('ok?') if r then transfer('level2') end hangup('no')",
		"loop.lua": "say('bad') local t = {} while true do t[#t + 1] = string.rep('x', 100) .. #t end",
	})
	rt, err := flows.Load(dir, flows.Config{Routes: map[string]string{"666": "loop.lua"}, Limits: flows.Limits{Instructions: 3_000_000}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	outcomes := make([]flows.Outcome, 20)
	for i := range outcomes {
		wg.Go(func() {
			called := "1919"
			if i%5 == 0 {
				called = "666"
			}
			ch := sim.NewChannel(strings.NewReader("da\n"), nil)
			outcomes[i] = rt.Run(context.Background(), flows.Facts{CallID: fmt.Sprint(i), Called: called}, ch,
				flows.Services{Desk: sim.NewDesk(), Calendar: open(true), Log: slog.New(slog.DiscardHandler)})
		})
	}
	wg.Wait()
	for i, o := range outcomes {
		switch {
		case i%5 == 0 && (o.Queue != flows.QueueLevel1 || !errors.Is(o.Err, flows.ErrLimit)):
			t.Errorf("bad call %d: %+v", i, o)
		case i%5 != 0 && (o.Queue != "level2" || o.Err != nil):
			t.Errorf("good call %d: %+v", i, o)
		}
	}
}

// blockingChannel says everything and waits in Listen until its input
// arrives or the call ends.
type blockingChannel struct {
	said  chan string
	input chan flows.Input
}

func newBlocking() *blockingChannel {
	return &blockingChannel{said: make(chan string, 100), input: make(chan flows.Input)}
}

func (b *blockingChannel) Say(ctx context.Context, p flows.Prompt) (flows.Played, error) {
	b.said <- sim.PromptText(p)
	return flows.Played{Heard: sim.PromptText(p)}, ctx.Err()
}

func (b *blockingChannel) Listen(ctx context.Context, l flows.Listen) (flows.Input, error) {
	select {
	case in := <-b.input:
		return in, nil
	case <-ctx.Done():
		return flows.Input{}, fmt.Errorf("%w: %w", flows.ErrHangup, ctx.Err())
	}
}

// The caller hanging up stops the script promptly, whether it waits for
// the caller or computes.
func TestHangupStopsScript(t *testing.T) {
	for name, src := range map[string]string{
		"waiting":   "say('hi') ask_free('speak') say('never')",
		"computing": "say('hi') while true do end",
	} {
		t.Run(name, func(t *testing.T) {
			rt := load(t, map[string]string{"main.lua": src}, flows.Limits{Instructions: 1 << 50, CPU: time.Hour})
			ctx, cancel := context.WithCancel(context.Background())
			ch := newBlocking()
			done := make(chan flows.Outcome)
			go func() {
				done <- rt.Run(ctx, flows.Facts{CallID: "h"}, ch, flows.Services{Desk: sim.NewDesk(), Log: slog.New(slog.DiscardHandler)})
			}()
			<-ch.said
			time.Sleep(20 * time.Millisecond)
			cancel()
			select {
			case o := <-done:
				if o.Kind != flows.OutcomeCaller {
					t.Errorf("outcome %+v, want caller", o)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the script did not stop after the hangup")
			}
		})
	}
}

// CPU time counts only while Lua runs: a call that waits long for the
// caller is not stopped, one that computes is.
func TestCPULimit(t *testing.T) {
	rt := load(t, map[string]string{"main.lua": "local r = ask_free('speak') if r.text == 'loop' then while true do end end hangup('done')"},
		flows.Limits{Instructions: 1 << 50, CPU: 250 * time.Millisecond})
	for _, tc := range []struct {
		text string
		want flows.OutcomeKind
	}{{"fine", flows.OutcomeHangup}, {"loop", flows.OutcomeTransfer}} {
		ch := newBlocking()
		done := make(chan flows.Outcome)
		go func() {
			done <- rt.Run(context.Background(), flows.Facts{CallID: "cpu"}, ch, flows.Services{Desk: sim.NewDesk(), Log: slog.New(slog.DiscardHandler)})
		}()
		<-ch.said
		time.Sleep(600 * time.Millisecond) // waiting for the caller is not CPU
		ch.input <- flows.Input{Mode: flows.InputSpeech, Text: tc.text, Confidence: 1}
		o := <-done
		if o.Kind != tc.want {
			t.Errorf("%s: outcome %+v, want %s", tc.text, o, tc.want)
		}
		if tc.want == flows.OutcomeTransfer && (o.Err == nil || !strings.Contains(o.Err.Error(), "computed for more than")) {
			t.Errorf("%s: err %v", tc.text, o.Err)
		}
	}
}

// The sandbox has no way out: no files, processes, environment, code
// loading; require stays inside the flows folder.
func TestSandbox(t *testing.T) {
	rt := load(t, map[string]string{
		"main.lua": `
for _, name in ipairs({"io", "dofile", "loadfile", "load", "loadstring", "collectgarbage", "getfenv", "setfenv",
                       "module", "package", "debug", "coroutine", "newproxy", "channel"}) do
  if _G[name] ~= nil then error("sandbox leaks " .. name) end
end
for _, name in ipairs({"execute", "remove", "rename", "getenv", "exit", "tmpname", "setlocale"}) do
  if os[name] ~= nil then error("sandbox leaks os." .. name) end
end
if string.dump ~= nil then error("sandbox leaks string.dump") end
for _, bad in ipairs({"../etc/passwd", "/etc/passwd", "lib/../../x", "lib.missing"}) do
  local ok = pcall(require, bad)
  if ok then error("require accepted " .. bad) end
end
-- the guarded string functions behave as Lua's
local s, e, cap = string.find("buletin pierdut", "(p%a+)")
assert(s == 9 and e == 15 and cap == "pierdut", "find")
assert(("abc"):find("b", 1, true) == 2, "plain find")
assert(string.match("nr 1234", "%d+") == "1234", "match")
local words = {}
for w in string.gmatch("unu doi trei", "%a+") do words[#words + 1] = w end
assert(table.concat(words, ",") == "unu,doi,trei", "gmatch, table.concat")
assert(string.gsub("a-b", "%a", { a = "x" }) == "x-b", "gsub table")
assert(string.gsub("a-b", "%a", function(c) return c:upper() end) == "A-B", "gsub function")
assert(string.gsub("hello", "l", "%0%0") == "hellllo", "gsub string")
assert(string.format("%05d|%s", 42, "x") == "00042|x", "format")
assert(string.rep("ab", 3) == "ababab" and ("x"):upper() == "X", "rep, upper")
assert(1 .. 2 == "12" and "a" .. 1.5 == "a1.5", "concat numbers")
local mt = setmetatable({}, { __concat = function(a, b) return "meta" end })
assert(mt .. "x" == "meta", "__concat")
local m = require("lib.greet")
if require("lib.greet") ~= m then error("module loaded twice") end
local ok = pcall(play, "../secret.wav")
if ok then error("play left the folder") end
if os.time() ~= 1795000000 then error("os.time is not the call's clock: " .. os.time()) end
say(m.hello())
`,
		"lib/greet.lua": "local M = {} function M.hello() return 'salut ' .. os.date('%Y', 0) end return M",
	}, flows.Limits{})
	ch := sim.NewChannel(strings.NewReader(""), nil)
	var said []string
	ch.Lines = func(l string) { said = append(said, l) }
	o := rt.Run(context.Background(), flows.Facts{CallID: "s"}, ch, flows.Services{Log: slog.New(slog.DiscardHandler),
		Now: func() time.Time { return time.Unix(1795000000, 0) }})
	if o.Err != nil || len(said) != 1 || !strings.HasPrefix(said[0], "ivr: salut 19") {
		t.Fatalf("outcome %+v, said %q", o, said)
	}
}

// The library and API functions are shared by every call's state, the
// tables that hold them are not: what one call changes in string, math,
// table, os, kb, log or the globals, another call never sees, also when
// the calls run at the same time.
func TestCallsDoNotShareLibraryTables(t *testing.T) {
	rt := load(t, map[string]string{
		"main.lua": `
if string.custom ~= nil or _G.mark ~= nil or getmetatable("").custom ~= nil or
   string.upper == nil or math.floor == nil or table.insert == nil or os.time == nil or
   kb.search == nil or log.info == nil or say == nil or ("x"):upper() ~= "X" then
  error("this call sees another call's changes")
end
string.upper = nil
string.custom = 1
math.floor = nil
table.insert = nil
os.time = nil
kb.search = nil
log.info = nil
_G.mark = true
rawset(string, "other", 2)
assert(("x").custom == 1, "the string metatable is the call's string table")
say("ok")
`,
	}, flows.Limits{})
	runOne := func(id string) error {
		ch := sim.NewChannel(strings.NewReader(""), nil)
		var said []string
		ch.Lines = func(l string) { said = append(said, l) }
		o := rt.Run(context.Background(), flows.Facts{CallID: id}, ch, flows.Services{Log: slog.New(slog.DiscardHandler)})
		if o.Err != nil || len(said) != 1 || said[0] != "ivr: ok" {
			return fmt.Errorf("call %s: outcome %+v, said %q", id, o, said)
		}
		return nil
	}
	for i := range 3 {
		if err := runOne(fmt.Sprint("seq", i)); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, 20)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() { errs <- runOne(fmt.Sprint("par", i)) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// A syntax error or an unknown function refuses the flow at load time
// with file:line; Lint says the same.
func TestLoadAndLintErrors(t *testing.T) {
	cases := map[string]string{
		"say('a')\nif x then\n":                              "main.lua:0: syntax error at end of file",
		"say('a')\nlocal = 3\n":                              "main.lua:2:7: syntax error",
		"say('a')\nsya('b')\n":                               "main.lua:2: call to unknown function sya() (did you mean say?)",
		"say('a')\nkb.serch('x')\n":                          "main.lua:2: call to unknown function kb.serch()",
		"say('a', {}, 3)\n":                                  "main.lua:1: say() takes at most 2 argument(s), got 3",
		"ticket.lookup()\n":                                  "main.lua:1: ticket.lookup() takes at least 1 argument(s), got 0",
		"local t = {}\nt.x = 1\nvars.y = call.caller\nfoo()": "main.lua:4: call to unknown function foo()",
		"say('a')\nask{prompt = 'x', retires = 3}\n":         "main.lua:2: ask: unknown field \"retires\"",
		"ask_yes_no('x', {timout = 3})\n":                    "main.lua:1: ask_yes_no: unknown field \"timout\" (did you mean timeout?)",
		"local r = kb.serch('x')\n":                          "main.lua:1: call to unknown function kb.serch() (did you mean kb.search?)",
		"local M = require('lib.menu')\n":                    "main.lua:1: require(\"lib.menu\"): no lib/menu.lua in the flows folder",
		"ask{prompt = 'x', options = {\n {id = 'a', key = '1'},\n {id = 'b', key = '1'}}}\n":         "main.lua:3: ask: options[2] has the key \"1\" of options[1]",
		"local M = {{id = 'a', key = '1'}, {id = 'a', key = '2'}}\nask{prompt = 'x', options = M}\n": "main.lua:1: ask: options[2] has the id \"a\" of options[1]",
		"ask{prompt = 'x', options = {{id = 'a', key = '12'}}}\n":                                    "main.lua:1: ask: options[1].key \"12\" is not one key",
		"ask{prompt = 'x', options = {{id = 'a', key = '1',\n synonym = {'b'}}}}\n":                  "main.lua:2: ask: options[1]: unknown field \"synonym\" (did you mean synonyms?)",
		"local n = ask_digits{prompt = 'x', min = 13, max = 4}\n":                                    "main.lua:1: ask_digits: min = 13 is more than max = 4",
		"local n = ask_digits{prompt = 'x', terminator = '12'}\n":                                    "main.lua:1: ask_digits: terminator \"12\"",
		"ticket.open{service = 'pasport'}\n":                                                         "main.lua:1: ticket.open: unknown service \"pasport\" (did you mean passport?)",
		"ticket.open{priority = 'asap'}\n":                                                           "main.lua:1: ticket.open: unknown priority \"asap\"",
		"local h = kb.search('x', {services = 'passport'})\n":                                        "main.lua:1: kb.search: unknown field \"services\" (did you mean service?)",
	}
	for src, want := range cases {
		dir := writeFlows(t, map[string]string{"main.lua": src})
		_, err := flows.Load(dir, flows.Config{})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Load(%q) = %v, want %q", src, err, want)
		}
		diags := flows.Lint(filepath.Join(dir, "main.lua"))
		if len(diags) == 0 || !strings.Contains(diags[0].String(), strings.TrimPrefix(want, "main.lua")) {
			t.Errorf("Lint(%q) = %v, want %q", src, diags, want)
		}
	}
	if d := flows.Lint("main.lua", "tests"); len(d) != 0 {
		t.Errorf("the shipped flows do not lint clean: %v", d)
	}
}

// Routing: the dialed number picks the flow; others get the default.
func TestRouting(t *testing.T) {
	dir := writeFlows(t, map[string]string{"main.lua": "hangup('main')", "passport.lua": "hangup('passport')"})
	rt, err := flows.Load(dir, flows.Config{Routes: map[string]string{"1920": "passport.lua"}})
	if err != nil {
		t.Fatal(err)
	}
	for called, want := range map[string]string{"1920": "passport", "1919": "main", "": "main"} {
		o := rt.Run(context.Background(), flows.Facts{Called: called}, sim.NewChannel(strings.NewReader(""), nil), flows.Services{Log: slog.New(slog.DiscardHandler)})
		if o.Reason != want {
			t.Errorf("called %q: %+v, want %s", called, o, want)
		}
	}
	if _, err := flows.Load(dir, flows.Config{Routes: map[string]string{"1": "missing.lua"}}); err == nil || !strings.Contains(err.Error(), "missing.lua") {
		t.Errorf("a route to a missing flow: %v", err)
	}
	dir = writeFlows(t, map[string]string{"main.lua": "local m = require('lib.menu')\nlocal x = require('lib.gone')"})
	if _, err := flows.Load(dir, flows.Config{}); err == nil || !strings.Contains(err.Error(), `main.lua:1: require("lib.menu"): no lib/menu.lua`) ||
		!strings.Contains(err.Error(), `main.lua:2: require("lib.gone")`) {
		t.Errorf("requires of missing modules: %v", err)
	}
}

// Hot reload: new calls get the new version, a call in progress keeps its
// own; a broken version is refused and the previous one keeps serving.
func TestReload(t *testing.T) {
	dir := writeFlows(t, map[string]string{"main.lua": "say('v1') ask_free('q') say('still v1') hangup('v1')"})
	rt, err := flows.Load(dir, flows.Config{})
	if err != nil {
		t.Fatal(err)
	}
	svc := flows.Services{Log: slog.New(slog.DiscardHandler)}
	old := newBlocking()
	done := make(chan flows.Outcome)
	go func() { done <- rt.Run(context.Background(), flows.Facts{CallID: "old"}, old, svc) }()
	if s := <-old.said; s != "v1" {
		t.Fatalf("said %q", s)
	}
	write := func(src string) {
		if err := os.WriteFile(filepath.Join(dir, "main.lua"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("say('v2') hangup('v2')")
	if err := rt.Reload(); err != nil {
		t.Fatal(err)
	}
	if o := rt.Run(context.Background(), flows.Facts{}, sim.NewChannel(strings.NewReader(""), nil), svc); o.Reason != "v2" {
		t.Errorf("new call after reload: %+v", o)
	}
	old.input <- flows.Input{Mode: flows.InputSpeech, Text: "x"}
	if o := <-done; o.Reason != "v1" {
		t.Errorf("the call in progress changed version: %+v", o)
	}
	write("say('v3'\nhangup()")
	err = rt.Reload()
	if err == nil || !strings.Contains(err.Error(), "main.lua:2") {
		t.Errorf("broken reload: %v, want an error at main.lua:2", err)
	}
	if o := rt.Run(context.Background(), flows.Facts{}, sim.NewChannel(strings.NewReader(""), nil), svc); o.Reason != "v2" || rt.Version() != 2 {
		t.Errorf("after a refused reload: %+v, version %d; want v2 still serving", o, rt.Version())
	}

	// Watch picks a fixed file up by itself.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { rt.Watch(ctx, slog.New(slog.DiscardHandler)) })
	defer func() { cancel(); wg.Wait() }()
	write("hangup('v4')")
	deadline := time.Now().Add(10 * time.Second)
	for rt.Version() != 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if o := rt.Run(context.Background(), flows.Facts{}, sim.NewChannel(strings.NewReader(""), nil), svc); o.Reason != "v4" {
		t.Errorf("Watch did not reload: %+v (version %d)", o, rt.Version())
	}
}

// Every turn reaches the transcript as it happens, in order.
func TestTranscript(t *testing.T) {
	rt := load(t, map[string]string{"main.lua": "say('Bună ziua') local r = ask_digits{prompt='Numărul?', max=6} say{'Ați spus', {digits=r}} hangup()"}, flows.Limits{})
	r := simulate(t, rt, "\n#1234#\n", open(true))
	var got []string
	for _, tu := range r.trans.Turns("c-" + t.Name()) {
		got = append(got, fmt.Sprintf("%s(%s): %s", tu.Speaker, tu.Mode, tu.Text))
	}
	want := []string{"ivr(): Bună ziua", "ivr(): Numărul?", "ivr(): " + rt.Catalog().Text("ro", "ask.no_input") + " Numărul?", "caller(dtmf): 1234", "ivr(): Ați spus 1 2 3 4"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("transcript:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Personal data logged by a flow is masked.
func TestLogMasksPersonalData(t *testing.T) {
	rt := load(t, map[string]string{"main.lua": "log.info('caller ' .. call.caller .. ' cnp 1800101221144', {phone = call.caller, note = 'sunați 0722 123 456'}) hangup()"}, flows.Limits{})
	r := simulate(t, rt, "", open(true))
	out := r.log.String()
	for _, leak := range []string{"0722123", "18001012", "0722 123"} {
		if strings.Contains(out, leak) {
			t.Errorf("the log leaks %q:\n%s", leak, out)
		}
	}
	if !strings.Contains(out, "file=main.lua line=1") || !strings.Contains(out, "phone=[redacted]") {
		t.Errorf("log:\n%s", out)
	}
}

// The shipped flows pass their conversation tests (flows/tests/*.conv).
func TestShippedFlows(t *testing.T) {
	files, err := flowtest.Files("tests")
	if err != nil || len(files) == 0 {
		t.Fatalf("no conversation tests: %v", err)
	}
	kb, closeKB, err := flowtest.OpenKB(context.Background(), ".")
	if err != nil {
		t.Fatal(err)
	}
	defer closeKB()
	if _, real := kb.(flows.KBIndex); !real {
		t.Fatalf("the shipped flows are tested against %T, want the real knowledge base", kb)
	}
	r := flowtest.Runner{FlowsDir: ".", KB: kb}
	for _, f := range files {
		cases, err := flowtest.ParseFile(f)
		if err != nil {
			t.Error(err)
			continue
		}
		for _, c := range cases {
			t.Run(filepath.Base(f)+"/"+c.Name, func(t *testing.T) {
				res := r.Run(context.Background(), c)
				if !res.Pass {
					var b bytes.Buffer
					flowtest.Report(&b, res)
					t.Error(b.String())
				}
			})
		}
	}
}

func writeFile(path, src string) error { return os.WriteFile(path, []byte(src), 0o644) }

// containsAny reports whether s contains one of the |-separated words.
func containsAny(s, words string) bool {
	for _, w := range strings.Split(words, "|") {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

// Said over other voices in the caller's room (Input.OverVoices), a
// spoken choice or "operator" heard with less than OverVoicesConfirmBelow
// is confirmed first; the same answers without other voices are taken as
// they are. A "nu" to the operator's confirmation asks the question again.
func TestOverVoicesConfirms(t *testing.T) {
	const src = `
local r = ask{prompt = "Ce serviciu?", options = {{id = "pasaport", key = "1", say = "pașaport"}, {id = "buletin", key = "2", say = "buletin"}}}
hangup("chose " .. r.option)`
	rt := load(t, map[string]string{"main.lua": src}, flows.Limits{})
	speech := func(text string, conf float64, voices bool) flows.Input {
		return flows.Input{Mode: flows.InputSpeech, Text: text, Confidence: conf, OverVoices: voices}
	}
	for _, tc := range []struct {
		name    string
		inputs  []flows.Input
		asked   string // a prompt the caller must have heard ("" none)
		outcome string // the outcome's reason, or "transfer"
	}{
		{"a choice at 0.6", []flows.Input{speech("pașaport", 0.6, false)}, "", "chose pasaport"},
		{"a choice at 0.6 over voices", []flows.Input{speech("pașaport", 0.6, true), speech("da", 0.9, true)}, "Am înțeles: pașaport. Este corect?", "chose pasaport"},
		{"a choice at 0.9 over voices", []flows.Input{speech("buletin", 0.9, true)}, "", "chose buletin"},
		{"operator at 0.3", []flows.Input{speech("operator", 0.3, false)}, "", "transfer"},
		{"operator at 0.3 over voices, yes", []flows.Input{speech("operator", 0.3, true), speech("da", 0.9, true)}, "Am înțeles: operator. Este corect?", "transfer"},
		{"operator at 0.3 over voices, no", []flows.Input{speech("operator", 0.3, true), speech("nu", 0.9, true), speech("buletin", 0.9, true)}, "Am înțeles: operator. Este corect?", "chose buletin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch := newBlocking()
			done := make(chan flows.Outcome, 1)
			go func() {
				done <- rt.Run(context.Background(), flows.Facts{CallID: "v"}, ch, flows.Services{Desk: sim.NewDesk(), Calendar: open(true), Log: slog.New(slog.DiscardHandler)})
			}()
			var heard []string
			var o flows.Outcome
			for i := 0; ; {
				select {
				case s := <-ch.said:
					heard = append(heard, s)
					continue
				case o = <-done:
				case ch.input <- func() flows.Input {
					if i < len(tc.inputs) {
						return tc.inputs[i]
					}
					return flows.Input{Mode: flows.InputNone}
				}():
					i++
					continue
				}
				break
			}
			got := o.Reason
			if o.Kind == flows.OutcomeTransfer {
				got = "transfer"
			}
			if got != tc.outcome {
				t.Errorf("outcome %q (%+v), want %q; heard %q", got, o, tc.outcome, heard)
			}
			all := strings.Join(heard, "\n")
			if tc.asked != "" && !strings.Contains(all, tc.asked) {
				t.Errorf("the caller was not asked %q; heard %q", tc.asked, heard)
			} else if tc.asked == "" && strings.Contains(all, "Este corect?") {
				t.Errorf("the answer was confirmed; heard %q", heard)
			}
		})
	}
}
