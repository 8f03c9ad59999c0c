package tickets

import (
	"context"
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

// RatingsReport returns the ratings of the tickets created in [from, to),
// per service (in Services order) and in total.
func (s *Store) RatingsReport(ctx context.Context, from, to time.Time) (total Ratings, per []Ratings, err error) {
	rows, err := s.db.QueryContext(ctx, `SELECT service, count(rating), coalesce(sum(rating), 0) FROM tickets
		WHERE created_ns >= ? AND created_ns < ? AND rating IS NOT NULL GROUP BY service`, from.UnixNano(), to.UnixNano())
	if err != nil {
		return total, nil, fmt.Errorf("tickets: ratings: %w", err)
	}
	defer rows.Close()
	sums := map[Service][2]int{}
	for rows.Next() {
		var svc Service
		var n, sum int
		if err := rows.Scan(&svc, &n, &sum); err != nil {
			return total, nil, fmt.Errorf("tickets: ratings: %w", err)
		}
		sums[svc] = [2]int{n, sum}
	}
	if err := rows.Err(); err != nil {
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
