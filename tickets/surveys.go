package tickets

import (
	"context"
	"fmt"
	"time"

	"github.com/govline/ivr/store"
)

// SurveyDue is a resolved phone ticket whose caller may be asked, by a
// survey call, to rate the service.
type SurveyDue struct {
	Ticket string
	Number string // the caller's number: personal data
	Lang   string
}

// Survey results besides an unanswered attempt's reason.
const (
	SurveyRated    = "rated"     // the citizen gave a rating
	SurveyNoRating = "no_rating" // answered, no rating
)

// SurveysDue returns up to limit phone tickets resolved since since, with
// a caller number and no rating, that had no survey call, and whose
// caller had none in the period before now; oldest resolution first, one
// ticket per number.
func (s *Store) SurveysDue(ctx context.Context, since time.Time, period time.Duration, now time.Time, limit int) ([]SurveyDue, error) {
	if limit <= 0 {
		limit = 10
	}
	rows, err := s.db.QueryContext(ctx, fmt.Sprintf(`SELECT t.number, t.caller, t.lang FROM tickets t
WHERE t.channel = 'phone' AND t.status IN ('resolved', 'closed') AND t.resolved_ns >= ? AND t.caller <> '' AND t.rating IS NULL
  AND NOT EXISTS (SELECT 1 FROM surveys s WHERE s.ticket = t.number)
  AND NOT EXISTS (SELECT 1 FROM surveys s WHERE s.number = t.caller AND s.created_ns > ?)
ORDER BY t.resolved_ns, t.number LIMIT %d`, limit*4), since.UnixNano(), now.Add(-period).UnixNano())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []SurveyDue
	seen := map[string]bool{}
	for rows.Next() {
		var d SurveyDue
		if err := rows.Scan(&d.Ticket, &d.Number, &d.Lang); err != nil {
			return nil, err
		}
		if seen[d.Number] || len(out) >= limit {
			continue
		}
		seen[d.Number] = true
		out = append(out, d)
	}
	return out, rows.Err()
}

// SurveyStarted records a survey call for ticket to number; false when the
// ticket had one already, or the number had one in the period before now
// (another engine took it).
func (s *Store) SurveyStarted(ctx context.Context, ticket, number string, period time.Duration, now time.Time) (bool, error) {
	ok := false
	err := s.db.Write(ctx, func(tx *store.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM surveys WHERE ticket = ? OR (number = ? AND created_ns > ?)`,
			ticket, number, now.Add(-period).UnixNano()).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO surveys (ticket, number, result, created_ns, updated_ns) VALUES (?, ?, '', ?, ?)`,
			ticket, number, now.UnixNano(), now.UnixNano())
		ok = err == nil
		return err
	})
	return ok, err
}

// SurveyEnded records the result of ticket's survey call.
func (s *Store) SurveyEnded(ctx context.Context, ticket, result string) error {
	return s.db.Write(ctx, func(tx *store.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE surveys SET result = ?, updated_ns = ? WHERE ticket = ?`, result, time.Now().UnixNano(), ticket)
		return err
	})
}

// SurveyCounts are the surveys placed in a period, by call and by e-mail
// (EmailResolvedSurvey, whose rows hold the address in number): how
// many, how many the citizen answered (rated or not), how many were
// rated. A survey by e-mail is answered only by its rating.
type SurveyCounts struct {
	Placed   int `json:"placed"`
	Answered int `json:"answered"`
	Rated    int `json:"rated"`
}

// ResponseRate is rated over placed (0 with none placed).
func (c SurveyCounts) ResponseRate() float64 {
	if c.Placed == 0 {
		return 0
	}
	return float64(c.Rated) / float64(c.Placed)
}

// SurveyReport counts the surveys placed in [from, to).
func (s *Store) SurveyReport(ctx context.Context, from, to time.Time) (SurveyCounts, error) {
	var c SurveyCounts
	err := s.db.QueryRowContext(ctx, `SELECT count(*),
  coalesce(sum(CASE WHEN result IN ('rated', 'no_rating') THEN 1 ELSE 0 END), 0),
  coalesce(sum(CASE WHEN result = 'rated' THEN 1 ELSE 0 END), 0)
FROM surveys WHERE created_ns >= ? AND created_ns < ?`, from.UnixNano(), to.UnixNano()).Scan(&c.Placed, &c.Answered, &c.Rated)
	return c, err
}
