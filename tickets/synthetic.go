package tickets

import (
	"context"
	"fmt"
	"time"

	"github.com/govline/ivr/store"
)

// FillSynthetic writes n synthetic tickets and n calls spread evenly over
// [from, from+span), in two statements, for the benchmarks and load tests
// that measure the indicators and the dashboard on a million of each. The
// rows are plausible (80 % resolved, 70 % of those at level I, a fifth of
// those during the call, a third rated; half of the calls queued, one in
// seven of those abandoned) but have no history: never call it on a line's
// real database. Ticket numbers are 10000000 + i, not valid numbers.
func (s *Store) FillSynthetic(ctx context.Context, n int, from time.Time, span time.Duration) error {
	// The dialects differ in how they count to n, pad a number and turn a
	// truth into 0 or 1; the rest is the same SQL.
	series := `(WITH RECURSIVE seq(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM seq WHERE x < ? - 1) SELECT x FROM seq)`
	pad := func(prefix, expr string, width int) string {
		return fmt.Sprintf(`printf('%s%%0%dd', %s)`, prefix, width, expr)
	}
	flag := func(cond string) string { return "(" + cond + ")" }
	if s.db.Backend() == store.Postgres {
		series = `(SELECT generate_series(0, ? - 1) AS x)`
		pad = func(prefix, expr string, width int) string {
			return fmt.Sprintf(`'%s' || lpad((%s)::text, %d, '0')`, prefix, expr, width)
		}
		flag = func(cond string) string { return "(" + cond + ")::int" }
	}
	step := int64(span) / int64(n)
	services := `CASE x % 8 WHEN 0 THEN 'identity_card' WHEN 1 THEN 'passport' WHEN 2 THEN 'portal_account'
		            WHEN 3 THEN 'online_request' WHEN 4 THEN 'request_status' WHEN 5 THEN 'driving_licence'
		            WHEN 6 THEN 'support_service' ELSE 'other' END`
	err := s.inTx(ctx, "fill synthetic", func(tx *store.Tx) error {
		_, err := tx.ExecContext(ctx, `
		INSERT INTO tickets (number, channel, caller, lang, service, priority, level, status,
			deadline_ns, created_ns, updated_ns, escalated, resolved_ns, resolved_level, first_contact, last_event, rating)
		SELECT `+pad("", "10000000 + x", 8)+`,
		       CASE x % 3 WHEN 0 THEN 'phone' WHEN 1 THEN 'email' ELSE 'portal' END,
		       `+pad("+4072", "x % 200000", 7)+`, 'ro', `+services+`,
		       'normal', lvl, CASE WHEN res THEN 'resolved' ELSE 'in_progress' END,
		       created + 129600000000000, created, created, `+flag("lvl > 1")+`,
		       CASE WHEN res THEN created + (x * 7919 % 259200) * 1000000000 END,
		       CASE WHEN res THEN lvl END,
		       `+flag("res AND lvl = 1 AND x % 3 = 0 AND x % 5 = 0")+`, 1,
		       CASE WHEN x % 3 = 0 THEN 1 + x % 5 END
		FROM (SELECT x, CAST(? AS bigint) + x * CAST(? AS bigint) AS created, x % 10 < 8 AS res,
		             CASE WHEN x % 10 < 7 THEN 1 WHEN x % 10 < 9 THEN 2 ELSE 3 END AS lvl FROM `+series+` AS seq) AS t`,
			from.UnixNano(), step, n)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `
		INSERT INTO calls (id, telephony, caller, called, start_ns, end_ns, service, queue_outcome)
		SELECT `+pad("call-", "x", 7)+`, 'sip', '+40721000000', '1919', CAST(? AS bigint) + x * CAST(? AS bigint), CAST(? AS bigint) + x * CAST(? AS bigint) + 60000000000, `+services+`,
		       CASE WHEN x % 2 = 0 THEN 'none' WHEN x % 7 = 1 THEN 'abandoned' ELSE 'answered' END
		FROM `+series+` AS seq`, from.UnixNano(), step, from.UnixNano(), step, n)
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `ANALYZE`)
		return err
	})
	return opErr("fill synthetic", err)
}
