// Package sim holds the text side of call flows: a Channel made of text
// lines (what ivrctl flow simulate and the conversation tests talk to), and
// the simulator's stand-ins for the services that a flow reaches, kept in
// memory: a ticket desk (deterministic numbers, the store's own
// validation) and a transcript. The daemon uses the ticket store
// (flows.TicketDesk, flows.TicketTranscript, tickets.Calendar).
//
// The simulator behaves like the phone line: keys are collected by the
// same flows.Keypad (terminator, max, the pause between keys, keys pressed
// ahead), the same prompts are skipped by type-ahead, a caller's words are
// heard as the line's recognizer would hear them (SpeechMode), and a
// caller may interrupt a prompt that allows it.
package sim

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/speech"
	"github.com/govline/ivr/tickets"
)

// SpeechMode is what the simulated line hears of the caller's words.
type SpeechMode string

// Speech modes.
const (
	// SpeechEmbedded is the shipped line (speech.recognizer = "embedded",
	// pocketsphinx): a question hears only the phrases it lists (its
	// options' say and synonyms, yes/no, digits, the escape words of both
	// languages), free questions (ask_free) hear no words at all, and a
	// spoken answer comes with the confidence given ("text @0.3": the
	// recognizer was unsure, the flow confirms), 0.9 when not given.
	SpeechEmbedded SpeechMode = "embedded"
	// SpeechOpen is a line with an open-vocabulary recognizer (a Vosk or
	// Whisper server): any words are heard as written, with the
	// confidence given ("text @0.3"; 0.9 when not given). The zero value.
	SpeechOpen SpeechMode = "open"
	// SpeechOff is a keys-only line (speech.enabled = false): words are
	// not heard.
	SpeechOff SpeechMode = "off"
)

// ParseSpeechMode reads "embedded", "open" or "off".
func ParseSpeechMode(s string) (SpeechMode, error) {
	switch m := SpeechMode(s); m {
	case SpeechEmbedded, SpeechOpen, SpeechOff:
		return m, nil
	}
	return "", fmt.Errorf("speech %q: want embedded (the shipped recognizer: the phrases a question lists), open (an open-vocabulary recognizer) or off (keys only)", s)
}

// Channel is a conversation in text lines. Say writes "ivr: TEXT"; Listen
// reads the caller's next line and writes the turn the flow gets as
// "caller: TEXT". A caller line is:
//
//	text          the caller says text
//	text @0.3     ... recognized with confidence 0.3 (0.9 when not given)
//	#123#         the caller presses keys 1 2 3 #; a ',' is a pause longer
//	              than the question's inter-digit pause (#12,34)
//	!text, !#1    said or pressed over the prompt before the question
//	              (barge-in), when that prompt allows it
//	(empty line)  silence: nothing before the no-input timeout
//
// The end of the input is the caller hanging up. A Channel serves one call;
// its methods are called from one goroutine at a time.
type Channel struct {
	in     *bufio.Scanner
	out    io.Writer
	peeked *string // a line read ahead by Say, for the next Listen

	// Lines, when set, receives every line written (for tests).
	Lines func(line string)
	// Mode is what the line hears of words (the zero value: SpeechOpen).
	Mode SpeechMode
	// Chat makes the conversation the portal's web chat (call.channel is
	// "chat", the catalog's written sentences are used); set Mode to
	// SpeechOpen with it, as typed words are taken as written.
	Chat bool
	// Problem, when set, is told about a caller line the line cannot take
	// as written (words it cannot hear, a barge-in over a prompt that does
	// not allow it): the conversation tests fail on it.
	Problem func(line, why string)
	// Notes, when set, receives every step the flow reports besides its
	// prompts (flows.Recorder.Note: "flow.article", "flow.retry").
	Notes func(kind, detail string)
	// Ops, when set, receives each Say and Listen of the flow in order,
	// with the caller line it consumed ("" for none): the script the
	// real-call check replays (see Op).
	Ops func(Op)

	kp        flows.Keypad
	held      string    // words said over a prompt, for the next Listen
	clock     time.Time // the keys' time: a new line comes an hour later
	sensitive bool
}

// Op is one Say or Listen of a simulated conversation and the caller line
// it consumed ("" when it consumed none: a prompt not interrupted, a
// question answered by keys pressed ahead or by words said over a prompt).
type Op struct {
	Question *flows.Listen // the question of a Listen; nil for a Say
	Taken    bool          // a caller line was taken (an empty one is silence)
	Line     string        // the line taken, as written ("!" marks a barge-in)
}

// Medium is call.channel: "chat" for a simulated web chat, else "phone".
func (c *Channel) Medium() string {
	if c.Chat {
		return "chat"
	}
	return "phone"
}

var (
	_ flows.Medium   = (*Channel)(nil)
	_ flows.Channel  = (*Channel)(nil)
	_ flows.Recorder = (*Channel)(nil)
	_ flows.Hearing  = (*Channel)(nil)
)

// NewChannel returns a channel that reads caller lines from in and writes
// the conversation to out.
func NewChannel(in io.Reader, out io.Writer) *Channel {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 4096), 64<<10)
	return &Channel{in: sc, out: out, clock: time.Unix(0, 0)}
}

// Print writes one line of the conversation.
func (c *Channel) Print(line string) {
	if c.out != nil {
		fmt.Fprintln(c.out, line)
	}
	if c.Lines != nil {
		c.Lines(line)
	}
}

// Interrupted is the line printed after a prompt the caller cut off.
const Interrupted = "(interrupted by the caller)"

// Say prints the prompt's text on one line prefixed "ivr: ". A prompt that
// allows barge-in is skipped while keys pressed ahead wait, as on the
// line, and is cut by a caller line starting with '!'.
func (c *Channel) Say(ctx context.Context, p flows.Prompt) (flows.Played, error) {
	if err := ctx.Err(); err != nil {
		return flows.Played{}, err
	}
	if p.BargeIn && c.kp.Ahead() { // type-ahead: the line skips it, unheard
		c.op(Op{})
		return flows.Played{Interrupted: true}, nil
	}
	text := PromptText(p)
	if c.Chat {
		text = p.Written()
	}
	line, ok := c.peek()
	if !ok || !strings.HasPrefix(line, "!") {
		c.op(Op{})
		c.Print("ivr: " + text)
		return flows.Played{Heard: text}, nil
	}
	c.peeked = nil
	c.Print("ivr: " + text)
	in := ParseTurn(line[1:])
	switch {
	case in.Mode == flows.InputDTMF:
		// Keys wait for the next question; over a barge-in prompt they
		// also stop it.
		c.pressAll(in.Text, nil)
	case p.BargeIn: // heard with the next question's grammar, as on the line
		c.held = line[1:]
	}
	if p.BargeIn {
		c.Print(Interrupted)
	}
	c.op(Op{Taken: true, Line: line})
	if !p.BargeIn && in.Mode != flows.InputDTMF {
		c.problem(line, "the prompt does not allow barge-in: words said over it are lost")
	}
	return flows.Played{Interrupted: p.BargeIn, Heard: text}, nil
}

// PromptText is a prompt as one line: text parts as they are, digits one
// by one, recordings as their transcript or [audio NAME].
func PromptText(p flows.Prompt) string {
	var parts []string
	for _, pt := range p.Parts {
		switch {
		case pt.Text != "":
			parts = append(parts, pt.Text)
		case pt.Kind == flows.PartAudio:
			parts = append(parts, "[audio "+pt.Value+"]")
		}
	}
	return strings.Join(parts, " ")
}

// Listen answers the question with keys pressed ahead, words said over the
// prompt, or the caller's next line.
func (c *Channel) Listen(ctx context.Context, l flows.Listen) (flows.Input, error) {
	if err := ctx.Err(); err != nil {
		return flows.Input{}, err
	}
	if in, ok := c.kp.Start(l); ok {
		c.op(Op{Question: &l})
		return c.got(in), nil
	}
	var line string
	if c.held != "" {
		line, c.held = c.held, ""
		c.op(Op{Question: &l})
	} else {
		var ok bool
		if line, ok = c.next(); !ok {
			c.kp.Stop()
			c.op(Op{Question: &l})
			return flows.Input{}, c.hungUp()
		}
		c.op(Op{Question: &l, Taken: true, Line: line})
		line = strings.TrimPrefix(line, "!") // not over a prompt: an ordinary turn
	}
	in, given := parseTurn(line)
	switch in.Mode {
	case flows.InputNone:
		c.kp.Stop()
		c.Print("caller: (silence)")
		return in, nil
	case flows.InputDTMF:
		var answer *flows.Input
		c.pressAll(in.Text, &answer)
		if answer == nil { // the caller stopped pressing: the inter-digit pause
			if in, ok := c.kp.Pause(); ok {
				answer = &in
			}
		}
		if answer == nil {
			c.Print("caller: (silence)")
			return flows.Input{Mode: flows.InputNone}, nil
		}
		return c.got(*answer), nil
	}
	c.kp.Stop()
	heard, ok := c.hear(line, in, given, l)
	if !ok {
		return flows.Input{Mode: flows.InputNone}, nil
	}
	return c.got(heard), nil
}

// pressAll presses the keys of one caller line in quick succession (a ','
// is a pause longer than any inter-digit pause). The first answer they
// make is put in *answer; the keys after it wait for the next question.
func (c *Channel) pressAll(keys string, answer **flows.Input) {
	c.clock = c.clock.Add(time.Hour) // a new caller turn
	for _, r := range keys {
		if r == ',' {
			c.clock = c.clock.Add(time.Hour)
			if in, ok := c.kp.Pause(); ok && answer != nil && *answer == nil {
				*answer = &in
			}
			continue
		}
		if r == ' ' {
			continue
		}
		c.clock = c.clock.Add(100 * time.Millisecond)
		in, done, _ := c.kp.Press(r, c.clock)
		if done && answer != nil && *answer == nil {
			*answer = &in
		}
	}
}

// got prints the turn the flow gets (masked when the question is
// sensitive) and returns it.
func (c *Channel) got(in flows.Input) flows.Input {
	if in.Untranscribed {
		return in // printed as such by hear
	}
	text := in.Text
	if c.sensitive {
		text = flows.MaskAnswer(text)
	}
	if in.Mode == flows.InputDTMF {
		c.Print("caller: #" + text)
	} else {
		c.Print("caller: " + text)
	}
	return in
}

// hear turns a spoken caller line into what the line's recognizer gives
// the flow for question l, or reports (and prints) why it cannot hear it.
// confident says the line gave a confidence ("@0.3").
func (c *Channel) hear(line string, in flows.Input, confident bool, l flows.Listen) (flows.Input, bool) {
	notHeard := func(why string) (flows.Input, bool) {
		c.Print("caller: (not heard: " + line + ")")
		c.problem(line, why)
		return flows.Input{}, false
	}
	switch c.Mode {
	case SpeechOff:
		return notHeard("the line takes keys only (speech is off)")
	case SpeechEmbedded:
		if isFree(l) {
			// Words the engine cannot transcribe answer a free
			// question all the same (the recording keeps them); the
			// escape words and yes/no are heard as such.
			if text, why := Hears(flows.Listen{Lang: l.Lang, Expect: flows.ExpectYesNo}, in.Text); why == "" {
				return flows.Input{Mode: flows.InputSpeech, Text: text, Confidence: in.Confidence}, true
			}
			c.Print("caller: (untranscribed: " + line + ")")
			return flows.Input{Mode: flows.InputSpeech, Untranscribed: true}, true
		}
		text, why := Hears(l, in.Text)
		if why != "" {
			return notHeard(why)
		}
		return flows.Input{Mode: flows.InputSpeech, Text: text, Confidence: in.Confidence}, true
	}
	return in, true
}

// isFree reports whether l is a free question: no phrases, which the
// embedded recognizer cannot transcribe.
func isFree(l flows.Listen) bool {
	return speech.ForQuestion(speech.Question{Lang: l.Lang, Kind: string(l.Expect), Phrases: l.Phrases,
		MinDigits: l.MinDigits, MaxDigits: l.MaxDigits}) == nil
}

// Hears reports what the embedded recognizer hears when the caller says
// text to question l: the grammar phrase said (in the recognizer's own
// spelling), or why it cannot hear it. Case, diacritics and punctuation do
// not matter, as on the line.
func Hears(l flows.Listen, text string) (heard, why string) {
	g := speech.ForQuestion(speech.Question{Lang: l.Lang, Kind: string(l.Expect), Phrases: l.Phrases,
		MinDigits: l.MinDigits, MaxDigits: l.MaxDigits})
	if g == nil {
		return "", "a free question: the embedded recognizer cannot transcribe it (the answer comes untranscribed; an open-vocabulary recognizer would hear it: speech open)"
	}
	said := flows.Normalize(text)
	var listed []string
	for _, p := range g.Phrases {
		for _, s := range p.Say {
			if flows.Normalize(s) == said {
				return speech.NormalizeText(s), ""
			}
			listed = append(listed, s)
		}
	}
	if g.Digits > 0 {
		if d, ok := speech.ParseDigits(l.Lang, text); ok && len(d) >= g.MinDigits && len(d) <= g.Digits {
			return speech.NormalizeText(text), ""
		}
		listed = append(listed, fmt.Sprintf("%d to %d digits said one by one", max(1, g.MinDigits), g.Digits))
	}
	if len(listed) > 12 {
		listed = append(listed[:12], "...")
	}
	return "", "the embedded recognizer hears only the phrases this question lists: " + strings.Join(listed, ", ")
}

func (c *Channel) problem(line, why string) {
	if c.Problem != nil {
		c.Problem(line, why)
	}
}

func (c *Channel) op(o Op) {
	if c.Ops != nil {
		c.Ops(o)
	}
}

// peek returns the next caller line without taking it.
func (c *Channel) peek() (string, bool) {
	if c.peeked != nil {
		return *c.peeked, true
	}
	if !c.in.Scan() {
		return "", false
	}
	line := strings.TrimSpace(c.in.Text())
	c.peeked = &line
	return line, true
}

// next takes the next caller line.
func (c *Channel) next() (string, bool) {
	line, ok := c.peek()
	c.peeked = nil
	return line, ok
}

func (c *Channel) hungUp() error {
	if err := c.in.Err(); err != nil {
		return fmt.Errorf("%w: reading the caller's lines: %v", flows.ErrHangup, err)
	}
	return flows.ErrHangup
}

// Note prints what the flow did besides speaking: "article: ID" for the
// knowledge base article whose answer was said.
func (c *Channel) Note(kind, detail string) {
	if c.Notes != nil {
		c.Notes(kind, detail)
	}
	if kind == "flow.article" {
		c.Print("article: " + detail)
	}
}

// Sensitive masks the caller's answers printed while a sensitive question
// is asked.
func (c *Channel) Sensitive(on bool) { c.sensitive = on }

// Speech reports whether the simulated line hears words (call.speech).
func (c *Channel) Speech() bool { return c.Mode != SpeechOff }

// ParseTurn reads one caller line: "" is silence, "#12#" keys, "text @0.3"
// speech with a confidence (0.9 when not given).
func ParseTurn(line string) flows.Input {
	in, _ := parseTurn(line)
	return in
}

// parseTurn is ParseTurn; given reports a confidence written in the line.
func parseTurn(line string) (in flows.Input, given bool) {
	line = strings.TrimSpace(line)
	switch {
	case line == "":
		return flows.Input{Mode: flows.InputNone}, false
	case strings.HasPrefix(line, "#"):
		return flows.Input{Mode: flows.InputDTMF, Text: strings.TrimSpace(line[1:]), Confidence: 1}, false
	}
	conf := 0.9
	if i := strings.LastIndex(line, " @"); i >= 0 {
		if f, err := strconv.ParseFloat(line[i+2:], 64); err == nil && f >= 0 && f <= 1 {
			conf, line, given = f, strings.TrimSpace(line[:i]), true
		}
	}
	return flows.Input{Mode: flows.InputSpeech, Text: line, Confidence: conf}, given
}

// Desk is the simulator's ticket desk, kept in memory. It opens the
// tickets the store would open and refuses the ones it would refuse (the
// same flows.TicketDraft.NewTicket and tickets.NewTicket.Validate), with
// numbers from tickets.SequentialNumbers (10000004, 10000012, ...), so
// that a conversation says the same numbers on every run. Lookup knows the
// tickets opened here and those added with Add. Safe for concurrent use.
type Desk struct {
	mu      sync.Mutex
	numbers func() (string, error)
	tickets map[string]*Ticket
	order   []string
}

// Ticket is a ticket in the simulator's desk.
type Ticket struct {
	flows.TicketDraft
	Status flows.TicketStatus
	Notes  []string
	Rating int // the caller's satisfaction rating (ticket.rate), 0 for none
}

var (
	_ flows.Desk          = (*Desk)(nil)
	_ flows.NumberChecker = (*Desk)(nil)
	_ flows.Rater         = (*Desk)(nil)
)

// NewDesk returns an empty desk.
func NewDesk() *Desk {
	return &Desk{numbers: tickets.SequentialNumbers(), tickets: map[string]*Ticket{}}
}

// Open validates a ticket as the store does, records it and returns its
// number.
func (d *Desk) Open(ctx context.Context, t flows.TicketDraft) (string, error) {
	nt := t.NewTicket().WithDefaults()
	if err := nt.Validate(); err != nil {
		return "", fmt.Errorf("tickets: open ticket: %w", err)
	}
	t.Service, t.Classification, t.Priority, t.Level = string(nt.Service), nt.Classification, string(nt.Priority), nt.Level
	d.mu.Lock()
	defer d.mu.Unlock()
	var n string
	for {
		var err error
		if n, err = d.numbers(); err != nil {
			return "", err
		}
		if _, taken := d.tickets[n]; !taken {
			break
		}
	}
	d.tickets[n] = &Ticket{TicketDraft: t, Status: flows.TicketStatus{Number: n, Service: t.Service, Status: "new", Level: t.Level}}
	d.order = append(d.order, n)
	return n, nil
}

// ValidNumber checks a ticket number's check digit, as the store's desk
// does (ticket.valid).
func (d *Desk) ValidNumber(number string) bool { return tickets.ValidNumber(number) }

// Note adds a note to a ticket.
func (d *Desk) Note(ctx context.Context, number, text string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.tickets[number]
	if !ok {
		return fmt.Errorf("%w: %s", flows.ErrNoTicket, number)
	}
	t.Notes = append(t.Notes, text)
	return nil
}

// Rate stores the caller's rating (1 to 5) with a ticket, as the store
// does (ticket.rate).
func (d *Desk) Rate(ctx context.Context, number string, rating int) error {
	if rating < 1 || rating > 5 {
		return fmt.Errorf("tickets: rate %s: rating %d is not 1 to 5", number, rating)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.tickets[number]
	if !ok {
		return fmt.Errorf("%w: %s", flows.ErrNoTicket, number)
	}
	t.Rating = rating
	return nil
}

// Lookup returns a ticket's status.
func (d *Desk) Lookup(ctx context.Context, number string) (flows.TicketStatus, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.tickets[number]
	if !ok {
		return flows.TicketStatus{}, fmt.Errorf("%w: %s", flows.ErrNoTicket, number)
	}
	return t.Status, nil
}

// Add puts an existing ticket in the desk, for status questions. Its
// number must be valid (tickets.ValidNumber), its status and service
// known to the store.
func (d *Desk) Add(st flows.TicketStatus) error {
	if !tickets.ValidNumber(st.Number) {
		return fmt.Errorf("ticket %q: not a valid ticket number (8 digits, the last a check digit, e.g. 12345671)", st.Number)
	}
	if !slices.Contains(tickets.Statuses, tickets.Status(st.Status)) {
		return fmt.Errorf("ticket %s: unknown status %q (want one of %v)", st.Number, st.Status, tickets.Statuses)
	}
	if !slices.Contains(tickets.Services, tickets.Service(st.Service)) {
		return fmt.Errorf("ticket %s: unknown service %q (want one of %v)", st.Number, st.Service, tickets.Services)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.tickets[st.Number] = &Ticket{TicketDraft: flows.TicketDraft{Service: st.Service, Level: st.Level}, Status: st}
	d.order = append(d.order, st.Number)
	return nil
}

// Opened returns copies of the tickets opened or added, in order.
func (d *Desk) Opened() []Ticket {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Ticket, 0, len(d.order))
	for _, n := range d.order {
		t := *d.tickets[n]
		t.Notes = append([]string(nil), t.Notes...)
		out = append(out, t)
	}
	return out
}

// Transcript keeps turns in memory. Safe for concurrent use.
type Transcript struct {
	mu    sync.Mutex
	turns map[string][]flows.Turn
}

var _ flows.Transcript = (*Transcript)(nil)

// Append keeps one turn.
func (t *Transcript) Append(ctx context.Context, callID string, turn flows.Turn) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.turns == nil {
		t.turns = map[string][]flows.Turn{}
	}
	t.turns[callID] = append(t.turns[callID], turn)
	return nil
}

// Turns returns a call's turns.
func (t *Transcript) Turns(callID string) []flows.Turn {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]flows.Turn(nil), t.turns[callID]...)
}
