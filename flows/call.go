package flows

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/govline/ivr/redact"
)

// call is one call's script: its Lua state and what the API functions
// share. Only the goroutine running Run touches it.
type call struct {
	rt    *Runtime
	v     *version
	flow  string
	facts Facts
	ch    Channel
	svc   Services
	lim   Limits
	log   *slog.Logger

	parent context.Context // the caller's context
	ctx    context.Context // parent with the wall-time limit
	cancel context.CancelFunc
	hook   *hook
	L      *lua.LState

	lang     string
	turns    []Turn
	ticket   string // last ticket opened by this call
	alloc    int64  // string bytes built
	patSteps int64  // pattern matching steps left
	outcome  *Outcome
	hungUp   bool
	modules  map[string]lua.LValue
	callTbl  *lua.LTable

	sensitive bool              // a sensitive question is being asked
	secrets   []string          // this call's sensitive answers in clear, longest first (see hide)
	spoken    map[string]string // spoken answers of the articles found (kb.search, kb.get) -> their ids
}

// Errors that stop a script on purpose: the runtime raises them and
// recognizes them afterwards.
var (
	errEnded = errors.New("flow ended") // transfer or hangup was called
)

// hook is the context the Lua VM polls before every instruction
// (gopher-lua calls Done once per instruction). It counts instructions,
// checks the CPU time now and then, and stops the VM for good once a
// limit is hit, the flow ended or the caller hung up: pcall cannot swallow
// that, since the next instruction stops again.
type hook struct {
	parent  context.Context
	n       int64
	limit   int64
	cpu     time.Duration
	start   time.Time
	blocked time.Duration // time spent in blocking API calls
	stop    error
	mem     *memGuard
	L       *lua.LState
	c       *call // the call the state runs (callOf)
}

var closedCh = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (h *hook) Deadline() (time.Time, bool) { return h.parent.Deadline() }
func (h *hook) Value(k any) any             { return h.parent.Value(k) }
func (h *hook) Err() error {
	if h.stop != nil {
		return h.stop
	}
	return h.parent.Err()
}

func (h *hook) Done() <-chan struct{} {
	if h.stop != nil {
		return closedCh
	}
	h.n++
	if h.n > h.limit {
		h.stop = &ScriptError{Msg: fmt.Sprintf("the flow ran more than %d instructions (an endless loop?)", h.limit), Limit: true}
		return closedCh
	}
	if h.n&1023 == 0 && time.Since(h.start)-h.blocked > h.cpu {
		h.stop = &ScriptError{Msg: fmt.Sprintf("the flow computed for more than %v", h.cpu), Limit: true}
		return closedCh
	}
	if h.n&memCheckEvery == 0 && h.mem != nil {
		if err := h.mem.check(h.L); err != nil {
			h.stop = err
			return closedCh
		}
	}
	return h.parent.Done()
}

func newCall(ctx context.Context, r *Runtime, v *version, flow string, f Facts, ch Channel, svc Services) *call {
	lim := r.limits
	c := &call{rt: r, v: v, flow: flow, facts: f, ch: ch, svc: svc, lim: lim, lang: f.Lang, parent: ctx, patSteps: lim.PatternSteps, ticket: f.Ticket}
	c.log = svc.Log.With("call_id", f.CallID, "flow", flow)
	c.ctx, c.cancel = context.WithTimeout(ctx, lim.Wall)
	c.hook = &hook{parent: c.ctx, limit: lim.Instructions, cpu: lim.CPU, start: time.Now(), c: c}
	return c
}

func (c *call) close() {
	if c.L != nil {
		c.L.Close()
	}
	c.cancel()
}

// block accounts the time of a blocking API call so that it does not count
// as CPU time: defer c.block()().
func (c *call) block() func() {
	t0 := time.Now()
	return func() { c.hook.blocked += time.Since(t0) }
}

func (c *call) run() Outcome {
	file, ok := c.v.files[c.flow]
	if !ok { // routed flows are checked at load; a route to a deleted file cannot happen
		return c.fail(&ScriptError{File: c.flow, Msg: "flow not loaded"})
	}
	c.L = newState(c)
	c.hook.L = c.L
	c.hook.mem = newMemGuard(c.lim.Memory)
	fn := c.L.NewFunctionFromProto(file.proto)
	c.L.Push(fn)
	err := c.L.PCall(0, 0, nil)
	switch {
	case c.outcome != nil:
		o := *c.outcome
		o.Lang, o.Vars = c.lang, c.varsMap()
		c.log.Info("flow ended", "outcome", o.Kind, "queue", o.Queue, "reason", o.Reason, "ticket", o.Ticket, "instructions", c.hook.n)
		return o
	case c.hungUp || (c.parent.Err() != nil && !errors.Is(c.hook.stop, ErrLimit)):
		c.log.Info("caller hung up", "instructions", c.hook.n)
		return Outcome{Kind: OutcomeCaller, Lang: c.lang, Vars: c.varsMap()}
	case err == nil:
		c.log.Info("flow returned", "outcome", OutcomeHangup)
		return Outcome{Kind: OutcomeHangup, Reason: "flow ended", Lang: c.lang, Vars: c.varsMap()}
	}
	return c.fail(c.scriptError(err))
}

// luaPos finds "file.lua:12:" in an error message or a stack trace.
var luaPos = regexp.MustCompile(`([A-Za-z0-9_./-]+\.lua):(\d+):`)

// scriptError turns a PCall error into a ScriptError with file and line.
func (c *call) scriptError(err error) *ScriptError {
	var se *ScriptError
	if errors.As(c.hook.stop, &se) && se.Limit {
		out := *se
		out.File, out.Line = c.position(err)
		return &out
	}
	if c.ctx.Err() != nil && c.parent.Err() == nil { // the wall-time limit
		file, line := c.position(err)
		return &ScriptError{File: file, Line: line, Msg: fmt.Sprintf("the call lasted more than %v", c.lim.Wall), Limit: true}
	}
	msg := err.Error()
	var ae *lua.ApiError
	if errors.As(err, &ae) {
		msg = ae.Object.String()
	}
	out := &ScriptError{}
	if m := luaPos.FindStringSubmatchIndex(msg); m != nil && m[0] == 0 {
		out.File = msg[m[2]:m[3]]
		out.Line, _ = strconv.Atoi(msg[m[4]:m[5]])
		msg = strings.TrimSpace(msg[m[1]:])
	} else {
		out.File, out.Line = c.position(err)
	}
	if strings.HasPrefix(msg, stringLimitPrefix) || strings.HasPrefix(msg, patternLimitPrefix) {
		out.Limit = true
	}
	out.Msg = msg
	return out
}

// position finds the innermost flow position in an error's message or
// stack trace.
func (c *call) position(err error) (string, int) {
	var ae *lua.ApiError
	texts := []string{err.Error()}
	if errors.As(err, &ae) {
		texts = append([]string{ae.Object.String()}, ae.StackTrace)
	}
	for _, t := range texts {
		if m := luaPos.FindStringSubmatch(t); m != nil {
			n, _ := strconv.Atoi(m[2])
			return m[1], n
		}
	}
	return c.flow, 0
}

// fail handles a failed script: log with file and line, apologize, open a
// ticket with the error and the conversation so far, then transfer to the
// level I queue when the operators work, else tell the ticket number and
// hang up.
func (c *call) fail(se *ScriptError) Outcome {
	se.Msg = c.hide(se.Msg)
	c.log.Error("flow failed", "file", se.File, "line", se.Line, "err", redact.Text(se.Msg), "limit", se.Limit)
	if c.parent.Err() != nil || c.hungUp {
		return Outcome{Kind: OutcomeCaller, Lang: c.lang, Err: se}
	}
	// The call's context may have ended by the wall-time limit: the
	// apology still needs a live context, for a short while.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.parent), 2*time.Minute)
	defer cancel()
	stop := context.AfterFunc(c.parent, cancel) // a hangup still cuts the apology short
	defer stop()
	c.sayText(ctx, c.sentence("failure.sorry"))
	if c.facts.Flow != "" { // a flow after the call's business (the survey): no new ticket
		return Outcome{Kind: OutcomeHangup, Reason: "flow failed", Lang: c.lang, Ticket: c.ticket, Err: se}
	}

	var number string
	if c.svc.Desk != nil {
		d := c.draft("Eroare în scenariul apelului: "+se.Error(), "high")
		wctx, wcancel := durable(ctx) // a hangup during the apology must not lose the ticket
		n, err := c.svc.Desk.Open(wctx, d)
		wcancel()
		if err != nil {
			c.log.Error("flow failed: could not open the ticket", "err", err)
		} else {
			number = n
			c.log.Info("flow failed: ticket opened", "ticket", n)
		}
	}
	if c.operatorsOpen() {
		c.sayText(ctx, c.sentence("failure.transfer"))
		return Outcome{Kind: OutcomeTransfer, Queue: QueueLevel1, Ticket: number, Lang: c.lang, Err: se, Summary: "flow error; " + c.summary()}
	}
	if number != "" {
		c.say(ctx, Prompt{Lang: c.lang, Parts: []Part{textPart(c.sentence("failure.ticket")), digitsPart(number)}})
	}
	c.sayText(ctx, c.sentence("failure.callback"))
	return Outcome{Kind: OutcomeHangup, Reason: "flow error", Ticket: number, Lang: c.lang, Err: se}
}

// QueueLevel1 is the level I operators' queue, where failures and
// "operator" requests go.
const QueueLevel1 = "level1"

func (c *call) operatorsOpen() bool {
	if c.svc.Calendar == nil {
		return true // no calendar configured: the queue is assumed staffed
	}
	return c.svc.Calendar.Open(c.svc.Now())
}

// draft builds a ticket from everything the call gathered: vars.service,
// the conversation so far and the per-call variables.
func (c *call) draft(headline, priority string) TicketDraft {
	var b strings.Builder
	b.WriteString(headline)
	if vs := c.varsText(); vs != "" {
		b.WriteString("\n\nDate culese:\n")
		b.WriteString(vs)
	}
	b.WriteString("\n\nConversația până acum:\n")
	b.WriteString(c.conversation())
	service := "other"
	if s := c.varString("service"); s != "" {
		service = s
	}
	var personal map[string]string
	if c.L != nil {
		personal = c.personal(nil)
	}
	return TicketDraft{CallID: c.facts.CallID, Caller: c.facts.Caller, Lang: c.lang, Service: service,
		Classification: c.varString("classification"), Priority: priority, Level: 1, Description: c.hide(b.String()),
		Articles: c.varList("articles"), Recording: c.facts.Recording, Channel: c.medium(), Personal: personal}
}

// conversation is the transcript so far, one "speaker: text" line per turn.
func (c *call) conversation() string {
	var b strings.Builder
	for _, t := range c.turns {
		b.WriteString(t.Speaker)
		b.WriteString(": ")
		switch {
		case t.Speaker == "caller" && t.Mode == InputDTMF:
			b.WriteString("[keys] ")
		}
		b.WriteString(t.Text)
		b.WriteByte('\n')
	}
	return b.String()
}

// varsText lists the per-call variables with string, number or boolean
// values, sorted, one "name: value" per line.
func (c *call) varsText() string {
	var lines []string
	for k, v := range c.varsMap() {
		if len(v) > 500 {
			v = v[:500] + "..."
		}
		lines = append(lines, fmt.Sprintf("%s: %s", k, v))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// varsMap is the per-call variables with string, number or boolean values,
// sensitive answers masked (Outcome.Vars).
func (c *call) varsMap() map[string]string {
	if c.L == nil {
		return nil
	}
	vt, ok := c.L.GetGlobal("vars").(*lua.LTable)
	if !ok {
		return nil
	}
	out := map[string]string{}
	vt.ForEach(func(k, v lua.LValue) {
		switch v.Type() {
		case lua.LTString, lua.LTNumber, lua.LTBool:
			out[k.String()] = c.hide(v.String())
		}
	})
	return out
}

// varList reads a per-call variable holding a list: a Lua array of
// strings, or a string of comma-separated items ("cei-obtain,cei-fee").
func (c *call) varList(name string) []string {
	if c.L == nil {
		return nil
	}
	vt, ok := c.L.GetGlobal("vars").(*lua.LTable)
	if !ok {
		return nil
	}
	var out []string
	switch v := vt.RawGetString(name).(type) {
	case lua.LString:
		for _, s := range strings.Split(string(v), ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	case *lua.LTable:
		for i := 1; i <= v.Len(); i++ {
			if s, ok := v.RawGetInt(i).(lua.LString); ok {
				out = append(out, string(s))
			}
		}
	}
	return out
}

func (c *call) varString(name string) string {
	if c.L == nil {
		return ""
	}
	vt, ok := c.L.GetGlobal("vars").(*lua.LTable)
	if !ok {
		return ""
	}
	if s, ok := vt.RawGetString(name).(lua.LString); ok {
		return string(s)
	}
	return ""
}

func digitsPart(s string) Part { return Part{Kind: PartDigits, Value: s, Text: spaced(s)} }

// spaced writes digits one by one: "1234" -> "1 2 3 4".
func spaced(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (c *call) sayText(ctx context.Context, text string) {
	c.say(ctx, Prompt{Lang: c.lang, Parts: []Part{{Kind: PartText, Value: text, Text: text}}})
}

// say plays a prompt and appends it to the transcript. Its error is the
// channel's (hangup, context). A prompt the call's end cut short is
// written too, with what was heard of it and Cut "hangup".
func (c *call) say(ctx context.Context, p Prompt) (Played, error) {
	began := c.svc.Now()
	played, err := c.ch.Say(ctx, p)
	heard := played.Heard
	if err == nil && heard == "" && !played.Interrupted {
		heard = p.Said()
	}
	gone := err != nil && (errors.Is(err, ErrHangup) || c.parent.Err() != nil)
	if gone {
		c.hungUp = true
		if played.Cut == "" {
			played.Cut = CutHangup
		}
	}
	if heard != "" {
		interrupted := played.Interrupted || played.Cut != ""
		c.record(ctx, Turn{Speaker: "ivr", Text: heard, At: c.svc.Now(), Began: began, Interrupted: interrupted, Cut: played.Cut})
		c.noteArticles(p)
	}
	return played, err
}

// listen waits for a caller turn and appends it to the transcript.
func (c *call) listen(ctx context.Context, l Listen) (Input, error) {
	in, err := c.ch.Listen(ctx, l)
	if err == nil && in.Mode != InputNone && (in.Text != "" || in.Untranscribed) {
		text := in.Text
		switch {
		case in.Untranscribed:
			text = UntranscribedText
		case c.sensitive:
			text = maskedInput(in, l)
		case in.Shown != "":
			text = in.Shown
		}
		c.record(ctx, Turn{Speaker: "caller", Text: text, At: c.svc.Now(), Began: in.Began, Mode: in.Mode, Confidence: in.Confidence})
	}
	if err != nil && (errors.Is(err, ErrHangup) || c.parent.Err() != nil) {
		c.hungUp = true
	}
	return in, err
}

// maxTurns is how many turns a call keeps in memory for the tickets it
// opens (the transcript service keeps them all).
const maxTurns = 200

// WriteTimeout bounds a write that belongs to the call (a transcript turn,
// a ticket): it is made on a context of its own, which outlives the call's
// cancellation (a hangup must not lose the turn in progress), for at most
// this long.
const WriteTimeout = 10 * time.Second

// durable returns a context for a write that belongs to the call: ctx's
// values without its cancellation, bounded by WriteTimeout.
func durable(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), WriteTimeout)
}

func (c *call) record(ctx context.Context, t Turn) {
	if len(c.turns) == maxTurns {
		copy(c.turns, c.turns[1:])
		c.turns = c.turns[:maxTurns-1]
	}
	c.turns = append(c.turns, t)
	if c.svc.Transcript == nil {
		return
	}
	wctx, cancel := durable(ctx)
	defer cancel()
	if err := c.svc.Transcript.Append(wctx, c.facts.CallID, t); err != nil {
		c.log.Error("transcript: turn not saved", "err", err)
	}
}

// noteArticles tells the channel which knowledge base article answered,
// when a part of the prompt said is an article's spoken answer.
func (c *call) noteArticles(p Prompt) {
	for _, pt := range p.Parts {
		if id, ok := c.spoken[pt.Value]; ok && pt.Kind == PartText {
			c.note("flow.article", id)
		}
	}
}

// note tells the channel about a step of the flow the transcript does not
// show (Recorder.Note).
func (c *call) note(kind, detail string) {
	if r, ok := c.ch.(Recorder); ok {
		r.Note(kind, detail)
	}
}

// Said is what a prompt says, for the transcript: its text parts.
func (p Prompt) Said() string {
	var parts []string
	for _, pt := range p.Parts {
		if pt.Text != "" {
			parts = append(parts, pt.Text)
		}
	}
	return strings.Join(parts, " ")
}
