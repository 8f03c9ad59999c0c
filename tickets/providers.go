package tickets

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/govline/ivr/store"
)

// DefaultProvider is the provider every line has: it owns the services and
// dialed numbers not given to another provider, the users added without
// one, and every row written before providers existed. A line of one
// provider never names it.
const DefaultProvider = "default"

// Provider is a public-service provider sharing the line (the passport
// agency, the social insurance house): it owns services, dialed numbers,
// users and tickets (docs/providers.md).
type Provider struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Created  time.Time `json:"created"`
	Services []Service `json:"services"` // given to it with SetProviderServices
	Numbers  []string  `json:"numbers"`  // dialed numbers given to it with SetProviderNumbers
}

var providerID = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,31}$`)

func checkProviderID(id string) error {
	if !providerID.MatchString(id) {
		return invalid("provider", "%q: want a lower-case letter, then up to 31 letters, digits, '-' or '_'", id)
	}
	return nil
}

// providerExists fails with ErrNotFound when id is not a provider.
func providerExists(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, id string) error {
	var n int
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM providers WHERE id = ?`, id).Scan(&n); err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("provider %q %w", id, ErrNotFound)
	}
	return nil
}

// AddProvider adds a provider (audited as "provider_add" by actor).
func (s *Store) AddProvider(ctx context.Context, actor, id, name string) error {
	op := "add provider " + id
	if err := errors.Join(checkProviderID(id), checkActor(actor)); err != nil {
		return fmt.Errorf("tickets: %s: %w", op, err)
	}
	if strings.TrimSpace(name) == "" {
		return fmt.Errorf("tickets: %s: %w", op, invalid("name", "empty"))
	}
	now := s.now()
	return opErr(op, s.inTx(ctx, op, func(tx *store.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO providers (id, name, created_ns) VALUES (?, ?, ?)`, id, name, now.UnixNano()); store.IsUnique(err) {
			return fmt.Errorf("provider %q %w", id, ErrExists)
		} else if err != nil {
			return err
		}
		return insertAudit(ctx, tx, AuditEntry{At: now, User: actor, Action: "provider_add", Target: id, Detail: name, OK: true})
	}))
}

// RenameProvider changes a provider's name (audited as "provider_name"):
// the default provider's too, which is "Default provider" until named.
func (s *Store) RenameProvider(ctx context.Context, actor, id, name string) error {
	op := "rename provider " + id
	if err := checkActor(actor); err != nil {
		return fmt.Errorf("tickets: %s: %w", op, err)
	}
	if strings.TrimSpace(name) == "" {
		return fmt.Errorf("tickets: %s: %w", op, invalid("name", "empty"))
	}
	now := s.now()
	return opErr(op, s.inTx(ctx, op, func(tx *store.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE providers SET name = ? WHERE id = ?`, name, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("provider %q %w", id, ErrNotFound)
		}
		return insertAudit(ctx, tx, AuditEntry{At: now, User: actor, Action: "provider_name", Target: id, Detail: name, OK: true})
	}))
}

// SetProviderServices gives the services' new requests to provider id (the
// services keep their tickets already opened). Giving a service to
// DefaultProvider takes it back from any other. Audited as
// "provider_services".
func (s *Store) SetProviderServices(ctx context.Context, actor, id string, svcs []Service) error {
	op := "set services of provider " + id
	err := checkActor(actor)
	for _, svc := range svcs {
		err = errors.Join(err, checkEnum("service", svc, Services))
	}
	if err != nil {
		return fmt.Errorf("tickets: %s: %w", op, err)
	}
	now := s.now()
	return opErr(op, s.inTx(ctx, op, func(tx *store.Tx) error {
		if err := providerExists(ctx, tx, id); err != nil {
			return err
		}
		var names []string
		for _, svc := range svcs {
			if _, err := tx.ExecContext(ctx, `DELETE FROM provider_services WHERE service = ?`, string(svc)); err != nil {
				return err
			}
			if id != DefaultProvider {
				if _, err := tx.ExecContext(ctx, `INSERT INTO provider_services (service, provider) VALUES (?, ?)`, string(svc), id); err != nil {
					return err
				}
			}
			names = append(names, string(svc))
		}
		return insertAudit(ctx, tx, AuditEntry{At: now, User: actor, Action: "provider_services", Target: id, Detail: strings.Join(names, ","), OK: true})
	}))
}

// SetProviderNumbers gives the dialed numbers' calls and new requests to
// provider id; a dialed number wins over the service. Audited as
// "provider_numbers".
func (s *Store) SetProviderNumbers(ctx context.Context, actor, id string, numbers []string) error {
	op := "set numbers of provider " + id
	err := checkActor(actor)
	for _, n := range numbers {
		if strings.TrimSpace(n) == "" || strings.ContainsAny(n, " \t,") {
			err = errors.Join(err, invalid("number", "%q: want a dialed number without spaces or commas", n))
		}
	}
	if err != nil {
		return fmt.Errorf("tickets: %s: %w", op, err)
	}
	now := s.now()
	return opErr(op, s.inTx(ctx, op, func(tx *store.Tx) error {
		if err := providerExists(ctx, tx, id); err != nil {
			return err
		}
		for _, n := range numbers {
			if _, err := tx.ExecContext(ctx, `DELETE FROM provider_numbers WHERE number = ?`, n); err != nil {
				return err
			}
			if id != DefaultProvider {
				if _, err := tx.ExecContext(ctx, `INSERT INTO provider_numbers (number, provider) VALUES (?, ?)`, n, id); err != nil {
					return err
				}
			}
		}
		return insertAudit(ctx, tx, AuditEntry{At: now, User: actor, Action: "provider_numbers", Target: id, Detail: strings.Join(numbers, ","), OK: true})
	}))
}

// Providers returns every provider, DefaultProvider first, then by id,
// with the services and numbers given to each.
func (s *Store) Providers(ctx context.Context) ([]Provider, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, created_ns FROM providers ORDER BY id <> 'default', id`)
	if err != nil {
		return nil, fmt.Errorf("tickets: providers: %w", err)
	}
	var out []Provider
	idx := map[string]int{}
	for rows.Next() {
		var p Provider
		var created int64
		if err := rows.Scan(&p.ID, &p.Name, &created); err != nil {
			rows.Close()
			return nil, fmt.Errorf("tickets: providers: %w", err)
		}
		p.Created, p.Services, p.Numbers = fromNanos(created), []Service{}, []string{}
		idx[p.ID] = len(out)
		out = append(out, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("tickets: providers: %w", err)
	}
	given := map[Service]bool{}
	if err := s.eachPair(ctx, `SELECT provider, service FROM provider_services ORDER BY service`, func(p, v string) {
		if i, ok := idx[p]; ok {
			out[i].Services = append(out[i].Services, Service(v))
			given[Service(v)] = true
		}
	}); err != nil {
		return nil, fmt.Errorf("tickets: providers: %w", err)
	}
	if err := s.eachPair(ctx, `SELECT provider, number FROM provider_numbers ORDER BY number`, func(p, v string) {
		if i, ok := idx[p]; ok {
			out[i].Numbers = append(out[i].Numbers, v)
		}
	}); err != nil {
		return nil, fmt.Errorf("tickets: providers: %w", err)
	}
	if i, ok := idx[DefaultProvider]; ok {
		for _, svc := range Services {
			if !given[svc] {
				out[i].Services = append(out[i].Services, svc)
			}
		}
	}
	for i := range out {
		slices.SortFunc(out[i].Services, func(a, b Service) int {
			return slices.Index(Services, a) - slices.Index(Services, b)
		})
	}
	return out, nil
}

func (s *Store) eachPair(ctx context.Context, q string, fn func(a, b string)) error {
	rows, err := s.db.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var a, b string
		if err := rows.Scan(&a, &b); err != nil {
			return err
		}
		fn(a, b)
	}
	return rows.Err()
}

// ProviderOf returns the provider a new request goes to: the provider of
// the number the call dialed, else that of the service, else
// DefaultProvider.
func (s *Store) ProviderOf(ctx context.Context, called string, svc Service) (string, error) {
	p, err := providerFor(ctx, s.db, called, svc)
	if err != nil {
		return "", fmt.Errorf("tickets: provider of %q: %w", called, err)
	}
	return p, nil
}

func providerFor(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, called string, svc Service) (string, error) {
	var p string
	err := q.QueryRowContext(ctx, `SELECT coalesce(
		(SELECT provider FROM provider_numbers WHERE number = ?),
		(SELECT provider FROM provider_services WHERE service = ?), 'default')`, called, string(svc)).Scan(&p)
	return p, err
}

type providerKey struct{}

// AsProvider returns a context whose ticket changes (AddNote, Resolve,
// Transfer...) apply only to provider p's tickets: a change of another
// provider's ticket fails with ErrNotFound, checked under the ticket's row
// lock, so that a change racing with a transfer never lands on a ticket
// that has just left p. The console makes every change with it.
func AsProvider(ctx context.Context, p string) context.Context {
	return context.WithValue(ctx, providerKey{}, p)
}

// Transfer hands an open ticket to another provider, with the reason
// (required): a "transfer" event (from, to, reason) in its history and a
// "ticket_transfer" line in the audit, in one transaction. The ticket
// goes back to level I, unassigned, in status new, in the new provider's
// queue; the provider it left still reads it (CanView) but no longer
// changes it.
func (s *Store) Transfer(ctx context.Context, number, actor, to, reason string) error {
	if err := checkProviderID(to); err != nil {
		return fmt.Errorf("tickets: transfer %s: %w", number, err)
	}
	return s.act(ctx, "transfer", number, actor, func(ctx context.Context, tx *store.Tx, cur *Ticket, now time.Time) (*TicketEvent, error) {
		if !isOpen(cur.Status) {
			return nil, fmt.Errorf("%w: transfer a %s ticket: reopen it first", ErrTransition, cur.Status)
		}
		if strings.TrimSpace(reason) == "" {
			return nil, fmt.Errorf("%w: transfer: say why (reason)", ErrTransition)
		}
		if to == cur.Provider {
			return nil, fmt.Errorf("%w: transfer: the ticket is already provider %s's", ErrTransition, to)
		}
		if err := providerExists(ctx, tx, to); err != nil {
			return nil, invalid("provider", "%v", err)
		}
		if err := insertAudit(ctx, tx, AuditEntry{At: now, User: actor, Action: "ticket_transfer", Target: number,
			Detail: "from " + cur.Provider + " to " + to, OK: true}); err != nil {
			return nil, err
		}
		return event(EventTransfer, EventData{From: cur.Provider, To: to, Text: reason}), nil
	})
}

// CanView reports whether provider p's users may read ticket t: it is
// p's now, or it was p's before a transfer (its history names p as the
// provider it left). Only the ticket's own provider changes it.
func (s *Store) CanView(ctx context.Context, p string, t Ticket) (bool, error) {
	if t.Provider == p {
		return true, nil
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+eventColumns+` FROM ticket_events WHERE ticket = ? AND kind = 'transfer' ORDER BY id`, t.Number)
	if err != nil {
		return false, fmt.Errorf("tickets: can view %s: %w", t.Number, err)
	}
	defer rows.Close()
	seen := false
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return false, fmt.Errorf("tickets: can view %s: %w", t.Number, err)
		}
		seen = seen || e.Data.From == p
	}
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("tickets: can view %s: %w", t.Number, err)
	}
	return seen, nil
}
