package flows

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/govline/ivr/redact"
	"github.com/govline/ivr/speech"
)

// Timing and retry defaults of the ask functions; a flow overrides them
// per question (timeout=, retries=, inter_digit=).
const (
	DefaultNoInput    = 5 * time.Second // wait for the caller to start
	DefaultInterDigit = 3 * time.Second // longest pause between keys
	DefaultRetries    = 2               // asked again twice: three tries
	// DefaultConfirmBelow: a spoken choice recognized with a lower
	// confidence is confirmed ("I understood: passport. Is that right?").
	// The agent console marks such answers unsure: one threshold.
	DefaultConfirmBelow = speech.ConfirmBelow
	maxRetries          = 5
	maxTimeout          = 60 * time.Second
)

// msg is the catalog's sentence "ask."+key in the call's language, its
// %s filled with args.
func (c *call) msg(key string, args ...any) string {
	return c.sentence("ask."+key, args...)
}

// sentence is the catalog's sentence id in the call's language; in the
// web chat, its written variant id_chat when the catalog has one.
func (c *call) sentence(id string, args ...any) string {
	if c.medium() == "chat" && c.v.cat.Has(id+"_chat") {
		id += "_chat"
	}
	return c.v.cat.Text(c.lang, id, args...)
}

// DefaultHoursText is how the operators' hours are said when
// Services.HoursText is not set: the catalog's hours.default, in each of
// its languages (the default calendar, tickets.DefaultCalendar, as ivrd's
// embedded configuration says it).
func DefaultHoursText() map[string]string {
	cat := DefaultCatalog()
	out := map[string]string{}
	for _, l := range cat.Langs() {
		out[l] = cat.Text(l, "hours.default")
	}
	return out
}

// hoursSentence is hours.describe(): "Operatorii sunt disponibili de luni
// până vineri, între orele 8 și 20", without a final stop; "" when the
// line has no text for the hours.
func (c *call) hoursSentence() string {
	h := c.sentence("hours.default")
	if c.svc.HoursText != nil {
		h = c.svc.HoursText[c.lang]
	}
	if h == "" {
		return ""
	}
	return c.msg("hours", h)
}

// registerAPI installs the flow API's functions in the template state
// (libTemplate); each finds its call with callOf.
func registerAPI(L *lua.LState) {
	// m makes a shared function of a method of the call.
	m := func(f func(*call, *lua.LState) int) lua.LGFunction {
		return func(L *lua.LState) int { return f(callOf(L), L) }
	}
	fns := map[string]lua.LGFunction{
		"say":          m((*call).luaSay),
		"play":         m((*call).luaPlay),
		"say_digits":   m((*call).luaSayDigits),
		"ask":          m((*call).luaAsk),
		"ask_yes_no":   m((*call).luaAskYesNo),
		"ask_digits":   m((*call).luaAskDigits),
		"ask_free":     m((*call).luaAskFree),
		"transfer":     m((*call).luaTransfer),
		"hangup":       m((*call).luaHangup),
		"set_language": m((*call).luaSetLanguage),
		"tr":           func(L *lua.LState) int { L.Push(lua.LString(callOf(L).text(L.CheckAny(1)))); return 1 },
		"text":         m((*call).luaText),
		"conversation": func(L *lua.LState) int { L.Push(lua.LString(callOf(L).conversation())); return 1 },
		"normalize":    func(L *lua.LState) int { L.Push(lua.LString(Normalize(L.CheckString(1)))); return 1 },
		"operator":     func(L *lua.LState) int { callOf(L).operatorHandoff(L, L.OptString(1, "")); return 0 },
		"require":      m((*call).require),
		"print":        m((*call).luaPrint),
	}
	for n, f := range fns {
		L.SetGlobal(n, L.NewFunction(f))
	}
	logAt := func(level slog.Level) lua.LGFunction {
		return func(L *lua.LState) int { return callOf(L).luaLog(L, level) }
	}
	tables := map[string]map[string]lua.LGFunction{
		"kb":     {"search": m((*call).luaKBSearch), "get": m((*call).luaKBGet)},
		"ticket": {"open": m((*call).luaTicketOpen), "note": m((*call).luaTicketNote), "lookup": m((*call).luaTicketLookup), "valid": m((*call).luaTicketValid), "rate": m((*call).luaTicketRate)},
		"hours":  {"open": m((*call).luaHoursOpen), "describe": m((*call).luaHoursDescribe), "next_open": m((*call).luaHoursNext)},
		"log": {
			"debug": logAt(slog.LevelDebug), "info": logAt(slog.LevelInfo),
			"warn": logAt(slog.LevelWarn), "error": logAt(slog.LevelError),
		},
	}
	for n, m := range tables {
		L.SetGlobal(n, L.SetFuncs(L.CreateTable(0, len(m)), m))
	}
}

// registerCall sets the call's own globals: call (its facts) and vars.
func registerCall(L *lua.LState, c *call) {
	// Tables sized to what they hold: gopher-lua's default (32 array and
	// 32 hash slots) costs about 3 KB a table, in every waiting call and
	// chat session.
	call := L.CreateTable(0, 10)
	call.RawSetString("id", lua.LString(c.facts.CallID))
	call.RawSetString("caller", lua.LString(c.facts.Caller))
	call.RawSetString("called", lua.LString(c.facts.Called))
	call.RawSetString("lang", lua.LString(c.lang))
	call.RawSetString("start", lua.LNumber(c.facts.Start.Unix()))
	call.RawSetString("flow", lua.LString(c.flow))
	call.RawSetString("speech", lua.LBool(c.hears()))
	call.RawSetString("channel", lua.LString(c.medium()))
	if c.facts.Ticket != "" {
		call.RawSetString("ticket", lua.LString(c.facts.Ticket))
	}
	call.RawSetString("survey_call", lua.LBool(c.facts.SurveyCall))
	c.callTbl = call
	L.SetGlobal("call", call)
	L.SetGlobal("vars", L.CreateTable(0, 0))
}

// medium names the caller's channel (call.channel): "phone" unless the
// Channel says otherwise (flows.Medium).
func (c *call) medium() string {
	if m, ok := c.ch.(Medium); ok {
		return m.Medium()
	}
	return "phone"
}

// hears reports whether the caller can answer by voice (call.speech).
func (c *call) hears() bool {
	if h, ok := c.ch.(Hearing); ok {
		return h.Speech()
	}
	return true
}

// text resolves a prompt value to a string in the call's language: a
// string, a number, or a table {ro = "...", en = "..."}.
func (c *call) text(v lua.LValue) string {
	switch v := v.(type) {
	case lua.LString:
		return string(v)
	case lua.LNumber:
		return v.String()
	case *lua.LTable:
		if s, ok := v.RawGetString(c.lang).(lua.LString); ok {
			return string(s)
		}
		for _, l := range []string{"ro", "en"} {
			if s, ok := v.RawGetString(l).(lua.LString); ok {
				return string(s)
			}
		}
		if s, ok := v.RawGetString("text").(lua.LString); ok {
			return string(s)
		}
	}
	return ""
}

// parts turns a say() argument into prompt parts: a string, a language
// table, {digits = "123"}, {audio = "prompts/x.wav", text = "..."},
// {lang = "en", text = "..."} (a part in the other language), or a list of
// those.
func (c *call) parts(L *lua.LState, v lua.LValue) []Part {
	switch t := v.(type) {
	case lua.LString, lua.LNumber:
		s := c.text(t)
		if s == "" {
			return nil
		}
		return []Part{{Kind: PartText, Value: s, Text: s}}
	case *lua.LTable:
		if d := t.RawGetString("digits"); d != lua.LNil {
			return []Part{digitsPart(lua.LVAsString(d))}
		}
		if a, ok := t.RawGetString("audio").(lua.LString); ok {
			return []Part{c.audioPart(L, string(a), c.text(t.RawGetString("text")))}
		}
		if lang, ok := t.RawGetString("lang").(lua.LString); ok {
			// {lang = "en", text = "For English, press 9."}: a part in
			// another language than the call's.
			if !c.v.cat.HasLang(string(lang)) {
				L.RaiseError("say: lang = %q: the line speaks \"ro\" and \"en\"", string(lang))
			}
			s, ok := t.RawGetString("text").(lua.LString)
			if !ok || s == "" {
				L.RaiseError("say: a part with lang = %q needs text = \"...\"", string(lang))
			}
			return []Part{{Kind: PartText, Value: string(s), Text: string(s), Lang: string(lang)}}
		}
		if t.RawGetString("ro") != lua.LNil || t.RawGetString("en") != lua.LNil {
			return c.parts(L, lua.LString(c.text(t)))
		}
		var out []Part
		for i := 1; i <= t.Len(); i++ {
			out = append(out, c.parts(L, t.RawGetInt(i))...)
		}
		return out
	case *lua.LNilType:
		return nil
	}
	L.RaiseError("cannot say a %s value", v.Type().String())
	return nil
}

// audioPart resolves a recording's path inside the flows folder.
func (c *call) audioPart(L *lua.LState, p, text string) Part {
	if !filepath.IsLocal(filepath.FromSlash(p)) {
		L.RaiseError("play %q: a recording must be a path inside the flows folder", p)
	}
	abs := filepath.Join(c.rt.dir, filepath.FromSlash(p))
	if _, err := os.Stat(abs); err != nil {
		L.RaiseError("play %q: no such recording in the flows folder", p)
	}
	return Part{Kind: PartAudio, Value: abs, Text: text}
}

// stopIfGone stops the script when the caller hung up or the call's
// context ended, and turns other channel errors into script errors.
func (c *call) stopIfGone(L *lua.LState, what string, err error) {
	if err == nil {
		return
	}
	if c.hungUp || c.parent.Err() != nil {
		c.hungUp = true
		if c.hook.stop == nil {
			c.hook.stop = ErrHangup
		}
		L.RaiseError("caller hung up")
	}
	if c.ctx.Err() != nil { // the wall-time limit
		L.RaiseError("%s", c.ctx.Err())
	}
	L.RaiseError("%s: %v", what, err)
}

func (c *call) sayParts(L *lua.LState, parts []Part, bargeIn bool) Played {
	if len(parts) == 0 {
		return Played{}
	}
	defer c.block()()
	p, err := c.say(c.ctx, Prompt{Lang: c.lang, Parts: parts, BargeIn: bargeIn})
	c.stopIfGone(L, "say", err)
	return p
}

func optBool(L *lua.LState, t *lua.LTable, key string, def bool) bool {
	if t == nil {
		return def
	}
	switch v := t.RawGetString(key).(type) {
	case lua.LBool:
		return bool(v)
	case *lua.LNilType:
		return def
	default:
		L.RaiseError("%s: want true or false, got a %s", key, v.Type().String())
	}
	return def
}

func optNumber(L *lua.LState, t *lua.LTable, key string, def float64) float64 {
	if t == nil {
		return def
	}
	switch v := t.RawGetString(key).(type) {
	case lua.LNumber:
		return float64(v)
	case *lua.LNilType:
		return def
	default:
		L.RaiseError("%s: want a number, got a %s", key, v.Type().String())
	}
	return def
}

func optTable(L *lua.LState, n int) *lua.LTable {
	switch v := L.Get(n).(type) {
	case *lua.LTable:
		return v
	case *lua.LNilType:
		return nil
	default:
		L.ArgError(n, "want a table of options, got a "+v.Type().String())
	}
	return nil
}

// say(text | {ro=, en=} | parts, {barge_in = true})
func (c *call) luaSay(L *lua.LState) int {
	v := L.CheckAny(1)
	opts := optTable(L, 2)
	p := c.sayParts(L, c.parts(L, v), optBool(L, opts, "barge_in", true))
	L.Push(lua.LBool(p.Interrupted))
	return 1
}

// play("prompts/ro/x.wav", "transcript of the recording")
func (c *call) luaPlay(L *lua.LState) int {
	p := c.sayParts(L, []Part{c.audioPart(L, L.CheckString(1), L.OptString(2, ""))}, true)
	L.Push(lua.LBool(p.Interrupted))
	return 1
}

// say_digits("1234")
func (c *call) luaSayDigits(L *lua.LState) int {
	s := lua.LVAsString(L.CheckAny(1))
	opts := optTable(L, 2)
	c.sayParts(L, []Part{digitsPart(s)}, optBool(L, opts, "barge_in", true))
	return 0
}

// asker is one question: what to say, how to listen, how to read the
// answer; the loop around it retries, offers the keypad and the operator.
type asker struct {
	prompt      lua.LValue
	promptParts []Part // instead of prompt, when set
	listen      Listen
	retries     int
	noInput     lua.LValue
	noMatch     lua.LValue
	bargeIn     bool
	operator    bool   // "operator" / 0 leads to an operator
	zeroIsKey   bool   // 0 is an answer here (an option's key, a digit)
	keypad      string // the keypad offer after two misses; "" for none
	sensitive   bool   // the answer is personal data (sensitive = true)
	keysOnly    bool   // a spoken answer is no answer (speech = false)
	// interpret reads an answer; ok false is a no-match.
	interpret func(in Input) (v lua.LValue, ok bool)
}

func (c *call) commonAsk(L *lua.LState, opts *lua.LTable, a *asker) {
	a.retries = int(optNumber(L, opts, "retries", DefaultRetries))
	a.retries = max(0, min(a.retries, maxRetries))
	to := time.Duration(optNumber(L, opts, "timeout", DefaultNoInput.Seconds()) * float64(time.Second))
	a.listen.NoInput = max(time.Second, min(to, maxTimeout))
	a.listen.Lang = c.lang
	a.bargeIn = optBool(L, opts, "barge_in", true)
	a.operator = optBool(L, opts, "operator", true)
	a.sensitive = optBool(L, opts, "sensitive", false)
	a.keysOnly = !optBool(L, opts, "speech", true)
	if opts != nil {
		a.noInput = opts.RawGetString("no_input")
		a.noMatch = opts.RawGetString("no_match")
	}
}

func (c *call) runAsk(L *lua.LState, a *asker) lua.LValue {
	var reprompt lua.LValue = lua.LNil
	misses, offered := 0, false
	for attempt := 0; attempt <= a.retries; attempt++ {
		var parts []Part
		if reprompt != lua.LNil { // the caller was not heard or not understood
			parts = c.parts(L, reprompt)
			c.note("flow.retry", Prompt{Parts: parts}.Said())
		}
		if misses >= 2 && a.keypad != "" && !offered {
			parts = append(parts, Part{Kind: PartText, Value: a.keypad, Text: a.keypad})
			offered = true
		}
		if a.promptParts != nil {
			parts = append(parts, a.promptParts...)
		} else {
			parts = append(parts, c.parts(L, a.prompt)...)
		}
		in := c.turn(L, parts, a)
		if in.Mode == InputNone || (strings.TrimSpace(in.Text) == "" && !in.Untranscribed) {
			misses++
			reprompt = orDefault(a.noInput, c.msg("no_input"))
			continue
		}
		if a.keysOnly && in.Mode != InputDTMF {
			misses++
			reprompt = orDefault(a.noMatch, c.msg("no_match"))
			continue
		}
		if a.operator && c.asksOperator(in, a.zeroIsKey) {
			// Over other voices a low "operator" is asked about first
			// (a television says it too); the confirmation itself
			// takes no escape, so it cannot ask about itself.
			overVoices := in.Mode == InputSpeech && in.OverVoices && in.Confidence < OverVoicesConfirmBelow
			if overVoices && !c.yesNo(L, []Part{textPart(c.msg("confirm", "operator"))}, false) {
				misses++
				reprompt = orDefault(a.noMatch, c.msg("no_match"))
				continue
			}
			c.operatorEscape(L, in.Text)
		}
		if v, ok := a.interpret(in); ok {
			return v
		}
		misses++
		reprompt = orDefault(a.noMatch, c.msg("no_match"))
	}
	return lua.LNil
}

// turn says a question and listens for its answer. A sensitive question's
// prompt and answer are marked so for the channel (not what follows: a
// read-back's yes or no).
func (c *call) turn(L *lua.LState, parts []Part, a *asker) Input {
	if a.sensitive {
		c.setSensitive(true)
		defer c.setSensitive(false)
	}
	c.sayParts(L, parts, a.bargeIn)
	return c.doListen(L, a.listen)
}

func orDefault(v lua.LValue, def string) lua.LValue {
	if v == nil || v == lua.LNil {
		return lua.LString(def)
	}
	return v
}

func (c *call) doListen(L *lua.LState, l Listen) Input {
	defer c.block()()
	in, err := c.listen(c.ctx, l)
	c.stopIfGone(L, "listen", err)
	c.callTbl.RawSetString("speech", lua.LBool(c.hears())) // a line may fall back to keys
	return in
}

func (c *call) asksOperator(in Input, zeroIsKey bool) bool {
	if in.Mode == InputDTMF {
		return !zeroIsKey && strings.TrimRight(in.Text, "#") == "0"
	}
	return WantsOperator(in.Text)
}

// operatorEscape runs the flow's on_operator(heard) when it defines one,
// else the default hand-off. Neither returns when the flow ends there.
func (c *call) operatorEscape(L *lua.LState, heard string) {
	c.log.Info("caller asked for an operator")
	if fn, ok := L.GetGlobal("on_operator").(*lua.LFunction); ok {
		L.Push(fn)
		L.Push(lua.LString(heard))
		L.Call(1, 0)
	}
	c.operatorHandoff(L, "")
}

// operatorHandoff opens (or notes) the call's ticket with everything
// gathered, then transfers to level I when operators work; otherwise it
// tells the ticket number and hangs up.
func (c *call) operatorHandoff(L *lua.LState, reason string) {
	if reason == "" {
		reason = "Apelantul a cerut un operator."
	}
	number := c.ticket
	if c.svc.Desk != nil {
		done := c.block()
		wctx, cancel := durable(c.ctx) // a hangup now must not lose the ticket
		defer cancel()
		if number == "" {
			n, err := c.svc.Desk.Open(wctx, c.draft(reason, "normal"))
			if err != nil {
				c.log.Error("operator: ticket not opened", "err", err)
			} else {
				number, c.ticket = n, n
			}
		} else if err := c.svc.Desk.Note(wctx, number, reason+"\n\n"+c.conversation()); err != nil {
			c.log.Warn("operator: note not added", "ticket", number, "err", err)
		}
		done()
	}
	if c.operatorsOpen() {
		c.sayParts(L, []Part{textPart(c.msg("transfer"))}, false)
		c.end(L, Outcome{Kind: OutcomeTransfer, Queue: QueueLevel1, Ticket: number})
	}
	parts := []Part{textPart(c.msg("closed"))}
	if h := c.hoursSentence(); h != "" {
		parts = append(parts, textPart(h+"."))
	}
	if number != "" {
		parts = append(parts, textPart(c.msg("ticket")), digitsPart(number))
	}
	parts = append(parts, textPart(c.msg("callback")))
	c.sayParts(L, parts, false)
	c.end(L, Outcome{Kind: OutcomeHangup, Reason: "operators closed", Ticket: number})
}

func textPart(s string) Part { return Part{Kind: PartText, Value: s, Text: s} }

// end stops the script with an outcome; pcall cannot catch it for good.
func (c *call) end(L *lua.LState, o Outcome) {
	if o.Kind == OutcomeTransfer && o.Summary == "" {
		o.Summary = c.summary()
	}
	c.outcome = &o
	c.hook.stop = errEnded
	L.RaiseError("flow ended")
}

// option is one choice of ask{options=...}.
type option struct {
	id     string
	key    string
	label  string   // in the call's language
	spoken []string // the phrases as written, for the recognizer
	choice
}

func (c *call) readOptions(L *lua.LState, t *lua.LTable) []option {
	var out []option
	keys, ids := map[string]int{}, map[string]int{}
	for i := 1; i <= t.Len(); i++ {
		ot, ok := t.RawGetInt(i).(*lua.LTable)
		if !ok {
			L.RaiseError("ask: options[%d] must be a table {id=, key=, say=, synonyms=}", i)
		}
		o := option{key: lua.LVAsString(ot.RawGetString("key")), label: c.text(ot.RawGetString("say"))}
		if o.key != "" && !oneKey(o.key) {
			L.RaiseError("ask: options[%d].key %q: want one key (0-9, * or #)", i, o.key)
		}
		if j, dup := keys[o.key]; dup && o.key != "" {
			L.RaiseError("ask: options[%d] and options[%d] have the same key %q", j, i, o.key)
		}
		keys[o.key] = i
		o.id = lua.LVAsString(ot.RawGetString("id"))
		if o.id == "" {
			o.id = o.key
		}
		if o.id == "" {
			o.id = strconv.Itoa(i)
		}
		if j, dup := ids[o.id]; dup {
			L.RaiseError("ask: options[%d] and options[%d] have the same id %q", j, i, o.id)
		}
		ids[o.id] = i
		var phrases []string
		addPhrase := func(v lua.LValue) {
			if s, ok := v.(lua.LString); ok && Normalize(string(s)) != "" {
				phrases = append(phrases, Normalize(string(s)))
				o.spoken = append(o.spoken, string(s))
			}
		}
		switch say := ot.RawGetString("say").(type) {
		case lua.LString:
			addPhrase(say)
		case *lua.LTable: // both languages: a caller may answer in either
			say.ForEach(func(_, v lua.LValue) { addPhrase(v) })
		}
		var addList func(v lua.LValue)
		addList = func(v lua.LValue) {
			switch s := v.(type) {
			case lua.LString:
				addPhrase(s)
			case *lua.LTable:
				s.ForEach(func(_, v lua.LValue) { addList(v) })
			}
		}
		addList(ot.RawGetString("synonyms"))
		o.choice = choice{id: o.id, key: o.key, phrases: phrases}
		out = append(out, o)
	}
	return out
}

// oneKey reports whether s is one key of the phone's keypad.
func oneKey(s string) bool { return len(s) == 1 && strings.Contains("0123456789*#", s) }

// ask{prompt=, options={{id=, key=, say=, synonyms={}}}, retries=, timeout=,
// no_input=, no_match=, barge_in=, operator=, confirm_below=}
func (c *call) luaAsk(L *lua.LState) int {
	spec := L.CheckTable(1)
	a := &asker{prompt: spec.RawGetString("prompt")}
	if a.prompt == lua.LNil {
		L.ArgError(1, "ask: prompt is missing")
	}
	c.commonAsk(L, spec, a)
	var opts []option
	if ot, ok := spec.RawGetString("options").(*lua.LTable); ok {
		opts = c.readOptions(L, ot)
	}
	if len(opts) == 0 {
		a.listen.Expect = ExpectFree
		a.interpret = func(in Input) (lua.LValue, bool) { return c.result(L, in, nil), true }
		L.Push(c.runAsk(L, a))
		return 1
	}
	confirmBelow := optNumber(L, spec, "confirm_below", DefaultConfirmBelow)
	free := optBool(L, spec, "free", false)
	a.listen.Expect = ExpectChoice
	choices := make([]choice, len(opts))
	var hint strings.Builder
	hint.WriteString(c.msg("keypad"))
	for i, o := range opts {
		choices[i] = o.choice
		a.listen.Phrases = append(a.listen.Phrases, o.spoken...)
		a.listen.Options = append(a.listen.Options, Option{Key: o.key, Label: o.label})
		if o.key == "0" {
			a.zeroIsKey = true
		}
		if o.key != "" && o.label != "" {
			hint.WriteString(" " + c.msg("for", o.label, o.key))
		}
		if o.key != "" {
			a.listen.MaxDigits = 1
		}
	}
	if a.listen.MaxDigits > 0 {
		a.keypad = hint.String()
	}
	a.operator = a.operator && !slicesContainsPhrase(choices, WantsOperator)
	a.interpret = func(in Input) (lua.LValue, bool) {
		idx := -1
		if in.Mode == InputDTMF {
			keys := strings.TrimRight(in.Text, "#")
			for i, o := range opts {
				if o.key != "" && o.key == keys {
					idx = i
				}
			}
		} else {
			idx = matchChoice(in.Text, choices)
			if idx < 0 {
				if d, ok := SpokenDigits(in.Text); ok { // "one", "unu": the key said aloud
					for i, o := range opts {
						if o.key == d {
							idx = i
						}
					}
				}
			}
			if idx >= 0 && unsure(in, confirmBelow) {
				label := opts[idx].label
				if label == "" {
					label = in.Text
				}
				if !c.confirm(L, c.msg("confirm", label)) {
					return nil, false
				}
			}
		}
		if idx < 0 {
			// Free speech: the flow decides; but words heard with less
			// than the confirmation threshold that name no option are
			// most likely not what the caller said (noise, a voice in
			// the room forced into the grammar): asked again.
			// A bare "da" or "nu" answers no question that has no yes/no
			// option: asked again rather than searched as a request (a
			// voice in the room is often forced into these short words).
			if free && in.Mode == InputSpeech && !unsure(in, confirmBelow) && !bareYesNo(in.Text) {
				return c.result(L, in, nil), true
			}
			return nil, false
		}
		return c.result(L, in, &opts[idx]), true
	}
	L.Push(c.runAsk(L, a))
	return 1
}

// slicesContainsPhrase reports whether an option answers to a phrase for
// which f is true (an option "operator" takes precedence over the escape).
func slicesContainsPhrase(cs []choice, f func(string) bool) bool {
	for _, c := range cs {
		for _, p := range c.phrases {
			if f(p) {
				return true
			}
		}
	}
	return false
}

// confirm asks a yes/no question once (with one retry), false unless yes.
// "Operator" (or 0) leads to an operator here too: a caller who paused in
// the middle of "vreau să vorbesc ... cu un operator" has the rest of the
// sentence heard as the answer to the confirmation.
func (c *call) confirm(L *lua.LState, question string) bool {
	return c.confirmParts(L, []Part{textPart(question)})
}

// confirmParts is confirm with the question as prompt parts (a number read
// back, masked in the transcript when it is sensitive).
func (c *call) confirmParts(L *lua.LState, question []Part) bool {
	return c.yesNo(L, question, true)
}

// unsure reports whether a spoken answer must be confirmed: heard with
// less than below, or over other voices in the caller's room with less
// than OverVoicesConfirmBelow (unless below is 0: the flow never
// confirms). Keys are always sure.
func unsure(in Input, below float64) bool {
	if in.Mode != InputSpeech {
		return false
	}
	return in.Confidence < below || (in.OverVoices && in.Confidence < OverVoicesConfirmBelow && below > 0)
}

// yesNo asks question for a yes or a no (true for yes); operator says
// whether the question takes the operator escape.
func (c *call) yesNo(L *lua.LState, question []Part, operator bool) bool {
	a := &asker{promptParts: question, retries: 1, bargeIn: true, operator: operator}
	a.listen = Listen{Lang: c.lang, Expect: ExpectYesNo, Phrases: yesNoPhrases, MaxDigits: 1, NoInput: DefaultNoInput}
	a.interpret = func(in Input) (lua.LValue, bool) {
		switch YesNo(in.Text) {
		case "yes":
			return lua.LTrue, true
		case "no":
			return lua.LFalse, true
		}
		return nil, false
	}
	return c.runAsk(L, a) == lua.LTrue
}

var yesNoPhrases = []string{"da", "nu", "yes", "no", "sigur", "corect"}

// bareYesNo reports whether text is only a yes or a no word, as the
// recognizer hears the escapes every question accepts ("da", "nu", "yes",
// "no").
func bareYesNo(text string) bool {
	switch Normalize(text) {
	case "da", "nu", "yes", "no":
		return true
	}
	return false
}

func (c *call) result(L *lua.LState, in Input, o *option) *lua.LTable {
	t := L.NewTable()
	t.RawSetString("how", lua.LString(in.Mode))
	t.RawSetString("text", lua.LString(in.Text))
	t.RawSetString("confidence", lua.LNumber(in.Confidence))
	if in.Untranscribed {
		t.RawSetString("untranscribed", lua.LTrue)
	}
	if o != nil {
		t.RawSetString("option", lua.LString(o.id))
	}
	return t
}

// ask_yes_no(prompt, {retries=, timeout=, ...}) -> true | false | nil
func (c *call) luaAskYesNo(L *lua.LState) int {
	opts := optTable(L, 2)
	a := &asker{prompt: L.CheckAny(1)}
	c.commonAsk(L, opts, a)
	a.listen.Expect, a.listen.Phrases, a.listen.MaxDigits = ExpectYesNo, yesNoPhrases, 1
	if a.noMatch == nil || a.noMatch == lua.LNil {
		a.noMatch = lua.LString(c.msg("no_match") + " " + c.msg("yes_no"))
	}
	a.interpret = func(in Input) (lua.LValue, bool) {
		switch YesNo(in.Text) {
		case "yes":
			return lua.LTrue, true
		case "no":
			return lua.LFalse, true
		}
		return nil, false
	}
	L.Push(c.runAsk(L, a))
	return 1
}

// ask_digits{prompt=, min=, max=, terminator="#", confirm=, ...} -> "123" | nil
func (c *call) luaAskDigits(L *lua.LState) int {
	spec := L.CheckTable(1)
	a := &asker{prompt: spec.RawGetString("prompt")}
	if a.prompt == lua.LNil {
		L.ArgError(1, "ask_digits: prompt is missing")
	}
	c.commonAsk(L, spec, a)
	lo, hi := int(optNumber(L, spec, "min", 1)), int(optNumber(L, spec, "max", 20))
	if lo < 1 || hi < lo || hi > 64 {
		L.ArgError(1, fmt.Sprintf("ask_digits: min=%d max=%d: want 1 <= min <= max <= 64", lo, hi))
	}
	term := "#"
	if v, ok := spec.RawGetString("terminator").(lua.LString); ok {
		term = string(v)
	}
	if term != "" && term != "#" && term != "*" {
		L.ArgError(1, fmt.Sprintf("ask_digits: terminator %q: want * or # (or \"\" for none)", term))
	}
	a.listen.Expect, a.listen.MinDigits, a.listen.MaxDigits = ExpectDigits, lo, hi
	if term != "" {
		a.listen.Terminator = rune(term[0])
	}
	a.listen.InterDigit = time.Duration(optNumber(L, spec, "inter_digit", DefaultInterDigit.Seconds()) * float64(time.Second))
	a.zeroIsKey = true
	doConfirm := optBool(L, spec, "confirm", false)
	confirmBelow := optNumber(L, spec, "confirm_below", DefaultConfirmBelow)
	a.interpret = func(in Input) (lua.LValue, bool) {
		var d string
		if in.Mode == InputDTMF {
			d = in.Text // the keypad left the terminator out
			if strings.Trim(d, "0123456789") != "" {
				return nil, false
			}
		} else {
			d, _ = SpokenDigits(in.Text)
		}
		if len(d) < lo || len(d) > hi {
			return nil, false
		}
		if a.sensitive {
			c.keepSecret(d, in.Text)
		}
		if doConfirm || (in.Mode == InputSpeech && unsure(in, confirmBelow)) {
			q := textPart(c.msg("digits_ok", spaced(d)))
			if a.sensitive { // the caller hears the number; the transcript keeps it masked
				q.Text = c.msg("digits_ok", MaskAnswer(d))
			}
			if !c.confirmParts(L, []Part{q}) {
				return nil, false
			}
		}
		return lua.LString(d), true
	}
	L.Push(c.runAsk(L, a))
	return 1
}

// ask_free(prompt, {timeout=, retries=, ...}) -> {how=, text=, confidence=} | nil
func (c *call) luaAskFree(L *lua.LState) int {
	opts := optTable(L, 2)
	a := &asker{prompt: L.CheckAny(1)}
	c.commonAsk(L, opts, a)
	a.listen.Expect = ExpectFree
	a.interpret = func(in Input) (lua.LValue, bool) {
		if a.sensitive {
			c.keepSecret(in.Text)
		}
		return c.result(L, in, nil), true
	}
	L.Push(c.runAsk(L, a))
	return 1
}

// transfer(queue, {ticket = number})
func (c *call) luaTransfer(L *lua.LState) int {
	q := L.CheckString(1)
	if strings.TrimSpace(q) == "" {
		L.ArgError(1, "transfer: the queue name is empty")
	}
	if qs := c.svc.Queues; qs != nil && !slices.Contains(qs, q) {
		L.ArgError(1, fmt.Sprintf("transfer(%q): the line has no such queue (its queues: %s)", q, strings.Join(qs, ", ")))
	}
	opts := optTable(L, 2)
	number := c.ticket
	if opts != nil {
		if v := opts.RawGetString("ticket"); v != lua.LNil {
			number = lua.LVAsString(v)
		}
	}
	c.end(L, Outcome{Kind: OutcomeTransfer, Queue: q, Ticket: number})
	return 0
}

// text(id, ...) -> the catalog's sentence id in the call's language, each
// %s filled with the next argument: text("survey.thanks"),
// text("ask.confirm", label). An id the catalog does not have is an error
// (a literal id is checked when the flows load).
func (c *call) luaText(L *lua.LState) int {
	id := L.CheckString(1)
	if !c.v.cat.Has(id) {
		L.ArgError(1, fmt.Sprintf("text(%q): no such sentence in the catalog%s", id, c.v.cat.suggest(id)))
	}
	args := make([]any, 0, L.GetTop()-1)
	for i := 2; i <= L.GetTop(); i++ {
		args = append(args, c.text(L.Get(i)))
	}
	L.Push(lua.LString(c.sentence(id, args...)))
	return 1
}

// hangup(reason)
func (c *call) luaHangup(L *lua.LState) int {
	c.end(L, Outcome{Kind: OutcomeHangup, Reason: L.OptString(1, "flow ended"), Ticket: c.ticket})
	return 0
}

// set_language("ro" | "en")
func (c *call) luaSetLanguage(L *lua.LState) int {
	l := L.CheckString(1)
	if !c.v.cat.HasLang(l) {
		L.ArgError(1, fmt.Sprintf("set_language(%q): the line speaks %s (the languages of the catalog)", l, strings.Join(c.v.cat.Langs(), ", ")))
	}
	c.lang = l
	c.callTbl.RawSetString("lang", lua.LString(l))
	return 0
}

// kb.search(query, {limit = 3, service = "passport"}) -> {{id=, title=, service=, spoken=, score=, confident=}, ...}, err
func (c *call) luaKBSearch(L *lua.LState) int {
	q := c.hide(L.CheckString(1))
	opts := optTable(L, 2)
	o := SearchOptions{Limit: max(1, min(int(optNumber(L, opts, "limit", 3)), 10))}
	if opts != nil {
		switch v := opts.RawGetString("service").(type) {
		case lua.LString:
			o.Service = string(v)
		case *lua.LNilType:
		default:
			L.ArgError(2, "kb.search: service: want a string such as \"passport\", got a "+v.Type().String())
		}
	}
	out := L.NewTable()
	if c.svc.KB == nil {
		L.Push(out)
		L.Push(lua.LString("no knowledge base configured"))
		return 2
	}
	done := c.block()
	hits, err := c.svc.KB.Search(c.ctx, c.lang, q, o)
	done()
	if err != nil {
		c.stopIfCancelled(L)
		c.log.Warn("kb.search failed", "err", err)
		L.Push(out)
		L.Push(lua.LString(err.Error()))
		return 2
	}
	for _, h := range hits {
		out.Append(c.answerTable(L, h))
	}
	L.Push(out)
	return 1
}

// kb.get(id) -> {id=, title=, service=, spoken=, score = 1, confident = true} | nil, err
func (c *call) luaKBGet(L *lua.LState) int {
	id := L.CheckString(1)
	if c.svc.KB == nil {
		L.Push(lua.LNil)
		L.Push(lua.LString("no knowledge base configured"))
		return 2
	}
	done := c.block()
	h, err := c.svc.KB.Get(c.ctx, c.lang, id)
	done()
	if err != nil {
		return c.pushFailure(L, err, ErrNoArticle)
	}
	L.Push(c.answerTable(L, h))
	return 1
}

// answerTable is an article as a flow sees it; the runtime remembers its
// spoken answer, to tell which article answered when it is said.
func (c *call) answerTable(L *lua.LState, h Answer) *lua.LTable {
	if c.spoken == nil {
		c.spoken = map[string]string{}
	}
	c.spoken[h.Spoken] = h.ID
	t := L.NewTable()
	t.RawSetString("id", lua.LString(h.ID))
	t.RawSetString("title", lua.LString(h.Title))
	t.RawSetString("service", lua.LString(h.Service))
	t.RawSetString("spoken", lua.LString(h.Spoken))
	t.RawSetString("score", lua.LNumber(h.Score))
	t.RawSetString("confident", lua.LBool(h.Confident))
	return t
}

// pushFailure returns nil and the error to the flow: "not found" when err
// is notFound, else its message. It stops the script instead when the
// call ended meanwhile.
func (c *call) pushFailure(L *lua.LState, err, notFound error) int {
	c.stopIfCancelled(L)
	L.Push(lua.LNil)
	if errors.Is(err, notFound) {
		L.Push(lua.LString("not found"))
	} else {
		c.log.Warn("service call failed", "err", err)
		L.Push(lua.LString(err.Error()))
	}
	return 2
}

// stopIfCancelled stops the script when the call ended while a service
// call was in progress.
func (c *call) stopIfCancelled(L *lua.LState) {
	if c.parent.Err() != nil {
		c.stopIfGone(L, "", context.Cause(c.parent))
	}
}

// ticket.open{service=, description=, priority=, level=, classification=, articles={}} -> number, err
func (c *call) luaTicketOpen(L *lua.LState) int {
	t := L.CheckTable(1)
	d := TicketDraft{CallID: c.facts.CallID, Caller: c.facts.Caller, Lang: c.lang, Recording: c.facts.Recording, Channel: c.medium(),
		Service:        lua.LVAsString(t.RawGetString("service")),
		Classification: lua.LVAsString(t.RawGetString("classification")),
		Priority:       lua.LVAsString(t.RawGetString("priority")),
		Level:          int(optNumber(L, t, "level", 1)),
		Description:    c.hide(c.text(t.RawGetString("description"))),
	}
	extra, _ := t.RawGetString("personal").(*lua.LTable)
	d.Personal = c.personal(extra)
	if d.Service == "" {
		d.Service = c.varString("service")
	}
	if d.Service == "" {
		d.Service = "other"
	}
	if d.Priority == "" {
		d.Priority = "normal"
	}
	if d.Description == "" {
		d.Description = "Conversația:\n" + c.conversation()
	}
	if a, ok := t.RawGetString("articles").(*lua.LTable); ok {
		a.ForEach(func(_, v lua.LValue) { d.Articles = append(d.Articles, lua.LVAsString(v)) })
	} else {
		d.Articles = c.varList("articles")
	}
	if c.svc.Desk == nil {
		L.Push(lua.LNil)
		L.Push(lua.LString("no ticket desk configured"))
		return 2
	}
	done := c.block()
	wctx, cancel := durable(c.ctx) // a hangup now must not lose the ticket
	n, err := c.svc.Desk.Open(wctx, d)
	cancel()
	done()
	if err != nil {
		c.stopIfCancelled(L)
		c.log.Warn("ticket.open failed", "err", err)
		L.Push(lua.LNil)
		L.Push(lua.LString(err.Error()))
		return 2
	}
	c.ticket = n
	c.log.Info("ticket opened", "ticket", n, "service", d.Service)
	L.Push(lua.LString(n))
	return 1
}

// ticket.note(number, text) -> true | nil, err
func (c *call) luaTicketNote(L *lua.LState) int {
	n, text := lua.LVAsString(L.CheckAny(1)), c.hide(L.CheckString(2))
	if c.svc.Desk == nil {
		L.Push(lua.LNil)
		L.Push(lua.LString("no ticket desk configured"))
		return 2
	}
	done := c.block()
	wctx, cancel := durable(c.ctx)
	err := c.svc.Desk.Note(wctx, n, text)
	cancel()
	done()
	if err != nil {
		c.stopIfCancelled(L)
		L.Push(lua.LNil)
		L.Push(lua.LString(err.Error()))
		return 2
	}
	L.Push(lua.LTrue)
	return 1
}

// Rater is implemented by a Desk that stores a caller's satisfaction
// rating (1 to 5) with a ticket: ticket.rate (the survey after an agent's
// call, survey.lua). Safe for concurrent use.
type Rater interface {
	Rate(ctx context.Context, number string, rating int) error
}

// ticket.rate(number, rating) -> true | nil, err: stores the caller's
// rating, 1 (very dissatisfied) to 5 (very satisfied), with the ticket.
func (c *call) luaTicketRate(L *lua.LState) int {
	n := lua.LVAsString(L.CheckAny(1))
	rating := L.CheckInt(2)
	r, ok := c.svc.Desk.(Rater)
	if !ok {
		L.Push(lua.LNil)
		L.Push(lua.LString("the ticket desk does not store ratings"))
		return 2
	}
	if rating < 1 || rating > 5 {
		L.ArgError(2, fmt.Sprintf("ticket.rate: rating %d is not 1 to 5", rating))
	}
	wctx, cancel := durable(c.ctx) // a hangup now must not lose the rating
	done := c.block()
	err := r.Rate(wctx, n, rating)
	done()
	cancel()
	if err != nil {
		return c.pushFailure(L, err, ErrNoTicket)
	}
	L.Push(lua.LTrue)
	return 1
}

// ticket.lookup(number) -> {number=, service=, status=, status_text=, level=, created=, updated=, deadline=} | nil, err
func (c *call) luaTicketLookup(L *lua.LState) int {
	n := lua.LVAsString(L.CheckAny(1))
	if c.svc.Desk == nil {
		L.Push(lua.LNil)
		L.Push(lua.LString("no ticket desk configured"))
		return 2
	}
	done := c.block()
	st, err := c.svc.Desk.Lookup(c.ctx, n)
	done()
	if err != nil {
		return c.pushFailure(L, err, ErrNoTicket)
	}
	t := L.NewTable()
	t.RawSetString("number", lua.LString(st.Number))
	t.RawSetString("service", lua.LString(st.Service))
	t.RawSetString("status", lua.LString(st.Status))
	said := st.Status
	if c.v.cat.Has("status." + st.Status) {
		said = c.sentence("status." + st.Status)
	}
	t.RawSetString("status_text", lua.LString(said))
	t.RawSetString("level", lua.LNumber(st.Level))
	for k, v := range map[string]time.Time{"created": st.Created, "updated": st.Updated, "deadline": st.Deadline} {
		if !v.IsZero() {
			t.RawSetString(k, lua.LNumber(v.Unix()))
		}
	}
	L.Push(t)
	return 1
}

// NumberChecker is implemented by a Desk whose ticket numbers carry a
// check digit: ticket.valid() asks it, so a misheard number is caught
// before a lookup.
type NumberChecker interface {
	ValidNumber(number string) bool
}

// ticket.valid(number) -> true when the number is well formed (its check
// digit holds); true for any digit string when the desk has no check.
func (c *call) luaTicketValid(L *lua.LState) int {
	n := lua.LVAsString(L.CheckAny(1))
	ok := n != "" && strings.Trim(n, "0123456789") == ""
	if nc, isChecker := c.svc.Desk.(NumberChecker); ok && isChecker {
		ok = nc.ValidNumber(n)
	}
	L.Push(lua.LBool(ok))
	return 1
}

func (c *call) luaHoursOpen(L *lua.LState) int {
	L.Push(lua.LBool(c.operatorsOpen()))
	return 1
}

func (c *call) luaHoursDescribe(L *lua.LState) int {
	L.Push(lua.LString(c.hoursSentence()))
	return 1
}

// hours.next_open() -> "luni la 08:00" / "Monday at 08:00", "" without a calendar
func (c *call) luaHoursNext(L *lua.LState) int {
	if c.svc.Calendar == nil {
		L.Push(lua.LString(""))
		return 1
	}
	now := c.svc.Now()
	t := c.svc.Calendar.NextOpen(now)
	day := c.sentence("weekday." + strings.ToLower(t.Weekday().String()))
	L.Push(lua.LString(c.sentence("hours.next_open", day, t.Format("15:04"))))
	return 1
}

// sensitiveKeys are log field names whose values never reach the log.
var sensitiveKeys = map[string]bool{"caller": true, "phone": true, "telefon": true, "cnp": true,
	"address": true, "adresa": true, "email": true, "name": true, "nume": true, "pin": true}

// luaLog is log.debug, log.info, log.warn and log.error (by level).
func (c *call) luaLog(L *lua.LState, level slog.Level) int {
	msg := redact.Text(c.hide(L.CheckString(1)))
	attrs := []any{}
	file, line := c.where(L)
	attrs = append(attrs, "file", file, "line", line)
	if t, ok := L.Get(2).(*lua.LTable); ok {
		t.ForEach(func(k, v lua.LValue) {
			key := lua.LVAsString(k)
			if sensitiveKeys[strings.ToLower(key)] {
				attrs = append(attrs, key, "[redacted]")
				return
			}
			attrs = append(attrs, key, redact.Text(c.hide(v.String())))
		})
	}
	c.log.Log(c.ctx, level, msg, attrs...)
	return 0
}

// print(...) logs at debug level, masked, as print has no console here.
func (c *call) luaPrint(L *lua.LState) int {
	var parts []string
	for i := 1; i <= L.GetTop(); i++ {
		parts = append(parts, L.ToStringMeta(L.Get(i)).String())
	}
	file, line := c.where(L)
	c.log.Debug(redact.Text(c.hide(strings.Join(parts, "\t"))), "file", file, "line", line)
	return 0
}

// where is the flow file and line calling the current Go function.
func (c *call) where(L *lua.LState) (string, int) {
	if m := luaPos.FindStringSubmatch(L.Where(1)); m != nil {
		n, _ := strconv.Atoi(m[2])
		return m[1], n
	}
	return c.flow, 0
}

// summary is the one line a transfer carries to the agent: what the flow
// gathered that holds no personal data (service, classification, articles
// already said to the caller).
func (c *call) summary() string {
	service := c.varString("service")
	if service == "" {
		service = "other"
	}
	parts := []string{"service " + service}
	if cl := c.varString("classification"); cl != "" {
		parts = append(parts, "class "+cl)
	}
	if arts := c.varList("articles"); len(arts) > 0 {
		parts = append(parts, "answered "+strings.Join(arts, ","))
	}
	return strings.Join(parts, "; ")
}
