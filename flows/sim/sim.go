// Package sim holds the text side of call flows: a Channel made of text
// lines (what ivrctl flow simulate and the conversation tests talk to), and
// the simulator's stand-ins for the services that a flow reaches, kept in
// memory: a ticket desk (deterministic numbers, for tests), a transcript and
// the working hours said aloud. These stand-ins are for trying flows without the
// engine; the daemon uses the ticket store (flows.TicketDesk,
// flows.TicketTranscript, tickets.Calendar).
package sim

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/govline/ivr/flows"
)

// Channel is a conversation in text lines. Say writes "ivr: TEXT"; Listen
// reads the caller's next line and writes it back as "caller: TEXT":
//
//	text          the caller says text (confidence 0.9)
//	text @0.3     the caller says text, recognized with confidence 0.3
//	#123#         the caller presses keys 1 2 3 #
//	(empty line)  silence: nothing before the no-input timeout
//
// The end of the input is the caller hanging up. A Channel serves one call;
// its methods are called from one goroutine at a time.
type Channel struct {
	in  *bufio.Scanner
	out io.Writer
	// Lines, when set, receives every line written (for tests).
	Lines func(line string)
}

var _ flows.Channel = (*Channel)(nil)

// NewChannel returns a channel that reads caller lines from in and writes
// the conversation to out.
func NewChannel(in io.Reader, out io.Writer) *Channel {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 4096), 64<<10)
	return &Channel{in: sc, out: out}
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

// Say prints the prompt's text on one line prefixed "ivr: ".
func (c *Channel) Say(ctx context.Context, p flows.Prompt) (flows.Played, error) {
	if err := ctx.Err(); err != nil {
		return flows.Played{}, err
	}
	text := PromptText(p)
	c.Print("ivr: " + text)
	return flows.Played{Heard: text}, nil
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

// Listen reads the caller's next line.
func (c *Channel) Listen(ctx context.Context, l flows.Listen) (flows.Input, error) {
	if err := ctx.Err(); err != nil {
		return flows.Input{}, err
	}
	if !c.in.Scan() {
		if err := c.in.Err(); err != nil {
			return flows.Input{}, fmt.Errorf("%w: reading the caller's lines: %v", flows.ErrHangup, err)
		}
		return flows.Input{}, flows.ErrHangup
	}
	line := strings.TrimSpace(c.in.Text())
	in := ParseTurn(line)
	switch in.Mode {
	case flows.InputNone:
		c.Print("caller: (silence)")
	case flows.InputDTMF:
		c.Print("caller: #" + in.Text)
	default:
		c.Print("caller: " + line)
	}
	return in, nil
}

// ParseTurn reads one caller line: "" is silence, "#12#" keys, "text @0.3"
// speech with a confidence (0.9 when not given).
func ParseTurn(line string) flows.Input {
	line = strings.TrimSpace(line)
	switch {
	case line == "":
		return flows.Input{Mode: flows.InputNone}
	case strings.HasPrefix(line, "#"):
		return flows.Input{Mode: flows.InputDTMF, Text: strings.TrimSpace(line[1:]), Confidence: 1}
	}
	conf := 0.9
	if i := strings.LastIndex(line, " @"); i >= 0 {
		if f, err := strconv.ParseFloat(line[i+2:], 64); err == nil && f >= 0 && f <= 1 {
			conf, line = f, strings.TrimSpace(line[:i])
		}
	}
	return flows.Input{Mode: flows.InputSpeech, Text: line, Confidence: conf}
}

// Desk is the simulator's ticket desk, kept in memory: numbers are
// sequential from 100001 (with no check digit), and Lookup knows the
// tickets opened here and those added with Add. Safe for concurrent use.
type Desk struct {
	mu      sync.Mutex
	next    int
	tickets map[string]*Ticket
	order   []string
}

// Ticket is a ticket in the simulator's desk.
type Ticket struct {
	flows.TicketDraft
	Status flows.TicketStatus
	Notes  []string
}

var _ flows.Desk = (*Desk)(nil)

// NewDesk returns an empty desk.
func NewDesk() *Desk { return &Desk{next: 100001, tickets: map[string]*Ticket{}} }

// Open records a ticket and returns its number.
func (d *Desk) Open(ctx context.Context, t flows.TicketDraft) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := strconv.Itoa(d.next)
	d.next++
	d.tickets[n] = &Ticket{TicketDraft: t, Status: flows.TicketStatus{Number: n, Service: t.Service, Status: "new", Level: t.Level}}
	d.order = append(d.order, n)
	return n, nil
}

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

// Add puts an existing ticket in the desk, for status questions.
func (d *Desk) Add(st flows.TicketStatus) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.tickets[st.Number] = &Ticket{TicketDraft: flows.TicketDraft{Service: st.Service, Level: st.Level}, Status: st}
	d.order = append(d.order, st.Number)
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
