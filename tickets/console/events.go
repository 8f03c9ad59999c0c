package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/govline/ivr/tickets"
)

// BridgedEvent is the kind of the call event that pops the ticket screen:
// the agent queue writes it (Store.AppendEvent on the call) when a call is
// bridged to an agent, with Detail {"agent":"USER NAME"}. That agent's open
// consoles go to /pop?call=CALL_ID.
const BridgedEvent = "agent.bridged"

// sseTicket is a change of a ticket, as the live stream sends it.
type sseTicket struct {
	Ticket string `json:"ticket"`
	Kind   string `json:"kind"`
	Actor  string `json:"actor"`
}

// sseTurn is a transcript turn (text only for roles that see personal data).
type sseTurn struct {
	CallID  string    `json:"call_id"`
	Speaker string    `json:"speaker"`
	Text    string    `json:"text,omitempty"`
	At      time.Time `json:"at"`
}

// events streams live updates (server-sent events) until the client goes:
//
//	event: ticket  data: {"ticket","kind","actor"}   a ticket changed
//	event: turn    data: {"call_id","speaker","text","at"}
//	event: call    data: {"call_id","kind"}          a call event
//	event: pop     data: {"call_id","url"}           a call bridged to you
//
// The stream is owned by its request: it ends with the request's context.
func (c *Console) events(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sess := session(r)
	pii := seesPersonalData(sess.User.Role)
	rc := http.NewResponseController(w)
	// The stream outlives any server write timeout.
	_ = rc.SetWriteDeadline(time.Time{})
	cur, err := c.st.FeedStart(ctx)
	if err != nil {
		apiError(w, http.StatusServiceUnavailable, "live updates unavailable")
		return
	}
	lastEvent, err := c.st.TicketChangesStart(ctx)
	if err != nil {
		apiError(w, http.StatusServiceUnavailable, "live updates unavailable")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 3000\n\n")
	if err := rc.Flush(); err != nil {
		return
	}
	send := func(event string, v any) error {
		b, _ := json.Marshal(v)
		_, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b)
		return err
	}
	// Only the user's provider's calls and tickets (memoized per stream).
	seenCall, seenTicket := map[string]bool{}, map[string]bool{}
	callOK := func(id string) bool {
		ok, known := seenCall[id]
		if !known {
			v, err := c.callVisible(ctx, sess.User, id)
			ok = err == nil && v
			if err == nil && len(seenCall) < 10000 {
				seenCall[id] = ok
			}
		}
		return ok
	}
	ticketOK := func(number string) bool {
		ok, known := seenTicket[number]
		if !known {
			_, _, err := c.ticketFor(ctx, sess.User, number)
			ok = err == nil
			if len(seenTicket) < 10000 {
				seenTicket[number] = ok
			}
		}
		return ok
	}
	tick := time.NewTicker(c.cfg.Poll)
	defer tick.Stop()
	lastWrite := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.stop:
			return
		case <-tick.C:
		}
		n := 0
		items, next, err := c.st.Feed(ctx, cur, 200)
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("live feed", "err", err)
			}
			continue
		}
		cur = next
		for _, it := range items {
			if !callOK(it.CallID) {
				continue
			}
			switch {
			case it.Turn != nil:
				t := sseTurn{CallID: it.CallID, Speaker: it.Turn.Speaker, At: it.Turn.Start()}
				if pii {
					t.Text = it.Turn.Text
				}
				err = send("turn", t)
			case it.Event != nil && it.Event.Kind == BridgedEvent:
				var d struct {
					Agent string `json:"agent"`
				}
				if json.Unmarshal([]byte(it.Event.Detail), &d) == nil && d.Agent == sess.User.Name {
					err = send("pop", map[string]string{"call_id": it.CallID, "url": "/pop?call=" + url.QueryEscape(it.CallID)})
				}
			case it.Event != nil:
				err = send("call", map[string]string{"call_id": it.CallID, "kind": it.Event.Kind})
			}
			if err != nil {
				return
			}
			n++
		}
		changes, last, err := c.st.TicketChanges(ctx, lastEvent, 200)
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("live tickets", "err", err)
			}
			continue
		}
		lastEvent = last
		for _, ch := range changes {
			if ch.Kind == tickets.EventTransfer {
				delete(seenTicket, ch.Ticket) // its provider changed
			}
			if !ticketOK(ch.Ticket) {
				continue
			}
			if err := send("ticket", sseTicket{Ticket: ch.Ticket, Kind: string(ch.Kind), Actor: ch.Actor}); err != nil {
				return
			}
			n++
		}
		if n == 0 && time.Since(lastWrite) < 15*time.Second {
			continue
		}
		if n == 0 {
			fmt.Fprint(w, ": keep-alive\n\n")
		}
		if err := rc.Flush(); err != nil {
			return
		}
		lastWrite = time.Now()
	}
}
