package tickets

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/govline/ivr/redact"
)

// Channel is how a request reached the service.
type Channel string

// Channels.
const (
	ChannelPhone  Channel = "phone"
	ChannelEmail  Channel = "email"
	ChannelPortal Channel = "portal"
)

// Channels lists every channel.
var Channels = []Channel{ChannelPhone, ChannelEmail, ChannelPortal}

// Service is the public service a request is about.
type Service string

// Services.
const (
	ServiceIdentityCard   Service = "identity_card"
	ServicePassport       Service = "passport"
	ServicePortalAccount  Service = "portal_account"
	ServiceOnlineRequest  Service = "online_request"
	ServiceRequestStatus  Service = "request_status"
	ServiceDrivingLicence Service = "driving_licence"
	ServiceSupport        Service = "support_service"
	ServiceOther          Service = "other"
)

// Services lists every service, in the order reports show them.
var Services = []Service{ServiceIdentityCard, ServicePassport, ServicePortalAccount, ServiceOnlineRequest,
	ServiceRequestStatus, ServiceDrivingLicence, ServiceSupport, ServiceOther}

// Priority orders the work.
type Priority string

// Priorities.
const (
	PriorityLow    Priority = "low"
	PriorityNormal Priority = "normal"
	PriorityHigh   Priority = "high"
	PriorityUrgent Priority = "urgent"
)

// Priorities lists every priority, lowest first.
var Priorities = []Priority{PriorityLow, PriorityNormal, PriorityHigh, PriorityUrgent}

// Status is where a ticket is in its lifecycle (see docs/tickets.md).
type Status string

// Statuses.
const (
	StatusNew        Status = "new"
	StatusInProgress Status = "in_progress"
	StatusEscalated  Status = "escalated"
	StatusWaiting    Status = "waiting" // waiting for the citizen
	StatusResolved   Status = "resolved"
	StatusClosed     Status = "closed"
)

// Statuses lists every status in lifecycle order.
var Statuses = []Status{StatusNew, StatusInProgress, StatusEscalated, StatusWaiting, StatusResolved, StatusClosed}

// Support levels: I operators, II specialists of the services, III
// technical administrators.
const (
	Level1 = 1
	Level2 = 2
	Level3 = 3
)

var (
	// ErrInvalid is returned (wrapped) for a bad value: an unknown service,
	// an empty actor, a rating outside 1..5. The message names the field.
	ErrInvalid = errors.New("invalid")
	// ErrTransition is returned (wrapped) for an action the ticket's status
	// does not allow (closed -> in_progress without a reopen, a resolve
	// without a note...). The message says what is allowed.
	ErrTransition = errors.New("transition not allowed")
)

// Ticket is the current state of a request, derived from its history.
type Ticket struct {
	Number string `json:"number"`
	// Provider is the public-service provider whose ticket it is
	// (DefaultProvider on a line of one provider); a transfer changes it.
	Provider       string    `json:"provider"`
	Channel        Channel   `json:"channel"`
	Caller         string    `json:"caller"` // personal data: log the Ticket, or redact.Phone(Caller)
	Lang           string    `json:"lang"`
	Service        Service   `json:"service"`
	Classification string    `json:"classification"`
	Priority       Priority  `json:"priority"`
	Level          int       `json:"level"`
	Status         Status    `json:"status"`
	Assignee       string    `json:"assignee"`
	Deadline       time.Time `json:"deadline"`
	Description    string    `json:"description"` // personal data: never logged
	CallID         string    `json:"call_id"`
	Recording      string    `json:"recording"`
	Articles       []string  `json:"articles"` // knowledge base article ids cited, in order
	// Personal holds the sensitive answers the caller gave the line, by
	// name ({"cnp": "1960101123456"}): personal data, shown only to the
	// roles that see personal data, never logged.
	Personal      map[string]string `json:"personal,omitempty"`
	Rating        int               `json:"rating,omitempty"` // 1..5, 0 when not rated
	Created       time.Time         `json:"created"`
	Updated       time.Time         `json:"updated"`
	Escalated     bool              `json:"escalated"` // was escalated at least once
	Resolved      *time.Time        `json:"resolved,omitempty"`
	ResolvedLevel int               `json:"resolved_level,omitempty"`
	FirstContact  bool              `json:"first_contact"` // resolved during the call that opened it
	Closed        *time.Time        `json:"closed,omitempty"`
	LastEvent     int64             `json:"last_event"`
	// Hold says the ticket is under legal hold (Store.Hold): retention and
	// erasure leave it untouched. Folded from the history like the rest.
	Hold bool `json:"hold,omitempty"`
	// Archived is when the retention job moved the closed ticket to the
	// archive (nil: a working ticket). It is where the ticket is kept, not
	// part of its history: ReplayTicket leaves it nil, and a reopen
	// brings the ticket back out of the archive (docs/retention.md).
	Archived *time.Time `json:"archived,omitempty"`
}

var (
	_ slog.LogValuer = Ticket{}
	_ slog.LogValuer = TicketEvent{}
	_ slog.LogValuer = Turn{}
)

// LogValue logs the ticket without personal data: the caller is masked,
// the description is left out.
func (t Ticket) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("number", t.Number),
		slog.String("provider", t.Provider),
		slog.String("channel", string(t.Channel)),
		slog.Any("caller", redact.Phone(t.Caller)),
		slog.String("service", string(t.Service)),
		slog.String("priority", string(t.Priority)),
		slog.Int("level", t.Level),
		slog.String("status", string(t.Status)),
		slog.String("call_id", t.CallID),
		slog.Time("deadline", t.Deadline),
	)
}

// NewTicket is a request to open a ticket. Zero values take defaults:
// channel phone, language "ro", service other, priority normal, level 1.
type NewTicket struct {
	Actor          string // who opens it: "ivr", an agent's user name...
	Channel        Channel
	Caller         string
	Lang           string
	Service        Service
	Classification string
	Priority       Priority
	Level          int
	Description    string
	CallID         string
	Recording      string
	Articles       []string
	// Personal are sensitive answers by name (a national ID number, a
	// phone number); names are lower-case words joined by '_'.
	Personal map[string]string
	// Provider, when set, is the provider whose ticket it is; empty: the
	// provider of the number the call (CallID) dialed, else of the
	// service, else DefaultProvider (Store.ProviderOf).
	Provider string
	// Number, when set, is the ticket's number instead of a new one (an
	// import, a test that needs a known ticket); it must be valid
	// (ValidNumber) and free.
	Number string
}

// WithDefaults fills the zero fields with the defaults OpenTicket uses.
func (nt NewTicket) WithDefaults() NewTicket {
	if nt.Channel == "" {
		nt.Channel = ChannelPhone
	}
	if nt.Lang == "" {
		nt.Lang = "ro"
	}
	if nt.Service == "" {
		nt.Service = ServiceOther
	}
	if nt.Priority == "" {
		nt.Priority = PriorityNormal
	}
	if nt.Level == 0 {
		nt.Level = Level1
	}
	return nt
}

// maxPersonal bounds one sensitive answer kept with a ticket.
const maxPersonal = 1000

// Validate reports what OpenTicket refuses in nt (after WithDefaults): an
// unknown channel, service or priority, a level outside 1..3, no actor,
// empty article ids, a bad number or personal-data name. The error wraps
// ErrInvalid and names every bad field. Tools that stand in for the
// store (the flow simulator's desk) call it to refuse the same tickets.
func (nt NewTicket) Validate() error {
	err := errors.Join(checkActor(nt.Actor), checkEnum("channel", nt.Channel, Channels),
		checkEnum("service", nt.Service, Services), checkEnum("priority", nt.Priority, Priorities),
		checkLevel("level", nt.Level))
	for i, a := range nt.Articles {
		if strings.TrimSpace(a) == "" {
			err = errors.Join(err, invalid(fmt.Sprintf("articles[%d]", i), "empty article id"))
		}
	}
	if nt.Provider != "" {
		err = errors.Join(err, checkProviderID(nt.Provider))
	}
	if nt.Number != "" && !ValidNumber(nt.Number) {
		err = errors.Join(err, invalid("number", "%q is not a valid ticket number", nt.Number))
	}
	for k, v := range nt.Personal {
		switch {
		case !personalName.MatchString(k):
			err = errors.Join(err, invalid("personal", "name %q: want lower-case letters, digits and '_'", k))
		case len(v) > maxPersonal:
			err = errors.Join(err, invalid("personal", "%s: longer than %d bytes", k, maxPersonal))
		}
	}
	return err
}

var personalName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// EventKind names an entry of a ticket's history.
type EventKind string

// Event kinds.
const (
	EventCreated      EventKind = "created"
	EventNote         EventKind = "note"
	EventClassified   EventKind = "classified"
	EventPrioritized  EventKind = "prioritized"
	EventEscalated    EventKind = "escalated"
	EventAssigned     EventKind = "assigned"
	EventStatus       EventKind = "status"
	EventResolved     EventKind = "resolved"
	EventClosed       EventKind = "closed"
	EventReopened     EventKind = "reopened"
	EventArticleCited EventKind = "article_cited"
	EventRecording    EventKind = "recording"
	EventRating       EventKind = "rating"
	EventCorrection   EventKind = "correction"
	EventTransfer     EventKind = "transfer" // to another provider
)

// EventData is the content of an event; which fields are set depends on
// the kind (docs/tickets.md lists them). It is stored as JSON.
type EventData struct {
	// created: the ticket as opened.
	Channel     Channel  `json:"channel,omitempty"`
	Caller      string   `json:"caller,omitempty"`
	Lang        string   `json:"lang,omitempty"`
	Description string   `json:"description,omitempty"`
	CallID      string   `json:"call_id,omitempty"`
	Articles    []string `json:"articles,omitempty"`

	Service        Service  `json:"service,omitempty"`        // created, classified
	Classification string   `json:"classification,omitempty"` // created, classified
	Priority       Priority `json:"priority,omitempty"`       // created, prioritized
	Level          int      `json:"level,omitempty"`          // created, escalated
	Status         Status   `json:"status,omitempty"`         // status
	Assignee       string   `json:"assignee,omitempty"`       // assigned
	Text           string   `json:"text,omitempty"`           // note, resolved, reopened; a correction's reason
	Article        string   `json:"article,omitempty"`        // article_cited
	Recording      string   `json:"recording,omitempty"`      // created, recording
	// Provider is the provider a ticket was opened for (created).
	Provider string `json:"provider,omitempty"`
	// From and To (transfer) are the providers the ticket left and went
	// to; Text is the reason.
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
	// created: sensitive answers by name (personal data).
	Personal map[string]string `json:"personal,omitempty"`
	Rating   int               `json:"rating,omitempty"` // rating
	// DeadlineNS is the deadline the event set (created, classified,
	// prioritized), as computed when it was written.
	DeadlineNS int64 `json:"deadline_ns,omitempty"`
	// DuringCall (resolved) says the ticket's call had not ended when it
	// was resolved.
	DuringCall bool `json:"during_call,omitempty"`
	// Retracted (in a correction) withdraws the superseded event: a note
	// or an article cited by mistake, a rating entered in error.
	Retracted bool `json:"retracted,omitempty"`
	// Replaces (in a correction) is the kind of the event it corrects.
	Replaces EventKind `json:"replaces,omitempty"`
	// Recomputed (in a correction of a service or priority) says that
	// DeadlineNS was recomputed from the corrected ticket.
	Recomputed bool `json:"recomputed,omitempty"`
	// Reason (in a correction) says why it was corrected.
	Reason string `json:"reason,omitempty"`
	// Hold (in a note) places the ticket under legal hold ("on", the
	// note's Text is the reason) or lifts it ("off"): Store.Hold and
	// Store.Unhold. Such a note is not corrected.
	Hold string `json:"hold,omitempty"`
}

// TicketEvent is one entry of a ticket's history.
type TicketEvent struct {
	ID     int64     `json:"id"`
	Ticket string    `json:"ticket"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Kind   EventKind `json:"kind"`
	Data   EventData `json:"data"`
	// Supersedes is, for a correction, the id of the event it replaces.
	Supersedes int64 `json:"supersedes,omitempty"`
	// SupersededBy is the id of the newest correction of this event, 0 if
	// none (filled in by History, not stored).
	SupersededBy int64 `json:"superseded_by,omitempty"`
}

// LogValue logs the event without its texts or the caller.
func (e TicketEvent) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int64("id", e.ID),
		slog.String("ticket", e.Ticket),
		slog.String("actor", e.Actor),
		slog.String("kind", string(e.Kind)),
		slog.Int64("supersedes", e.Supersedes),
	)
}

// Ticket numbers: 7 random digits (the first not 0) and a Damm check
// digit, so a caller can key one on the phone and a single wrong digit or
// two swapped adjacent digits are caught.
const numberLen = 8

// damm is the Damm algorithm's quasigroup of order 10.
var damm = [10][10]byte{
	{0, 3, 1, 7, 5, 9, 8, 6, 4, 2},
	{7, 0, 9, 2, 1, 5, 4, 8, 6, 3},
	{4, 2, 0, 6, 8, 7, 1, 3, 5, 9},
	{1, 7, 5, 0, 9, 8, 3, 4, 2, 6},
	{6, 1, 2, 3, 0, 4, 5, 9, 7, 8},
	{3, 6, 7, 4, 2, 0, 9, 5, 8, 1},
	{5, 8, 6, 9, 7, 2, 0, 1, 3, 4},
	{8, 9, 4, 5, 3, 6, 2, 0, 1, 7},
	{9, 4, 3, 8, 6, 1, 7, 2, 0, 5},
	{2, 5, 8, 1, 4, 3, 6, 7, 9, 0},
}

// dammDigit returns the interim digit of the digits of s (all 0-9).
func dammDigit(s string) byte {
	var interim byte
	for i := 0; i < len(s); i++ {
		interim = damm[interim][s[i]-'0']
	}
	return interim
}

// ValidNumber reports whether s is a well-formed ticket number: 8 digits
// whose Damm check digit is right. It says nothing about whether the
// ticket exists.
func ValidNumber(s string) bool {
	if len(s) != numberLen || s[0] == '0' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return dammDigit(s) == 0
}

// SequentialNumbers returns a source of ticket numbers for
// Store.SetNumbers that counts from the body 1000000 up (10000004,
// 10000012, ...): valid numbers, the same on every run, for tests and the
// flow simulator.
func SequentialNumbers() func() (string, error) {
	next := 1_000_000
	var mu sync.Mutex
	return func() (string, error) {
		mu.Lock()
		defer mu.Unlock()
		body := strconv.Itoa(next)
		next++
		return body + string('0'+dammDigit(body)), nil
	}
}

var numberSpan = big.NewInt(9_000_000)

// newNumber draws a random ticket number.
func newNumber() (string, error) {
	n, err := rand.Int(rand.Reader, numberSpan)
	if err != nil {
		return "", fmt.Errorf("draw ticket number: %w", err)
	}
	body := fmt.Sprintf("%07d", n.Int64()+1_000_000)
	return body + string('0'+dammDigit(body)), nil
}

// invalid builds an ErrInvalid error naming the field.
func invalid(field string, format string, a ...any) error {
	return fmt.Errorf("%w %s: %s", ErrInvalid, field, fmt.Sprintf(format, a...))
}

func checkEnum[T ~string](field string, v T, all []T) error {
	if slices.Contains(all, v) {
		return nil
	}
	return invalid(field, "%q is not one of %v", string(v), all)
}

func checkLevel(field string, l int) error {
	if l < Level1 || l > Level3 {
		return invalid(field, "%d, want 1, 2 or 3", l)
	}
	return nil
}

func checkActor(actor string) error {
	if actor == "" {
		return invalid("actor", "empty: every change names who made it")
	}
	return nil
}
