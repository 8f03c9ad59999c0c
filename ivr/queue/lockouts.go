package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/govline/ivr/store"
)

// Lock is an agent or a source address that may not register for a
// while, after too many failed digest attempts (table sip_lockouts).
type Lock struct {
	Kind     string    `json:"kind"`   // "agent" or "address"
	Target   string    `json:"target"` // the agent's name or the IP address
	Until    time.Time `json:"until"`
	Failures int       `json:"failures"`
}

// Lock kinds.
const (
	LockAgent   = "agent"
	LockAddress = "address"
)

func (l Lock) key() string { return l.Kind + ":" + l.Target }

// ErrNotLocked is returned by Unlock when there is no lock to lift.
var ErrNotLocked = errors.New("not locked")

// Lock records a lock (replacing an earlier one of the same target).
func (d Directory) Lock(ctx context.Context, l Lock) error {
	if l.Kind != LockAgent && l.Kind != LockAddress || l.Target == "" {
		return fmt.Errorf("lock %q %q: want kind agent or address and a target", l.Kind, l.Target)
	}
	return d.DB.Write(ctx, func(tx *store.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO sip_lockouts (target, until_ns, failures, created_ns) VALUES (?, ?, ?, ?)
ON CONFLICT (target) DO UPDATE SET until_ns = excluded.until_ns, failures = excluded.failures, created_ns = excluded.created_ns`,
			l.key(), l.Until.UnixNano(), l.Failures, time.Now().UnixNano())
		return err
	})
}

// Locked returns the lock in force now on agent or on address (the
// agent's first), if any. An empty agent or address is not looked up.
func (d Directory) Locked(ctx context.Context, agent, address string) (Lock, bool, error) {
	keys := []any{"agent:" + agent, "address:" + address}
	rows, err := d.DB.QueryContext(ctx, `SELECT target, until_ns, failures FROM sip_lockouts WHERE target IN (?, ?) AND until_ns > ?`,
		keys[0], keys[1], time.Now().UnixNano())
	if err != nil {
		return Lock{}, false, fmt.Errorf("lockouts: %w", err)
	}
	defer rows.Close()
	var found []Lock
	for rows.Next() {
		l, err := scanLock(rows)
		if err != nil {
			return Lock{}, false, err
		}
		if (l.Kind == LockAgent && agent != "") || (l.Kind == LockAddress && address != "") {
			found = append(found, l)
		}
	}
	if err := rows.Err(); err != nil {
		return Lock{}, false, err
	}
	for _, l := range found {
		if l.Kind == LockAgent {
			return l, true, nil
		}
	}
	if len(found) > 0 {
		return found[0], true, nil
	}
	return Lock{}, false, nil
}

func scanLock(sc interface{ Scan(...any) error }) (Lock, error) {
	var target string
	var until int64
	var l Lock
	if err := sc.Scan(&target, &until, &l.Failures); err != nil {
		return l, fmt.Errorf("lockouts: %w", err)
	}
	l.Kind, l.Target, _ = strings.Cut(target, ":")
	l.Until = time.Unix(0, until)
	return l, nil
}

// Locks returns the locks in force, soonest to end first.
func (d Directory) Locks(ctx context.Context) ([]Lock, error) {
	rows, err := d.DB.QueryContext(ctx, `SELECT target, until_ns, failures FROM sip_lockouts WHERE until_ns > ? ORDER BY until_ns`, time.Now().UnixNano())
	if err != nil {
		return nil, fmt.Errorf("lockouts: %w", err)
	}
	defer rows.Close()
	out := []Lock{}
	for rows.Next() {
		l, err := scanLock(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// Unlock lifts the lock of an agent (kind LockAgent) or an address
// (LockAddress): the next REGISTER is checked again. Expired locks are
// dropped on the way.
func (d Directory) Unlock(ctx context.Context, kind, target string) error {
	return d.DB.Write(ctx, func(tx *store.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM sip_lockouts WHERE until_ns <= ?`, time.Now().UnixNano()); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM sip_lockouts WHERE target = ?`, kind+":"+target)
		if err != nil {
			return fmt.Errorf("unlock %s %q: %w", kind, target, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%s %q: %w", kind, target, ErrNotLocked)
		}
		return nil
	})
}
