// Package flowtest runs conversation tests: text files that say what a
// caller says and what the line must answer, where the call must end and
// which ticket it must open. ivrctl flow test and the Go tests of the
// shipped flows run them. The format is described in docs/flows.md.
//
// A test file (NAME.conv):
//
//	# lines starting with # are comments
//	flow: main.lua                 the flow file, in the flows folder
//	time: 2026-11-24 10:00         the clock (Bucharest time; a Tuesday)
//
//	test: a lost identity card
//	ivr: bună ziua                 the line says something containing this
//	caller: mi-am pierdut buletinul
//	ivr: /pierderea? sau furtul/   a regular expression
//	caller: nu                     (caller: alone is silence; caller: #12 keys)
//	transfer: level1               the call ends with a transfer to level1
//	ticket: service = identity_card
//	ticket: description ~ pierdut  (~ is "contains")
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

// Case is one conversation test.
type Case struct {
	File     string
	Name     string
	Line     int
	Flow     string
	Time     time.Time
	From, To string
	Lang     string
	Existing []flows.TicketStatus // tickets the desk knows before the call
	Steps    []Step
}

// Step is one line of a test: a caller turn or an expectation.
type Step struct {
	Line  int
	Kind  string // "caller", "ivr", "transfer", "hangup", "ticket", "no ticket"
	Text  string // as written
	Input flows.Input
	Re    *regexp.Regexp // ivr: /regex/
	Field string         // ticket: FIELD = VALUE / FIELD ~ VALUE
	Op    string
	Value string
}

type settings struct {
	flow, from, to, lang string
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

// Parse reads tests from r; name is the file name used in messages.
func Parse(r io.Reader, name string) ([]*Case, error) {
	def, _ := time.ParseInLocation("2006-01-02 15:04", DefaultTime, bucharest)
	file := settings{flow: flows.DefaultFlow, from: "+40700000000", to: "1919", lang: "ro", at: def}
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
		if line == "no ticket" {
			if cur == nil {
				return nil, errf("\"no ticket\" before the first \"test:\"")
			}
			cur.Steps = append(cur.Steps, Step{Line: n, Kind: "no ticket"})
			continue
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			return nil, errf("want \"KEY: VALUE\" (test:, caller:, ivr:, transfer:, hangup:, ticket:, flow:, time:, from:, to:, lang:, existing ticket:), got %q", line)
		}
		key, val = strings.ToLower(strings.TrimSpace(key)), strings.TrimSpace(val)
		set := &file
		var local *settings
		if cur != nil {
			local = &settings{flow: cur.Flow, from: cur.From, to: cur.To, lang: cur.Lang, at: cur.Time, existing: cur.Existing}
			set = local
		}
		switch key {
		case "test":
			if val == "" {
				return nil, errf("test: needs a name")
			}
			cur = &Case{File: name, Name: val, Line: n, Flow: file.flow, Time: file.at, From: file.from, To: file.to, Lang: file.lang,
				Existing: append([]flows.TicketStatus(nil), file.existing...)}
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
		case "existing ticket":
			st, err := parseExisting(val)
			if err != nil {
				return nil, errf("%v", err)
			}
			set.existing = append(set.existing, st)
		case "caller", "ivr", "transfer", "hangup", "ticket":
			if cur == nil {
				return nil, errf("%s: before the first \"test:\"", key)
			}
			s := Step{Line: n, Kind: key, Text: val}
			switch key {
			case "caller":
				s.Input = sim.ParseTurn(val)
			case "ivr":
				if val == "" {
					return nil, errf("ivr: needs the words expected")
				}
				if len(val) > 1 && strings.HasPrefix(val, "/") && strings.HasSuffix(val, "/") {
					re, err := regexp.Compile("(?i)" + val[1:len(val)-1])
					if err != nil {
						return nil, errf("ivr: bad regular expression: %v", err)
					}
					s.Re = re
				}
			case "transfer":
				if val == "" {
					return nil, errf("transfer: needs the queue")
				}
			case "ticket":
				f, op, v, err := parseTicketExpect(val)
				if err != nil {
					return nil, errf("%v", err)
				}
				s.Field, s.Op, s.Value = f, op, v
			}
			cur.Steps = append(cur.Steps, s)
			continue
		default:
			return nil, errf("unknown key %q (test:, caller:, ivr:, transfer:, hangup:, ticket:, no ticket, flow:, time:, from:, to:, lang:, existing ticket:)", key)
		}
		if local != nil {
			cur.Flow, cur.From, cur.To, cur.Lang, cur.Time, cur.Existing = local.flow, local.from, local.to, local.lang, local.at, local.existing
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

// ticketFields are the fields a test may check.
var ticketFields = []string{"service", "priority", "level", "classification", "description", "articles", "lang", "number"}

func parseTicketExpect(s string) (field, op, value string, err error) {
	i := strings.IndexAny(s, "=~")
	if i < 0 {
		return "", "", "", fmt.Errorf("ticket: want FIELD = VALUE or FIELD ~ WORDS, got %q", s)
	}
	field, op, value = strings.ToLower(strings.TrimSpace(s[:i])), s[i:i+1], strings.TrimSpace(s[i+1:])
	for _, f := range ticketFields {
		if f == field {
			return field, op, value, nil
		}
	}
	return "", "", "", fmt.Errorf("ticket: unknown field %q (known: %s)", field, strings.Join(ticketFields, ", "))
}

// parseExisting reads "NUMBER STATUS SERVICE" of an "existing ticket:".
func parseExisting(s string) (flows.TicketStatus, error) {
	f := strings.Fields(s)
	if len(f) != 3 {
		return flows.TicketStatus{}, fmt.Errorf("existing ticket: want NUMBER STATUS SERVICE, got %q", s)
	}
	return flows.TicketStatus{Number: f[0], Status: f[1], Service: f[2], Level: 1}, nil
}

// Runner runs cases against the flows of one folder.
type Runner struct {
	FlowsDir string
	KB       flows.Knowledge
	Limits   flows.Limits
	Log      *slog.Logger // nil: discard
}

// Result is the outcome of one case.
type Result struct {
	Case         *Case
	Pass         bool
	Failures     []string // each a paragraph explaining one unmet expectation
	Conversation []string // "ivr: ...", "caller: ...", then the end line
	Outcome      flows.Outcome
}

// Run runs one case.
func (r *Runner) Run(ctx context.Context, c *Case) Result {
	res := Result{Case: c}
	rt, err := flows.Load(r.FlowsDir, flows.Config{Default: c.Flow, Limits: r.Limits})
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
		if s.Kind == "caller" {
			in.WriteString(s.Text + "\n")
			callerSteps = append(callerSteps, s)
		}
	}
	ch := sim.NewChannel(strings.NewReader(in.String()), nil)
	ch.Lines = func(l string) { res.Conversation = append(res.Conversation, l) }
	desk := sim.NewDesk()
	for _, st := range c.Existing {
		desk.Add(st)
	}
	svc := flows.Services{KB: r.KB, Desk: desk, Transcript: &sim.Transcript{}, Calendar: tickets.DefaultCalendar(),
		Log: log, Now: func() time.Time { return c.Time }, HoursText: sim.HoursText}
	facts := flows.Facts{CallID: "test-" + strconv.Itoa(c.Line), Caller: c.From, Called: c.To, Lang: c.Lang, Start: c.Time}
	o := rt.Run(ctx, facts, ch, svc)
	res.Outcome = o
	res.Conversation = append(res.Conversation, endLine(o))
	opened := desk.Opened()
	var tickets []sim.Ticket
	for _, t := range opened {
		if t.CallID == facts.CallID {
			tickets = append(tickets, t)
		}
	}
	res.Failures = check(c, res.Conversation, callerSteps, o, tickets)
	res.Pass = len(res.Failures) == 0
	return res
}

// EndLine is how a conversation's end is printed by simulate and tests.
func endLine(o flows.Outcome) string {
	switch o.Kind {
	case flows.OutcomeTransfer:
		return "transfer: " + o.Queue
	case flows.OutcomeCaller:
		return "hangup: caller hung up"
	}
	return "hangup: " + o.Reason
}

// EndLine is exported for ivrctl flow simulate.
func EndLine(o flows.Outcome) string { return endLine(o) }

// check compares a conversation with the case's expectations.
func check(c *Case, conv []string, callerSteps []Step, o flows.Outcome, tickets []sim.Ticket) []string {
	var fails []string
	// Split the conversation into segments at the caller's turns.
	var segs [][]string
	seg := []string{}
	turns := 0
	for _, l := range conv[:len(conv)-1] {
		if strings.HasPrefix(l, "caller: ") {
			segs = append(segs, seg)
			seg = []string{}
			turns++
			continue
		}
		seg = append(seg, strings.TrimPrefix(l, "ivr: "))
	}
	segs = append(segs, seg)
	if turns < len(callerSteps) {
		s := callerSteps[turns]
		fails = append(fails, fmt.Sprintf("line %d: the call ended (%s) before the caller said %q\n%s",
			s.Line, conv[len(conv)-1], s.Text, render(conv, -1)))
		return fails
	}
	segIdx, pos, callerIdx := 0, 0, 0
	for _, s := range c.Steps {
		switch s.Kind {
		case "caller":
			callerIdx++
			segIdx, pos = callerIdx, 0
		case "ivr":
			lines := segs[segIdx]
			found := -1
			for i := pos; i < len(lines); i++ {
				if matchLine(s, lines[i]) {
					found = i
					break
				}
			}
			if found < 0 {
				where := "at the start of the call"
				if callerIdx > 0 {
					where = fmt.Sprintf("after the caller said %q (line %d)", callerSteps[callerIdx-1].Text, callerSteps[callerIdx-1].Line)
				}
				what := fmt.Sprintf("words %q", s.Text)
				if s.Re != nil {
					what = "a match of " + s.Text
				}
				fails = append(fails, fmt.Sprintf("line %d: expected the line to say %s %s; it said:\n%s",
					s.Line, what, where, render(conv, segmentStart(conv, segIdx))))
				return fails
			}
			pos = found // the next expectation may match the same line, or a later one
		case "transfer":
			if o.Kind != flows.OutcomeTransfer || o.Queue != s.Text {
				fails = append(fails, fmt.Sprintf("line %d: expected \"transfer: %s\", the call ended with %q\n%s", s.Line, s.Text, conv[len(conv)-1], errNote(o)))
			}
		case "hangup":
			reason := strings.TrimPrefix(endLine(o), "hangup: ") // "caller hung up" when the caller did
			if o.Kind == flows.OutcomeTransfer || (s.Text != "" && !strings.Contains(Normalize(reason), Normalize(s.Text))) {
				fails = append(fails, fmt.Sprintf("line %d: expected \"hangup: %s\", the call ended with %q\n%s", s.Line, s.Text, conv[len(conv)-1], errNote(o)))
			}
		case "no ticket":
			if len(tickets) > 0 {
				fails = append(fails, fmt.Sprintf("line %d: expected no ticket, the call opened %d (first: %s)", s.Line, len(tickets), tickets[0].Status.Number))
			}
		case "ticket":
			if len(tickets) == 0 {
				fails = append(fails, fmt.Sprintf("line %d: expected a ticket with %s %s %s, the call opened none", s.Line, s.Field, s.Op, s.Value))
				continue
			}
			t := tickets[len(tickets)-1]
			got := ticketField(t, s.Field)
			ok := got == s.Value
			if s.Op == "~" {
				ok = strings.Contains(Normalize(got), Normalize(s.Value))
			}
			if !ok {
				fails = append(fails, fmt.Sprintf("line %d: expected ticket %s %s %q, got %q", s.Line, s.Field, s.Op, s.Value, got))
			}
		}
	}
	return fails
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
	}
	return ""
}

// Normalize is the comparison of expected words with what was said: case,
// diacritics (both ș/ş forms) and punctuation do not matter.
func Normalize(s string) string { return flows.Normalize(s) }

func matchLine(s Step, line string) bool {
	if s.Re != nil {
		return s.Re.MatchString(line) || s.Re.MatchString(Normalize(line))
	}
	return strings.Contains(" "+Normalize(line)+" ", Normalize(s.Text)) && Normalize(s.Text) != ""
}

// segmentStart is the index in conv of the first line of segment k.
func segmentStart(conv []string, k int) int {
	if k == 0 {
		return 0
	}
	n := 0
	for i, l := range conv {
		if strings.HasPrefix(l, "caller: ") {
			n++
			if n == k {
				return i + 1
			}
		}
	}
	return len(conv)
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
	st, err := tickets.Open(tickets.DBPath(tmp))
	if err != nil {
		os.RemoveAll(tmp)
		return nil, close, err
	}
	close = func() { st.Close(); os.RemoveAll(tmp) }
	ix, err := kb.Open(st)
	if err == nil {
		_, err = ix.ImportDir(ctx, kbDir)
	}
	if err != nil {
		close()
		return nil, func() {}, fmt.Errorf("knowledge base %s: %w", kbDir, err)
	}
	return flows.KBIndex{Index: ix}, close, nil
}
