package tickets

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Ratings are the satisfaction ratings (1 to 5, given by DTMF after an
// agent call) of the tickets created in a period, for one service.
type Ratings struct {
	Service Service `json:"service"` // "" in the total
	Count   int     `json:"count"`
	Average float64 `json:"average"` // 0 when Count is 0
}

const nsPerHour = int64(time.Hour)

// RatingsReport returns the ratings of the tickets created in [from, to),
// per service (in Services order) and in total. Whole hours are summed
// from the hourly roll-up (rating_stats); only the partial hours at the
// edges are scanned.
func (s *Store) RatingsReport(ctx context.Context, from, to time.Time) (total Ratings, per []Ratings, err error) {
	return s.ratings(ctx, "", from, to, true)
}

// ProviderRatings is RatingsReport of the tickets provider holds now
// (counted from the rows); "" means the whole line.
func (s *Store) ProviderRatings(ctx context.Context, provider string, from, to time.Time) (total Ratings, per []Ratings, err error) {
	if provider != "" {
		if err := checkProviderID(provider); err != nil {
			return total, nil, fmt.Errorf("tickets: ratings: %w", err)
		}
	}
	return s.ratings(ctx, provider, from, to, provider == "")
}

func (s *Store) ratings(ctx context.Context, provider string, from, to time.Time, rollup bool) (total Ratings, per []Ratings, err error) {
	f, t := from.UnixNano(), to.UnixNano()
	sums := map[Service][2]int{}
	add := func(rows *sql.Rows, err error) error {
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var svc Service
			var n, sum int
			if err := rows.Scan(&svc, &n, &sum); err != nil {
				return err
			}
			v := sums[svc]
			sums[svc] = [2]int{v[0] + n, v[1] + sum}
		}
		return rows.Err()
	}
	scan := func(a, b int64) error {
		if a >= b {
			return nil
		}
		if provider != "" {
			return add(s.db.QueryContext(ctx, `SELECT service, count(rating), coalesce(sum(rating), 0) FROM tickets
			WHERE provider = ? AND created_ns >= ? AND created_ns < ? AND rating IS NOT NULL GROUP BY service`, provider, a, b))
		}
		return add(s.db.QueryContext(ctx, `SELECT service, count(rating), coalesce(sum(rating), 0) FROM tickets
			WHERE created_ns >= ? AND created_ns < ? AND rating IS NOT NULL GROUP BY service`, a, b))
	}
	h0 := (f + nsPerHour - 1) / nsPerHour // first whole hour
	h1 := t / nsPerHour                   // end of the whole hours
	if !rollup || f < 0 || h0 >= h1 {
		err = scan(f, t)
	} else {
		err = add(s.db.QueryContext(ctx, `SELECT service, sum(count), sum(sum) FROM rating_stats
			WHERE hour >= ? AND hour < ? GROUP BY service`, h0, h1))
		if err == nil {
			err = scan(f, h0*nsPerHour)
		}
		if err == nil {
			err = scan(h1*nsPerHour, t)
		}
	}
	if err != nil {
		return total, nil, fmt.Errorf("tickets: ratings: %w", err)
	}
	var tn, ts int
	for _, svc := range Services {
		v := sums[svc]
		r := Ratings{Service: svc, Count: v[0]}
		if v[0] > 0 {
			r.Average = float64(v[1]) / float64(v[0])
		}
		per = append(per, r)
		tn, ts = tn+v[0], ts+v[1]
	}
	total.Count = tn
	if tn > 0 {
		total.Average = float64(ts) / float64(tn)
	}
	return total, per, nil
}
