package flows

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/govline/ivr/flows/kb"
	"github.com/govline/ivr/tickets"
)

// The real services behind the flow API: the knowledge base index
// (package flows/kb) and the ticket store (package tickets). The daemon
// builds Services from them:
//
//	svc := flows.Services{
//		KB:         flows.KBIndex{Index: ix, RecordMisses: true},
//		Desk:       flows.TicketDesk{Store: st},
//		Transcript: flows.TicketTranscript{Store: st},
//		Calendar:   cal, // *tickets.Calendar
//		HoursText:  ...,
//	}
var (
	_ Knowledge     = KBIndex{}
	_ Desk          = TicketDesk{}
	_ NumberChecker = TicketDesk{}
	_ Rater         = TicketDesk{}
	_ Transcript    = TicketTranscript{}
	_ Calendar      = (*tickets.Calendar)(nil)
)

// KBIndex searches the knowledge base index. With RecordMisses, a search
// whose first result is not confident (or that finds nothing) is recorded
// as a miss for the editors (ivrctl kb misses); tools that only try flows
// leave it off. Safe for concurrent use, as the Index is.
type KBIndex struct {
	Index        *kb.Index
	RecordMisses bool
}

// Search runs the query and maps the results.
func (k KBIndex) Search(ctx context.Context, lang, query string, o SearchOptions) ([]Answer, error) {
	var opts []kb.SearchOption
	if o.Service != "" {
		opts = append(opts, kb.InService(o.Service))
	}
	res, err := k.Index.Search(ctx, lang, query, o.Limit, opts...)
	if err != nil {
		return nil, err
	}
	if k.RecordMisses && (len(res) == 0 || !res[0].Confident) {
		if err := k.Index.RecordMiss(ctx, lang, query); err != nil {
			return nil, fmt.Errorf("record a knowledge base miss: %w", err)
		}
	}
	out := make([]Answer, len(res))
	for i, r := range res {
		out[i] = answerOf(r)
	}
	return out, nil
}

// Get reads one article.
func (k KBIndex) Get(ctx context.Context, lang, id string) (Answer, error) {
	r, err := k.Index.Get(ctx, lang, id)
	if errors.Is(err, kb.ErrNotFound) {
		return Answer{}, fmt.Errorf("%w: %w", ErrNoArticle, err)
	}
	if err != nil {
		return Answer{}, err
	}
	return answerOf(r), nil
}

func answerOf(r kb.Result) Answer {
	return Answer{ID: r.ID, Title: r.Title, Service: r.Service, Spoken: r.Spoken, Score: r.Score, Confident: r.Confident}
}

// TicketDesk opens and reads tickets in the ticket store, as the actor
// "ivr". Safe for concurrent use.
type TicketDesk struct {
	Store *tickets.Store
}

// NewTicket is the ticket the store opens for d, as the actor "ivr" on the
// phone channel, or the portal channel for a web chat (d.Channel "chat"). A service the store does not know becomes "other", with
// the flow's word kept as the classification (a caller's request is not
// lost for a typo on a live call; flow lint checks literal services).
// Everything else is the store's to validate (tickets.NewTicket.Validate):
// the simulator's desk opens the same tickets and refuses the same ones.
func (d TicketDraft) NewTicket() tickets.NewTicket {
	svc := tickets.Service(d.Service)
	class := d.Classification
	if !slices.Contains(tickets.Services, svc) {
		if class == "" {
			class = d.Service
		}
		svc = tickets.ServiceOther
	}
	ch := tickets.ChannelPhone
	if d.Channel == "chat" { // the portal's web chat: the regulation's "portal" channel
		ch = tickets.ChannelPortal
	}
	return tickets.NewTicket{Actor: "ivr", Channel: ch, Caller: d.Caller, Lang: d.Lang,
		Service: svc, Classification: class, Priority: tickets.Priority(d.Priority), Level: d.Level,
		Description: d.Description, CallID: d.CallID, Articles: d.Articles, Recording: d.Recording, Personal: d.Personal}
}

// Open opens a phone ticket.
func (d TicketDesk) Open(ctx context.Context, t TicketDraft) (string, error) {
	tk, err := d.Store.OpenTicket(ctx, t.NewTicket())
	if err != nil {
		return "", err
	}
	return tk.Number, nil
}

// Note adds a note to a ticket.
func (d TicketDesk) Note(ctx context.Context, number, text string) error {
	err := d.Store.AddNote(ctx, number, "ivr", text)
	if errors.Is(err, tickets.ErrNotFound) {
		return fmt.Errorf("%w: %w", ErrNoTicket, err)
	}
	return err
}

// Lookup reads a ticket's status.
func (d TicketDesk) Lookup(ctx context.Context, number string) (TicketStatus, error) {
	t, err := d.Store.Ticket(ctx, number)
	if errors.Is(err, tickets.ErrNotFound) {
		return TicketStatus{}, fmt.Errorf("%w: %w", ErrNoTicket, err)
	}
	if err != nil {
		return TicketStatus{}, err
	}
	return TicketStatus{Number: t.Number, Service: string(t.Service), Status: string(t.Status), Level: t.Level,
		Created: t.Created, Updated: t.Updated, Deadline: t.Deadline}, nil
}

// ValidNumber checks a ticket number's check digit.
func (d TicketDesk) ValidNumber(number string) bool { return tickets.ValidNumber(number) }

// TicketTranscript writes the call's turns to the ticket store as they
// happen. Safe for concurrent use.
type TicketTranscript struct {
	Store *tickets.Store
}

// Append writes one turn.
func (t TicketTranscript) Append(ctx context.Context, callID string, tu Turn) error {
	mode := string(tu.Mode)
	if mode == "" {
		mode = tickets.ModeNone
	}
	if !tu.At.IsZero() && tu.Began.After(tu.At) { // two clocks: never lose the turn for it
		tu.Began = tu.At
	}
	return t.Store.AppendTurn(ctx, callID, tickets.Turn{Speaker: tu.Speaker, Text: tu.Text, At: tu.At, Began: tu.Began, Mode: mode,
		Confidence: tu.Confidence, Interrupted: tu.Interrupted, Cut: string(tu.Cut)})
}

// Rate stores the caller's satisfaction rating (1 to 5) with the ticket, as
// the actor "caller" (the survey after an agent call).
func (d TicketDesk) Rate(ctx context.Context, number string, rating int) error {
	return d.Store.Rate(ctx, number, "caller", rating)
}
