package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/govline/ivr/store"
)

var (
	_ Board = (*Shared)(nil)
	_ Place = (*sharedPlace)(nil)
)

// DefaultLease is how long an engine may stay silent before the others
// release its callers' places and its agents' claims (SharedConfig.Lease).
const DefaultLease = 10 * time.Second

// SharedConfig configures a Shared board.
type SharedConfig struct {
	// Config is the queues, the same on every engine.
	Config
	// Engine names this engine, unique among those sharing the database.
	Engine string
	// Lease: an engine that has not said it is alive for this long is
	// taken for dead (default DefaultLease); every engine says so three
	// times per lease.
	Lease time.Duration
	// Log receives the failures of the background refresh (nil: discarded).
	Log *slog.Logger
}

// Shared is the Board of engines sharing one PostgreSQL database (package
// queue's tables queue_engines, queue_agents, queue_callers,
// queue_handle): the database decides, so no agent is offered two calls,
// callers are served in the order they arrived on any engine, and a
// caller's position counts the callers of every engine. A claim locks the
// agent's row (FOR UPDATE SKIP LOCKED: two engines claiming at once take
// different agents, without waiting); every change is announced with
// NOTIFY, which Changed turns into a wake-up on every engine. An engine
// that dies (no refresh for a Lease) loses its callers' places, and the
// agents ringing for or talking to its calls are free again, within a
// Lease and a third.
//
// Its methods are safe for concurrent use. It owns two goroutines (the
// refresh and the listener); Close stops and joins them.
type Shared struct {
	db     *store.DB
	cfg    SharedConfig
	listen *store.Listener
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	changed chan struct{}
}

// notifyChannel is the NOTIFY channel of the shared queue.
const notifyChannel = "ivr_queue"

// nowNS is the database's clock in nanoseconds (the start of the
// statement): engines' clocks need not agree.
const nowNS = `CAST(extract(epoch FROM statement_timestamp()) * 1000000000 AS bigint)`

// NewShared starts this engine's part of the shared queue in db
// (PostgreSQL). It releases what an earlier run of the same engine left
// (its callers and claims: those calls ended with it), says the engine is
// alive, and listens for the other engines' changes.
func NewShared(ctx context.Context, db *store.DB, cfg SharedConfig) (*Shared, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Engine == "" {
		return nil, errors.New("shared queue: the engine needs a name")
	}
	if db.Backend() != store.Postgres {
		return nil, fmt.Errorf("shared queue on %s: %w (one engine keeps its queue in memory: Local)", db, store.ErrUnsupported)
	}
	cfg.Config = cfg.Config.withDefaults()
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &Shared{db: db, cfg: cfg, changed: make(chan struct{})}
	if err := s.write(ctx, func(tx *store.Tx) error {
		if err := s.release(ctx, tx, is, cfg.Engine); err != nil {
			return err
		}
		return s.alive(ctx, tx)
	}); err != nil {
		return nil, fmt.Errorf("shared queue: start: %w", err)
	}
	l, err := db.Listen(ctx, notifyChannel)
	if err != nil {
		return nil, fmt.Errorf("shared queue: %w", err)
	}
	s.listen = l
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	s.wg.Go(func() { s.relay(bg) })
	s.wg.Go(func() { s.refresh(bg) })
	return s, nil
}

// Close stops the engine's part: its goroutines end, and its callers'
// places and claims are released at once (a clean stop, not a lapsed
// lease).
func (s *Shared) Close() error {
	s.cancel()
	s.listen.Close()
	s.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.write(ctx, func(tx *store.Tx) error {
		if err := s.release(ctx, tx, is, s.cfg.Engine); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM queue_engines WHERE engine = ?`, s.cfg.Engine)
		return err
	})
}

// write runs fn in a transaction that ends by announcing a change.
func (s *Shared) write(ctx context.Context, fn func(*store.Tx) error) error {
	return s.db.Write(ctx, func(tx *store.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `SELECT pg_notify(?, '')`, notifyChannel)
		return err
	})
}

// alive says the engine is alive now.
func (s *Shared) alive(ctx context.Context, tx *store.Tx) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO queue_engines (engine, alive_ns) VALUES (?, `+nowNS+`)
		ON CONFLICT (engine) DO UPDATE SET alive_ns = excluded.alive_ns`, s.cfg.Engine)
	return err
}

// live is the condition that engine column col names an engine alive now.
func (s *Shared) live(col string) string {
	return fmt.Sprintf(`EXISTS (SELECT 1 FROM queue_engines e WHERE e.engine = %s AND e.alive_ns > %s - %d)`,
		col, nowNS, s.cfg.Lease.Nanoseconds())
}

// is is the condition that an engine column is the one engine named.
func is(col string) string { return col + " = ?" }

// release drops the callers of the engines that engines (a condition on an
// engine column) selects, and frees the agents ringing for or talking to
// their calls.
func (s *Shared) release(ctx context.Context, tx *store.Tx, engines func(col string) string, args ...any) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM queue_callers WHERE `+engines("engine"), args...); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `UPDATE queue_agents SET state = 'idle', call_id = '', call_engine = '', idle_since_ns = `+nowNS+`
		WHERE call_engine <> '' AND `+engines("call_engine"), args...)
	return err
}

// refresh says the engine is alive three times per lease and releases the
// engines that have not for a lease.
func (s *Shared) refresh(ctx context.Context) {
	t := time.NewTicker(s.cfg.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := s.write(ctx, func(tx *store.Tx) error {
			if err := s.alive(ctx, tx); err != nil {
				return err
			}
			return s.release(ctx, tx, func(col string) string { return "NOT " + s.live(col) })
		})
		if err != nil && ctx.Err() == nil {
			s.cfg.Log.Warn("shared queue: refresh failed", "engine", s.cfg.Engine, "err", err)
		}
	}
}

// relay turns the database's notifications into wake-ups of Changed.
func (s *Shared) relay(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.listen.C:
			s.mu.Lock()
			close(s.changed)
			s.changed = make(chan struct{})
			s.mu.Unlock()
		}
	}
}

// Changed implements Line.
func (s *Shared) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// Register implements Roster.
func (s *Shared) Register(ctx context.Context, a Agent, contact string, until time.Time) error {
	d := time.Until(until)
	err := s.write(ctx, func(tx *store.Tx) error {
		if d <= 0 {
			_, err := tx.ExecContext(ctx, `DELETE FROM queue_agents WHERE agent = ?`, a.Name)
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO queue_agents AS q (agent, queues, contact, engine, until_ns, idle_since_ns)
			VALUES (?, ?, ?, ?, `+nowNS+` + ?, `+nowNS+`)
			ON CONFLICT (agent) DO UPDATE SET queues = excluded.queues, contact = excluded.contact,
				engine = excluded.engine, until_ns = excluded.until_ns,
				idle_since_ns = CASE WHEN q.until_ns <= excluded.idle_since_ns THEN excluded.idle_since_ns ELSE q.idle_since_ns END`,
			a.Name, ","+strings.Join(a.Queues, ",")+",", contact, s.cfg.Engine, d.Nanoseconds())
		return err
	})
	if err != nil {
		return fmt.Errorf("shared queue: register %s: %w", a.Name, err)
	}
	return nil
}

// Registered implements Roster.
func (s *Shared) Registered(ctx context.Context, agent string) (string, bool, error) {
	var contact string
	err := s.db.QueryRowContext(ctx, `SELECT contact FROM queue_agents WHERE agent = ? AND until_ns > `+nowNS, agent).Scan(&contact)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("shared queue: registered %s: %w", agent, err)
	}
	return contact, true, nil
}

// Done implements Roster.
func (s *Shared) Done(ctx context.Context, agent string, talked time.Duration) error {
	err := s.write(ctx, func(tx *store.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE queue_agents SET state = 'idle', call_id = '', call_engine = '', idle_since_ns = `+nowNS+`
			WHERE agent = ?`, agent); err != nil || talked <= 0 {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO queue_handle AS h (queue, handle_ns) VALUES ('', (CAST(? AS bigint) * 7 + ?) / 8)
			ON CONFLICT (queue) DO UPDATE SET handle_ns = (h.handle_ns * 7 + ?) / 8`,
			s.cfg.HandleTime.Nanoseconds(), talked.Nanoseconds(), talked.Nanoseconds())
		return err
	})
	if err != nil {
		return fmt.Errorf("shared queue: done %s: %w", agent, err)
	}
	return nil
}

// Join implements Line.
func (s *Shared) Join(ctx context.Context, queue, callID string) (Place, error) {
	if _, ok := s.cfg.Queues[queue]; !ok {
		return nil, fmt.Errorf("queue %q: %w", queue, ErrUnknownQueue)
	}
	err := s.write(ctx, func(tx *store.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO queue_callers (queue, call_id, engine, joined_ns) VALUES (?, ?, ?, `+nowNS+`)`,
			queue, callID, s.cfg.Engine)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("shared queue: join %s: %w", queue, err)
	}
	return &sharedPlace{s: s, queue: queue, callID: callID}, nil
}

type sharedPlace struct {
	s      *Shared
	queue  string
	callID string
}

// serves is the condition that an agent row answers the place's queue.
const serves = `strpos(queues, ',' || ? || ',') > 0`

func (p *sharedPlace) Look(ctx context.Context) (Standing, error) {
	s := p.s
	var pos, agents int
	var handle int64
	err := s.db.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM queue_callers c, queue_callers me
		 WHERE me.call_id = ? AND c.queue = me.queue AND c.seq <= me.seq AND `+s.live("c.engine")+`),
		(SELECT count(*) FROM queue_agents WHERE `+serves+` AND until_ns > `+nowNS+`),
		coalesce((SELECT handle_ns FROM queue_handle WHERE queue = ''), ?)`,
		p.callID, p.queue, s.cfg.HandleTime.Nanoseconds()).Scan(&pos, &agents, &handle)
	if err != nil {
		return Standing{}, fmt.Errorf("shared queue: position of %s: %w", p.callID, err)
	}
	return Standing{Position: pos, Wait: expectedWait(pos, agents, time.Duration(handle))}, nil
}

func (p *sharedPlace) Claim(ctx context.Context) ([]Target, error) {
	s := p.s
	limit := 1
	if s.cfg.Queues[p.queue].Strategy == RingAll {
		limit = 1000
	}
	var out []Target
	err := s.write(ctx, func(tx *store.Tx) error {
		out = nil
		var seq int64
		var ringing int
		err := tx.QueryRowContext(ctx, `SELECT seq, ringing FROM queue_callers WHERE call_id = ? FOR UPDATE`, p.callID).Scan(&seq, &ringing)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && ringing != 0) {
			return nil // left, or agents ringing already
		}
		if err != nil {
			return err
		}
		var ahead int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM queue_callers c
			WHERE c.queue = ? AND c.seq < ? AND c.ringing = 0 AND `+s.live("c.engine"), p.queue, seq).Scan(&ahead); err != nil {
			return err
		}
		if ahead > 0 {
			return nil // a caller ahead is served first
		}
		rows, err := tx.QueryContext(ctx, `SELECT agent, contact FROM queue_agents
			WHERE `+serves+` AND until_ns > `+nowNS+` AND state = 'idle' AND pause_until_ns <= `+nowNS+`
			ORDER BY idle_since_ns, agent LIMIT ? FOR UPDATE SKIP LOCKED`, p.queue, limit)
		if err != nil {
			return err
		}
		for rows.Next() {
			var t Target
			if err := rows.Scan(&t.Agent, &t.Contact); err != nil {
				rows.Close()
				return err
			}
			out = append(out, t)
		}
		rows.Close()
		if err := rows.Err(); err != nil || len(out) == 0 {
			return err
		}
		for _, t := range out {
			if _, err := tx.ExecContext(ctx, `UPDATE queue_agents SET state = 'ringing', call_id = ?, call_engine = ? WHERE agent = ?`,
				p.callID, s.cfg.Engine, t.Agent); err != nil {
				return err
			}
		}
		_, err = tx.ExecContext(ctx, `UPDATE queue_callers SET ringing = 1 WHERE call_id = ?`, p.callID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("shared queue: claim for %s: %w", p.callID, err)
	}
	return out, nil
}

func (p *sharedPlace) Settle(ctx context.Context, answered string, leave bool) error {
	s := p.s
	err := s.write(ctx, func(tx *store.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE queue_agents SET
				state = CASE WHEN agent = ? THEN 'busy' ELSE 'idle' END,
				call_id = CASE WHEN agent = ? THEN call_id ELSE '' END,
				call_engine = CASE WHEN agent = ? THEN call_engine ELSE '' END,
				pause_until_ns = CASE WHEN ? = '' THEN `+nowNS+` + ? ELSE pause_until_ns END
			WHERE call_id = ? AND state = 'ringing'`,
			answered, answered, answered, answered, s.cfg.RetryDelay.Nanoseconds(), p.callID)
		if err != nil {
			return err
		}
		q := `UPDATE queue_callers SET ringing = 0 WHERE call_id = ?`
		if leave {
			q = `DELETE FROM queue_callers WHERE call_id = ?`
		}
		_, err = tx.ExecContext(ctx, q, p.callID)
		return err
	})
	if err != nil {
		return fmt.Errorf("shared queue: settle %s: %w", p.callID, err)
	}
	return nil
}
