package chat

import (
	"context"
	"strings"
	"time"

	"github.com/govline/ivr/flows"
	"github.com/govline/ivr/tickets"
)

// DefaultPoll is how often the engine reads the shared store for agents'
// messages and assignments of the chats it holds (Config.Poll).
const DefaultPoll = 250 * time.Millisecond

// Relay is the line's shared ticket store (*tickets.Store). Through it the
// agents of any engine of the line reach a chat held by this one: the
// console appends the agent's message to the ticket's transcript, and the
// engine holding the chat reads it there and shows it to the citizen. A
// ticket assigned to an agent tells the citizen that an operator joined.
type Relay interface {
	Ticket(ctx context.Context, number string) (tickets.Ticket, error)
	Transcript(ctx context.Context, callID string) ([]tickets.Turn, error)
	TurnsStart(ctx context.Context) (tickets.LogCursor, error)
	Turns(ctx context.Context, cur tickets.LogCursor, limit int) ([]tickets.FeedItem, tickets.LogCursor, error)
	TicketChangesStart(ctx context.Context) (tickets.LogCursor, error)
	TicketChanges(ctx context.Context, cur tickets.LogCursor, limit int) ([]tickets.TicketChange, tickets.LogCursor, error)
}

var _ Relay = (*tickets.Store)(nil)

// ended reports whether a chat's transcript says it ended: its last turn
// is the line's closing message (after the handoff the citizen left or
// went idle, or the engine holding the chat stopped).
func ended(turns []tickets.Turn) bool {
	if len(turns) == 0 {
		return false
	}
	last := turns[len(turns)-1]
	if last.Speaker != tickets.SpeakerIVR {
		return false
	}
	for _, lang := range []string{"ro", "en"} {
		if last.Text == text(lang, "idle") || last.Text == text(lang, "left") || last.Text == text(lang, "stopped") {
			return true
		}
	}
	return false
}

// relayAnswer is AnswerInChat through the store: the agent's message goes
// into the transcript of the ticket's chat, and whichever engine holds the
// chat shows it.
func (s *Server) relayAnswer(ctx context.Context, number, body string) error {
	t, err := s.cfg.Relay.Ticket(ctx, number)
	if err != nil {
		return err
	}
	if t.Channel != tickets.ChannelPortal || !strings.HasPrefix(t.CallID, callPrefix) {
		return ErrNoChat
	}
	turns, err := s.cfg.Relay.Transcript(ctx, t.CallID)
	if err != nil {
		return err
	}
	if ended(turns) {
		return ErrNoChat
	}
	if err := s.svc.Transcript.Append(ctx, t.CallID, flows.Turn{Speaker: tickets.SpeakerAgent, Text: body, At: time.Now()}); err != nil {
		return err
	}
	select { // this engine may hold the chat: show it now
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

// relay reads the store for the chats this engine holds after their
// handoff: the agents' messages (written on any engine) and the tickets'
// assignments. It runs until the server closes; a store that fails is
// read again at the next poll, from where it stood.
func (s *Server) relay() {
	defer s.wg.Done()
	var turns, changes tickets.LogCursor
	started := false
	tick := time.NewTicker(s.cfg.Poll)
	defer tick.Stop()
	for {
		if !started {
			var err error
			if turns, err = s.cfg.Relay.TurnsStart(s.ctx); err == nil {
				changes, err = s.cfg.Relay.TicketChangesStart(s.ctx)
			}
			started = err == nil
			if err != nil && s.ctx.Err() == nil {
				s.log.Warn("chat relay: the store does not answer", "err", err)
			}
		}
		if started {
			var err error
			if turns, err = s.relayTurns(turns); err == nil {
				changes, err = s.relayChanges(changes)
			}
			if err != nil && s.ctx.Err() == nil {
				s.log.Warn("chat relay: reading the store", "err", err)
			}
		}
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
		case <-s.wake:
		}
	}
}

// relayTurns shows the agents' turns written after cur to the citizens
// whose chats this engine holds.
func (s *Server) relayTurns(cur tickets.LogCursor) (tickets.LogCursor, error) {
	for {
		items, next, err := s.cfg.Relay.Turns(s.ctx, cur, 500)
		if err != nil {
			return cur, err
		}
		for _, it := range items {
			if it.Turn == nil || it.Turn.Speaker != tickets.SpeakerAgent {
				continue
			}
			s.mu.Lock()
			ss := s.byCall[it.CallID]
			s.mu.Unlock()
			if ss != nil {
				ss.agentSays(it.Turn.Text)
			}
		}
		if len(items) < 500 {
			return next, nil
		}
		cur = next
	}
}

// relayChanges tells the citizens whose ticket was just assigned that an
// operator joined, and ends the conversation with the agents of those
// whose ticket was resolved (with the survey).
func (s *Server) relayChanges(cur tickets.LogCursor) (tickets.LogCursor, error) {
	for {
		chs, next, err := s.cfg.Relay.TicketChanges(s.ctx, cur, 500)
		if err != nil {
			return cur, err
		}
		for _, c := range chs {
			if c.Kind != tickets.EventAssigned && c.Kind != tickets.EventResolved {
				continue
			}
			s.mu.Lock()
			ss := s.byTicket[c.Ticket]
			s.mu.Unlock()
			switch {
			case ss == nil:
			case c.Kind == tickets.EventAssigned:
				ss.join()
			default:
				ss.resolvedOnce.Do(func() { close(ss.resolved) })
			}
		}
		if len(chs) < 500 {
			return next, nil
		}
		cur = next
	}
}

// join tells the citizen, once, that an operator joined.
func (ss *session) join() {
	ss.mu.Lock()
	first := !ss.joined
	ss.joined = true
	lang := ss.lang
	ss.mu.Unlock()
	if first {
		ss.send(msg{Type: "joined", Text: text(lang, "joined")}, true)
	}
}

// agentSays shows an agent's message (after "joined", when not yet said).
func (ss *session) agentSays(body string) {
	ss.join()
	ss.send(msg{Type: "agent", Text: body}, true)
}

// closing writes the chat's closing message into its transcript, so that
// the agents (on any engine) see the citizen has gone.
func (ss *session) closing(key, lang string) {
	if ss.srv.svc.Transcript == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	t := flows.Turn{Speaker: tickets.SpeakerIVR, Text: text(lang, key), At: time.Now()}
	if err := ss.srv.svc.Transcript.Append(ctx, ss.id, t); err != nil {
		ss.srv.log.Error("chat closing turn not kept", "call_id", ss.id, "err", err)
	}
}

// surveyFlow is the satisfaction survey (ivr.SurveyFlow, the shipped
// flows/survey.lua).
const surveyFlow = "survey.lua"

// survey runs the satisfaction survey in the chat when the agent has
// resolved its ticket: the flows' survey.lua with the ticket to rate (its
// buttons 1 to 5 are the keys), when the flows have it and the desk keeps
// ratings; then the chat ends.
func (ss *session) survey(number, lang string) {
	r, ok := ss.srv.run.(interface{ HasFlow(name string) bool })
	if _, rates := ss.srv.svc.Desk.(flows.Rater); !ok || !r.HasFlow(surveyFlow) || !rates {
		ss.send(msg{Type: "end", Text: text(lang, "end")}, true)
		return
	}
	f := flows.Facts{CallID: ss.id, Caller: "chat", Called: "chat", Lang: lang, Start: time.Now(), Flow: surveyFlow, Ticket: number}
	out := ss.srv.run.Run(ss.ctx, f, ss, ss.srv.svc)
	ss.srv.log.Info("chat survey", "call_id", ss.id, "ticket", number, "outcome", out.Reason)
	if out.Kind != flows.OutcomeCaller {
		ss.send(msg{Type: "end", Text: text(lang, "end")}, true)
	}
}
