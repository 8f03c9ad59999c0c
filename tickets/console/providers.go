package console

import (
	"context"
	"errors"
	"fmt"

	"github.com/govline/ivr/tickets"
)

// Providers (docs/providers.md): every user works for one provider and
// sees only its tickets. Every way to a ticket goes through ticketFor: the
// ticket screen (by URL), the JSON API, the search and the queue (which
// list only the provider's tickets: TicketQuery.Provider), the actions,
// the pop-up of a call and the recording of a call (callVisible). A ticket
// of another provider is "not found", as if it did not exist, and the
// refusal is audited.

// errReadOnly is returned (wrapped) for an action on a ticket the user's
// provider reads but no longer holds (it was transferred away).
var errReadOnly = errors.New("the ticket was transferred to another provider: read only")

// ticketFor returns ticket number as user u may see it: writable when it
// is u's provider's, read-only when it was u's provider's before a
// transfer, and ErrNotFound (wrapped) otherwise. A monitor sees no ticket.
func (c *Console) ticketFor(ctx context.Context, u tickets.User, number string) (t tickets.Ticket, writable bool, err error) {
	t, err = c.st.Ticket(ctx, number)
	if err != nil {
		return tickets.Ticket{}, false, err
	}
	if u.Role == tickets.RoleMonitor {
		return tickets.Ticket{}, false, fmt.Errorf("ticket %q: %w", number, tickets.ErrNotFound)
	}
	if t.Provider == u.Provider {
		return t, true, nil
	}
	ok, err := c.st.CanView(ctx, u.Provider, t)
	if err != nil {
		return tickets.Ticket{}, false, err
	}
	if !ok {
		return tickets.Ticket{}, false, fmt.Errorf("ticket %q: %w", number, tickets.ErrNotFound)
	}
	return t, false, nil
}

// auditOtherProvider records that u asked for a ticket of another
// provider (refused as not found).
func (c *Console) auditOtherProvider(ctx context.Context, u tickets.User, number, addr, how string) {
	if t, err := c.st.Ticket(ctx, number); err == nil && t.Provider != u.Provider {
		c.audit(ctx, tickets.AuditEntry{User: u.Name, Action: "ticket_other_provider", Target: number, Detail: how, Address: addr})
	}
}

// callVisible reports whether u's provider may see call id (its
// transcript, its recording): one of the call's tickets is visible to it,
// or, when the call has none, the call is its (the dialed number's
// provider, else the service's).
func (c *Console) callVisible(ctx context.Context, u tickets.User, id string) (bool, error) {
	if u.Role == tickets.RoleMonitor {
		return false, nil
	}
	ts, err := c.st.TicketsOfCall(ctx, id)
	if err != nil {
		return false, err
	}
	for _, t := range ts {
		if _, _, err := c.ticketFor(ctx, u, t.Number); err == nil {
			return true, nil
		} else if !errors.Is(err, tickets.ErrNotFound) {
			return false, err
		}
	}
	if len(ts) > 0 {
		return false, nil
	}
	cr, err := c.st.Call(ctx, id)
	if err != nil {
		return false, err
	}
	p, err := c.st.ProviderOf(ctx, cr.Called, cr.Service)
	if err != nil {
		return false, err
	}
	return p == u.Provider, nil
}

// providerNames maps provider ids to their names (for the screens).
func (c *Console) providers(ctx context.Context) ([]tickets.Provider, error) {
	return c.st.Providers(ctx)
}
