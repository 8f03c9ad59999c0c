// Package flowtest runs conversation tests: text files that say what a
// caller says and what the line must answer, where the call must end and
// which ticket it must open. ivrctl flow test and the Go tests of the
// shipped flows run them, in the simulator (package sim), which hears and
// collects keys as the phone line does; a Go test of dialplan/sip replays
// every shipped test over a real SIP call and requires the same
// transcript. The format is described in docs/flows.md.
//
// A test file (NAME.conv):
//
//	# lines starting with # are comments
//	flow: main.lua                 the flow file, in the flows folder
//	time: 2026-11-24 10:00         the clock (Bucharest time; a Tuesday)
//	speech: embedded               what the line hears: embedded, open, off
//	channel: chat                  the portal's web chat (typed words, taken
//	                               as written) instead of the phone
//
//	test: a lost identity card
//	ivr: bună ziua                 whole words, in order, in one prompt
//	caller: buletin
//	ivr: /pierderea? sau furtul/   a regular expression
//	caller: #4                     keys (caller: alone is silence)
//	barge-in: #0                   keys (or words) over the prompt before
//	article: cei-lost-stolen       the article whose answer was said
//	transfer: level1               the call ends with a transfer to level1
//	ticket: service = identity_card
//	ticket: description ~ pierdut  (~ is "contains")
//	vars: service = identity_card
//
// Settings before the first "test:" apply to every test of the file; after
// it, to that test only.
package flowtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/flows/kb"
	"github.com/govline/ivr/flows/sim"
	"github.com/govline/ivr/tickets"
)

// Ext is the extension of conversation test files.
const Ext = ".conv"

// DefaultTime is the clock of a test without "time:": Tuesday 24 November
// 2026, 10:00 in Bucharest, when the operators work.
const DefaultTime = "2026-11-24 10:00"

// DefaultSpeech is what a test's line hears without "speech:": the shipped
// line's embedded recognizer (sim.SpeechEmbedded).
const DefaultSpeech = sim.SpeechEmbedded

// Case is one conversation test.
type Case struct {
	File     string
	Name     string
	Line     int
	Flow     string
	Time     time.Time
	From, To string
	Lang     string
	Speech   sim.SpeechMode
	Chat     bool                 // channel: chat
	Existing []flows.TicketStatus // tickets the desk knows before the call
	Steps    []Step
}

// Step kinds.
const (
	StepCaller   = "caller"    // a caller turn (BargeIn: over the prompt before it)
	StepIVR      = "ivr"       // what the line said
	StepArticle  = "article"   // the article whose answer the line said
	StepTransfer = "transfer"  // the call's end
	StepHangup   = "hangup"    // the call's end
	StepTicket   = "ticket"    // the ticket the call opened
	StepNoTicket = "no ticket" // no ticket
	StepVars     = "vars"      // a per-call variable at the end
)

// Step is one line of a test: a caller turn or an expectation.
type Step struct {
	Line    int
	Kind    string // one of the Step kinds
	Text    string // as written
	Input   flows.Input
	BargeIn bool           // caller: said over the prompt before it (barge-in:)
	Loose   bool           // ivr~: words anywhere in what was said, parts of words too
	Re      *regexp.Regexp // ivr: /regex/
	Field   string         // ticket: FIELD = VALUE / FIELD ~ VALUE; vars: NAME = VALUE
	Op      string
	Value   string
}

// SimLine is the caller step as the simulator reads it ("!" marks words or
// keys said over the prompt).
func (s Step) SimLine() string {
	if s.BargeIn {
		return "!" + s.Text
	}
	return s.Text
}

type settings struct {
	flow, from, to, lang string
	speech               sim.SpeechMode
	chat                 bool
	at                   time.Time
	existing             []flows.TicketStatus
}

var bucharest = func() *time.Location {
	l, err := time.LoadLocation("Europe/Bucharest")
	if err != nil {
		return time.UTC
	}
	return l
}()

// ParseFile reads a test file.
func ParseFile(path string) ([]*Case, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Parse(f, path)
}

const keysHelp = "test:, caller:, barge-in:, ivr:, ivr~:, article:, transfer:, hangup:, ticket:, no ticket, vars:, flow:, time:, from:, to:, lang:, speech:, channel:, existing ticket:"

// Parse reads tests from r; name is the file name used in messages.
func Parse(r io.Reader, name string) ([]*Case, error) {
	def, _ := time.ParseInLocation("2006-01-02 15:04", DefaultTime, bucharest)
	file := settings{flow: flows.DefaultFlow, from: "+40700000000", to: "1919", lang: "ro", speech: DefaultSpeech, at: def}
	var cases []*Case
	var cur *Case
	sc := bufio.NewScanner(r)
	n := 0
	errf := func(format string, a ...any) error {
		return fmt.Errorf("%s:%d: %s", name, n, fmt.Sprintf(format, a...))
	}
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if line == StepNoTicket {
			if cur == nil {
				return nil, errf("\"no ticket\" before the first \"test:\"")
			}
			cur.Steps = append(cur.Steps, Step{Line: n, Kind: StepNoTicket})
			continue
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			return nil, errf("want \"KEY: VALUE\" (%s), got %q", keysHelp, line)
		}
		key, val = strings.ToLower(strings.TrimSpace(key)), strings.TrimSpace(val)
		set := &file
		var local *settings
		if cur != nil {
			local = &settings{flow: cur.Flow, from: cur.From, to: cur.To, lang: cur.Lang, speech: cur.Speech, chat: cur.Chat, at: cur.Time, existing: cur.Existing}
			set = local
		}
		switch key {
		case "test":
			if val == "" {
				return nil, errf("test: needs a name")
			}
			cur = &Case{File: name, Name: val, Line: n, Flow: file.flow, Time: file.at, From: file.from, To: file.to, Lang: file.lang,
				Speech: file.speech, Chat: file.chat, Existing: append([]flows.TicketStatus(nil), file.existing...)}
			cases = append(cases, cur)
			continue
		case "flow":
			set.flow = val
		case "time":
			t, err := time.ParseInLocation("2006-01-02 15:04", val, bucharest)
			if err != nil {
				return nil, errf("time: want YYYY-MM-DD HH:MM (Bucharest time), got %q", val)
			}
			set.at = t
		case "from":
			set.from = val
		case "to":
			set.to = val
		case "lang":
			if val != "ro" && val != "en" {
				return nil, errf("lang: want ro or en, got %q", val)
			}
			set.lang = val
		case "speech":
			m, err := sim.ParseSpeechMode(val)
			if err != nil {
				return nil, errf("%v", err)
			}
			set.speech = m
		case "channel":
			if val != "phone" && val != "chat" {
				return nil, errf("channel: want phone or chat, got %q", val)
			}
			set.chat = val == "chat"
		case "existing ticket":
			st, err := parseExisting(val)
			if err != nil {
				return nil, errf("%v", err)
			}
			set.existing = append(set.existing, st)
		case "caller", "barge-in", "ivr", "ivr~", "article", "transfer", "hangup", "ticket", "vars":
			if cur == nil {
				return nil, errf("%s: before the first \"test:\"", key)
			}
			s, err := parseStep(key, val)
			if err != nil {
				return nil, errf("%v", err)
			}
			s.Line = n
			cur.Steps = append(cur.Steps, s)
			continue
		default:
			return nil, errf("unknown key %q (%s)", key, keysHelp)
		}
		if local != nil {
			cur.Flow, cur.From, cur.To, cur.Lang, cur.Speech, cur.Chat, cur.Time, cur.Existing = local.flow, local.from, local.to, local.lang, local.speech, local.chat, local.at, local.existing
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(cases) == 0 {
		return nil, fmt.Errorf("%s: no test (a test starts with \"test: NAME\")", name)
	}
	return cases, nil
}

// parseStep reads one step line after its key.
func parseStep(key, val string) (Step, error) {
	s := Step{Kind: key, Text: val}
	switch key {
	case "caller", "barge-in":
		s.Kind, s.BargeIn = StepCaller, key == "barge-in"
		if s.BargeIn && val == "" {
			return s, fmt.Errorf("barge-in: needs the words or keys (#1) said over the prompt")
		}
		s.Input = sim.ParseTurn(val)
	case "ivr", "ivr~":
		s.Kind, s.Loose = StepIVR, key == "ivr~"
		if val == "" {
			return s, fmt.Errorf("%s: needs the words expected", key)
		}
		if !s.Loose && len(val) > 1 && strings.HasPrefix(val, "/") && strings.HasSuffix(val, "/") {
			re, err := regexp.Compile("(?i)" + val[1:len(val)-1])
			if err != nil {
				return s, fmt.Errorf("ivr: bad regular expression: %v", err)
			}
			s.Re = re
		} else if Normalize(val) == "" {
			return s, fmt.Errorf("%s: %q has no words to compare", key, val)
		}
	case "article":
		if val == "" {
			return s, fmt.Errorf("article: needs the article's id")
		}
	case "transfer":
		if val == "" {
			return s, fmt.Errorf("transfer: needs the queue")
		}
	case "ticket":
		f, op, v, err := parseFieldExpect("ticket", val, ticketFields)
		if err != nil {
			return s, err
		}
		s.Field, s.Op, s.Value = f, op, v
	case "vars":
		f, op, v, err := parseFieldExpect("vars", val, nil)
		if err != nil {
			return s, err
		}
		s.Field, s.Op, s.Value = f, op, v
	}
	return s, nil
}

// ticketFields are the fields a test may check; personal.NAME is a
// sensitive answer kept with the ticket.
var ticketFields = []string{"service", "priority", "level", "classification", "description", "articles", "lang", "number", "channel", "personal.NAME"}

// parseFieldExpect reads "FIELD = VALUE" or "FIELD ~ WORDS"; known nil
// accepts any name.
func parseFieldExpect(what, s string, known []string) (field, op, value string, err error) {
	i := strings.IndexAny(s, "=~")
	if i < 0 {
		return "", "", "", fmt.Errorf("%s: want NAME = VALUE or NAME ~ WORDS, got %q", what, s)
	}
	field, op, value = strings.TrimSpace(s[:i]), s[i:i+1], strings.TrimSpace(s[i+1:])
	if known == nil {
		if field == "" {
			return "", "", "", fmt.Errorf("%s: the name is missing in %q", what, s)
		}
		return field, op, value, nil
	}
	field = strings.ToLower(field)
	for _, f := range known {
		if f == field || (strings.HasSuffix(f, ".NAME") && strings.HasPrefix(field, strings.TrimSuffix(f, "NAME")) && len(field) > len(f)-4) {
			return field, op, value, nil
		}
	}
	return "", "", "", fmt.Errorf("%s: unknown field %q (known: %s)", what, field, strings.Join(known, ", "))
}

// parseExisting reads "NUMBER STATUS SERVICE" of an "existing ticket:".
func parseExisting(s string) (flows.TicketStatus, error) {
	f := strings.Fields(s)
	if len(f) != 3 {
		return flows.TicketStatus{}, fmt.Errorf("existing ticket: want NUMBER STATUS SERVICE, got %q", s)
	}
	st := flows.TicketStatus{Number: f[0], Status: f[1], Service: f[2], Level: 1}
	if err := sim.NewDesk().Add(st); err != nil {
		return st, fmt.Errorf("existing ticket: %v", err)
	}
	return st, nil
}

// DefaultQueues are the agent queues of the embedded line's default
// configuration (ivrd.toml): the queues transfer() may name in tests.
var DefaultQueues = []string{flows.QueueLevel1}

// Runner runs cases against the flows of one folder.
type Runner struct {
	FlowsDir string
	KB       flows.Knowledge
	Limits   flows.Limits
	Queues   []string     // the queues transfer() may name; nil: DefaultQueues
	Log      *slog.Logger // nil: discard
}

// Result is the outcome of one case.
type Result struct {
	Case         *Case
	Pass         bool
	Failures     []string // each a paragraph explaining one unmet expectation
	Conversation []string // "ivr: ...", "caller: ...", "article: ...", then the end line
	Outcome      flows.Outcome
	// Turns are the transcript the runtime wrote; Ops the flow's Says and
	// Listens with the caller lines they took (what a real call replays).
	Turns []flows.Turn
	Ops   []sim.Op
}

// Facts are the facts of a case's call, as the runner gives them to the
// flow (the real-call check gives the same).
func (c *Case) Facts() flows.Facts {
	return flows.Facts{CallID: "test-" + strconv.Itoa(c.Line), Caller: c.From, Called: c.To, Lang: c.Lang, Start: c.Time}
}

// entry is one line of a conversation as the checks see it.
type entry struct {
	kind string // "ivr", "caller", "article", "interrupted", "retry", "turn" (a caller line taken), "other"
	text string
	step int // for "turn": the index of the caller step
}

// Run runs one case in the simulator.
func (r *Runner) Run(ctx context.Context, c *Case) Result {
	res := Result{Case: c}
	rt, err := flows.Load(r.FlowsDir, flows.Config{Default: c.Flow, Limits: r.Limits, OnlyRouted: true})
	if err != nil {
		res.Failures = append(res.Failures, fmt.Sprintf("the flow does not load: %v", err))
		return res
	}
	log := r.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var in strings.Builder
	var callerSteps []Step
	for _, s := range c.Steps {
		if s.Kind == StepCaller {
			in.WriteString(s.SimLine() + "\n")
			callerSteps = append(callerSteps, s)
		}
	}
	var conv []entry
	var problems []string
	ch := sim.NewChannel(strings.NewReader(in.String()), nil)
	ch.Mode = c.Speech
	if c.Chat { // typed words are taken as written
		ch.Mode, ch.Chat = sim.SpeechOpen, true
	}
	ch.Lines = func(l string) {
		res.Conversation = append(res.Conversation, l)
		kind, text, _ := strings.Cut(l, ": ")
		switch {
		case l == sim.Interrupted:
			kind = "interrupted"
		case kind != "ivr" && kind != "caller" && kind != "article":
			kind, text = "other", l
		}
		conv = append(conv, entry{kind: kind, text: text})
	}
	turns := 0
	ch.Ops = func(o sim.Op) {
		res.Ops = append(res.Ops, o)
		if o.Taken {
			conv = append(conv, entry{kind: "turn", step: turns})
			turns++
		}
	}
	ch.Notes = func(kind, detail string) {
		if kind == "flow.retry" {
			conv = append(conv, entry{kind: "retry", text: detail})
		}
	}
	ch.Problem = func(line, why string) {
		step := callerSteps[max(0, turns-1)]
		problems = append(problems, fmt.Sprintf("line %d: %q: %s", step.Line, step.Text, why))
	}
	desk := sim.NewDesk()
	for _, st := range c.Existing {
		_ = desk.Add(st) // checked by Parse
	}
	queues := r.Queues
	if queues == nil {
		queues = DefaultQueues
	}
	trans := &sim.Transcript{}
	svc := flows.Services{KB: r.KB, Desk: desk, Transcript: trans, Calendar: tickets.DefaultCalendar(),
		Log: log, Now: func() time.Time { return c.Time }, Queues: queues}
	facts := c.Facts()
	o := rt.Run(ctx, facts, ch, svc)
	res.Outcome = o
	res.Turns = trans.Turns(facts.CallID)
	res.Conversation = append(res.Conversation, endLine(o))
	var opened []sim.Ticket
	for _, t := range desk.Opened() {
		if t.CallID == facts.CallID {
			opened = append(opened, t)
		}
	}
	res.Failures = append(problems, check(c, conv, res.Conversation, callerSteps, o, opened)...)
	res.Pass = len(res.Failures) == 0
	return res
}

// EndLine is how a conversation's end is printed by simulate and tests.
func EndLine(o flows.Outcome) string { return endLine(o) }

func endLine(o flows.Outcome) string {
	switch o.Kind {
	case flows.OutcomeTransfer:
		return "transfer: " + o.Queue
	case flows.OutcomeCaller:
		return "hangup: caller hung up"
	}
	return "hangup: " + o.Reason
}

// check compares a conversation with the case's expectations. conv is the
// conversation with the caller's turns marked; lines is it as printed.
func check(c *Case, conv []entry, lines []string, callerSteps []Step, o flows.Outcome, opened []sim.Ticket) []string {
	var fails []string
	// Split the conversation into segments at the caller's turns: segment
	// k is what the line did after caller step k-1.
	segs := [][]entry{{}}
	for _, e := range conv {
		if e.kind == "turn" {
			segs = append(segs, []entry{})
			continue
		}
		segs[len(segs)-1] = append(segs[len(segs)-1], e)
	}
	end := lines[len(lines)-1]
	if taken := len(segs) - 1; taken < len(callerSteps) {
		s := callerSteps[taken]
		return append(fails, fmt.Sprintf("line %d: the call ended (%s) before the caller said %q\n%s",
			s.Line, end, s.Text, render(lines, -1)))
	}
	where := func(k int) string {
		if k == 0 {
			return "at the start of the call"
		}
		s := callerSteps[k-1]
		return fmt.Sprintf("after the caller said %q (line %d)", s.Text, s.Line)
	}
	segIdx, pos, firstIVR := 0, 0, true
	for _, s := range c.Steps {
		switch s.Kind {
		case StepCaller:
			if s.BargeIn && !interruptedBefore(segs[segIdx]) {
				fails = append(fails, fmt.Sprintf("line %d: expected the caller to interrupt the prompt before %q, but it was not interrupted (does it allow barge-in?)\n%s",
					s.Line, s.Text, render(lines, segmentStart(lines, segIdx))))
				return fails
			}
			segIdx, pos, firstIVR = segIdx+1, 0, true
		case StepIVR:
			seg := segs[segIdx]
			if firstIVR && segIdx > 0 && callerSteps[segIdx-1].Input.Mode != flows.InputNone {
				// A turn the line did not understand must be expected
				// as such, not passed by a repeated question.
				if retry, ok := retryOf(seg); ok && !matchText(s, retry) {
					fails = append(fails, fmt.Sprintf("line %d: the line did not understand %s: it said %q and asked again; expect that first (ivr: %s) if the test means it\n%s",
						s.Line, where(segIdx)[len("after the caller said "):], retry, Normalize(retry), render(lines, segmentStart(lines, segIdx))))
					return fails
				}
			}
			firstIVR = false
			found := -1
			if s.Loose {
				var said []string
				for _, e := range seg {
					if e.kind == "ivr" {
						said = append(said, Normalize(e.text))
					}
				}
				if strings.Contains(" "+strings.Join(said, " ")+" ", Normalize(s.Text)) {
					found = pos
				}
			} else {
				for i := pos; i < len(seg); i++ {
					if seg[i].kind == "ivr" && matchText(s, seg[i].text) {
						found = i
						break
					}
				}
			}
			if found < 0 {
				what := fmt.Sprintf("the words %q in one prompt", s.Text)
				switch {
				case s.Re != nil:
					what = "a match of " + s.Text
				case s.Loose:
					what = fmt.Sprintf("%q (anywhere)", s.Text)
				}
				fails = append(fails, fmt.Sprintf("line %d: expected the line to say %s %s; it said:\n%s",
					s.Line, what, where(segIdx), render(lines, segmentStart(lines, segIdx))))
				return fails
			}
			pos = found // the next expectation may match the same prompt, or a later one
		case StepArticle:
			var said []string
			for _, e := range segs[segIdx] {
				if e.kind == "article" {
					said = append(said, e.text)
				}
			}
			if !contains(said, s.Text) {
				got := "no article"
				if len(said) > 0 {
					got = "article " + strings.Join(said, ", ")
				}
				fails = append(fails, fmt.Sprintf("line %d: expected the answer of article %s %s; the line said %s", s.Line, s.Text, where(segIdx), got))
			}
		case StepTransfer:
			if o.Kind != flows.OutcomeTransfer || o.Queue != s.Text {
				fails = append(fails, fmt.Sprintf("line %d: expected \"transfer: %s\", the call ended with %q\n%s", s.Line, s.Text, end, errNote(o)))
			}
		case StepHangup:
			reason := strings.TrimPrefix(endLine(o), "hangup: ") // "caller hung up" when the caller did
			if o.Kind == flows.OutcomeTransfer || (s.Text != "" && !strings.Contains(Normalize(reason), Normalize(s.Text))) {
				fails = append(fails, fmt.Sprintf("line %d: expected \"hangup: %s\", the call ended with %q\n%s", s.Line, s.Text, end, errNote(o)))
			}
		case StepNoTicket:
			if len(opened) > 0 {
				fails = append(fails, fmt.Sprintf("line %d: expected no ticket, the call opened %d (first: %s)", s.Line, len(opened), opened[0].Status.Number))
			}
		case StepTicket:
			if len(opened) == 0 {
				fails = append(fails, fmt.Sprintf("line %d: expected a ticket with %s %s %s, the call opened none", s.Line, s.Field, s.Op, s.Value))
				continue
			}
			got := ticketField(opened[len(opened)-1], s.Field)
			if !compare(s.Op, got, s.Value) {
				fails = append(fails, fmt.Sprintf("line %d: expected ticket %s %s %q, got %q", s.Line, s.Field, s.Op, s.Value, got))
			}
		case StepVars:
			got, ok := o.Vars[s.Field]
			if !ok {
				fails = append(fails, fmt.Sprintf("line %d: expected vars.%s %s %q, the flow did not set it (it set: %s)", s.Line, s.Field, s.Op, s.Value, varNames(o.Vars)))
			} else if !compare(s.Op, got, s.Value) {
				fails = append(fails, fmt.Sprintf("line %d: expected vars.%s %s %q, got %q", s.Line, s.Field, s.Op, s.Value, got))
			}
		}
	}
	return fails
}

// compare is "=" (equal) or "~" (holds the words, as HasWords).
func compare(op, got, want string) bool {
	if op == "~" {
		return HasWords(got, want)
	}
	return got == want
}

func varNames(vs map[string]string) string {
	if len(vs) == 0 {
		return "nothing"
	}
	var ns []string
	for k := range vs {
		ns = append(ns, k)
	}
	sort.Strings(ns)
	return strings.Join(ns, ", ")
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// interruptedBefore reports whether the prompt before the caller's next
// turn was cut off by the caller.
func interruptedBefore(seg []entry) bool {
	return len(seg) > 0 && seg[len(seg)-1].kind == "interrupted"
}

// retryOf returns the sentence with which the line asked again, when it did
// not hear or understand the caller's turn that starts seg.
func retryOf(seg []entry) (string, bool) {
	for _, e := range seg {
		switch e.kind {
		case "retry":
			return e.text, true
		case "ivr":
			return "", false
		}
	}
	return "", false
}

func errNote(o flows.Outcome) string {
	if o.Err != nil {
		return "the flow failed: " + o.Err.Error()
	}
	return ""
}

func ticketField(t sim.Ticket, f string) string {
	switch f {
	case "service":
		return t.Service
	case "priority":
		return t.Priority
	case "level":
		return strconv.Itoa(t.Level)
	case "classification":
		return t.Classification
	case "description":
		return t.Description
	case "articles":
		return strings.Join(t.Articles, ",")
	case "lang":
		return t.Lang
	case "number":
		return t.Status.Number
	case "channel":
		return t.Channel
	}
	if name, ok := strings.CutPrefix(f, "personal."); ok {
		return t.Personal[name]
	}
	return ""
}

// Normalize is the comparison of expected words with what was said: case,
// diacritics (both ș/ş forms) and punctuation do not matter.
func Normalize(s string) string { return flows.Normalize(s) }

// matchText reports whether an ivr: expectation matches one prompt: its
// regular expression, or its words, whole and in order, with nothing
// between them (after Normalize).
func matchText(s Step, said string) bool {
	if s.Re != nil {
		return s.Re.MatchString(said) || s.Re.MatchString(Normalize(said))
	}
	return HasWords(said, s.Text)
}

// HasWords reports whether text holds the words of want as whole words,
// in the same order, next to each other, case, diacritics and punctuation
// aside: "cu programare online" is in "Faceți o programare cu programare
// online." but "schimba permisul" is not in "preschimbarea permisului".
func HasWords(text, want string) bool {
	t, w := strings.Fields(Normalize(text)), strings.Fields(Normalize(want))
	if len(w) == 0 {
		return false
	}
	for i := 0; i+len(w) <= len(t); i++ {
		j := 0
		for j < len(w) && t[i+j] == w[j] {
			j++
		}
		if j == len(w) {
			return true
		}
	}
	return false
}

// segmentStart is the index in the printed lines of the first line of
// segment k (after the caller's k-th turn).
func segmentStart(lines []string, k int) int {
	if k == 0 {
		return 0
	}
	n := 0
	for i, l := range lines {
		if strings.HasPrefix(l, "caller: ") {
			n++
			if n == k {
				return i + 1
			}
		}
	}
	return len(lines)
}

// render indents the conversation, marking with ">" the lines from mark.
func render(conv []string, mark int) string {
	var b strings.Builder
	for i, l := range conv {
		p := "    "
		if mark >= 0 && i >= mark {
			p = "  > "
		}
		b.WriteString(p + l + "\n")
	}
	return strings.TrimRight(b.String(), "\n")
}

// Files expands paths (files or folders) into the test files they name,
// sorted.
func Files(paths ...string) ([]string, error) {
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(path, Ext) {
				out = append(out, path)
			}
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Strings(out)
	return out, nil
}

// FlowsDirFor is the flows folder of a test file: the parent of the
// "tests" folder holding it, else the file's own folder.
func FlowsDirFor(testFile string) string {
	dir := filepath.Dir(testFile)
	if filepath.Base(dir) == "tests" {
		return filepath.Dir(dir)
	}
	return dir
}

// Report writes a case's result the way ivrctl prints it.
func Report(w io.Writer, r Result) {
	if r.Pass {
		fmt.Fprintf(w, "ok   %s:%d: %s\n", r.Case.File, r.Case.Line, r.Case.Name)
		return
	}
	fmt.Fprintf(w, "FAIL %s:%d: %s\n", r.Case.File, r.Case.Line, r.Case.Name)
	for _, f := range r.Failures {
		for _, l := range strings.Split(f, "\n") {
			if l != "" {
				fmt.Fprintf(w, "    %s\n", l)
			}
		}
	}
	if len(r.Failures) > 0 && !strings.Contains(strings.Join(r.Failures, "\n"), "\n") {
		fmt.Fprintln(w, "    the conversation was:")
		fmt.Fprintln(w, render(r.Conversation, -1))
	}
}

// OpenKB returns the knowledge base for the flows of dir: the articles of
// dir/kb (the real knowledge base, package flows/kb) imported into a
// temporary database that close removes; nil (kb.search finds nothing)
// when dir has no kb folder with articles.
func OpenKB(ctx context.Context, dir string) (k flows.Knowledge, close func(), err error) {
	close = func() {}
	kbDir := filepath.Join(dir, "kb")
	if md, _ := filepath.Glob(filepath.Join(kbDir, "*", "*.md")); len(md) == 0 {
		return nil, close, nil
	}
	tmp, err := os.MkdirTemp("", "flowkb-")
	if err != nil {
		return nil, close, err
	}
	ix, err := kb.Open(kb.IndexPath(tmp), nil)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, close, err
	}
	close = func() { ix.Close(); os.RemoveAll(tmp) }
	_, err = ix.ImportDir(ctx, kbDir)
	if err != nil {
		close()
		return nil, func() {}, fmt.Errorf("knowledge base %s: %w", kbDir, err)
	}
	return flows.KBIndex{Index: ix}, close, nil
}
