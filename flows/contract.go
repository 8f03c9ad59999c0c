// Package flows runs the call flows: Lua scripts (github.com/yuin/gopher-lua)
// that flow designers edit without touching Go. One sandboxed Lua state runs
// per call; the script calls blocking functions (say, ask, kb search, open a
// ticket, transfer, hang up) that the runtime performs through the small
// interfaces declared in this file.
//
// The same flow runs on a phone call (package ivr implements Channel with
// prompts, DTMF and, later, speech) and in the text simulator and the
// conversation tests of ivrctl (a Channel made of text lines).
package flows

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Channel is the caller's side of a conversation: a phone call or a text
// simulator. A flow's runtime calls it from one goroutine at a time.
//
// Keys the caller presses while a prompt plays, and anything said over a
// prompt that allows barge-in, stay pending in the channel: the next Listen
// returns them first.
//
// Both methods return ErrHangup (wrapped) once the caller has hung up, and
// the context's error when ctx ends.
type Channel interface {
	// Say plays a prompt to its end, or until the caller interrupts it
	// when p.BargeIn allows it.
	Say(ctx context.Context, p Prompt) (Played, error)
	// Listen waits for one caller turn as l describes it.
	Listen(ctx context.Context, l Listen) (Input, error)
}

// ErrHangup reports that the caller hung up.
var ErrHangup = errors.New("caller hung up")

// Prompt is what the engine says in one turn.
type Prompt struct {
	Lang    string // "ro" or "en"
	Parts   []Part // played in order
	BargeIn bool   // the caller may interrupt it by speaking or pressing a key
}

// Written is the prompt as a written message (the web chat's): text
// parts as they are, a digit string as the number ("34554410", not spaced
// out for the ear), a recording as its transcript; no space before
// punctuation.
func (p Prompt) Written() string {
	var b strings.Builder
	for _, pt := range p.Parts {
		t := pt.Text
		if pt.Kind == PartDigits && pt.Value != "" {
			t = pt.Value
		}
		if t == "" {
			continue
		}
		if b.Len() > 0 && !strings.ContainsAny(t[:1], ".,;:!?") {
			b.WriteByte(' ')
		}
		b.WriteString(t)
	}
	return b.String()
}

// PartKind says how a Part is rendered.
type PartKind string

// Part kinds.
const (
	PartText   PartKind = "text"   // text for the synthesizer
	PartDigits PartKind = "digits" // a digit string read one digit at a time (ticket, phone number)
	PartAudio  PartKind = "audio"  // a recorded WAV file; Value is its absolute path
)

// Part is one piece of a prompt.
type Part struct {
	Kind  PartKind
	Value string
	// Text is what the caller hears, for transcripts and the simulator:
	// the text itself, the digits, or the recording's transcript (may be
	// empty for a recording without one).
	Text string
	// Lang is the language this part is spoken in when it differs from
	// the prompt's ("For English, press 9" inside a Romanian prompt);
	// "" means the prompt's.
	Lang string
}

// Played is how a prompt ended.
type Played struct {
	Interrupted bool   // the caller interrupted it (barge-in)
	Heard       string // the text actually played: all of it, or up to the interruption
	Cut         Cut    // what stopped it before its end ("" when it played whole)
}

// Cut says what stopped a prompt before its end.
type Cut string

// What may cut a prompt.
const (
	CutKey    Cut = "key"    // the caller pressed a key (barge-in or type-ahead)
	CutSpeech Cut = "speech" // the caller spoke (barge-in or type-ahead)
	CutHangup Cut = "hangup" // the call ended while it played
)

// Expect says what kind of answer a Listen waits for, so a recognizer can
// load the right grammar and the endpointing can wait longer for numbers.
type Expect string

// What a Listen may expect.
const (
	ExpectFree   Expect = "free"   // free speech: the caller says what they need
	ExpectChoice Expect = "choice" // one of Phrases, or a key
	ExpectYesNo  Expect = "yesno"  // yes or no (da / nu), or 1 / 2
	ExpectDigits Expect = "digits" // a digit string by voice or keypad
)

// Listen describes one caller turn to wait for.
type Listen struct {
	Lang    string
	Expect  Expect
	Phrases []string // for ExpectChoice: every option's spoken forms
	// Options are the choices of an ExpectChoice question, one per option
	// (its key and its label in the call's language), for a channel that
	// shows them as buttons (the web chat).
	Options []Option
	// Keys the caller may press. A key answers at once, except in
	// ExpectDigits, where keys collect until MaxDigits, Terminator or the
	// inter-digit timeout.
	MinDigits, MaxDigits int
	Terminator           rune          // e.g. '#'; 0 for none
	NoInput              time.Duration // how long to wait for the turn to start
	InterDigit           time.Duration // for ExpectDigits: longest pause between keys
}

// InputMode says how the caller answered.
type InputMode string

// Input modes.
const (
	InputSpeech InputMode = "speech"
	InputDTMF   InputMode = "dtmf"
	InputNone   InputMode = "none" // nothing before the no-input timeout
)

// Input is one caller turn.
type Input struct {
	Mode       InputMode
	Text       string  // the words recognized, or the keys pressed ("123#")
	Confidence float64 // 0..1; 1 for keys
	// Began is when the caller began this answer: the speech's onset or
	// the first key (zero when the channel does not know).
	Began time.Time
	// Untranscribed: the caller spoke (Mode InputSpeech) at a free
	// question the line's recognizer cannot transcribe (a grammar-only
	// engine): Text is empty; the words are in the call's recording, from
	// Began.
	Untranscribed bool
	// Shown, when set, is the answer as the caller saw it, for the
	// transcript: a web chat's button is its key in Text ("2") and its
	// label here ("Nu").
	Shown string
	// OverVoices: the answer was said over other voices in the caller's
	// room (a television, a radio). The recognizer's confidence means
	// less then: the runtime confirms a spoken choice or a request for an
	// operator heard with less than OverVoicesConfirmBelow.
	OverVoices bool
}

// OverVoicesConfirmBelow is the confidence under which a spoken answer
// said over other voices is confirmed (Input.OverVoices): over the speech
// test set's television a caller's "pașaport" was heard as "application"
// at 0.55 and as "talk to an operator" at 0.19 and 0.27.
const OverVoicesConfirmBelow = 0.8

// UntranscribedText is the transcript's line for an untranscribed answer
// (Input.Untranscribed), in the staff's language.
const UntranscribedText = "[vorbire netranscrisă: în înregistrare]"

// Facts are what a flow knows about its call from the start.
type Facts struct {
	CallID string
	Caller string // personal data: the runtime masks it in logs
	Called string
	Lang   string // initial language, "ro" unless configured otherwise
	Start  time.Time
	// Recording is the call's recording file, when the call is recorded;
	// the tickets the flow opens refer to it.
	Recording string
	// Flow, when set, is the flow file the engine runs by name instead of
	// the one routed for Called (the survey after an agent's call,
	// "survey.lua"). When such a flow fails, the caller hears the apology
	// and the call ends: no ticket, no transfer (the caller has just been
	// served).
	Flow string
	// Ticket is the call's ticket when the flow starts with one (the
	// survey rates it): call.ticket, and the ticket of the outcome.
	Ticket string
	// SurveyCall is true when the line called the citizen to survey a
	// resolved ticket (call.survey_call): survey.lua then says why it
	// calls before the question.
	SurveyCall bool
}

// Answer is one knowledge base article found for a query.
type Answer struct {
	ID        string
	Title     string
	Service   string
	Spoken    string // the short answer written for the ear
	Score     float64
	Confident bool // the score passes the threshold at which flows answer without asking back
}

// Knowledge searches the knowledge base. Safe for concurrent use.
type Knowledge interface {
	// Search finds the articles that answer query, best first.
	Search(ctx context.Context, lang, query string, o SearchOptions) ([]Answer, error)
	// Get returns one article by id (Score 1, Confident), or an error
	// wrapping ErrNoArticle.
	Get(ctx context.Context, lang, id string) (Answer, error)
}

// SearchOptions narrow a knowledge base search.
type SearchOptions struct {
	Limit   int    // at most this many results (1..10)
	Service string // only articles of this service ("" for all)
}

// ErrNoArticle is returned (wrapped) by Knowledge.Get for an unknown id.
var ErrNoArticle = errors.New("no such article")

// TicketDraft is a new ticket as a flow opens it.
type TicketDraft struct {
	CallID         string
	Caller         string
	Lang           string
	Service        string // e.g. "identity_card"
	Classification string
	Priority       string // "low", "normal", "high", "urgent"
	Level          int    // support level 1..3
	Description    string // what the caller wants, in their words
	Articles       []string
	Recording      string // the call's recording (Facts.Recording), set by the runtime
	Channel        string // call.channel: "phone" or "chat", set by the runtime
	// Personal are the sensitive answers the flow kept for the agents, by
	// name ({"cnp": "1960101123456"}): only the ticket's personal field
	// holds them; the description and the transcript hold masked forms.
	Personal map[string]string
}

// TicketStatus is what a caller may learn about an earlier ticket.
type TicketStatus struct {
	Number   string
	Service  string
	Status   string // "new", "in_progress", "escalated", "waiting", "resolved", "closed"
	Level    int
	Created  time.Time
	Updated  time.Time
	Deadline time.Time
}

// ErrNoTicket is returned (wrapped) by Desk.Lookup for an unknown number.
var ErrNoTicket = errors.New("no such ticket")

// Desk opens and reads tickets. Safe for concurrent use.
type Desk interface {
	Open(ctx context.Context, d TicketDraft) (number string, err error)
	Note(ctx context.Context, number, text string) error
	Lookup(ctx context.Context, number string) (TicketStatus, error)
}

// Recorder is implemented by a Channel that keeps a record of the call
// besides its transcript (a phone call's event log; the simulator's
// output). Both methods are called from the flow's goroutine.
type Recorder interface {
	// Note records a step of the flow that the transcript does not show:
	// kind "flow.article" with the id of the knowledge base article whose
	// answer was just said.
	Note(kind, detail string)
	// Sensitive marks, from Sensitive(true) to Sensitive(false), a
	// question whose answer is personal data (a national ID number): the
	// keys and words the caller gives meanwhile must reach no record in
	// clear (a call's DTMF log keeps their masked form).
	Sensitive(on bool)
}

// Option is one choice of a question as a channel may show it.
type Option struct {
	Key   string // the key that answers it ("" for none)
	Label string // in the call's language
}

// Medium is implemented by a Channel that is not a phone call: Medium
// names it ("chat"), and flows read it as call.channel ("phone" when the
// Channel does not implement Medium).
type Medium interface {
	Medium() string
}

// Hearing is implemented by a Channel that knows whether the caller can
// answer by voice (call.speech); a Channel without it is taken to hear.
type Hearing interface {
	Speech() bool
}

// Turn is one line of a call's transcript.
type Turn struct {
	Speaker     string // "ivr" or "caller"
	Text        string
	At          time.Time // when the turn ended (the prompt played or was cut, the answer was heard)
	Began       time.Time // when it began: the prompt started, the caller started speaking or pressed the first key (zero: unknown)
	Mode        InputMode // for the caller's turns
	Confidence  float64
	Interrupted bool // an ivr turn the caller cut off; Text is what was heard
	Cut         Cut  // what cut an ivr turn short ("" when it played whole)
}

// Transcript keeps a call's turns as they happen (durably: a crash must not
// lose a turn already said). Safe for concurrent use.
type Transcript interface {
	Append(ctx context.Context, callID string, t Turn) error
}

// Calendar says when the human operators work.
type Calendar interface {
	Open(t time.Time) bool
	NextOpen(t time.Time) time.Time
}

// OutcomeKind is how a flow ended.
type OutcomeKind string

// Outcomes.
const (
	OutcomeHangup   OutcomeKind = "hangup"   // the flow hung up (or returned)
	OutcomeTransfer OutcomeKind = "transfer" // hand the call to an agent queue
	OutcomeCaller   OutcomeKind = "caller"   // the caller hung up
)

// Outcome is what the flow decided; the session carries it out.
type Outcome struct {
	Kind   OutcomeKind
	Reason string // hangup reason given by the flow
	Queue  string // for a transfer
	Ticket string // ticket number attached to the transfer, if any
	// Summary is one line for the agent's screen (the PBX gets it as
	// IVR_SUMMARY): the service and the articles cited, never the
	// caller's own words, which may hold personal data.
	Summary string
	Lang    string // the call's language at the end
	// Vars are the flow's per-call variables at the end (strings, numbers
	// and booleans as text; sensitive answers masked), for tests.
	Vars map[string]string
	// Err is the script error or limit hit, when the flow failed; the
	// runtime has then already apologized and opened a ticket.
	Err error
}
