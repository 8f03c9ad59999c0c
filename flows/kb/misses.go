package kb

import (
	"context"
	"fmt"
	"time"

	"github.com/govline/ivr/store"
)

// MissLog keeps the queries the knowledge base did not answer confidently,
// where every engine of the line adds to them and supervisors read them
// (the line's store). RecordMiss adds one query, already masked and
// trimmed by Index.RecordMiss, asked at at: a query already kept in that
// language is counted again, not stored twice, its first and last times
// the earliest and latest asked (engines' writes may commit out of order). Misses returns those last
// asked at or after since (all for a zero since), most asked first, then
// most recent. Both are called concurrently, by every call of every
// engine; Misses returns a slice the caller owns.
type MissLog interface {
	RecordMiss(ctx context.Context, lang, query string, at time.Time) error
	Misses(ctx context.Context, since time.Time) ([]Miss, error)
}

var _ MissLog = (*MissTable)(nil)

// MissTable is the MissLog in the line's database (table kb_misses, which
// package kb alone writes and reads), on SQLite or PostgreSQL.
type MissTable struct {
	db *store.DB
}

// NewMissTable returns the misses kept in db, an open line's database.
func NewMissTable(db *store.DB) *MissTable { return &MissTable{db: db} }

// RecordMiss adds one miss (see MissLog).
func (m *MissTable) RecordMiss(ctx context.Context, lang, query string, at time.Time) error {
	ns := at.UnixNano()
	err := m.db.Write(ctx, func(tx *store.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO kb_misses AS m (lang, query, count, first_ns, last_ns) VALUES (?, ?, 1, ?, ?)
			ON CONFLICT (lang, query) DO UPDATE SET count = m.count + 1,
				first_ns = `+m.db.Least()+`(m.first_ns, excluded.first_ns), last_ns = `+m.db.Greatest()+`(m.last_ns, excluded.last_ns)`,
			lang, query, ns, ns)
		return err
	})
	if err != nil {
		return fmt.Errorf("kb: record miss: %w", err)
	}
	return nil
}

// Misses lists the misses (see MissLog).
func (m *MissTable) Misses(ctx context.Context, since time.Time) ([]Miss, error) {
	var s int64
	if !since.IsZero() {
		s = since.UnixNano()
	}
	rows, err := m.db.QueryContext(ctx, `SELECT lang, query, count, first_ns, last_ns FROM kb_misses
		WHERE last_ns >= ? ORDER BY count DESC, last_ns DESC, lang, query`, s)
	if err != nil {
		return nil, fmt.Errorf("kb: misses: %w", err)
	}
	defer rows.Close()
	var out []Miss
	for rows.Next() {
		var m Miss
		var f, l int64
		if err := rows.Scan(&m.Lang, &m.Query, &m.Count, &f, &l); err != nil {
			return nil, fmt.Errorf("kb: misses: %w", err)
		}
		m.First, m.Last = time.Unix(0, f).UTC(), time.Unix(0, l).UTC()
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("kb: misses: %w", err)
	}
	return out, nil
}
