package queue

import (
	"context"
	"crypto/md5"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/govline/ivr/store"
)

// Agent is a SIP agent as the store keeps it: the name it registers with,
// the digest secret HA1 = MD5(name:realm:password) and the queues it
// answers. The password itself is never stored.
type Agent struct {
	Name     string
	Realm    string
	HA1      string
	Queues   []string
	Disabled bool
}

// Serves reports whether the agent answers queue q.
func (a Agent) Serves(q string) bool {
	for _, x := range a.Queues {
		if x == q {
			return true
		}
	}
	return false
}

// HA1 is the digest secret of RFC 2617: hex MD5 of name:realm:password.
func HA1(name, realm, password string) string {
	sum := md5.Sum([]byte(name + ":" + realm + ":" + password))
	return hex.EncodeToString(sum[:])
}

// ErrUnknownAgent is returned by Lookup for a name that is not an agent
// (or a disabled one).
var ErrUnknownAgent = errors.New("unknown agent")

var (
	agentName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
	queueName = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)
)

// ValidQueueName reports whether s may name a queue: lower case letters,
// digits, '_' and '-', at most 32.
func ValidQueueName(s string) bool { return queueName.MatchString(s) }

// Directory keeps the SIP agents (table sip_agents) and their lockouts
// (sip_lockouts) in the line's database, SQLite or PostgreSQL: package
// queue is the only one that runs SQL on these tables. Every engine of a
// line reads the same agents, and a lockout set by one engine holds on
// all. It is safe for concurrent use.
type Directory struct {
	DB *store.DB
}

// Add creates an agent, or replaces the password and queues of an existing
// one. The name must be a SIP user part (letters, digits, '.', '_', '-'),
// the password at least 8 characters, every queue a valid queue name.
func (d Directory) Add(ctx context.Context, name, realm, password string, queues []string) error {
	if !agentName.MatchString(name) {
		return fmt.Errorf("agent name %q: use 1 to 64 letters, digits, '.', '_' or '-'", name)
	}
	if realm == "" {
		return errors.New("agent realm is empty")
	}
	if len(password) < 8 {
		return errors.New("agent password: at least 8 characters")
	}
	if len(queues) == 0 {
		return errors.New("agent queues: name at least one queue")
	}
	for _, q := range queues {
		if !ValidQueueName(q) {
			return fmt.Errorf("queue name %q: use lower case letters, digits, '_' or '-'", q)
		}
	}
	ha1 := HA1(name, realm, password)
	return d.DB.Write(ctx, func(tx *store.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO sip_agents (name, realm, ha1, queues, disabled, created_ns)
VALUES (?, ?, ?, ?, 0, ?)
ON CONFLICT (name) DO UPDATE SET realm = excluded.realm, ha1 = excluded.ha1, queues = excluded.queues, disabled = 0`,
			name, realm, ha1, strings.Join(queues, ","), time.Now().UnixNano())
		if err != nil {
			return fmt.Errorf("add agent %q: %w", name, err)
		}
		return nil
	})
}

// Disable stops an agent from registering (its history stays).
func (d Directory) Disable(ctx context.Context, name string) error {
	return d.DB.Write(ctx, func(tx *store.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE sip_agents SET disabled = 1 WHERE name = ?`, name)
		if err != nil {
			return fmt.Errorf("disable agent %q: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("disable agent %q: %w", name, ErrUnknownAgent)
		}
		return nil
	})
}

// Lookup returns an enabled agent by name, or an error wrapping
// ErrUnknownAgent.
func (d Directory) Lookup(ctx context.Context, name string) (Agent, error) {
	var a Agent
	var queues string
	var disabled int
	err := d.DB.QueryRowContext(ctx, `SELECT name, realm, ha1, queues, disabled FROM sip_agents WHERE name = ?`, name).
		Scan(&a.Name, &a.Realm, &a.HA1, &queues, &disabled)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && disabled != 0) {
		return Agent{}, fmt.Errorf("agent %q: %w", name, ErrUnknownAgent)
	}
	if err != nil {
		return Agent{}, fmt.Errorf("agent %q: %w", name, err)
	}
	a.Queues = splitQueues(queues)
	return a, nil
}

// List returns every agent, by name.
func (d Directory) List(ctx context.Context) ([]Agent, error) {
	rows, err := d.DB.QueryContext(ctx, `SELECT name, realm, ha1, queues, disabled FROM sip_agents ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	defer rows.Close()
	var out []Agent
	for rows.Next() {
		var a Agent
		var queues string
		var disabled int
		if err := rows.Scan(&a.Name, &a.Realm, &a.HA1, &queues, &disabled); err != nil {
			return nil, fmt.Errorf("list agents: %w", err)
		}
		a.Queues, a.Disabled = splitQueues(queues), disabled != 0
		out = append(out, a)
	}
	return out, rows.Err()
}

func splitQueues(s string) []string {
	var out []string
	for _, q := range strings.Split(s, ",") {
		if q = strings.TrimSpace(q); q != "" {
			out = append(out, q)
		}
	}
	return out
}
